"""Firing what became due: one task at a time, each in the caller's transaction, decided when it fires.

A task decides when it fires whether it is still useful: a reminder for a session that has
begun, or for a booking that was cancelled, is dropped; an offer wave's expiry missed while the
bot was down still runs, once.
"""

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from db.models import DueTask, Offer, Request
from services import changes, due, operator_alerts, personal_data, retention
from services import closeout as closeouts
from services.audit import record
from services.digest import send_digest
from services.due import Kind, Outcome, arm, arm_digest, arm_retention
from services.notices import (
    BookingReminder,
    CloseoutAutoConfirmed,
    CloseoutPrompt,
    CloseoutReminder,
    OfferExpired,
)
from services.offers import fill_offers
from services.outbox import notify, tell
from services.policy import load_policy
from services.vocabulary import CloseoutState, OfferState, Recipient, RequestState

SYSTEM = "system:timers"
log = logging.getLogger(__name__)


def fire(session: Session, task: DueTask, now: datetime) -> Outcome:
    """Run one claimed task and mark it fired, in the caller's transaction.

    A handler decides itself when a task has become pointless (DROPPED). Anything it raises,
    a domain error included (no budget for the year, say), fails the whole transaction: the
    caller records the failure and the task is tried again later.
    """
    outcome = HANDLERS[Kind(task.kind)](session, task, now)
    task.attempts += 1
    if outcome is not Outcome.LATER:
        task.done_at, task.outcome = now, outcome.value
    session.add(task)
    return outcome


def record_failure(session: Session, task_id: int, error: str, now: datetime) -> bool:
    """A task raised: it is tried again later; the attempt that gives it up also writes the operators'
    alert, in the same transaction, so the alert exists exactly when the task is failed. True then."""
    task = due.failed(session, task_id, error, now)
    if task is None:
        return False
    _arm_next_of_recurring(session, task, now)
    return operator_alerts.due_task_failed(session, task, now)


def _arm_next_of_recurring(session: Session, task: DueTask, now: datetime) -> None:
    """A nightly purge or a weekly digest given up still has a next one: the firing that would have
    armed it was rolled back, and without it no later night or week would ever come."""
    if task.kind == due.Kind.RETENTION:
        arm_retention(session, task.district_id, max(now, task.due_at))
    elif task.kind == due.Kind.DIGEST:
        arm_digest(session, task.district_id, max(now, task.due_at))


# --- firing -----------------------------------------------------------------------------------------


def _request(session: Session, task: DueTask) -> Request:
    """The task's request, locked: a second process firing another row of the same request waits
    here and then sees what this one did."""
    request = session.get(Request, task.subject_id, with_for_update=True, populate_existing=True)
    assert request is not None
    return request


def _expire_wave(session: Session, task: DueTask, now: datetime) -> Outcome:
    """Open offers past their time expire; the next candidates get offers, or the request is unfilled."""
    request = _request(session, task)
    if request.state != RequestState.OFFERED:
        return Outcome.DROPPED
    expired = session.exec(
        select(Offer).where(
            Offer.request_id == task.subject_id,
            Offer.state == OfferState.OPEN.value,
            col(Offer.expires_at) <= now,
        )
    ).all()
    if not expired:
        return Outcome.DROPPED  # all answered in time
    for offer in expired:
        offer.state, offer.responded_at = OfferState.EXPIRED.value, now
        session.add(offer)
        assert offer.id is not None
        tell(
            session,
            request,
            Recipient.INTERPRETER,
            interpreter_id=offer.interpreter_id,
            notice=OfferExpired(offer_id=offer.id, request_id=task.subject_id),
            now=now,
        )
    session.flush()
    record(
        session,
        district_id=request.district_id,
        actor=SYSTEM,
        action="offers.expired",
        entity="request",
        entity_id=task.subject_id,
        now=now,
        count=len(expired),
    )
    fill_offers(session, request, actor=SYSTEM, now=now)
    return Outcome.DONE


def _remind(session: Session, task: DueTask, now: datetime) -> Outcome:
    request = _request(session, task)
    booked_for = f":i{request.interpreter_id}"  # the colon: `first:i15` is not interpreter 5's
    if (
        request.state != RequestState.BOOKED
        or now >= request.starts_at
        or not task.variant.endswith(booked_for)
    ):
        return Outcome.DROPPED  # cancelled, given back, or already begun
    second = request.starts_at - load_policy(session, request.district_id).reminder_second
    if task.variant.startswith("first:") and now >= second:
        return Outcome.DROPPED  # late (the bot was down): the second reminder says it
    for recipient, recipient_id in (
        (Recipient.SCHOOL, request.school_id),
        (Recipient.INTERPRETER, request.interpreter_id),
    ):
        assert recipient_id is not None
        notify(
            session,
            district_id=request.district_id,
            recipient=recipient,
            recipient_id=recipient_id,
            notice=BookingReminder(request_id=task.subject_id),
            now=now,
        )
    return Outcome.DONE


def _still_unreported(session: Session, request: Request, variant: str) -> bool:
    if request.state != RequestState.BOOKED or variant != f"i{request.interpreter_id}":
        return False
    return closeouts.closeout_of(session, request.id or 0) is None


def _prompt(
    session: Session, task: DueTask, now: datetime, notice: type[CloseoutPrompt | CloseoutReminder]
) -> Outcome:
    request = _request(session, task)
    if not _still_unreported(session, request, task.variant):
        return Outcome.DROPPED
    assert request.interpreter_id is not None
    tell(
        session,
        request,
        Recipient.INTERPRETER,
        notice=notice(request_id=task.subject_id),
        now=now,
    )
    return Outcome.DONE


def _closeout_prompt(session: Session, task: DueTask, now: datetime) -> Outcome:
    outcome = _prompt(session, task, now, CloseoutPrompt)
    if outcome is Outcome.DONE:
        policy = load_policy(session, task.district_id)
        arm(
            session,
            district_id=task.district_id,
            kind=Kind.CLOSEOUT_REMINDER,
            subject_id=task.subject_id,
            variant=task.variant,
            due_at=now + policy.closeout_reminder_after,
            now=now,
        )
    return outcome


def _closeout_reminder(session: Session, task: DueTask, now: datetime) -> Outcome:
    return _prompt(session, task, now, CloseoutReminder)


def _auto_confirm(session: Session, task: DueTask, now: datetime) -> Outcome:
    """Silence counts as confirmation: the report is confirmed and settled, and both sides are told."""
    request = _request(session, task)
    closeout = closeouts.closeout_of(session, task.subject_id)
    if closeout is None or closeout.state != CloseoutState.REPORTED:
        return Outcome.DROPPED  # confirmed or disputed meanwhile
    if closeout.reported_at.isoformat(timespec="seconds")[:19] != task.variant:
        return Outcome.DROPPED  # reported again since: that report's own task decides
    policy = load_policy(session, request.district_id)
    if closeout.reported_at + policy.closeout_auto_confirm_after > now:
        task.due_at = closeout.reported_at + policy.closeout_auto_confirm_after
        return Outcome.LATER  # the period was made longer meanwhile
    closeouts.confirm(
        session, district_id=request.district_id, request_id=task.subject_id, actor=SYSTEM, now=now
    )
    assert closeout.amount_cents is not None  # reported
    tell(
        session,
        request,
        Recipient.SCHOOL,
        notice=CloseoutAutoConfirmed(request_id=task.subject_id, amount_cents=closeout.amount_cents),
        now=now,
    )
    return Outcome.DONE


def _digest(session: Session, task: DueTask, now: datetime) -> Outcome:
    """The weekly digest; one missed by more than a week is dropped for the newer one."""
    arm_digest(session, task.district_id, max(now, task.due_at))  # the Monday after this one
    if now - task.due_at >= timedelta(days=7):
        return Outcome.DROPPED
    send_digest(session, task.district_id, until=task.due_at, now=now)
    return Outcome.DONE


def _retention(session: Session, task: DueTask, now: datetime) -> Outcome:
    """The nightly purge; a night missed while the bot was down is caught up by the next run, once.

    DONE when it removed something (the caller then checkpoints SQLite's WAL), else DROPPED.
    """
    arm_retention(session, task.district_id, max(now, task.due_at))  # the next night
    counts = retention.purge(
        session, task.district_id, now=now, policy=load_policy(session, task.district_id)
    )
    erased = personal_data.erase_lapsed(session, task.district_id, now=now)
    log.info("retention purge in district %s: %s erased=%s", task.district_id, counts.log_text(), len(erased))
    return Outcome.DONE if counts.total or erased else Outcome.DROPPED


def _change_expiry(session: Session, task: DueTask, now: datetime) -> Outcome:
    """A change the interpreter has not answered lapses; the booking stays as it was."""
    return Outcome.DONE if changes.lapse_due(session, task, now) else Outcome.DROPPED


def _marker(session: Session, task: DueTask, now: datetime) -> Outcome:
    return Outcome.DROPPED  # written as fired; never pending


HANDLERS: dict[Kind, Callable[[Session, DueTask, datetime], Outcome]] = {
    Kind.OFFER_EXPIRY: _expire_wave,
    Kind.REMINDER: _remind,
    Kind.CLOSEOUT_PROMPT: _closeout_prompt,
    Kind.CLOSEOUT_REMINDER: _closeout_reminder,
    Kind.AUTO_CONFIRM: _auto_confirm,
    Kind.DIGEST: _digest,
    Kind.BUDGET_ALERT: _marker,
    Kind.ALLOWANCE_WARNING: _marker,
    Kind.CHANGE_EXPIRY: _change_expiry,
    Kind.RETENTION: _retention,
    Kind.ALERT_DUE_FAILED: _marker,
    Kind.ALERT_NO_CHAT: _marker,
    Kind.ALERT_PLATFORM_DOWN: _marker,
    Kind.ALERT_PLATFORM_BACK: _marker,
}
