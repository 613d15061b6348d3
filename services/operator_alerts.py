"""Operator alerts: the few things a person must hear about because the bot cannot fix them itself.

Who hears what:
- technical alerts (a due row given up, a platform unreachable for a while) go to the district's
  operator contact (`set_operator`, `python -m bot operator set`) when one is set and has a linked
  chat, else to the coordinators;
- a notification that could not be delivered goes to the coordinators (they know the person) and
  to the operator contact too;
- an interpreter whom an offer could not reach, because no chat is linked to them, goes to the
  coordinators: they send the invite.

Each alert is written once: a marker row (`services.due.mark_once`, unique per kind, subject and
variant) is written in the same transaction as the alert's notification, so a second attempt, from
this process or another, is a no-op, and an alert exists exactly when its marker does.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from db.models import BookingChange, ChatIdentity, DueTask, Interpreter, Member, OperatorContact
from services import due
from services.audit import record
from services.districts import all_districts
from services.errors import InvalidInput
from services.notices import (
    DueTaskFailed,
    InterpreterWithoutChat,
    NoticeParams,
    PlatformReachable,
    PlatformUnreachable,
)
from services.outbox import notify
from services.text import N_
from services.vocabulary import Recipient, Role

DOWN_AFTER_MINUTES = 15  # a platform away this long is an outage someone should know of

_ABOUT_A_REQUEST = frozenset(
    {
        due.Kind.OFFER_EXPIRY,
        due.Kind.REMINDER,
        due.Kind.CLOSEOUT_PROMPT,
        due.Kind.CLOSEOUT_REMINDER,
        due.Kind.AUTO_CONFIRM,
    }
)


@dataclass(frozen=True)
class OperatorView:
    """The district's operator contact as the CLI shows it."""

    member_id: int
    name: str
    role: str
    has_chat: bool
    set_by: str
    set_at: datetime


# --- the operator contact ---------------------------------------------------------------------------


def has_chat(session: Session, member_id: int) -> bool:
    """Whether any chat is linked to the member (so a notification can reach them)."""
    query = select(ChatIdentity.id).where(ChatIdentity.member_id == member_id).limit(1)
    return session.exec(query).first() is not None


def operator_of(session: Session, district_id: int) -> Member | None:
    """The district's operator contact, if one is set."""
    contact = session.exec(select(OperatorContact).where(OperatorContact.district_id == district_id)).first()
    return session.get(Member, contact.member_id) if contact is not None else None


def show_operator(session: Session, district_id: int) -> OperatorView | None:
    contact = session.exec(select(OperatorContact).where(OperatorContact.district_id == district_id)).first()
    if contact is None:
        return None
    member = session.get(Member, contact.member_id)
    assert member is not None
    return OperatorView(
        member_id=contact.member_id,
        name=member.name,
        role=member.role,
        has_chat=has_chat(session, contact.member_id),
        set_by=contact.set_by,
        set_at=contact.set_at,
    )


def candidates(session: Session, district_id: int) -> list[tuple[Member, bool]]:
    """Who could be the operator contact: the district's coordinators, each with whether a chat is linked."""
    query = (
        select(Member)
        .where(Member.district_id == district_id, Member.role == Role.COORDINATOR.value)
        .order_by(col(Member.id))
    )
    return [(m, has_chat(session, m.id or 0)) for m in session.exec(query)]


def set_operator(session: Session, *, district_id: int, member_id: int, actor: str, now: datetime) -> Member:
    """Make a member of the district its operator contact (replacing one set before)."""
    member = session.get(Member, member_id)
    if member is None or member.district_id != district_id:
        raise InvalidInput(N_("There is no member {id} in this district."), id=member_id)
    contact = session.exec(select(OperatorContact).where(OperatorContact.district_id == district_id)).first()
    if contact is None:
        contact = OperatorContact(district_id=district_id, member_id=member_id, set_by=actor, set_at=now)
    contact.member_id, contact.set_by, contact.set_at = member_id, actor, now
    session.add(contact)
    record(
        session,
        district_id=district_id,
        actor=actor,
        action="operator.set",
        entity="member",
        entity_id=member_id,
        now=now,
    )
    return member


def clear_operator(session: Session, *, district_id: int, actor: str, now: datetime) -> bool:
    """No operator contact any more: technical alerts go to the coordinators; False if none was set."""
    contact = session.exec(select(OperatorContact).where(OperatorContact.district_id == district_id)).first()
    if contact is None:
        return False
    session.delete(contact)
    record(
        session,
        district_id=district_id,
        actor=actor,
        action="operator.cleared",
        entity="member",
        entity_id=contact.member_id,
        now=now,
    )
    return True


def _reachable_operator(session: Session, district_id: int) -> Member | None:
    """The operator contact, if set and reachable: one without a chat would lose every alert."""
    member = operator_of(session, district_id)
    if member is None or member.id is None or not has_chat(session, member.id):
        return None
    return member


def technical_recipient(session: Session, district_id: int) -> tuple[Recipient, int]:
    """Where a technical alert goes: the reachable operator contact, else the coordinators."""
    member = _reachable_operator(session, district_id)
    if member is not None and member.id is not None:
        return Recipient.MEMBER, member.id
    return Recipient.COORDINATORS, district_id


def also_to_operator(session: Session, district_id: int, notice: NoticeParams, now: datetime) -> bool:
    """Send a copy of a coordinators' alert to the operator contact, unless they are a coordinator
    (who has it already); True if a copy was written."""
    member = _reachable_operator(session, district_id)
    if member is None or member.id is None or member.role == Role.COORDINATOR.value:
        return False
    notify(
        session,
        district_id=district_id,
        recipient=Recipient.MEMBER,
        recipient_id=member.id,
        notice=notice,
        now=now,
    )
    return True


def _tell_technical(session: Session, district_id: int, notice: NoticeParams, now: datetime) -> None:
    """A technical alert to the reachable operator contact, else the coordinators."""
    recipient, recipient_id = technical_recipient(session, district_id)
    notify(
        session,
        district_id=district_id,
        recipient=recipient,
        recipient_id=recipient_id,
        notice=notice,
        now=now,
    )


# --- the alerts -------------------------------------------------------------------------------------


def due_task_failed(session: Session, task: DueTask, now: datetime) -> bool:
    """A due row was given up after its attempts: tell the operators, once (call in the transaction
    that marks it failed). True if the alert was written now."""
    assert task.id is not None
    if not due.mark_once(
        session, district_id=task.district_id, kind=due.Kind.ALERT_DUE_FAILED, subject_id=task.id, now=now
    ):
        return False
    notice = DueTaskFailed(
        task_id=task.id,
        task_kind=task.kind,
        request_id=_request_of(session, task),
        attempts=task.attempts,
        error=task.last_error or "",
        failed_at=now,
    )
    _tell_technical(session, task.district_id, notice, now)
    return True


def _request_of(session: Session, task: DueTask) -> int | None:
    """The request a due row was about, if it was about one."""
    try:
        kind = due.Kind(task.kind)
    except ValueError:  # a kind of a newer version, met by an older one
        return None
    if kind in _ABOUT_A_REQUEST:
        return task.subject_id
    if kind is due.Kind.CHANGE_EXPIRY:
        change = session.get(BookingChange, task.subject_id)
        return change.request_id if change is not None else None
    return None


def interpreter_unreachable(
    session: Session, *, district_id: int, interpreter_id: int, now: datetime
) -> bool:
    """A notification for an interpreter reached nobody (no linked chat): tell the coordinators, once
    per interpreter. True if the alert was written now."""
    interpreter = session.get(Interpreter, interpreter_id)
    if interpreter is None or not interpreter.active:  # deactivated: reaching nobody is the point
        return False
    if not due.mark_once(
        session, district_id=district_id, kind=due.Kind.ALERT_NO_CHAT, subject_id=interpreter_id, now=now
    ):
        return False
    notify(
        session,
        district_id=district_id,
        recipient=Recipient.COORDINATORS,
        recipient_id=district_id,
        notice=InterpreterWithoutChat(interpreter_id=interpreter_id),
        now=now,
    )
    return True


def _outage(platform: str, since: datetime) -> str:
    """The key of one outage: the platform and when it began, to the second."""
    return f"{platform}:{since.strftime('%Y%m%dT%H%M%S')}"


def platform_unreachable(session: Session, *, platform: str, since: datetime, now: datetime) -> int:
    """A platform has been unreachable since `since`: every district's operators hear of it once per
    outage; returns how many districts were told now."""
    told = 0
    outage = _outage(platform, since)
    kind = due.Kind.ALERT_PLATFORM_DOWN
    for district in all_districts(session):
        assert district.id is not None
        if due.mark_once(
            session, district_id=district.id, kind=kind, subject_id=district.id, variant=outage, now=now
        ):
            _tell_technical(session, district.id, PlatformUnreachable(platform=platform, since_at=since), now)
            told += 1
    return told


def platform_reachable(session: Session, *, platform: str, since: datetime, now: datetime) -> int:
    """The platform of an outage reported by `platform_unreachable` answers again: the districts told
    of it hear that it is over, once; returns how many."""
    told = 0
    outage = _outage(platform, since)
    for district in all_districts(session):
        assert district.id is not None
        reported = session.exec(
            select(DueTask.id).where(
                DueTask.kind == due.Kind.ALERT_PLATFORM_DOWN.value,
                DueTask.subject_id == district.id,
                DueTask.variant == outage,
            )
        ).first()
        kind = due.Kind.ALERT_PLATFORM_BACK
        if reported is None or not due.mark_once(
            session, district_id=district.id, kind=kind, subject_id=district.id, variant=outage, now=now
        ):
            continue
        _tell_technical(
            session, district.id, PlatformReachable(platform=platform, since_at=since, back_at=now), now
        )
        told += 1
    return told
