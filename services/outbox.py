"""Notifications: services write them here, in the same transaction as the change; the bot delivers."""

import json
from datetime import datetime

from sqlalchemy import insert
from sqlmodel import Session, col, select

from db.models import OutboxMessage, Request
from services.notices import NoticeParams, as_json
from services.vocabulary import Recipient

WROTE = "outbox.wrote"  # session.info: this transaction queued a notification
_ADD_MESSAGES = insert(OutboxMessage.__table__)  # type: ignore[attr-defined]  # built once: ~0.4 ms a build


def wrote_any(session: Session) -> bool:
    """Whether this session queued a notification (the sender then has something new to read)."""
    return bool(session.info.get(WROTE))


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
    session.info[WROTE] = True
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


def notify_all(
    session: Session,
    *,
    district_id: int,
    notices: list[tuple[Recipient, int, NoticeParams]],
    now: datetime,
) -> None:
    """Queue several notifications (recipient, recipient id, notice) as one batched insert, in order.

    What the session holds unwritten goes first, so the outbox keeps the order of the calls. The rows
    go as one executemany of a statement compiled once: a multi-row VALUES is compiled anew for every
    call (49 taken notices: 11 ms on SQLite, 17 ms on PostgreSQL, against 1 and 3 ms).
    """
    if not notices:
        return
    for recipient, _, notice in notices:
        if recipient not in notice.recipients:
            raise ValueError(f"{notice.notice.value!r} is not meant for {recipient.value}")
    session.flush()
    rows = [
        {
            "district_id": district_id,
            "recipient_type": recipient.value,
            "recipient_id": recipient_id,
            "template": notice.notice.value,
            "params": json.dumps(as_json(notice), sort_keys=True),
            "created_at": now,
            "attempts": 0,
        }
        for recipient, recipient_id, notice in notices
    ]
    session.info[WROTE] = True
    session.execute(_ADD_MESSAGES, rows)


def tell(
    session: Session,
    request: Request,
    recipient: Recipient,
    *,
    notice: NoticeParams,
    now: datetime,
    interpreter_id: int | None = None,
) -> None:
    """Queue a notification about `request` to its school, its district's coordinators, or an
    interpreter (`interpreter_id`, else the one booked)."""
    recipient_id = {
        Recipient.SCHOOL: request.school_id,
        Recipient.COORDINATORS: request.district_id,
        Recipient.INTERPRETER: request.interpreter_id if interpreter_id is None else interpreter_id,
    }[recipient]
    assert recipient_id is not None, "an interpreter's notification needs the interpreter"
    notify(
        session,
        district_id=request.district_id,
        recipient=recipient,
        recipient_id=recipient_id,
        notice=notice,
        now=now,
    )


def pending(session: Session, district_id: int) -> list[OutboxMessage]:
    """Undelivered notifications of a district, oldest first."""
    query = (
        select(OutboxMessage)
        .where(OutboxMessage.district_id == district_id, col(OutboxMessage.sent_at).is_(None))
        .order_by(col(OutboxMessage.id))
    )
    return list(session.exec(query))
