"""The demo district: a Heidekreis-like pool to try the bot on (`python -m bot init --demo`)."""

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, select

from db.models import District
from services.districts import create_district
from services.invites import create_invite
from services.ledger import fiscal_year, set_total
from services.pool import InterpreterData, list_pool, save_interpreter
from services.schools import SchoolData, list_schools, save_school
from services.vocabulary import Gender, Mode, Role

DEMO_SLUG = "heidekreis"
DEMO_NAME = "Landkreis Heidekreis (Demo)"
DEMO_BUDGET_CENTS = 5000_00

TOWNS: dict[str, tuple[str, float, float]] = {
    "Soltau": ("29614", 52.9868, 9.8433),
    "Walsrode": ("29664", 52.8617, 9.5936),
    "Munster": ("29633", 52.9864, 10.0867),
    "Bad Fallingbostel": ("29683", 52.8675, 9.6967),
    "Schneverdingen": ("29640", 53.1167, 9.7956),
    "Bispingen": ("29646", 53.0833, 9.9997),
    "Neuenkirchen": ("29643", 53.0364, 9.7264),
    "Rethem (Aller)": ("27336", 52.7864, 9.3839),
    "Schwarmstedt": ("29690", 52.6775, 9.6156),
    "Hodenhagen": ("29693", 52.7644, 9.5897),
    "Wietzendorf": ("29649", 52.9281, 9.9772),
}

_ALL = frozenset(Mode)
_TALK = frozenset({Mode.IN_PERSON, Mode.PHONE, Mode.VIDEO})
_F, _M = Gender.FEMALE, Gender.MALE

# (name, languages, town, modes, gender): 15 people, 20 languages; Arabic four times, as in real pools.
INTERPRETERS: tuple[tuple[str, tuple[str, ...], str, frozenset[Mode], Gender], ...] = (
    ("Amira Haddad", ("ar", "fr"), "Soltau", _ALL, _F),
    ("Samir Khalil", ("ar",), "Wietzendorf", _TALK, _M),
    ("Rojin Ahmed", ("ckb", "ar"), "Bad Fallingbostel", _ALL, _F),
    ("Hodan Farah", ("so", "ar"), "Walsrode", _TALK, _F),
    ("Leyla Rahimi", ("fa", "prs"), "Soltau", _ALL, _F),
    ("Ahmad Noori", ("prs", "ps", "fa"), "Schneverdingen", _TALK, _M),
    ("Dilan Aydın", ("kmr", "tr"), "Walsrode", _ALL, _F),
    ("Senait Tesfay", ("ti", "am"), "Neuenkirchen", _TALK, _F),
    ("Olena Kovalenko", ("uk", "ru"), "Munster", _ALL, _F),
    ("Iryna Petrenko", ("uk", "ru", "pl"), "Schwarmstedt", _TALK, _F),
    ("Mehmet Yılmaz", ("tr", "kmr"), "Soltau", _TALK, _M),
    ("Elena Popescu", ("ro", "bg"), "Hodenhagen", _ALL, _F),
    ("Arben Krasniqi", ("sq", "sr"), "Rethem (Aller)", _TALK, _M),
    ("Imran Qureshi", ("ur", "ps"), "Bispingen", _TALK, _M),
    ("Thi Lan Nguyen", ("vi", "fr"), "Wietzendorf", _ALL, _F),
)

SCHOOLS: tuple[tuple[str, str, str], ...] = (
    ("Grundschule Soltau-Mitte", "Schulstraße 4", "Soltau"),
    ("Oberschule Walsrode", "Am Markt 12", "Walsrode"),
    ("Gymnasium Munster", "Kantstraße 9", "Munster"),
    ("Grundschule Bad Fallingbostel", "Vogteistraße 2", "Bad Fallingbostel"),
    ("KGS Schneverdingen", "Heberer Straße 30", "Schneverdingen"),
    ("Grundschule Bispingen", "Borsteler Straße 5", "Bispingen"),
    ("Oberschule Neuenkirchen", "Schulweg 1", "Neuenkirchen"),
    ("Grundschule Rethem", "Lange Straße 20", "Rethem (Aller)"),
    ("Oberschule Schwarmstedt", "Schulstraße 15", "Schwarmstedt"),
    ("Grundschule Hodenhagen", "Bahnhofstraße 8", "Hodenhagen"),
)


@dataclass(frozen=True)
class DemoInvite:
    role: Role
    label: str
    code: str


@dataclass(frozen=True)
class Demo:
    district: District
    invites: tuple[DemoInvite, ...]


def find_demo(session: Session) -> District | None:
    return session.exec(select(District).where(District.slug == DEMO_SLUG)).first()


def create_demo(session: Session, *, now: datetime, actor: str) -> Demo:
    """The demo district with its pool, schools, this year's budget and five invite codes."""
    district = create_district(session, name=DEMO_NAME, slug=DEMO_SLUG, now=now)
    assert district.id is not None
    for name, languages, town, modes, gender in INTERPRETERS:
        _, lat, lon = TOWNS[town]
        data = InterpreterData(name, languages, town, lat, lon, modes, "+49 5191 0000", "", gender)
        save_interpreter(session, district_id=district.id, data=data, actor=actor, now=now)
    for name, street, town in SCHOOLS:
        postcode, lat, lon = TOWNS[town]
        data_s = SchoolData(name, f"{street}, {postcode} {town}", town, lat, lon)
        save_school(session, district_id=district.id, data=data_s, actor=actor, now=now)
    set_total(
        session,
        district_id=district.id,
        year=fiscal_year(now),
        total_cents=DEMO_BUDGET_CENTS,
        actor=actor,
        now=now,
    )
    invites = []
    for person in demo_people(session, district):
        _, code = create_invite(
            session,
            district_id=district.id,
            role=person.role,
            for_id=person.for_id,
            actor=actor,
            now=now,
            name=person.name,
        )
        invites.append(DemoInvite(person.role, person.label, code))
    return Demo(district, tuple(invites))


@dataclass(frozen=True)
class DemoPerson:
    role: Role
    for_id: int
    label: str
    name: str


def demo_people(session: Session, district: District) -> list[DemoPerson]:
    """Who the demo invites: the first school, the first three interpreters (all speak Arabic), the office."""
    assert district.id is not None
    school = list_schools(session, district.id)[0]
    assert school.id is not None
    people = [DemoPerson(Role.SCHOOL, school.id, school.name, "")]
    for interpreter in list_pool(session, district.id)[:3]:
        assert interpreter.id is not None
        people.append(DemoPerson(Role.INTERPRETER, interpreter.id, interpreter.name, ""))
    people.append(DemoPerson(Role.COORDINATOR, district.id, "Koordinierungsstelle", "Koordinierungsstelle"))
    return people
