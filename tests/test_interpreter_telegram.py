"""The interpreter's dialogs off the happy path through the real python-telegram-bot Application
against the fake Bot API (SQLite and PostgreSQL): an absence that names the booking inside it and
hands it back with a confirmation and a reason, and a report far from the plan that asks first."""

from collections.abc import Callable
from datetime import timedelta

from sqlmodel import select

from bot.conversation.views import request_line
from bot.i18n import Translator
from db.models import Closeout, Offer, Request
from db.uow import UnitOfWork
from tests.chat_world import START
from tests.fake_bot_api import SentMessage
from tests.test_dialog_numbers import _book_samir
from tests.test_telegram import SAMIR, SCHOOL, Telegram, telegram  # noqa: F401 (the fixture)

DE = Translator("de")


async def _answer(tg: Telegram, user: int, text: str, wanted: Callable[[SentMessage], bool]) -> SentMessage:
    """Type `text` as `user`; the bot's first message to them after it that `wanted` picks."""
    since = len(tg.api.sent(user))
    tg.api.push_text(user, text, language_code="de")
    return await tg.api.wait_for_message(user, wanted, since=since)


async def _press(tg: Telegram, user: int, message: SentMessage, key: str) -> SentMessage:
    since = len(tg.api.sent(user))
    await tg.press(user, message, key)
    return await tg.api.wait_for_message(user, lambda m: m.method == "sendMessage", since=since)


async def test_an_absence_over_a_booking_hands_it_back_after_a_confirmation_and_a_reason(
    telegram: Telegram,  # noqa: F811
) -> None:
    tg = telegram
    await tg.join(SAMIR, tg.codes.samir)
    await tg.join(SCHOOL, tg.codes.school)
    request_id = _book_samir(tg.engine)
    await _answer(
        tg,
        SAMIR,
        "/away",
        lambda m: m.text.startswith(DE.gettext("From which day are you away? (e.g. 12.3. or Monday)")[:20]),
    )
    await _answer(tg, SAMIR, "9.3.", lambda m: m.text == DE.gettext("Until which day, inclusive?"))
    noted = await _answer(tg, SAMIR, "11.3.", lambda m: f"bk:gb:{request_id}" in {k for _, k in m.buttons})
    assert noted.text.splitlines()[0] == DE.render(
        "Noted: no offers from {from_on} until {until_on}.",
        {"from_on": START.date() - timedelta(days=1), "until_on": START.date() + timedelta(days=1)},
    )
    assert noted.buttons == [
        (DE.render("Hand back #{request_id}", {"request_id": request_id}), f"bk:gb:{request_id}")
    ]
    asked = await _press(tg, SAMIR, noted, f"bk:gb:{request_id}")
    assert [key for _, key in asked.buttons] == ["yes", "no"]
    why = await _press(tg, SAMIR, asked, "yes")
    assert why.text == DE.gettext(
        "Why can you not take it? One short sentence for the coordination office (3 to 300 characters)."
    )
    with UnitOfWork(tg.engine) as uow:
        request = uow.session.get(Request, request_id)
        assert request is not None
        assert request.state == "booked"  # nothing changes before the reason
    await _answer(tg, SAMIR, "Ich bin krank.", lambda m: m.method == "sendDocument")  # the calendar's CANCEL
    with UnitOfWork(tg.engine) as uow:
        request = uow.session.get(Request, request_id)
        asked_again = uow.session.exec(select(Offer).where(Offer.state == "open")).all()
    assert request is not None
    assert request.state == "offered"
    assert request.interpreter_id is None
    assert len(asked_again) >= 1  # the others of the pool, the first wave included


async def test_a_report_far_from_the_plan_asks_before_it_goes(telegram: Telegram) -> None:  # noqa: F811
    tg = telegram
    await tg.join(SAMIR, tg.codes.samir)
    request_id = _book_samir(tg.engine)
    tg.clock.now = START + timedelta(minutes=10)  # begun, but planned to end at 11:00
    km_question = DE.gettext(
        "How many kilometres did you drive, there and back? (0 if you took public transport)"
    )
    await _answer(
        tg,
        SAMIR,
        "/report",
        lambda m: m.text.startswith(DE.gettext("How many minutes did {line} actually take?")[:20]),
    )
    await _answer(tg, SAMIR, "150", lambda m: m.text.startswith(km_question))
    costs = await _answer(
        tg,
        SAMIR,
        "18",
        lambda m: m.text.startswith(DE.gettext("Tickets or other costs in euros (e.g. 12.90)?")),
    )
    check = await _press(tg, SAMIR, costs, "0")
    what = "; ".join(
        [
            DE.render(
                "{minutes} min is more than twice the planned {planned} min", {"minutes": 150, "planned": 60}
            ),
            DE.render(
                "it is reported before the planned end ({ends_at})", {"ends_at": START + timedelta(hours=1)}
            ),
        ]
    )
    with UnitOfWork(tg.engine) as uow:
        request = uow.session.get(Request, request_id)
        assert request is not None
        line = request_line(DE, request)
        assert uow.session.exec(select(Closeout)).all() == []  # nothing sent before the answer
    # 150 min in person: 60, then 3 started half hours = 150 min x 24.00 = 60.00; 18 km x 0.30 = 5.40
    assert check.text.startswith(
        DE.render(
            "{line}\n{minutes} min, {km} km, other costs {expenses_cents}: "
            "you would be paid {amount_cents}.\nThat is unusual: {what}.\n"
            "If it is right, send it; the coordination office is told. Send anyway?",
            {
                "line": line,
                "minutes": 150,
                "km": 18,
                "expenses_cents": 0,
                "amount_cents": 6540,
                "what": what,
            },
        )
    )
    assert [label for label, _ in check.buttons] == [DE.gettext("Send anyway"), DE.gettext("Start again")]
    await _press(tg, SAMIR, check, "send")
    with UnitOfWork(tg.engine) as uow:
        closeout = uow.session.exec(select(Closeout)).one()
    assert (closeout.actual_minutes, closeout.km, closeout.amount_cents) == (150, 18, 6540)
