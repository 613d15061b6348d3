"""End to end over Telegram: the real PTB Application long-polls a fake Bot API server over HTTP.

Nothing of PTB is mocked; the fake server stands in for Telegram's servers only. Every test runs
on SQLite and on PostgreSQL. Expected texts are taken from the catalogs, so a test checks that
the right message arrived in the user's language, and figures are checked exactly.
"""

import asyncio
import io
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from icalendar import Calendar, Event
from openpyxl import load_workbook
from pypdf import PdfReader
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.i18n import Translator
from bot.messages import Choice, Reply
from bot.process import BotProcess
from bot.rate_limit import RateLimiter
from bot.telegram.app import TelegramBot
from db.models import (
    ChatIdentity,
    Delivery,
    DialogState,
    Interpreter,
    Member,
    Offer,
    Request,
    School,
    UnmetDemand,
)
from db.uow import UnitOfWork
from services.closeout import confirm, report
from services.deliveries import expand
from services.demo import DEMO_NAME
from services.notices import RequestRejected
from services.offers import accept_offer
from services.outbox import notify
from services.requests import submit_request
from services.vocabulary import Recipient
from tests.builders import draft
from tests.chat_world import NOW, START, START_TEXT, Clock, DemoCodes, arabic_summary_lines, make_demo
from tests.fake_bot_api import FakeBotApi, JSONDict, SentMessage

ROOT = Path(__file__).resolve().parent.parent
DE, EN = Translator("de"), Translator("en")
SCHOOL, AMIRA, SAMIR, ROJIN, OFFICE, STRANGER = 1001, 2001, 2002, 2003, 3001, 9999


def _is_text(message: SentMessage) -> bool:
    return message.method == "sendMessage"  # not a calendar file that followed an earlier message


@dataclass
class Telegram:
    api: FakeBotApi
    bot: BotProcess
    codes: DemoCodes
    clock: Clock
    engine: Engine

    async def say(self, user: int, text: str, *, language: str = "de") -> SentMessage:
        """Send a text as `user` and return the bot's next message to them."""
        since = len(self.api.sent(user))
        self.api.push_text(user, text, language_code=language)
        return await self.api.wait_for_message(user, _is_text, since=since)

    async def press(self, user: int, message: SentMessage, key: str) -> None:
        callback = self.api.press(user, message.message_id, key)
        await self.api.wait_for_callback_answer(callback)

    async def choose(self, user: int, message: SentMessage, key: str) -> SentMessage:
        """Press a button and return the bot's next message."""
        since = len(self.api.sent(user))
        await self.press(user, message, key)
        return await self.api.wait_for_message(user, _is_text, since=since)

    async def join(self, user: int, code: str, *, language: str = "de") -> SentMessage:
        return await self.say(user, f"/start {code}", language=language)


@pytest.fixture
async def telegram(engine: Engine) -> AsyncIterator[Telegram]:
    clock = Clock(NOW)
    codes = make_demo(engine, NOW)
    api = FakeBotApi()
    await api.start()
    bot = _process(api, engine, clock, RateLimiter(per_chat_gap=0.02))
    await bot.start()
    try:
        yield Telegram(api, bot, codes, clock, engine)
    finally:
        await bot.stop()
        await api.stop()
    assert api.server_errors == []


def _process(api: FakeBotApi, engine: Engine, clock: Clock, limiter: RateLimiter | None = None) -> BotProcess:
    telegram = TelegramBot(token=api.token, engine=engine, base_url=api.base_url, clock=clock, poll_timeout=1)
    return BotProcess(engine, [telegram], limiter=limiter, clock=clock)


def _telegram(process: BotProcess) -> TelegramBot:
    transport = process.transports[0]
    assert isinstance(transport, TelegramBot)
    return transport


def _key_of(message: SentMessage, prefix: str) -> str:
    keys = [data for _, data in message.buttons if data.startswith(prefix)]
    assert len(keys) == 1, (prefix, message.buttons)
    return keys[0]


async def _request_arabic(tg: Telegram, language: str = "arabisch") -> SentMessage:
    """Walk the school through the request dialog (buttons and typed answers) to the summary."""
    asked = await tg.say(SCHOOL, "/request")
    assert ("ar", DE.language("ar")) in [(k, label) for label, k in asked.buttons]
    assert (
        asked.text.splitlines()[-len(asked.buttons) :][0] == f"1. {asked.buttons[0][0]}"
    )  # listed by number too
    mode = await tg.say(SCHOOL, language)
    await tg.choose(SCHOOL, mode, "in_person")
    duration = await tg.say(SCHOOL, START_TEXT)
    place = await tg.choose(SCHOOL, duration, "60")
    await tg.choose(SCHOOL, place, "school")
    gender = await tg.say(SCHOOL, "1")  # a typed number picks the first option: parent talk
    note = await tg.choose(SCHOOL, gender, "any")
    return await tg.choose(SCHOOL, note, "none")


async def test_school_books_in_person_arabic_and_the_money_comes_out_exact(telegram: Telegram) -> None:
    tg = telegram
    welcome = await tg.join(SCHOOL, tg.codes.school)
    assert welcome.text.startswith(
        DE.render("Welcome! You are registered as {role}.", {"role": DE.gettext("a school")})
    )
    assert "/request" in welcome.text  # with what the role can do
    for user, code in ((AMIRA, tg.codes.amira), (SAMIR, tg.codes.samir), (ROJIN, tg.codes.rojin)):
        await tg.join(user, code, language="en" if user == ROJIN else "de")

    summary = await _request_arabic(tg)
    assert [line for line in arabic_summary_lines(DE) if line not in summary.text] == []
    await tg.press(SCHOOL, summary, "send")

    offers = {
        user: await tg.api.wait_for_message(user, lambda m: bool(m.buttons)) for user in (AMIRA, SAMIR, ROJIN)
    }
    assert "Soltau" in offers[AMIRA].text
    assert "Di., 10.03.2026, 10:00 Uhr" in offers[AMIRA].text
    assert DE.money(2400) in offers[AMIRA].text  # Amira lives in Soltau: no travel
    assert "€36.88" in offers[ROJIN].text
    assert "(17 km away)" in offers[ROJIN].text
    assert [label for label, _ in offers[ROJIN].buttons] == ["Accept", "Decline"]

    # Samir and Rojin press Accept at the same moment.
    samir_key, rojin_key = _key_of(offers[SAMIR], "of:a:"), _key_of(offers[ROJIN], "of:a:")
    first = tg.api.press(SAMIR, offers[SAMIR].message_id, samir_key, language_code="de")
    second = tg.api.press(ROJIN, offers[ROJIN].message_id, rojin_key, language_code="en")
    await asyncio.gather(tg.api.wait_for_callback_answer(first), tg.api.wait_for_callback_answer(second))

    taken = {
        AMIRA: DE.gettext("Someone else has already taken this job. Thank you!"),
        SAMIR: DE.gettext("Someone else has already taken this job. Thank you!"),
        ROJIN: EN.gettext("Someone else has already taken this job. Thank you!"),
    }
    booked = await tg.api.wait_for_message(SCHOOL, lambda m: "Samir" in m.text or "Rojin" in m.text)
    winner, loser = (SAMIR, ROJIN) if "Samir" in booked.text else (ROJIN, SAMIR)
    await tg.api.wait_for_edit(loser, offers[loser].message_id, lambda m: taken[loser] in m.text)
    await tg.api.wait_for_edit(AMIRA, offers[AMIRA].message_id, lambda m: taken[AMIRA] in m.text)
    won = await tg.api.wait_for_edit(winner, offers[winner].message_id, lambda m: "/jobs" in m.text)
    assert won.buttons == []
    assert tg.api.message(loser, offers[loser].message_id).buttons == []
    assert "+49 5191 0000" in booked.text  # how to reach the interpreter
    event = _calendar_event(await tg.api.wait_for_message(SCHOOL, lambda m: m.method == "sendDocument"))
    assert (event["uid"], event["sequence"], event["status"]) == ("request-1@dolmetscherpool", 1, "CONFIRMED")
    assert (event.start, event.end) == (START, START + timedelta(minutes=60))
    assert str(event["summary"]) == "Dolmetscheinsatz: Arabisch (#1)"
    details = str(event["description"]).splitlines()  # what the school needs on the day, nothing else
    assert details[0] == "Einsatzart: vor Ort"
    assert details[1].startswith(("Dolmetscher/in: Samir", "Dolmetscher/in: Rojin"))
    assert details[2].startswith("Kontakt: +49 5191 0000")
    assert len(details) == 3
    assert "location" not in event
    with UnitOfWork(tg.engine) as uow:
        request = uow.session.exec(select(Request)).one()
        accepted = uow.session.exec(select(Offer).where(Offer.state == "accepted")).all()
    assert request.state == "booked"
    assert len(accepted) == 1

    # After the session: 75 minutes and 18 km, confirmed by the school.
    tg.clock.now = START + timedelta(minutes=80)
    language = "en" if winner == ROJIN else "de"
    t = EN if winner == ROJIN else DE
    asked = await tg.say(winner, "/report", language=language)
    assert t.render("{minutes} min as planned", {"minutes": 60}) in asked.text
    await tg.say(winner, "75", language=language)
    await tg.say(winner, "18", language=language)
    check = await tg.say(winner, "0", language=language)
    assert t.money(4140) in check.text
    sent = await tg.choose(winner, check, "send")
    assert t.money(4140) in sent.text
    reported = await tg.api.wait_for_message(
        SCHOOL, lambda m: any(k.startswith("co:ok:") for _, k in m.buttons)
    )
    assert DE.money(4140) in reported.text
    confirmed = await tg.choose(SCHOOL, reported, _key_of(reported, "co:ok:"))
    assert confirmed.text == DE.render(
        "Thank you, the report for #{request_id} is confirmed.", {"request_id": request.id}
    )
    await tg.api.wait_for_message(winner, lambda m: t.money(4140) in m.text)  # settled: what they are paid

    shown = _budget_json(tg.engine)
    assert shown == {**shown, "total_cents": 500000, "reserved_cents": 0, "charged_cents": 4140}
    assert shown["available_cents"] == 495860


def _calendar(message: SentMessage) -> Calendar:
    document = message.params["document"]
    assert document["filename"] == "dolmetscheinsatz-1.ics"
    return Calendar.from_ical(document["content"])


def _calendar_event(message: SentMessage) -> Event:
    events = _calendar(message).walk("VEVENT")
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, Event)
    return event


def _budget_json(engine: Engine) -> dict[str, int]:
    """`budget show --json` in a separate process on the same database, as a coordinator runs it."""
    env = {**os.environ, "DATABASE_URL": engine.url.render_as_string(hide_password=False), "BOT_LOCALE": "en"}
    done = subprocess.run(
        [sys.executable, "-m", "bot", "budget", "show", "--json", "--year", "2026"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    parsed = json.loads(done.stdout)
    assert isinstance(parsed, dict)
    return parsed


async def test_cancelling_two_hours_before_the_start_charges_the_in_person_minimum(
    telegram: Telegram,
) -> None:
    tg = telegram
    await tg.join(SCHOOL, tg.codes.school)
    await tg.join(AMIRA, tg.codes.amira)
    summary = await _request_arabic(tg)
    await tg.press(SCHOOL, summary, "send")
    offer = await tg.api.wait_for_message(AMIRA, lambda m: bool(m.buttons))
    await tg.press(AMIRA, offer, _key_of(offer, "of:a:"))
    await tg.api.wait_for_message(SCHOOL, lambda m: "Amira" in m.text)

    tg.clock.now = START - timedelta(hours=2)
    listed = await tg.say(SCHOOL, "/bookings")
    asked = await tg.choose(SCHOOL, listed, _key_of(listed, "rq:cx:"))
    assert DE.money(2400) in asked.text  # 60 minutes at 24.00, no travel
    since = len(tg.api.sent(AMIRA))
    await tg.press(SCHOOL, asked, "yes")
    cancelled = await tg.api.wait_for_message(SCHOOL, lambda m: DE.money(2400) in m.text)
    assert "#1" in cancelled.text
    await tg.api.wait_for_message(AMIRA, lambda m: DE.money(2400) in m.text, since=since)
    for user in (SCHOOL, AMIRA):  # both calendars drop the event: same UID, higher SEQUENCE
        await tg.api.wait_for_message(
            user, lambda m: m.method == "sendDocument" and "CANCEL" in str(m.params)
        )
        files = [m for m in tg.api.sent(user) if m.method == "sendDocument"]
        assert [_calendar(m)["method"] for m in files] == ["PUBLISH", "CANCEL"]
        dropped = _calendar_event(files[-1])
        assert (dropped["uid"], dropped["sequence"], dropped["status"]) == (
            "request-1@dolmetscherpool",
            2,
            "CANCELLED",
        )
    assert _budget_json(tg.engine)["charged_cents"] == 2400
    assert _budget_json(tg.engine)["reserved_cents"] == 0


async def test_a_job_handed_back_leaves_the_interpreters_calendar_and_updates_the_schools(
    telegram: Telegram,
) -> None:
    tg = telegram
    for user, code in ((SCHOOL, tg.codes.school), (AMIRA, tg.codes.amira)):
        await tg.join(user, code)
    summary = await _request_arabic(tg)
    await tg.press(SCHOOL, summary, "send")
    offer = await tg.api.wait_for_message(AMIRA, lambda m: bool(m.buttons))
    await tg.press(AMIRA, offer, _key_of(offer, "of:a:"))
    await tg.api.wait_for_message(SCHOOL, lambda m: "Amira" in m.text)
    await tg.api.wait_for_message(AMIRA, lambda m: m.method == "sendDocument")

    jobs = await tg.say(AMIRA, "/jobs")
    asked = await tg.choose(AMIRA, jobs, _key_of(jobs, "bk:gb:"))
    await tg.choose(AMIRA, asked, "yes")
    handed = await tg.say(AMIRA, "Mein Auto ist kaputt.")  # the reason
    assert handed.text == DE.render(
        "You have handed back #{request_id}. The school is told.", {"request_id": 1}
    )
    removed = await tg.api.wait_for_message(AMIRA, lambda m: m.method == "sendDocument")
    assert _calendar(removed)["method"] == "CANCEL"
    event = _calendar_event(removed)
    assert (event["uid"], event["sequence"], event["status"]) == ("request-1@dolmetscherpool", 2, "CANCELLED")

    # Wave 1 has had its turn; someone of the next wave takes the job (outside this chat).
    with UnitOfWork(tg.engine) as uow:
        waiting = uow.session.exec(select(Offer).where(Offer.state == "open")).first()
        assert waiting is not None
        accept_offer(
            uow.session, offer_id=waiting.id or 0, interpreter_id=waiting.interpreter_id, actor="t", now=NOW
        )
        uow.commit()
    tg.bot.deliverer.wake.set()
    await tg.api.wait_for_message(
        SCHOOL, lambda m: m.method == "sendDocument" and _calendar_event(m)["sequence"] == 3
    )
    files = [m for m in tg.api.sent(SCHOOL) if m.method == "sendDocument"]
    assert [(_calendar(m)["method"], _calendar_event(m)["sequence"]) for m in files] == [
        ("PUBLISH", 1),
        ("PUBLISH", 3),
    ]
    assert len({str(_calendar_event(m)["uid"]) for m in files}) == 1  # the same event, updated


async def test_a_language_nobody_speaks_gets_the_referral(telegram: Telegram) -> None:
    tg = telegram
    await tg.join(SCHOOL, tg.codes.school)
    summary = await _request_arabic(tg, language="Georgisch")
    assert (
        DE.render(
            "Nobody in the pool speaks {language}. "
            "If you send it, you get the contact of an external service.",
            {"language": "ka"},
        )
        in summary.text
    )
    await tg.press(SCHOOL, summary, "send")
    referral = await tg.api.wait_for_message(SCHOOL, lambda m: "(EMZ)" in m.text)
    assert DE.language("ka") in referral.text
    with UnitOfWork(tg.engine) as uow:
        unmet = uow.session.exec(select(UnmetDemand)).all()
        request = uow.session.exec(select(Request)).one()
    assert [(u.language, u.reason) for u in unmet] == [("ka", "not_covered")]
    assert request.state == "referred"


async def test_a_stranger_gets_onboarding_only(telegram: Telegram) -> None:
    tg = telegram
    onboarding = (
        DE.gettext(
            "Welcome to Dolmetscherpool. This bot is for the schools, interpreters and "
            "coordination office of a county's interpreter pool. To take part you need an "
            "invite code from your coordination office; then send: /start CODE"
        )
        + "\n\n"
        + DE.render(
            "Privacy: {district} is responsible for this bot. It stores your chat account only once you join "
            "with a code, and then only what the pool needs. /privacy shows the full notice.",
            {"district": DEMO_NAME},
        )
    )
    for text in ("/request", "/budget", "hallo", "/start"):
        assert (await tg.say(STRANGER, text)).text == onboarding
    wrong = await tg.say(STRANGER, "/start 0000")
    assert wrong.text == DE.gettext(
        "This invite code is not valid. Please check it or ask your coordinator for a new one."
    )
    await tg.join(SCHOOL, tg.codes.school)
    used = await tg.say(STRANGER, f"/start {tg.codes.school}", language="en")
    assert used.text == EN.gettext(
        "This invite code has already been used. Please ask your coordinator for a new one."
    )
    with UnitOfWork(tg.engine) as uow:
        assert len(uow.session.exec(select(Member)).all()) == 1
        assert uow.session.exec(select(DialogState)).all() == []


async def test_bad_input_gets_a_sentence_and_the_step_is_asked_again(telegram: Telegram) -> None:
    tg = telegram
    await tg.join(SCHOOL, tg.codes.school)
    await tg.say(SCHOOL, "/request")
    await tg.say(SCHOOL, "ar")
    asked = await tg.say(SCHOOL, "1")  # in person
    before = _dialog(tg.engine)
    error = await tg.say(SCHOOL, "31.2. 10:00")
    assert error.text == DE.render(
        "“{value}” is not a date with a time; write e.g. 12.3. 14:30 or tomorrow 10:00.",
        {"value": "31.2. 10:00"},
    )
    again = await tg.api.wait_for_message(SCHOOL)
    assert again.text == asked.text
    assert _dialog(tg.engine) == before
    too_soon = await tg.say(SCHOOL, "2.3. 12:00")  # three hours ahead; in person needs 24 hours
    assert too_soon.text.startswith(
        DE.render(
            "Requests {mode} need more notice; the earliest possible start is {earliest_at}.",
            {"mode": "in_person", "earliest_at": NOW + timedelta(hours=24)},
        )[:20]
    )
    assert _dialog(tg.engine) == before


def _dialog(engine: Engine) -> tuple[str, str, str]:
    with UnitOfWork(engine) as uow:
        row = uow.session.exec(select(DialogState)).one()
        return row.flow, row.step, row.draft


async def test_an_update_seen_twice_has_no_second_effect(telegram: Telegram) -> None:
    tg = telegram
    await tg.join(SCHOOL, tg.codes.school)
    update_id = tg.api.push_text(SCHOOL, "/request")
    first = await tg.api.wait_for_message(SCHOOL)
    tg.api.push_text(SCHOOL, "/request", update_id=update_id)  # Telegram sends it again
    tg.api.push_text(SCHOOL, "/help")
    after = await tg.api.wait_for_message(SCHOOL)
    assert after.text.startswith(DE.render("What you can do as {role}:", {"role": DE.gettext("a school")}))
    assert [m.text for m in tg.api.sent(SCHOOL)].count(first.text) == 1


async def test_a_restart_continues_the_dialog(telegram: Telegram) -> None:
    tg = telegram
    await tg.join(SCHOOL, tg.codes.school)
    await tg.say(SCHOOL, "/request")
    await tg.say(SCHOOL, "arabisch")
    await tg.bot.stop()
    with UnitOfWork(tg.engine) as uow:  # a notification written while the bot is down
        school = uow.session.exec(select(Member).where(Member.role == "school")).one()
        notify(
            uow.session,
            district_id=school.district_id,
            recipient=Recipient.SCHOOL,
            recipient_id=school.school_id or 0,
            notice=RequestRejected(request_id=7),
            now=NOW,
        )
        uow.commit()
    tg.bot = _process(tg.api, tg.engine, tg.clock)
    await tg.bot.start()
    await tg.api.wait_for_message(SCHOOL, lambda m: "#7" in m.text or "nicht freigeben" in m.text)
    when = await tg.say(SCHOOL, "2")  # by phone
    assert when.text == DE.render(
        "When does it start? Write the date and time, e.g. {example} or {weekday} 10:00.",
        {"example": "5.3. 10:00", "weekday": "Donnerstag"},
    )


async def test_commands_menu_is_registered_per_language(telegram: Telegram) -> None:
    tg = telegram
    german = {c["command"]: c["description"] for c in tg.api.commands("de")}
    english = {c["command"]: c["description"] for c in tg.api.commands("en")}
    assert german["request"] == DE.gettext("ask for an interpreter") != english["request"]
    assert english["request"] == "ask for an interpreter"
    assert (
        set(german) == set(english) >= {"request", "bookings", "jobs", "report", "away", "budget", "requests"}
    )
    assert {c["command"] for c in tg.api.commands(None)} == set(german)


async def test_a_429_is_retried_after_retry_after_and_others_are_not_held_up(telegram: Telegram) -> None:
    tg = telegram
    for user, code in ((SCHOOL, tg.codes.school), (AMIRA, tg.codes.amira), (SAMIR, tg.codes.samir)):
        await tg.join(user, code)
    summary = await _request_arabic(tg)
    # The first notification, the school's own "received" (sent first, with the event), hits flood control.
    tg.api.fail_next("sendMessage", retry_after=1)
    await tg.press(SCHOOL, summary, "send")
    await tg.api.wait_for_message(AMIRA, lambda m: bool(m.buttons))
    await tg.api.wait_for_message(SAMIR, lambda m: bool(m.buttons))
    received = await tg.api.wait_for_message(SCHOOL, lambda m: "#1" in m.text, timeout=5)
    assert DE.gettext("Request received. We are looking for an interpreter.") in received.text
    attempts = await _attempts_once_all_sent(tg.engine)
    assert attempts == {
        "of:a:1@2001": 1,
        "of:a:2@2002": 1,
        "#1@1001": 2,
    }  # only the school's needed a second try


async def _attempts_once_all_sent(engine: Engine) -> dict[str, int]:
    """Attempts per delivery, once the bot has recorded every one as sent."""
    for _ in range(100):
        with UnitOfWork(engine) as uow:
            notifications = select(Delivery, ChatIdentity).join(ChatIdentity)
            rows = uow.session.exec(notifications.where(col(Delivery.outbox_id).is_not(None))).all()
        if rows and all(d.sent_at is not None for d, _ in rows):
            return {f"{_label(d)}@{i.user_id}": d.attempts for d, i in rows}
        await asyncio.sleep(0.05)
    raise AssertionError("deliveries not all sent")


def _label(delivery: Delivery) -> str:
    return f"of:a:{delivery.ref.split(':')[1]}" if delivery.ref else "#1"


async def test_an_unexpected_failure_is_logged_without_text_and_answered_neutrally(
    telegram: Telegram, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    tg = telegram
    await tg.join(SCHOOL, tg.codes.school)

    def broken(event: object) -> list[object]:
        raise RuntimeError("database on fire")

    monkeypatch.setattr(_telegram(tg.bot).conversation, "handle_stored", broken)
    reply = await tg.say(SCHOOL, "geheime Notiz über Familie Müller")
    assert reply.text == DE.gettext("Sorry, something went wrong on our side. Please try again in a moment.")
    assert "database on fire" in caplog.text  # the traceback is logged
    assert "Müller" not in caplog.text
    assert tg.api.token not in caplog.text


async def test_an_answer_that_fails_on_the_way_is_sent_again_and_brings_no_apology(
    telegram: Telegram, caplog: pytest.LogCaptureFixture
) -> None:
    tg = telegram
    await tg.join(SCHOOL, tg.codes.school)
    asked = await tg.say(SCHOOL, "/language")
    since = len(tg.api.sent(SCHOOL))
    tg.api.fail_next("sendMessage", status=500, description="Internal Server Error")
    await tg.press(SCHOOL, asked, "lang-en")  # saved, with its answer; the first send fails
    await asyncio.sleep(0.5)
    with UnitOfWork(tg.engine) as uow:
        assert uow.session.exec(select(Member)).one().locale == "en"
        answer = uow.session.exec(select(Delivery).where(col(Delivery.outbox_id).is_(None))).all()[-1]
    assert (answer.attempts, answer.last_error, answer.sent_at) == (1, "NetworkError", None)
    assert tg.api.sent(SCHOOL)[since:] == []
    tg.clock.now = answer.due_at + timedelta(seconds=0.5)  # past the first retry's pause (2 s)
    tg.bot.deliverer.wake.set()
    confirmed = await tg.api.wait_for_message(SCHOOL, _is_text, since=since)
    assert confirmed.text == EN.gettext("From now on I write in English.")
    await asyncio.sleep(0.3)
    texts = [m.text for m in tg.api.sent(SCHOOL)[since:]]
    assert texts == [confirmed.text]  # once, and nobody is asked to do it again
    assert f"delivery {answer.id} failed: NetworkError" in caplog.text


async def test_long_texts_are_split_and_the_buttons_go_with_the_last_part(telegram: Telegram) -> None:
    tg = telegram
    reply = Reply("a" * 4000 + "\n" + "b" * 3000, (Choice("x:1", "X"),))
    await _telegram(tg.bot).sender.send(str(SCHOOL), reply)
    sent = tg.api.sent(SCHOOL)
    assert [m.text for m in sent] == ["a" * 4000, "b" * 3000]
    assert [m.buttons for m in sent] == [[], [("X", "x:1")]]


async def test_a_keyboard_too_big_for_telegram_is_left_off_and_the_text_still_arrives(
    telegram: Telegram,
) -> None:
    tg = telegram
    many = tuple(Choice(f"x:{n}", f"Option {n}") for n in range(101))
    await _telegram(tg.bot).sender.send(str(SCHOOL), Reply("Pick one", many))
    wide = tuple(Choice(f"x:{n}", "W" * 120) for n in range(90))  # 90 buttons, but over 10 KB
    await _telegram(tg.bot).sender.send(str(SCHOOL), Reply("Or one of these", wide))
    fits = tuple(Choice(f"x:{n}", f"Option {n}") for n in range(100))
    await _telegram(tg.bot).sender.send(str(SCHOOL), Reply("Or these", fits))
    sent = tg.api.sent(SCHOOL)
    assert [(m.text, len(m.buttons)) for m in sent] == [
        ("Pick one", 0),
        ("Or one of these", 0),
        ("Or these", 100),
    ]


def _settle_demo_session(engine: Engine) -> None:
    """Samir Khalil interprets 75 min on 10 March for the demo school, 18 km: 41.40 €, confirmed."""
    with UnitOfWork(engine) as uow:
        s = uow.session
        school = s.exec(select(School).order_by(col(School.id))).first()
        samir = s.exec(select(Interpreter).where(Interpreter.name == "Samir Khalil")).one()
        assert school is not None
        assert school.id is not None
        assert samir.id is not None
        wanted = draft(school.id, starts_at=START)  # Arabic, in person, 60 min
        request = submit_request(s, district_id=school.district_id, draft=wanted, actor="test", now=NOW)
        assert request.id is not None
        offer = s.exec(
            select(Offer).where(Offer.request_id == request.id, Offer.interpreter_id == samir.id)
        ).one()
        accept_offer(s, offer_id=offer.id or 0, interpreter_id=samir.id, actor="test", now=NOW)
        after = START + timedelta(minutes=80)
        report(
            s, request_id=request.id, interpreter_id=samir.id, minutes=75, km=18, expenses_cents=0,
            actor="test", now=after,
        )  # fmt: skip
        confirm(s, district_id=school.district_id, request_id=request.id, actor="test", now=after)
        # Offers to the demo's interpreters who never linked a chat tell the coordinators (an operator
        # alert); expanded now, before the office links, they stay out of the answers counted below.
        expand(s, now=NOW)
        expand(s, now=NOW)
        uow.commit()


async def _file_after(tg: Telegram, user: int, command: str, method: str) -> tuple[SentMessage, JSONDict]:
    """Send a command; return the bot's text answer and the file that follows it."""
    since = len(tg.api.sent(user))
    answer = await tg.say(user, command)
    sent = await tg.api.wait_for_message(user, lambda m: m.method == method, since=since)
    field = "photo" if method == "sendPhoto" else "document"
    file = sent.params[field]
    assert isinstance(file, dict)
    return answer, file


async def test_coordinators_get_the_budget_chart_the_billing_and_the_evaluation_as_files(
    telegram: Telegram,
) -> None:
    tg = telegram
    _settle_demo_session(tg.engine)
    await tg.join(OFFICE, tg.codes.coordinator)
    await tg.join(SCHOOL, tg.codes.school)
    tg.clock.now = datetime(2026, 4, 2, 8, 0, tzinfo=UTC)  # day 92 of the year

    budget, chart = await _file_after(tg, OFFICE, "/budget", "sendPhoto")
    assert DE.money(495860) in budget.text
    assert budget.text.endswith(  # 41.40 € in 92 days: 365/92 of it by the year's end
        DE.render(
            "At the current pace the year ends at {year_end_cents}; the money lasts.",
            {"year_end_cents": 16425},
        )
    )
    assert (chart["filename"], chart["content"][:8]) == ("budget-2026.png", b"\x89PNG\r\n\x1a\n")

    billing, sheet_file = await _file_after(tg, OFFICE, "/billing", "sendDocument")  # last month: March
    assert billing.text.splitlines() == [
        DE.render("Billing {billing_month}: {amount_cents} in all.", {"billing_month": date(2026, 3, 1),
                                                                        "amount_cents": 4140}),
        DE.render("{name}: {amount_cents} (sessions: {sessions})", {"name": "Samir Khalil", "sessions": 1,
                                                                     "amount_cents": 4140}),
    ]  # fmt: skip
    assert sheet_file["filename"] == "billing-2026-03.xlsx"
    sheet = load_workbook(io.BytesIO(sheet_file["content"])).active
    assert sheet is not None
    rows = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert rows[1][0:2] == ["Samir Khalil", datetime(2026, 3, 10, 10, 0)]
    assert rows[1][5:10] == [75, 90, 18, 0, 41.4]
    assert rows[-1][0] == "Summe"
    assert rows[-1][9] == 41.4

    evaluation, pdf = await _file_after(tg, OFFICE, "/evaluation 1.3.2026 31.3.2026", "sendDocument")
    assert evaluation.text.splitlines()[:2] == [
        "Auswertung 01.03.2026 – 31.03.2026",
        "Anfragen: 1, besetzt: 1 (Besetzungsquote 100\xa0%)",
    ]
    assert pdf["filename"] == "evaluation-2026-03-01-2026-03-31.pdf"
    pages = PdfReader(io.BytesIO(pdf["content"])).pages
    assert len(pages) == 4
    assert "Kosten 41,40\xa0€" in pages[0].extract_text()

    wrong = await tg.say(OFFICE, "/evaluation 31.3.2026 1.3.2026")
    assert wrong.text == DE.gettext("The period ends before it begins.")
    month = await tg.say(OFFICE, "/billing 13/2026")
    assert month.text == DE.render(
        "“{value}” is not a month; write e.g. 2026-05 or November 2026.", {"value": "13/2026"}
    )

    since = len(tg.api.sent(SCHOOL))
    refused = await tg.say(SCHOOL, "/evaluation")
    assert refused.text == "Den Befehl /evaluation kenne ich nicht. /help zeigt, was Sie tun können."
    assert [m.method for m in tg.api.sent(SCHOOL)[since:]] == ["sendMessage"]
