"""Taking a person's access away, and giving it back: a coordinator deactivates a school contact, an
interpreter or another coordinator.

Access ends at once. Every later event from the person is answered with one sentence and changes
nothing (bot/conversation/router.py); nothing but the notice of the deactivation, written in the same
transaction, reaches them (`identities.reachable_members`); their unfinished dialog and unused link codes go.
An interpreter is one person however many members point at them, so deactivating an interpreter's
member deactivates the interpreter (`Interpreter.active`: matching skips them, an Accept is refused)
and all of their members. Their open offers are withdrawn and each request's wave is topped up from
the others. A deactivation never leaves a school without its interpreter in silence: while the
interpreter holds bookings yet to begin it is refused, naming them, unless the coordinator has them
handed back (`hand_back_reason`), each through the interpreter's own hand-back path (the school is
told, the request goes back to matching). A school contact's school and requests stay, and the school's
other contacts are untouched. The last active coordinator of a district is never deactivated.
Deactivating twice changes nothing. The chat links stay for now (the person is told through them);
retention removes them later. The audit events name ids and figures only.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, col, delete, select

from db.models import (
    AuditEvent,
    ChatIdentity,
    Closeout,
    Delivery,
    DialogState,
    Interpreter,
    Invite,
    Member,
    Offer,
    OperatorContact,
    Request,
    School,
)
from services.audit import record
from services.errors import IllegalTransition, NotFound
from services.notices import MemberDeactivated
from services.offers import fill_offers, give_back
from services.outbox import notify
from services.text import N_
from services.vocabulary import OfferState, Recipient, RequestState, Role


@dataclass(frozen=True)
class Deactivation:
    """What a deactivation did (with `already`: nothing, it had been done before).

    `unreported`: sessions of the interpreter that have begun but were never reported; nobody can
    report them now until the interpreter is given access again. `contacts_left`: for a school
    contact, how many active contacts the school still has.
    """

    member_ids: tuple[int, ...]
    role: Role
    name: str
    already: bool = False
    interpreter_id: int | None = None
    withdrawn_offer_ids: tuple[int, ...] = ()
    handed_back_request_ids: tuple[int, ...] = ()
    unreported_request_ids: tuple[int, ...] = ()
    contacts_left: int | None = None


@dataclass(frozen=True)
class Activation:
    member_ids: tuple[int, ...]
    role: Role
    name: str
    already: bool = False


def member_in(session: Session, *, district_id: int, member_id: int) -> Member:
    """The district's member with this id; NotFound otherwise."""
    member = session.get(Member, member_id)
    if member is None or member.district_id != district_id:
        raise NotFound(N_("There is no member {id} in this district."), id=member_id)
    return member


def display_name(session: Session, member: Member) -> str:
    """The name a coordinator knows the member by: an interpreter's pool name, else the invite's name;
    a school contact invited without one by their school's name and member id."""
    interpreter = session.get(Interpreter, member.interpreter_id) if member.interpreter_id else None
    name = interpreter.name if interpreter is not None else member.name
    school = session.get(School, member.school_id) if member.school_id is not None and not name else None
    return name or (f"{school.name} #{member.id}" if school is not None else f"#{member.id}")


def members_of_interpreter(session: Session, interpreter_id: int) -> list[Member]:
    query = select(Member).where(
        Member.interpreter_id == interpreter_id, Member.role == Role.INTERPRETER.value
    )
    return list(session.exec(query.order_by(col(Member.id))))


def bookings_ahead(session: Session, interpreter_id: int, now: datetime) -> list[Request]:
    """The interpreter's bookings that have not begun yet, soonest first."""
    query = select(Request).where(
        Request.interpreter_id == interpreter_id,
        Request.state == RequestState.BOOKED.value,
        col(Request.starts_at) > now,
    )
    return list(session.exec(query.order_by(col(Request.starts_at), col(Request.id))))


def unreported(session: Session, interpreter_id: int, now: datetime) -> list[Request]:
    """The interpreter's sessions that have begun and have no report yet."""
    query = (
        select(Request)
        .outerjoin(Closeout, col(Closeout.request_id) == col(Request.id))
        .where(
            Request.interpreter_id == interpreter_id,
            col(Request.state).in_([RequestState.BOOKED.value, RequestState.COMPLETED.value]),
            col(Request.starts_at) <= now,
            col(Closeout.id).is_(None),
        )
    )
    return list(session.exec(query.order_by(col(Request.starts_at), col(Request.id))))


def active_school_contacts(session: Session, school_id: int) -> int:
    query = select(Member.id).where(
        Member.school_id == school_id, Member.role == Role.SCHOOL.value, col(Member.deactivated_at).is_(None)
    )
    return len(list(session.exec(query)))


def deactivate_member(
    session: Session,
    *,
    district_id: int,
    member_id: int,
    actor: str,
    now: datetime,
    hand_back_reason: str | None = None,
) -> Deactivation:
    """Take the member's access away (an interpreter's member: the interpreter's, see the module).

    `hand_back_reason`: the interpreter's bookings yet to begin are handed back with this reason (the
    coordinators read it); without it, such bookings make the deactivation fail, naming them.
    """
    member = member_in(session, district_id=district_id, member_id=member_id)
    if member.role == Role.INTERPRETER and member.interpreter_id is not None:
        return deactivate_interpreter(
            session,
            district_id=district_id,
            interpreter_id=member.interpreter_id,
            actor=actor,
            now=now,
            hand_back_reason=hand_back_reason,
        )
    role, name = Role(member.role), display_name(session, member)
    if member.deactivated_at is not None:
        return Deactivation((member_id,), role, name, already=True)
    if role is Role.COORDINATOR and _last_coordinator(session, member):
        raise IllegalTransition(
            N_(
                "{name} is the last active coordinator of this district and cannot be deactivated. "
                "Invite another coordinator first."
            ),
            name=name,
        )
    _end_access(session, member, actor=actor, now=now)
    contacts = active_school_contacts(session, member.school_id) if member.school_id is not None else None
    return Deactivation((member_id,), role, name, contacts_left=contacts)


def deactivate_interpreter(
    session: Session,
    *,
    district_id: int,
    interpreter_id: int,
    actor: str,
    now: datetime,
    hand_back_reason: str | None = None,
) -> Deactivation:
    """Take an interpreter out of the pool and end the access of all their members (see the module).

    The interpreter's row is locked first, as an Accept locks it (`offers.accept_offer`): a booking
    made meanwhile is either seen here or refused there.
    """
    interpreter = session.get(Interpreter, interpreter_id, with_for_update=True, populate_existing=True)
    if interpreter is None or interpreter.district_id != district_id:
        raise NotFound(
            N_("There is no interpreter {interpreter_id} in this district."), interpreter_id=interpreter_id
        )
    members = members_of_interpreter(session, interpreter_id)
    ids = tuple(m.id for m in members if m.id is not None)
    name = interpreter.name or f"#{interpreter_id}"
    if not interpreter.active and all(m.deactivated_at is not None for m in members):
        return Deactivation(ids, Role.INTERPRETER, name, already=True, interpreter_id=interpreter_id)
    ahead = bookings_ahead(session, interpreter_id, now)
    if ahead and hand_back_reason is None:
        raise IllegalTransition(
            N_(
                "{name} still has sessions ahead: {requests}. So that no school is left without its "
                "interpreter, these are handed back first: deactivate with the hand-back (on the "
                "command line: --hand-back)."
            ),
            name=name,
            requests=", ".join(f"#{r.id}" for r in ahead),
        )
    interpreter.active = False
    session.add(interpreter)
    session.flush()
    handed_back = _hand_back(session, ahead, interpreter_id, hand_back_reason or "", actor=actor, now=now)
    withdrawn = _withdraw_offers(session, interpreter_id, actor=actor, now=now)
    for member in members:
        if member.deactivated_at is None:
            _end_access(session, member, actor=actor, now=now)
    record(
        session,
        district_id=district_id,
        actor=actor,
        action="interpreter.deactivated",
        entity="interpreter",
        entity_id=interpreter_id,
        now=now,
        member_ids=list(ids),
        withdrawn_offer_ids=list(withdrawn),
        handed_back_request_ids=list(handed_back),
    )
    session.flush()
    return Deactivation(
        ids,
        Role.INTERPRETER,
        name,
        interpreter_id=interpreter_id,
        withdrawn_offer_ids=withdrawn,
        handed_back_request_ids=handed_back,
        unreported_request_ids=tuple(r.id for r in unreported(session, interpreter_id, now) if r.id),
    )


def _hand_back(
    session: Session, ahead: list[Request], interpreter_id: int, reason: str, *, actor: str, now: datetime
) -> tuple[int, ...]:
    """Each booking yet to begin goes back to matching, as if the interpreter had given it back."""
    for request in ahead:
        assert request.id is not None
        give_back(
            session, request_id=request.id, interpreter_id=interpreter_id, reason=reason, actor=actor, now=now
        )
    return tuple(r.id for r in ahead if r.id is not None)


def _withdraw_offers(session: Session, interpreter_id: int, *, actor: str, now: datetime) -> tuple[int, ...]:
    """Withdraw the interpreter's open offers (without a message each: the notice of the deactivation
    says so) and top each request's wave up from the others, as after a decline."""
    query = select(Offer).where(Offer.interpreter_id == interpreter_id, Offer.state == OfferState.OPEN.value)
    offers = list(session.exec(query.order_by(col(Offer.id))))
    for offer in offers:
        offer.state = OfferState.WITHDRAWN.value
        offer.responded_at = now
        session.add(offer)
    session.flush()
    for offer in offers:
        request = session.get(Request, offer.request_id)
        if request is not None and request.state == RequestState.OFFERED:
            fill_offers(session, request, actor=actor, now=now)
    return tuple(o.id for o in offers if o.id is not None)


def _last_coordinator(session: Session, member: Member) -> bool:
    query = select(Member.id).where(
        Member.district_id == member.district_id,
        Member.role == Role.COORDINATOR.value,
        col(Member.deactivated_at).is_(None),
        Member.id != member.id,
    )
    return session.exec(query.limit(1)).first() is None


def _end_access(session: Session, member: Member, *, actor: str, now: datetime) -> None:
    """Mark the member deactivated, drop what would let them act, and tell them once."""
    assert member.id is not None
    member.deactivated_at = now
    session.add(member)
    session.exec(delete(DialogState).where(col(DialogState.member_id) == member.id))
    # Notifications already on their way to the person's chats stop here; the notice below goes out.
    session.exec(
        update(Delivery)
        .where(
            col(Delivery.identity_id).in_(select(ChatIdentity.id).where(ChatIdentity.member_id == member.id)),
            col(Delivery.outbox_id).is_not(None),
            col(Delivery.sent_at).is_(None),
            col(Delivery.failed_at).is_(None),
        )
        .values(failed_at=now, last_error="access ended")
    )
    session.exec(
        update(Invite)
        .where(
            col(Invite.member_id) == member.id, col(Invite.used_at).is_(None), col(Invite.expires_at) > now
        )
        .values(expires_at=now)
    )
    if member.interpreter_id is not None:  # an invite not yet used would make them a new member
        session.exec(
            update(Invite)
            .where(
                col(Invite.interpreter_id) == member.interpreter_id,
                col(Invite.used_at).is_(None),
                col(Invite.expires_at) > now,
            )
            .values(expires_at=now)
        )
    contact = session.exec(
        select(OperatorContact).where(
            OperatorContact.district_id == member.district_id, OperatorContact.member_id == member.id
        )
    ).first()
    if contact is not None:  # technical alerts go to the coordinators again
        session.delete(contact)
    record(
        session,
        district_id=member.district_id,
        actor=actor,
        action="member.deactivated",
        entity="member",
        entity_id=member.id,
        now=now,
        role=member.role,
        operator_contact_cleared=contact is not None,
    )
    notify(
        session,
        district_id=member.district_id,
        recipient=Recipient.MEMBER,
        recipient_id=member.id,
        notice=MemberDeactivated(member_id=member.id),
        now=now,
    )


ERASED = "person.erased"  # the audit action of an erasure (services.personal_data)


def erased_before(session: Session, member_id: int) -> bool:
    """Whether the member's data was erased already (its audit event is kept with the accounts)."""
    query = select(AuditEvent.id).where(
        AuditEvent.entity == "member", AuditEvent.entity_id == member_id, AuditEvent.action == ERASED
    )
    return session.exec(query.limit(1)).first() is not None


def activate_member(
    session: Session, *, district_id: int, member_id: int, actor: str, now: datetime
) -> Activation:
    """Give a deactivated member access again (an interpreter: back in the pool, with all their members).

    The chat links still there work again; where retention has removed them, an invite links a chat.
    """
    member = member_in(session, district_id=district_id, member_id=member_id)
    if erased_before(session, member_id):
        # What is left of them is a name in the books, not a person who could be reached again.
        raise IllegalTransition(
            N_(
                "The data of member {member_id} was erased, so they cannot be given access again. If "
                "they come back, invite them anew."
            ),
            member_id=member_id,
        )
    members = [member]
    interpreter = None
    if member.role == Role.INTERPRETER and member.interpreter_id is not None:
        interpreter = session.get(Interpreter, member.interpreter_id, with_for_update=True)
        members = members_of_interpreter(session, member.interpreter_id)
    ids = tuple(m.id for m in members if m.id is not None)
    role, name = Role(member.role), display_name(session, member)
    if all(m.deactivated_at is None for m in members) and (interpreter is None or interpreter.active):
        return Activation(ids, role, name, already=True)
    if interpreter is not None:
        interpreter.active = True
        session.add(interpreter)
    for each in members:
        if each.deactivated_at is not None:
            assert each.id is not None
            each.deactivated_at = None
            session.add(each)
            record(
                session,
                district_id=district_id,
                actor=actor,
                action="member.activated",
                entity="member",
                entity_id=each.id,
                now=now,
                role=each.role,
            )
    return Activation(ids, role, name)


@dataclass(frozen=True)
class Person:
    """A member as `person list` shows them: what a coordinator needs to pick the right id."""

    member_id: int
    role: Role
    name: str
    deactivated_at: datetime | None
    chats: int


def people(session: Session, district_id: int) -> list[Person]:
    """The district's members by role and id, each with their name, whether deactivated, and linked chats."""
    query = select(Member).where(Member.district_id == district_id).order_by(col(Member.role), col(Member.id))
    found = []
    for member in session.exec(query):
        assert member.id is not None
        chats = session.exec(select(ChatIdentity.id).where(ChatIdentity.member_id == member.id)).all()
        found.append(
            Person(
                member.id, Role(member.role), display_name(session, member), member.deactivated_at, len(chats)
            )
        )
    return found


def deactivatable(session: Session, district_id: int) -> list[Member]:
    """The district's members who still have access and are not coordinators: the ones /deactivate lists
    (a coordinator is deactivated by id)."""
    query = select(Member).where(
        Member.district_id == district_id,
        col(Member.role).in_([Role.INTERPRETER.value, Role.SCHOOL.value]),
        col(Member.deactivated_at).is_(None),
    )
    return list(session.exec(query.order_by(col(Member.role), col(Member.id))))
