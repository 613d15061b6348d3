"""Notifications: services write them here, in the same transaction as the change; the bot delivers."""

import json
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from db.models import OutboxMessage
from services.vocabulary import Recipient


def notify(
    session: Session,
    *,
    district_id: int,
    recipient: Recipient,
    recipient_id: int,
    template: str,
    now: datetime,
    **params: Any,
) -> None:
    """Queue one notification; datetimes in `params` are stored as ISO text in UTC."""
    plain = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in params.items()}
    session.add(
        OutboxMessage(
            district_id=district_id,
            recipient_type=recipient.value,
            recipient_id=recipient_id,
            template=template,
            params=json.dumps(plain, sort_keys=True),
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
