"""What happens as time passes, on the real database: offer waves expire, reminders, closeout, digests.

Most tests move a clock and fire what is due, as the bot's timers do on each tick
(`bot.scheduling.run_due`); the last ones run the real APScheduler in real time, across a
restart, and two timer processes on one PostgreSQL database.
"""

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.i18n import Translator
from bot.notifications import render
from bot.scheduling import Timers, run_due
from db.models import Closeout, DueTask, Offer, OutboxMessage, PolicySetting, Request
from db.uow import UnitOfWork
from services import ledger
from services.due import Kind, arm, week_start
from services.offers import give_back
from services.policy import set_rule
from services.vocabulary import Mode, Role
from tests.builders import ACTOR, NOW, SOON, World, book, build_world, dispute_for, report_for, submit

ROOT = Path(__file__).resolve().parent.parent
MakeUow = Callable[[], UnitOfWork]


@pytest.fixture
def world(uow: MakeUow) -> World:
    world = build_world(uow)
    for name, km in (("Amira", 1), ("Samir", 2), ("Rojin", 3), ("Hodan", 4)):
        world.interpreter(name, km_north=km)
    return world


def offers(world: World, request_id: int) -> list[tuple[str, int, str]]:
    """(interpreter name, wave, state) of every offer, in order."""
    names = {i: n for n, i in world.interpreters.items()}
    with world.make_uow() as u:
        rows = u.session.exec(select(Offer).where(Offer.request_id == request_id).order_by(col(Offer.id)))
        return [(names[o.interpreter_id], o.wave, o.state) for o in rows]


def outbox(world: World, template: str) -> list[tuple[str, int]]:
    """(recipient type, recipient id) of each notification of a template, in order."""
    with world.make_uow() as u:
        rows = u.session.exec(
            select(OutboxMessage).where(OutboxMessage.template == template).order_by(col(OutboxMessage.id))
        )
        return [(m.recipient_type, m.recipient_id) for m in rows]


def params_of(world: World, template: str) -> list[dict[str, Any]]:
    with world.make_uow() as u:
        rows = u.session.exec(select(OutboxMessage).where(OutboxMessage.template == template))
        return [json.loads(m.params) for m in rows]


def state_of(world: World, request_id: int) -> str:
    with world.make_uow() as u:
        request = u.session.get(Request, request_id)
        assert request is not None
        return request.state


def tasks(world: World, kind: str) -> list[tuple[str, datetime, str]]:
    """(variant, due at, outcome) of a kind's due tasks."""
    with world.make_uow() as u:
        rows = u.session.exec(select(DueTask).where(DueTask.kind == kind).order_by(col(DueTask.id)))
        return [(t.variant, t.due_at, t.outcome) for t in rows]


def fire(engine: Engine, at: datetime) -> int:
    return run_due(engine, lambda: at)


def test_offers_expire_in_waves_until_the_request_is_unfilled_and_referred(
    world: World, engine: Engine
) -> None:
    request_id = submit(world)
    expiry = NOW + timedelta(hours=4)  # the policy timeout; the session is a week away
    assert offers(world, request_id) == [("Amira", 1, "open"), ("Samir", 1, "open"), ("Rojin", 1, "open")]
    assert tasks(world, "offer_expiry") == [("wave1", expiry, "")]

    assert fire(engine, expiry - timedelta(seconds=1)) == 0  # not yet
    assert fire(engine, expiry) == 1
    assert offers(world, request_id) == [
        ("Amira", 1, "expired"),
        ("Samir", 1, "expired"),
        ("Rojin", 1, "expired"),
        ("Hodan", 2, "open"),
    ]
    assert [p["offer_id"] for p in params_of(world, "offer.expired")] == [
        1,
        2,
        3,
    ]  # edits their offer messages
    second = expiry + timedelta(hours=4)
    assert tasks(world, "offer_expiry") == [("wave1", expiry, "done"), ("wave2", second, "")]

    assert fire(engine, second + timedelta(minutes=5)) == 1  # a little late (the bot was down): runs once
    assert offers(world, request_id)[-1] == ("Hodan", 2, "expired")
    assert state_of(world, request_id) == "unfilled"
    assert outbox(world, "request.unfilled") == [("school", world.school_id)]
    [unfilled] = params_of(world, "request.unfilled")
    assert "referral_text" not in unfilled  # the district's text is read when a message needs it
    with world.make_uow() as u:
        text = render(u.session, Translator("de"), "request.unfilled", unfilled, Role.SCHOOL).text
    assert text.endswith(  # a language the pool covers: no referral
        "\nNiemand aus dem Pool hat diese Anfrage angenommen. Die Koordinierungsstelle ist informiert und "
        "meldet sich bei Ihnen."
    )
    assert outbox(world, "request.unfilled_coordinator") == [("coordinators", world.district_id)]
    assert params_of(world, "request.unfilled_coordinator")[0]["reason"] == "not_filled"
    with world.make_uow() as u:
        assert ledger.open_reservation(u.session, request_id) == 0  # the money is free again
    assert fire(engine, second + timedelta(days=1)) == 0  # nothing fires twice


def test_an_offer_window_is_never_longer_than_half_the_time_left(world: World, engine: Engine) -> None:
    starts = NOW + timedelta(hours=3)
    request_id = submit(world, mode=Mode.PHONE, starts_at=starts)
    assert tasks(world, "offer_expiry") == [("wave1", NOW + timedelta(minutes=90), "")]
    book(world, request_id, "Samir", NOW + timedelta(minutes=10))
    assert fire(engine, NOW + timedelta(minutes=90)) == 2  # the expiry, and the reminder 2 h before
    booked_in_time = ("wave1", NOW + timedelta(minutes=90), "dropped")
    assert tasks(world, "offer_expiry") == [booked_in_time]
    assert outbox(world, "offer.expired") == []
    samir = world.interpreters["Samir"]
    assert tasks(world, "reminder") == [
        (f"second:i{samir}", starts - timedelta(hours=2), "done")
    ]  # 24 h: past


def test_reminders_go_to_school_and_interpreter_at_the_policy_times(world: World, engine: Engine) -> None:
    request_id = submit(world)
    book(world, request_id, "Amira")
    amira = world.interpreters["Amira"]
    both = [("school", world.school_id), ("interpreter", amira)]
    first, second = SOON - timedelta(hours=24), SOON - timedelta(hours=2)
    assert tasks(world, "reminder") == [(f"first:i{amira}", first, ""), (f"second:i{amira}", second, "")]
    assert fire(engine, first - timedelta(seconds=1)) == 1  # only the offer wave's expiry (dropped: booked)
    assert outbox(world, "booking.reminder") == []
    assert fire(engine, first) == 1
    assert outbox(world, "booking.reminder") == both
    assert fire(engine, second) == 1
    assert outbox(world, "booking.reminder") == both + both


def test_a_reminder_missed_until_the_session_began_is_dropped_and_one_for_a_cancelled_booking_too(
    world: World, engine: Engine
) -> None:
    late = submit(world)
    book(world, late, "Amira")
    given_back = submit(world, starts_at=SOON + timedelta(days=1))
    book(world, given_back, "Samir")
    with world.make_uow() as u:
        give_back(
            u.session,
            request_id=given_back,
            interpreter_id=world.interpreters["Samir"],
            reason="ill",
            actor=ACTOR,
            now=NOW + timedelta(hours=1),
        )
        u.commit()
    # The bot was down from Monday until both sessions had begun.
    fire(engine, SOON + timedelta(days=1, minutes=5))
    assert outbox(world, "booking.reminder") == []
    assert [outcome for _, _, outcome in tasks(world, "reminder")] == ["dropped"] * 4


def test_the_closeout_prompt_the_reminder_and_the_auto_confirmation(world: World, engine: Engine) -> None:
    request_id = submit(world)
    book(world, request_id, "Amira")
    amira = world.interpreters["Amira"]
    end = SOON + timedelta(minutes=60)
    fire(engine, SOON)  # the reminders
    assert fire(engine, end) == 1
    assert outbox(world, "closeout.prompt") == [("interpreter", amira)]
    assert fire(engine, end + timedelta(days=1)) == 1  # not reported after a day: once more
    assert outbox(world, "closeout.reminder") == [("interpreter", amira)]

    reported_at = end + timedelta(days=1, hours=2)
    report_for(world, request_id, "Amira", 75, reported_at, km=2)
    confirm_at = reported_at + timedelta(days=3)
    assert tasks(world, "auto_confirm") == [(reported_at.isoformat()[:19], confirm_at, "")]
    assert fire(engine, confirm_at - timedelta(minutes=1)) == 0
    assert fire(engine, confirm_at) == 1
    assert state_of(world, request_id) == "settled"
    assert outbox(world, "closeout.auto_confirmed") == [("school", world.school_id)]
    with world.make_uow() as u:
        closeout = u.session.exec(select(Closeout)).one()
        budget = ledger.get_budget(u.session, world.district_id, 2026)
    assert (closeout.state, closeout.decided_by) == ("confirmed", "system:timers")
    # 75 min bill as 90 (60, then per started 30): 36.00; 2 km driven x 0.30 = 0.60
    assert (budget.charged_cents, budget.reserved_cents) == (3660, 0)


def test_a_disputed_report_is_not_confirmed_by_silence(world: World, engine: Engine) -> None:
    request_id = submit(world)
    book(world, request_id, "Amira")
    reported_at = SOON + timedelta(hours=2)
    report_for(world, request_id, "Amira", 60, reported_at, km=2)
    dispute_for(world, request_id, "kürzer", reported_at + timedelta(hours=1))
    fire(engine, reported_at + timedelta(days=4))
    assert tasks(world, "auto_confirm")[0][2] == "dropped"
    assert state_of(world, request_id) == "completed"
    assert outbox(world, "closeout.prompt") == []  # reported before the end was due: no prompt either


def test_a_report_made_again_after_a_dispute_gets_its_own_period(world: World, engine: Engine) -> None:
    request_id = submit(world)
    book(world, request_id, "Amira")
    first = SOON + timedelta(hours=2)
    report_for(world, request_id, "Amira", 75, first, km=2)
    dispute_for(world, request_id, "Es waren 60 Minuten.", first + timedelta(hours=1))
    fire(engine, first + timedelta(days=3))  # the first period ends while disputed: nothing
    again = first + timedelta(days=3, hours=1)
    report_for(world, request_id, "Amira", 60, again, km=2)  # the interpreter reports anew
    assert fire(engine, again + timedelta(days=3)) == 1
    assert state_of(world, request_id) == "settled"
    assert [outcome for _, _, outcome in tasks(world, "auto_confirm")] == ["dropped", "done"]


def test_a_longer_confirmation_period_postpones_the_auto_confirmation(world: World, engine: Engine) -> None:
    request_id = submit(world)
    book(world, request_id, "Amira")
    reported = SOON + timedelta(hours=2)
    report_for(world, request_id, "Amira", 60, reported, km=2)
    with world.make_uow() as u:
        set_rule(u.session, world.district_id, "closeout_auto_confirm_after", "5d", actor=ACTOR, now=reported)
        u.commit()
    fire(engine, reported + timedelta(days=3))
    assert state_of(world, request_id) == "completed"
    assert tasks(world, "auto_confirm") == [(reported.isoformat()[:19], reported + timedelta(days=5), "")]
    fire(engine, reported + timedelta(days=5))
    assert state_of(world, request_id) == "settled"


def test_a_late_start_sends_the_second_reminder_only(world: World, engine: Engine) -> None:
    request_id = submit(world)
    book(world, request_id, "Amira")
    fire(engine, SOON - timedelta(hours=1))  # down from Monday until an hour before the session
    assert outbox(world, "booking.reminder") == [
        ("school", world.school_id),
        ("interpreter", world.interpreters["Amira"]),
    ]
    assert [outcome for _, _, outcome in tasks(world, "reminder")] == ["dropped", "done"]


def test_a_failing_task_is_tried_again_later_and_nothing_of_it_is_kept(
    world: World, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services import timers

    request_id = submit(world)
    expiry = NOW + timedelta(hours=4)
    original = timers.HANDLERS[Kind.OFFER_EXPIRY]
    calls = []

    def broken_once(session: Any, task: DueTask, now: datetime) -> Any:
        calls.append(now)
        outcome = original(session, task, now)  # writes the expiry and the next wave ...
        if len(calls) == 1:
            raise ConnectionError("database went away")  # ... and then fails
        return outcome

    monkeypatch.setitem(timers.HANDLERS, Kind.OFFER_EXPIRY, broken_once)
    assert fire(engine, expiry) == 0
    assert offers(world, request_id) == [("Amira", 1, "open"), ("Samir", 1, "open"), ("Rojin", 1, "open")]
    assert outbox(world, "offer.expired") == []
    with world.make_uow() as u:
        task = u.session.exec(select(DueTask).where(DueTask.kind == "offer_expiry")).one()
    assert (task.attempts, task.last_error, task.done_at) == (1, "ConnectionError", None)
    assert task.due_at == expiry + timedelta(minutes=1)
    assert fire(engine, expiry + timedelta(minutes=1)) == 1
    assert [state for _, _, state in offers(world, request_id)] == ["expired"] * 3 + ["open"]


def test_the_digest_keeps_monday_eight_across_the_clock_change(world: World, engine: Engine) -> None:
    october = datetime(2026, 10, 19, 7, 0, tzinfo=UTC)  # Monday 09:00 CEST
    from bot.scheduling import rearm

    rearm(engine, october)
    winter_monday = datetime(2026, 10, 26, 7, 0, tzinfo=UTC)  # 08:00 CET, after the clocks went back
    assert tasks(world, "digest") == [("2026-10-26", winter_monday, "")]
    fire(engine, winter_monday)
    assert params_of(world, "digest.weekly")[0]["since_at"] == "2026-10-19T06:00:00+00:00"  # 08:00 CEST
    assert tasks(world, "digest")[-1] == ("2026-11-02", datetime(2026, 11, 2, 7, 0, tzinfo=UTC), "")


def test_budget_alerts_come_once_at_each_threshold(uow: MakeUow, engine: Engine) -> None:
    world = build_world(uow, budget_cents=100_00)
    world.interpreter("Amira", km_north=0)
    # Three in-person hours reserve 72.00 of 100.00; each phone half hour 12.00 more.
    for day in range(3):
        submit(world, starts_at=SOON + timedelta(days=day))
    assert params_of(world, "budget.alert") == []
    submit(world, mode=Mode.PHONE, minutes=30, starts_at=SOON + timedelta(days=3))  # 84 %
    submit(world, mode=Mode.PHONE, minutes=30, starts_at=SOON + timedelta(days=4))  # 96 %
    alerts = params_of(world, "budget.alert")
    assert [(a["threshold_percent"], a["available_cents"]) for a in alerts] == [(80, 1600), (95, 400)]
    assert outbox(world, "budget.alert") == [("coordinators", world.district_id)] * 2
    with world.make_uow() as u:
        set_rule(u.session, world.district_id, "budget_alert_first", "50%", actor=ACTOR, now=NOW)
        u.commit()
    submit(world, mode=Mode.PHONE, starts_at=SOON + timedelta(days=5), language="fa")  # referred: no posting
    with world.make_uow() as u:
        budget = ledger.get_budget(u.session, world.district_id, 2026, lock=True)
        ledger.adjust(
            u.session, budget, amount_cents=100, reason="Korrektur", request_id=None, actor=ACTOR, now=NOW
        )
        u.commit()
    # 50 % is new and was crossed long ago: one more alert; 80 % and 95 % are not repeated.
    assert [a["threshold_percent"] for a in params_of(world, "budget.alert")] == [80, 95, 50]


def test_the_weekly_digest_comes_on_monday_at_eight_in_berlin(world: World, engine: Engine) -> None:
    from bot.scheduling import rearm

    rearm(engine, NOW)  # Monday 09:00 Berlin: the next digest is next Monday 08:00 (CET, 07:00 UTC)
    monday = datetime(2026, 3, 9, 7, 0, tzinfo=UTC)
    assert week_start(NOW) == datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
    assert tasks(world, "digest") == [("2026-03-09", monday, "")]
    booked = submit(world)
    book(world, booked, "Amira")
    submit(world, language="ka")  # nobody speaks Georgian
    submit(world, language="ti", mode=Mode.PHONE)  # nor Tigrinya
    assert fire(engine, monday) >= 1
    digest = params_of(world, "digest.weekly")
    assert outbox(world, "digest.weekly") == [("coordinators", world.district_id)]
    assert {
        k: digest[0][k] for k in ("bookings", "charged_cents", "unfilled", "uncovered", "available_cents")
    } == {
        "bookings": 1,
        "charged_cents": 0,
        "unfilled": 0,
        "uncovered": ["ka", "ti"],
        "available_cents": 5000_00 - 2478,  # Amira's hour and her estimated travel, 2 x 1 km x 1.3 x 0.30
    }
    # Nothing spent on sessions held yet: the year ends at what is committed, and the money lasts.
    assert (digest[0]["year_end_cents"], digest[0]["runs_out_on"]) == (2478, None)
    with world.make_uow() as u:
        text = render(u.session, Translator("de"), "digest.weekly", digest[0], Role.COORDINATOR).text
    lasts = "At the current pace the year ends at {year_end_cents}; the money lasts."
    assert text.endswith(Translator("de").render(lasts, {"year_end_cents": 2478}))
    # The next one is armed; after summer time begins, Monday 08:00 Berlin is 06:00 UTC.
    assert tasks(world, "digest")[-1] == ("2026-03-16", datetime(2026, 3, 16, 7, 0, tzinfo=UTC), "")
    assert week_start(datetime(2026, 4, 1, 12, 0, tzinfo=UTC)) == datetime(2026, 3, 30, 6, 0, tzinfo=UTC)


def test_a_start_arms_what_the_database_implies_and_only_once(world: World, engine: Engine) -> None:
    from bot.scheduling import rearm

    offered = submit(world)
    booked = submit(world, starts_at=SOON + timedelta(days=1))
    book(world, booked, "Amira")
    with world.make_uow() as u:  # as written before the timers existed
        for task in u.session.exec(select(DueTask)).all():
            u.session.delete(task)
        u.commit()
    rearm(engine, NOW)
    rearm(engine, NOW)
    amira = world.interpreters["Amira"]
    with world.make_uow() as u:
        armed = sorted((t.kind, t.subject_id, t.variant) for t in u.session.exec(select(DueTask)).all())
    assert armed == [
        ("closeout_prompt", booked, f"i{amira}"),
        ("digest", world.district_id, "2026-03-09"),
        ("offer_expiry", offered, "wave1"),
        ("reminder", booked, f"first:i{amira}"),
        ("reminder", booked, f"second:i{amira}"),
        ("retention", world.district_id, "2026-03-03"),
    ]


# --- real time: the real APScheduler, a restart, two processes ------------------------------------


def _real_world(make_uow: MakeUow, rules: dict[str, str]) -> World:
    """The test world with this year's budget and short policy durations, for tests on the wall clock."""
    world = build_world(make_uow)
    now = datetime.now(UTC)
    with make_uow() as u:
        if ledger.find_budget(u.session, world.district_id, ledger.fiscal_year(now)) is None:
            year = ledger.fiscal_year(now)
            ledger.set_total(
                u.session, district_id=world.district_id, year=year, total_cents=5000_00, actor=ACTOR, now=now
            )
        for key, value in rules.items():
            # Stored directly: seconds-short timeouts are below what `policy set` allows a person.
            row = u.session.exec(
                select(PolicySetting).where(
                    PolicySetting.district_id == world.district_id, PolicySetting.key == key
                )
            ).one()
            row.value = value
            u.session.add(row)
        u.commit()
    return world


async def _until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_the_real_scheduler_expires_waves_in_real_time(uow: MakeUow, engine: Engine) -> None:
    world = _real_world(uow, {"offer_timeout": "2s"})
    for name, km in (("Amira", 1), ("Samir", 2), ("Rojin", 3), ("Hodan", 4)):
        world.interpreter(name, km_north=km)
    timers = Timers(engine)  # the wall clock; the periodic look is 30 s, so only the armed job can be on time
    assert await timers.start()
    try:
        started = datetime.now(UTC)
        request_id = submit(world, now=started, mode=Mode.PHONE, starts_at=started + timedelta(hours=3))
        timers.poke()  # as the bot does after each handled message
        await _until(lambda: state_of(world, request_id) == "unfilled", 15, "the request to be unfilled")
    finally:
        await timers.stop()
    assert offers(world, request_id) == [
        ("Amira", 1, "expired"),
        ("Samir", 1, "expired"),
        ("Rojin", 1, "expired"),
        ("Hodan", 2, "expired"),
    ]
    with world.make_uow() as u:
        fired = u.session.exec(
            select(DueTask).where(DueTask.kind == "offer_expiry").order_by(col(DueTask.id))
        ).all()
    assert [(t.variant, t.outcome) for t in fired] == [("wave1", "done"), ("wave2", "done")]
    assert all(
        t.done_at is not None and t.done_at - t.due_at < timedelta(seconds=2) for t in fired
    )  # on time


async def test_a_restart_between_arming_and_firing_neither_loses_nor_repeats_a_reminder(
    uow: MakeUow, engine: Engine
) -> None:
    world = _real_world(uow, {"lead_time_remote": "1h", "reminder_second": "30m", "reminder_first": "1h"})
    world.interpreter("Amira", km_north=1)
    now = datetime.now(UTC)
    request_id = submit(world, now=now, mode=Mode.PHONE, starts_at=now + timedelta(hours=1, seconds=3))
    book(world, request_id, "Amira", now)
    first = timers = Timers(engine)
    assert await first.start()
    await asyncio.sleep(1)
    await first.stop()  # down before the reminder is due
    assert tasks(world, "reminder")[0][2] == ""  # armed, not fired
    await asyncio.sleep(3)  # now it is due, and nobody is running
    both = [("school", world.school_id), ("interpreter", world.interpreters["Amira"])]
    for _ in range(2):  # started again, twice
        timers = Timers(engine)
        assert await timers.start()
        await _until(lambda: outbox(world, "booking.reminder") == both, 5, "the reminder")
        await asyncio.sleep(0.5)
        await timers.stop()
    assert outbox(world, "booking.reminder") == both  # once, not lost and not twice
    assert [outcome for _, _, outcome in tasks(world, "reminder")] == ["done", ""]  # the 30 min one is later


def _timers_process(database_url: str) -> subprocess.Popen[str]:
    env = {**os.environ, "DATABASE_URL": database_url, "BOT_LOCALE": "en"}
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "timers"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop(process: subprocess.Popen[str]) -> tuple[str, str]:
    process.terminate()
    out, err = process.communicate(timeout=30)
    return out, err


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
async def test_two_timer_processes_on_postgresql_send_each_reminder_once(
    uow: MakeUow, engine: Engine
) -> None:
    world = _real_world(uow, {"lead_time_remote": "1h"})
    world.interpreter("Amira", km_north=1)
    now = datetime.now(UTC)
    booked = []
    for n in range(6):
        request_id = submit(world, now=now, mode=Mode.PHONE, starts_at=now + timedelta(hours=3 + 2 * n))
        book(world, request_id, "Amira", now)
        booked.append(request_id)
    amira = world.interpreters["Amira"]
    due_at = datetime.now(UTC) + timedelta(seconds=4)
    with world.make_uow() as u:  # the coordinator moved the reminders: all due in four seconds
        for request_id in booked:
            arm(
                u.session,
                district_id=world.district_id,
                kind=Kind.REMINDER,
                subject_id=request_id,
                variant=f"first:i{amira}",
                due_at=due_at,
                now=now,
            )
        u.commit()
    url = engine.url.render_as_string(hide_password=False)
    processes = [_timers_process(url), _timers_process(url)]
    try:
        await _until(lambda: len(outbox(world, "booking.reminder")) >= 12, 30, "the reminders")
        await asyncio.sleep(2)  # time for a second copy to show up, if there were one
    finally:
        outputs = [_stop(p) for p in processes]
    assert [out for out, _ in outputs] == ["The timers are running. Stop them with Ctrl+C.\n"] * 2
    assert sorted(outbox(world, "booking.reminder")) == sorted(
        [("school", world.school_id), ("interpreter", amira)] * 6
    )
    with world.make_uow() as u:
        fired = u.session.exec(
            select(DueTask).where(DueTask.kind == "reminder", DueTask.due_at == due_at)
        ).all()
    assert [(t.outcome, t.attempts) for t in fired] == [("done", 1)] * 6


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
async def test_a_second_timer_process_on_sqlite_leaves_the_timers_alone(engine: Engine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    first = _timers_process(url)
    try:
        await _until(lambda: Path(f"{engine.url.database}.timers.lock").exists(), 20, "the first process")
        second_log = Path(f"{engine.url.database}.second.log")
        with second_log.open("w") as log_file:
            env = {**os.environ, "DATABASE_URL": url, "BOT_LOCALE": "en"}
            second = subprocess.Popen(
                [sys.executable, "-m", "bot", "timers"], cwd=ROOT, env=env, stderr=log_file, text=True
            )
            refused = "another process runs the timers for this database; this one leaves them alone"
            try:  # however slowly the second process starts on a loaded machine
                await _until(lambda: refused in second_log.read_text(), 60, "the second process")
            finally:
                second.terminate()
                second.wait(timeout=30)
    finally:
        first_out, first_log = _stop(first)
    assert first_out == "The timers are running. Stop them with Ctrl+C.\n"
    assert refused in second_log.read_text()
    assert "another process" not in first_log
