"""Art. 15 and 17: each person's export holds what the inventory lists for them; erasure leaves no contact
data anywhere, keeps what budget law needs unchanged, and says so."""

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from db.models import ChatIdentity, Offer
from db.uow import UnitOfWork
from services import closeout, deliveries, personal_data
from services.changes import ChangeDraft, ask_change, confirm_change
from services.dialogs import Dialog, save_dialog
from services.identities import link
from services.invites import create_invite
from services.offers import accept_offer
from services.operator_alerts import set_operator
from services.pool import InterpreterData, add_absence, save_interpreter
from services.requests import RequestDraft, submit_request
from services.vocabulary import Gender, Mode, Role, Topic
from tests.builders import NOW, SOLTAU, SOON, build_world
from tests.test_datenschutz import _inventory, concerns

PHONE = "+49 170 5550123"
EMAIL = "amira.haddad@example.org"
AFTER = SOON + timedelta(hours=2)


@dataclass(frozen=True)
class People:
    district_id: int
    school: int  # member ids
    interpreter: int
    coordinator: int
    other_coordinator: int
    interpreter_id: int
    request_id: int


def _member(engine: Engine, district_id: int, role: Role, for_id: int, user: int, name: str = "") -> int:
    with UnitOfWork(engine) as uow:
        _, code = create_invite(
            uow.session, district_id=district_id, role=role, for_id=for_id, actor="test", now=NOW, name=name
        )
        member = link(
            uow.session,
            platform="telegram",
            user_id=str(user),
            chat_id=str(user),
            code=code,
            now=NOW,
            locale="de",
        )
        uow.commit()
        assert member.id is not None
        return member.id


def spread(engine: Engine) -> People:
    """A pool whose interpreter was booked, changed, reported, disputed and corrected, so that their data
    has spread: offers, the budget's books, notifications to every chat, answers, audit, dialogs."""
    world = build_world(lambda: UnitOfWork(engine))
    district = world.district_id
    with UnitOfWork(engine) as uow:
        amira = save_interpreter(
            uow.session,
            district_id=district,
            data=InterpreterData(
                "Amira Haddad", ("ar",), "Soltau", *SOLTAU, frozenset(Mode), PHONE, EMAIL, Gender.FEMALE
            ),
            actor="test",
            now=NOW,
        )
        uow.commit()
        assert amira.id is not None
        interpreter_id = amira.id
    school = _member(engine, district, Role.SCHOOL, world.school_id, 101, "Frau Kunz")
    interpreter = _member(engine, district, Role.INTERPRETER, interpreter_id, 102)
    coordinator = _member(engine, district, Role.COORDINATOR, district, 103, "Herr Brandt")
    other = _member(engine, district, Role.COORDINATOR, district, 104, "Frau Lange")
    as_school, as_interpreter, as_coordinator = (
        personal_data.actor_of(m) for m in (school, interpreter, coordinator)
    )
    with UnitOfWork(engine) as uow:
        s = uow.session
        set_operator(s, district_id=district, member_id=coordinator, actor="test", now=NOW)
        request = submit_request(
            s,
            district_id=district,
            draft=RequestDraft(
                world.school_id, "ar", Mode.IN_PERSON, SOON, 60, Topic.PARENT_TALK, "Raum 4", None, "Zeugnis"
            ),
            actor=as_school,
            now=NOW,
            member_id=school,
        )
        assert request.id is not None
        offer = s.exec(select(Offer).where(Offer.request_id == request.id)).one()
        assert offer.id is not None
        accept_offer(s, offer_id=offer.id, interpreter_id=interpreter_id, actor=as_interpreter, now=NOW)
        change = ask_change(
            s,
            district_id=district,
            request_id=request.id,
            draft=ChangeDraft(SOON, 60, Mode.IN_PERSON, "Raum 12"),
            actor=as_school,
            now=NOW,
        )
        assert change.id is not None
        confirm_change(s, change_id=change.id, interpreter_id=interpreter_id, actor=as_interpreter, now=NOW)
        add_absence(
            s,
            district_id=district,
            interpreter_id=interpreter_id,
            starts_at=SOON + timedelta(days=7),
            ends_at=SOON + timedelta(days=9),
            actor=as_interpreter,
            now=NOW,
        )
        closeout.report(
            s,
            request_id=request.id,
            interpreter_id=interpreter_id,
            minutes=75,
            km=18,
            expenses_cents=0,
            actor=as_interpreter,
            now=AFTER,
        )
        closeout.dispute(
            s,
            district_id=district,
            request_id=request.id,
            reason="Sie kam erst um 10:30.",
            actor=as_school,
            now=AFTER + timedelta(hours=1),
        )
        closeout.correct(
            s,
            district_id=district,
            request_id=request.id,
            minutes=60,
            km=18,
            expenses_cents=0,
            reason=f"Rücksprache mit {EMAIL}: 60 min.",
            actor=as_coordinator,
            now=AFTER + timedelta(hours=2),
        )
        for member in (school, interpreter, coordinator):
            save_dialog(s, member, Dialog("request", "note", {"note": "angefangen"}), now=AFTER)
        deliveries.expand(s, now=AFTER + timedelta(hours=3))
        # A coordinator's answer that listed the pool, contact data and all.
        chat = s.exec(select(ChatIdentity).where(col(ChatIdentity.member_id) == coordinator)).one()
        assert chat.id is not None
        deliveries.add_answer(s, identity_id=chat.id, body=f"Amira Haddad, {PHONE}, {EMAIL}", now=AFTER)
        uow.commit()
    return People(district, school, interpreter, coordinator, other, interpreter_id, request.id)


def _personal_columns() -> dict[str, set[str]]:
    """Per table, the columns the inventory classes as direkt, Kennung or Freitext."""
    return {
        table: {column for column, kind in columns.items() if kind != "nein"}
        for table, columns in _inventory().items()
    }


@pytest.mark.parametrize("role", ["interpreter", "school", "coordinator"])
def test_the_export_holds_every_column_the_inventory_lists_for_that_kind_of_person(
    engine: Engine, role: str
) -> None:
    people = spread(engine)
    member_id = {
        "interpreter": people.interpreter,
        "school": people.school,
        "coordinator": people.coordinator,
    }[role]
    with UnitOfWork(engine) as uow:
        # Any member may be the district's operator contact; here the one asked about.
        set_operator(
            uow.session, district_id=people.district_id, member_id=member_id, actor="test", now=AFTER
        )
        uow.commit()
    with UnitOfWork(engine) as uow:
        exported = json.loads(personal_data.export_json(uow.session, member_id))
    personal = _personal_columns()
    wanted = {table for table, roles in concerns().items() if role in roles}
    missing: dict[str, Any] = {}
    for table in sorted(wanted):
        rows = exported["tables"].get(table, [])
        have = set().union(*(row.keys() for row in rows)) if rows else set()
        if not personal[table] <= have:
            missing[table] = sorted(personal[table] - have)
    assert missing == {}
    assert set(exported["tables"]) == wanted  # and no table the inventory does not name for them
    assert (exported["member_id"], exported["role"]) == (member_id, role)
