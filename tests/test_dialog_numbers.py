"""Dialogs off their happy path (DESIGN §7): a typed number at a number step is the value, and a
command typed inside a dialog is answered while the dialog is kept and offered again.

Each test runs on SQLite and PostgreSQL; the two Done-when cases of issue 13 go through the real
python-telegram-bot Application against the fake Bot API.
"""

from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.conversation.router import Conversation
from bot.i18n import Translator
from bot.messages import Incoming
from db.models import Closeout, Interpreter, Offer, Request, School
from db.uow import UnitOfWork
from services.offers import accept_offer
from services.requests import submit_request
from tests.builders import draft
from tests.chat_world import NOW, START, START_TEXT, Clock, make_demo
from tests.test_telegram import SAMIR, SCHOOL, Telegram, telegram  # noqa: F401 (the fixture)

DE = Translator("de")


def _join(engine: Engine, clock: Clock) -> Conversation:
    codes = make_demo(engine, NOW)
    talk = Conversation(engine, clock)
    for user, code in (("school", codes.school), ("samir", codes.samir), ("office", codes.coordinator)):
        talk.handle(Incoming("test", user, user, text=f"/start {code}"))
    return talk


def _say(talk: Conversation, user: str, text: str = "", choice: str | None = None) -> str:
    return "\n".join(r.text for r in talk.handle(Incoming("test", user, user, text=text, choice=choice)))


def _remind(flow_text: str, command: str) -> str:
    return DE.render(
        "{unfinished} Continue with /{command}, or drop it with /cancel.",
        {"unfinished": DE.gettext(flow_text), "command": command},
    )


def _book_samir(engine: Engine) -> int:
    """The demo school's Arabic session on 10 March (60 min, in person), booked by Samir."""
    with UnitOfWork(engine) as uow:
        s = uow.session
        school = s.exec(select(School).order_by(col(School.id))).first()
        samir = s.exec(select(Interpreter).where(Interpreter.name == "Samir Khalil")).one()
        assert school is not None
        assert school.id is not None
        assert samir.id is not None
        request = submit_request(
            s, district_id=school.district_id, draft=draft(school.id, starts_at=START), actor="test", now=NOW
        )
        offer = s.exec(
            select(Offer).where(Offer.request_id == request.id, Offer.interpreter_id == samir.id)
        ).one()
        accept_offer(s, offer_id=offer.id or 0, interpreter_id=samir.id, actor="test", now=NOW)
        uow.commit()
        assert request.id is not None
        return request.id


def _requests(engine: Engine) -> list[tuple[str, str, int]]:
    with UnitOfWork(engine) as uow:
        rows = uow.session.exec(select(Request).order_by(col(Request.id))).all()
        return [(r.language, r.mode, r.duration_minutes) for r in rows]


# --- numbers --------------------------------------------------------------------------------------


def test_the_duration_step_takes_a_typed_number_as_minutes_and_lists_its_picks_as_values(
    engine: Engine,
) -> None:
    talk = _join(engine, Clock(NOW))
    for line in ("/request", "ar", "vor Ort"):
        _say(talk, "school", line)
    asked = _say(talk, "school", START_TEXT)
    assert asked.endswith("\n\n30 min · 45 min · 60 min · 90 min · 120 min")  # values, no positions
    assert "1. " not in asked
    out_of_range = DE.gettext("The duration must be between 15 minutes and 8 hours.")
    for typed in ("2", "0", "9999"):  # `2` was the second pick (45 min) before; `9999` no duration at all
        assert _say(talk, "school", typed).startswith(out_of_range)
    place = _say(talk, "school", "45")
    assert place.startswith(DE.gettext("Where? Choose the school's address or type another one."))
    with UnitOfWork(engine) as uow:
        dialog = uow.session.exec(select(Request)).all()
    assert dialog == []  # nothing saved before sending


def test_the_report_takes_1_as_one_kilometre_and_one_euro(engine: Engine) -> None:
    clock = Clock(NOW)
    talk = _join(engine, clock)
    request_id = _book_samir(engine)
    clock.now = START + timedelta(minutes=65)
    asked = _say(talk, "samir", "/report")
    assert asked.endswith("\n\n" + DE.render("{minutes} min as planned", {"minutes": 60}))
    km = _say(talk, "samir", "60")
    assert km.endswith("\n\n0 km")
    costs = _say(talk, "samir", "1")  # one kilometre, not the first pick ("0 km")
    assert costs.endswith("\n\n" + DE.gettext("None"))
    check = _say(talk, "samir", "1")  # one euro, not the first pick ("None")
    assert DE.money(100) in check  # other costs
    assert DE.money(2400 + 30 + 100) in check  # 60 min at 24.00 €/h, 1 km at 0.30 €, 1.00 €
    _say(talk, "samir", "senden")
    with UnitOfWork(engine) as uow:
        closeout = uow.session.exec(select(Closeout).where(Closeout.request_id == request_id)).one()
    assert (closeout.actual_minutes, closeout.km, closeout.expenses_cents) == (60, 1, 100)
    assert closeout.amount_cents == 2530


# --- commands inside a dialog -----------------------------------------------------------------------


def test_a_command_inside_the_request_is_answered_and_the_request_goes_on(engine: Engine) -> None:
    talk = _join(engine, Clock(NOW))
    _say(talk, "school", "/request")
    mode = _say(talk, "school", "ar")
    assert mode.startswith(DE.gettext("How should the interpreting happen?"))
    listed = _say(talk, "school", "/bookings")
    assert listed == (
        DE.gettext("You have no requests yet. /request makes one.")
        + "\n"
        + _remind("Your request has not been sent yet.", "request")
    )
    help_text = _say(talk, "school", "/hilfe")
    assert help_text.endswith(_remind("Your request has not been sent yet.", "request"))
    again = _say(talk, "school", "/request")  # takes the request up again where it was
    assert again.startswith(DE.gettext("How should the interpreting happen?"))
    for line in ("vor Ort", START_TEXT, "60", "1", "1", "1", "1"):
        _say(talk, "school", line)
    _say(talk, "school", "senden")
    assert _requests(engine) == [("ar", "in_person", 60)]


def test_a_number_after_a_command_inside_the_report_is_still_the_report_s_answer(engine: Engine) -> None:
    clock = Clock(NOW)
    talk = _join(engine, clock)
    _book_samir(engine)
    clock.now = START + timedelta(minutes=65)
    _say(talk, "samir", "/report")
    aside = _say(talk, "samir", "/earnings")
    assert aside.endswith(_remind("Your report has not been sent yet.", "report"))
    km = _say(talk, "samir", "30")  # before: "Das habe ich nicht verstanden"
    assert km.startswith(
        DE.gettext("How many kilometres did you drive, there and back? (0 if you took public transport)")
    )
    assert _say(talk, "samir", "/weiter").startswith(
        DE.gettext("How many kilometres did you drive, there and back? (0 if you took public transport)")
    )


def test_a_dialog_begun_on_top_of_another_gives_it_back_when_it_ends(engine: Engine) -> None:
    talk = _join(engine, Clock(NOW))
    request_id = _book_samir(engine)
    _say(talk, "school", "/request")
    _say(talk, "school", "ar")
    asked = _say(talk, "school", choice=f"rq:cx:{request_id}")  # a button of an earlier /bookings
    assert asked.endswith("1. Ja, stornieren\n2. Nein, behalten")
    kept = _say(talk, "school", "nein")
    assert kept == DE.gettext("Nothing was changed.") + "\n" + _remind(
        "Your request has not been sent yet.", "request"
    )
    assert _say(talk, "school", "/request").startswith(DE.gettext("How should the interpreting happen?"))
    _say(talk, "school", choice=f"rq:cx:{request_id}")
    dropped = _say(talk, "school", "/abbrechen")  # drops the cancellation only
    assert dropped == DE.gettext("Cancelled. Nothing was saved.") + "\n" + _remind(
        "Your request has not been sent yet.", "request"
    )
    _say(talk, "school", choice=f"rq:cx:{request_id}")
    _say(talk, "school", "ja")  # `ja` confirms `Ja, stornieren`
    with UnitOfWork(engine) as uow:
        request = uow.session.get(Request, request_id)
        assert request is not None
        assert request.state == "cancelled"
    assert _say(talk, "school", "/request").startswith(DE.gettext("How should the interpreting happen?"))
    assert _say(talk, "school", "/cancel") == DE.gettext("Cancelled. Nothing was saved.")
    assert _say(talk, "school", "/weiter") == DE.gettext(
        "There is nothing to continue. /help lists what you can do."
    )


def test_choosing_the_language_inside_a_dialog_keeps_it(engine: Engine) -> None:
    talk = _join(engine, Clock(NOW))
    _say(talk, "school", "/request")
    _say(talk, "school", "/sprache")
    switched = _say(talk, "school", "English")
    en = Translator("en")
    assert switched == en.gettext("From now on I write in English.") + "\n" + en.render(
        "{unfinished} Continue with /{command}, or drop it with /cancel.",
        {"unfinished": en.gettext("Your request has not been sent yet."), "command": "request"},
    )
    assert _say(talk, "school", "arabic").startswith(en.gettext("How should the interpreting happen?"))


# --- through the real PTB ---------------------------------------------------------------------------


async def test_bookings_typed_inside_a_request_keeps_the_draft_on_telegram(telegram: Telegram) -> None:  # noqa: F811
    tg = telegram
    await tg.join(SCHOOL, tg.codes.school)
    await tg.say(SCHOOL, "/request")
    await tg.say(SCHOOL, "arabisch")
    since = len(tg.api.sent(SCHOOL))
    aside = await tg.say(SCHOOL, "/bookings")
    assert aside.text == DE.gettext("You have no requests yet. /request makes one.")
    reminder = _remind("Your request has not been sent yet.", "request")
    await tg.api.wait_for_message(SCHOOL, lambda m: m.text == reminder, since=since)
    resumed = await tg.say(SCHOOL, "/request")
    assert resumed.text.startswith(DE.gettext("How should the interpreting happen?"))
    duration = await tg.choose(SCHOOL, resumed, "in_person")
    duration = await tg.say(SCHOOL, START_TEXT)
    assert [key for _, key in duration.buttons] == ["30", "45", "60", "90", "120"]
    place = await tg.choose(SCHOOL, duration, "60")
    topic = await tg.choose(SCHOOL, place, "school")
    gender = await tg.say(SCHOOL, "1")
    note = await tg.choose(SCHOOL, gender, "any")
    summary = await tg.choose(SCHOOL, note, "none")
    await tg.choose(SCHOOL, summary, "send")  # the next message comes after the commit
    assert topic.text.startswith(DE.gettext("What is it about?"))
    assert _requests(tg.engine) == [("ar", "in_person", 60)]


async def test_typing_1_at_the_km_step_charges_30_cents_of_travel_on_telegram(telegram: Telegram) -> None:  # noqa: F811
    tg = telegram
    await tg.join(SAMIR, tg.codes.samir)
    _book_samir(tg.engine)
    tg.clock.now = START + timedelta(minutes=65)
    km_question = DE.gettext(
        "How many kilometres did you drive, there and back? (0 if you took public transport)"
    )
    since = len(tg.api.sent(SAMIR))
    await tg.say(SAMIR, "/report")  # the offer and its confirmation may come in between
    tg.api.push_text(SAMIR, "60", language_code="de")
    km = await tg.api.wait_for_message(SAMIR, lambda m: m.text.startswith(km_question), since=since)
    assert km.buttons == [("0 km", "0")]
    since = len(tg.api.sent(SAMIR))
    tg.api.push_text(SAMIR, "1", language_code="de")
    costs = await tg.api.wait_for_message(
        SAMIR,
        lambda m: m.text.startswith(DE.gettext("Tickets or other costs in euros (e.g. 12.90)?")),
        since=since,
    )
    check = await tg.choose(SAMIR, costs, "0")
    assert DE.money(2430) in check.text  # 24.00 € for the hour and 0.30 € for one kilometre
    await tg.choose(SAMIR, check, "send")
    with UnitOfWork(tg.engine) as uow:
        closeout = uow.session.exec(select(Closeout)).one()
    assert (closeout.km, closeout.amount_cents) == (1, 2430)


def test_no_answer_quotes_more_than_100_characters_of_what_was_typed(engine: Engine) -> None:
    talk = _join(engine, Clock(NOW))
    long_word = "x" * 5000
    quoted: list[int] = []
    for step in ("/request", "ar", "vor Ort", START_TEXT, "60", "1", "1", "1", "1"):
        for typed in (long_word, "/" + long_word, f"{long_word} {long_word}"):
            reply = _say(talk, "school", typed)
            quoted.append(max((len(run) for run in reply.split() if set(run) <= set("x/“”…")), default=0))
        _say(talk, "school", step)
    assert max(quoted) <= 101  # the echo (100 characters with its `…`) and a quote mark at most


def test_dialogs_begun_on_top_of_each_other_come_back_in_turn(engine: Engine) -> None:
    talk = _join(engine, Clock(NOW))
    request_id = _book_samir(engine)
    _say(talk, "school", "/request")
    _say(talk, "school", "ar")
    _say(talk, "school", choice=f"rq:cx:{request_id}")  # cancelling, on top of the request
    _say(talk, "school", choice=f"rq:cg:{request_id}")  # changing, on top of both
    dropped = _say(talk, "school", "/cancel")
    assert dropped == DE.gettext("Cancelled. Nothing was saved.") + "\n" + _remind(
        "You have not yet said whether to cancel.", "continue"
    )
    kept = _say(talk, "school", "nein")
    assert kept == DE.gettext("Nothing was changed.") + "\n" + _remind(
        "Your request has not been sent yet.", "request"
    )


def test_a_dialog_whose_subject_has_gone_ends_and_gives_back_the_one_beneath(engine: Engine) -> None:
    talk = _join(engine, Clock(NOW))
    request_id = _book_samir(engine)
    _say(talk, "school", "/request")
    _say(talk, "school", "ar")
    _say(talk, "school", choice=f"rq:cx:{request_id}")
    with UnitOfWork(engine) as uow:  # the office cancels it meanwhile
        request = uow.session.get(Request, request_id)
        assert request is not None
        request.state = "cancelled"
        uow.commit()
    gone = DE.render(
        "This request is {state} and cannot become {target}.", {"state": "cancelled", "target": "cancelled"}
    )
    answered = _say(talk, "school", "ja")
    assert answered == gone + "\n" + _remind("Your request has not been sent yet.", "request")
    assert _say(talk, "school", "/request").startswith(DE.gettext("How should the interpreting happen?"))
