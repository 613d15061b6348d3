"""Who may get an offer for a request, and in which order.

Eligible: active, speaks the language, offers the mode, matches a gender preference, not absent
during the session, and free then: no other booking overlaps it, with the policy's travel buffer
on either side when either job is in person. Written work has no fixed time and never clashes.

Ranking (best first), each key breaking ties of the one before:
1. estimated travel cost (zero for remote work): the county's money goes furthest;
2. minutes booked in the session's month: the work is spread fairly;
3. least recently served (never served comes first);
4. interpreter id, so the order is total and stable.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, col, select

from db.models import Absence, Interpreter, InterpreterLanguage, Request
from services.billing import estimate
from services.clock import BERLIN
from services.geo import distance_m
from services.policy import Policy
from services.vocabulary import TALK_MODES, Mode, RequestState, UnmetReason, parse_modes

BUSY_STATES = (RequestState.BOOKED.value, RequestState.COMPLETED.value, RequestState.SETTLED.value)
_NEVER = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Candidate:
    interpreter_id: int
    distance_m: int
    travel_cents: int
    pay_cents: int
    minutes_this_month: int
    last_served_at: datetime | None


def rank(candidates: Iterable[Candidate]) -> list[Candidate]:
    """Order candidates best first (see the module docstring)."""
    return sorted(
        candidates,
        key=lambda c: (c.travel_cents, c.minutes_this_month, c.last_served_at or _NEVER, c.interpreter_id),
    )


def request_end(request: Request) -> datetime:
    return request.starts_at + timedelta(minutes=request.duration_minutes)


def speakers(session: Session, district_id: int, language: str) -> list[Interpreter]:
    """Active interpreters of the district who speak `language`, in any mode."""
    query = (
        select(Interpreter)
        .join(InterpreterLanguage, col(InterpreterLanguage.interpreter_id) == col(Interpreter.id))
        .where(
            Interpreter.district_id == district_id,
            col(Interpreter.active).is_(True),
            InterpreterLanguage.language == language,
        )
        .order_by(col(Interpreter.id))
    )
    return list(session.exec(query))


def _absent(session: Session, ids: Sequence[int], start: datetime, end: datetime) -> set[int]:
    query = select(Absence.interpreter_id).where(
        col(Absence.interpreter_id).in_(ids), col(Absence.starts_at) < end, col(Absence.ends_at) > start
    )
    return set(session.exec(query))


def _busy(session: Session, request: Request, mode: Mode, ids: Sequence[int], buffer: timedelta) -> set[int]:
    """Interpreters with another timed booking that overlaps the request (buffered around in-person work)."""
    if mode == Mode.WRITTEN:
        return set()
    start, end = request.starts_at, request_end(request)
    # Widen the window by the largest buffer, then check each hit exactly.
    query = select(Request).where(
        col(Request.interpreter_id).in_(ids),
        col(Request.state).in_(BUSY_STATES),
        Request.mode != Mode.WRITTEN.value,
        col(Request.id) != request.id,
        col(Request.starts_at) < end + buffer,
        col(Request.starts_at) > start - buffer - timedelta(hours=8),
    )
    busy: set[int] = set()
    for other in session.exec(query):
        pad = buffer if Mode.IN_PERSON in (mode, other.mode) else timedelta(0)
        if other.starts_at < end + pad and request_end(other) + pad > start:
            assert other.interpreter_id is not None
            busy.add(other.interpreter_id)
    return busy


def _month_bounds(moment: datetime) -> tuple[datetime, datetime]:
    local = moment.astimezone(BERLIN)
    first = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (first + timedelta(days=32)).replace(day=1)
    return first.astimezone(UTC), following.astimezone(UTC)


def _workload(
    session: Session, request: Request, ids: Sequence[int]
) -> dict[int, tuple[int, datetime | None]]:
    """Per interpreter: minutes booked in the request's month, and when they were last booked."""
    month_start, month_end = _month_bounds(request.starts_at)
    minutes_query = (
        select(Request.interpreter_id, func.sum(Request.duration_minutes))
        .where(
            col(Request.interpreter_id).in_(ids),
            col(Request.state).in_(BUSY_STATES),
            col(Request.starts_at) >= month_start,
            col(Request.starts_at) < month_end,
        )
        .group_by(col(Request.interpreter_id))
    )
    minutes = {iid: int(total or 0) for iid, total in session.exec(minutes_query)}
    last_query = (
        select(Request.interpreter_id, func.max(Request.booked_at))
        .where(col(Request.interpreter_id).in_(ids), col(Request.booked_at).is_not(None))
        .group_by(col(Request.interpreter_id))
    )
    last: dict[int, datetime | None] = {}
    for iid, booked_at in session.exec(last_query):
        assert iid is not None
        # The aggregate bypasses the column type, so SQLite hands back naive text-parsed values.
        last[iid] = booked_at.replace(tzinfo=UTC) if booked_at and booked_at.tzinfo is None else booked_at
    return {iid: (minutes.get(iid, 0), last.get(iid)) for iid in ids}


def _suits(interpreter: Interpreter, request: Request, mode: Mode) -> bool:
    """Works in the mode and matches the gender wish (the language is asked before)."""
    wish = request.gender_preference
    return mode in parse_modes(interpreter.modes) and (wish is None or interpreter.gender == wish)


def candidates(
    session: Session,
    request: Request,
    policy: Policy,
    exclude: Iterable[int] = (),
    *,
    mode: Mode | None = None,
) -> list[Candidate]:
    """Eligible interpreters for the request, ranked best first; `exclude` are skipped (already asked).

    `mode` asks what another mode would give (the summary's suggestion); by default the request's own.
    """
    excluded = set(exclude)
    mode = Mode(request.mode) if mode is None else mode
    pool = [
        i
        for i in speakers(session, request.district_id, request.language)
        if i.id not in excluded and _suits(i, request, mode)
    ]
    ids = [i.id for i in pool if i.id is not None]
    if not ids:
        return []
    start, end = request.starts_at, request_end(request)
    buffer = policy.travel_buffer
    unavailable = _absent(session, ids, start, end) | _busy(session, request, mode, ids, buffer)
    workload = _workload(session, request, ids)
    found = []
    for interpreter in pool:
        assert interpreter.id is not None
        if interpreter.id in unavailable:
            continue
        distance = distance_m(
            interpreter.latitude, interpreter.longitude, request.place_latitude, request.place_longitude
        )
        cost = estimate(mode, request.duration_minutes, distance, policy)
        minutes, last = workload[interpreter.id]
        found.append(Candidate(interpreter.id, distance, cost.travel_cents, cost.total_cents, minutes, last))
    return rank(found)


def why_nobody(session: Session, request: Request) -> UnmetReason:
    """Why `candidates` finds nobody for the request: the language, the mode, the gender wish (when
    it alone stands in the way: the school can drop it), or the time."""
    speaking = speakers(session, request.district_id, request.language)
    if not speaking:
        return UnmetReason.NOT_COVERED
    mode = Mode(request.mode)
    if not any(mode in parse_modes(i.modes) for i in speaking):
        return UnmetReason.NOT_IN_MODE
    if not any(_suits(i, request, mode) for i in speaking):
        return UnmetReason.NOT_GENDER
    return UnmetReason.NOT_FREE


def other_modes(
    session: Session, request: Request, policy: Policy, now: datetime, exclude: Iterable[int] = ()
) -> list[Mode]:
    """The other modes of a talk in which someone (not in `exclude`) could take the request, still
    bookable now.

    A written request has no other mode (a letter is not read out on the phone); a mode whose lead
    time has passed would be refused on sending, so it is not suggested.
    """
    excluded = list(exclude)
    if Mode(request.mode) not in TALK_MODES:
        return []
    return [
        mode
        for mode in TALK_MODES
        if mode != request.mode
        and request.starts_at - now >= policy.lead_time(mode)
        and candidates(session, request, policy, excluded, mode=mode)
    ]
