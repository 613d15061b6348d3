"""The Telegram bot: updates by long polling or by webhook; it only translates to and from neutral events.

Nothing is confirmed to Telegram before it is saved. With long polling, the next getUpdates
offset (which is what tells Telegram an update arrived) moves past a batch only once every
update in it has been handled and committed; with a webhook, the answer to Telegram's POST is
200 only after the commit, so Telegram delivers again otherwise. The update id is recorded with
the update's effects, so a redelivered update does nothing. The answers themselves are stored
with the effects and go out through the process's one paced sender.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine
from sqlalchemy.exc import InterfaceError, OperationalError
from telegram import BotCommand, Update
from telegram.error import InvalidToken
from telegram.ext import Application

from bot.backoff import Backoff
from bot.db_thread import database_thread, run_in
from bot.i18n import DEFAULT_LOCALE, LOCALES, Translator
from bot.liveness import Liveness
from bot.messages import Incoming, Reply
from bot.process import Outlet
from services.errors import InvalidInput
from services.text import N_

if TYPE_CHECKING:  # aiohttp (about 0.1-0.2 s of a start) is imported only for webhook mode
    from aiohttp import web

    from bot.conversation.router import Conversation
    from bot.telegram.sender import TelegramSender

PLATFORM = "telegram"
OFFICIAL_API = "https://api.telegram.org/bot"
ALLOWED_UPDATES = ["message", "callback_query"]
HANDLER_THREADS = 6  # updates handled at once on PostgreSQL
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 (a header name, not a secret)
ACKNOWLEDGE_WITHIN = 0.2  # seconds a pressed button may spin before it is answered anyway
WEBHOOK_CHECK = 60.0  # seconds between the leader's getWebhookInfo, its sign of life in webhook mode
log = logging.getLogger(__name__)


class Unsaved(Exception):
    """The database could not take an update just now: it must not be confirmed to Telegram."""


@dataclass(frozen=True)
class Webhook:
    """Webhook mode: Telegram POSTs updates to `url`; this process listens on `host:port` behind a proxy."""

    url: str
    secret: str
    host: str
    port: int


def all_commands(locale: str) -> list[BotCommand]:
    """Every role's commands with their help text in `locale` (Telegram shows one menu to all)."""
    from bot.conversation.router import FEATURES, command_list

    t = Translator(locale)
    seen: dict[str, str] = {}
    for role in FEATURES:
        for name, text in command_list(role):
            seen.setdefault(name, t.gettext(text))
    return [BotCommand(name, text) for name, text in seen.items()]


class TelegramBot:
    """The Telegram transport: takes updates (polling when it leads, or webhook POSTs) and hands them on."""

    platform = PLATFORM
    waits_until_ready = True  # `take` holds every update until `Outlet.ready` (bot/process.py)

    def __init__(
        self,
        *,
        token: str,
        engine: Engine,
        base_url: str = OFFICIAL_API,
        clock: Callable[[], datetime] | None = None,
        poll_timeout: float = 30,
        webhook: Webhook | None = None,
        webhook_check: float = WEBHOOK_CHECK,
    ) -> None:
        self._engine, self._clock = engine, clock
        self._conversation: Conversation | None = None  # built by `prepare` (or on first use)
        self._sender: TelegramSender | None = None
        builder = Application.builder().token(token).base_url(base_url)
        self.app = builder.base_file_url(base_url.replace("/bot", "/file/bot")).build()
        self.bot = self.app.bot
        self.poll_timeout = poll_timeout
        self.webhook = webhook
        self.webhook_check = webhook_check
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._outlet: Outlet | None = None
        self._acknowledging: set[asyncio.Task[None]] = set()
        self._polling: asyncio.Task[None] | None = None  # getUpdates, or getWebhookInfo in webhook mode
        self._stopping = False
        self._runner: web.AppRunner | None = None
        self._unreachable = Backoff(log, "Telegram cannot be reached")
        self._handlers = database_thread(engine, workers=HANDLER_THREADS, name="telegram-handler")

    @property
    def conversation(self) -> Conversation:
        if self._conversation is None:
            from bot.conversation.router import Conversation

            self._conversation = Conversation(self._engine, self._clock)
        return self._conversation

    @property
    def sender(self) -> TelegramSender:
        if self._sender is None:
            from bot.telegram.sender import TelegramSender

            self._sender = TelegramSender(self.bot)
        return self._sender

    def prepare(self) -> None:
        """Import and build the conversation and the sender (the process runs this in a thread
        while polling has begun; no update is handled before it is done)."""
        self.conversation, self.sender  # noqa: B018

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self, outlet: Outlet) -> None:
        """What every process does: reach Telegram (retrying until it answers) and, with a webhook, listen."""
        self._outlet = outlet
        self._stopping = False
        try:
            await self._retrying(self.app.initialize)
        except InvalidToken as exc:  # no retry can help: whoever started the bot must fix it
            raise InvalidInput(N_("Telegram refused the bot token (TELEGRAM_TOKEN).")) from exc
        if self.webhook is not None:
            await self._listen(self.webhook)

    async def lead(self) -> None:
        """What only the leading process does: the polling or the webhook's setup, and the command menu.

        Polling begins first: updates are held until the process is ready (`take`), and the menu's
        texts are worked out meanwhile."""
        self._liveness().watch(PLATFORM)
        if self.webhook is None:
            await self._retrying(lambda: self.bot.delete_webhook(drop_pending_updates=False))
            self._polling = asyncio.create_task(self._poll_forever())
        else:
            webhook = self.webhook
            await self._retrying(
                lambda: self.bot.set_webhook(
                    webhook.url, secret_token=webhook.secret, allowed_updates=ALLOWED_UPDATES
                )
            )
            self._polling = asyncio.create_task(self._check_webhook_forever())
        await self._retrying(self.register_commands)

    async def unlead(self) -> None:
        """Stop polling (another process leads now, or this one stops)."""
        if self._polling is not None:
            self._polling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._polling
            self._polling = None
        if self._outlet is not None:
            self._outlet.liveness.unwatch(PLATFORM)

    def _liveness(self) -> Liveness:
        assert self._outlet is not None, "started before it leads"
        return self._outlet.liveness

    async def stop(self) -> None:
        self._stopping = True
        await self.unlead()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.app._initialized:
            await self.app.shutdown()

    async def register_commands(self) -> None:
        """The command menu in each language; German for everyone else."""
        # In a thread: the first call imports the conversation layer while the loop polls.
        menus = await asyncio.to_thread(
            lambda: {locale: all_commands(locale) for locale in {*LOCALES, DEFAULT_LOCALE}}
        )
        for locale in LOCALES:
            await self.bot.set_my_commands(menus[locale], language_code=locale)
        await self.bot.set_my_commands(menus[DEFAULT_LOCALE])

    async def _retrying(self, call: Callable[[], Awaitable[object]]) -> None:
        """Call until Telegram answers, with growing pauses; a refused token is not worth retrying."""
        while not self._stopping:
            try:
                await call()
                self._unreachable.succeeded()
                self._liveness().reached(PLATFORM)
                return
            except InvalidToken:
                raise
            except Exception as exc:
                self._liveness().missed(PLATFORM)
                await self._unreachable.failed(exc)

    # --- long polling ---------------------------------------------------------------------------

    async def _poll_forever(self) -> None:
        """getUpdates, handle the batch to the end, and only then move the offset past it."""
        offset: int | None = None
        interrupted = Backoff(log, "Telegram polling interrupted")
        liveness = self._liveness()
        while not self._stopping:
            try:
                try:
                    updates = await self.bot.get_updates(
                        offset=offset, timeout=int(self.poll_timeout), allowed_updates=ALLOWED_UPDATES
                    )
                except Exception:
                    liveness.missed(PLATFORM)
                    raise
                liveness.reached(PLATFORM)
                if updates:
                    results = await asyncio.gather(*(self.take(u) for u in updates), return_exceptions=True)
                    failed = [r for r in results if isinstance(r, BaseException)]
                    if failed:
                        raise failed[0]
                    offset = updates[-1].update_id + 1
                interrupted.succeeded()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Telegram or the database is away: the batch is asked for again, nothing confirmed.
                await interrupted.failed(exc)

    # --- webhook --------------------------------------------------------------------------------

    async def _check_webhook_forever(self) -> None:
        """Webhook mode has no polls: the leader asks Telegram about the webhook now and then instead."""
        liveness = self._liveness()
        while not self._stopping:
            try:
                await self.bot.get_webhook_info()
                liveness.reached(PLATFORM)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                liveness.missed(PLATFORM)
                log.info("Telegram's webhook state could not be read (%s)", type(exc).__name__)
            await asyncio.sleep(self.webhook_check)

    async def _listen(self, webhook: Webhook) -> None:
        from aiohttp import web

        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_post("/{tail:.*}", self._on_post)
        self._runner = web.AppRunner(app, access_log=None)  # access lines would carry nothing useful
        await self._runner.setup()
        await web.TCPSite(self._runner, webhook.host, webhook.port).start()
        log.info("Telegram webhook listening on %s:%s", webhook.host, webhook.port)

    async def _on_post(self, request: web.Request) -> web.Response:
        """Take one update from Telegram; 200 only once it is saved, so Telegram retries otherwise."""
        from aiohttp import web

        assert self.webhook is not None
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.webhook.secret.encode()):
            log.warning("webhook POST without the right secret refused")
            return web.Response(status=403)
        self._liveness().reached(PLATFORM)  # Telegram itself reached this process
        try:
            data = json.loads(await request.read())
            update = Update.de_json(data, self.bot)
        except Exception:
            log.warning("webhook POST with a body that is no update refused")
            return web.Response(status=400)
        try:
            await self.take(update)
        except Unsaved:
            return web.Response(status=503)
        return web.Response(status=200)

    # --- one update -----------------------------------------------------------------------------

    async def take(self, update: Update) -> None:
        """Handle one update to its commit; raises `Unsaved` when the database could not take it."""
        incoming = self._incoming(update)
        if incoming is None:
            return
        answered: asyncio.Future[asyncio.Event | None] = asyncio.get_running_loop().create_future()
        if update.callback_query is not None:  # the button stops spinning right after the answer
            acknowledged = asyncio.create_task(self._answer_callback(update, answered))
            self._acknowledging.add(acknowledged)
            acknowledged.add_done_callback(self._acknowledging.discard)
        try:
            answered.set_result(await self._take(update, incoming))
        finally:
            if not answered.done():
                answered.set_result(None)

    async def _take(self, update: Update, incoming: Incoming) -> asyncio.Event | None:
        """The handling in order per user; an event set once the first answer was tried, if pushed."""
        tried = None
        async with self._locks[incoming.user_id]:  # one user's events in order; different users in parallel
            outlet = self._outlet
            assert outlet is not None
            if not outlet.ready.is_set():  # polling began before the process was prepared: hold it
                await outlet.ready.wait()
            try:
                handled = await run_in(self._handlers, self.conversation.handle_stored, incoming)
            except (OperationalError, InterfaceError) as exc:  # the database is away, not the update bad
                raise Unsaved(type(exc).__name__) from exc
            except Exception:
                log.exception("update %s failed", update.update_id)
                await self._apologise(update, incoming)
                return None
            if handled.answers or handled.notices:
                tried = outlet.push(incoming.chat_id, handled.answers, handled.notices)
            outlet.wake(quiet=handled.quiet)
            for reply in handled.direct:  # a stranger's replies are not stored
                try:
                    await outlet.say(incoming.chat_id, reply)
                except Exception as exc:
                    log.warning("a reply to a stranger could not be sent (%s)", type(exc).__name__)
        return tried

    async def _answer_callback(self, update: Update, answered: asyncio.Future[asyncio.Event | None]) -> None:
        """Stop the button's spinner: right after the press's answer went out, or after
        `ACKNOWLEDGE_WITHIN` if that takes longer. Sent beside the handling or the answer, its
        request would take turns with them for the event loop and the interpreter (the GIL)."""
        assert update.callback_query is not None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(ACKNOWLEDGE_WITHIN):
                tried = await asyncio.shield(answered)
                if tried is not None:
                    await tried.wait()
        try:
            await update.callback_query.answer()
        except Exception as exc:
            log.info("a button press could not be acknowledged (%s)", type(exc).__name__)

    @staticmethod
    def _incoming(update: Update) -> Incoming | None:
        message, query = update.message, update.callback_query
        if message is not None and message.text is not None and message.from_user is not None:
            if message.chat.type != "private":
                return None
            return Incoming(
                PLATFORM,
                str(message.from_user.id),
                str(message.chat_id),
                text=message.text,
                event_key=f"update:{update.update_id}",
                language_hint=message.from_user.language_code,
            )
        if query is not None and query.message is not None:
            return Incoming(
                PLATFORM,
                str(query.from_user.id),
                str(query.message.chat.id),
                choice=query.data or "",
                event_key=f"update:{update.update_id}",
                language_hint=query.from_user.language_code,
            )
        return None

    async def _apologise(self, update: Update, incoming: Incoming) -> None:
        """A failing handler: the traceback is logged (never the text); the person hears something neutral."""
        try:
            locale = await asyncio.to_thread(
                self.conversation.locale_of, PLATFORM, incoming.user_id, incoming.language_hint
            )
            text = Translator(locale).gettext(
                "Sorry, something went wrong on our side. Please try again in a moment."
            )
            assert self._outlet is not None
            await self._outlet.say(incoming.chat_id, Reply(text))
        except Exception:
            log.warning("could not tell chat about the failure of update %s", update.update_id)
