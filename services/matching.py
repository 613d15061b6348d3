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

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    bindparam,
    case,
    exists,
    func,
    literal,
    literal_column,
)
from sqlalchemy import select as sa_select
from sqlalchemy.sql.expression import FromClause, ScalarSelect
from sqlalchemy.sql.schema import Table
from sqlmodel import Session, col, select

from db.models import Absence, Interpreter, InterpreterLanguage, Request
from services.billing import estimate
from services.clock import BERLIN
from services.geo import distance_m, distances_m
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


def _table(model: type[object]) -> Table:
    found: Table = model.__table__  # type: ignore[attr-defined]
    return found


def _in_district(person: Table, dialect: str) -> ColumnElement[bool]:
    """The interpreter is of the district. On SQLite written `district_id + 0`, so that it reads each
    speaker by primary key instead of through the index on the district (~15 % faster)."""
    column = person.c.district_id + 0 if dialect == "sqlite" else person.c.district_id
    return column == bindparam("district_id")


@lru_cache(maxsize=8)
def _speakers_statement(dialect: str, gender: bool) -> Select[int, float, float]:
    """The speakers' places; the language in the text on PostgreSQL (see `_ranking`)."""
    person, spoken = _table(Interpreter), _table(InterpreterLanguage)
    language = bindparam("language", type_=String(), literal_execute=dialect == "postgresql")
    query = (
        sa_select(person.c.id, person.c.latitude, person.c.longitude)
        .join(spoken, spoken.c.interpreter_id == person.c.id)
        .where(
            _in_district(person, dialect),
            person.c.active.is_(True),
            spoken.c.language == language,
            _offers_mode(person.c.modes, bindparam("mode_word", type_=String()), dialect),
        )
        .order_by(person.c.id)
    )
    return query.where(person.c.gender == bindparam("gender")) if gender else query


@lru_cache(maxsize=8)
def _eligible_statement(gender: bool, timed: bool, in_person: bool) -> Select[int, float, float]:
    """On PostgreSQL `_free` in one statement: the speakers of `_speakers_statement`, without those
    away during the session and (`timed`: not for written work) those booked then, as
    `_busy_statement(in_person)` finds them; one round trip instead of three."""
    person = _table(Interpreter)
    query = _speakers_statement("postgresql", gender).where(~_away(person))
    return query.where(person.c.id.not_in(_busy_statement(in_person))) if timed else query


def _suitable(
    session: Session, request: Request, mode: Mode, excluded: set[int]
) -> list[tuple[int, float, float]]:
    """(id, latitude, longitude) of the speakers who work in the mode and match the gender wish,
    by id; read as plain rows in one fetch, since matching needs three columns of some thousand
    people."""
    wish = request.gender_preference
    connection = session.connection()
    rows = connection.execute(
        _speakers_statement(connection.dialect.name, wish is not None),
        {
            "district_id": request.district_id,
            "language": request.language,
            "mode_word": f",{mode.value},",
            "gender": wish,
        },
    ).all()
    return [(iid, lat, lon) for iid, lat, lon in rows if iid not in excluded]


@lru_cache(maxsize=1)
def _absent_statement() -> Select[int]:
    away = _table(Absence)
    return sa_select(away.c.interpreter_id).where(
        away.c.starts_at < bindparam("end"), away.c.ends_at > bindparam("start")
    )


def _absent(session: Session, start: datetime, end: datetime) -> set[int]:
    """The interpreters away at some point of the session (of any district: the caller's list is
    the district's already; a join on the district would walk the pool instead of the absences)."""
    return set(session.connection().execute(_absent_statement(), {"start": start, "end": end}).scalars())


@lru_cache(maxsize=1)
def _window_statement() -> Select[int, int | None, str, datetime, int, str]:
    booking = _table(Request)
    return sa_select(
        booking.c.id,
        booking.c.interpreter_id,
        booking.c.state,
        booking.c.starts_at,
        booking.c.duration_minutes,
        booking.c.mode,
    ).where(booking.c.starts_at < bindparam("window_end"), booking.c.starts_at > bindparam("window_start"))


@lru_cache(maxsize=2)
def _busy_statement(in_person: bool) -> Select[int | None]:
    """`_busy` as SQL, for PostgreSQL (`in_person`: the request is; otherwise the buffer pads only
    an in-person booking): the ids come back, not the window's rows. Read from
    ix_request_starts_busy alone."""
    booking = _table(Request)
    padded = literal(True) if in_person else booking.c.mode == Mode.IN_PERSON.value
    ends = booking.c.starts_at + booking.c.duration_minutes * literal_column("INTERVAL '1 minute'")
    return sa_select(booking.c.interpreter_id).where(
        booking.c.starts_at < bindparam("window_end"),
        booking.c.starts_at > bindparam("window_start"),
        booking.c.interpreter_id.is_not(None),
        booking.c.state.in_(BUSY_STATES),
        booking.c.mode != Mode.WRITTEN.value,
        booking.c.id != bindparam("request_id"),
        booking.c.starts_at < case((padded, bindparam("padded_end")), else_=bindparam("end")),
        ends > case((padded, bindparam("padded_start")), else_=bindparam("start")),
    )


def _busy_values(request: Request, buffer: timedelta) -> dict[str, object]:
    """The values of `_busy_statement`. The window is widened by the buffer and the longest session
    (8 hours): only its start is an index range."""
    start, end = request.starts_at, request_end(request)
    return {
        "window_end": end + buffer,
        "window_start": start - buffer - timedelta(hours=8),
        "start": start,
        "end": end,
        "padded_start": start - buffer,
        "padded_end": end + buffer,
        # Not stored yet (no id): no booking is the request itself.
        "request_id": -1 if request.id is None else request.id,
    }


def _busy(session: Session, request: Request, mode: Mode, buffer: timedelta) -> set[int]:
    """Interpreters with another timed booking that overlaps the request (buffered around in-person work)."""
    if mode == Mode.WRITTEN:
        return set()
    connection = session.connection()
    values = _busy_values(request, buffer)
    if connection.dialect.name == "postgresql":
        found = connection.execute(_busy_statement(mode == Mode.IN_PERSON), values).scalars()
        return {iid for iid in found if iid is not None}
    start, end = request.starts_at, request_end(request)
    # SQLite stores times as text, so the end of a booking is worked out here: the window's rows
    # are checked one by one. Only the start is a condition in SQL: one on the state lets SQLite
    # read through its index.
    rows = connection.execute(_window_statement(), values)
    busy: set[int] = set()
    for rid, iid, state, starts_at, minutes, other_mode in rows:
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


def _last_booked(person: FromClause) -> ScalarSelect[datetime | None]:
    """When `person` (a row with an `id`) was last booked: one seek on ix_request_interpreter_booked.
    The aggregate keeps the column's type, so the value comes back aware (db/types.py)."""
    served = _table(Request).alias("served")
    return (
        sa_select(func.max(served.c.booked_at))
        .where(served.c.interpreter_id == person.c.id)
        .scalar_subquery()
    )


def _away(person: FromClause) -> ColumnElement[bool]:
    """Whether `person` is away at some time between the bound `start` and `end`."""
    away = _table(Absence)
    return exists().where(
        away.c.interpreter_id == person.c.id,
        away.c.starts_at < bindparam("end"),
        away.c.ends_at > bindparam("start"),
    )


def _last_served(session: Session, ids: Sequence[int]) -> dict[int, datetime]:
    """When each interpreter of `ids` who was ever booked was last booked (one index seek each)."""
    person = _table(Interpreter)
    query = sa_select(person.c.id, _last_booked(person)).where(person.c.id.in_(ids))
    return {iid: booked_at for iid, booked_at in session.connection().execute(query) if booked_at is not None}


# In person on PostgreSQL, up to this many contenders get their minutes and last served in one
# statement (a round trip less); more (travel tied for many) are read in two, last served only for
# those tied with the wave.
_READ_TOGETHER = 32


def _month_minutes(month: FromClause, person: Table) -> ScalarSelect[int]:
    """The minutes `person` is booked for in the month (bound as month_start, month_end): a scalar
    subquery over `month` (an alias of request), from ix_request_interpreter_starts alone."""
    booked_minutes = case((month.c.state.in_(BUSY_STATES), month.c.duration_minutes), else_=0)
    return (
        sa_select(func.coalesce(func.sum(booked_minutes), 0))
        .where(
            month.c.interpreter_id == person.c.id,
            month.c.starts_at >= bindparam("month_start"),
            month.c.starts_at < bindparam("month_end"),
        )
        .scalar_subquery()
    )


@lru_cache(maxsize=1)
def _minutes_and_last_statement() -> Select[int, int, datetime | None]:
    """Per interpreter of `ids`: the minutes booked in the month (as `_minutes`: one range of
    ix_request_interpreter_starts each) and when last booked (as `_last_served`)."""
    person = _table(Interpreter)
    minutes = _month_minutes(_table(Request).alias("month"), person)
    return sa_select(person.c.id, minutes, _last_booked(person)).where(
        person.c.id.in_(bindparam("ids", expanding=True))
    )


def _minutes_and_last(
    session: Session, request: Request, ids: Sequence[int]
) -> tuple[dict[int, int], dict[int, datetime]]:
    """`_minutes` and `_last_served` of `ids` in one statement."""
    month_start, month_end = _month_bounds(request.starts_at)
    values = {"ids": list(ids), "month_start": month_start, "month_end": month_end}
    minutes: dict[int, int] = {}
    last: dict[int, datetime] = {}
    for iid, total, booked_at in session.connection().execute(_minutes_and_last_statement(), values):
        minutes[iid] = int(total)
        if booked_at is not None:
            last[iid] = booked_at
    return minutes, last


@dataclass(frozen=True)
class _Priced:
    interpreter_id: int
    latitude: float
    longitude: float
    travel_cents: int
    pay_cents: int


def _nearness(
    place: tuple[float, float], free: list[tuple[int, float, float]]
) -> list[tuple[int, int, float, float]]:
    """(distance_m(lat, lon, *place), id, lat, lon) of each, the place's part worked out once."""
    metres = distances_m(place, [(lat, lon) for _, lat, lon in free])
    return [(m, iid, lat, lon) for m, (iid, lat, lon) in zip(metres, free, strict=True)]


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
    near = _nearness(place, free)
    ordered: Iterable[tuple[int, int, float, float]]
    if limit is None:
        ordered = sorted(near)
    else:
        # Taken nearest first from a heap: the walk stops after a few, so the rest are never sorted.
        heapq.heapify(near)
        ordered = (heapq.heappop(near) for _ in range(len(near)))
    found: list[_Priced] = []
    for distance, iid, lat, lon in ordered:
        cost = estimate(mode, request.duration_minutes, distance, policy)
        if limit is not None and len(found) >= limit and cost.travel_cents > found[limit - 1].travel_cents:
            break
        found.append(_Priced(iid, lat, lon, cost.travel_cents, cost.total_cents))
    return found


def _offers_mode(modes: ColumnElement[str], word: ColumnElement[str], dialect: str) -> ColumnElement[bool]:
    """Whether the stored comma-separated `modes`, with a comma either side, contain `word`
    (",phone,"): the mode as an exact word.

    A position test rather than LIKE: PostgreSQL guesses almost no row matches a LIKE with
    wildcards on either side and then walks the whole pool instead of the language's speakers.
    """
    spelled = literal(",") + modes + literal(",")
    found = func.strpos(spelled, word) if dialect == "postgresql" else func.instr(spelled, word)
    return found > 0


@lru_cache(maxsize=16)
def _ranking(
    dialect: str, gender: bool, limited: bool, timed: bool
) -> Select[int, float, float, int, datetime | None]:
    """The statement of `_ranked_remote`, built once per shape; its values are bound on execution.

    On PostgreSQL the busy check is part of it (`timed`: not for written work) and the language is
    written into the text: prepared after five runs (psycopg), a statement with the language as a
    parameter got a generic plan that walks the speakers by primary key, slower for a common one.
    """
    person, spoken = _table(Interpreter), _table(InterpreterLanguage)
    postgresql = dialect == "postgresql"
    month = _table(Request).alias("month")
    language = bindparam("language", type_=String(), literal_execute=postgresql)
    speaking = sa_select(spoken.c.interpreter_id).where(spoken.c.language == language)
    conditions = [
        person.c.id.in_(speaking),
        _in_district(person, dialect),
        person.c.active.is_(True),
        _offers_mode(person.c.modes, bindparam("mode_word", type_=String()), dialect),
        ~_away(person),
        person.c.id.not_in(bindparam("unavailable", expanding=True)),
    ]
    if gender:
        conditions.append(person.c.gender == bindparam("gender"))
    if postgresql and timed:
        conditions.append(person.c.id.not_in(_busy_statement(in_person=False)))
    # Materialized: the boundary below reads it a second time.
    if postgresql:
        # Joined and grouped, not one subquery per speaker: PostgreSQL may read the month once and
        # hash it against the speakers, when it judges that cheaper than probing per speaker.
        speakers = (
            sa_select(person.c.id, person.c.latitude, person.c.longitude)
            .where(*conditions)
            .cte("speakers")
            .prefix_with("MATERIALIZED")
        )
        # The speakers' bookings that count in the month, summed per interpreter and joined back:
        # the month is one range of ix_request_month_busy (the states written into the text, so
        # that even a generic plan may use the partial index), hashed against the speakers.
        booked = (
            sa_select(month.c.interpreter_id.label("id"), func.sum(month.c.duration_minutes).label("minutes"))
            .where(
                month.c.starts_at >= bindparam("month_start"),
                month.c.starts_at < bindparam("month_end"),
                month.c.state.in_([literal_column(f"'{state}'") for state in BUSY_STATES]),
                month.c.interpreter_id.is_not(None),
                month.c.interpreter_id.in_(sa_select(speakers.c.id)),
            )
            .group_by(month.c.interpreter_id)
            .subquery("booked")
        )
        total = func.coalesce(booked.c.minutes, 0)
        eligible = (
            sa_select(speakers.c.id, speakers.c.latitude, speakers.c.longitude, total.label("minutes"))
            .select_from(speakers.outerjoin(booked, booked.c.id == speakers.c.id))
            .cte("eligible")
            .prefix_with("MATERIALIZED")
        )
    else:
        minutes = _month_minutes(month, person)
        eligible = (
            sa_select(person.c.id, person.c.latitude, person.c.longitude, minutes.label("minutes"))
            .where(*conditions)
            .cte("eligible")
            .prefix_with("MATERIALIZED")
        )
    last = _last_booked(eligible)
    query = sa_select(eligible.c.id, eligible.c.latitude, eligible.c.longitude, eligible.c.minutes, last)
    if limited:
        wave = bindparam("limit", type_=Integer())
        head = sa_select(eligible.c.minutes).order_by(eligible.c.minutes).limit(wave).subquery()
        boundary = sa_select(func.max(head.c.minutes)).scalar_subquery()
        query = query.where(eligible.c.minutes <= boundary).limit(wave)
    return query.order_by(eligible.c.minutes, last.nulls_first(), eligible.c.id)


def _ranked_remote(
    session: Session, request: Request, policy: Policy, mode: Mode, exclude: Iterable[int], limit: int | None
) -> list[Candidate]:
    """The ranking of work that costs the same travel from anywhere, in one statement.

    Travel ties for all, so the order is the month's minutes, then last served (never first), then
    the id, and the database sorts on them. The month's minutes are summed per eligible speaker
    from ix_request_interpreter_starts alone (on PostgreSQL the month's counted bookings are read
    once from ix_request_month_busy and hashed); last served (one seek on
    ix_request_interpreter_booked each) only for those tied with the `limit`-th on minutes. Being
    away is checked in the statement, and on PostgreSQL being booked at the time too (one round
    trip, no rows to Python); on SQLite, where a statement costs no trip, the few booked (read from
    the start-time window by `_busy`) are named in it, as the excluded are.
    """
    connection = session.connection()
    dialect = connection.dialect.name
    month_start, month_end = _month_bounds(request.starts_at)
    wish = request.gender_preference
    timed = mode != Mode.WRITTEN
    query = _ranking(dialect, wish is not None, limit is not None, timed)
    buffer = policy.travel_buffer
    unavailable = set(exclude)
    if dialect != "postgresql":
        unavailable |= _busy(session, request, mode, buffer)
    values = {
        "language": request.language,
        "district_id": request.district_id,
        "mode_word": f",{mode.value},",
        "month_start": month_start,
        "month_end": month_end,
        "unavailable": sorted(unavailable),
        "gender": wish,
        "limit": limit,
        **_busy_values(request, buffer),  # with the session's start and end, for the absences too
    }
    cost = estimate(mode, request.duration_minutes, 0, policy)
    place = request.place_latitude, request.place_longitude
    return [
        Candidate(
            iid,
            distance_m(lat, lon, *place),
            cost.travel_cents,
            cost.total_cents,
            int(booked),
            at,
        )
        for iid, lat, lon, booked, at in connection.execute(query, values)
    ]


def _free(
    session: Session, request: Request, policy: Policy, mode: Mode, exclude: Iterable[int]
) -> list[tuple[int, float, float]]:
    """The eligible: suitable, not excluded, not away and not booked at the time."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        wish, excluded = request.gender_preference, set(exclude)
        query = _eligible_statement(wish is not None, mode != Mode.WRITTEN, mode == Mode.IN_PERSON)
        values = {
            "district_id": request.district_id,
            "language": request.language,
            "mode_word": f",{mode.value},",
            "gender": wish,
            # The session's start and end, for the absences too.
            **_busy_values(request, policy.travel_buffer),
        }
        rows = connection.execute(query, values).all()  # one fetch: row by row cost ~2 µs a row more
        return [(iid, lat, lon) for iid, lat, lon in rows if iid not in excluded]
    suitable = _suitable(session, request, mode, set(exclude))
    if not suitable:
        return []
    start, end = request.starts_at, request_end(request)
    away = _absent(session, start, end)
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
    if mode != Mode.IN_PERSON:
        return _ranked_remote(session, request, policy, mode, exclude, limit)
    return _ranked_in_person(
        session, request, policy, mode, _free(session, request, policy, mode, exclude), limit
    )


def wave_and_count(
    session: Session, request: Request, policy: Policy, limit: int
) -> tuple[list[Candidate], int]:
    """The first wave (`candidates(..., limit=limit)`) and, when it has anyone, how many are eligible
    in all (`eligible_count`), as the summary's quote shows them; in person the eligible are read
    once for both."""
    mode = Mode(request.mode)
    if mode != Mode.IN_PERSON:
        wave = _ranked_remote(session, request, policy, mode, (), limit)
        return wave, (eligible_count(session, request, policy) if wave else 0)
    free = _free(session, request, policy, mode, ())
    wave = _ranked_in_person(session, request, policy, mode, free, limit)
    return wave, (len(free) if wave else 0)


def _ranked_in_person(
    session: Session,
    request: Request,
    policy: Policy,
    mode: Mode,
    free: list[tuple[int, float, float]],
    limit: int | None,
) -> list[Candidate]:
    """`candidates` for a request in person, from the eligible (`_free`): ranked by travel first."""
    if limit is not None and limit <= 0:
        return []
    contenders = _cheapest(free, request, mode, policy, limit)
    if not contenders:
        return []
    ids = [p.interpreter_id for p in contenders]
    if len(ids) <= _READ_TOGETHER and session.connection().dialect.name == "postgresql":
        minutes, last = _minutes_and_last(session, request, ids)
    else:
        minutes = _minutes(session, request, ids)

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
