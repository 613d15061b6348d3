"""The audit trail: who changed what, and when."""

import json
from datetime import datetime
from typing import Any

from sqlmodel import Session

from db.models import AuditEvent

SYSTEM = "system"


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
) -> AuditEvent:
    """Add an audit event to the current transaction (flush the session for its id)."""
    event = AuditEvent(
        district_id=district_id,
        actor=actor,
        action=action,
        entity=entity,
        entity_id=entity_id,
        detail=json.dumps(detail, default=str, sort_keys=True),
        created_at=now,
    )
    session.add(event)
    return event


def said(session: Session, audit_id: int | None) -> str | None:
    """The reason a person typed, as its audit event keeps it (None: no such event, or purged)."""
    event = session.get(AuditEvent, audit_id) if audit_id is not None else None
    if event is None:
        return None
    reason = json.loads(event.detail or "{}").get("reason")
    return reason if isinstance(reason, str) and reason else None
