"""The fake Bot API against the real python-telegram-bot Application: polling, replies, buttons, errors."""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, Forbidden, RetryAfter
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from tests.fake_bot_api import BOT_ID, BOT_USERNAME, FakeBotApi, SentMessage, buttons

USER = 4711
KEYBOARD = InlineKeyboardMarkup([[InlineKeyboardButton("Drück mich", callback_data="press:1")]])


@pytest.fixture
async def fake_api() -> AsyncIterator[FakeBotApi]:
    api = FakeBotApi()
    await api.start()
    yield api
    await api.stop()
    assert api.server_errors == []


async def _echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message is not None
    await update.message.reply_text(f"Echo: {update.message.text}", reply_markup=KEYBOARD)


async def _start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message is not None
    await update.message.reply_text(f"Willkommen, args={context.args}")


async def _pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    assert query is not None
    await query.answer("ok")
    await query.edit_message_text(f"pressed {query.data}")


def _application(api: FakeBotApi) -> Application:  # type: ignore[type-arg]
    app = (
        Application.builder()
        .token(api.token)
        .base_url(api.base_url)
        .base_file_url(api.base_url.replace("/bot", "/file/bot"))
        .build()
    )
    app.add_handler(CommandHandler("start", _start))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, _echo))
    app.add_handler(CallbackQueryHandler(_pressed))
    return app


@asynccontextmanager
async def _polling(api: FakeBotApi, timeout: int = 1) -> AsyncIterator[Application]:  # type: ignore[type-arg]
    app = _application(api)
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=timeout)
        try:
            yield app
        finally:
            await app.updater.stop()
            await app.stop()


def _has_text(text: str) -> Callable[[SentMessage], bool]:
    return lambda message: message.text == text


async def test_echo_arrives_and_a_press_is_answered_and_edits_the_message(fake_api: FakeBotApi) -> None:
    async with _polling(fake_api):
        fake_api.push_text(USER, "hallo", first_name="Ayşe")
        echo = await fake_api.wait_for_message(USER, _has_text("Echo: hallo"), timeout=2)
        assert buttons(echo) == [("Drück mich", "press:1")]
        assert echo.reply_markup == {
            "inline_keyboard": [[{"text": "Drück mich", "callback_data": "press:1"}]]
        }

        callback_id = fake_api.press(USER, echo.message_id, "press:1")
        answer = await fake_api.wait_for_callback_answer(callback_id, timeout=2)
        edited = await fake_api.wait_for_edit(USER, echo.message_id, _has_text("pressed press:1"), timeout=2)

    assert answer.text == "ok"
    assert [a.callback_query_id for a in fake_api.answered_callbacks] == [callback_id]
    assert edited is echo
    assert edited.edits == ["pressed press:1"]
    assert edited.original_text == "Echo: hallo"
    assert edited.reply_markup is None  # editing the text without reply_markup drops the keyboard
    assert fake_api.calls("getMe")
    assert fake_api.calls("deleteWebhook")
    assert fake_api.calls("sendMessage")[0]["chat_id"] == USER


async def test_commands_carry_bot_command_entities(fake_api: FakeBotApi) -> None:
    async with _polling(fake_api):
        fake_api.push_text(USER, "/start abc")
        reply = await fake_api.wait_for_message(USER, timeout=2)
    assert reply.text == "Willkommen, args=['abc']"


async def test_long_poll_wakes_up_at_once_when_an_update_arrives(fake_api: FakeBotApi) -> None:
    async with _polling(fake_api, timeout=10):
        await asyncio.sleep(0.1)  # the updater is now inside a long poll
        loop = asyncio.get_running_loop()
        started = loop.time()
        fake_api.push_text(USER, "schnell")
        await fake_api.wait_for_message(USER, _has_text("Echo: schnell"), timeout=2)
        assert loop.time() - started < 0.5


async def test_a_duplicate_update_is_delivered_again(fake_api: FakeBotApi) -> None:
    fake_api.push_text(USER, "einmal")
    update = fake_api.pending_updates()[0]
    async with _polling(fake_api):
        await fake_api.wait_for_message(USER, _has_text("Echo: einmal"), timeout=2)
        fake_api.push_raw_update(update)
        await fake_api.wait_for_message(USER, _has_text("Echo: einmal"), timeout=2)
    assert len(fake_api.sent(USER)) == 2
    assert fake_api.pending_updates() == []


async def test_get_updates_honours_offset_limit_and_timeout(fake_api: FakeBotApi) -> None:
    async with _application(fake_api) as app:
        first = fake_api.push_text(USER, "eins")
        second = fake_api.push_text(USER, "zwei")
        assert second == first + 1
        assert [u.update_id for u in await app.bot.get_updates(limit=1, timeout=0)] == [first]
        assert [u.update_id for u in await app.bot.get_updates(timeout=0)] == [first, second]
        assert [u.update_id for u in await app.bot.get_updates(offset=second, timeout=0)] == [second]
        assert await app.bot.get_updates(offset=second + 1, timeout=0) == ()
        assert fake_api.pending_updates() == []

        loop = asyncio.get_running_loop()
        started = loop.time()
        poll = asyncio.create_task(app.bot.get_updates(offset=second + 1, timeout=5))
        await asyncio.sleep(0.05)
        third = fake_api.push_text(USER, "drei")
        updates = await poll
        assert [u.update_id for u in updates] == [third]
        assert loop.time() - started < 1

        started = loop.time()
        assert await app.bot.get_updates(offset=third + 1, timeout=1) == ()
        assert loop.time() - started >= 0.9


# RetryAfter reads its own int retry_after in __init__, which PTB 22.x flags as deprecated
@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_injected_429_raises_retry_after(fake_api: FakeBotApi) -> None:
    async with _application(fake_api) as app:
        fake_api.fail_next("sendMessage", retry_after=7)
        with pytest.raises(RetryAfter) as excinfo:
            await app.bot.send_message(USER, "zu schnell")
        retry_after = excinfo.value.retry_after  # int, or timedelta with PTB_TIMEDELTA=1
        seconds = retry_after.total_seconds() if isinstance(retry_after, timedelta) else retry_after
        assert seconds == 7

        message = await app.bot.send_message(USER, "jetzt")  # only the next call failed
        assert message.text == "jetzt"
        assert message.from_user is not None
        assert message.from_user.id == BOT_ID
        assert [m.text for m in fake_api.sent(USER)] == ["jetzt"]
        assert len(fake_api.calls("sendMessage")) == 2

        fake_api.fail_next("sendMessage", status=403)
        with pytest.raises(Forbidden, match="blocked"):
            await app.bot.send_message(USER, "weg")


async def test_over_long_text_and_bad_callback_data_get_400(fake_api: FakeBotApi) -> None:
    async with _application(fake_api) as app:
        assert app.bot.username == BOT_USERNAME
        with pytest.raises(BadRequest, match=r"(?i)message is too long"):
            await app.bot.send_message(USER, "x" * 4097)
        await app.bot.send_message(USER, "x" * 4096)

        too_long_data = InlineKeyboardMarkup([[InlineKeyboardButton("b", callback_data="d" * 65)]])
        with pytest.raises(BadRequest, match=r"(?i)button_data_invalid"):
            await app.bot.send_message(USER, "knopf", reply_markup=too_long_data)

        many = [[InlineKeyboardButton(f"{n}", callback_data=f"k:{n}")] for n in range(101)]
        with pytest.raises(BadRequest, match=r"(?i)reply markup is too long"):
            await app.bot.send_message(USER, "101 Knöpfe", reply_markup=InlineKeyboardMarkup(many))
        wide = [[InlineKeyboardButton("ä" * 60, callback_data=f"k:{n}")] for n in range(90)]
        with pytest.raises(BadRequest, match=r"(?i)reply markup is too long"):
            await app.bot.send_message(USER, "über 10 KB", reply_markup=InlineKeyboardMarkup(wide))
        await app.bot.send_message(USER, "100 Knöpfe", reply_markup=InlineKeyboardMarkup(many[:100]))

        sent = await app.bot.send_message(USER, "alt", reply_markup=KEYBOARD)
        with pytest.raises(BadRequest, match=r"(?i)message is too long"):
            await app.bot.edit_message_text("y" * 4097, chat_id=USER, message_id=sent.message_id)
        with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
            await app.bot.edit_message_text(
                "alt", chat_id=USER, message_id=sent.message_id, reply_markup=KEYBOARD
            )
        with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
            await app.bot.edit_message_text("neu", chat_id=USER, message_id=999)
    assert [m.text for m in fake_api.sent(USER)] == ["x" * 4096, "100 Knöpfe", "alt"]


async def test_commands_and_unknown_methods_are_recorded(fake_api: FakeBotApi) -> None:
    async with _application(fake_api) as app:
        await app.bot.set_my_commands([("start", "Anfangen"), ("hilfe", "Hilfe")], language_code="de")
        await app.bot.set_my_commands([("start", "Begin")])
        assert fake_api.commands("de") == [
            {"command": "start", "description": "Anfangen"},
            {"command": "hilfe", "description": "Hilfe"},
        ]
        assert [c.command for c in await app.bot.get_my_commands()] == ["start"]
        assert await app.bot.set_my_description("Dolmetscher buchen", language_code="de") is True
    assert fake_api.calls("setMyDescription") == [
        {"description": "Dolmetscher buchen", "language_code": "de"}
    ]
