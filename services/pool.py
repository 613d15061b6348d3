"""The interpreter pool: members, their languages and modes, absences, and the CSV import."""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, delete, select

from db.models import Absence, Interpreter, InterpreterLanguage, Request
from services.audit import record
from services.csv_import import latitude, longitude, optional_text, read_rows, required_text
from services.errors import InvalidInput, NotFound
from services.languages import normalize_tag
from services.text import N_
from services.vocabulary import Gender, Mode, RequestState, format_modes

POOL_COLUMNS = ("name", "languages", "municipality", "latitude", "longitude", "modes", "phone", "email")


@dataclass(frozen=True)
class InterpreterData:
    name: str
    languages: tuple[str, ...]
    municipality: str
    latitude: float
    longitude: float
    modes: frozenset[Mode]
    phone: str = ""
    email: str = ""
    gender: Gender | None = None


# A cell listing several: `ar;fa` as the import always took, or `ar, fa` as people type in a `;` file.
_LIST = re.compile(r"[;,]")


def parse_languages(value: str) -> tuple[str, ...]:
    tags = [normalize_tag(part) for part in _LIST.split(value) if part.strip()]
    if not tags:
        raise InvalidInput(N_("At least one language is needed."))
    return tuple(dict.fromkeys(tags))


def parse_mode_list(value: str) -> frozenset[Mode]:
    modes = set()
    for part in (p.strip().lower() for p in _LIST.split(value)):
        if not part:
            continue
        try:
            modes.add(Mode(part))
        except ValueError:
            raise InvalidInput(
                N_("“{value}” is not a mode; use in_person, phone, video or written."), value=part
            ) from None
    if not modes:
        raise InvalidInput(N_("At least one mode is needed."))
    return frozenset(modes)


def parse_email(value: str) -> str:
    value = optional_text(200)(value)
    if value and ("@" not in value or value.startswith("@") or value.endswith("@")):
        raise InvalidInput(N_("“{value}” is not an e-mail address."), value=value)
    return value


def parse_gender(value: str) -> Gender | None:
    if not value.strip():
        return None
    try:
        return Gender(value.strip().lower())
    except ValueError:
        raise InvalidInput(N_("“{value}” is not female or male."), value=value) from None


def save_interpreter(
    session: Session, *, district_id: int, data: InterpreterData, actor: str, now: datetime
) -> Interpreter:
    """Add an interpreter, or update the one of the same name in the district (its languages are replaced)."""
    interpreter = session.exec(
        select(Interpreter).where(Interpreter.district_id == district_id, Interpreter.name == data.name)
    ).first()
    action = "interpreter.updated"
    if interpreter is None:
        interpreter = Interpreter(
            district_id=district_id,
            name=data.name,
            municipality="",
            latitude=0,
            longitude=0,
            modes="",
            created_at=now,
        )
        action = "interpreter.created"
    interpreter.municipality = data.municipality
    interpreter.latitude, interpreter.longitude = data.latitude, data.longitude
    interpreter.modes = format_modes(data.modes)
    interpreter.phone, interpreter.email = data.phone, data.email
    interpreter.gender = data.gender.value if data.gender else None
    session.add(interpreter)
    session.flush()
    assert interpreter.id is not None
    session.exec(delete(InterpreterLanguage).where(col(InterpreterLanguage.interpreter_id) == interpreter.id))
    for tag in data.languages:
        session.add(InterpreterLanguage(interpreter_id=interpreter.id, language=tag))
    record(
        session,
        district_id=district_id,
        actor=actor,
        action=action,
        entity="interpreter",
        entity_id=interpreter.id,
        now=now,
    )
    return interpreter


def import_pool(
    session: Session, *, district_id: int, text: str, file: str, actor: str, now: datetime
) -> int:
    """Import interpreters from CSV; the first bad cell raises ImportRowError before anything is written."""
    parsed = [
        InterpreterData(
            name=row.cell("name", required_text(200)),
            languages=row.cell("languages", parse_languages),
            municipality=row.cell("municipality", required_text(100)),
            latitude=row.cell("latitude", latitude),
            longitude=row.cell("longitude", longitude),
            modes=row.cell("modes", parse_mode_list),
            phone=row.cell("phone", optional_text(40)),
            email=row.cell("email", parse_email),
            gender=row.cell("gender", parse_gender),
        )
        for row in read_rows(text, file=file, columns=POOL_COLUMNS)
    ]
    for data in parsed:
        save_interpreter(session, district_id=district_id, data=data, actor=actor, now=now)
    return len(parsed)


def languages_of(session: Session, interpreter_id: int) -> list[str]:
    query = select(InterpreterLanguage.language).where(InterpreterLanguage.interpreter_id == interpreter_id)
    return sorted(session.exec(query))


def list_pool(session: Session, district_id: int) -> Sequence[Interpreter]:
    return session.exec(
        select(Interpreter).where(Interpreter.district_id == district_id).order_by(col(Interpreter.id))
    ).all()


def add_absence(
    session: Session,
    *,
    district_id: int,
    interpreter_id: int,
    starts_at: datetime,
    ends_at: datetime,
    actor: str,
    now: datetime,
) -> Absence:
    """An interpreter is away: no offers for sessions in that time."""
    interpreter = session.get(Interpreter, interpreter_id)
    if interpreter is None or interpreter.district_id != district_id:
        raise NotFound(N_("There is no interpreter {id} in this district."), id=interpreter_id)
    if ends_at <= starts_at:
        raise InvalidInput(N_("An absence must end after it starts."))
    absence = Absence(interpreter_id=interpreter_id, starts_at=starts_at, ends_at=ends_at, created_at=now)
    session.add(absence)
    session.flush()
    record(
        session,
        district_id=district_id,
        actor=actor,
        action="absence.created",
        entity="interpreter",
        entity_id=interpreter_id,
        now=now,
        starts_at=starts_at,
        ends_at=ends_at,
    )
    return absence


def absences_ahead(session: Session, interpreter_id: int, now: datetime) -> Sequence[Absence]:
    """The interpreter's absences that have not ended yet, soonest first."""
    query = (
        select(Absence)
        .where(Absence.interpreter_id == interpreter_id, Absence.ends_at > now)
        .order_by(col(Absence.starts_at), col(Absence.id))
    )
    return session.exec(query).all()


def remove_absence(
    session: Session, *, district_id: int, interpreter_id: int, absence_id: int, actor: str, now: datetime
) -> Absence:
    """The interpreter is not away after all: offers reach them again for that time."""
    absence = session.get(Absence, absence_id)
    if absence is None or absence.interpreter_id != interpreter_id:
        raise NotFound(N_("This absence does not exist (any more)."))
    session.delete(absence)
    record(
        session,
        district_id=district_id,
        actor=actor,
        action="absence.removed",
        entity="interpreter",
        entity_id=interpreter_id,
        now=now,
        starts_at=absence.starts_at,
        ends_at=absence.ends_at,
    )
    return absence


def booked_between(
    session: Session, interpreter_id: int, starts_at: datetime, ends_at: datetime
) -> Sequence[Request]:
    """The interpreter's booked sessions that overlap `[starts_at, ends_at)`, soonest first: also one
    that begins before and runs into it."""
    # No session lasts a day (requests.MAX_DURATION): widen the window by one in SQL, check each end here.
    query = (
        select(Request)
        .where(
            Request.interpreter_id == interpreter_id,
            Request.state == RequestState.BOOKED.value,
            Request.starts_at > starts_at - timedelta(days=1),
            Request.starts_at < ends_at,
        )
        .order_by(col(Request.starts_at))
    )
    return [r for r in session.exec(query) if r.starts_at + timedelta(minutes=r.duration_minutes) > starts_at]
