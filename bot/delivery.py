"""Delivering the outbox: each notification to each recipient's chat, in their language, at a safe pace.

Runs in the bot's event loop; database work goes to a worker thread. A delivery is marked sent
only after the platform accepted it; a 429 is retried after the platform's retry-after; any other
failure of one recipient is retried later and never holds up the others.
"""

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy.engine import Engine

from bot.conversation.messages import Reply
from bot.i18n import Translator
from bot.notifications import render
from bot.rate_limit import RateLimiter
from db.uow import UnitOfWork
from services import deliveries
from services.dialogs import offer_choices
from services.vocabulary import Role

log = logging.getLogger(__name__)
IDLE_POLL = 5.0  # seconds between looks at the outbox when nothing woke the loop


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
    """

    async def send(self, chat_id: str, reply: Reply, *, key: str | None = None) -> str: ...

    async def edit(self, chat_id: str, message_id: str, reply: Reply, *, key: str | None = None) -> None: ...


@dataclass(frozen=True)
class Outgoing:
    due: deliveries.Due
    reply: Reply
    edit_id: str | None


class Deliverer:
    """Sends what is due through the senders of this process's platforms."""

    def __init__(
        self,
        engine: Engine,
        senders: dict[str, Sender],
        *,
        limiter: RateLimiter | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.engine = engine
        self.senders = senders
        self.limiter = limiter or RateLimiter()
        self.clock = clock or (lambda: datetime.now(UTC))
        self.wake = asyncio.Event()
        self.stopping = False

    def _prepare(self) -> list[Outgoing]:
        now = self.clock()
        with UnitOfWork(self.engine) as uow:
            deliveries.expand(uow.session, now=now)
            uow.commit()
            ready = []
            for due in deliveries.due(uow.session, platforms=list(self.senders), now=now):
                try:
                    t = Translator(due.locale or "de")
                    reply = render(uow.session, t, due.template, due.params, Role(due.role))
                except Exception:
                    log.exception(
                        "notification %s (delivery %s) cannot be rendered", due.template, due.delivery_id
                    )
                    deliveries.mark_failed(uow.session, due.delivery_id, error="render failed", now=now)
                    continue
                edit_id = deliveries.first_message_id(uow.session, due.delivery_id) if due.ref else None
                ready.append(Outgoing(due, reply, edit_id))
            uow.commit()
        return ready

    def _record(
        self,
        outgoing: Outgoing,
        *,
        message_id: str | None,
        error: Exception | None,
        later: Sequence[int] = (),
    ) -> None:
        now = self.clock()
        due = outgoing.due
        with UnitOfWork(self.engine) as uow:
            if error is None:
                deliveries.mark_sent(uow.session, due.delivery_id, message_id=message_id, now=now)
                if outgoing.reply.choices:
                    offer_choices(
                        uow.session, due.member_id, {c.key: c.label for c in outgoing.reply.choices}, now=now
                    )
            elif isinstance(error, RetryLater):
                pause = timedelta(seconds=error.seconds)
                deliveries.mark_retry(uow.session, due.delivery_id, error="429", now=now, retry_after=pause)
                deliveries.postpone(uow.session, later, until=now + pause)
            elif isinstance(error, Undeliverable):
                deliveries.mark_failed(uow.session, due.delivery_id, error=type(error).__name__, now=now)
            else:
                deliveries.mark_retry(uow.session, due.delivery_id, error=type(error).__name__, now=now)
            uow.commit()

    async def _send(self, outgoing: Outgoing) -> str:
        sender = self.senders[outgoing.due.platform]
        key = f"delivery-{outgoing.due.delivery_id}"
        if outgoing.edit_id is not None:
            try:
                await sender.edit(outgoing.due.chat_id, outgoing.edit_id, outgoing.reply, key=key)
                return outgoing.edit_id
            except Undeliverable:
                pass  # the first message is gone: send a new one
        return await sender.send(outgoing.due.chat_id, outgoing.reply, key=key)

    async def run_once(self) -> int:
        """Send everything due now, pacing per chat and overall; returns how many went out.

        Each chat's messages go out in order. A 429 postpones the rest of that chat's messages
        with it, so the order holds across the retry too.
        """
        queues: dict[str, deque[Outgoing]] = {}
        for outgoing in await asyncio.to_thread(self._prepare):
            queues.setdefault(_chat(outgoing), deque()).append(outgoing)
        sent = 0
        while queues:
            now = time.monotonic()
            ready = [chat for chat in queues if self.limiter.wait(chat, now) == 0]
            if not ready:
                await asyncio.sleep(min(self.limiter.wait(chat, now) for chat in queues))
                continue
            for chat in ready:
                if self.limiter.wait(chat, time.monotonic()) > 0:
                    continue  # the overall rate ran out during this pass
                outgoing = queues[chat].popleft()
                try:
                    message_id = await self._send(outgoing)
                except RetryLater as exc:
                    self.limiter.pause_chat(chat, time.monotonic(), exc.seconds)
                    later = [o.due.delivery_id for o in queues.pop(chat)]
                    await asyncio.to_thread(self._record, outgoing, message_id=None, error=exc, later=later)
                    continue
                except Exception as exc:
                    log.warning("delivery %s failed: %s", outgoing.due.delivery_id, type(exc).__name__)
                    await asyncio.to_thread(self._record, outgoing, message_id=None, error=exc)
                else:
                    self.limiter.sent(chat, time.monotonic())
                    await asyncio.to_thread(self._record, outgoing, message_id=message_id, error=None)
                    sent += 1
                if not queues[chat]:
                    del queues[chat]
        return sent

    async def run_forever(self) -> None:
        """Deliver whenever woken (after each handled message) or every few seconds, until `stop`."""
        while not self.stopping:
            try:
                await self.run_once()
            except Exception:
                log.exception("delivery round failed; trying again shortly")
            timeout = await asyncio.to_thread(self._idle_timeout)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=timeout)
            self.wake.clear()

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


def _chat(outgoing: Outgoing) -> str:
    return f"{outgoing.due.platform}:{outgoing.due.chat_id}"
