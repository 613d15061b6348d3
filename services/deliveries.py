"""Deliveries: each outbox message becomes one delivery per chat it must reach, sent and retried by the bot.

A delivery is marked sent only after the platform accepted it. A failed attempt gets a new due
time (the platform's retry-after, or a growing pause); after `MAX_ATTEMPTS` it is given up and
kept, with its error, for the coordinator's eyes. One recipient's trouble never holds up another's.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from db.models import ChatIdentity, Delivery, Member, OutboxMessage
from services.identities import identities_of, members_for
from services.vocabulary import Recipient

MAX_ATTEMPTS = 8
BATCH = 200


@dataclass(frozen=True)
class Due:
    """A delivery that is due, with everything needed to render and send it."""

    delivery_id: int
    member_id: int
    role: str
    template: str
    params: dict[str, Any]
    platform: str
    chat_id: str
    locale: str | None
    ref: str | None
    attempts: int


def ref_of(template: str, params: dict[str, Any]) -> str | None:
    """Messages about one offer share a ref, so 'taken' can edit the offer message itself."""
    if template.startswith("offer.") and "offer_id" in params:
        return f"offer:{params['offer_id']}"
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
    created = 0
    for message in session.exec(query).all():
        assert message.id is not None
        params = json.loads(message.params)
        members = members_for(
            session, Recipient(message.recipient_type), message.recipient_id, message.district_id
        )
        for member in members:
            assert member.id is not None
            reachable = identities_of(session, member.id)
            for identity in reachable if member.notify_everywhere else reachable[:1]:
                assert identity.id is not None
                session.add(
                    Delivery(
                        outbox_id=message.id,
                        identity_id=identity.id,
                        ref=ref_of(message.template, params),
                        due_at=now,
                    )
                )
                created += 1
        message.expanded_at = now
        session.add(message)
    session.flush()
    return created


def due(session: Session, *, platforms: list[str], now: datetime, limit: int = BATCH) -> list[Due]:
    """Deliveries to the given platforms whose time has come, oldest first."""
    query = (
        select(Delivery, OutboxMessage, ChatIdentity, Member)
        .join(OutboxMessage, col(OutboxMessage.id) == Delivery.outbox_id)
        .join(ChatIdentity, col(ChatIdentity.id) == Delivery.identity_id)
        .join(Member, col(Member.id) == ChatIdentity.member_id)
        .where(
            col(Delivery.sent_at).is_(None),
            col(Delivery.failed_at).is_(None),
            col(Delivery.due_at) <= now,
            col(ChatIdentity.platform).in_(platforms),
        )
        .order_by(col(Delivery.id))
        .limit(limit)
    )
    return [
        Due(
            delivery_id=delivery.id or 0,
            member_id=member.id or 0,
            role=member.role,
            template=message.template,
            params=json.loads(message.params),
            platform=identity.platform,
            chat_id=identity.chat_id,
            locale=member.locale,
            ref=delivery.ref,
            attempts=delivery.attempts,
        )
        for delivery, message, identity, member in session.exec(query).all()
    ]


def first_message_id(session: Session, delivery_id: int) -> str | None:
    """The platform id of the first message sent to the same chat under the same ref, if any."""
    delivery = session.get(Delivery, delivery_id)
    if delivery is None or delivery.ref is None:
        return None
    query = (
        select(Delivery.platform_message_id)
        .where(
            Delivery.identity_id == delivery.identity_id,
            Delivery.ref == delivery.ref,
            col(Delivery.platform_message_id).is_not(None),
            col(Delivery.id) != delivery_id,
        )
        .order_by(col(Delivery.id))
    )
    return session.exec(query).first()


def mark_sent(session: Session, delivery_id: int, *, message_id: str | None, now: datetime) -> None:
    delivery = session.get(Delivery, delivery_id)
    assert delivery is not None
    delivery.sent_at = now
    delivery.attempts += 1
    delivery.platform_message_id = message_id
    session.add(delivery)
    session.flush()
    unsent = session.exec(
        select(Delivery.id).where(Delivery.outbox_id == delivery.outbox_id, col(Delivery.sent_at).is_(None))
    ).first()
    if unsent is None:
        message = session.get(OutboxMessage, delivery.outbox_id)
        assert message is not None
        message.sent_at = now
        message.attempts += 1
        session.add(message)


def mark_retry(
    session: Session, delivery_id: int, *, error: str, now: datetime, retry_after: timedelta | None = None
) -> bool:
    """Schedule another attempt (after `retry_after`, else a growing pause); False once given up."""
    delivery = session.get(Delivery, delivery_id)
    assert delivery is not None
    delivery.attempts += 1
    delivery.last_error = error[:200]
    if retry_after is None and delivery.attempts >= MAX_ATTEMPTS:
        delivery.failed_at = now
    else:
        pause = retry_after if retry_after is not None else timedelta(seconds=2 ** min(delivery.attempts, 10))
        delivery.due_at = now + pause
    session.add(delivery)
    return delivery.failed_at is None


def mark_failed(session: Session, delivery_id: int, *, error: str, now: datetime) -> None:
    """Give up at once (the chat is gone, the bot was blocked): retrying cannot help."""
    delivery = session.get(Delivery, delivery_id)
    assert delivery is not None
    delivery.attempts += 1
    delivery.failed_at = now
    delivery.last_error = error[:200]
    session.add(delivery)


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


def postpone(session: Session, delivery_ids: Sequence[int], *, until: datetime) -> None:
    """Hold later messages to a chat behind one that must be retried, so their order holds."""
    for delivery_id in delivery_ids:
        delivery = session.get(Delivery, delivery_id)
        assert delivery is not None
        delivery.due_at = max(delivery.due_at, until)
        session.add(delivery)
