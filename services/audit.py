"""The audit trail: who changed what, and when."""

import json
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session

from db.models import AuditEvent

SYSTEM = "system"
_AUDIT = AuditEvent.__table__  # type: ignore[attr-defined]
_ADD = insert(_AUDIT).returning(_AUDIT.c.id)


def record(
    session: Session,
    *,
    district_id: int,
    actor: str,
    action: str,
    entity: str,
    entity_id: int,
    now: datetime,
    **detail: Any,
) -> int:
    """Write an audit event in the current transaction; returns its id.

    One INSERT built once, at once where the change is made (most changes record one: an ORM object
    flushed later cost ~0.5 ms of the unit of work's bookkeeping, the statement ~0.1 ms)."""
    values = {
        "district_id": district_id,
        "actor": actor,
        "action": action,
        "entity": entity,
        "entity_id": entity_id,
        "detail": json.dumps(detail, default=str, sort_keys=True),
        "created_at": now,
    }
    return int(session.execute(_ADD, values).scalar_one())


def said(session: Session, audit_id: int | None) -> str | None:
    """The reason a person typed, as its audit event keeps it (None: no such event, or purged)."""
    event = session.get(AuditEvent, audit_id) if audit_id is not None else None
    if event is None:
        return None
    reason = json.loads(event.detail or "{}").get("reason")
    return reason if isinstance(reason, str) and reason else None
