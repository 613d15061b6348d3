"""One bot process: every configured platform's transport, one delivery loop for all, and the timers.

A transport receives events and answers them directly; notifications for any platform go
through the shared `Deliverer`, so a person linked on Telegram and Matrix is served by the same
outbox, rate limits and retries.
"""

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from sqlalchemy.engine import Engine

from bot.delivery import Deliverer, Sender
from bot.rate_limit import RateLimiter
from bot.scheduling import Timers

log = logging.getLogger(__name__)


class Transport(Protocol):
    """A chat platform's adapter: it calls `wake` after each handled event so delivery runs at once."""

    platform: str

    @property
    def sender(self) -> Sender: ...

    async def start(self, wake: Callable[[], None]) -> None: ...

    async def stop(self) -> None: ...


class BotProcess:
    """Starts the transports and the delivery loop; stops them in reverse order."""

    def __init__(
        self,
        engine: Engine,
        transports: Sequence[Transport],
        *,
        limiter: RateLimiter | None = None,
        clock: Callable[[], datetime] | None = None,
        timers: Timers | None = None,
    ) -> None:
        self.transports = list(transports)
        senders = {t.platform: t.sender for t in self.transports}
        self.deliverer = Deliverer(engine, senders, limiter=limiter, clock=clock)
        self.timers = timers
        if timers is not None:
            timers.on_fired = self.deliverer.wake.set
        self._delivery: asyncio.Task[None] | None = None

    def _after_event(self) -> None:
        """A handled event may have written notifications and armed due rows."""
        self.deliverer.wake.set()
        if self.timers is not None:
            self.timers.poke()

    async def start(self) -> None:
        """Start every transport, then delivery; if one cannot start, those already running are stopped."""
        started: list[Transport] = []
        try:
            for transport in self.transports:
                await transport.start(self._after_event)
                started.append(transport)
        except BaseException:
            for transport in reversed(started):
                await transport.stop()
            raise
        if self.timers is not None:
            await self.timers.start()
        self.deliverer.stopping = False
        self._delivery = asyncio.create_task(self.deliverer.run_forever())

    async def stop(self) -> None:
        if self.timers is not None:
            await self.timers.stop()
        if self._delivery is not None:
            self.deliverer.stop()
            try:
                await asyncio.wait_for(self._delivery, timeout=30)
            except TimeoutError:
                log.warning("delivery did not finish in time; stopped anyway")
            self._delivery = None
        for transport in reversed(self.transports):
            await transport.stop()

    async def serve(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set."""
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()
