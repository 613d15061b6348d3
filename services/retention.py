"""Retention: what the inventory (docs/datenschutz.md) says is kept only for a while is removed here.

`purge` runs nightly per district (a due row, see `services.timers`) and on `retention run`.
It works in bulk UPDATE and DELETE statements, so a district with 100,000 requests takes a few
statements, not 100,000 ORM round trips; and it only touches rows that still hold something,
so running it twice changes nothing the second time.

- Free text goes `retention_free_text` after it stopped being needed. A request's note and typed
  place (and the place of its booking changes) count from the session's planned end, or from the
  request's last change if that came later (a report, a settlement, a cancellation): a request
  that was never booked counts from its planned start and end all the same. The place becomes
  the school's address in person (which is where the coordinates point) and empty otherwise
  (a phone number or a meeting link). Dispute and correction reasons count from the closeout's
  last decision, a ledger correction's typed reason and an audit event's details from when they
  were written; notification params from when the message was written, or at once once delivered;
  invites' names and creators from their use or expiry. Messages sent or given up that long ago are
  deleted as rows, and then the notifications none of whose messages is left.
- Dialog drafts nobody touched for `ABANDONED_DRAFT` are deleted; so are the chat links of a
  member deactivated more than `DEACTIVATED_LINKS` ago (with their deliveries).
- Whole fiscal years whose end is more than `retention_accounts` ago go: their requests with
  offers, booking changes, closeouts and unmet demand, their budget with its ledger, the due
  rows about them, and audit events older than `retention_accounts`.

Money figures (evaluation, billing, ledger sums) read none of the purged texts, so they stay the
same through the free-text purge.
"""

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import astuple, dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, delete, exists, or_, update
from sqlmodel import Session, col, select

from db.models import (
    AuditEvent,
    BookingChange,
    Budget,
    BudgetDayTotal,
    ChatIdentity,
    Closeout,
    Delivery,
    DialogState,
    DueTask,
    Invite,
    LedgerEntry,
    Member,
    Offer,
    OpenReservation,
    OutboxMessage,
    Request,
    School,
    UnmetDemand,
)
from services.audit import record
from services.clock import BERLIN
from services.due import Kind
from services.policy import Policy, load_policy
from services.vocabulary import LedgerKind, Mode

ABANDONED_DRAFT = timedelta(days=7)
DEACTIVATED_LINKS = timedelta(days=30)
CHUNK = 2000  # ids per statement: well below SQLite's limit of bound parameters
EMPTY_PARAMS = "{}"
EMPTY_DETAIL = "{}"
_REQUEST_KINDS = (
    Kind.OFFER_EXPIRY,
    Kind.REMINDER,
    Kind.CLOSEOUT_PROMPT,
    Kind.CLOSEOUT_REMINDER,
    Kind.AUTO_CONFIRM,
)


@dataclass(frozen=True)
class PurgeCounts:
    """How many rows each step of a purge changed (free text) or deleted (the rest)."""

    notes: int = 0
    places: int = 0
    change_places: int = 0
    closeout_reasons: int = 0
    ledger_reasons: int = 0
    audit_details: int = 0
    deliveries: int = 0
    notifications: int = 0
    outbox_params: int = 0
    delivery_contents: int = 0
    invites: int = 0
    drafts: int = 0
    chat_links: int = 0
    old_requests: int = 0
    old_offers: int = 0
    old_changes: int = 0
    old_closeouts: int = 0
    old_unmet_demand: int = 0
    old_ledger_entries: int = 0
    old_budgets: int = 0
    old_audit_events: int = 0

    @property
    def total(self) -> int:
        return sum(astuple(self))

    def log_text(self) -> str:
        """`notes=3 places=1 …`: numbers only, for the log line."""
        return " ".join(f"{f.name}={getattr(self, f.name)}" for f in fields(self))


# --- the pure part: what is due --------------------------------------------------------------------


def session_end(starts_at: datetime, duration_minutes: int, updated_at: datetime) -> datetime:
    """From when a request's free text counts: its planned end, or its last change if that came later."""
    return max(starts_at + timedelta(minutes=duration_minutes), updated_at)


def requests_due(rows: Iterable[tuple[int, datetime, int, datetime]], cutoff: datetime) -> list[int]:
    """The ids among (id, starts_at, duration_minutes, updated_at) whose free text is due at `cutoff`."""
    return [
        rid
        for rid, starts_at, minutes, updated_at in rows
        if session_end(starts_at, minutes, updated_at) <= cutoff
    ]


def accounts_boundary(now: datetime, keep: timedelta) -> tuple[int, datetime]:
    """(first fiscal year kept, its first moment): every year that ended more than `keep` ago goes."""
    first_kept = (now - keep).astimezone(BERLIN).year
    return first_kept, datetime(first_kept, 1, 1, tzinfo=BERLIN)


def _chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


# --- the thin SQL part ------------------------------------------------------------------------------


def _run(session: Session, statement: Any) -> int:
    # No ORM synchronisation: the rows are not loaded in this session, and a bulk statement stays one.
    result = session.exec(statement.execution_options(synchronize_session=False))
    return int(result.rowcount or 0)


def _ids(session: Session, query: Any) -> list[int]:
    return [row for row in session.exec(query).all() if row is not None]


def purged_place(mode: str, school_address: str) -> str:
    """What a typed place becomes once purged (or its author erased): the school's address in person,
    which is where the coordinates point; nothing for phone, video and written."""
    return school_address if mode == Mode.IN_PERSON.value else ""


def _purged_place(mode_column: Any, school_address: Any) -> Any:
    """`purged_place` in SQL, for the bulk statements."""
    return case((mode_column == Mode.IN_PERSON.value, school_address), else_="")


def _purge_requests(session: Session, district_id: int, cutoff: datetime) -> tuple[int, int, int]:
    address = select(School.address).where(School.id == Request.school_id).scalar_subquery()
    purged_place = _purged_place(col(Request.mode), address)
    candidates = session.exec(
        select(Request.id, Request.starts_at, Request.duration_minutes, Request.updated_at).where(
            col(Request.district_id) == district_id,
            col(Request.starts_at) <= cutoff,
            col(Request.updated_at) <= cutoff,
            or_(col(Request.note) != "", col(Request.place) != purged_place),
        )
    ).all()
    due_ids = requests_due(((r[0] or 0, r[1], r[2], r[3]) for r in candidates), cutoff)
    notes = places = change_places = 0
    change_address = (
        select(School.address)
        .join(Request, col(Request.school_id) == School.id)
        .where(Request.id == BookingChange.request_id)
        .scalar_subquery()
    )
    change_place = _purged_place(col(BookingChange.mode), change_address)
    for ids in _chunks(due_ids):
        notes += _run(
            session, update(Request).where(col(Request.id).in_(ids), col(Request.note) != "").values(note="")
        )
        places += _run(
            session,
            update(Request)
            .where(col(Request.id).in_(ids), col(Request.place) != purged_place)
            .values(place=purged_place),
        )
        change_places += _run(
            session,
            update(BookingChange)
            .where(col(BookingChange.request_id).in_(ids), col(BookingChange.place) != change_place)
            .values(place=change_place),
        )
    return notes, places, change_places


def _purge_free_text(session: Session, district_id: int, cutoff: datetime) -> dict[str, int]:
    district_requests = select(Request.id).where(Request.district_id == district_id)
    district_budgets = select(Budget.id).where(Budget.district_id == district_id)
    district_identities = (
        select(ChatIdentity.id)
        .join(Member, col(Member.id) == ChatIdentity.member_id)
        .where(Member.district_id == district_id)
    )
    last_decision = case(
        (col(Closeout.decided_at).is_(None), col(Closeout.reported_at)), else_=col(Closeout.decided_at)
    )
    pending_delivery = exists().where(
        col(Delivery.outbox_id) == OutboxMessage.id,
        col(Delivery.sent_at).is_(None),
        col(Delivery.failed_at).is_(None),
    )
    notes, places, change_places = _purge_requests(session, district_id, cutoff)
    return {
        "notes": notes,
        "places": places,
        "change_places": change_places,
        "closeout_reasons": _run(
            session,
            update(Closeout)
            .where(
                col(Closeout.request_id).in_(district_requests),
                last_decision <= cutoff,
                or_(col(Closeout.dispute_reason).is_not(None), col(Closeout.correction_reason).is_not(None)),
            )
            .values(dispute_reason=None, correction_reason=None),
        ),
        "ledger_reasons": _run(
            session,
            update(LedgerEntry)
            .where(
                col(LedgerEntry.budget_id).in_(district_budgets),
                # The only typed reasons; the other kinds carry keywords.
                col(LedgerEntry.kind) == LedgerKind.ADJUST.value,
                col(LedgerEntry.created_at) <= cutoff,
                col(LedgerEntry.reason).is_not(None),
            )
            .values(reason=None),
        ),
        "audit_details": _run(
            session,
            update(AuditEvent)
            .where(
                col(AuditEvent.district_id) == district_id,
                col(AuditEvent.created_at) <= cutoff,
                col(AuditEvent.detail) != EMPTY_DETAIL,
            )
            .values(detail=EMPTY_DETAIL),
        ),
        # Messages done with for the period go as rows (ids and times only, by now); the rest below.
        "deliveries": _run(
            session,
            delete(Delivery).where(
                col(Delivery.identity_id).in_(district_identities),
                or_(col(Delivery.sent_at) <= cutoff, col(Delivery.failed_at) <= cutoff),
            ),
        ),
        "notifications": _run(
            session,
            delete(OutboxMessage).where(
                col(OutboxMessage.district_id) == district_id,
                ~exists().where(col(Delivery.outbox_id) == OutboxMessage.id),
                or_(
                    col(OutboxMessage.sent_at) <= cutoff,
                    and_(col(OutboxMessage.sent_at).is_(None), col(OutboxMessage.expanded_at) <= cutoff),
                ),
            ),
        ),
        "outbox_params": _run(
            session,
            update(OutboxMessage)
            .where(
                col(OutboxMessage.district_id) == district_id,
                col(OutboxMessage.params) != EMPTY_PARAMS,
                or_(
                    col(OutboxMessage.sent_at).is_not(None),
                    # Old and handed out, with no delivery still trying: nobody renders it again.
                    and_(
                        col(OutboxMessage.created_at) <= cutoff,
                        col(OutboxMessage.expanded_at).is_not(None),
                        ~pending_delivery,
                    ),
                ),
            )
            .values(params=EMPTY_PARAMS),
        ),
        "delivery_contents": _run(
            session,
            update(Delivery)
            .where(
                col(Delivery.identity_id).in_(district_identities),
                or_(col(Delivery.sent_at).is_not(None), col(Delivery.failed_at).is_not(None)),
                or_(col(Delivery.body).is_not(None), col(Delivery.attachment).is_not(None)),
            )
            .values(body=None, attachment=None),
        ),
        "invites": _run(
            session,
            update(Invite)
            .where(
                col(Invite.district_id) == district_id,
                or_(col(Invite.used_at) <= cutoff, col(Invite.expires_at) <= cutoff),
                or_(col(Invite.name) != "", col(Invite.created_by) != ""),
            )
            .values(name="", created_by=""),
        ),
    }


def _purge_drafts(session: Session, district_id: int, now: datetime) -> int:
    members = select(Member.id).where(Member.district_id == district_id)
    return _run(
        session,
        delete(DialogState).where(
            col(DialogState.member_id).in_(members), col(DialogState.updated_at) <= now - ABANDONED_DRAFT
        ),
    )


def _purge_chat_links(session: Session, district_id: int, now: datetime) -> int:
    """The chat links of members deactivated `DEACTIVATED_LINKS` ago, with the messages queued for them."""
    gone = select(Member.id).where(
        col(Member.district_id) == district_id, col(Member.deactivated_at) <= now - DEACTIVATED_LINKS
    )
    identities = _ids(session, select(ChatIdentity.id).where(col(ChatIdentity.member_id).in_(gone)))
    links = 0
    for ids in _chunks(identities):
        _run(session, delete(Delivery).where(col(Delivery.identity_id).in_(ids)))
        links += _run(session, delete(ChatIdentity).where(col(ChatIdentity.id).in_(ids)))
    return links


def _purge_accounts(session: Session, district_id: int, now: datetime, keep: timedelta) -> dict[str, int]:
    first_year, first_moment = accounts_boundary(now, keep)
    request_ids = _ids(
        session,
        select(Request.id).where(
            col(Request.district_id) == district_id, col(Request.starts_at) < first_moment
        ),
    )
    budget_ids = _ids(
        session,
        select(Budget.id).where(col(Budget.district_id) == district_id, col(Budget.fiscal_year) < first_year),
    )
    counts = dict.fromkeys(
        (
            "old_requests",
            "old_offers",
            "old_changes",
            "old_closeouts",
            "old_unmet_demand",
            "old_ledger_entries",
        ),
        0,
    )
    for ids in _chunks(request_ids):
        change_ids = _ids(session, select(BookingChange.id).where(col(BookingChange.request_id).in_(ids)))
        for changes in _chunks(change_ids):
            _run(
                session,
                delete(DueTask).where(
                    col(DueTask.kind) == Kind.CHANGE_EXPIRY.value, col(DueTask.subject_id).in_(changes)
                ),
            )
        _run(
            session,
            delete(DueTask).where(
                col(DueTask.kind).in_([k.value for k in _REQUEST_KINDS]), col(DueTask.subject_id).in_(ids)
            ),
        )
        # A correction booked on a newer year's budget keeps its amount there, without the request.
        _run(
            session,
            update(LedgerEntry)
            .where(col(LedgerEntry.request_id).in_(ids), col(LedgerEntry.budget_id).not_in(budget_ids or [0]))
            .values(request_id=None),
        )
        counts["old_ledger_entries"] += _run(
            session, delete(LedgerEntry).where(col(LedgerEntry.request_id).in_(ids))
        )
        # No entry names these requests any more: nothing is reserved for them.
        _run(session, delete(OpenReservation).where(col(OpenReservation.request_id).in_(ids)))
        counts["old_offers"] += _run(session, delete(Offer).where(col(Offer.request_id).in_(ids)))
        counts["old_changes"] += _run(
            session, delete(BookingChange).where(col(BookingChange.request_id).in_(ids))
        )
        counts["old_closeouts"] += _run(session, delete(Closeout).where(col(Closeout.request_id).in_(ids)))
        counts["old_unmet_demand"] += _run(
            session, delete(UnmetDemand).where(col(UnmetDemand.request_id).in_(ids))
        )
        counts["old_requests"] += _run(session, delete(Request).where(col(Request.id).in_(ids)))
    old_budgets = 0
    if budget_ids:
        counts["old_ledger_entries"] += _run(
            session, delete(LedgerEntry).where(col(LedgerEntry.budget_id).in_(budget_ids))
        )
        # The running totals of those entries go with them (the budget rows' own go with the rows).
        _run(session, delete(BudgetDayTotal).where(col(BudgetDayTotal.budget_id).in_(budget_ids)))
        _run(session, delete(OpenReservation).where(col(OpenReservation.budget_id).in_(budget_ids)))
        _run(
            session,
            delete(DueTask).where(
                col(DueTask.kind) == Kind.BUDGET_ALERT.value, col(DueTask.subject_id).in_(budget_ids)
            ),
        )
        old_budgets = _run(session, delete(Budget).where(col(Budget.id).in_(budget_ids)))
    old_audit = _run(
        session,
        delete(AuditEvent).where(
            col(AuditEvent.district_id) == district_id, col(AuditEvent.created_at) < now - keep
        ),
    )
    return {**counts, "old_budgets": old_budgets, "old_audit_events": old_audit}


def purge_now(session: Session, district_id: int, *, actor: str, now: datetime) -> PurgeCounts:
    """`retention run`: the nightly purge at once, under the district's policy, audited with its counts."""
    counts = purge(session, district_id, now=now, policy=load_policy(session, district_id))
    record(
        session,
        district_id=district_id,
        actor=actor,
        action="retention.run",
        entity="district",
        entity_id=district_id,
        now=now,
        **{f.name: getattr(counts, f.name) for f in fields(counts) if getattr(counts, f.name)},
    )
    return counts


def purge(session: Session, district_id: int, *, now: datetime, policy: Policy) -> PurgeCounts:
    """Remove what the district keeps no longer, in the caller's transaction; returns the counts.

    The caller commits; on SQLite it should then checkpoint the WAL (`db.engine.checkpoint`), so
    that the old texts leave the -wal file too.
    """
    cutoff = now - policy.retention_free_text
    counts = _purge_free_text(session, district_id, cutoff)
    counts["drafts"] = _purge_drafts(session, district_id, now)
    counts["chat_links"] = _purge_chat_links(session, district_id, now)
    counts.update(_purge_accounts(session, district_id, now, policy.retention_accounts))
    session.flush()
    return PurgeCounts(**counts)
