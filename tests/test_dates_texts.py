"""Issue 13, items 9 and 10: dates with weekday and four-digit year, dates typed as words, the year
without a budget, and texts that read naturally in German and English."""

import json
from datetime import date, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.conversation.answers import parse_day, parse_when
from bot.conversation.router import Conversation
from bot.i18n import Translator
from bot.messages import Incoming
from bot.notifications import render, render_notice
from db.models import Interpreter, Member, Offer, OutboxMessage
from db.uow import UnitOfWork
from services import ledger
from services.clock import BERLIN
from services.errors import InvalidInput
from services.notices import DigestWeekly
from services.vocabulary import Role
from tests.chat_world import NOW, Clock, make_demo
from tests.test_cli import cli
from tests.test_telegram import AMIRA, SCHOOL, Telegram, telegram  # noqa: F401  (the fixture)

DE, EN = Translator("de"), Translator("en")
ROLE = {"school": Role.SCHOOL, "interpreter": Role.INTERPRETER, "coordinators": Role.COORDINATOR}
NO_BUDGET_COMMAND = "python -m bot --district heidekreis budget set --year 2027 --amount 5000"


# --- shown -----------------------------------------------------------------------------------------


def test_dates_show_the_weekday_and_four_digits_of_the_year() -> None:
    moment = "2027-03-12T09:00:00+00:00"  # 10:00 in Berlin
    assert DE.when(moment) == "Fr., 12.03.2027, 10:00 Uhr"
    assert EN.when(moment) == "Fri 12 Mar 2027, 10:00"
    assert (DE.day(date(2027, 3, 12)), EN.day(date(2027, 3, 12))) == ("Fr., 12.03.2027", "Fri 12 Mar 2027")
    summer = "2026-07-01T12:30:00+00:00"  # summer time: 14:30 in Berlin
    assert (DE.when(summer), EN.when(summer)) == ("Mi., 01.07.2026, 14:30 Uhr", "Wed 1 Jul 2026, 14:30")


# --- typed -----------------------------------------------------------------------------------------
# NOW is Monday, 2 March 2026, 09:00 in Berlin.


@pytest.mark.parametrize(
    ("typed", "berlin"),
    [
        ("heute 15:00", "2026-03-02 15:00"),
        ("morgen 10:00", "2026-03-03 10:00"),
        ("Morgen um 10 Uhr", "2026-03-03 10:00"),
        ("übermorgen 9:30", "2026-03-04 09:30"),
        ("Di 14:30", "2026-03-03 14:30"),
        ("Di., 14.30", "2026-03-03 14:30"),
        ("Dienstag 14:30", "2026-03-03 14:30"),
        ("Freitag 8 Uhr", "2026-03-06 08:00"),
        ("Mo 10:00", "2026-03-09 10:00"),  # today's weekday: next week's (today is `heute`)
        ("today 15:00", "2026-03-02 15:00"),
        ("tomorrow 10:00", "2026-03-03 10:00"),
        ("tomorrow at 10am", "2026-03-03 10:00"),
        ("day after tomorrow 9:30", "2026-03-04 09:30"),
        ("Tue 14:30", "2026-03-03 14:30"),
        ("Tuesday 2:30 pm", "2026-03-03 14:30"),
        ("Sunday 12 am", "2026-03-08 00:00"),
        ("Monday 10:00", "2026-03-09 10:00"),
        ("Do 12.3. 9 Uhr", "2026-03-12 09:00"),  # a weekday before a date still names the date
    ],
)
def test_a_day_word_and_a_time_are_a_date(typed: str, berlin: str) -> None:
    assert parse_when(typed, NOW).astimezone(BERLIN).strftime("%Y-%m-%d %H:%M") == berlin


@pytest.mark.parametrize(
    "typed",
    [
        "gestern 10:00",
        "morgen",
        "morgen 24:00",
        "morgen 10:60",
        "Tue 13 pm",
        "Tue 0 am",
        "morgen ١٠:٠٠",
        "mond 10",
    ],
)
def test_a_day_word_with_a_wrong_time_is_refused_with_examples(typed: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_when(typed, NOW)
    assert EN.error(refused.value).endswith("write e.g. 12.3. 14:30 or tomorrow 10:00.")
    assert DE.error(refused.value).endswith("Schreiben Sie z. B. 12.3. 14:30 oder morgen 10:00.")


@pytest.mark.parametrize(
    ("typed", "day"),
    [
        ("heute", "2026-03-02"),
        ("morgen", "2026-03-03"),
        ("Übermorgen", "2026-03-04"),
        ("Fr", "2026-03-06"),
        ("Fr.", "2026-03-06"),
        ("Freitag", "2026-03-06"),
        ("fri", "2026-03-06"),
        ("Friday", "2026-03-06"),
        ("Montag", "2026-03-09"),
        ("tomorrow", "2026-03-03"),
        ("12.3.", "2026-03-12"),
    ],
)
def test_a_day_word_is_a_day(typed: str, day: str) -> None:
    assert parse_day(typed, NOW).isoformat() == day


def test_a_word_that_names_no_day_is_refused() -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_day("Fritag", NOW)
    assert (
        DE.error(refused.value)
        == "„Fritag“ ist kein Datum. Schreiben Sie z. B. 12.3., 12.03.2027 oder Freitag."
    )
    assert EN.error(refused.value) == "“Fritag” is not a date; write e.g. 12.3., 12.03.2027 or Friday."


# --- counts ----------------------------------------------------------------------------------------


def test_counts_read_naturally_in_both_languages() -> None:
    asked = ("{language}: asked once", "{language}: asked {count} times")
    assert [DE.render_plural(*asked, n, {"language": "ti"}) for n in (1, 3)] == [
        "Tigrinya: einmal angefragt",
        "Tigrinya: 3-mal angefragt",
    ]
    assert [EN.render_plural(*asked, n, {"language": "ti"}) for n in (1, 3)] == [
        "Tigrinya: asked once",
        "Tigrinya: asked 3 times",
    ]
    more = ("{count} more is listed under /jobs.", "{count} more are listed under /jobs.")
    assert [DE.render_plural(*more, n) for n in (1, 2)] == [
        "1 weiterer Einsatz steht unter /jobs.",
        "2 weitere Einsätze stehen unter /jobs.",
    ]
    assert [EN.render_plural(*more, n) for n in (1, 2)] == [
        "1 more is listed under /jobs.",
        "2 more are listed under /jobs.",
    ]
    booking = ("{count} booking", "{count} bookings")
    assert [DE.render_plural(*booking, n) for n in (0, 1, 2)] == ["0 Buchungen", "1 Buchung", "2 Buchungen"]
    assert [EN.render_plural(*booking, n) for n in (0, 1, 2)] == ["0 bookings", "1 booking", "2 bookings"]


def test_the_weekly_digest_counts_one_booking_in_the_singular(engine: Engine) -> None:
    digest = DigestWeekly(
        since_at=datetime.fromisoformat("2026-02-23T08:00:00+00:00"),
        bookings=1,
        charged_cents=2940,
        available_cents=497060,
        used_percent=1,
        unfilled=0,
        uncovered=(),
        year_end_cents=None,
        runs_out_on=None,
    )
    with UnitOfWork(engine) as uow:
        german = render_notice(uow.session, DE, digest, Role.COORDINATOR).text
        english = render_notice(uow.session, EN, digest, Role.COORDINATOR).text
    assert german.splitlines()[:2] == [
        "Wochenübersicht seit Mo., 23.02.2026, 09:00 Uhr:",
        "1 Buchung, 29,40\xa0€ abgerechnet.",
    ]
    assert english.splitlines()[:2] == [
        "Weekly digest since Mon 23 Feb 2026, 09:00:",
        "1 booking, €29.40 charged.",
    ]


def test_the_command_line_counts_an_import_of_one(tmp_path: Path) -> None:
    (tmp_path / "pool.csv").write_text(
        "name,languages,municipality,latitude,longitude,modes,phone,email\n"
        "Amira Haddad,ar,Soltau,52.98,9.84,in_person,,\n"
    )
    assert cli(tmp_path, "init", "--name", "Landkreis Test").returncode == 0
    for locale, said in (("de", "1 Dolmetscher/in importiert.\n"), ("en", "Imported 1 interpreter.\n")):
        done = cli(tmp_path, "pool", "import", str(tmp_path / "pool.csv"), locale=locale)
        assert (done.returncode, done.stdout, done.stderr) == (0, said, "")


# --- in the chat -----------------------------------------------------------------------------------


def _join(engine: Engine, clock: Clock) -> Conversation:
    codes = make_demo(engine, NOW)
    talk = Conversation(engine, clock)
    for user, code in (
        ("school", codes.school),
        ("amira", codes.amira),
        ("samir", codes.samir),
        ("office", codes.coordinator),
    ):
        talk.handle(Incoming("test", user, user, text=f"/start {code}"))
    return talk


def _say(talk: Conversation, user: str, text: str = "", choice: str | None = None) -> str:
    return "\n".join(r.text for r in talk.handle(Incoming("test", user, user, text=text, choice=choice)))


def _english(talk: Conversation, user: str) -> None:
    _say(talk, user, "/language")
    assert _say(talk, user, "English") == "From now on I write in English."


def _ask(talk: Conversation, *, mode: str, when: str, language: str = "ar") -> str:
    """Fill in a request up to its summary: 60 min, at the school (or the link later), no wishes."""
    _say(talk, "school", "/request")
    _say(talk, "school", language)
    _say(talk, "school", mode)
    _say(talk, "school", when)
    for line in ("60", "1", "1", "1"):  # duration, place, topic, gender
        _say(talk, "school", line)
    return _say(talk, "school", "1")  # no note: the summary


def _offer_of(engine: Engine, name: str) -> int:
    with UnitOfWork(engine) as uow:
        offer_id = uow.session.exec(
            select(Offer.id)
            .join(Interpreter, col(Interpreter.id) == Offer.interpreter_id)
            .where(Interpreter.name == name)
        ).one()
    assert offer_id is not None
    return offer_id


def _sent(engine: Engine, template: str, recipient: str, locale: str) -> list[str]:
    """The texts of the notices of one kind for one kind of recipient, oldest first."""
    with UnitOfWork(engine) as uow:
        rows = uow.session.exec(
            select(OutboxMessage)
            .where(OutboxMessage.template == template, OutboxMessage.recipient_type == recipient)
            .order_by(col(OutboxMessage.id))
        ).all()
        t = Translator(locale)
        return [render(uow.session, t, r.template, json.loads(r.params), ROLE[recipient]).text for r in rows]


def test_a_request_typed_for_tomorrow_shows_its_weekday_and_year(engine: Engine) -> None:
    talk = _join(engine, Clock(NOW))
    summary = _ask(talk, mode="vor Ort", when="morgen 10:00")
    assert (
        DE.render("Start: {starts_at}", {"starts_at": datetime.fromisoformat("2026-03-03T09:00:00+00:00")})
        in summary
    )
    assert "Beginn: Di., 03.03.2026, 10:00 Uhr" in summary
    _say(talk, "school", "1")  # send
    offers = _sent(engine, "offer.new", "interpreter", "de")
    assert offers[0].startswith("#1 · Arabisch · vor Ort · Di., 03.03.2026, 10:00 Uhr · 60 min\n")
    assert "Neuer Einsatz: Soltau" in offers[0]  # in person: the school's town


def test_the_when_question_shows_a_date_and_a_weekday_for_the_same_day(engine: Engine) -> None:
    talk = _join(engine, Clock(NOW))
    _say(talk, "school", "/request")
    _say(talk, "school", "ar")
    assert _say(talk, "school", "vor Ort") == (
        "Wann beginnt der Einsatz? Schreiben Sie Datum und Uhrzeit, z. B. 5.3. 10:00 oder Donnerstag 10:00."
    )
    _say(talk, "school", "/cancel")
    _english(talk, "school")
    assert "(e.g. Arabic, Tigrinya)" in _say(talk, "school", "/request")


def test_a_video_offer_names_the_mode_not_the_schools_town(engine: Engine) -> None:
    talk = _join(engine, Clock(NOW))
    _ask(talk, mode="3", when="Di 14:30")  # by video, tomorrow
    _say(talk, "school", "1")  # send
    german = _sent(engine, "offer.new", "interpreter", "de")
    english = _sent(engine, "offer.new", "interpreter", "en")
    assert german[0].split("\n")[1] == "Neuer Einsatz: per Video, Elterngespräch"
    assert english[0].split("\n")[1] == "New job: by video, parent talk"
    assert not any("Soltau" in text for text in german + english)


def test_a_year_without_budget_says_so_to_school_and_office_and_how_to_set_it(engine: Engine) -> None:
    talk = _join(engine, Clock(NOW))
    summary = _ask(talk, mode="vor Ort", when="10.3.2027 10:00")
    assert "Beginn: Mi., 10.03.2027, 10:00 Uhr" in summary
    assert DE.gettext("There is no budget for that year yet; the coordination office decides.") in summary
    _say(talk, "school", "1")  # send: held for the coordinators
    line = "#1 · Arabisch · vor Ort · Mi., 10.03.2027, 10:00 Uhr · 60 min"
    assert _sent(engine, "request.awaiting_approval", "school", "de") == [
        f"{line}\nFür 2027 gibt es noch kein Budget. Die Koordinierungsstelle entscheidet über diese "
        "Anfrage; Sie hören von uns."
    ]
    assert _sent(engine, "request.awaiting_approval", "school", "en") == [
        "#1 · Arabic · in person · Wed 10 Mar 2027, 10:00 · 60 min\n"
        "There is no budget for 2027 yet. The coordination office decides about this request; "
        "you will hear from us."
    ]
    office = _sent(engine, "request.awaiting_approval", "coordinators", "de")[0]
    assert office.startswith(
        f"{line}\nFür 2027 gibt es noch kein Budget, deshalb wartet diese Anfrage auf Ihre Entscheidung. "
        f"Legen Sie das Budget auf der Kommandozeile fest, z. B. {NO_BUDGET_COMMAND}, und geben Sie die "
        "Anfrage dann frei.\n\n1. Freigeben\n2. Ablehnen"
    )
    # Approving without a budget names the budget and the command; nothing changes.
    assert _say(talk, "office", choice="rq:ap:1").startswith(
        "Für 2027 gibt es noch kein Budget, deshalb kann die Anfrage nicht hinausgehen. Legen Sie das "
        f"Budget auf der Kommandozeile fest, z. B. {NO_BUDGET_COMMAND}, und geben Sie die Anfrage dann frei."
    )
    _english(talk, "office")
    assert _say(talk, "office", choice="rq:ap:1").startswith(
        "There is no budget for 2027 yet, so the request cannot go out. Set the budget on the command "
        f"line, e.g. {NO_BUDGET_COMMAND}, then approve."
    )
    assert _sent(engine, "offer.new", "interpreter", "de") == []


def test_an_estimate_over_budget_keeps_its_own_text(engine: Engine) -> None:
    talk = _join(engine, Clock(NOW))
    with UnitOfWork(engine) as uow:  # 10 € left of this year's budget
        district = uow.session.exec(select(Member.district_id)).first()
        assert district is not None
        ledger.set_total(uow.session, district_id=district, year=2026, total_cents=1000, actor="t", now=NOW)
        uow.commit()
    _ask(talk, mode="vor Ort", when="morgen 10:00")
    _say(talk, "school", "1")
    assert _sent(engine, "request.awaiting_approval", "school", "de")[0].endswith(
        "Die geschätzten 36,88\xa0€ passen nicht ins Budget; die Koordinierungsstelle entscheidet."
    )
    assert _sent(engine, "request.awaiting_approval", "coordinators", "en")[0].split("\n")[1] == (
        "The estimate of €36.88 does not fit what is left of the budget. Approve or reject?"
    )


def test_the_school_reads_the_full_name_and_a_free_cancellation_says_free(engine: Engine) -> None:
    talk = _join(engine, Clock(NOW))
    _ask(talk, mode="vor Ort", when="Freitag 10:00")
    _say(talk, "school", "1")
    _say(talk, "samir", choice=f"of:a:{_offer_of(engine, 'Samir Khalil')}")
    booked = "Booked: {interpreter_name} will come.{contact}"
    assert _sent(engine, "request.booked", "school", "de")[0].split("\n")[1] == DE.render(
        booked, {"interpreter_name": "Samir Khalil", "contact": ""}
    )
    assert (
        _sent(engine, "request.booked", "school", "en")[0].split("\n")[1] == "Booked: Samir Khalil will come."
    )
    assert "(Samir Khalil)" in _say(talk, "school", "/bookings")
    _say(talk, "school", choice="rq:cx:1")
    _say(talk, "school", choice="yes")  # days ahead: free
    assert _sent(engine, "request.cancelled", "school", "de")[0].endswith(
        "\nRechtzeitig storniert, also kostenfrei: Das Budget wird nicht belastet."
    )
    assert _sent(engine, "request.cancelled", "school", "en")[0].endswith(
        "\nCancelled in time, free of charge: nothing is charged to the budget."
    )
    assert _sent(engine, "booking.cancelled", "interpreter", "de")[0].endswith(
        "\nDie Schule hat diesen Einsatz rechtzeitig storniert; "
        "eine Ausfallentschädigung gibt es daher nicht."
    )
    assert _sent(engine, "booking.cancelled", "interpreter", "en")[0].endswith(
        "\nThe school has cancelled this job in time, so there is no compensation."
    )


def test_english_texts_use_articles_and_the_office_sees_charged_money_by_year(engine: Engine) -> None:
    talk = _join(engine, Clock(NOW))
    _english(talk, "school")
    assert _say(talk, "school", "/help").startswith("What you can do as a school:\n")
    _english(talk, "samir")
    assert _say(talk, "samir", "/earnings") == (
        "Paid for sessions in 2026: €0.00. The tax-free volunteer allowance is €840.00; "
        "€840.00 of it is left."
    )
    assert "Im Jahr 2026 abgerechnet: 0,00\xa0€\n" in _say(talk, "office", "/budget")
    _english(talk, "office")
    assert "Charged in 2026: €0.00\n" in _say(talk, "office", "/budget")


def test_the_pool_page_counts_asked_once_and_asked_twice(engine: Engine) -> None:
    talk = _join(engine, Clock(NOW))
    for when in ("Di 10:00", "Mi 10:00", "Do 10:00"):
        _ask(talk, mode="vor Ort", when=when, language="ka")  # Georgian: nobody in the pool
        _say(talk, "school", "1")
    _ask(talk, mode="vor Ort", when="Fr 10:00", language="ja")  # Japanese, once
    _say(talk, "school", "1")
    shown = "\n".join(_say(talk, "office", f"/pool {page}") for page in (1, 2, 3))
    assert "Georgisch: 3-mal angefragt" in shown
    assert "Japanisch: einmal angefragt" in shown
    _english(talk, "office")
    shown = "\n".join(_say(talk, "office", f"/pool {page}") for page in (1, 2, 3))
    assert "Georgian: asked 3 times" in shown
    assert "Japanese: asked once" in shown


# --- through the real PTB --------------------------------------------------------------------------


async def test_through_telegram_a_request_for_tomorrow_reaches_the_interpreter_with_its_date(
    telegram: Telegram,  # noqa: F811  (the fixture of tests/test_telegram.py)
) -> None:
    tg = telegram
    await tg.join(SCHOOL, tg.codes.school)
    await tg.join(AMIRA, tg.codes.amira)
    await tg.say(SCHOOL, "/request")
    mode = await tg.say(SCHOOL, "arabisch")
    when = await tg.choose(SCHOOL, mode, "in_person")
    assert when.text == (
        "Wann beginnt der Einsatz? Schreiben Sie Datum und Uhrzeit, z. B. 5.3. 10:00 oder Donnerstag 10:00."
    )
    duration = await tg.say(SCHOOL, "morgen 10:00")
    place = await tg.choose(SCHOOL, duration, "60")
    await tg.choose(SCHOOL, place, "school")
    gender = await tg.say(SCHOOL, "1")  # parent talk
    note = await tg.choose(SCHOOL, gender, "any")
    summary = await tg.choose(SCHOOL, note, "none")
    assert "Beginn: Di., 03.03.2026, 10:00 Uhr" in summary.text.splitlines()
    await tg.press(SCHOOL, summary, "send")
    offer = await tg.api.wait_for_message(AMIRA, lambda m: bool(m.buttons))
    assert offer.text == (
        "#1 · Arabisch · vor Ort · Di., 03.03.2026, 10:00 Uhr · 60 min\n"
        "Neuer Einsatz: Soltau (0 km entfernt), Elterngespräch\n"
        "Vergütung ca. 24,00\xa0€. Bitte antworten Sie bis Mo., 02.03.2026, 13:00 Uhr.\n\n"
        "1. Annehmen\n2. Ablehnen"
    )


def test_a_weekday_that_contradicts_its_date_is_asked_again() -> None:
    de = Translator("de")
    # 12 March 2026 is a Thursday (NOW is Monday 2 March).
    for typed in ("Do 12.3. 9 Uhr", "Do. 12.3. 9 Uhr", "Donnerstag, 12.3. 9:00", "am 12.3. 9 Uhr"):
        assert de.when(parse_when(typed, NOW)) == "Do., 12.03.2026, 09:00 Uhr", typed
    assert parse_day("Do 12.3.", NOW) == date(2026, 3, 12)
    for wrong in ("Fr 12.3. 10:00", "Freitag 12.3. 10:00", "fri 12.3. 10:00"):
        with pytest.raises(InvalidInput) as refused:
            parse_when(wrong, NOW)
        assert (
            de.error(refused.value)
            == "Do., 12.03.2026 – das ist ein anderer Wochentag; bitte prüfen Sie das Datum."
        )
    with pytest.raises(InvalidInput) as refused:
        parse_day("Fr 12.3.", NOW)
    assert (
        Translator("en").error(refused.value) == "Thu 12 Mar 2026 is another weekday; please check the date."
    )
