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
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import ColumnElement, or_
from sqlmodel import Session, SQLModel, col, select

from db.models import (
    Absence,
    AuditEvent,
    BookingChange,
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
)
from services.billing_report import paid_in_year
from services.clock import BERLIN
from services.errors import NotFound
from services.text import N_
from services.vocabulary import Recipient, Role

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


def export_json(session: Session, member_id: int) -> bytes:
    """The export as a UTF-8 JSON file, indented for reading."""
    return json.dumps(export(session, member_id), ensure_ascii=False, indent=2, sort_keys=True).encode()
