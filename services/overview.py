"""Read-only views for the chat: a school's requests, an interpreter's jobs, what needs a coordinator."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from db.models import Closeout, Interpreter, InterpreterLanguage, Request, UnmetDemand
from services.vocabulary import CloseoutState, RequestState, UnmetReason

OPEN_STATES = (
    RequestState.REQUESTED.value,
    RequestState.AWAITING_APPROVAL.value,
    RequestState.OFFERED.value,
    RequestState.BOOKED.value,
    RequestState.UNFILLED.value,
)
NEEDS_COORDINATOR = (RequestState.AWAITING_APPROVAL.value, RequestState.UNFILLED.value)


def most_requested(session: Session, school_id: int, limit: int) -> list[str]:
    """The school's languages, most requested first."""
    count = func.count(col(Request.id))
    query = (
        select(Request.language, count)
        .where(Request.school_id == school_id)
        .group_by(col(Request.language))
        .order_by(count.desc(), col(Request.language))
        .limit(limit)
    )
    return [language for language, _ in session.exec(query)]


def pool_languages(session: Session, district_id: int) -> dict[str, list[Interpreter]]:
    """Each language the active pool covers, with who speaks it; most widely spoken first."""
    query = (
        select(InterpreterLanguage.language, Interpreter)
        .join(Interpreter, col(Interpreter.id) == InterpreterLanguage.interpreter_id)
        .where(Interpreter.district_id == district_id, col(Interpreter.active).is_(True))
        .order_by(col(InterpreterLanguage.language), col(Interpreter.name))
    )
    covered: dict[str, list[Interpreter]] = {}
    for language, interpreter in session.exec(query):
        covered.setdefault(language, []).append(interpreter)
    return dict(sorted(covered.items(), key=lambda item: (-len(item[1]), item[0])))


def uncovered_demand(session: Session, district_id: int) -> list[tuple[str, int]]:
    """Languages asked for that nobody in the pool speaks, with how often; most asked first."""
    count = func.count(col(UnmetDemand.id))
    query = (
        select(UnmetDemand.language, count)
        .where(UnmetDemand.district_id == district_id, UnmetDemand.reason == UnmetReason.NOT_COVERED.value)
        .group_by(col(UnmetDemand.language))
        .order_by(count.desc(), col(UnmetDemand.language))
    )
    return [(language, n) for language, n in session.exec(query)]


def school_requests(
    session: Session, school_id: int, *, now: datetime
) -> tuple[list[Request], list[Request]]:
    """The school's open requests (soonest first), and all the others: finished, newest first."""
    base = select(Request).where(Request.school_id == school_id)
    open_ = session.exec(
        base.where(col(Request.state).in_(OPEN_STATES), Request.starts_at >= now).order_by(
            col(Request.starts_at)
        )
    ).all()
    done = session.exec(
        base.where(col(Request.id).not_in([r.id for r in open_] or [0])).order_by(
            col(Request.starts_at).desc(), col(Request.id).desc()
        )
    ).all()
    return list(open_), list(done)


def interpreter_jobs(session: Session, interpreter_id: int) -> Sequence[Request]:
    """Booked jobs (soonest first) and finished ones not yet decided, for the interpreter's overview."""
    query = (
        select(Request)
        .where(
            Request.interpreter_id == interpreter_id,
            col(Request.state).in_([RequestState.BOOKED.value, RequestState.COMPLETED.value]),
        )
        .order_by(col(Request.starts_at))
    )
    return session.exec(query).all()


def reportable(session: Session, interpreter_id: int, now: datetime) -> list[Request]:
    """Jobs that have begun and may be reported (or the report corrected until the school decides)."""
    jobs = []
    for request in interpreter_jobs(session, interpreter_id):
        closeout = session.exec(select(Closeout).where(Closeout.request_id == request.id)).first()
        decided = closeout is not None and closeout.state not in (
            CloseoutState.REPORTED.value,
            CloseoutState.DISPUTED.value,
        )
        if request.starts_at <= now and not decided:
            jobs.append(request)
    return jobs


def waiting_for_coordinator(session: Session, district_id: int) -> Sequence[Request]:
    query = (
        select(Request)
        .where(Request.district_id == district_id, col(Request.state).in_(NEEDS_COORDINATOR))
        .order_by(col(Request.starts_at))
    )
    return session.exec(query).all()


def in_progress(session: Session, district_id: int, now: datetime) -> Sequence[Request]:
    """Requests still looking for an interpreter."""
    query = (
        select(Request)
        .where(
            Request.district_id == district_id,
            col(Request.state).in_([RequestState.REQUESTED.value, RequestState.OFFERED.value]),
            Request.starts_at >= now,
        )
        .order_by(col(Request.starts_at))
    )
    return session.exec(query).all()


def disputed(session: Session, district_id: int) -> list[tuple[Request, Closeout]]:
    """Reports the school disputed, or that wait for a coordinator's correction."""
    query = (
        select(Request, Closeout)
        .join(Closeout, col(Closeout.request_id) == Request.id)
        .where(Request.district_id == district_id, Closeout.state == CloseoutState.DISPUTED.value)
        .order_by(col(Request.starts_at))
    )
    return [(r, c) for r, c in session.exec(query)]
