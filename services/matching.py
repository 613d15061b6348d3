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
from functools import lru_cache

from sqlalchemy import case, func
from sqlalchemy import select as sa_select
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


def covered(session: Session, district_id: int, language: str) -> bool:
    """Whether any active interpreter of the district speaks `language` (without loading them)."""
    query = (
        select(Interpreter.id)
        .join(InterpreterLanguage, col(InterpreterLanguage.interpreter_id) == col(Interpreter.id))
        .where(
            Interpreter.district_id == district_id,
            col(Interpreter.active).is_(True),
            InterpreterLanguage.language == language,
        )
        .limit(1)
    )
    return session.exec(query).first() is not None


@lru_cache(maxsize=64)
def _modes(text: str) -> frozenset[Mode]:
    return parse_modes(text)


def _suitable(
    session: Session, request: Request, mode: Mode, excluded: set[int]
) -> list[tuple[int, float, float]]:
    """(id, latitude, longitude) of the speakers who work in the mode and match the gender wish,
    by id; read as plain rows, since matching needs three columns of some thousand people."""
    query = (
        select(Interpreter.id, Interpreter.latitude, Interpreter.longitude, Interpreter.modes)
        .join(InterpreterLanguage, col(InterpreterLanguage.interpreter_id) == col(Interpreter.id))
        .where(
            Interpreter.district_id == request.district_id,
            col(Interpreter.active).is_(True),
            InterpreterLanguage.language == request.language,
        )
        .order_by(col(Interpreter.id))
    )
    if request.gender_preference is not None:
        query = query.where(Interpreter.gender == request.gender_preference)
    return [
        (iid, lat, lon)
        for iid, lat, lon, modes in session.exec(query)
        if iid is not None and iid not in excluded and mode in _modes(modes)
    ]


def _absent(session: Session, district_id: int, start: datetime, end: datetime) -> set[int]:
    """The district's interpreters away at some point of the session."""
    query = (
        select(Absence.interpreter_id)
        .join(Interpreter, col(Interpreter.id) == col(Absence.interpreter_id))
        .where(
            Interpreter.district_id == district_id, col(Absence.starts_at) < end, col(Absence.ends_at) > start
        )
    )
    return set(session.exec(query))


def _busy(session: Session, request: Request, mode: Mode, buffer: timedelta) -> set[int]:
    """Interpreters with another timed booking that overlaps the request (buffered around in-person work)."""
    if mode == Mode.WRITTEN:
        return set()
    start, end = request.starts_at, request_end(request)
    # Widen the window by the largest buffer (and the longest session), then check each hit exactly.
    # Only the start is a condition in SQL: one on the state lets SQLite read through its index.
    window = (
        col(Request.starts_at) < end + buffer,
        col(Request.starts_at) > start - buffer - timedelta(hours=8),
    )
    query = sa_select(
        col(Request.id),
        col(Request.interpreter_id),
        col(Request.state),
        col(Request.starts_at),
        col(Request.duration_minutes),
        col(Request.mode),
    ).where(*window)
    busy: set[int] = set()
    for rid, iid, state, starts_at, minutes, other_mode in session.execute(query):
        if iid is None or state not in BUSY_STATES or other_mode == Mode.WRITTEN or rid == request.id:
            continue
        pad = buffer if Mode.IN_PERSON in (mode, other_mode) else timedelta(0)
        if starts_at < end + pad and starts_at + timedelta(minutes=minutes) + pad > start:
            busy.add(iid)
    return busy


def _month_bounds(moment: datetime) -> tuple[datetime, datetime]:
    local = moment.astimezone(BERLIN)
    first = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (first + timedelta(days=32)).replace(day=1)
    return first.astimezone(UTC), following.astimezone(UTC)


def _minutes(session: Session, request: Request, ids: Sequence[int]) -> dict[int, int]:
    """Minutes booked in the request's month, per interpreter of `ids` who has any."""
    month_start, month_end = _month_bounds(request.starts_at)
    # The state is summed over, not filtered on: a filter lets SQLite pick the index on state
    # and read every booking; this way one range of ix_request_interpreter_starts per interpreter.
    busy_minutes = case((col(Request.state).in_(BUSY_STATES), Request.duration_minutes), else_=0)
    query = (
        select(Request.interpreter_id, func.sum(busy_minutes))
        .where(
            col(Request.interpreter_id).in_(ids),
            col(Request.starts_at) >= month_start,
            col(Request.starts_at) < month_end,
        )
        .group_by(col(Request.interpreter_id))
    )
    return {iid: int(total or 0) for iid, total in session.exec(query) if iid is not None}


def _last_served(session: Session, ids: Sequence[int]) -> dict[int, datetime]:
    """When each interpreter of `ids` who was ever booked was last booked (one index seek each)."""
    latest = (
        select(func.max(Request.booked_at))
        .where(col(Request.interpreter_id) == col(Interpreter.id))
        .scalar_subquery()
    )
    query = select(Interpreter.id, latest).where(col(Interpreter.id).in_(ids))
    last: dict[int, datetime] = {}
    for iid, booked_at in session.exec(query):
        if iid is None or booked_at is None:
            continue
        # The aggregate bypasses the column type, so SQLite hands back naive text-parsed values.
        last[iid] = booked_at.replace(tzinfo=UTC) if booked_at.tzinfo is None else booked_at
    return last


@dataclass(frozen=True)
class _Priced:
    interpreter_id: int
    latitude: float
    longitude: float
    travel_cents: int
    pay_cents: int


def _cheapest(
    free: list[tuple[int, float, float]], request: Request, mode: Mode, policy: Policy, limit: int | None
) -> list[_Priced]:
    """The free candidates who can still be among the first `limit`, by travel cost then id: all
    whose travel costs no more than the `limit`-th cheapest's.

    Remote work costs the same from anywhere. In person, travel never falls as the distance grows
    (a non-negative rate times the distance, rounded half up), so they are priced nearest first and
    the walk stops at the first one dearer than the `limit`-th.
    """
    place = request.place_latitude, request.place_longitude
    if mode != Mode.IN_PERSON:
        cost = estimate(mode, request.duration_minutes, 0, policy)
        return [_Priced(iid, lat, lon, cost.travel_cents, cost.total_cents) for iid, lat, lon in free]
    near = sorted((distance_m(lat, lon, *place), iid, lat, lon) for iid, lat, lon in free)
    found: list[_Priced] = []
    for distance, iid, lat, lon in near:
        cost = estimate(mode, request.duration_minutes, distance, policy)
        if limit is not None and len(found) >= limit and cost.travel_cents > found[limit - 1].travel_cents:
            break
        found.append(_Priced(iid, lat, lon, cost.travel_cents, cost.total_cents))
    return found


def _free(
    session: Session, request: Request, policy: Policy, mode: Mode, exclude: Iterable[int]
) -> list[tuple[int, float, float]]:
    """The eligible: suitable, not excluded, not away and not booked at the time."""
    suitable = _suitable(session, request, mode, set(exclude))
    if not suitable:
        return []
    start, end = request.starts_at, request_end(request)
    away = _absent(session, request.district_id, start, end)
    unavailable = away | _busy(session, request, mode, policy.travel_buffer)
    return [row for row in suitable if row[0] not in unavailable]


def eligible_count(session: Session, request: Request, policy: Policy) -> int:
    """How many interpreters `candidates` would list for the request (without ranking them)."""
    return len(_free(session, request, policy, Mode(request.mode), ()))


def candidates(
    session: Session,
    request: Request,
    policy: Policy,
    exclude: Iterable[int] = (),
    *,
    mode: Mode | None = None,
    limit: int | None = None,
) -> list[Candidate]:
    """Eligible interpreters for the request, ranked best first; `exclude` are skipped (already asked).

    `mode` asks what another mode would give (the summary's suggestion); by default the request's own.
    `limit`: only the first so many (a wave of offers), so that the month's minutes are read only
    for those who can still be among them by travel cost, and "last served" only for those tied
    with them on travel and minutes: the order is the same as the whole list's.
    """
    if limit is not None and limit <= 0:
        return []
    mode = Mode(request.mode) if mode is None else mode
    free = _free(session, request, policy, mode, exclude)
    contenders = _cheapest(free, request, mode, policy, limit)
    if not contenders:
        return []
    minutes = _minutes(session, request, [p.interpreter_id for p in contenders])

    def key(p: _Priced) -> tuple[int, int]:
        return p.travel_cents, minutes.get(p.interpreter_id, 0)

    contenders.sort(key=lambda p: (*key(p), p.interpreter_id))
    if limit is not None and len(contenders) > limit:
        # Last served only breaks ties of travel and minutes: read it for those up to the last tie.
        boundary = key(contenders[limit - 1])
        contenders = [p for p in contenders if key(p) <= boundary]
    last = _last_served(session, [p.interpreter_id for p in contenders])
    ranked = rank(
        Candidate(
            p.interpreter_id,
            distance_m(p.latitude, p.longitude, request.place_latitude, request.place_longitude),
            p.travel_cents,
            p.pay_cents,
            minutes.get(p.interpreter_id, 0),
            last.get(p.interpreter_id),
        )
        for p in contenders
    )
    return ranked if limit is None else ranked[:limit]


def _suits(interpreter: Interpreter, request: Request, mode: Mode) -> bool:
    """Works in the mode and matches the gender wish (the language is asked before)."""
    wish = request.gender_preference
    return mode in parse_modes(interpreter.modes) and (wish is None or interpreter.gender == wish)


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
        and candidates(session, request, policy, excluded, mode=mode, limit=1)
    ]
