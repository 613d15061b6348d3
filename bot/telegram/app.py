"""The Telegram bot: PTB's Application, long polling; handlers only translate to and from neutral events."""

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.engine import Engine
from telegram import BotCommand, Update
from telegram.ext import Application, CallbackQueryHandler, ContextTypes, MessageHandler, filters

from bot.conversation.messages import Incoming
from bot.conversation.router import FEATURES, Conversation, command_list
from bot.i18n import DEFAULT_LOCALE, LOCALES, Translator
from bot.telegram.sender import TelegramSender

PLATFORM = "telegram"
OFFICIAL_API = "https://api.telegram.org/bot"
log = logging.getLogger(__name__)


def all_commands(locale: str) -> list[BotCommand]:
    """Every role's commands with their help text in `locale` (Telegram shows one menu to all)."""
    t = Translator(locale)
    seen: dict[str, str] = {}
    for role in FEATURES:
        for name, text in command_list(role):
            seen.setdefault(name, t.gettext(text))
    return [BotCommand(name, text) for name, text in seen.items()]


class TelegramBot:
    """The Telegram transport: receives updates by long polling and answers through the conversation."""

    platform = PLATFORM

    def __init__(
        self,
        *,
        token: str,
        engine: Engine,
        base_url: str = OFFICIAL_API,
        clock: Callable[[], datetime] | None = None,
        poll_timeout: float = 30,
    ) -> None:
        self.engine = engine
        self.conversation = Conversation(engine, clock)
        builder = Application.builder().token(token).base_url(base_url).concurrent_updates(True)
        self.app = builder.base_file_url(base_url.replace("/bot", "/file/bot")).build()
        self.sender = TelegramSender(self.app.bot)
        self.poll_timeout = poll_timeout
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._wake: Callable[[], None] = lambda: None
        private = filters.ChatType.PRIVATE
        self.app.add_handler(MessageHandler(private & filters.TEXT, self.on_text))
        self.app.add_handler(CallbackQueryHandler(self.on_button))
        self.app.add_error_handler(self.on_error)

    async def start(self, wake: Callable[[], None]) -> None:
        self._wake = wake
        await self.app.initialize()
        await self.register_commands()
        await self.app.start()
        assert self.app.updater is not None
        await self.app.updater.start_polling(poll_interval=0, timeout=int(self.poll_timeout))

    async def stop(self) -> None:
        assert self.app.updater is not None
        if self.app.updater.running:
            await self.app.updater.stop()
        if self.app.running:
            await self.app.stop()
        await self.app.shutdown()

    async def register_commands(self) -> None:
        """The command menu in each language; German for everyone else."""
        for locale in LOCALES:
            await self.app.bot.set_my_commands(all_commands(locale), language_code=locale)
        await self.app.bot.set_my_commands(all_commands(DEFAULT_LOCALE))

    async def _handle(self, incoming: Incoming) -> None:
        async with self._locks[incoming.user_id]:  # one user's events in order; different users in parallel
            replies = await asyncio.to_thread(self.conversation.handle, incoming)
            try:
                for reply in replies:
                    await self.sender.send(incoming.chat_id, reply)
            except Exception:
                # What the person asked for is saved; an apology would invite them to do it twice.
                log.exception("the answer to %s could not be sent", incoming.event_key)
            finally:
                self._wake()  # after the answer, so the notifications it caused come after it

    async def on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Pass a text message on to the conversation."""
        message, user = update.effective_message, update.effective_user
        if message is None or user is None or message.text is None:
            return
        await self._handle(
            Incoming(
                PLATFORM,
                str(user.id),
                str(message.chat_id),
                text=message.text,
                event_key=f"update:{update.update_id}",
                language_hint=user.language_code,
            )
        )

    async def on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Answer the button press at once, then pass the choice on."""
        query = update.callback_query
        if query is None or query.message is None:
            return
        await query.answer()
        await self._handle(
            Incoming(
                PLATFORM,
                str(query.from_user.id),
                str(query.message.chat.id),
                choice=query.data or "",
                event_key=f"update:{update.update_id}",
                language_hint=query.from_user.language_code,
            )
        )

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Log the failure with its traceback (never the message text) and tell the user something neutral."""
        update_id = update.update_id if isinstance(update, Update) else None
        log.error("update %s failed", update_id, exc_info=context.error)
        if not isinstance(update, Update) or update.effective_chat is None or update.effective_user is None:
            return
        locale = await asyncio.to_thread(
            self.conversation.locale_of,
            PLATFORM,
            str(update.effective_user.id),
            update.effective_user.language_code,
        )
        text = Translator(locale).gettext(
            "Sorry, something went wrong on our side. Please try again in a moment."
        )
        try:
            await self.app.bot.send_message(chat_id=update.effective_chat.id, text=text)
        except Exception:
            log.warning("could not tell chat about the failure of update %s", update_id)
