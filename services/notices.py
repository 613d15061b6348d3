"""The notifications services may write: one `Notice` per template key, one frozen params class each.

`notify(..., notice=OfferNew(offer_id=..., request_id=..., expires_at=...))` takes the template key
from the class, so mypy catches a wrong or missing parameter. The outbox keeps the key
(`outbox_message.template`) and the params as JSON (datetimes and dates as ISO text);
`from_json` turns them back into the class for rendering.

Params hold ids and figures, never copies of contact data, names or what someone typed: the text is
rendered when it is delivered, from the rows the ids name (a typed reason from its audit event,
`audit_id`), and the params are cleared once the message was delivered (`deliveries.mark_sent`).
Fields added since keep a default, so a row written before them still renders.
"""

import types
from dataclasses import dataclass, fields
from datetime import date, datetime
from enum import StrEnum
from typing import Any, ClassVar, Union, get_args, get_origin, get_type_hints

from services.vocabulary import Recipient


class Notice(StrEnum):
    REQUEST_RECEIVED = "request.received"
    REQUEST_REFERRED = "request.referred"
    REQUEST_AWAITING_APPROVAL = "request.awaiting_approval"
    REQUEST_UNFILLED = "request.unfilled"
    REQUEST_UNFILLED_COORDINATOR = "request.unfilled_coordinator"
    REQUEST_BOOKED = "request.booked"
    REQUEST_INTERPRETER_CANCELLED = "request.interpreter_cancelled"
    REQUEST_HANDED_BACK = "request.handed_back"
    REQUEST_REJECTED = "request.rejected"
    REQUEST_CANCELLED = "request.cancelled"
    OFFER_NEW = "offer.new"
    OFFER_TAKEN = "offer.taken"
    OFFER_WITHDRAWN = "offer.withdrawn"
    OFFER_CONFIRMED = "offer.confirmed"
    OFFER_EXPIRED = "offer.expired"
    BOOKING_CANCELLED = "booking.cancelled"
    BOOKING_REMINDER = "booking.reminder"
    CLOSEOUT_REPORTED = "closeout.reported"
    CLOSEOUT_DISPUTED = "closeout.disputed"
    CLOSEOUT_SETTLED = "closeout.settled"
    CLOSEOUT_PROMPT = "closeout.prompt"
    CLOSEOUT_REMINDER = "closeout.reminder"
    CLOSEOUT_AUTO_CONFIRMED = "closeout.auto_confirmed"
    CLOSEOUT_UNUSUAL = "closeout.unusual"
    CLOSEOUT_CORRECTED = "closeout.corrected"
    ALLOWANCE_NEAR = "allowance.near"
    ALLOWANCE_EXCEEDED = "allowance.exceeded"
    BUDGET_ALERT = "budget.alert"
    DIGEST_WEEKLY = "digest.weekly"
    SETTLEMENT_BLOCKED = "settlement.blocked"
    DELIVERY_FAILED = "delivery.failed"
    CHANGE_ASKED = "change.asked"
    CHANGE_CONFIRMED = "change.confirmed"
    CHANGE_DECLINED = "change.declined"
    CHANGE_LAPSED = "change.lapsed"
    REQUEST_CHANGED = "request.changed"
    REQUEST_CHANGE_DECLINED = "request.change_declined"
    REQUEST_CHANGE_LAPSED = "request.change_lapsed"
    OPERATOR_DUE_FAILED = "operator.due_failed"
    OPERATOR_NO_CHAT = "operator.no_chat"
    OPERATOR_PLATFORM_DOWN = "operator.platform_down"
    OPERATOR_PLATFORM_BACK = "operator.platform_back"
    MEMBER_DEACTIVATED = "member.deactivated"
    PERSON_ERASED = "person.erased"


SCHOOL = frozenset({Recipient.SCHOOL})
INTERPRETER = frozenset({Recipient.INTERPRETER})
COORDINATORS = frozenset({Recipient.COORDINATORS})
OPERATORS = frozenset({Recipient.COORDINATORS, Recipient.MEMBER})  # the operator contact, else coordinators


@dataclass(frozen=True, kw_only=True)
class NoticeParams:
    """What one notification says; a subclass per `Notice`, with the recipients it may go to."""

    notice: ClassVar[Notice]
    recipients: ClassVar[frozenset[Recipient]]


@dataclass(frozen=True, kw_only=True)
class AboutRequest(NoticeParams):
    """A notice about one request: the message starts with the request's line."""

    request_id: int


@dataclass(frozen=True, kw_only=True)
class AboutOffer(AboutRequest):
    offer_id: int


@dataclass(frozen=True, kw_only=True)
class WithCalendar(AboutRequest):
    """The booking's calendar file goes with it (when the recipient has the event: a sequence)."""

    calendar_sequence: int | None


@dataclass(frozen=True, kw_only=True)
class RequestReceived(AboutRequest):
    notice = Notice.REQUEST_RECEIVED
    recipients = SCHOOL


@dataclass(frozen=True, kw_only=True)
class RequestReferred(AboutRequest):
    notice = Notice.REQUEST_REFERRED
    recipients = SCHOOL
    language: str
    reason: str  # an UnmetReason value


@dataclass(frozen=True, kw_only=True)
class RequestAwaitingApproval(AboutRequest):
    notice = Notice.REQUEST_AWAITING_APPROVAL
    recipients = COORDINATORS | SCHOOL
    reason: str
    estimate_cents: int


@dataclass(frozen=True, kw_only=True)
class RequestUnfilled(WithCalendar):
    """Nobody takes the request; what the school reads depends on why (rows from before: not_filled)."""

    notice = Notice.REQUEST_UNFILLED
    recipients = SCHOOL
    language: str
    reason: str | None = None  # an UnmetReason value
    other_mode: str | None = None  # a Mode in which someone could take it
    handed_back: bool | None = None  # the booked interpreter gave it back, and nobody else can
    change_dropped: bool | None = None  # ... before answering the school's change: it was not applied


@dataclass(frozen=True, kw_only=True)
class RequestUnfilledCoordinator(AboutRequest):
    notice = Notice.REQUEST_UNFILLED_COORDINATOR
    recipients = COORDINATORS
    language: str
    mode: str
    reason: str  # an UnmetReason value
    other_mode: str | None = None  # a Mode in which someone could take it
    audit_id: int | None = None  # the hand-back's audit event (who, and why in their words), if booked
    change_declined: bool | None = None  # they did not give it back but declined the school's change


@dataclass(frozen=True, kw_only=True)
class RequestBooked(WithCalendar):
    notice = Notice.REQUEST_BOOKED
    recipients = SCHOOL
    interpreter_id: int | None = None  # who comes (None: a row from before, the request's interpreter)


@dataclass(frozen=True, kw_only=True)
class RequestInterpreterCancelled(AboutRequest):
    """The booked interpreter gave the job back and it goes out again (or waits for the office: `held`)."""

    notice = Notice.REQUEST_INTERPRETER_CANCELLED
    recipients = SCHOOL
    held: bool | None = None  # another interpreter would cost more than the budget has left
    change_dropped: bool | None = None  # the school's change still waiting was not applied


@dataclass(frozen=True, kw_only=True)
class RequestHandedBack(AboutRequest):
    """The coordinators learn who gave a booking back, why, and what happens now (`outcome`)."""

    notice = Notice.REQUEST_HANDED_BACK
    recipients = COORDINATORS
    audit_id: int | None  # the hand-back's audit event: who, and why in their words
    outcome: str  # the request's state afterwards: offered, or awaiting_approval
    change_declined: bool | None = None  # not given back: the interpreter declined the school's change


@dataclass(frozen=True, kw_only=True)
class RequestRejected(AboutRequest):
    notice = Notice.REQUEST_REJECTED
    recipients = SCHOOL
    audit_id: int | None = None  # the rejection's audit event: the coordinator's reason


@dataclass(frozen=True, kw_only=True)
class RequestCancelled(WithCalendar):
    notice = Notice.REQUEST_CANCELLED
    recipients = SCHOOL
    fee_cents: int


@dataclass(frozen=True, kw_only=True)
class OfferNew(AboutOffer):
    notice = Notice.OFFER_NEW
    recipients = INTERPRETER
    expires_at: datetime


@dataclass(frozen=True, kw_only=True)
class OfferTaken(AboutOffer):
    notice = Notice.OFFER_TAKEN
    recipients = INTERPRETER


@dataclass(frozen=True, kw_only=True)
class OfferWithdrawn(AboutOffer):
    notice = Notice.OFFER_WITHDRAWN
    recipients = INTERPRETER


@dataclass(frozen=True, kw_only=True)
class OfferConfirmed(AboutOffer, WithCalendar):
    notice = Notice.OFFER_CONFIRMED
    recipients = INTERPRETER


@dataclass(frozen=True, kw_only=True)
class OfferExpired(AboutOffer):
    notice = Notice.OFFER_EXPIRED
    recipients = INTERPRETER


@dataclass(frozen=True, kw_only=True)
class BookingCancelled(WithCalendar):
    notice = Notice.BOOKING_CANCELLED
    recipients = INTERPRETER
    fee_cents: int


@dataclass(frozen=True, kw_only=True)
class BookingReminder(AboutRequest):
    notice = Notice.BOOKING_REMINDER
    recipients = SCHOOL | INTERPRETER


@dataclass(frozen=True, kw_only=True)
class CloseoutReported(AboutRequest):
    notice = Notice.CLOSEOUT_REPORTED
    recipients = SCHOOL
    minutes: int
    km: int
    expenses_cents: int
    amount_cents: int
    unusual: tuple[str, ...] | None = None  # closeout.Unusual values: what the school should look at


@dataclass(frozen=True, kw_only=True)
class CloseoutUnusual(AboutRequest):
    """A report far from the plan: the coordinators look at it before the money moves."""

    notice = Notice.CLOSEOUT_UNUSUAL
    recipients = COORDINATORS
    minutes: int
    km: int
    km_max: int  # the policy's maximum when it was reported
    unusual: tuple[str, ...]  # closeout.Unusual values


@dataclass(frozen=True, kw_only=True)
class CloseoutCorrected(AboutRequest):
    notice = Notice.CLOSEOUT_CORRECTED
    recipients = SCHOOL | INTERPRETER
    minutes: int
    km: int
    expenses_cents: int
    amount_cents: int
    previous_cents: int  # the reason is the closeout's correction_reason


@dataclass(frozen=True, kw_only=True)
class CloseoutDisputed(AboutRequest):
    notice = Notice.CLOSEOUT_DISPUTED
    recipients = COORDINATORS | INTERPRETER  # the reason is the closeout's dispute_reason


@dataclass(frozen=True, kw_only=True)
class CloseoutSettled(AboutRequest):
    notice = Notice.CLOSEOUT_SETTLED
    recipients = INTERPRETER
    amount_cents: int


@dataclass(frozen=True, kw_only=True)
class CloseoutPrompt(AboutRequest):
    notice = Notice.CLOSEOUT_PROMPT
    recipients = INTERPRETER


@dataclass(frozen=True, kw_only=True)
class CloseoutReminder(AboutRequest):
    notice = Notice.CLOSEOUT_REMINDER
    recipients = INTERPRETER


@dataclass(frozen=True, kw_only=True)
class CloseoutAutoConfirmed(AboutRequest):
    notice = Notice.CLOSEOUT_AUTO_CONFIRMED
    recipients = SCHOOL
    amount_cents: int


@dataclass(frozen=True, kw_only=True)
class AllowanceNear(NoticeParams):
    notice = Notice.ALLOWANCE_NEAR
    recipients = COORDINATORS
    interpreter_id: int | None = None  # None: a row from before
    year: int
    paid_cents: int
    allowance_cents: int


@dataclass(frozen=True, kw_only=True)
class AllowanceExceeded(NoticeParams):
    notice = Notice.ALLOWANCE_EXCEEDED
    recipients = COORDINATORS
    interpreter_id: int | None = None  # None: a row from before
    year: int
    paid_cents: int
    allowance_cents: int


@dataclass(frozen=True, kw_only=True)
class BudgetAlert(NoticeParams):
    notice = Notice.BUDGET_ALERT
    recipients = COORDINATORS
    year: int
    threshold_percent: int
    available_cents: int


@dataclass(frozen=True, kw_only=True)
class DigestWeekly(NoticeParams):
    notice = Notice.DIGEST_WEEKLY
    recipients = COORDINATORS
    since_at: datetime
    bookings: int
    charged_cents: int
    available_cents: int
    used_percent: int
    unfilled: int
    uncovered: tuple[str, ...]  # language tags nobody in the pool speaks
    year_end_cents: int | None  # None: no budget, so no pace
    runs_out_on: date | None


@dataclass(frozen=True, kw_only=True)
class SettlementBlocked(AboutRequest):
    notice = Notice.SETTLEMENT_BLOCKED
    recipients = COORDINATORS
    needed_cents: int
    available_cents: int


@dataclass(frozen=True, kw_only=True)
class DeliveryFailed(NoticeParams):
    """A notification never reached a person: the bot is blocked, the chat is gone, or it kept failing."""

    notice = Notice.DELIVERY_FAILED
    recipients = OPERATORS
    member_id: int
    cause: str  # "gone" (blocked, chat gone) or "kept_failing" (retried until it was too late)


@dataclass(frozen=True, kw_only=True)
class AboutChange(AboutRequest):
    """A notice about one change of a booking (services.changes); its buttons name the change."""

    change_id: int


@dataclass(frozen=True, kw_only=True)
class ChangeAsked(AboutChange):
    notice = Notice.CHANGE_ASKED
    recipients = INTERPRETER
    pay_cents: int  # the estimate with the change
    fee_cents: int  # what declining would bring the interpreter (a late change), 0 if nothing
    expires_at: datetime


@dataclass(frozen=True, kw_only=True)
class ChangeConfirmed(AboutChange, WithCalendar):
    notice = Notice.CHANGE_CONFIRMED
    recipients = INTERPRETER


@dataclass(frozen=True, kw_only=True)
class ChangeDeclined(AboutChange, WithCalendar):
    notice = Notice.CHANGE_DECLINED
    recipients = INTERPRETER
    fee_cents: int


@dataclass(frozen=True, kw_only=True)
class ChangeLapsed(AboutChange):
    notice = Notice.CHANGE_LAPSED
    recipients = INTERPRETER


@dataclass(frozen=True, kw_only=True)
class RequestChanged(WithCalendar):
    notice = Notice.REQUEST_CHANGED
    recipients = SCHOOL
    reserved_cents: int


@dataclass(frozen=True, kw_only=True)
class RequestChangeDeclined(WithCalendar):
    """The interpreter cannot keep the change: the session goes back to the pool (`new_request_id` None),
    or, for a late change, the booking is cancelled with `fee_cents` and the change is a new request."""

    notice = Notice.REQUEST_CHANGE_DECLINED
    recipients = SCHOOL
    fee_cents: int
    new_request_id: int | None
    outcome: str | None = None  # the state of the request that carries the changed session now
    audit_id: int | None = None  # the decline's audit event: why the interpreter cannot keep it


@dataclass(frozen=True, kw_only=True)
class RequestChangeLapsed(AboutRequest):
    notice = Notice.REQUEST_CHANGE_LAPSED
    recipients = SCHOOL


@dataclass(frozen=True, kw_only=True)
class DueTaskFailed(NoticeParams):
    """A due row (a reminder, an offer wave's expiry, ...) failed on every attempt and was given up."""

    notice = Notice.OPERATOR_DUE_FAILED
    recipients = OPERATORS
    task_id: int
    task_kind: str  # a services.due.Kind value
    request_id: int | None  # the request it was about, if any
    attempts: int
    error: str  # the exception's type, never its message
    failed_at: datetime


@dataclass(frozen=True, kw_only=True)
class InterpreterWithoutChat(NoticeParams):
    """An offer went to an interpreter nobody can reach: no chat is linked to them."""

    notice = Notice.OPERATOR_NO_CHAT
    recipients = COORDINATORS
    interpreter_id: int


@dataclass(frozen=True, kw_only=True)
class PlatformUnreachable(NoticeParams):
    notice = Notice.OPERATOR_PLATFORM_DOWN
    recipients = OPERATORS
    platform: str  # telegram, matrix
    since_at: datetime  # the first failed attempt after the last success


@dataclass(frozen=True, kw_only=True)
class PlatformReachable(NoticeParams):
    notice = Notice.OPERATOR_PLATFORM_BACK
    recipients = OPERATORS
    platform: str
    since_at: datetime  # when the outage began
    back_at: datetime


@dataclass(frozen=True, kw_only=True)
class MemberDeactivated(NoticeParams):
    """A coordinator took the person's access away: the one message they still get (services/access.py)."""

    notice = Notice.MEMBER_DEACTIVATED
    recipients = frozenset({Recipient.MEMBER})
    member_id: int


@dataclass(frozen=True, kw_only=True)
class PersonErased(NoticeParams):
    """A person's data was erased (Art. 17): the coordinators learn who by number, never by name."""

    notice = Notice.PERSON_ERASED
    recipients = COORDINATORS
    member_id: int
    role: str  # a Role value


def _concrete() -> list[type[NoticeParams]]:
    found: list[type[NoticeParams]] = []
    pending = list(NoticeParams.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if "notice" in vars(cls) and cls not in found:
            found.append(cls)
    return found


PARAMS: dict[Notice, type[NoticeParams]] = {cls.notice: cls for cls in _concrete()}


def as_json(params: NoticeParams) -> dict[str, Any]:
    """The params as stored: plain JSON values, datetimes and dates as ISO text, tuples as lists."""
    return {f.name: _plain(getattr(params, f.name)) for f in fields(params)}


def _plain(value: object) -> object:
    if isinstance(value, date):  # datetimes too
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


def from_json(notice: Notice, stored: dict[str, Any]) -> NoticeParams:
    """The params class of `notice` from its stored JSON; keys it does not know are ignored.

    Raises KeyError for an unknown notice or a missing parameter (one that may be None counts as None).
    """
    cls = PARAMS[notice]
    values: dict[str, Any] = {}
    for name, kind in _FIELD_TYPES[cls].items():
        if name in stored:
            values[name] = _parse(kind, stored[name])
        elif _optional(kind):
            values[name] = None
        else:
            raise KeyError(f"notification {notice.value!r} lacks its parameter {name!r}")
    return cls(**values)


def _field_types(cls: type[NoticeParams]) -> dict[str, Any]:
    hints = get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls)}


_FIELD_TYPES = {cls: _field_types(cls) for cls in PARAMS.values()}


def _optional(kind: Any) -> bool:
    return get_origin(kind) in (Union, types.UnionType) and type(None) in get_args(kind)


def _parse(kind: Any, value: Any) -> Any:
    if value is None:
        return None
    if _optional(kind):
        (kind,) = [k for k in get_args(kind) if k is not type(None)]
    if kind is datetime:
        return datetime.fromisoformat(value)
    if kind is date:
        return date.fromisoformat(value)
    if get_origin(kind) is tuple:
        return tuple(value)
    return value
