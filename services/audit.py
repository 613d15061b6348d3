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
) -> None:
    """Add an audit event to the current transaction."""
    session.add(
        AuditEvent(
            district_id=district_id,
            actor=actor,
            action=action,
            entity=entity,
            entity_id=entity_id,
            detail=json.dumps(detail, default=str, sort_keys=True),
            created_at=now,
        )
    )
