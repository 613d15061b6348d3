"""Work that becomes due at a time, as rows: armed by the services, fired by `services.timers`.

A service arms a task in the same transaction as the change that makes it due (a wave of
offers, a booking, a report), so a task exists exactly when its cause was committed. On
PostgreSQL a due row is claimed with `FOR UPDATE SKIP LOCKED`, so two processes never fire the
same row; `(kind, subject_id, variant)` is unique, so arming twice is harmless.
"""

from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Insert, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from db.models import Closeout, DueTask, Offer, Request
from db.upsert import built_for, insert_on
from services.clock import BERLIN
from services.policy import Policy, load_policy
from services.vocabulary import CloseoutState, Mode, OfferState, RequestState

DIGEST_TIME = time(8, 0)  # Mondays, Berlin time
RETENTION_TIME = time(3, 15)  # every night, Berlin time: a quiet hour, and no clock change falls on it
MAX_ATTEMPTS = 5
RETRY_PAUSE = timedelta(minutes=1)


class Kind(StrEnum):
    OFFER_EXPIRY = "offer_expiry"
    REMINDER = "reminder"
    CLOSEOUT_PROMPT = "closeout_prompt"
    CLOSEOUT_REMINDER = "closeout_reminder"
    AUTO_CONFIRM = "auto_confirm"
    DIGEST = "digest"
    BUDGET_ALERT = "budget_alert"  # a marker, fired when written: each threshold once per budget
    ALLOWANCE_WARNING = "allowance_warning"  # a marker: each threshold once per interpreter and year
    DELIVERY_FAILED = "delivery_failed"  # a marker: coordinators hear of a person unreachable once a day
    CHANGE_EXPIRY = "change_expiry"  # a booking change the interpreter has not answered lapses
    RETENTION = "retention"  # per district and night: what is kept no longer is purged (services.retention)
    # Markers of the operator alerts (services.operator_alerts), each told once:
    ALERT_DUE_FAILED = "alert_due_failed"  # per due row given up
    ALERT_NO_CHAT = "alert_no_chat"  # per interpreter an offer could not reach
    ALERT_PLATFORM_DOWN = "alert_platform_down"  # per district, platform and outage
    ALERT_PLATFORM_BACK = "alert_platform_back"  # per district, platform and outage


class Outcome(StrEnum):
    DONE = "done"
    DROPPED = "dropped"  # pointless by the time it came due
    FAILED = "failed"
    LATER = "later"  # not yet after all (the policy period grew): the handler moved its due time


ARMED = "due.armed"  # session.info: this transaction armed (or moved) a due row


def armed_any(session: Session) -> bool:
    """Whether this session armed or moved a due row (the timers then look again at the next one)."""
    return bool(session.info.get(ARMED))


def arm(
    session: Session,
    *,
    district_id: int,
    kind: Kind,
    subject_id: int,
    due_at: datetime,
    now: datetime,
    variant: str = "",
) -> DueTask:
    """Make sure the task is due at `due_at`: create it, or move a task not yet fired.

    Two processes arming the same task at once (the weekly digest, at start) both succeed: the
    loser of the insert finds the winner's row instead.
    """
    session.info[ARMED] = True
    for _ in range(2):
        task = session.exec(
            select(DueTask).where(
                DueTask.kind == kind.value, DueTask.subject_id == subject_id, DueTask.variant == variant
            )
        ).first()
        if task is not None:
            if task.done_at is None:  # once fired, arming again must not fire it twice
                task.due_at = due_at
                session.add(task)
            return task
        task = DueTask(
            district_id=district_id,
            kind=kind.value,
            subject_id=subject_id,
            variant=variant,
            due_at=due_at,
            created_at=now,
        )
        try:
            with session.begin_nested():
                session.add(task)
        except IntegrityError:
            continue
        return task
    raise RuntimeError(f"due task {kind.value}/{subject_id}/{variant} neither found nor created")


def arm_all(session: Session, rows: list[dict[str, Any]], now: datetime) -> None:
    """Arm several tasks in one statement, as `arm` does each (created, or moved if not yet fired).

    `rows` hold district_id, kind, subject_id, variant and due_at. One `INSERT ... ON CONFLICT DO
    UPDATE` on the unique key: no read first and no savepoint, and two transactions arming the same
    task at once end with one row (the second waits for the first, then moves its due time).
    """
    if not rows:
        return
    session.info[ARMED] = True
    values = [{**row, "kind": str(row["kind"]), "created_at": now} for row in rows]
    # One statement built once, run for all rows (a multi-row VALUES is built and compiled anew each call).
    session.execute(built_for(session, _arming), values)


def _arming(dialect: str) -> Insert:
    """`arm_all`'s INSERT ... ON CONFLICT of one row, for `dialect`."""
    table = DueTask.__table__  # type: ignore[attr-defined]
    statement = insert_on(dialect, table)
    return statement.on_conflict_do_update(
        index_elements=["kind", "subject_id", "variant"],
        set_={"due_at": statement.excluded.due_at},
        where=table.c.done_at.is_(None),  # once fired, arming again must not fire it twice
    )


def mark_once(
    session: Session, *, district_id: int, kind: Kind, subject_id: int, variant: str = "", now: datetime
) -> bool:
    """Record that something happened once (an alert for a threshold); False when it was recorded before.

    Two transactions recording the same marker at once (two processes on PostgreSQL) cannot both
    succeed: the unique key makes the second insert wait for the first and then fail, inside a
    savepoint, so the second caller gets False and its transaction goes on.
    """
    marker = select(DueTask).where(
        DueTask.kind == kind.value, DueTask.subject_id == subject_id, DueTask.variant == variant
    )
    if session.exec(marker).first() is not None:
        return False
    try:
        with session.begin_nested():
            session.add(
                DueTask(
                    district_id=district_id,
                    kind=kind.value,
                    subject_id=subject_id,
                    variant=variant,
                    due_at=now,
                    done_at=now,
                    outcome=Outcome.DONE.value,
                    created_at=now,
                )
            )
    except IntegrityError:
        return False
    return True


def next_due_at(session: Session) -> datetime | None:
    """When the earliest task not yet fired is due."""
    query = (
        select(DueTask.due_at).where(col(DueTask.done_at).is_(None)).order_by(col(DueTask.due_at)).limit(1)
    )
    return session.exec(query).first()


def claim(session: Session, now: datetime) -> DueTask | None:
    """The oldest due task, locked for this transaction; on PostgreSQL others skip it."""
    query = (
        select(DueTask)
        .where(col(DueTask.done_at).is_(None), col(DueTask.due_at) <= now)
        .order_by(col(DueTask.due_at), col(DueTask.id))
        .limit(1)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return session.exec(query).first()


def failed(session: Session, task_id: int, error: str, now: datetime) -> DueTask | None:
    """An unexpected failure: try again a little later, and give up after a few attempts.

    Returns the task when this call gave it up (it is locked, so only one caller ever does), else None.
    """
    task = session.get(DueTask, task_id, with_for_update=True, populate_existing=True)
    if task is None or task.done_at is not None:
        return None  # another process fired it meanwhile
    task.attempts += 1
    task.last_error = error[:200]
    if task.attempts >= MAX_ATTEMPTS:
        task.done_at, task.outcome = now, Outcome.FAILED.value
    else:
        task.due_at = now + RETRY_PAUSE * task.attempts
    session.add(task)
    return task if task.outcome == Outcome.FAILED else None


# --- arming, called by the services in the transaction of the change -------------------------------


def arm_offer_expiry(
    session: Session, request: Request, expires_at: datetime, now: datetime, *, wave: int | None = None
) -> None:
    """A wave's offers expire together (the request's latest wave unless `wave` is named)."""
    assert request.id is not None
    variant = f"wave{request.wave if wave is None else wave}"
    task = {"kind": Kind.OFFER_EXPIRY, "subject_id": request.id, "variant": variant, "due_at": expires_at}
    arm_all(session, [{"district_id": request.district_id, **task}], now)


def arm_booking(session: Session, request: Request, now: datetime, policy: Policy | None = None) -> None:
    """Reminders before the start and the closeout prompt at the planned end of a booked session
    (one statement, `arm_all`; `policy`: the district's, if the caller has it already)."""
    assert request.id is not None
    assert request.interpreter_id is not None
    policy = policy or load_policy(session, request.district_id)
    booking = f"i{request.interpreter_id}"  # booked again by someone else: their own reminders
    rows: list[dict[str, Any]] = []
    if request.mode != Mode.WRITTEN.value:
        for name, lead in (("first", policy.reminder_first), ("second", policy.reminder_second)):
            due = request.starts_at - lead
            if due > now:  # a reminder already past at booking time says nothing the booking did not
                rows.append({"kind": Kind.REMINDER, "variant": f"{name}:{booking}", "due_at": due})
    end = request.starts_at + timedelta(minutes=request.duration_minutes)
    rows.append({"kind": Kind.CLOSEOUT_PROMPT, "variant": booking, "due_at": end})
    common = {"district_id": request.district_id, "subject_id": request.id}
    arm_all(session, [{**common, **row} for row in rows], now)


def arm_auto_confirm(session: Session, request: Request, closeout: Closeout, now: datetime) -> None:
    """A report counts as confirmed after the policy's period; a corrected report starts it again."""
    assert request.id is not None
    policy = load_policy(session, request.district_id)
    arm(
        session,
        district_id=request.district_id,
        kind=Kind.AUTO_CONFIRM,
        subject_id=request.id,
        variant=closeout.reported_at.isoformat(timespec="seconds")[:19],  # each report its own period
        due_at=closeout.reported_at + policy.closeout_auto_confirm_after,
        now=now,
    )


def week_start(now: datetime) -> datetime:
    """The latest Monday 08:00 in Berlin at or before `now`, in UTC (daylight saving included)."""
    local = now.astimezone(BERLIN)
    monday = (local - timedelta(days=local.weekday())).date()
    start = datetime.combine(monday, DIGEST_TIME, tzinfo=BERLIN)
    if start > local:
        start = datetime.combine(monday - timedelta(days=7), DIGEST_TIME, tzinfo=BERLIN)
    return start.astimezone(now.tzinfo)


def weeks_later(moment: datetime, weeks: int) -> datetime:
    """The same Berlin wall-clock time `weeks` weeks on (a week across a clock change is 167 or 169 h)."""
    local = moment.astimezone(BERLIN)
    later = datetime.combine(local.date() + timedelta(weeks=weeks), local.time(), tzinfo=BERLIN)
    return later.astimezone(moment.tzinfo)


def arm_digest(session: Session, district_id: int, now: datetime) -> DueTask:
    """The next weekly digest (Monday 08:00 Berlin) after `now` for a district."""
    monday = weeks_later(week_start(now), 1)
    return arm(
        session,
        district_id=district_id,
        kind=Kind.DIGEST,
        subject_id=district_id,
        variant=monday.astimezone(BERLIN).date().isoformat(),
        due_at=monday,
        now=now,
    )


def next_night(now: datetime) -> datetime:
    """The first 03:15 Berlin after `now`, in `now`'s zone (CET or CEST, whichever that night has)."""
    local = now.astimezone(BERLIN)
    night = datetime.combine(local.date(), RETENTION_TIME, tzinfo=BERLIN)
    if night <= local:
        night = datetime.combine(local.date() + timedelta(days=1), RETENTION_TIME, tzinfo=BERLIN)
    return night.astimezone(now.tzinfo)


def arm_retention(session: Session, district_id: int, now: datetime) -> DueTask:
    """The district's next nightly purge (services.retention), at 03:15 Berlin after `now`."""
    night = next_night(now)
    return arm(
        session,
        district_id=district_id,
        kind=Kind.RETENTION,
        subject_id=district_id,
        variant=night.astimezone(BERLIN).date().isoformat(),
        due_at=night,
        now=now,
    )


def backfill(session: Session, now: datetime) -> None:
    """Arm what the current state implies but no row holds yet (rows written before this existed).

    Arming is idempotent, so running this at every start changes nothing that is already armed.
    """
    waves = session.exec(
        select(Request, Offer.wave, func.min(Offer.expires_at))
        .join(Offer, col(Offer.request_id) == Request.id)
        .where(Request.state == RequestState.OFFERED.value, Offer.state == OfferState.OPEN.value)
        .group_by(col(Request.id), col(Offer.wave))
    ).all()
    for request, wave, open_until in waves:  # one row per wave still open, at that wave's time
        arm_offer_expiry(session, request, open_until, now, wave=wave)
    for request in session.exec(select(Request).where(Request.state == RequestState.BOOKED.value)).all():
        arm_booking(session, request, now)
    reported = session.exec(
        select(Request, Closeout)
        .join(Closeout, col(Closeout.request_id) == Request.id)
        .where(Closeout.state == CloseoutState.REPORTED.value)
    ).all()
    for request, closeout in reported:
        arm_auto_confirm(session, request, closeout, now)
