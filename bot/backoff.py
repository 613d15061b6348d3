"""Trying again while a platform or the database is away: growing pauses, and a log line a minute."""

import asyncio
import logging
import time


class Backoff:
    """Pauses of 1 s doubling up to 30 s between tries; the complaint goes to the log once a minute.

    A service that is away for an hour must not fill the log with a line a second, nor be hammered.
    """

    def __init__(self, log: logging.Logger, what: str, *, first: float = 1.0, most: float = 30.0) -> None:
        self.log, self.what = log, what
        self.first, self.most = first, most
        self.pause = first
        self._said = float("-inf")

    async def failed(self, exc: BaseException) -> None:
        """Say so (at most once a minute) and wait before the next try."""
        now = time.monotonic()
        if now - self._said >= 60:
            self.log.warning("%s (%s); trying again", self.what, type(exc).__name__)
            self._said = now
        await asyncio.sleep(self.pause)
        self.pause = min(self.pause * 2, self.most)

    def succeeded(self) -> None:
        self.pause = self.first
