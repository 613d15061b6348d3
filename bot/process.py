"""One bot process: every configured platform's transport, one delivery loop for all, and the timers.

A transport receives events and stores its answers with them; notifications and answers for any
platform go through the shared `Deliverer`, so a person linked on Telegram and Matrix is served
by the same outbox, pace and retries. Of several processes on one PostgreSQL database one leads
(`bot/leader.py`): it polls, syncs and sends; the others take webhook POSTs, fire due rows, and
stand by to take over.

Start order: a transport that waits for `Outlet.ready` before it handles an event (Telegram)
begins to poll first; what handling and sending need (the conversation, the delivery, the
timers, and the database layer under them: most of a start's imports) is imported in a thread
meanwhile, then the process takes over the outbox, starts the timers and the delivery, and only
then sets `ready`. An update that arrives before is held (its offset not confirmed) until then.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from sqlalchemy.engine import Engine

from bot.leader import TRY_EVERY, AnotherProcessRuns, Doorbell, Leadership, leadership_for
from bot.liveness import Liveness
from bot.messages import Reply
from bot.metrics import Metrics
from bot.rate_limit import RateLimiter

if TYPE_CHECKING:
    from bot.delivery import Deliverer, Sender
    from bot.outage import OutageWatch
    from bot.scheduling import Timers
    from services import deliveries

log = logging.getLogger(__name__)
# What handling an event and sending need beyond a transport's own: imported by `_prepare`.
PREPARED_MODULES = ("bot.delivery", "bot.outage", "bot.scheduling", "services.deliveries")


def _set_event() -> asyncio.Event:
    ready = asyncio.Event()
    ready.set()
    return ready


def _import(modules: Sequence[str]) -> None:
    for module in modules:
        importlib.import_module(module)


@dataclass(frozen=True)
class Outlet:
    """Where a transport hands on what an event gave.

    `wake` after each handled event (it may have written notifications and armed due rows; it is
    counted for the metrics; `wake(quiet=True)`: it wrote neither);
    `push(chat_id, answers)` for the answers stored with it, which the leading process sends at
    once, before it looks at the outbox; `say(chat_id, reply)` for the few replies stored nowhere
    (to strangers), at the same pace as everything else; `liveness` to record each successful
    (and failed) poll, sync or webhook check.
    """

    wake: Callable[..., None]
    # (chat_id, answers, notices=()) -> an event set once the first was tried, or None: `Deliverer.push`
    push: Callable[..., asyncio.Event | None]
    say: Callable[[str, Reply], Awaitable[None]]
    liveness: Liveness = field(default_factory=Liveness)
    ready: asyncio.Event = field(default_factory=_set_event)  # set once events may be handled


class Transport(Protocol):
    """A chat platform's adapter.

    `start` is what every process does (reach the platform, listen for webhooks) and hands
    events' results to the `Outlet`. `lead` and `unlead` begin and end what only the leading
    process does (poll, sync). A transport may also have `prepare()` (import and build what its
    events need; run in a thread before `Outlet.ready`) and `waits_until_ready = True` (it holds
    every event until `Outlet.ready` is set, so it may lead before the process is prepared).
    """

    platform: str

    @property
    def sender(self) -> Sender: ...

    async def start(self, outlet: Outlet) -> None: ...

    async def lead(self) -> None: ...

    async def unlead(self) -> None: ...

    async def stop(self) -> None: ...


class BotProcess:
    """Starts the transports and the delivery loop; leads when it can; stops them in reverse order."""

    def __init__(
        self,
        engine: Engine,
        transports: Sequence[Transport],
        *,
        limiter: RateLimiter | None = None,
        clock: Callable[[], datetime] | None = None,
        timers: Timers | None = None,
        leadership: Leadership | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.engine = engine
        self.transports = list(transports)
        self.metrics = metrics or Metrics()
        self._limiter, self._clock = limiter, clock
        self._deliverer: Deliverer | None = None  # built on first use (`deliverer`)
        self._outages: OutageWatch | None = None
        self.timers = timers
        if timers is not None:
            self._hook(timers)
        # `timers` command and `run` pass a factory: bot.scheduling is imported by `_prepare`.
        self.make_timers: Callable[[], Timers] | None = None
        self.ready = asyncio.Event()  # every event waits for it (`Outlet.ready`)
        self._prepared = False
        self.leadership = leadership or leadership_for(engine)
        self.doorbell = Doorbell(engine) if engine.dialect.name == "postgresql" else None
        self.leading = False
        self.liveness = Liveness(clock) if clock is not None else Liveness()
        self._outage_checks: asyncio.Task[None] | None = None
        self._delivery: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._rings: set[asyncio.Future[None]] = set()

    @property
    def deliverer(self) -> Deliverer:
        """The one delivery loop for all platforms (built when first needed: see `_prepare`)."""
        if self._deliverer is None:
            from bot.delivery import Deliverer

            senders = {t.platform: t.sender for t in self.transports}
            deliverer = Deliverer(
                self.engine, senders, limiter=self._limiter, clock=self._clock, metrics=self.metrics
            )
            deliverer.enabled = False
            self._deliverer = deliverer
        return self._deliverer

    @property
    def outages(self) -> OutageWatch:
        if self._outages is None:
            from bot.outage import OutageWatch

            self._outages = OutageWatch(
                self.engine, self.liveness, active=lambda: self.leading, on_written=self._wake_sender
            )
        return self._outages

    def _hook(self, timers: Timers) -> None:
        timers.on_fired = self._wake_sender
        timers.metrics = self.metrics

    def _prepare_in_thread(self) -> None:
        """Import and build what handling and sending need; the event loop keeps polling meanwhile."""
        _import(PREPARED_MODULES)
        for transport in self.transports:
            prepare: Callable[[], None] | None = getattr(transport, "prepare", None)
            if prepare is not None:
                prepare()

    async def _prepare(self) -> None:
        if self._prepared:
            return
        await asyncio.to_thread(self._prepare_in_thread)
        self.deliverer, self.outages  # noqa: B018 - built here, in the loop's thread
        if self.timers is None and self.make_timers is not None:
            self.timers = self.make_timers()
            self._hook(self.timers)
        self._prepared = True

    async def _say(self, platform: str, chat_id: str, reply: Reply) -> None:
        await self.deliverer.send_now(platform, chat_id, reply)

    def _after_event(self, platform: str, quiet: bool = False) -> None:
        """A handled event may have written answers and notifications and armed due rows; a `quiet`
        one (`Handled.quiet`) wrote neither, so the outbox and the due rows need no new look."""
        self.metrics.handled(platform)
        if quiet and self.leading:  # its answers were pushed; a standby rings the leader for them
            return
        self._wake_sender()
        if self.timers is not None:
            self.timers.poke()

    def _push(
        self,
        platform: str,
        chat_id: str,
        answers: Sequence[tuple[int, Reply]],
        notices: Sequence[tuple[deliveries.Due, Reply, str | None]] = (),
    ) -> asyncio.Event | None:
        """Answers (and the event's own notices) this process may send at once if it leads (else the
        leader finds them stored: None)."""
        if self.leading:
            return self.deliverer.push(platform, chat_id, answers, notices)
        return None

    def _wake_sender(self) -> None:
        """Something waits to be sent: this process sends it if it leads, else it rings the leader."""
        if self.leading or self.doorbell is None:
            self.deliverer.wake.set()
        else:
            ring = asyncio.get_running_loop().run_in_executor(None, self.doorbell.ring)
            self._rings.add(ring)
            ring.add_done_callback(self._rings.discard)

    async def start(self) -> None:
        """Start every transport, then delivery; lead at once if no other process does.

        On SQLite a second process is refused (`AnotherProcessRuns`); if a transport cannot
        start, those already running are stopped. With transports that all hold events until
        `ready` (see the module's docstring), polling begins before the process is prepared.
        """
        self.ready.clear()
        early = bool(self.transports) and all(getattr(t, "waits_until_ready", False) for t in self.transports)
        if not early:
            await self._prepare()
        if not self.transports:  # the timers alone: no platform to lead
            pass
        elif not await asyncio.to_thread(self.leadership.acquire):
            if self.engine.dialect.name != "postgresql":
                raise AnotherProcessRuns()
            log.info("another process leads; this one takes webhooks and due rows and stands by")
        else:
            self.leading = True
        started: list[Transport] = []
        try:
            for transport in self.transports:
                outlet = Outlet(
                    wake=functools.partial(self._after_event, transport.platform),
                    push=functools.partial(self._push, transport.platform),
                    say=functools.partial(self._say, transport.platform),
                    liveness=self.liveness,
                    ready=self.ready,
                )
                await transport.start(outlet)
                started.append(transport)
            if self.leading and early:
                for transport in self.transports:
                    await transport.lead()  # polling begins; its events wait for `ready`
                await self._prepare()
                await self._lead(transports_lead=False)
            elif self.leading:
                await self._lead()
            else:
                await self._prepare()
        except BaseException:
            for transport in reversed(started):
                await transport.stop()
            await asyncio.to_thread(self.leadership.release)
            raise
        if self.timers is not None:
            await self.timers.start()
        self.deliverer.stopping = False
        self._delivery = asyncio.create_task(self.deliverer.run_forever())
        self._watch = asyncio.create_task(self._watch_leadership())
        if self.transports:
            self._outage_checks = asyncio.create_task(self.outages.run())
        self.ready.set()

    async def _lead(self, *, transports_lead: bool = True) -> None:
        await self.deliverer.take_over()
        for transport in self.transports if transports_lead else ():
            await transport.lead()
        if self.doorbell is not None:
            loop = asyncio.get_running_loop()

            def rung() -> None:
                loop.call_soon_threadsafe(self.deliverer.wake.set)

            self.doorbell.listen(rung)
        self.deliverer.enabled = True
        self.deliverer.wake.set()
        log.info("this process leads: it polls, syncs and sends")

    async def _unlead(self) -> None:
        self.deliverer.enabled = False
        if self.doorbell is not None:
            await asyncio.to_thread(self.doorbell.stop)
        for transport in self.transports:
            await transport.unlead()

    async def _watch_leadership(self) -> None:
        """The leader checks that it still holds the lock; a standby tries to take it."""
        while self.transports:
            await asyncio.sleep(TRY_EVERY)
            try:
                if self.leading and not await asyncio.to_thread(self.leadership.holds):
                    self.leading = False
                    log.warning("this process lost the lead; it stands by")
                    await self._unlead()
                elif not self.leading and await asyncio.to_thread(self.leadership.acquire):
                    self.leading = True
                    await self._lead()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("taking or keeping the lead failed; trying again")

    async def stop(self) -> None:
        if self._outage_checks is not None:
            self._outage_checks.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._outage_checks
            self._outage_checks = None
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
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
        if self.doorbell is not None:
            await asyncio.to_thread(self.doorbell.stop)
        if self._rings:
            await asyncio.wait(set(self._rings), timeout=5)
        self.leading = False
        await asyncio.to_thread(self.leadership.release)

    async def serve(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set."""
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()
