"""Taking a person's access away: a coordinator deactivates a school contact, an interpreter or a
coordinator.

Access ends at once: every later event from the person is answered with one sentence and changes
nothing (bot/conversation/router.py), and nothing but the notice of the deactivation reaches them
(`identities.members_for`). An interpreter is one person however many members point at them, so
deactivating an interpreter's member deactivates the interpreter (`Interpreter.active`, matching
skips them) and all of their members; their open offers are withdrawn and each request's wave is
topped up from the others. A deactivation never leaves a school without its interpreter in silence:
while the interpreter holds bookings yet to begin it is refused, naming them, unless the coordinator
has them handed back (`hand_back=True`), each through the interpreter's own hand-back path (the
school is told and the request goes back to matching). A school contact's school and requests stay;
the school's other contacts are untouched. The last active coordinator of a district is never
deactivated. Deactivating twice changes nothing. The chat links stay for now (the person is told
through them); retention removes them later.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from db.models import Interpreter, Member
from services.audit import record
from services.errors import InvalidInput, NotFound
from services.text import N_
from services.vocabulary import Role


@dataclass(frozen=True)
class Deactivation:
    """What a deactivation did (or, with `already`, that it had been done before)."""

    member_ids: tuple[int, ...]
    role: Role
    already: bool = False
    interpreter_id: int | None = None
    withdrawn_offer_ids: tuple[int, ...] = ()
    handed_back_request_ids: tuple[int, ...] = ()


def member_in(session: Session, *, district_id: int, member_id: int) -> Member:
    """The district's member with this id; NotFound otherwise."""
    member = session.get(Member, member_id)
    if member is None or member.district_id != district_id:
        raise NotFound(N_("There is no member {member_id} in this district."), member_id=member_id)
    return member


def members_of_interpreter(session: Session, interpreter_id: int) -> list[Member]:
    query = select(Member).where(
        Member.interpreter_id == interpreter_id, Member.role == Role.INTERPRETER.value
    )
    return list(session.exec(query.order_by(col(Member.id))))


def deactivate_member(
    session: Session, *, district_id: int, member_id: int, actor: str, now: datetime, hand_back: bool = False
) -> Deactivation:
    """Take the member's access away (an interpreter's member: the interpreter's, see the module)."""
    member = member_in(session, district_id=district_id, member_id=member_id)
    if member.role == Role.INTERPRETER and member.interpreter_id is not None:
        return deactivate_interpreter(
            session,
            district_id=district_id,
            interpreter_id=member.interpreter_id,
            actor=actor,
            now=now,
            hand_back=hand_back,
        )
    role = Role(member.role)
    if member.deactivated_at is not None:
        return Deactivation((member_id,), role, already=True)
    if role is Role.COORDINATOR and _last_coordinator(session, member):
        raise InvalidInput(
            N_("{name} is the district's last active coordinator and cannot be deactivated."),
            name=member.name or f"#{member_id}",
        )
    _end_access(session, member, actor=actor, now=now)
    return Deactivation((member_id,), role)


def deactivate_interpreter(
    session: Session,
    *,
    district_id: int,
    interpreter_id: int,
    actor: str,
    now: datetime,
    hand_back: bool = False,
) -> Deactivation:
    """Take an interpreter out of the pool and end the access of all their members (see the module)."""
    interpreter = session.get(Interpreter, interpreter_id, with_for_update=True, populate_existing=True)
    if interpreter is None or interpreter.district_id != district_id:
        raise NotFound(
            N_("There is no interpreter {interpreter_id} in this district."), interpreter_id=interpreter_id
        )
    members = members_of_interpreter(session, interpreter_id)
    ids = tuple(m.id for m in members if m.id is not None)
    if not interpreter.active and all(m.deactivated_at is not None for m in members):
        return Deactivation(ids, Role.INTERPRETER, already=True, interpreter_id=interpreter_id)
    interpreter.active = False
    session.add(interpreter)
    for member in members:
        if member.deactivated_at is None:
            _end_access(session, member, actor=actor, now=now)
    session.flush()
    return Deactivation(ids, Role.INTERPRETER, interpreter_id=interpreter_id)


def _last_coordinator(session: Session, member: Member) -> bool:
    query = select(Member.id).where(
        Member.district_id == member.district_id,
        Member.role == Role.COORDINATOR.value,
        col(Member.deactivated_at).is_(None),
        Member.id != member.id,
    )
    return session.exec(query.limit(1)).first() is None


def _end_access(session: Session, member: Member, *, actor: str, now: datetime) -> None:
    assert member.id is not None
    member.deactivated_at = now
    session.add(member)
    record(
        session,
        district_id=member.district_id,
        actor=actor,
        action="member.deactivated",
        entity="member",
        entity_id=member.id,
        now=now,
        role=member.role,
    )
