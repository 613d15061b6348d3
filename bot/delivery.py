"""Delivering the outbox and the answers: each to its chat, in its language, at one safe pace.

Runs in the bot's event loop; database work goes to a worker thread. Everything this process
sends goes through one `Deliverer` and its `RateLimiter`: notifications, the answers to events
(stored as deliveries in the event's transaction) and the few words to strangers. A message is
cut into parts (text pieces, then a file) and each part is recorded once it went out, so a retry
never repeats a part already delivered. A delivery is marked sent only after its last part was
accepted; a 429 is retried after the platform's retry-after, and any failure of one recipient is
retried later (until the delivery's patience runs out) and never holds up the others.
"""

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from sqlalchemy.engine import Engine

from bot.db_thread import database_thread, run_in
from bot.i18n import Translator
from bot.messages import Reply, reply_from_body, split_text
from bot.metrics import Metrics
from bot.notifications import render
from bot.rate_limit import RateLimiter
from db.uow import UnitOfWork
from services import deliveries
from services.dialogs import offer_choices
from services.vocabulary import Role

log = logging.getLogger(__name__)
T = TypeVar("T")
IDLE_POLL = 5.0  # seconds between looks at the outbox when nothing woke the loop
SEEN = 10_000  # deliveries remembered as taken, so that a pushed answer is never sent twice
WAKE_CHECK = 0.1  # longest pause in a round before looking whether new answers are due


class _Bell(asyncio.Event):
    """An event that also rings the delivery loop awake (`Deliverer._sleep`)."""

    def __init__(self, ring: Callable[[], None]) -> None:
        super().__init__()
        self._ring = ring

    def set(self) -> None:
        super().set()
        self._ring()


class RetryLater(Exception):
    """The platform asked to wait (HTTP 429) before the next message."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"retry after {seconds}s")
        self.seconds = seconds


class Undeliverable(Exception):
    """Retrying cannot help: the chat is gone or the bot was blocked."""


class Sender(Protocol):
    """One platform's way to put a message into a chat, or to change one sent before.

    `key` names the message for its whole life, across retries and restarts: a platform that
    de-duplicates sends (Matrix transaction ids) uses it so a retried send cannot arrive twice.
    A reply with an empty text and a file sends only the file. `max_text` is the longest text
    one message may carry.
    """

    max_text: int

    async def send(self, chat_id: str, reply: Reply, *, key: str | None = None) -> str: ...

    async def edit(self, chat_id: str, message_id: str, reply: Reply, *, key: str | None = None) -> None: ...


@dataclass(frozen=True)
class Outgoing:
    """One delivery on its way: its parts (one message each) and the message its first part edits."""

    due: deliveries.Due
    reply: Reply
    parts: tuple[Reply, ...]
    edit_id: str | None
    tried: asyncio.Event | None = None  # set once its first part was sent (or failed): see `push`

    @property
    def answer(self) -> bool:
        return self.due.template is None


def parts_of(reply: Reply, max_text: int) -> tuple[Reply, ...]:
    """The messages a reply takes: its text in pieces (the choices with the last), then its file."""
    pieces = split_text(reply.text, max_text) if reply.text else []
    parts = [Reply(piece, reply.choices if i == len(pieces) - 1 else ()) for i, piece in enumerate(pieces)]
    if reply.attachment is not None:
        parts.append(Reply("", (), reply.attachment))
    return tuple(parts)


@dataclass
class _Job:
    outgoing: Outgoing
    part: int  # index into outgoing.parts


class Deliverer:
    """Sends what is due through the senders of this process's platforms."""

    def __init__(
        self,
        engine: Engine,
        senders: dict[str, Sender],
        *,
        limiter: RateLimiter | None = None,
        clock: Callable[[], datetime] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.engine = engine
        self.senders = senders
        self.metrics = metrics or Metrics()
        self.limiter = limiter or RateLimiter()
        self.clock = clock or (lambda: datetime.now(UTC))
        self.wake: asyncio.Event = _Bell(self._ring)  # the outbox may hold something new: read it
        # Answers were pushed: send them. The outbox is not read for them alone (an event that wrote
        # nothing else says so by not waking), so the next event's answer does not queue behind a
        # read of the outbox in the database thread.
        self._kick: asyncio.Event = _Bell(self._ring)
        # What `_sleep` awaits: resolved by either bell. One future wakes the loop's task in the next
        # round of the event loop; waiting on both events took several, and the poll's next
        # getUpdates was built and sent first (about 1.5 ms before an answer went out).
        self._rung: asyncio.Future[None] | None = None
        self.stopping = False
        self.enabled = True  # False while another process is the one that sends (see bot/leader.py)
        # Deliveries queued or on their way in this process: a lease that lapses meanwhile (a long
        # 429 wait, a clock moved on) must not bring the same row into the round a second time.
        self._active: set[int] = set()
        self._pushed: list[Outgoing] = []
        self._read_outbox = False  # the round read the outbox, or a send failed (a retry is due)
        self._next_look = 0.0  # time.monotonic() of the next retry due, as last read
        self._seen: OrderedDict[int, None] = OrderedDict()  # the latest deliveries taken into a round
        # Not the default pool: a burst of events fills that with handlers, and answers must not
        # wait until the whole burst is handled before the first goes out (bot/db_thread.py).
        self._thread = database_thread(engine, workers=1, name="delivery")

    async def _in_thread(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await run_in(self._thread, function, *args, **kwargs)

    # --- reading what is due --------------------------------------------------------------------

    def _prepare(self) -> list[Outgoing]:
        now = self.clock()
        with UnitOfWork(self.engine) as uow:
            deliveries.expand(uow.session, now=now)
            ready = []
            for due in deliveries.due(uow.session, platforms=list(self.senders), now=now):
                try:
                    reply = self._reply_of(uow, due)
                except Exception:
                    log.exception("delivery %s cannot be rendered", due.delivery_id)
                    deliveries.mark_failed(uow.session, due.delivery_id, error="render failed", now=now)
                    self.metrics.delivered(due.platform, "failed")
                    continue
                edit_id = deliveries.first_message_id(uow.session, due.delivery_id) if due.ref else None
                parts = parts_of(reply, self.senders[due.platform].max_text)
                if due.parts_sent >= len(parts):  # every part went out before a crash cut the record short
                    deliveries.mark_sent(uow.session, due.delivery_id, message_id=None, now=now)
                    continue
                ready.append(Outgoing(due, reply, parts, edit_id))
            uow.commit()
        return ready

    @staticmethod
    def _reply_of(uow: UnitOfWork, due: deliveries.Due) -> Reply:
        if due.template is None:
            assert due.body is not None
            return reply_from_body(due.body, due.attachment)
        t = Translator(due.locale or "de")
        return render(uow.session, t, due.template, due.params, Role(due.role))

    # --- recording what happened ----------------------------------------------------------------

    def _record_part(self, outgoing: Outgoing, parts_sent: int, message_id: str | None) -> None:
        with UnitOfWork(self.engine) as uow:
            deliveries.mark_part(
                uow.session, outgoing.due.delivery_id, parts_sent=parts_sent, message_id=message_id
            )
            uow.commit()

    def _record(
        self,
        outgoing: Outgoing,
        *,
        message_id: str | None,
        error: Exception | None,
        parts_sent: int,
        later: Sequence[int] = (),
    ) -> None:
        now = self.clock()
        due = outgoing.due
        self._active.discard(due.delivery_id)
        gave_up = False
        with UnitOfWork(self.engine) as uow:
            session = uow.session
            counted = parts_sent if parts_sent > due.parts_sent else None
            if counted is not None and error is not None:  # the parts out before it failed
                deliveries.mark_part(session, due.delivery_id, parts_sent=counted, message_id=message_id)
            if error is None:
                recorded = deliveries.mark_sent(
                    session, due.delivery_id, message_id=message_id, now=now, parts_sent=counted
                )
                if recorded and outgoing.reply.choices and not outgoing.answer:
                    choices = {c.key: c.label for c in outgoing.reply.choices}
                    offer_choices(session, due.member_id, choices, now=now)
            elif isinstance(error, RetryLater):
                pause = timedelta(seconds=error.seconds)
                gave_up = not deliveries.mark_retry(
                    session, due.delivery_id, error="429", now=now, retry_after=pause
                )
            elif isinstance(error, Undeliverable):
                deliveries.mark_failed(session, due.delivery_id, error=type(error).__name__, now=now)
                gave_up = True
            else:
                gave_up = not deliveries.mark_retry(
                    session, due.delivery_id, error=type(error).__name__, now=now
                )
            # The chat's later messages leave their claim; the outbox holds them behind this one
            # while it waits for its retry (`deliveries.due`), so their order holds.
            deliveries.release(session, later)
            uow.commit()
        outcome = "sent" if error is None else "failed" if gave_up else "retried"
        self.metrics.delivered(due.platform, outcome)
        if gave_up:  # the coordinators are told by a notice written with the record
            log.warning("delivery %s given up after %s attempts", due.delivery_id, due.attempts + 1)

    async def take_over(self) -> None:
        """This process sends from now on: claims that a process gone (killed) left are void."""
        released = await self._in_thread(self._release_all)
        if released:
            log.info("took over %s deliveries claimed by a process that is gone", released)

    def _release_all(self) -> int:
        with UnitOfWork(self.engine) as uow:
            released = deliveries.release_all(uow.session)
            uow.commit()
        return released

    def _release(self, delivery_ids: Sequence[int]) -> None:
        self._active.difference_update(delivery_ids)
        with UnitOfWork(self.engine) as uow:
            deliveries.release(uow.session, delivery_ids)
            uow.commit()

    # --- sending --------------------------------------------------------------------------------

    async def _send_part(self, job: _Job) -> str:
        outgoing = job.outgoing
        sender = self.senders[outgoing.due.platform]
        part = outgoing.parts[job.part]
        key = f"delivery-{outgoing.due.delivery_id}/p{job.part}"
        if job.part == 0 and outgoing.edit_id is not None and part.text:
            try:
                await sender.edit(outgoing.due.chat_id, outgoing.edit_id, part, key=key)
                return outgoing.edit_id
            except Undeliverable:
                pass  # the first message is gone: send a new one
        return await sender.send(outgoing.due.chat_id, part, key=key)

    async def run_once(self, *, look: bool = True) -> int:
        """Send everything due now, pacing per chat and overall; returns how many messages went out.

        Each chat's messages go out in order, answers to events before notifications. A failed
        send takes the rest of that chat's messages out of the round; they wait behind it in the
        outbox, so the order holds across the retry too. What becomes due meanwhile (an answer,
        pushed, or woken by `wake`) joins the round at once. `look=False`: the round sends what
        was pushed and reads the outbox only if `wake` is set meanwhile.
        """
        queues: dict[str, deque[_Job]] = {}
        self._kick.clear()
        if look:
            self.wake.set()  # the outbox is read in the round, right after any pushed answers went out
        sent = 0
        message_ids: dict[int, str | None] = {}
        while True:
            if self.stopping or not self.enabled:  # the rest stays due; its claim is let go
                held = sorted({job.outgoing.due.delivery_id for queue in queues.values() for job in queue})
                await self._in_thread(self._release, held)
                break
            if self._pushed:
                # An answer the outbox brought in first (or sent already) is not pushed again.
                self._enqueue(queues, [o for o in self._pushed if o.due.delivery_id not in self._seen])
                self._pushed = []
            elif self.wake.is_set():
                self.wake.clear()
                self._read_outbox = True
                self._enqueue(queues, await self._in_thread(self._prepare))
            if not queues:
                break
            now = time.monotonic()
            ready = [chat for chat in queues if self.limiter.wait(chat, now) == 0]
            if not ready:
                pause = min(self.limiter.wait(chat, now) for chat in queues)
                await asyncio.sleep(min(pause, WAKE_CHECK))  # short, so a new answer joins quickly
                continue
            ready.sort(key=lambda chat: not queues[chat][0].outgoing.answer)
            chat = ready[0]
            job = queues[chat].popleft()
            outgoing = job.outgoing
            self.limiter.sent(chat, time.monotonic())  # the slot is taken before the await
            last = job.part == len(outgoing.parts) - 1
            try:
                message_id = await self._send_part(job)
            except Exception as exc:
                if outgoing.tried is not None:
                    outgoing.tried.set()
                self._read_outbox = True
                if isinstance(exc, RetryLater):
                    self.limiter.pause_chat(chat, time.monotonic(), exc.seconds)
                else:
                    log.warning("delivery %s failed: %s", outgoing.due.delivery_id, type(exc).__name__)
                # The chat's later messages leave the round and wait behind this one: order holds.
                later = sorted(
                    {j.outgoing.due.delivery_id for j in queues.pop(chat)} - {outgoing.due.delivery_id}
                )
                self._active.difference_update(later)
                await self._in_thread(
                    self._record, outgoing, message_id=None, error=exc, parts_sent=job.part, later=later
                )
                continue
            else:
                if outgoing.tried is not None:
                    outgoing.tried.set()
                sent += 1
                message_ids.setdefault(outgoing.due.delivery_id, message_id)
                first_id = message_ids[outgoing.due.delivery_id]
                if last:
                    await self._in_thread(
                        self._record, outgoing, message_id=first_id, error=None, parts_sent=job.part + 1
                    )
                else:
                    await self._in_thread(self._record_part, outgoing, job.part + 1, first_id)
            if not queues[chat]:
                del queues[chat]
        return sent

    def push(
        self,
        platform: str,
        chat_id: str,
        answers: Sequence[tuple[int, Reply]],
        notices: Sequence[tuple[deliveries.Due, Reply, str | None]] = (),
    ) -> asyncio.Event | None:
        """Answers just stored with their event, to send first, without reading them back first;
        returns an event set once the first of them was tried (sent or failed), None if none.

        `notices`: the event's own notifications to the same chat, expanded and rendered in its
        transaction (`deliveries.expand_own`), with the message their first part edits; they go
        right after the answers. The caller made sure no earlier message to the chat waits
        (`Handled`); the rows are recorded as they go, like any other delivery, and are found in
        the outbox after a crash.
        """
        sender = self.senders[platform]
        pushed = []
        for delivery_id, reply in answers:
            due = deliveries.Due(
                delivery_id=delivery_id, member_id=0, role="", template=None, params={},
                platform=platform, chat_id=chat_id, locale=None, ref=None, attempts=0,
            )  # fmt: skip
            pushed.append(Outgoing(due, reply, parts_of(reply, sender.max_text), None))
        pushed += [Outgoing(d, r, parts_of(r, sender.max_text), edit_id) for d, r, edit_id in notices]
        if not pushed:
            return None
        pushed[0] = replace(pushed[0], tried=asyncio.Event())
        self._pushed += pushed
        self._kick.set()
        return pushed[0].tried

    def _enqueue(self, queues: dict[str, deque[_Job]], outgoing: list[Outgoing]) -> None:
        for item in outgoing:
            if item.due.delivery_id in self._active:
                continue
            self._active.add(item.due.delivery_id)
            self._seen[item.due.delivery_id] = None
            if len(self._seen) > SEEN:
                self._seen.popitem(last=False)
            chat = f"{item.due.platform}:{item.due.chat_id}"
            jobs = [_Job(item, index) for index in range(item.due.parts_sent, len(item.parts))]
            queues.setdefault(chat, deque()).extend(jobs)

    async def send_now(self, platform: str, chat_id: str, reply: Reply) -> None:
        """Send a reply that is not stored (to a stranger, about a room), at the same pace as the rest."""
        sender = self.senders[platform]
        chat = f"{platform}:{chat_id}"
        for part in parts_of(reply, sender.max_text):
            while (pause := self.limiter.wait(chat, time.monotonic())) > 0:
                await asyncio.sleep(pause)
            self.limiter.sent(chat, time.monotonic())
            try:
                await sender.send(chat_id, part)
            except RetryLater as exc:
                self.limiter.pause_chat(chat, time.monotonic(), exc.seconds)
                log.info("a reply to a stranger was refused by the platform's rate limit; dropped")
                return

    async def run_forever(self) -> None:
        """Deliver whenever woken (after each handled message) or every few seconds, until `stop`."""
        look = True
        while not self.stopping:
            if self.enabled:
                self._read_outbox = False
                try:
                    await self.run_once(look=look)
                except Exception:
                    self._read_outbox = True
                    log.exception("delivery round failed; trying again shortly")
                if self._read_outbox:
                    try:
                        timeout = await self._in_thread(self._idle_timeout)
                    except Exception:
                        log.warning("the database could not be asked what is due next; looking again soon")
                        timeout = IDLE_POLL
                    self._next_look = time.monotonic() + timeout
                else:  # pushed answers went out and nothing failed: the next retry due is as it was
                    timeout = max(0.05, self._next_look - time.monotonic())
            else:
                timeout = IDLE_POLL
            look = await self._sleep(timeout)

    async def _sleep(self, timeout: float) -> bool:
        """Wait for a wake, a push or the timeout; whether the next round must read the outbox
        (not when answers were pushed and nothing else woke the loop)."""
        if not (self.wake.is_set() or self._kick.is_set()):
            self._rung = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(timeout):
                    await self._rung
            except TimeoutError:
                pass
            finally:
                self._rung = None
        look = self.wake.is_set() or not self._kick.is_set()
        self.wake.clear()
        self._kick.clear()
        return look

    def _ring(self) -> None:
        if self._rung is not None and not self._rung.done():
            self._rung.set_result(None)

    def stop(self) -> None:
        """Let `run_forever` end after the round in progress (a round is never cut off mid-send)."""
        self.stopping = True
        self.wake.set()

    def _idle_timeout(self) -> float:
        with UnitOfWork(self.engine) as uow:
            upcoming = deliveries.next_due_at(uow.session, list(self.senders))
        if upcoming is None:
            return IDLE_POLL
        return min(IDLE_POLL, max(0.05, (upcoming - self.clock()).total_seconds()))
