"""The review of issue 13's work: dialogs whose subject has gone end, "Start again" keeps the dialog
beneath, /away's list asks before removing and pages, an absence's end counts from its first day,
bookings running into an absence, the gender wish as its own reason, reminders of the right
interpreter, one message for a held hand-back, `run` that refuses untouched, and one reason rule."""

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel, col, select

from bot.conversation.answers import parse_day
from bot.conversation.router import Conversation
from bot.i18n import Translator
from bot.messages import Incoming
from bot.notifications import TEMPLATES, render
from bot.scheduling import run_due
from db.models import Absence, DialogState, DueTask, Interpreter, OutboxMessage
from db.uow import UnitOfWork
from services import closeout, identities, requests
from services.clock import BERLIN
from services.errors import InvalidInput
from services.matching import why_nobody
from services.notices import Notice, RequestHandedBack
from services.offers import give_back
from services.policy import set_rule
from services.pool import add_absence, booked_between
from services.reasons import clean_reason
from services.vocabulary import Gender, Mode, Role, UnmetReason
from tests.builders import ACTOR, SOON, book, build_world, submit
from tests.builders import NOW as WORLD_NOW
from tests.chat_world import NOW, START, Clock
from tests.test_conversation import _join, _say
from tests.test_reports_away_reasons import _booked, _held_request, _reply

DE = Translator("de")
ROOT = Path(__file__).resolve().parent.parent
MakeUow = Callable[[], UnitOfWork]
QUESTION_FROM = DE.gettext("From which day are you away? (e.g. 12.3. or Monday)")


def _handle(talk: Conversation, user: str, typed: str = "", choice: str | None = None) -> list[str]:
    return [r.text for r in talk.handle(Incoming("test", user, user, text=typed, choice=choice))]


def _dialog(engine: Engine, user: str) -> tuple[str, str, dict[str, object]]:
    with UnitOfWork(engine) as uow:
        member = identities.member_of(uow.session, "test", user)
        assert member is not None
        row = uow.session.exec(select(DialogState).where(DialogState.member_id == member.id)).first()
        if row is None:
            return "", "", {}
        return row.flow, row.step, json.loads(row.draft)


# --- 1. a dialog whose subject has gone ends with a sentence -------------------------------------


def test_a_hand_back_whose_booking_was_cancelled_meanwhile_ends_with_one_sentence(engine: Engine) -> None:
    talk, _ = _booked(engine)
    _say(talk, "amira", choice="bk:gb:1")
    _say(talk, "amira", choice="yes")
    assert _dialog(engine, "amira")[:2] == ("give_back", "reason")
    with UnitOfWork(engine) as uow:
        request = requests.get_request(uow.session, 1, 1)
        requests.cancel(uow.session, district_id=request.district_id, request_id=1, actor="t", now=NOW)
        uow.commit()
    gone = DE.render(
        "This request is {state} and cannot become {target}.", {"state": "cancelled", "target": "offered"}
    )
    assert _handle(talk, "amira", "Mein Kind ist krank.") == [gone]  # not asked for the reason again
    assert _dialog(engine, "amira") == ("", "", {})
    assert _handle(talk, "amira", "Mein Kind ist krank.") != [gone]  # no loop: the dialog is over


def test_a_rejection_another_coordinator_decided_meanwhile_ends_with_one_sentence(engine: Engine) -> None:
    talk = _join(engine, Clock(NOW))
    request_id = _held_request(engine)
    _say(talk, "office", choice=f"rq:rj:{request_id}")
    assert _dialog(engine, "office")[:2] == ("reject", "reason")
    with UnitOfWork(engine) as uow:
        held = requests.get_request(uow.session, 1, request_id)
        requests.reject(
            uow.session,
            district_id=held.district_id,
            request_id=request_id,
            reason="Kein Geld für 2027.",
            actor="member:other",
            now=NOW,
        )
        uow.commit()
    decided = DE.render(
        "This request is {state} and cannot become {target}.", {"state": "rejected", "target": "rejected"}
    )
    assert _handle(talk, "office", "Das Budget reicht nicht.") == [decided]
    assert _dialog(engine, "office") == ("", "", {})


# --- 2. "Start again" keeps the dialog beneath ----------------------------------------------------


def test_starting_a_report_again_keeps_the_absence_beneath_it(engine: Engine) -> None:
    talk, clock = _booked(engine)
    clock.now = START + timedelta(minutes=70)
    assert _say(talk, "amira", "/away") == QUESTION_FROM
    _say(talk, "amira", choice="rp:go:1")  # a report on top of the unfinished absence
    for typed in ("60", "10", "0"):
        _say(talk, "amira", typed)
    _say(talk, "amira", choice="again")
    assert "_outer" in _dialog(engine, "amira")[2]
    for typed in ("60", "10", "0"):
        _say(talk, "amira", typed)
    sent = _handle(talk, "amira", choice="send")
    assert sent[-1] == DE.render(
        "{unfinished} Continue with /{command}, or drop it with /cancel.",
        {"unfinished": DE.gettext("Your absence has not been saved yet."), "command": "away"},
    )
    assert _dialog(engine, "amira")[:2] == ("away", "from")


def test_starting_a_correction_again_keeps_the_rejection_beneath_it(engine: Engine) -> None:
    talk, clock = _booked(engine)
    clock.now = START + timedelta(minutes=70)
    for typed in ("/report", "75", "18", "0"):
        _say(talk, "amira", typed)
    _say(talk, "amira", choice="send")
    _say(talk, "school", choice="co:no:1")
    _say(talk, "school", "Sie war nur 60 Minuten da.")
    request_id = _held_request(engine)
    _say(talk, "office", choice=f"rq:rj:{request_id}")
    _say(talk, "office", choice="co:fx:1")  # a correction on top of the unfinished rejection
    for typed in ("60", "18", "0", "Schule und Dolmetscherin einig"):
        _say(talk, "office", typed)
    _say(talk, "office", choice="again")
    flow, step, draft = _dialog(engine, "office")
    outer = draft["_outer"]
    assert isinstance(outer, dict)
    assert (flow, step, outer["flow"], outer["step"], outer["draft"]) == (
        "correct",
        "minutes",
        "reject",
        "reason",
        {"request_id": request_id},
    )


# --- 3. /away's list: removing asks first, ends the dialog, and the list pages ------------------


def _absences(engine: Engine, user: str, count: int) -> list[int]:
    """`count` one-day absences from 9 March on, every other day; their ids."""
    with UnitOfWork(engine) as uow:
        member = identities.member_of(uow.session, "test", user)
        assert member is not None
        assert member.interpreter_id is not None
        ids = []
        for n in range(count):
            first = datetime(2026, 3, 9 + 2 * n, tzinfo=BERLIN)
            absence = add_absence(
                uow.session,
                district_id=member.district_id,
                interpreter_id=member.interpreter_id,
                starts_at=first,
                ends_at=first + timedelta(days=1),
                actor="t",
                now=NOW,
            )
            ids.append(absence.id or 0)
        uow.commit()
    return ids


def _absence_ids(engine: Engine) -> list[int]:
    with UnitOfWork(engine) as uow:
        return [a.id or 0 for a in uow.session.exec(select(Absence).order_by(col(Absence.id)))]


def test_a_typed_number_on_the_away_list_asks_before_removing_and_then_the_dialog_is_over(
    engine: Engine,
) -> None:
    talk = _join(engine, Clock(NOW))
    [absence_id] = _absences(engine, "amira", 1)
    day = {"from_on": date(2026, 3, 9), "until_on": date(2026, 3, 9)}
    listed = _reply(talk, "amira", "/away")
    assert [(c.key, c.label) for c in listed.choices] == [
        (f"rm-{absence_id}", DE.render("Remove {from_on} – {until_on}", day)),
        ("new", DE.gettext("New absence")),
    ]
    asked = _reply(talk, "amira", "1")
    assert asked.text.split("\n\n")[0] == DE.render(
        "Remove your absence {from_on} – {until_on}? Offers reach you again for those days.", day
    )
    assert _absence_ids(engine) == [absence_id]  # nothing removed yet
    assert _handle(talk, "amira", "2") == [DE.gettext("Nothing was changed.")]  # No, keep it
    assert _absence_ids(engine) == [absence_id]
    _say(talk, "amira", "/away")
    _say(talk, "amira", "1")
    removed = _handle(talk, "amira", "1")  # Yes, remove it
    assert removed == [DE.render("Removed: offers reach you again for {from_on} – {until_on}.", day)]
    assert _absence_ids(engine) == []
    assert _dialog(engine, "amira") == ("", "", {})  # no "not saved yet" reminder, nothing left open


def test_the_away_list_pages_beyond_eight_absences(engine: Engine) -> None:
    talk = _join(engine, Clock(NOW))
    ids = _absences(engine, "amira", 9)
    first = _reply(talk, "amira", "/away")
    assert [c.key for c in first.choices] == [f"rm-{i}" for i in ids[:8]] + ["page-2", "new"]
    assert DE.render("Page {page} of {pages}", {"page": 1, "pages": 2}) in first.text
    second = _reply(talk, "amira", choice="page-2")
    last_day = {"from_on": date(2026, 3, 25), "until_on": date(2026, 3, 25)}
    assert DE.render("{from_on} – {until_on}", last_day) in second.text
    assert [c.key for c in second.choices] == [f"rm-{ids[8]}", "page-1", "new"]
    asked = _reply(talk, "amira", "1")  # the first on this page: the ninth absence
    assert asked.text.startswith(
        DE.render(
            "Remove your absence {from_on} – {until_on}? Offers reach you again for those days.", last_day
        )
    )


# --- 4. the end of an absence counts from its first day -------------------------------------------


def test_a_weekday_as_the_last_day_counts_from_the_first_day() -> None:
    wednesday = datetime(2026, 3, 4, 9, tzinfo=BERLIN)
    monday = date(2026, 3, 9)
    assert parse_day("Freitag", wednesday) == date(2026, 3, 6)
    assert parse_day("Freitag", wednesday, on_or_after=monday) == date(2026, 3, 13)
    assert parse_day("Mo", wednesday, on_or_after=monday) == monday  # a one-day absence
    assert parse_day("morgen", wednesday, on_or_after=monday) == date(2026, 3, 5)  # still from today
    assert parse_day("3.1.", wednesday, on_or_after=date(2026, 12, 28)) == date(2027, 1, 3)


def test_away_from_monday_to_friday_typed_on_a_wednesday(engine: Engine) -> None:
    talk = _join(engine, Clock(datetime(2026, 3, 4, 8, tzinfo=BERLIN)))
    _say(talk, "amira", "/away")
    assert _say(talk, "amira", "Montag") == DE.gettext("Until which day, inclusive?")
    assert _say(talk, "amira", "Freitag") == DE.render(
        "Noted: no offers from {from_on} until {until_on}.",
        {"from_on": date(2026, 3, 9), "until_on": date(2026, 3, 13)},
    )


# --- 5. a booking that runs into an absence --------------------------------------------------------


def test_a_session_that_begins_before_the_absence_and_runs_into_it_is_named(engine: Engine) -> None:
    _booked(engine)  # 10 March 10:00-11:00 Berlin, Amira (interpreter 1)
    with UnitOfWork(engine) as uow:
        inside = booked_between(uow.session, 1, START + timedelta(minutes=30), START + timedelta(days=1))
        after = booked_between(uow.session, 1, START + timedelta(minutes=60), START + timedelta(days=1))
        before = booked_between(uow.session, 1, START - timedelta(days=1), START)
    assert ([r.id for r in inside], after, before) == ([1], [], [])


# --- 6. the gender wish as its own reason ----------------------------------------------------------


def test_the_gender_wish_alone_in_the_way_is_its_own_reason(uow: MakeUow, engine: Engine) -> None:
    world = build_world(uow)
    world.interpreter("Amira", modes=frozenset({Mode.PHONE}))  # no gender recorded
    phone = submit(world, mode=Mode.PHONE, gender=Gender.MALE)
    by_video = submit(world, mode=Mode.VIDEO, gender=Gender.MALE)
    with world.make_uow() as u:
        assert why_nobody(u.session, requests.get_request(u.session, world.district_id, phone)) == (
            UnmetReason.NOT_GENDER
        )
        assert why_nobody(u.session, requests.get_request(u.session, world.district_id, by_video)) == (
            UnmetReason.NOT_IN_MODE
        )
        row = u.session.exec(
            select(OutboxMessage).where(
                OutboxMessage.template == "request.unfilled", OutboxMessage.recipient_type == "school"
            )
        ).first()
        assert row is not None
        told = render(u.session, DE, row.template, json.loads(row.params), Role.SCHOOL)
    why = DE.render(
        "Nobody in the pool who speaks {language} and works {mode} is of the gender wished; "
        "without that wish, someone could take it.",
        {"language": "ar", "mode": "phone"},
    )
    assert why in told.text


# --- 7. reminders of the right interpreter ---------------------------------------------------------


def test_a_reminder_armed_for_interpreter_11_is_not_sent_for_interpreter_1(
    uow: MakeUow, engine: Engine
) -> None:
    world = build_world(uow)
    world.interpreter("Amira")
    request_id = submit(world)
    book(world, request_id, "Amira")
    assert world.interpreters["Amira"] == 1
    with world.make_uow() as u:
        first = u.session.exec(select(DueTask).where(DueTask.variant == "first:i1")).one()
        first.variant = "first:i11"  # armed when interpreter 11 held the booking
        u.session.add(first)
        u.commit()
    run_due(engine, lambda: SOON - timedelta(hours=24))
    with world.make_uow() as u:
        sent = u.session.exec(select(OutboxMessage).where(OutboxMessage.template == "booking.reminder")).all()
        outcome = u.session.exec(select(DueTask.outcome).where(DueTask.variant == "first:i11")).one()
    assert (sent, outcome) == ([], "dropped")


# --- 8. a held hand-back: one message for the coordinators ------------------------------------------


def test_a_hand_back_held_for_the_budget_tells_the_coordinators_once(uow: MakeUow, engine: Engine) -> None:
    world = build_world(uow, budget_cents=2500)
    world.interpreter("A")
    world.interpreter("B", km_north=50)  # dearer than what is left
    with world.make_uow() as u:
        set_rule(u.session, world.district_id, "offer_wave_size", "1", actor=ACTOR, now=WORLD_NOW)
        u.commit()
    request_id = submit(world)
    book(world, request_id, "A")
    with world.make_uow() as u:
        give_back(
            u.session,
            request_id=request_id,
            interpreter_id=world.interpreters["A"],
            reason="Ich bin krank.",
            actor=ACTOR,
            now=WORLD_NOW,
        )
        u.commit()
        told = u.session.exec(
            select(OutboxMessage.template).where(OutboxMessage.recipient_type == "coordinators")
        ).all()
        state = requests.get_request(u.session, world.district_id, request_id).state
    assert state == "awaiting_approval"
    assert [t for t in told if t != "budget.alert"] == ["request.handed_back"]
    # That one message carries the decision: Approve and Reject, which a hand-back re-offered has not.
    template = TEMPLATES[Notice.REQUEST_HANDED_BACK]
    held = RequestHandedBack(request_id=request_id, audit_id=None, outcome="awaiting_approval")
    with world.make_uow() as u:
        shown = template.reply(u.session, Translator("en"), held, Role.COORDINATOR)
        offered = template.reply(
            u.session, Translator("en"), replace(held, outcome="offered"), Role.COORDINATOR
        )
    assert [(c.key, c.label) for c in shown.choices] == [
        (f"rq:ap:{request_id}", "Approve"),
        (f"rq:rj:{request_id}", "Reject"),
    ]
    assert offered.choices == ()


# --- 9. run without a platform touches no database ---------------------------------------------------


def _run(cwd: Path, url: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PYTHONPATH": str(ROOT),
        "PATH": "/usr/bin:/bin",
        "BOT_LOCALE": "en",
        "DATABASE_URL": url,
    }
    return subprocess.run(
        [sys.executable, "-m", "bot", "run"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_run_without_a_platform_creates_and_migrates_nothing(engine: Engine, tmp_path: Path) -> None:
    missing = tmp_path / "nothing.sqlite3"
    refused = _run(tmp_path, f"sqlite:///{missing}")
    assert refused.returncode == 2, refused.stderr
    assert not missing.exists()
    # An empty database stays empty: no tables made by a migration before the refusal.
    SQLModel.metadata.drop_all(engine)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    url = engine.url.render_as_string(hide_password=False)
    again = _run(tmp_path, url)
    assert again.returncode == 2, again.stderr
    assert "no chat platform is configured" in again.stderr
    assert inspect(engine).get_table_names() == []


# --- 10 and 11. one reason rule, quoted short -------------------------------------------------------


def test_one_reason_rule_in_the_services(uow: MakeUow, engine: Engine) -> None:
    assert clean_reason("  zu \n\n  lang  ") == "zu\nlang"
    for bad in ("", " \n ab \n", "x" * 301):
        with pytest.raises(InvalidInput) as refused:
            clean_reason(bad)
        assert refused.value.message == "Please give the reason in 3 to 300 characters."
    world = build_world(uow, budget_cents=0)
    world.interpreter("A")
    held = submit(world)
    booked = submit(world, starts_at=SOON + timedelta(days=1))
    with world.make_uow() as u:
        for call in (
            lambda: requests.reject(
                u.session,
                district_id=world.district_id,
                request_id=held,
                reason="no",
                actor=ACTOR,
                now=WORLD_NOW,
            ),
            lambda: closeout.correct(
                u.session,
                district_id=world.district_id,
                request_id=booked,
                minutes=60,
                km=0,
                expenses_cents=0,
                reason="x" * 301,
                actor=ACTOR,
                now=WORLD_NOW,
            ),
        ):
            with pytest.raises(InvalidInput) as refused:
                call()
            assert refused.value.message == "Please give the reason in 3 to 300 characters."


def test_the_corrections_confirm_step_quotes_a_long_reason_at_100_characters(engine: Engine) -> None:
    talk, clock = _booked(engine)
    clock.now = START + timedelta(minutes=70)
    for typed in ("/report", "75", "18", "0"):
        _say(talk, "amira", typed)
    _say(talk, "amira", choice="send")
    _say(talk, "school", choice="co:no:1")
    _say(talk, "school", "Sie war nur 60 Minuten da.")
    _say(talk, "office", choice="co:fx:1")
    for typed in ("60", "18", "0"):
        _say(talk, "office", typed)
    reason = "Laut Schule 60 Minuten. " * 12  # 288 characters
    confirm = _reply(talk, "office", reason)
    quoted = DE.render("Reason: “{reason}”", {"reason": reason.strip()[:99] + "…"})
    assert quoted in confirm.text.splitlines()


def test_the_school_reads_before_sending_that_only_the_gender_wish_stands_in_the_way(engine: Engine) -> None:
    talk = _join(engine, Clock(NOW))
    with UnitOfWork(engine) as uow:  # Dari: only Leyla (a woman, every mode) is left
        ahmad = uow.session.exec(select(Interpreter).where(Interpreter.name == "Ahmad Noori")).one()
        ahmad.active = False
        uow.session.add(ahmad)
        uow.commit()
    for line in ("/request", "Dari", "telefonisch", "10.3. 10:00", "60", "1", "1", "3"):  # 3: a man
        _say(talk, "school", line)
    summary = _say(talk, "school", "1")
    why = DE.render(
        "Nobody in the pool who speaks {language} and works {mode} is of the gender wished; "
        "without that wish, someone could take it.",
        {"language": "prs", "mode": "phone"},
    )
    assert why == (
        "Niemand im Pool, der Dari spricht und telefonisch arbeitet, hat das gewünschte Geschlecht; "
        "ohne diesen Wunsch könnte jemand sie übernehmen."
    )
    assert why in summary
    assert (
        DE.render(
            "Nobody in the pool who speaks {language} works {mode}.", {"language": "prs", "mode": "phone"}
        )
        not in summary
    )
