"""Which process leads: the one that polls Telegram, syncs Matrix and sends; the others stand by.

On PostgreSQL any number of `run` processes may share a database. They all take webhook POSTs
and fire due rows (claimed with SKIP LOCKED), but only the holder of a session-level advisory lock
talks to the platforms outward: long polling allows one poller per token, a Matrix device has one
sync stream and one set of encryption sessions, and one sender keeps the platform's pace for all.
The lock goes with its connection, so when the leader dies PostgreSQL frees it and a standby takes
over at its next try, within `TRY_EVERY` seconds.

On SQLite there is one process: a lock file beside the database, and a second `run` is refused.
"""

import fcntl
import logging
import os
import threading
from collections.abc import Callable
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)
LOCK_KEY = 0x446F6C6D  # "Dolm": one advisory lock per database
TRY_EVERY = 2.0  # seconds between a standby's tries, and between the leader's checks of its lock


class AnotherProcessRuns(Exception):
    """On SQLite another `run` holds the database."""


class Leadership(Protocol):
    def acquire(self) -> bool: ...

    def holds(self) -> bool: ...

    def release(self) -> None: ...


class PostgresLeadership:
    """A PostgreSQL advisory lock on a connection of its own, held for as long as this process leads."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._connection: Connection | None = None

    def acquire(self) -> bool:
        try:
            if self._connection is None:
                self._connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            got = self._connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": LOCK_KEY})
            return bool(got.scalar())
        except Exception as exc:
            log.warning("the leader lock could not be asked for (%s)", type(exc).__name__)
            self._drop()
            return False

    def holds(self) -> bool:
        """True while the lock's connection is alive (a dead connection has lost the lock)."""
        if self._connection is None:
            return False
        try:
            self._connection.execute(text("SELECT 1"))
            return True
        except Exception as exc:
            log.warning("the leader lock's connection is gone (%s)", type(exc).__name__)
            self._drop()
            return False

    def release(self) -> None:
        if self._connection is not None:
            try:
                self._connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})
            except Exception as exc:
                log.info("the leader lock was gone already (%s)", type(exc).__name__)
        self._drop()

    def _drop(self) -> None:
        if self._connection is not None:
            try:
                self._connection.invalidate()  # never back into the pool: it may hold the lock
                self._connection.close()
            except Exception as exc:
                log.info("closing the leader lock's connection failed (%s)", type(exc).__name__)
            self._connection = None


class FileLeadership:
    """On SQLite: an exclusive lock on `DATABASE.run.lock`; the kernel frees it when the process dies."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        if self.path is None:  # an in-memory database cannot be shared anyway
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def holds(self) -> bool:
        return self.path is None or self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def leadership_for(engine: Engine) -> Leadership:
    if engine.dialect.name == "postgresql":
        return PostgresLeadership(engine)
    database = engine.url.database
    return FileLeadership(f"{database}.run.lock" if database and database != ":memory:" else None)


class Doorbell:
    """On PostgreSQL, how a standby tells the leader that something waits to be sent (LISTEN/NOTIFY).

    A standby that took a webhook POST or fired a due row has stored answers or notifications that
    only the leader sends; `ring` wakes it at once instead of at its next look at the outbox.
    """

    CHANNEL = "dolmetscherpool_send"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def ring(self) -> None:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT pg_notify(:channel, '')"), {"channel": self.CHANNEL})
                connection.commit()
        except Exception as exc:  # the leader looks at the outbox every few seconds anyway
            log.info("could not ring the leader (%s)", type(exc).__name__)

    def listen(self, on_ring: Callable[[], None]) -> None:
        """Call `on_ring` (from a thread of its own) whenever a standby rings, until `stop`."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._listen, args=(on_ring,), name="doorbell", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _listen(self, on_ring: Callable[[], None]) -> None:
        while not self._stop.is_set():
            try:
                raw = self.engine.raw_connection()
                try:
                    connection = raw.driver_connection
                    assert connection is not None
                    connection.autocommit = True
                    connection.execute(f"LISTEN {self.CHANNEL}")
                    while not self._stop.is_set():
                        for _ in connection.notifies(timeout=1.0, stop_after=1):
                            on_ring()
                finally:
                    raw.invalidate()  # never back into the pool: it is listening
            except Exception as exc:
                log.info("the doorbell's connection failed (%s); listening again shortly", type(exc).__name__)
                self._stop.wait(TRY_EVERY)
