"""The tables. Every row that belongs to a district carries its `district_id`, directly or via its parent.

Enumerated values (modes, states, roles) are stored as short strings; their vocabulary is the
domain's and lives in `services.vocabulary`.
"""

from datetime import date, datetime

from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKeyConstraint,
    Index,
    LargeBinary,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlmodel import Field, SQLModel

from db.types import UTCDateTime


def _utc(*, nullable: bool = False, index: bool = False) -> Column[datetime]:
    return Column(UTCDateTime(), nullable=nullable, index=index)


class District(SQLModel, table=True):
    """A county (Landkreis): the tenant that owns pool, schools, budget and policy."""

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=64, unique=True)
    name: str = Field(max_length=200)
    created_at: datetime = Field(sa_column=_utc())


class PolicySetting(SQLModel, table=True):
    """One rule of a district's policy, stored as its canonical text (`4h`, `24.00`, `3`)."""

    __tablename__ = "policy_setting"
    __table_args__ = (UniqueConstraint("district_id", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    district_id: int = Field(foreign_key="district.id", index=True)
    key: str = Field(max_length=64)
    value: str = Field(sa_column=Column(Text, nullable=False))


class School(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("district_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    district_id: int = Field(foreign_key="district.id", index=True)
    name: str = Field(max_length=200)
    address: str = Field(max_length=300)
    municipality: str = Field(max_length=100)
    latitude: float
    longitude: float
    active: bool = True
    created_at: datetime = Field(sa_column=_utc())


class Interpreter(SQLModel, table=True):
    """A pool member. `modes` is a comma-separated subset of the four modes."""

    id: int | None = Field(default=None, primary_key=True)
    district_id: int = Field(foreign_key="district.id", index=True)
    name: str = Field(max_length=200)
    municipality: str = Field(max_length=100)
    latitude: float
    longitude: float
    modes: str = Field(max_length=64)
    phone: str = Field(default="", max_length=40)
    email: str = Field(default="", max_length=200)
    gender: str | None = Field(default=None, max_length=10)
    active: bool = True
    created_at: datetime = Field(sa_column=_utc())


class InterpreterLanguage(SQLModel, table=True):
    __tablename__ = "interpreter_language"
    __table_args__ = (UniqueConstraint("interpreter_id", "language"),)

    id: int | None = Field(default=None, primary_key=True)
    interpreter_id: int = Field(foreign_key="interpreter.id", index=True)
    language: str = Field(max_length=20, index=True)


class Absence(SQLModel, table=True):
    __table_args__ = (CheckConstraint("ends_at > starts_at", name="absence_ends_after_start"),)

    id: int | None = Field(default=None, primary_key=True)
    interpreter_id: int = Field(foreign_key="interpreter.id", index=True)
    starts_at: datetime = Field(sa_column=_utc())
    ends_at: datetime = Field(sa_column=_utc())
    created_at: datetime = Field(sa_column=_utc())


class Member(SQLModel, table=True):
    """A person who acts in chat: a school contact, an interpreter or a coordinator."""

    id: int | None = Field(default=None, primary_key=True)
    district_id: int = Field(foreign_key="district.id", index=True)
    role: str = Field(max_length=20)
    name: str = Field(default="", max_length=200)
    school_id: int | None = Field(default=None, foreign_key="school.id")
    interpreter_id: int | None = Field(default=None, foreign_key="interpreter.id")
    locale: str | None = Field(default=None, max_length=10)
    # False: notifications go to the chat last written from; True: to every linked chat.
    notify_everywhere: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    created_at: datetime = Field(sa_column=_utc())
    # Set when a coordinator took the person's access away; every event from them is refused.
    deactivated_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))


class Invite(SQLModel, table=True):
    """A one-time code; only its SHA-256 is stored.

    `member_id` is the member the code became, or, when set before it is used, the existing
    member it adds another chat to (a link code from /connect).
    """

    id: int | None = Field(default=None, primary_key=True)
    district_id: int = Field(foreign_key="district.id", index=True)
    role: str = Field(max_length=20)
    name: str = Field(default="", max_length=200)
    school_id: int | None = Field(default=None, foreign_key="school.id")
    interpreter_id: int | None = Field(default=None, foreign_key="interpreter.id")
    code_hash: str = Field(max_length=64, unique=True)
    expires_at: datetime = Field(sa_column=_utc())
    used_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    member_id: int | None = Field(default=None, foreign_key="member.id")
    created_by: str = Field(max_length=100)
    created_at: datetime = Field(sa_column=_utc())


class Budget(SQLModel, table=True):
    """A district's money for one fiscal year.

    `reserved_cents` and `charged_cents` are running totals of the ledger, kept in the same
    transaction as each entry; the CHECK constraints make the database refuse any write that
    would take the budget below zero, whatever the code above it does.
    """

    __table_args__ = (
        UniqueConstraint("district_id", "fiscal_year"),
        CheckConstraint("total_cents >= 0", name="budget_total_not_negative"),
        CheckConstraint("reserved_cents >= 0", name="budget_reserved_not_negative"),
        CheckConstraint(
            "total_cents - reserved_cents - charged_cents >= 0", name="budget_available_not_negative"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    district_id: int = Field(foreign_key="district.id", index=True)
    fiscal_year: int
    total_cents: int
    reserved_cents: int = 0
    charged_cents: int = 0
    updated_at: datetime = Field(sa_column=_utc())


# The bookings that count as work (services.matching.BUSY_STATES), as the partial index's predicate.
MONTH_BUSY = "state IN ('booked', 'completed', 'settled') AND interpreter_id IS NOT NULL"


class Request(SQLModel, table=True):
    """A school's request for an interpreter, and (once booked) the booking itself."""

    # Matching reads an interpreter's bookings by start (the month's minutes, from the index alone)
    # and booking time (last served); both lead with `interpreter_id`, which serves its foreign key.
    __table_args__ = (
        Index("ix_request_interpreter_starts", "interpreter_id", "starts_at", "state", "duration_minutes"),
        Index("ix_request_interpreter_booked", "interpreter_id", "booked_at"),
        # Who is busy at a time: the bookings around it by start, with what the check needs.
        Index(
            "ix_request_starts_busy", "starts_at", "interpreter_id", "state", "mode", "duration_minutes", "id"
        ),
        # The minutes booked in a month (matching on PostgreSQL): only bookings that count, only
        # what the sum needs, so the month is a narrow range of the index alone.
        Index(
            "ix_request_month_busy",
            "starts_at",
            postgresql_include=["interpreter_id", "duration_minutes"],
            postgresql_where=text(MONTH_BUSY),
            sqlite_where=text(MONTH_BUSY),
        ),
        # The key an open reservation's copy of the start time follows (ON UPDATE CASCADE).
        Index("uq_request_id_starts", "id", "starts_at", unique=True),
    )

    id: int | None = Field(default=None, primary_key=True)
    district_id: int = Field(foreign_key="district.id", index=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    created_by_member_id: int | None = Field(default=None, foreign_key="member.id")
    language: str = Field(max_length=20, index=True)
    mode: str = Field(max_length=20)
    topic: str = Field(max_length=20)
    starts_at: datetime = Field(sa_column=_utc())
    duration_minutes: int
    place: str = Field(max_length=300)
    place_latitude: float
    place_longitude: float
    gender_preference: str | None = Field(default=None, max_length=10)
    note: str = Field(default="", max_length=200)
    state: str = Field(max_length=20, index=True)
    state_reason: str | None = Field(default=None, max_length=40)
    estimate_cents: int = 0
    wave: int = 0
    calendar_sequence: int = Field(default=0, sa_column_kwargs={"server_default": "0"})  # SEQUENCE in .ics
    interpreter_id: int | None = Field(default=None, foreign_key="interpreter.id")
    booked_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    created_at: datetime = Field(sa_column=_utc())
    updated_at: datetime = Field(sa_column=_utc())


class LedgerEntry(SQLModel, table=True):
    """Append-only: reserve, release, charge, adjust. Amounts are positive except for `adjust`."""

    __tablename__ = "ledger_entry"

    id: int | None = Field(default=None, primary_key=True)
    budget_id: int = Field(foreign_key="budget.id", index=True)
    request_id: int | None = Field(default=None, foreign_key="request.id", index=True)
    kind: str = Field(max_length=10)
    amount_cents: int
    reason: str | None = Field(default=None, max_length=300)
    actor: str = Field(max_length=100)
    created_at: datetime = Field(sa_column=_utc())


class BudgetDayTotal(SQLModel, table=True):
    """Running totals of the ledger per budget and Berlin day of posting, kept with each entry:
    the day's change to the charges (charge, adjust) and to the reservations (reserve minus release).
    The ledger stays the truth; these always equal its sums (the budget chart reads ~370 of them)."""

    __tablename__ = "budget_day"

    budget_id: int = Field(foreign_key="budget.id", primary_key=True)
    day: date = Field(primary_key=True)
    charged_cents: int = 0
    reserved_cents: int = 0


class OpenReservation(SQLModel, table=True):
    """What is still reserved for a request on a budget (its reserves minus its releases), kept with
    each entry; the row goes when it reaches 0, so the table holds open bookings only.

    It carries the request's start time, which the database keeps equal to the request's own
    (composite foreign key, ON UPDATE CASCADE): the money of begun sessions is then one index range.
    """

    __tablename__ = "open_reservation"
    __table_args__ = (
        ForeignKeyConstraint(
            ["request_id", "starts_at"],
            ["request.id", "request.starts_at"],
            name="fk_open_reservation_request_starts",
            onupdate="CASCADE",
        ),
        Index("ix_open_reservation_budget_starts", "budget_id", "starts_at"),
    )

    request_id: int = Field(primary_key=True)
    budget_id: int = Field(foreign_key="budget.id", primary_key=True)
    starts_at: datetime = Field(sa_column=_utc())
    amount_cents: int


class Offer(SQLModel, table=True):
    """A request put to one interpreter. At most one offer per request is ever accepted, and at most
    one per interpreter is open at a time; after a hand-back the same interpreter may be asked again."""

    __table_args__ = (
        Index(
            "offer_one_open_per_interpreter",
            "request_id",
            "interpreter_id",
            unique=True,
            sqlite_where=text("state = 'open'"),
            postgresql_where=text("state = 'open'"),
        ),
        Index(
            "offer_one_accepted_per_request",
            "request_id",
            unique=True,
            sqlite_where=text("state = 'accepted'"),
            postgresql_where=text("state = 'accepted'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="request.id", index=True)
    interpreter_id: int = Field(foreign_key="interpreter.id", index=True)
    wave: int
    rank: int
    state: str = Field(max_length=20)
    pay_cents: int
    distance_m: int
    created_at: datetime = Field(sa_column=_utc())
    expires_at: datetime = Field(sa_column=_utc(index=True))
    responded_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))


class UnmetDemand(SQLModel, table=True):
    """A request the pool did not serve: no member speaks the language, or nobody accepted."""

    __tablename__ = "unmet_demand"
    __table_args__ = (UniqueConstraint("request_id", "reason"),)

    id: int | None = Field(default=None, primary_key=True)
    district_id: int = Field(foreign_key="district.id", index=True)
    request_id: int = Field(foreign_key="request.id")
    language: str = Field(max_length=20, index=True)
    mode: str = Field(max_length=20)
    reason: str = Field(max_length=20)
    created_at: datetime = Field(sa_column=_utc())


class Closeout(SQLModel, table=True):
    """What the interpreter reports after a session, and what the school (or a coordinator) made of it."""

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="request.id", unique=True)
    actual_minutes: int
    km: int = 0
    expenses_cents: int = 0
    state: str = Field(max_length=20)
    reported_by: str = Field(max_length=100)
    reported_at: datetime = Field(sa_column=_utc())
    decided_by: str | None = Field(default=None, max_length=100)
    decided_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    dispute_reason: str | None = Field(default=None, max_length=300)
    correction_reason: str | None = Field(default=None, max_length=300)
    amount_cents: int | None = None


class OutboxMessage(SQLModel, table=True):
    """A notification written by a state change, delivered later by the bot."""

    __tablename__ = "outbox_message"

    id: int | None = Field(default=None, primary_key=True)
    district_id: int = Field(foreign_key="district.id", index=True)
    recipient_type: str = Field(max_length=20)
    recipient_id: int
    template: str = Field(max_length=64)
    params: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=_utc())
    sent_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True, index=True))
    attempts: int = 0
    # Set when the message was turned into one delivery per chat of each person it is for.
    expanded_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True, index=True))


class AuditEvent(SQLModel, table=True):
    """Who changed what, when."""

    __tablename__ = "audit_event"

    id: int | None = Field(default=None, primary_key=True)
    district_id: int = Field(foreign_key="district.id", index=True)
    actor: str = Field(max_length=100)
    action: str = Field(max_length=64)
    entity: str = Field(max_length=32)
    entity_id: int
    detail: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=_utc())


class ChatIdentity(SQLModel, table=True):
    """A member's account on one chat platform (Telegram user, Matrix user, terminal user)."""

    __tablename__ = "chat_identity"
    __table_args__ = (UniqueConstraint("platform", "user_id"),)

    id: int | None = Field(default=None, primary_key=True)
    member_id: int = Field(foreign_key="member.id", index=True)
    platform: str = Field(max_length=16)
    user_id: str = Field(max_length=255)
    chat_id: str = Field(max_length=255)
    created_at: datetime = Field(sa_column=_utc())
    last_seen_at: datetime = Field(sa_column=_utc())


class DialogState(SQLModel, table=True):
    """A member's unfinished dialog: which flow and step, the draft so far, the choices last shown.

    Keyed by member, not by chat, so a restart or a switch of platform continues where they were.
    """

    __tablename__ = "dialog_state"

    id: int | None = Field(default=None, primary_key=True)
    member_id: int = Field(foreign_key="member.id", unique=True)
    flow: str = Field(max_length=32)
    step: str = Field(max_length=32)
    draft: str = Field(sa_column=Column(Text, nullable=False))
    choices: str = Field(sa_column=Column(Text, nullable=False))
    updated_at: datetime = Field(sa_column=_utc())


class ProcessedEvent(SQLModel, table=True):
    """An incoming update or event already handled; a second copy of it has no effect."""

    __tablename__ = "processed_event"
    __table_args__ = (UniqueConstraint("platform", "event_key"),)

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=16)
    event_key: str = Field(max_length=255)
    created_at: datetime = Field(sa_column=_utc(index=True))


class StrangerAttempt(SQLModel, table=True):
    """Wrong invite codes from one chat not linked to a member, counted per window.

    One row per chat, keyed by a hash so the table holds no user ids; rows whose window has
    passed are deleted whenever one is written, so the table stays bounded.
    """

    __tablename__ = "stranger_attempt"
    __table_args__ = (UniqueConstraint("platform", "user_hash"),)

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=16)
    user_hash: str = Field(max_length=64)
    window_start: datetime = Field(sa_column=_utc(index=True))
    count: int = 0


class Delivery(SQLModel, table=True):
    """One notification to one chat. Sent once it succeeded; retried with a due time otherwise.

    `ref` groups the messages about one thing (`offer:12`) so a later one may edit the first.
    """

    __table_args__ = (UniqueConstraint("outbox_id", "identity_id"),)

    id: int | None = Field(default=None, primary_key=True)
    # None for a direct answer to an event: its rendered text is in `body` instead.
    outbox_id: int | None = Field(default=None, foreign_key="outbox_message.id", index=True)
    identity_id: int = Field(foreign_key="chat_identity.id", index=True)
    body: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    attachment: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    # Text parts and the file go out one by one; a retry resumes after the last one delivered.
    parts_sent: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    give_up_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    # A sender takes due rows for a while; a process that dies lets its lease lapse.
    claimed_until: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    ref: str | None = Field(default=None, max_length=40, index=True)
    due_at: datetime = Field(sa_column=_utc(index=True))
    attempts: int = 0
    sent_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True, index=True))
    failed_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    last_error: str | None = Field(default=None, max_length=200)
    platform_message_id: str | None = Field(default=None, max_length=255)


class DueTask(SQLModel, table=True):
    """Something that becomes due at a time: an offer wave's expiry, a reminder, a closeout prompt,
    an auto-confirmation, a weekly digest, a budget alert. The scheduler only wakes the code that
    processes these rows; `(kind, subject_id, variant)` makes arming the same thing twice harmless.
    """

    __tablename__ = "due_task"
    __table_args__ = (UniqueConstraint("kind", "subject_id", "variant"),)

    id: int | None = Field(default=None, primary_key=True)
    district_id: int = Field(foreign_key="district.id", index=True)
    kind: str = Field(max_length=30)
    subject_id: int
    variant: str = Field(default="", max_length=40)
    due_at: datetime = Field(sa_column=_utc(index=True))
    done_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True, index=True))
    outcome: str = Field(default="", max_length=20)  # done, dropped (pointless by then), failed
    attempts: int = 0
    last_error: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(sa_column=_utc())


class BookingChange(SQLModel, table=True):
    """A school's change of a booked session (time, duration, place, mode), for the booked interpreter
    to confirm or decline. Until then the booking stays as it was; at most one change per request waits.
    """

    __tablename__ = "booking_change"
    __table_args__ = (
        Index(
            "booking_change_one_pending",
            "request_id",
            unique=True,
            sqlite_where=text("state = 'pending'"),
            postgresql_where=text("state = 'pending'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="request.id", index=True)
    interpreter_id: int = Field(foreign_key="interpreter.id")
    starts_at: datetime = Field(sa_column=_utc())
    duration_minutes: int
    mode: str = Field(max_length=20)
    place: str = Field(max_length=300)
    estimate_cents: int  # the reservation once the change takes effect
    fee_cents: int = 0  # charged if the interpreter declines: a late change, as the school was told
    state: str = Field(max_length=20)  # pending, confirmed, declined, lapsed
    requested_by: str = Field(max_length=100)
    created_at: datetime = Field(sa_column=_utc())
    expires_at: datetime = Field(sa_column=_utc())
    decided_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))


class OperatorContact(SQLModel, table=True):
    """The person a district's technical alerts go to (a failed due row, a platform away), set on the CLI.

    A table of its own rather than a column of `district`: a district column pointing at `member`,
    which points back at `district`, would make the two depend on each other.
    """

    __tablename__ = "operator_contact"

    id: int | None = Field(default=None, primary_key=True)
    district_id: int = Field(foreign_key="district.id", unique=True)
    member_id: int = Field(foreign_key="member.id")
    set_by: str = Field(max_length=100)
    set_at: datetime = Field(sa_column=_utc())
