"""Notifications: services write them here, in the same transaction as the change; the bot delivers."""

import json
from datetime import datetime

from sqlmodel import Session, col, select

from db.models import OutboxMessage
from services.notices import NoticeParams, as_json
from services.vocabulary import Recipient


def notify(
    session: Session,
    *,
    district_id: int,
    recipient: Recipient,
    recipient_id: int,
    notice: NoticeParams,
    now: datetime,
) -> None:
    """Queue one notification: its key from the params' class, the params as JSON (`notices.as_json`)."""
    if recipient not in notice.recipients:
        raise ValueError(f"{notice.notice.value!r} is not meant for {recipient.value}")
    session.add(
        OutboxMessage(
            district_id=district_id,
            recipient_type=recipient.value,
            recipient_id=recipient_id,
            template=notice.notice.value,
            params=json.dumps(as_json(notice), sort_keys=True),
            created_at=now,
        )
    )


def pending(session: Session, district_id: int) -> list[OutboxMessage]:
    """Undelivered notifications of a district, oldest first."""
    query = (
        select(OutboxMessage)
        .where(OutboxMessage.district_id == district_id, col(OutboxMessage.sent_at).is_(None))
        .order_by(col(OutboxMessage.id))
    )
    return list(session.exec(query))
