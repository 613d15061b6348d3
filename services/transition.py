"""Moving a request to its next state: the lifecycle check, the timestamps and the audit, in one place."""

from datetime import datetime

from sqlmodel import Session

from db.models import Request
from services.audit import record
from services.lifecycle import check_transition
from services.vocabulary import RequestState


def move(
    session: Session,
    request: Request,
    target: RequestState,
    *,
    actor: str,
    now: datetime,
    reason: str | None = None,
) -> None:
    """Change the request's state, or raise IllegalTransition and change nothing."""
    source = RequestState(request.state)
    check_transition(source, target)
    request.state = target.value
    request.state_reason = reason
    request.updated_at = now
    session.add(request)
    assert request.id is not None
    record(
        session,
        district_id=request.district_id,
        actor=actor,
        action=f"request.{target.value}",
        entity="request",
        entity_id=request.id,
        now=now,
        source=source.value,
        reason=reason,
    )
