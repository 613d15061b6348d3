"""A person's data: everything stored about them (Art. 15 DSGVO) and its erasure (Art. 17).

`export` gathers, table by table, every row that concerns one member, each with all its columns,
so the file answers "what do you store about me" completely; `docs/datenschutz.md` names under
each table (`Betrifft:`) which kinds of person it concerns, and a test holds the two together.

`erase` removes the person's contact data, chat links, dialog and the free texts they wrote, and
keeps, referred to by id, what budget law requires (requests, reports, the budget's books and the
billing, where the interpreter's name stays): Art. 17(3)(b). It says exactly what it removed and
what it kept until when. A second erasure finds nothing more to remove and tells nobody again.
"""

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, func, or_
from sqlmodel import Session, SQLModel, col, select

from db.models import (
    Absence,
    AuditEvent,
    BookingChange,
    Budget,
    ChatIdentity,
    Closeout,
    Delivery,
    DialogState,
    Interpreter,
    InterpreterLanguage,
    Invite,
    LedgerEntry,
    Member,
    Offer,
    OperatorContact,
    OutboxMessage,
    Request,
    School,
    StrangerAttempt,
)
from services.access import ERASED, deactivate_member, erased_before
from services.audit import record
from services.billing_report import paid_in_year
from services.clock import BERLIN
from services.errors import NotFound
from services.notices import PersonErased
from services.outbox import notify
from services.policy import load_policy
from services.retention import DEACTIVATED_LINKS, purged_place
from services.strangers import account_hash
from services.text import N_
from services.vocabulary import Recipient, RequestState, Role

FORMAT = "dolmetscherpool-export/1"


def actor_of(member_id: int) -> str:
    """How audit rows, reports and the ledger name a member who acted (`member:12`)."""
    return f"member:{member_id}"


def _plain(value: object) -> object:
    """A column's value as JSON: times as ISO text in UTC, a file by its size."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return {"bytes": len(value)}
    return value


def _row(row: SQLModel) -> dict[str, object]:
    """Every column of a row, by its column name."""
    table = type(row).__table__  # type: ignore[attr-defined]
    return {column.name: _plain(getattr(row, column.name)) for column in table.columns}


def _rows(session: Session, model: type[SQLModel], *where: ColumnElement[bool]) -> list[dict[str, object]]:
    if not where:
        return []
    id_column = col(model.id)  # type: ignore[attr-defined]
    found = session.exec(select(model).where(or_(*where)).order_by(id_column))
    return [_row(row) for row in found]


def _ids(rows: Iterable[dict[str, object]], key: str = "id") -> list[int]:
    return sorted({value for row in rows if isinstance(value := row[key], int)})


def get_member(session: Session, member_id: int, district_id: int | None = None) -> Member:
    """The member, or NotFound (also when they belong to another district than `district_id`)."""
    member = session.get(Member, member_id)
    if member is None or (district_id is not None and member.district_id != district_id):
        raise NotFound(N_("There is no person {id} in this district."), id=member_id)
    return member


def export(session: Session, member_id: int) -> dict[str, Any]:
    """Everything stored about one member, JSON-ready: per table the rows that concern them.

    An interpreter's file holds their profile, languages, absences, offers, the bookings with what
    they were shown, the reports, the budget's entries of their bookings and their pay per year; a
    school contact's the requests they made and their school; everyone's their chats, dialog,
    invites, the messages to their chats and the audit events they caused or that concern them.
    """
    member = get_member(session, member_id)
    actor = actor_of(member_id)
    interpreter_id = member.interpreter_id if member.role == Role.INTERPRETER.value else None
    tables: dict[str, list[dict[str, object]]] = {"member": [_row(member)]}
    if member.role == Role.SCHOOL.value and member.school_id is not None:
        tables["school"] = _rows(session, School, col(School.id) == member.school_id)
    identities = _rows(session, ChatIdentity, col(ChatIdentity.member_id) == member_id)
    tables["chat_identity"] = identities
    tables["dialog_state"] = _rows(session, DialogState, col(DialogState.member_id) == member_id)
    invites_of = [col(Invite.member_id) == member_id]
    booked: list[ColumnElement[bool]] = [col(Request.created_by_member_id) == member_id]
    if interpreter_id is not None:
        tables["interpreter"] = _rows(session, Interpreter, col(Interpreter.id) == interpreter_id)
        tables["interpreter_language"] = _rows(
            session, InterpreterLanguage, col(InterpreterLanguage.interpreter_id) == interpreter_id
        )
        tables["absence"] = _rows(session, Absence, col(Absence.interpreter_id) == interpreter_id)
        tables["offer"] = _rows(session, Offer, col(Offer.interpreter_id) == interpreter_id)
        invites_of.append(col(Invite.interpreter_id) == interpreter_id)
        booked.append(col(Request.interpreter_id) == interpreter_id)
    tables["invite"] = _rows(session, Invite, *invites_of)
    requests: list[dict[str, object]] = []
    if member.role != Role.COORDINATOR.value:  # coordinators make no requests and are booked for none
        requests = _rows(session, Request, *booked)
        tables["request"] = requests
        of_requests = [col(BookingChange.request_id).in_(_ids(requests))] if requests else []
        tables["booking_change"] = _rows(
            session, BookingChange, col(BookingChange.requested_by) == actor, *of_requests
        )
    request_ids = _ids(requests)
    # The reports and the budget's entries of the requests they made or were booked for, and those they
    # decided or booked themselves (a coordinator's correction).
    mine = [col(Closeout.reported_by) == actor, col(Closeout.decided_by) == actor]
    entries = [col(LedgerEntry.actor) == actor]
    if request_ids:
        mine.append(col(Closeout.request_id).in_(request_ids))
        entries.append(col(LedgerEntry.request_id).in_(request_ids))
    tables["closeout"] = _rows(session, Closeout, *mine)
    tables["ledger_entry"] = _rows(session, LedgerEntry, *entries)
    deliveries = _rows(session, Delivery, col(Delivery.identity_id).in_(_ids(identities) or [0]))
    tables["delivery"] = deliveries
    tables["outbox_message"] = _rows(
        session, OutboxMessage, *_addressed_to(member, _ids(deliveries, "outbox_id"))
    )
    tables["audit_event"] = _rows(session, AuditEvent, *_audit_about(member))
    tables["operator_contact"] = _rows(session, OperatorContact, col(OperatorContact.member_id) == member_id)
    exported: dict[str, Any] = {
        "format": FORMAT,
        "member_id": member_id,
        "role": member.role,
        "tables": {name: rows for name, rows in tables.items()},
    }
    if interpreter_id is not None:
        exported["earnings"] = _earnings(session, member.district_id, interpreter_id, requests)
    return exported


def _addressed_to(member: Member, outbox_ids: Sequence[int]) -> list[ColumnElement[bool]]:
    """The outbox rows for this person: to them by name or as interpreter, or delivered to their chats."""
    assert member.id is not None
    where: list[ColumnElement[bool]] = [
        (col(OutboxMessage.recipient_type) == Recipient.MEMBER.value)
        & (col(OutboxMessage.recipient_id) == member.id)
    ]
    if member.role == Role.INTERPRETER.value and member.interpreter_id is not None:
        where.append(
            (col(OutboxMessage.recipient_type) == Recipient.INTERPRETER.value)
            & (col(OutboxMessage.recipient_id) == member.interpreter_id)
        )
    if outbox_ids:
        where.append(col(OutboxMessage.id).in_(list(outbox_ids)))
    return [w & (col(OutboxMessage.district_id) == member.district_id) for w in where]


def _audit_about(member: Member) -> list[ColumnElement[bool]]:
    """Audit events the person caused, and those about them (as a member or as an interpreter)."""
    assert member.id is not None
    where: list[ColumnElement[bool]] = [
        col(AuditEvent.actor) == actor_of(member.id),
        (col(AuditEvent.entity) == "member") & (col(AuditEvent.entity_id) == member.id),
    ]
    if member.role == Role.INTERPRETER.value and member.interpreter_id is not None:
        where.append(
            (col(AuditEvent.entity) == "interpreter") & (col(AuditEvent.entity_id) == member.interpreter_id)
        )
    return [w & (col(AuditEvent.district_id) == member.district_id) for w in where]


def _earnings(
    session: Session, district_id: int, interpreter_id: int, requests: Sequence[dict[str, object]]
) -> list[dict[str, int]]:
    """The pay per calendar year of the sessions (the volunteer allowance counts by it)."""
    years = sorted(
        {
            datetime.fromisoformat(str(row["starts_at"])).astimezone(BERLIN).year
            for row in requests
            if row["interpreter_id"] == interpreter_id
        }
    )
    return [
        {"year": year, "paid_cents": paid_in_year(session, district_id, interpreter_id, year)}
        for year in years
    ]


def to_json(exported: dict[str, Any]) -> bytes:
    """An export as a UTF-8 JSON file, indented for reading."""
    return json.dumps(exported, ensure_ascii=False, indent=2, sort_keys=True).encode()


def export_json(session: Session, member_id: int) -> bytes:
    """The export of one member as a JSON file."""
    return to_json(export(session, member_id))


# --- erasure (Art. 17) -------------------------------------------------------------------------------

REDACTED = "[…]"  # what stands where someone's contact data or words were
_CODE = re.compile(r"[a-z_]{1,40}")  # a reason that is a code (`not_filled`), not words someone typed
MIN_NEEDLE = 4  # shorter names would match unrelated words

# What an erasure removes and keeps, as `ErasureReport` counts them; the texts say it to the person.
REMOVED: dict[str, str] = {
    "contact_data": N_("contact data (phone, e-mail, gender, home town and coordinates, languages)"),
    "absences": N_("absences"),
    "name": N_("name and language setting"),
    "chat_links": N_("chat links"),
    "messages": N_("messages to the linked chats"),
    "notifications": N_("notifications waiting for the person"),
    "dialog": N_("unfinished dialog"),
    "invites": N_("invite codes"),
    "operator_contact": N_("role as contact for technical alerts"),
    "free_texts": N_("typed notes, places and reasons"),
    "mentions": N_("copies of the contact data, name or typed words in other texts"),
}
KEPT: dict[str, str] = {
    "requests": N_("requests and bookings (date, language, mode, duration, school)"),
    "offers": N_("offers and the answers to them"),
    "closeouts": N_("reports after sessions (minutes, km, expenses, amount)"),
    "ledger": N_("entries in the budget's books"),
    "billing_name": N_("the interpreter's name in the billing of the sessions"),
    "audit": N_("the record of actions and when (without typed texts)"),
    "member": N_("the member number and role, to which the above refer"),
    "upcoming_texts": N_("note and place of requests still to take place, until some time after the session"),
}
# What an erasure of each role removes and keeps, as the confirmation lists it beforehand.
REMOVES: dict[Role, tuple[str, ...]] = {
    Role.INTERPRETER: (
        "name",
        "contact_data",
        "absences",
        "chat_links",
        "messages",
        "dialog",
        "free_texts",
        "mentions",
    ),
    Role.SCHOOL: ("name", "chat_links", "messages", "dialog", "free_texts", "mentions"),
    Role.COORDINATOR: ("name", "chat_links", "messages", "dialog", "free_texts", "mentions"),
}
KEEPS: dict[Role, tuple[str, ...]] = {
    Role.INTERPRETER: ("requests", "offers", "closeouts", "ledger", "billing_name", "audit", "member"),
    Role.SCHOOL: ("requests", "closeouts", "ledger", "audit", "member"),
    Role.COORDINATOR: ("closeouts", "ledger", "audit", "member"),
}


@dataclass(frozen=True)
class Kept:
    """What an erasure kept for budget law: a KEPT key, how many rows, and until when at the latest."""

    what: str
    count: int
    until: date


@dataclass(frozen=True)
class ErasureReport:
    """What `erase` removed (REMOVED key, rows) and kept; `already`: it had been erased before."""

    member_id: int
    role: Role
    already: bool
    removed: tuple[tuple[str, int], ...]
    kept: tuple[Kept, ...]
    retention: timedelta  # the policy's retention_accounts

    @property
    def removed_total(self) -> int:
        return sum(count for _, count in self.removed)


def erase(
    session: Session,
    *,
    member_id: int,
    actor: str,
    now: datetime,
    district_id: int | None = None,
    hand_back_reason: str | None = None,
) -> ErasureReport:
    """Erase what is stored about a member, keeping what budget law requires (Art. 17(3)(b)).

    Deactivates them first (`services.access`: refused for the district's last coordinator and, without
    `hand_back_reason`, for an interpreter with bookings yet to begin). Then removes their contact data, chat
    links with the messages to them, dialog, invites and typed texts, and replaces their contact data,
    name and typed texts wherever else they were copied (notifications, answers, audit, the books'
    reasons) with REDACTED. Requests, offers, reports and the ledger stay, by id; an interpreter's
    name stays on their row because the billing needs it. The coordinators are told once.
    """
    member = get_member(session, member_id, district_id)
    already = erased_before(session, member_id)
    # The deactivation already drops the dialog and the operator role: counted here, to be reported.
    dialogs = _count(session, DialogState, col(DialogState.member_id) == member_id)
    operator = _count(session, OperatorContact, col(OperatorContact.member_id) == member_id)
    deactivate_member(
        session,
        district_id=member.district_id,
        member_id=member_id,
        actor=actor,
        now=now,
        hand_back_reason=hand_back_reason,
    )
    interpreter = (
        session.get(Interpreter, member.interpreter_id)
        if member.role == Role.INTERPRETER.value and member.interpreter_id is not None
        else None
    )
    needles = _needles(session, member, interpreter)
    removed: dict[str, int] = {}
    if interpreter is not None:
        removed.update(_forget_interpreter(session, interpreter))
    removed.update(_forget_member(session, member))
    removed["dialog"] += dialogs
    removed["operator_contact"] += operator
    removed["free_texts"] = _forget_free_texts(session, member, now, needles)
    removed["mentions"] = _redact(session, member.district_id, needles)
    report = ErasureReport(
        member_id=member_id,
        role=Role(member.role),
        already=already,
        removed=tuple((key, count) for key, count in removed.items() if count),
        kept=_kept(session, member, now),
        retention=load_policy(session, member.district_id).retention_accounts,
    )
    if not already:
        record(
            session,
            district_id=member.district_id,
            actor=actor,
            action=ERASED,
            entity="member",
            entity_id=member_id,
            now=now,
            role=member.role,
        )
        notify(
            session,
            district_id=member.district_id,
            recipient=Recipient.COORDINATORS,
            recipient_id=member.district_id,
            notice=PersonErased(member_id=member_id, role=member.role),
            now=now,
        )
    session.flush()
    return report


def erase_lapsed(session: Session, district_id: int, *, now: datetime) -> list[int]:
    """Erase the members deactivated longer than `DEACTIVATED_LINKS` ago and not erased yet; their ids.

    Their data is kept "while active" (DESIGN §9): a deactivation that stood for that long is taken as
    the end, so contact data, names and typed texts go as on a request (Art. 17), the books stay, and
    the coordinators are told. Within the period a coordinator can still give access back.
    """
    lapsed = session.exec(
        select(Member.id)
        .where(
            Member.district_id == district_id,
            col(Member.deactivated_at).is_not(None),
            col(Member.deactivated_at) <= now - DEACTIVATED_LINKS,
        )
        .order_by(col(Member.id))
    ).all()
    erased = []
    for member_id in lapsed:
        if member_id is not None and not erased_before(session, member_id):
            erase(session, member_id=member_id, actor=SYSTEM, now=now, district_id=district_id)
            erased.append(member_id)
    return erased


SYSTEM = "system:retention"


def _needles(session: Session, member: Member, interpreter: Interpreter | None) -> list[str]:
    """What must not remain anywhere: their contact data, names, and what they typed as reasons."""
    assert member.id is not None
    found = [member.name]
    if interpreter is not None:
        digits = "".join(c for c in interpreter.phone if c.isdigit())
        found += [interpreter.phone, digits, interpreter.email, interpreter.name]
    for detail in session.exec(select(AuditEvent.detail).where(AuditEvent.actor == actor_of(member.id))):
        reason = _detail(detail).get("reason")
        if isinstance(reason, str) and not _CODE.fullmatch(reason):
            found.append(reason)
    for closing in _decided_by(session, member.id, "closeout.disputed"):
        found.append(closing.dispute_reason or "")
    for closing in _decided_by(session, member.id, "closeout.corrected"):
        found.append(closing.correction_reason or "")
    return sorted({n.strip() for n in found if len(n.strip()) >= MIN_NEEDLE}, key=len, reverse=True)


def _detail(text: str) -> dict[str, Any]:
    try:
        loaded = json.loads(text or "{}")
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _decided_by(session: Session, member_id: int, action: str) -> list[Closeout]:
    """The closeouts whose dispute or correction (`action`) this member typed."""
    request_ids = select(AuditEvent.entity_id).where(
        AuditEvent.actor == actor_of(member_id), AuditEvent.action == action, AuditEvent.entity == "request"
    )
    return list(session.exec(select(Closeout).where(col(Closeout.request_id).in_(request_ids))))


def _forget_interpreter(session: Session, interpreter: Interpreter) -> dict[str, int]:
    """Their contact and profile data goes; the name stays for the billing (DESIGN §9)."""
    assert interpreter.id is not None
    had = bool(
        interpreter.phone
        or interpreter.email
        or interpreter.gender
        or interpreter.municipality
        or interpreter.modes
    )
    interpreter.phone = interpreter.email = interpreter.municipality = interpreter.modes = ""
    interpreter.gender = None
    interpreter.latitude = interpreter.longitude = 0.0
    interpreter.active = False
    session.add(interpreter)
    languages = _delete(
        session, InterpreterLanguage, col(InterpreterLanguage.interpreter_id) == interpreter.id
    )
    absences = _delete(session, Absence, col(Absence.interpreter_id) == interpreter.id)
    outbox = col(OutboxMessage.id).in_(
        select(OutboxMessage.id).where(
            OutboxMessage.recipient_type == Recipient.INTERPRETER.value,
            OutboxMessage.recipient_id == interpreter.id,
            OutboxMessage.district_id == interpreter.district_id,
        )
    )
    _delete(session, Delivery, col(Delivery.outbox_id).in_(select(OutboxMessage.id).where(outbox)))
    notifications = _delete(session, OutboxMessage, outbox)
    invites = _delete(session, Invite, col(Invite.interpreter_id) == interpreter.id)
    return {
        "contact_data": int(had) + languages,
        "absences": absences,
        "notifications": notifications,
        "invites": invites,
    }


def _forget_member(session: Session, member: Member) -> dict[str, int]:
    """Name, language, chats with every message to them, dialog, invites, strangers' counters."""
    assert member.id is not None
    named = int(bool(member.name or member.locale))
    member.name, member.locale, member.notify_everywhere = "", None, False
    session.add(member)
    identities = list(session.exec(select(ChatIdentity).where(ChatIdentity.member_id == member.id)))
    for identity in identities:
        _delete(
            session,
            StrangerAttempt,
            (col(StrangerAttempt.platform) == identity.platform)
            & (col(StrangerAttempt.user_hash) == account_hash(identity.platform, identity.user_id)),
        )
    identity_ids = [i.id for i in identities if i.id is not None]
    messages = _delete(session, Delivery, col(Delivery.identity_id).in_(identity_ids or [0]))
    to_them = col(OutboxMessage.id).in_(
        select(OutboxMessage.id).where(
            OutboxMessage.recipient_type == Recipient.MEMBER.value, OutboxMessage.recipient_id == member.id
        )
    )
    _delete(session, Delivery, col(Delivery.outbox_id).in_(select(OutboxMessage.id).where(to_them)))
    return {
        "name": named,
        "chat_links": _delete(session, ChatIdentity, col(ChatIdentity.member_id) == member.id),
        "messages": messages,
        "notifications": _delete(session, OutboxMessage, to_them),
        "dialog": _delete(session, DialogState, col(DialogState.member_id) == member.id),
        "invites": _delete(session, Invite, col(Invite.member_id) == member.id),
        "operator_contact": _delete(session, OperatorContact, col(OperatorContact.member_id) == member.id),
    }


def _count(session: Session, model: type[SQLModel], where: ColumnElement[bool]) -> int:
    return int(session.exec(select(func.count()).select_from(model).where(where)).one())


def _delete(session: Session, model: type[SQLModel], where: ColumnElement[bool]) -> int:
    session.flush()  # rows the ORM still holds are written first, so the statement sees them
    result = session.exec(delete(model).where(where).execution_options(synchronize_session="fetch"))
    return int(result.rowcount or 0)


_LIVE = (
    RequestState.REQUESTED,
    RequestState.AWAITING_APPROVAL,
    RequestState.OFFERED,
    RequestState.BOOKED,
)


def _still_needed(request: Request, now: datetime) -> bool:
    """A request whose session is yet to be held: the booked interpreter still needs its note and place."""
    ends = request.starts_at + timedelta(minutes=request.duration_minutes)
    return request.state in {s.value for s in _LIVE} and ends > now


def _forget_free_texts(session: Session, member: Member, now: datetime, needles: Sequence[str]) -> int:
    """Clear what they typed: their requests' notes and places once the session is over (an in-person
    place becomes the school's address, as in `services.retention`), their disputes' and corrections'
    reasons, and the reasons in the record of what they did. Returns how many rows changed."""
    assert member.id is not None
    changed = 0
    mine = session.exec(select(Request).where(Request.created_by_member_id == member.id)).all()
    for request in mine:
        if _still_needed(request, now):
            continue
        school = session.get(School, request.school_id)
        place = purged_place(request.mode, school.address if school is not None else "")
        if request.note or request.place != place:
            request.note, request.place = "", place
            session.add(request)
            changed += 1
    for change in session.exec(
        select(BookingChange).where(
            BookingChange.requested_by == actor_of(member.id), BookingChange.place != ""
        )
    ):
        changed_request = session.get(Request, change.request_id)
        if changed_request is not None and not _still_needed(changed_request, now):
            change.place = ""
            session.add(change)
            changed += 1
    for closing in _decided_by(session, member.id, "closeout.disputed"):
        if closing.dispute_reason:
            closing.dispute_reason = None
            session.add(closing)
            changed += 1
    for closing in _decided_by(session, member.id, "closeout.corrected"):
        if closing.correction_reason:
            closing.correction_reason = None
            session.add(closing)
            changed += 1
    for event in session.exec(select(AuditEvent).where(AuditEvent.actor == actor_of(member.id))):
        detail = _detail(event.detail)
        reason = detail.get("reason")
        if isinstance(reason, str) and not _CODE.fullmatch(reason):
            detail["reason"] = None
            event.detail = json.dumps(detail, sort_keys=True)
            session.add(event)
            changed += 1
    return changed


def _pattern(needles: Sequence[str]) -> re.Pattern[str] | None:
    if not needles:
        return None
    return re.compile("|".join(_whole(n) for n in needles), re.IGNORECASE)


def _whole(needle: str) -> str:
    """A needle that starts or ends with a letter matches only as whole words there, so erasing "Anna"
    leaves "Annahme" alone; digits and symbols (a phone number inside "+49…") match anywhere."""
    before = r"(?<!\w)" if needle[0].isalpha() else ""
    after = r"(?!\w)" if needle[-1].isalpha() else ""
    return before + re.escape(needle) + after


def _redact_json(text: str, pattern: re.Pattern[str]) -> str:
    """The JSON text with every matching string inside it redacted (its keys and numbers kept)."""

    def walk(value: object) -> object:
        if isinstance(value, str):
            return pattern.sub(REDACTED, value)
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        return value

    try:
        loaded = json.loads(text)
    except ValueError:
        return pattern.sub(REDACTED, text)
    return json.dumps(walk(loaded), sort_keys=True)


_ASCII = re.compile(r"[\x00-\x7f]+")


def _probe(needle: str) -> str:
    """What the SQL filter seeks for a needle: its longest ASCII stretch, in lower case. SQLite's
    lower() folds ASCII letters only, and JSON text holds `Ö` as `\\u00d6`: "ÖZTÜRK" in any case or
    form holds "zt" then, and the regex on the rows found decides. A needle without two ASCII letters
    in a row (Arabic script, which has no case) is sought as it is."""
    stretches = [s for s in _ASCII.findall(needle.lower()) if len(s.strip()) >= 2]
    return max(stretches, key=len) if stretches else needle


def _redact(session: Session, district_id: int, needles: Sequence[str]) -> int:
    """Replace their contact data, names and typed words in the district's other texts; returns rows."""
    pattern = _pattern(needles)
    if pattern is None:
        return 0
    session.flush()
    requests = select(Request.id).where(Request.district_id == district_id)
    identities = (
        select(ChatIdentity.id)
        .join(Member, col(Member.id) == ChatIdentity.member_id)
        .where(Member.district_id == district_id)
    )
    members = select(Member.id).where(Member.district_id == district_id)
    budgets = select(Budget.id).where(Budget.district_id == district_id)
    texts: list[tuple[Any, ColumnElement[bool], bool]] = [  # (column, its district's rows, JSON)
        (Request.note, col(Request.district_id) == district_id, False),
        (Request.place, col(Request.district_id) == district_id, False),
        (BookingChange.place, col(BookingChange.request_id).in_(requests), False),
        (Closeout.dispute_reason, col(Closeout.request_id).in_(requests), False),
        (Closeout.correction_reason, col(Closeout.request_id).in_(requests), False),
        (LedgerEntry.reason, col(LedgerEntry.budget_id).in_(budgets), False),
        (Invite.name, col(Invite.district_id) == district_id, False),
        (Delivery.body, col(Delivery.identity_id).in_(identities), True),  # an answer as JSON
        (OutboxMessage.params, col(OutboxMessage.district_id) == district_id, True),
        (AuditEvent.detail, col(AuditEvent.district_id) == district_id, True),
        (DialogState.draft, col(DialogState.member_id).in_(members), True),
        (DialogState.choices, col(DialogState.member_id).in_(members), True),  # buttons naming people
    ]
    changed = 0
    for column, scope, is_json in texts:
        model = column.class_
        found = [func.lower(col(column)).contains(_probe(n), autoescape=True) for n in needles]
        if is_json:
            found += [
                func.lower(col(column)).contains(json.dumps(n)[1:-1].lower(), autoescape=True)
                for n in needles
            ]
        for row in session.exec(select(model).where(scope, or_(*found))):
            before = getattr(row, column.key)
            after = _redact_json(before, pattern) if is_json else pattern.sub(REDACTED, before)
            if after != before:
                setattr(row, column.key, after)
                session.add(row)
                changed += 1
    return changed + _redact_files(session, identities, needles)


def _redact_files(session: Session, identities: Any, needles: Sequence[str]) -> int:
    """The same in files waiting in or kept with deliveries, where they are text (calendar, CSV)."""
    changed = 0
    query = select(Delivery).where(
        col(Delivery.identity_id).in_(identities), col(Delivery.attachment).is_not(None)
    )
    for delivery in session.exec(query):
        data = delivery.attachment or b""
        for needle in needles:
            data = data.replace(needle.encode(), REDACTED.encode())
        if data != delivery.attachment:
            delivery.attachment = data
            session.add(delivery)
            changed += 1
    return changed


def _kept(session: Session, member: Member, now: datetime) -> tuple[Kept, ...]:
    """What stays for budget law, and until when at the latest (the end of the last session's fiscal year
    plus `retention_accounts`; an upcoming session's texts until `retention_free_text` after it)."""
    assert member.id is not None
    policy = load_policy(session, member.district_id)
    actor = actor_of(member.id)
    interpreter_id = member.interpreter_id if member.role == Role.INTERPRETER.value else None
    about: list[ColumnElement[bool]] = [col(Request.created_by_member_id) == member.id]
    if interpreter_id is not None:
        about.append(col(Request.interpreter_id) == interpreter_id)
    requests = session.exec(select(Request).where(or_(*about))).all()
    ids = [r.id for r in requests if r.id is not None]
    last_year = max([r.starts_at.astimezone(BERLIN).year for r in requests] + [now.astimezone(BERLIN).year])
    until = (datetime(last_year + 1, 1, 1, tzinfo=BERLIN) + policy.retention_accounts).date()

    def count(model: type[SQLModel], *where: ColumnElement[bool]) -> int:
        return _count(session, model, or_(*where))

    in_requests = ids or [0]
    counts = {
        "requests": len(ids),
        "offers": count(Offer, col(Offer.interpreter_id) == interpreter_id) if interpreter_id else 0,
        "closeouts": count(Closeout, col(Closeout.request_id).in_(in_requests)),
        "ledger": count(
            LedgerEntry, col(LedgerEntry.request_id).in_(in_requests), col(LedgerEntry.actor) == actor
        ),
        "billing_name": int(interpreter_id is not None and bool(ids)),
        "audit": count(AuditEvent, *_audit_about(member)),
        "member": 1,
    }
    kept = [Kept(what, n, until) for what, n in counts.items() if n]
    upcoming = [r for r in requests if r.created_by_member_id == member.id and _still_needed(r, now)]
    if upcoming:
        last = max(r.starts_at + timedelta(minutes=r.duration_minutes) for r in upcoming)
        kept.append(
            Kept(
                "upcoming_texts", len(upcoming), (last + policy.retention_free_text).astimezone(BERLIN).date()
            )
        )
    return tuple(kept)
