"""Time in the bot process: APScheduler wakes the code that fires due rows; the rows are in the database.

On start the timers re-arm from the database: the next due row sets a one-off job, and a
periodic job catches rows written by other processes. Rows missed while the bot was down are
simply due, so they fire once on the first tick; whether a row is still useful is decided by
the row's own handler when it fires.

On PostgreSQL any number of processes may run timers: each row is claimed with
`FOR UPDATE SKIP LOCKED` and fires once. On SQLite only one process runs them, the one holding
a lock file beside the database; a second process says so in its log and leaves time alone.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.engine import Engine

from bot.leader import FileLeadership
from bot.metrics import Metrics
from db.engine import checkpoint
from db.uow import UnitOfWork
from services import due, timers
from services.dialogs import prune_processed_events
from services.districts import all_districts

log = logging.getLogger(__name__)
POLL_SECONDS = 30.0
KEEP_EVENT_IDS = timedelta(days=14)  # platforms redeliver within hours; two weeks is ample


def run_due(
    engine: Engine,
    now: Callable[[], datetime],
    *,
    limit: int = 500,
    stopping: Callable[[], bool] = lambda: False,
    metrics: Metrics | None = None,
) -> int:
    """Fire every row that is due, each in its own transaction; returns how many fired.

    `stopping` is asked between rows, so a shutdown waits for one row at most.
    """
    fired = 0
    for _ in range(limit):
        if stopping():
            return fired
        with UnitOfWork(engine) as uow:
            task = due.claim(uow.session, now())
            if task is None:
                return fired
            task_id, kind = task.id, task.kind
            try:
                timers.fire(uow.session, task, now())
                uow.commit()
                fired += 1
                if kind == due.Kind.RETENTION:  # every night: an erasure since the last one may be in the WAL
                    _checkpoint(engine)
                if metrics is not None:
                    metrics.fired(kind, ok=True)
                continue
            except Exception as exc:
                log.exception("due task %s (%s) failed", task_id, kind)
                uow.rollback()
                error = type(exc).__name__
        assert task_id is not None
        with UnitOfWork(engine) as uow:
            gave_up = timers.record_failure(uow.session, task_id, error, now())
            uow.commit()
        if gave_up:
            log.error(
                "due task %s (%s) failed on every attempt and was given up; the operators are told",
                task_id,
                kind,
            )
        if metrics is not None:
            metrics.fired(kind, ok=False)
    return fired


def _checkpoint(engine: Engine) -> None:
    """After a purge's commit, so the purged text leaves SQLite's -wal file. A failure (a reader held on
    for the whole busy timeout) leaves old frames there until SQLite reuses them or the next purge's
    checkpoint; it is logged, and the purge stays done."""
    try:
        checkpoint(engine)
    except Exception as exc:
        log.warning("WAL checkpoint after the retention purge failed (%s)", type(exc).__name__)


def rearm(engine: Engine, now: datetime) -> None:
    """Arm what the database implies (rows older than the timers, each district's next digest and purge).

    Also forgets event ids old enough that no platform will deliver them again.
    """
    with UnitOfWork(engine) as uow:
        due.backfill(uow.session, now)
        for district in all_districts(uow.session):
            assert district.id is not None
            due.arm_digest(uow.session, district.id, now)
            due.arm_retention(uow.session, district.id, now)
        prune_processed_events(uow.session, before=now - KEEP_EVENT_IDS)
        uow.commit()


class SingleRunner(FileLeadership):
    """On SQLite, a lock file beside the database: only its holder runs the timers."""

    def __init__(self, engine: Engine) -> None:
        database = engine.url.database if engine.url.get_backend_name() == "sqlite" else None
        super().__init__(f"{database}.timers.lock" if database and database != ":memory:" else None)


class Timers:
    """APScheduler in the bot's event loop, firing due rows; `poke()` after a change may have armed one."""

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Callable[[], datetime] | None = None,
        on_fired: Callable[[], None] = lambda: None,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.engine = engine
        self.clock = clock or (lambda: datetime.now(UTC))
        self.on_fired = on_fired
        self.metrics: Metrics | None = None  # set by the process that runs these timers
        self.poll_seconds = poll_seconds
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.runner = SingleRunner(engine)
        self.running = False
        self._lock = asyncio.Lock()
        self._firing: asyncio.Future[int] | None = None
        self._pending: set[asyncio.Task[None]] = set()

    async def start(self) -> bool:
        """Re-arm from the database and start; False when another process runs the timers (SQLite)."""
        if not self.runner.acquire():
            log.warning("another process runs the timers for this database; this one leaves them alone")
            return False
        await asyncio.to_thread(rearm, self.engine, self.clock())
        self.scheduler.start()
        self.scheduler.add_job(
            self.tick,
            "interval",
            seconds=self.poll_seconds,
            id="poll",
            coalesce=True,
            max_instances=1,
            misfire_grace_time=None,  # a busy loop delays a job; it must not skip it
        )
        self.running = True
        await self.arm_next()
        return True

    async def stop(self) -> None:
        """Stop; a row being fired is finished first (its thread is waited for, not abandoned)."""
        if self.running:
            self.running = False
            self.scheduler.shutdown(wait=False)
            if self._firing is not None:
                with contextlib.suppress(Exception):
                    await self._firing
        for task in list(self._pending):
            task.cancel()
        self.runner.release()

    def poke(self) -> None:
        """Something changed (a booking, a report): look again at what is due next."""
        if self.running:
            task = asyncio.get_running_loop().create_task(self.arm_next())
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def tick(self) -> None:
        """Fire what is due, then set the one-off job for the next row."""
        async with self._lock:
            if not self.running:
                return
            self._firing = asyncio.ensure_future(
                asyncio.to_thread(
                    run_due, self.engine, self.clock, stopping=lambda: not self.running, metrics=self.metrics
                )
            )
            try:
                # Shielded: if the scheduler's shutdown cancels this job, the thread still finishes
                # its row and `stop` waits for it.
                fired = await asyncio.shield(self._firing)
            finally:
                self._firing = None
        if fired:
            self.on_fired()
        await self.arm_next()

    async def arm_next(self) -> None:
        upcoming = await asyncio.to_thread(self._next_due_at)
        if upcoming is None or not self.running:
            return
        # The rows' times are on the bot's clock; the scheduler runs on the wall clock.
        delay = max((upcoming - self.clock()).total_seconds(), 0.0)
        run_at = datetime.now(UTC) + timedelta(seconds=delay)
        armed = self.scheduler.get_job("next")
        if armed is not None and armed.next_run_time is not None and armed.next_run_time <= run_at:
            return  # an earlier wake-up is set; after it, the next one is looked up again
        with contextlib.suppress(Exception):  # shut down meanwhile
            self.scheduler.add_job(
                self.tick, "date", run_date=run_at, id="next", replace_existing=True, misfire_grace_time=None
            )

    def _next_due_at(self) -> datetime | None:
        with UnitOfWork(self.engine) as uow:
            return due.next_due_at(uow.session)
