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
    said: str | None = None,
) -> int:
    """Change the request's state, or raise IllegalTransition and change nothing.

    `reason` is a short code kept with the request; `said`, what a person typed as the reason, goes
    only into the audit event (its id returned), where a notice reads it and the retention purges it."""
    source = RequestState(request.state)
    check_transition(source, target)
    request.state = target.value
    request.state_reason = reason
    request.updated_at = now
    session.add(request)
    assert request.id is not None
    return record(
        session,
        district_id=request.district_id,
        actor=actor,
        action=f"request.{target.value}",
        entity="request",
        entity_id=request.id,
        now=now,
        source=source.value,
        reason=reason if said is None else said,
    )
