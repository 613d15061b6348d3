"""The conversation layer on its own: typed answers, choices, commands, language, and the outbox texts."""

import asyncio
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.conversation.answers import parse_day, parse_minutes, parse_when, resolve
from bot.conversation.router import Conversation, split_command
from bot.delivery import Deliverer, RetryLater, Undeliverable
from bot.i18n import Translator
from bot.messages import Choice, Incoming, Reply, split_text
from bot.rate_limit import RateLimiter
from bot.scheduling import run_due
from db.models import Budget, Delivery, DialogState, Member, Offer, OutboxMessage
from db.uow import UnitOfWork
from services import deliveries
from services.errors import InvalidInput
from services.notices import RequestCancelled
from services.outbox import notify
from services.vocabulary import Recipient
from tests.chat_world import NOW, START, Clock, make_demo

ROOT = Path(__file__).resolve().parent.parent
DE, EN = Translator("de"), Translator("en")


@pytest.mark.parametrize(
    ("typed", "berlin"),
    [
        ("12.3. 14:30", "2026-03-12 14:30"),
        ("12.03.2026 14:30", "2026-03-12 14:30"),
        ("Do 12.3. 9 Uhr", "2026-03-12 09:00"),
        ("12.3.26, 9.15", "2026-03-12 09:15"),
        ("2026-03-12 14:30", "2026-03-12 14:30"),
        ("1.3. 10:00", "2027-03-01 10:00"),  # already past this year: next year's
        ("29.3. 10:00", "2026-03-29 10:00"),  # the day summer time starts
    ],
)
def test_dates_are_read_as_people_type_them(typed: str, berlin: str) -> None:
    moment = parse_when(typed, NOW)
    assert moment.tzinfo is UTC
    assert datetime.fromisoformat(berlin).strftime("%d.%m.%Y, %H:%M Uhr") in Translator("de").when(moment)


@pytest.mark.parametrize("typed", ["31.2. 10:00", "12.3.", "morgen", "25:00", "12.13. 10:00", ""])
def test_impossible_dates_are_refused(typed: str) -> None:
    with pytest.raises(InvalidInput):
        parse_when(typed, NOW)


@pytest.mark.parametrize(
    ("typed", "minutes"),
    [
        ("75", 75),
        ("90 min", 90),
        ("1:15", 75),
        ("1,5 h", 90),
        ("1.25h", 75),
        ("2 Std.", 120),
        ("2 Stunden", 120),
    ],
)
def test_durations_are_read_as_people_type_them(typed: str, minutes: int) -> None:
    assert parse_minutes(typed) == minutes


@given(st.integers(min_value=0, max_value=23), st.integers(min_value=0, max_value=59))
def test_any_clock_time_reads_back_as_minutes(hours: int, minutes: int) -> None:
    assert parse_minutes(f"{hours}:{minutes:02d}") == hours * 60 + minutes


def test_a_day_without_year_is_the_next_such_day() -> None:
    assert parse_day("2.3.", NOW).isoformat() == "2026-03-02"
    assert parse_day("1.3.", NOW).isoformat() == "2027-03-01"


def test_a_choice_is_found_by_button_number_or_label() -> None:
    offered = {"in_person": "vor Ort", "phone": "telefonisch"}
    assert resolve("", "phone", offered).key == "phone"
    assert resolve("2", None, offered).key == "phone"
    assert resolve(" Telefonisch ", None, offered).key == "phone"
    assert resolve("in_person", None, offered).key == "in_person"
    assert resolve("3", None, offered).key is None
    assert resolve("", "stale", offered).key is None  # a button from an earlier question


def test_commands_with_slash_bang_bot_name_and_german_words() -> None:
    assert split_command("/start ABC") == ("start", "ABC")
    assert split_command("!request") == ("request", "")
    assert split_command("/request@dolmetscherpool_bot") == ("request", "")
    assert split_command("/anfrage") == ("request", "")
    assert split_command("12.3. 10:00") is None
    assert split_command("/ 12") is None


def test_choice_keys_never_exceed_telegram_callback_limit() -> None:
    Choice("x" * 64, "ok")
    with pytest.raises(ValueError, match="64"):
        Choice("ä" * 33, "too long in bytes")


def test_long_texts_are_split_at_line_breaks() -> None:
    text = "\n".join(f"line {n:04d}" + "x" * 90 for n in range(100))
    parts = split_text(text, 4096)
    assert [len(p) <= 4096 for p in parts] == [True, True, True]
    assert "\n".join(parts) == text
    assert split_text("y" * 5000, 4096) == ["y" * 4096, "y" * 904]


def test_the_rate_limiter_paces_each_chat_and_never_lets_more_than_the_rate_into_a_second() -> None:
    limiter = RateLimiter(per_second=25, per_chat_gap=1.0)
    assert limiter.wait("a", 100.0) == 0
    limiter.sent("a", 100.0)
    assert limiter.wait("a", 100.25) == pytest.approx(0.75)  # one per second in a chat
    assert limiter.wait("b", 100.25) == 0
    limiter.pause_chat("b", 101.0, 5.0)  # Telegram said: retry after 5 s
    assert limiter.wait("b", 101.0) == pytest.approx(5.0)
    assert limiter.wait("b", 106.0) == 0

    overall = RateLimiter(per_second=25, per_chat_gap=1.0, burst=5)
    times = [50.0]
    overall.sent("c0", 50.0)
    for n in range(1, 200):  # as fast as the limiter allows, each to another chat
        now = times[-1] + overall.wait(f"c{n}", times[-1])
        overall.sent(f"c{n}", now)
        times.append(now)
    assert times[:5] == [50.0] * 5  # after a quiet moment a few go at once
    assert times[5] == pytest.approx(50.0 + 1.01 / 25)  # then one slot apart
    busiest = max(sum(1 for t in times if start <= t < start + 1) for start in times)
    assert busiest == 25  # never more than 25 in any second
    after_burst = times[5:]
    assert (len(after_burst) - 1) / (after_burst[-1] - after_burst[0]) == pytest.approx(25 / 1.01)  # the pace


def test_a_429_slows_every_chat_and_the_pace_recovers() -> None:
    limiter = RateLimiter(per_second=30, per_chat_gap=1.0, burst=5)
    limiter.sent("a", 10.0)
    limiter.pause_chat("a", 10.0, 2.0)
    assert limiter.share(10.0) == 0.5  # half the pace for everyone
    assert limiter.wait("b", 10.0) == pytest.approx(1.01 / 15)  # and no burst: a full slow slot first
    assert limiter.share(12.0) == pytest.approx(0.7)  # a tenth of the pace back each second
    assert limiter.share(20.0) == 1.0
    limiter.pause_chat("a", 20.0, 1.0)
    limiter.pause_chat("a", 20.0, 1.0)
    assert limiter.share(20.0) == 0.25  # every 429 halves again
    for _ in range(10):
        limiter.pause_chat("a", 20.0, 1.0)
    assert limiter.share(20.0) == 0.1  # but never below a tenth


class Phone:
    """A fake chat platform: records what each chat got; chats listed in `broken` fail."""

    max_text = 4096

    def __init__(self, *, broken: dict[str, Exception] | None = None) -> None:
        self.inbox: dict[str, list[str]] = {}
        self.broken = broken or {}

    async def send(self, chat_id: str, reply: Reply, *, key: str | None = None) -> str:
        if chat_id in self.broken:
            raise self.broken[chat_id]
        self.inbox.setdefault(chat_id, []).append(reply.text)
        return str(len(self.inbox[chat_id]))

    async def edit(self, chat_id: str, message_id: str, reply: Reply, *, key: str | None = None) -> None:
        self.inbox[chat_id][int(message_id) - 1] = reply.text


def _join(engine: Engine, clock: Clock) -> Conversation:
    codes = make_demo(engine, NOW)
    talk = Conversation(engine, clock)
    for user, code in (
        ("school", codes.school),
        ("amira", codes.amira),
        ("samir", codes.samir),
        ("rojin", codes.rojin),
        ("office", codes.coordinator),
    ):
        talk.handle(Incoming("test", user, user, text=f"/start {code}"))
    return talk


def _say(talk: Conversation, user: str, text: str = "", choice: str | None = None) -> str:
    return "\n".join(r.text for r in talk.handle(Incoming("test", user, user, text=text, choice=choice)))


def _request(talk: Conversation) -> None:
    for line in ("/request", "ar", "vor Ort", "10.3. 10:00", "60", "1", "1", "1", "1", "1"):
        _say(talk, "school", line)


def test_one_broken_chat_does_not_hold_up_the_others(engine: Engine) -> None:
    clock = Clock(NOW)
    talk = _join(engine, clock)
    _request(talk)
    phone = Phone(broken={"amira": Undeliverable("blocked"), "samir": RuntimeError("network down")})
    deliverer = Deliverer(engine, {"test": phone}, limiter=RateLimiter(per_chat_gap=0), clock=clock)
    assert asyncio.run(deliverer.run_once()) == 2  # Rojin's offer and the school's message
    assert sorted(phone.inbox) == ["rojin", "school"]
    with UnitOfWork(engine) as uow:
        rows = {d.identity_id: d for d in uow.session.exec(select(Delivery)).all()}
    states = sorted(
        (d.sent_at is not None, d.failed_at is not None, d.attempts, d.last_error) for d in rows.values()
    )
    assert states == [
        (False, False, 1, "RuntimeError"),  # retried later
        (False, True, 1, "Undeliverable"),  # given up: the bot was blocked
        (True, False, 1, None),
        (True, False, 1, None),
    ]
    # The network is back; once the pause has passed Samir gets his offer, nobody gets anything twice.
    phone.broken = {}
    waiting = [d.due_at for d in rows.values() if d.sent_at is None and d.failed_at is None]
    clock.now = max(waiting) + timedelta(seconds=1)  # the retry's due time, however slow the run so far
    assert asyncio.run(deliverer.run_once()) == 2  # Samir's offer, and the office hears of Amira
    assert [len(phone.inbox[c]) for c in ("rojin", "samir", "school")] == [1, 1, 1]
    cause = DE.gettext("the bot was blocked or the chat no longer exists.")
    assert phone.inbox["office"] == [
        DE.render(
            "A notification did not reach {name}: {cause} Please get in touch with them another way.",
            {"name": "Amira Haddad", "cause": cause},
        )
    ]


@pytest.mark.parametrize("failure", ["429", "network"])
def test_a_failed_send_keeps_the_chat_in_order(engine: Engine, failure: str) -> None:
    clock = Clock(NOW)
    _join(engine, clock)
    with UnitOfWork(engine) as uow:
        member = uow.session.exec(select(Member).where(Member.role == "school")).one()
        for n in (1, 2, 3):
            notify(
                uow.session,
                district_id=member.district_id,
                recipient=Recipient.SCHOOL,
                recipient_id=member.school_id or 0,
                notice=RequestCancelled(request_id=n, fee_cents=n, calendar_sequence=None),
                now=NOW,
            )
        uow.commit()
    error = RetryLater(2) if failure == "429" else RuntimeError("network down")  # a 2 s pause either way
    phone = Phone(broken={"school": error})
    deliverer = Deliverer(engine, {"test": phone}, limiter=RateLimiter(per_chat_gap=0), clock=clock)
    assert asyncio.run(deliverer.run_once()) == 0
    with UnitOfWork(engine) as uow:
        retry_at = min(d.due_at for d in uow.session.exec(select(Delivery)).all() if d.attempts)
    phone.broken = {}
    clock.now = retry_at - timedelta(seconds=1)
    assert asyncio.run(deliverer.run_once()) == 0  # all three wait for the first one's retry
    clock.now = retry_at + timedelta(seconds=0.5)
    assert asyncio.run(deliverer.run_once()) == 3
    assert [t.count(DE.money(n)) for n, t in zip((1, 2, 3), phone.inbox["school"], strict=True)] == [1, 1, 1]


def test_a_notification_is_retried_for_a_day_however_often_it_fails_then_the_office_is_told(
    engine: Engine,
) -> None:
    clock = Clock(NOW)
    _join(engine, clock)
    with UnitOfWork(engine) as uow:
        member = uow.session.exec(select(Member).where(Member.role == "school")).one()
        notice = RequestCancelled(request_id=1, fee_cents=0, calendar_sequence=None)
        notify(
            uow.session, district_id=member.district_id, recipient=Recipient.SCHOOL,
            recipient_id=member.school_id or 0, notice=notice, now=NOW,
        )  # fmt: skip
        deliveries.expand(uow.session, now=NOW)
        uow.commit()
        delivery = uow.session.exec(select(Delivery).where(col(Delivery.outbox_id).is_not(None))).one()
    assert delivery.give_up_at == NOW + timedelta(hours=24)
    now, tries = NOW, 0
    while True:
        with UnitOfWork(engine) as uow:
            retrying = deliveries.mark_retry(uow.session, delivery.id or 0, error="NetworkError", now=now)
            uow.commit()
            retried = uow.session.get(Delivery, delivery.id)
            assert retried is not None
            due_at = retried.due_at
        tries += 1
        if not retrying:
            break
        assert due_at - now <= timedelta(minutes=10)  # the pause doubles, but never beyond 10 minutes
        now = due_at
    assert NOW + timedelta(hours=23, minutes=50) <= now <= NOW + timedelta(hours=24)
    assert tries > 100  # not given up after a handful of failures: only when it is too late
    with UnitOfWork(engine) as uow:
        told = uow.session.exec(
            select(OutboxMessage).where(OutboxMessage.template == "delivery.failed")
        ).one()
    assert json.loads(told.params) == {"cause": "kept_failing", "member_id": member.id}


def test_typing_a_label_a_number_or_cancel(engine: Engine) -> None:
    talk = _join(engine, Clock(NOW))
    _say(talk, "school", "/request")
    _say(talk, "school", "Arabisch")
    assert _say(talk, "school", "telefonisch").startswith(
        DE.render(
            "When does it start? Write the date and time, e.g. {example} or {weekday} 10:00.",
            {"example": "5.3. 10:00", "weekday": "Donnerstag"},
        )
    )
    assert _say(talk, "school", "abbrechen") == DE.gettext("Cancelled. Nothing was saved.")
    with UnitOfWork(engine) as uow:
        assert uow.session.exec(select(DialogState)).all() == []
    assert _say(talk, "school", "/cancel") == DE.gettext("There was nothing to cancel.")


def test_language_switch_applies_to_replies_and_money(engine: Engine) -> None:
    talk = _join(engine, Clock(NOW))
    assert _say(talk, "school", "/language").startswith(DE.gettext("Which language should I use?"))
    assert _say(talk, "school", "2") == "From now on I write in English."
    _say(talk, "school", "/language")
    assert _say(talk, "school", "deutsch") == "Ab jetzt schreibe ich auf Deutsch."  # the label, typed
    _say(talk, "school", "/language")
    assert _say(talk, "school", "English") == "From now on I write in English."
    _request(talk)
    with UnitOfWork(engine) as uow:
        member = uow.session.exec(select(Member).where(Member.role == "school")).one()
    assert member.locale == "en"
    assert "ask for an interpreter" in _say(talk, "school", "/help")


def test_the_role_comes_from_the_database_not_the_button(engine: Engine) -> None:
    talk = _join(engine, Clock(NOW))
    _request(talk)
    # The school presses a forged 'accept offer' button: nothing happens but a sentence.
    assert _say(talk, "school", choice="of:a:1") == DE.gettext("This button is not meant for you.")
    # Samir presses accept on Amira's offer (id 1): he may not take it.
    assert _say(talk, "samir", choice="of:a:1") == DE.gettext("This offer does not exist.")
    with UnitOfWork(engine) as uow:
        assert all(o.state == "open" for o in uow.session.exec(select(Offer)).all())


def test_a_disputed_report_is_corrected_by_the_coordinator_with_a_reason(engine: Engine) -> None:
    clock = Clock(NOW)
    talk = _join(engine, clock)
    _request(talk)
    _say(talk, "amira", choice="of:a:1")
    clock.now = START + timedelta(minutes=70)
    for line in ("/report", "75", "18", "0", "1"):
        _say(talk, "amira", line)
    assert _say(talk, "school", choice="co:no:1").startswith(
        DE.gettext("What is wrong with the report? One sentence for the coordination office, please.")
    )
    _say(talk, "school", "Sie war nur 60 Minuten da.")
    listed = _say(talk, "office", "/closeouts")
    assert "60 min: 75 min, 18 km – „Sie war nur 60 Minuten da.“" in listed
    for line in ("1", "60", "18", "0"):  # the Correct button, then the figures
        _say(talk, "office", line)
    _say(talk, "office", "Schule und Dolmetscherin einig: 60 Minuten")  # before and after are shown
    done = _say(talk, "office", "1")
    assert done == DE.gettext("Corrected.") + " " + DE.render(
        "The charge falls by {change_cents}.", {"change_cents": 1200}
    )
    with UnitOfWork(engine) as uow:
        budget = uow.session.exec(select(Budget)).one()
    assert budget.charged_cents == 2940  # 60 min 24.00 + 18 km x 0.30 = 5.40
    assert budget.reserved_cents == 0


def test_away_and_the_coordinators_view_of_what_waits(engine: Engine) -> None:
    clock = Clock(NOW)
    talk = _join(engine, clock)
    _say(talk, "amira", "/away")
    _say(talk, "amira", "9.3.")
    assert _say(talk, "amira", "11.3.") == DE.render(
        "Noted: no offers from {from_on} until {until_on}.",
        {"from_on": date(2026, 3, 9), "until_on": date(2026, 3, 11)},
    )
    _request(talk)
    with UnitOfWork(engine) as uow:
        offered = sorted(o.interpreter_id for o in uow.session.exec(select(Offer)).all())
    assert offered == [2, 3, 4]  # Samir, Rojin, Hodan: Amira is away that day
    shown = _say(talk, "office", "/requests")
    assert DE.gettext("No request waits for a decision.") in shown
    assert "#1 · Arabisch" in shown


def test_an_expired_offer_message_says_so_and_the_next_wave_is_offered(engine: Engine) -> None:
    clock = Clock(NOW)
    talk = _join(engine, clock)
    _request(talk)
    phone = Phone()
    deliverer = Deliverer(engine, {"test": phone}, limiter=RateLimiter(per_chat_gap=0), clock=clock)
    asyncio.run(deliverer.run_once())
    offer_text = phone.inbox["amira"][0]
    clock.now = NOW + timedelta(hours=4, minutes=1)  # nobody answered in time
    assert run_due(engine, clock) == 1
    asyncio.run(deliverer.run_once())
    expired = DE.gettext("This offer has expired. Thank you!")
    assert phone.inbox["amira"] == [offer_text.split("\n")[0] + "\n" + expired]  # the offer message, edited
    assert _say(talk, "amira", "1") == DE.gettext("This offer has expired.")  # a late Accept
    with UnitOfWork(engine) as uow:
        waves = [(o.wave, o.state) for o in uow.session.exec(select(Offer).order_by(col(Offer.id)))]
    assert waves == [(1, "expired"), (1, "expired"), (1, "expired"), (2, "open")]  # Hodan, a little farther


def test_the_evaluation_of_a_quiet_year_and_of_this_year_so_far(engine: Engine) -> None:
    clock = Clock(NOW)
    talk = _join(engine, clock)
    _request(talk)  # an Arabic session on 10 March, still being offered
    quiet = talk.handle(Incoming("test", "office", "office", text="/evaluation 2025"))
    assert quiet[0].text.splitlines()[:3] == [
        "Auswertung 01.01.2025 – 31.12.2025",
        "Anfragen: 0, besetzt: 0 (Besetzungsquote –)",
        "Mittlere Zeit bis zur Besetzung: –",
    ]
    assert quiet[0].attachment is not None
    assert quiet[0].attachment.filename == "evaluation-2025-01-01-2025-12-31.pdf"
    assert quiet[0].attachment.data.startswith(b"%PDF-")
    so_far = talk.handle(Incoming("test", "office", "office", text="/evaluation"))
    assert so_far[0].text.splitlines()[:2] == [
        "Auswertung 01.01.2026 – 02.03.2026",  # 1 January to today
        "Anfragen: 0, besetzt: 0 (Besetzungsquote –)",  # the session lies after today
    ]
    wrong = _say(talk, "office", "/evaluation bald")
    assert wrong == DE.gettext("Please write a year (2026) or two dates (2026-01-01 2026-06-30).")


def test_a_file_that_cannot_be_drawn_costs_only_the_file(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    talk = _join(engine, Clock(NOW))

    def broken(*_args: object) -> bytes:
        raise RuntimeError("no fonts")

    monkeypatch.setattr("bot.budget_chart.budget_chart_png", broken)  # imported when drawn
    replies = talk.handle(Incoming("test", "office", "office", text="/budget"))
    assert len(replies) == 1
    assert replies[0].attachment is None
    assert DE.money(500000) in replies[0].text  # the figures still arrive
    assert replies[0].text.endswith(DE.gettext("The file could not be made; please try again later."))
    assert "could not draw budget-2026.png" in caplog.text


def test_the_evaluation_names_the_languages_most_missed_first(engine: Engine) -> None:
    from db.models import School
    from services.requests import submit_request
    from tests.builders import draft

    talk = _join(engine, Clock(NOW))
    with UnitOfWork(engine) as uow:
        school = uow.session.exec(select(School).order_by(col(School.id))).first()
        assert school is not None
        assert school.id is not None
        for language in ("ja", "ka", "ka"):  # nobody in the pool speaks Japanese or Georgian
            wanted = draft(school.id, language=language, starts_at=START)
            submit_request(uow.session, district_id=school.district_id, draft=wanted, actor="t", now=NOW)
        uow.commit()
    shown = _say(talk, "office", "/evaluation 2026").splitlines()
    assert shown[3] == "Nicht abgedeckt: 3; nicht besetzt: 0; am meisten fehlt: Georgisch (2), Japanisch (1)"
