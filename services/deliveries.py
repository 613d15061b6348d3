"""Deliveries: each outbox message becomes one delivery per chat it must reach, sent and retried by the bot.

A direct answer to an event is a delivery too, written in the event's own transaction with its
rendered text in `body`, so an answer survives a crash between the commit and the send. A
delivery is marked sent only after the platform accepted it; its parts (text pieces, a file)
are counted as they go out, so a retry never repeats one. A failed attempt gets a new due time
(the platform's retry-after, or a growing pause) until its `give_up_at`; then it is given up and
kept, with its error, for the coordinators' eyes. One recipient's trouble never holds up another's.
Due rows are claimed for `LEASE` before they are sent, so two processes never send the same row;
a process that dies lets its lease lapse.

An outbox message's params are cleared ("{}") once none of its deliveries waits any more: each was
sent or given up (a given-up delivery is never tried again; the coordinators' notice about it names
the member, not the message), or it reached nobody. So it is never rendered again. What later
messages need of it is on the delivery rows: the `ref` that lets "offer taken" edit the offer
message, and the platform's message id.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, bindparam, func, insert, or_, update
from sqlalchemy.orm import aliased
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, select

from db.models import ChatIdentity, Delivery, Member, OutboxMessage
from db.upsert import built_for
from services.due import Kind, mark_once
from services.identities import reachable_members
from services.notices import DeliveryFailed, Notice
from services.operator_alerts import also_to_operator, interpreter_unreachable
from services.outbox import notify
from services.vocabulary import Recipient, Role

MAX_ATTEMPTS = 8  # only for rows from before `give_up_at` existed; the others are bounded by time
LONGEST_PAUSE = timedelta(minutes=10)  # between tries after other errors than 429 (doubling up to this)
BATCH = 200
LEASE = timedelta(seconds=60)  # a claimed row waits this long before another sender may take it
NOTICE_PATIENCE = timedelta(hours=24)  # a notification later than this is of no use any more
# Run for every answer and notice (stored, checked for an earlier one waiting, recorded as sent, the
# message it edits): built once and run with parameters (db/upsert.py).
_DELIVERIES = Delivery.__table__  # type: ignore[attr-defined]
_ADD_ANSWER = insert(_DELIVERIES).returning(_DELIVERIES.c.id)
_ADD_NOTICES = insert(_DELIVERIES).returning(
    _DELIVERIES.c.id, _DELIVERIES.c.outbox_id, _DELIVERIES.c.identity_id, _DELIVERIES.c.ref
)
_OUTBOX = OutboxMessage.__table__  # type: ignore[attr-defined]
_MARK_EXPANDED = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("m_id"))
    .values(
        expanded_at=bindparam("m_at", type_=_OUTBOX.c.expanded_at.type),
        # NULL keeps the stored params: only a message nobody reached has them cleared.
        params=func.coalesce(bindparam("m_params", type_=_OUTBOX.c.params.type), _OUTBOX.c.params),
    )
)
_WAITING_BEFORE = (
    select(_DELIVERIES.c.id)
    .where(
        _DELIVERIES.c.identity_id == bindparam("identity_id"),
        _DELIVERIES.c.id < bindparam("delivery_id"),
        _DELIVERIES.c.sent_at.is_(None),
        _DELIVERIES.c.failed_at.is_(None),
    )
    .limit(1)
)
_MARK_SENT = (
    update(_DELIVERIES)
    .where(_DELIVERIES.c.id == bindparam("delivery_id"))
    .values(
        sent_at=bindparam("now"),
        attempts=_DELIVERIES.c.attempts + 1,
        claimed_until=None,
        platform_message_id=func.coalesce(_DELIVERIES.c.platform_message_id, bindparam("message_id")),
        parts_sent=func.coalesce(bindparam("parts", type_=Integer), _DELIVERIES.c.parts_sent),
        body=None,  # what was said is not kept once it arrived
        attachment=None,
    )
    .returning(_DELIVERIES.c.outbox_id)
)
_FIRST_MESSAGE = (
    select(_DELIVERIES.c.platform_message_id)
    .where(
        _DELIVERIES.c.identity_id == bindparam("identity_id"),
        _DELIVERIES.c.ref == bindparam("ref"),
        _DELIVERIES.c.platform_message_id.is_not(None),
        _DELIVERIES.c.id != bindparam("delivery_id"),
    )
    .order_by(_DELIVERIES.c.id)
    .limit(1)
)
ANSWER_PATIENCE = timedelta(hours=1)  # an answer later than this would confuse more than help
FILE_WAIT = timedelta(minutes=5)  # an answer whose file is still being drawn waits this long at most


@dataclass(frozen=True)
class Due:
    """A delivery that is due, with everything needed to render and send it."""

    delivery_id: int
    member_id: int
    role: str
    template: str | None  # None: a direct answer, already rendered in `body`
    params: dict[str, Any]
    platform: str
    chat_id: str
    locale: str | None
    ref: str | None
    attempts: int
    body: str | None = None
    attachment: bytes | None = None
    parts_sent: int = 0


def ref_of(template: str, params: dict[str, Any]) -> str | None:
    """Messages about one offer share a ref, so 'taken' can edit the offer message itself; so do the
    interpreter's messages about one change of a booking."""
    if template.startswith("offer.") and "offer_id" in params:
        return f"offer:{params['offer_id']}"
    if template.startswith("change.") and "change_id" in params:
        return f"change:{params['change_id']}"
    return None


def expand(session: Session, *, now: datetime, limit: int = BATCH) -> int:
    """Turn new outbox messages into deliveries; returns how many.

    Each member gets it in the chat they last wrote from, or in every linked chat when they
    chose so (/notify).
    """
    query = (
        select(OutboxMessage)
        .where(col(OutboxMessage.expanded_at).is_(None))
        .order_by(col(OutboxMessage.id))
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)  # another process expands the rest
    return len(_expand(session, list(session.exec(query).all()), now))


@dataclass(frozen=True)
class Expanded:
    """A delivery just written for an outbox message."""

    id: int
    outbox_id: int
    identity_id: int
    ref: str | None


def _expand(session: Session, messages: list[OutboxMessage], now: datetime) -> list[Expanded]:
    """The deliveries of `messages` (see `expand`), written with one INSERT ... RETURNING."""
    rows: list[dict[str, Any]] = []
    expanded: list[dict[str, Any]] = []
    for message in messages:
        assert message.id is not None
        params = json.loads(message.params)
        members = reachable_members(
            session,
            Recipient(message.recipient_type),
            message.recipient_id,
            message.district_id,
            deactivated_too=message.template == Notice.MEMBER_DEACTIVATED.value,
        )
        reached = 0
        for member, reachable in members:
            for identity in reachable if member.notify_everywhere else reachable[:1]:
                reached += 1
                rows.append(
                    {
                        "outbox_id": message.id,
                        "identity_id": identity.id,
                        "ref": ref_of(message.template, params),
                        "due_at": now,
                        "give_up_at": now + NOTICE_PATIENCE,
                        "parts_sent": 0,
                        "attempts": 0,
                    }
                )
        if not reached and message.recipient_type == Recipient.INTERPRETER.value:
            # Matching does not look at chats: an offer to an interpreter with none reaches nobody.
            interpreter_unreachable(
                session, district_id=message.district_id, interpreter_id=message.recipient_id, now=now
            )
        # Nobody reached: nobody will read it.
        expanded.append({"m_id": message.id, "m_at": now, "m_params": None if reached else CLEARED})
    if expanded:
        # One executemany and the loaded rows told, instead of the ORM's flush of each changed row.
        session.execute(_MARK_EXPANDED, expanded)
        for message, values in zip(messages, expanded, strict=True):
            set_committed_value(message, "expanded_at", now)
            if values["m_params"] is not None:
                set_committed_value(message, "params", values["m_params"])
    session.flush()  # what else the expansion wrote (an unreachable interpreter's notice)
    if not rows:
        return []
    # One multi-row INSERT; the rows come back in no promised order: by id, the order written.
    written = sorted(session.execute(_ADD_NOTICES, rows).all(), key=lambda row: int(row.id))
    return [Expanded(row.id, row.outbox_id, row.identity_id, row.ref) for row in written]


def _unexpanded_to(dialect: str) -> Any:
    """`expand_own`'s read: the recipient's notifications not yet expanded (built once, db/upsert.py)."""
    query = (
        select(OutboxMessage)
        .where(
            col(OutboxMessage.expanded_at).is_(None),
            col(OutboxMessage.district_id) == bindparam("district_id"),
            col(OutboxMessage.recipient_type) == bindparam("recipient_type"),
            col(OutboxMessage.recipient_id) == bindparam("recipient_id"),
        )
        .order_by(col(OutboxMessage.id))
        .limit(BATCH)
    )
    return query.with_for_update(skip_locked=True) if dialect == "postgresql" else query


def expand_own(session: Session, *, member: Member, identity: ChatIdentity, now: datetime) -> list[Due]:
    """Expand, in an event's own transaction, the new notifications to the member who sent it (an
    interpreter's confirmation of the job they accepted); returns those of their deliveries that go
    to the event's chat, so they can go out at once, like the event's answers.

    The rows are written like `expand` writes them; nothing is claimed, so whatever is not sent
    at once is found in the outbox as usual.
    """
    assert member.id is not None
    mine = {
        Role.INTERPRETER.value: (Recipient.INTERPRETER, member.interpreter_id),
        Role.SCHOOL.value: (Recipient.SCHOOL, member.school_id),
        Role.COORDINATOR.value: (Recipient.COORDINATORS, member.district_id),
    }.get(member.role)
    if mine is None or mine[1] is None:
        return []
    recipient, recipient_id = mine
    wanted = {
        "district_id": member.district_id,
        "recipient_type": recipient.value,
        "recipient_id": recipient_id,
    }
    messages = {m.id: m for m in session.exec(built_for(session, _unexpanded_to), params=wanted).all()}
    if not messages:
        return []
    found = []
    for delivery in _expand(session, list(messages.values()), now):
        if delivery.identity_id != identity.id:
            continue
        message = messages[delivery.outbox_id]
        found.append(
            Due(
                delivery_id=delivery.id,
                member_id=member.id,
                role=member.role,
                template=message.template,
                params=json.loads(message.params),
                platform=identity.platform,
                chat_id=identity.chat_id,
                locale=member.locale,
                ref=delivery.ref,
                attempts=0,
            )
        )
    return found


def add_answer(
    session: Session,
    *,
    identity_id: int,
    body: str,
    attachment: bytes | None = None,
    now: datetime,
    file_pending: bool = False,
) -> int:
    """Store a direct answer in the event's transaction; returns its delivery id.

    An answer whose file is drawn after the commit (`attach_file`) waits for it, but not for
    ever: if the process dies meanwhile, the text goes out after `FILE_WAIT` without the file.
    """
    values = {
        "outbox_id": None,
        "identity_id": identity_id,
        "body": body,
        "attachment": attachment,
        "parts_sent": 0,
        "attempts": 0,
        "due_at": now + FILE_WAIT if file_pending else now,
        "give_up_at": now + ANSWER_PATIENCE,
    }
    return int(session.execute(_ADD_ANSWER, values).scalar_one())


def attach_file(session: Session, delivery_id: int, *, body: str, data: bytes | None, now: datetime) -> None:
    """Give a waiting answer its drawn file (or its note that none could be made); it is due at once."""
    delivery = session.get(Delivery, delivery_id)
    if delivery is None or delivery.sent_at is not None:
        return
    delivery.body = body
    delivery.attachment = data
    delivery.due_at = now
    session.add(delivery)


def due(session: Session, *, platforms: list[str], now: datetime, limit: int = BATCH) -> list[Due]:
    """Claim the deliveries to the given platforms whose time has come, oldest first.

    A row claimed by another sender (its lease running) is skipped; on PostgreSQL the rows are
    locked with SKIP LOCKED while they are claimed, so two processes never take the same row.
    """
    earlier = aliased(Delivery)
    waiting_before = (
        select(earlier.id)
        .where(
            earlier.identity_id == Delivery.identity_id,
            col(earlier.id) < col(Delivery.id),
            col(earlier.sent_at).is_(None),
            col(earlier.failed_at).is_(None),
            col(earlier.due_at) > now,
        )
        .exists()
    )
    query = (
        select(Delivery, ChatIdentity, Member)
        .join(ChatIdentity, col(ChatIdentity.id) == Delivery.identity_id)
        .join(Member, col(Member.id) == ChatIdentity.member_id)
        .where(
            col(Delivery.sent_at).is_(None),
            col(Delivery.failed_at).is_(None),
            col(Delivery.due_at) <= now,
            or_(col(Delivery.claimed_until).is_(None), col(Delivery.claimed_until) <= now),
            col(ChatIdentity.platform).in_(platforms),
            ~waiting_before,  # a chat's messages keep their order across a retry's wait
        )
        .order_by(col(Delivery.id))
        .limit(limit)
    )
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=Delivery)
    rows = session.exec(query).all()
    outbox_ids = {d.outbox_id for d, _, _ in rows if d.outbox_id is not None}
    messages = {
        m.id: m for m in session.exec(select(OutboxMessage).where(col(OutboxMessage.id).in_(outbox_ids)))
    }
    found = []
    for delivery, identity, member in rows:
        delivery.claimed_until = now + LEASE
        session.add(delivery)
        message = messages.get(delivery.outbox_id) if delivery.outbox_id is not None else None
        found.append(
            Due(
                delivery_id=delivery.id or 0,
                member_id=member.id or 0,
                role=member.role,
                template=message.template if message else None,
                params=json.loads(message.params) if message else {},
                platform=identity.platform,
                chat_id=identity.chat_id,
                locale=member.locale,
                ref=delivery.ref,
                attempts=delivery.attempts,
                body=delivery.body,
                attachment=delivery.attachment,
                parts_sent=delivery.parts_sent,
            )
        )
    session.flush()
    return found


def mark_part(session: Session, delivery_id: int, *, parts_sent: int, message_id: str | None) -> None:
    """Count the parts of a delivery that have gone out, so a retry starts after them."""
    delivery = session.get(Delivery, delivery_id)
    if delivery is None:  # erased or purged while it was on its way (see `mark_sent`)
        return
    delivery.parts_sent = parts_sent
    if message_id is not None and delivery.platform_message_id is None:
        delivery.platform_message_id = message_id
    session.add(delivery)


def first_message_id(
    session: Session, delivery_id: int, *, identity_id: int | None = None, ref: str | None = None
) -> str | None:
    """The platform id of the first message sent to the same chat under the same ref, if any
    (`identity_id` and `ref`: the delivery's, when the caller has them, so it is not read again)."""
    if identity_id is None or ref is None:
        delivery = session.get(Delivery, delivery_id)
        if delivery is None or delivery.ref is None:
            return None
        identity_id, ref = delivery.identity_id, delivery.ref
    found = session.execute(
        _FIRST_MESSAGE, {"identity_id": identity_id, "ref": ref, "delivery_id": delivery_id}
    )
    return found.scalar()


def mark_sent(
    session: Session,
    delivery_id: int,
    *,
    message_id: str | None,
    now: datetime,
    parts_sent: int | None = None,
) -> bool:
    """Record a delivery as sent (with `parts_sent`, its count of parts too); False when its row is
    gone meanwhile.

    A person's erasure (and retention, with a deactivated member's chat links) deletes the deliveries
    to their chats, also one a sender has claimed and is sending: there is nothing left to record then.
    An answer is recorded with this one statement; it runs right after each answer is sent, beside
    the next event's handling.
    """
    values = {"delivery_id": delivery_id, "now": now, "message_id": message_id, "parts": parts_sent}
    recorded = session.execute(_MARK_SENT, values).first()
    if recorded is None:
        return False
    outbox_id = recorded[0]
    if outbox_id is None:
        return True
    # One read answers both questions: is the message sent to everyone, and does any delivery still wait?
    unsent = session.exec(
        select(Delivery.failed_at).where(Delivery.outbox_id == outbox_id, col(Delivery.sent_at).is_(None))
    ).all()
    message = session.get(OutboxMessage, outbox_id)
    assert message is not None
    if not unsent:
        message.sent_at = now
        message.attempts += 1
    if all(failed_at is not None for failed_at in unsent) and message.params != CLEARED:
        message.params = CLEARED  # as in _forget_when_done: nothing waits, so nothing renders it again
    session.add(message)
    return True


CLEARED = "{}"  # the params of a message nobody will read again


def _forget_when_done(session: Session, outbox_id: int) -> None:
    """Clear a message's params once no delivery of it waits (sent or given up): nothing renders it
    again, and what it said (names, figures) is not kept."""
    session.flush()
    waiting = select(Delivery.id).where(
        Delivery.outbox_id == outbox_id, col(Delivery.sent_at).is_(None), col(Delivery.failed_at).is_(None)
    )
    if session.exec(waiting).first() is None:
        message = session.get(OutboxMessage, outbox_id)
        if message is not None and message.params != CLEARED:
            message.params = CLEARED
            session.add(message)


def mark_retry(
    session: Session, delivery_id: int, *, error: str, now: datetime, retry_after: timedelta | None = None
) -> bool:
    """Schedule another attempt (after `retry_after`, else a growing pause); False once given up (or
    its row is gone, see `mark_sent`).

    Retrying ends at the delivery's `give_up_at`: a 429 counts as an attempt like any error,
    and however many there are, a delivery is never retried for longer than its patience.
    """
    delivery = session.get(Delivery, delivery_id)
    if delivery is None:
        return False
    delivery.attempts += 1
    delivery.last_error = error[:200]
    delivery.claimed_until = None
    growing = min(timedelta(seconds=2 ** min(delivery.attempts, 10)), LONGEST_PAUSE)
    pause = retry_after if retry_after is not None else growing
    too_late = delivery.give_up_at is not None and now + pause > delivery.give_up_at
    too_often = delivery.give_up_at is None and retry_after is None and delivery.attempts >= MAX_ATTEMPTS
    if too_late or too_often:
        delivery.failed_at = now
        delivery.body, delivery.attachment = None, None
        _tell_coordinators(session, delivery, cause="kept_failing", now=now)
    else:
        delivery.due_at = now + pause
    session.add(delivery)
    if delivery.failed_at is not None and delivery.outbox_id is not None:
        _forget_when_done(session, delivery.outbox_id)
    return delivery.failed_at is None


def mark_failed(session: Session, delivery_id: int, *, error: str, now: datetime) -> None:
    """Give up at once (the chat is gone, the bot was blocked): retrying cannot help."""
    delivery = session.get(Delivery, delivery_id)
    if delivery is None:  # its row is gone (see `mark_sent`)
        return
    delivery.attempts += 1
    delivery.failed_at = now
    delivery.claimed_until = None
    delivery.last_error = error[:200]
    delivery.body, delivery.attachment = None, None
    session.add(delivery)
    _tell_coordinators(session, delivery, cause="gone", now=now)
    if delivery.outbox_id is not None:
        _forget_when_done(session, delivery.outbox_id)


def _tell_coordinators(session: Session, delivery: Delivery, *, cause: str, now: datetime) -> None:
    """A notification given up: the coordinators (and the operator contact) hear whom it did not reach,
    once a day per person.

    Answers to a person's own message are left out (they notice a missing answer themselves), and
    so is this very notice when it fails, so a coordinator's broken chat cannot start a loop.
    """
    if delivery.outbox_id is None:
        return
    message = session.get(OutboxMessage, delivery.outbox_id)
    identity = session.get(ChatIdentity, delivery.identity_id)
    if message is None or identity is None or message.template == DeliveryFailed.notice.value:
        return
    member = session.get(Member, identity.member_id)
    assert member is not None
    assert member.id is not None
    if not mark_once(
        session,
        district_id=member.district_id,
        kind=Kind.DELIVERY_FAILED,
        subject_id=member.id,
        variant=now.date().isoformat(),
        now=now,
    ):
        return
    notice = DeliveryFailed(member_id=member.id, cause=cause)
    notify(
        session,
        district_id=member.district_id,
        recipient=Recipient.COORDINATORS,
        recipient_id=member.district_id,
        notice=notice,
        now=now,
    )
    also_to_operator(session, member.district_id, notice, now)


def next_due_at(session: Session, platforms: list[str]) -> datetime | None:
    """When the next retry to these platforms becomes due (None: nothing waits)."""
    query = (
        select(Delivery.due_at)
        .join(ChatIdentity, col(ChatIdentity.id) == Delivery.identity_id)
        .where(
            col(Delivery.sent_at).is_(None),
            col(Delivery.failed_at).is_(None),
            col(ChatIdentity.platform).in_(platforms),
        )
    )
    return session.exec(query.order_by(col(Delivery.due_at))).first()


def release(session: Session, delivery_ids: Sequence[int]) -> None:
    """Let go of claimed rows that will not be sent now (the process stops, or the chat waits for a retry)."""
    for delivery_id in delivery_ids:
        delivery = session.get(Delivery, delivery_id)
        if delivery is not None and delivery.sent_at is None:
            delivery.claimed_until = None
            session.add(delivery)


def release_all(session: Session) -> int:
    """Let go of every claim: the process that takes the lead is the only sender, so claims left by
    one that died (kill -9, power) are void; waiting for their lease would hold answers up."""
    result = session.exec(
        update(Delivery)
        .where(col(Delivery.sent_at).is_(None), col(Delivery.claimed_until).is_not(None))
        .values(claimed_until=None)
    )
    return int(result.rowcount or 0)


def waiting_before(session: Session, identity_id: int, delivery_id: int) -> bool:
    """Whether an earlier message to the same chat is still unsent (waiting for a retry, or queued)."""
    return (
        session.execute(_WAITING_BEFORE, {"identity_id": identity_id, "delivery_id": delivery_id}).first()
        is not None
    )
