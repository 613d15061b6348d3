"""A fake Telegram Bot API server on aiohttp, so tests and benchmarks can run the real PTB Application.

PTB talks to it over HTTP exactly as to api.telegram.org: configure
``base_url=api.base_url`` and ``base_file_url=api.base_url.replace("/bot", "/file/bot")``; requests
arrive as ``POST /bot<TOKEN>/<method>`` with form fields (non-string values JSON-encoded, so
``reply_markup`` is a JSON string inside a form field). All driver methods must be called on the
event loop the server runs on; waiting is event-driven (asyncio.Event), never a busy loop.
"""

import asyncio
import html
import itertools
import json
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self

from aiohttp import web

JSONDict = dict[str, Any]

TOKEN = "123456:TEST"
BOT_ID = 123456
BOT_USERNAME = "dolmetscherpool_bot"
BOT_FIRST_NAME = "Dolmetscherpool"
BOT_USER: JSONDict = {
    "id": BOT_ID,
    "is_bot": True,
    "first_name": BOT_FIRST_NAME,
    "username": BOT_USERNAME,
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}

MAX_TEXT_LENGTH = 4096
MAX_CALLBACK_DATA_BYTES = 64
MAX_BUTTONS = 100  # Telegram refuses an inline keyboard with more buttons
MAX_MARKUP_BYTES = 10 * 1024  # or a reply markup longer than this, as JSON
MARKUP_TOO_LONG = "Bad Request: reply markup is too long"
TOO_LONG = "Bad Request: message is too long"
BUTTON_DATA_INVALID = "Bad Request: BUTTON_DATA_INVALID"
TEXT_EMPTY = "Bad Request: message text is empty"
EDIT_NOT_FOUND = "Bad Request: message to edit not found"
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
BLOCKED = "Forbidden: bot was blocked by the user"

# Form fields that stay strings even when they look like JSON (PTB sends str values unencoded).
_STRING_PARAMS = frozenset(
    {
        "text",
        "caption",
        "parse_mode",
        "language_code",
        "callback_query_id",
        "inline_message_id",
        "url",
        "description",
        "short_description",
        "name",
        "title",
        "query",
        "business_connection_id",
        "message_effect_id",
        "secret_token",
        "ip_address",
        "emoji",
        "question",
        "explanation",
        "address",
        "first_name",
        "last_name",
        "phone_number",
        "vcard",
        "action",
        "custom_emoji_id",
    }
)
_COMMAND = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?")
_TAG = re.compile(r"<[^>]*>")
_TRANSCRIPT_WIDTH = 300


@dataclass
class SentMessage:
    """A message the bot sent, as the fake stores it (text and reply_markup are the current state)."""

    message_id: int
    chat_id: int
    text: str
    reply_markup: JSONDict | None = None
    edits: list[str] = field(default_factory=list)  # the text after every edit, oldest first
    original_text: str = ""
    date: int = 0
    method: str = "sendMessage"
    params: JSONDict = field(default_factory=dict)
    deleted: bool = False
    accepted_at: float = 0.0  # time.monotonic() when the fake accepted it

    @property
    def buttons(self) -> list[tuple[str, str]]:
        """The inline keyboard as (text, callback_data) pairs, row by row."""
        return buttons(self)


@dataclass(frozen=True)
class AnsweredCallback:
    """One answerCallbackQuery call."""

    callback_query_id: str
    text: str | None
    show_alert: bool
    answered_at: float = 0.0  # time.monotonic() when the fake accepted it


@dataclass
class _Pending:
    update: JSONDict
    forced: bool  # delivered at least once even if its update_id is below the confirmed offset
    delivered: bool = False

    @property
    def update_id(self) -> int:
        return int(self.update["update_id"])


@dataclass(frozen=True)
class _Failure:
    status: int
    description: str
    parameters: JSONDict | None


class _ApiError(Exception):
    def __init__(self, status: int, description: str, parameters: JSONDict | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters


class _Signal:
    """A broadcast wake-up: fire() wakes everyone currently waiting."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def fire(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout: float) -> bool:
        event = self._event
        if timeout <= 0:
            return False
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
        except TimeoutError:
            return False
        return True


def buttons(message: SentMessage) -> list[tuple[str, str]]:
    """The inline keyboard as (text, callback_data or url) pairs, row by row; [] without one."""
    markup = message.reply_markup or {}
    return [
        (str(button.get("text", "")), str(button.get("callback_data", button.get("url", ""))))
        for row in markup.get("inline_keyboard", [])
        for button in row
    ]


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _visible_length(text: str, parse_mode: str | None) -> int:
    if parse_mode is not None and parse_mode.upper() == "HTML":
        return len(html.unescape(_TAG.sub("", text)))
    return len(text)


def _decode(key: str, value: str) -> Any:
    if key in _STRING_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _as_int(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise _ApiError(400, f"Bad Request: invalid {what}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    if what == "chat_id":
        raise _ApiError(400, "Bad Request: chat not found")
    raise _ApiError(400, f"Bad Request: invalid {what}")


def _describe(status: int) -> str:
    if status == 400:
        return "Bad Request: injected error"
    if status == 403:
        return BLOCKED
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"Error {status}"


class FakeBotApi:
    """The fake Bot API server; start() it, point PTB at base_url, drive it with push_text/press."""

    def __init__(self, *, not_modified_errors: bool = True) -> None:
        self.not_modified_errors = not_modified_errors
        self.answered_callbacks: list[AnsweredCallback] = []
        self.server_errors: list[str] = []  # exceptions inside the fake itself (should stay empty)
        self.blocked: set[int] = set()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._closing = False
        self._updates: list[_Pending] = []
        self._update_counter = 1000
        self._updates_signal = _Signal()
        self._callback_counter = itertools.count(7_000_000_000_000_000_001)
        self._known_callbacks: set[str] = set()
        self._answer_signal = _Signal()
        self._next_message_id: dict[int, int] = {}
        self._sent: dict[int, list[SentMessage]] = {}
        self._by_id: dict[tuple[int, int], SentMessage] = {}
        self._seen_messages: dict[int, int] = {}
        self._seen_edits: dict[tuple[int, int], int] = {}
        self._chat_signals: dict[int, _Signal] = {}
        self._transcripts: dict[int, list[str]] = {}
        self._users: dict[int, JSONDict] = {}
        self._calls: dict[str, list[JSONDict]] = {}
        self._call_order: list[str] = []
        self._failures: dict[str, deque[_Failure]] = {}
        self._commands: dict[tuple[str, str], list[JSONDict]] = {}
        self._polling = 0  # getUpdates requests in progress
        self.conflicts = 0  # getUpdates answered 409 (another poll in progress, or a webhook set)
        self.webhook: JSONDict | None = None  # setWebhook's parameters while a webhook is set
        # (unix time, message): what getWebhookInfo reports as Telegram's last delivery error
        self.webhook_last_error: tuple[int, str] | None = None
        self._rate: tuple[int, int] | None = None  # (per second overall, per second per chat)
        self._send_times: deque[float] = deque()
        self._chat_send_times: dict[int, deque[float]] = {}
        self.rate_limited = 0  # sends answered 429 by the rate limit of `limit_rate`
        self._handlers: dict[str, Callable[[JSONDict], Awaitable[Any]]] = {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "deleteWebhook": self._delete_webhook,
            "setWebhook": self._set_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "answerCallbackQuery": self._answer_callback_query,
            "sendChatAction": self._true,
            "close": self._true,
            "logOut": self._true,
        }
        self._canonical = {name.lower(): name for name in self._handlers}

    # ---------------------------------------------------------------- lifecycle

    async def start(self, port: int = 0) -> None:
        """Bind 127.0.0.1 on `port` (a free one by default) and serve."""
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        self._runner = runner
        self._closing = False
        self._port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        """Wake every long poll and shut the server down."""
        self._closing = True
        self._updates_signal.fire()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The bound port (after start())."""
        if self._port is None:
            raise RuntimeError("FakeBotApi is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """PTB's base_url: http://127.0.0.1:PORT/bot (PTB appends the token)."""
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        """PTB's base_file_url: http://127.0.0.1:PORT/file/bot."""
        return f"http://127.0.0.1:{self.port}/file/bot"

    @property
    def token(self) -> str:
        """The only token the fake accepts."""
        return TOKEN

    # ---------------------------------------------------------------- test driver

    def push_text(
        self,
        user_id: int,
        text: str,
        *,
        first_name: str = "Test",
        language_code: str = "de",
        update_id: int | None = None,
    ) -> int:
        """Queue a private-chat text message from user_id (chat id == user id); returns its update_id."""
        user = self._user(user_id, first_name, language_code)
        message: JSONDict = {
            "message_id": self._allocate_message_id(user_id),
            "from": user,
            "chat": self._chat(user_id),
            "date": int(time.time()),
            "text": text,
        }
        entities = [
            {
                "type": "bot_command",
                "offset": _utf16_len(text[: match.start()]),
                "length": _utf16_len(match.group()),
            }
            for match in _COMMAND.finditer(text)
        ]
        if entities:
            message["entities"] = entities
        self._log(user_id, f"user: {text}")
        return self._enqueue({"message": message}, update_id)

    def press(
        self,
        user_id: int,
        message_id: int,
        data: str,
        *,
        first_name: str = "Test",
        language_code: str = "de",
        update_id: int | None = None,
        strict: bool = True,
    ) -> str:
        """Queue a button press on the bot's message in user_id's chat; returns the callback query id.

        With strict (the default) the message must exist and currently carry a button with that data.
        """
        sent = self._by_id.get((user_id, message_id))
        if strict:
            if sent is None:
                raise AssertionError(
                    f"chat {user_id} has no bot message {message_id}\n{self.transcript(user_id)}"
                )
            offered = [value for _, value in buttons(sent)]
            if data not in offered:
                raise AssertionError(
                    f"message {message_id} in chat {user_id} has no button {data!r} (has {offered})\n"
                    f"{self.transcript(user_id)}"
                )
        user = self._user(user_id, first_name, language_code)
        if sent is not None:
            message = self._message_dict(sent)
        else:  # Telegram sends an InaccessibleMessage (date 0) for messages it cannot show
            message = {"message_id": message_id, "chat": self._chat(user_id), "date": 0}
        callback_id = str(next(self._callback_counter))
        self._known_callbacks.add(callback_id)
        query = {
            "id": callback_id,
            "from": user,
            "message": message,
            "chat_instance": str(-user_id),
            "data": data,
        }
        self._log(user_id, f"user pressed #{message_id}: {data}")
        self._enqueue({"callback_query": query}, update_id)
        return callback_id

    def push_raw_update(self, update: JSONDict) -> int:
        """Queue an update as given (it is delivered even if its update_id was confirmed already)."""
        update_id = int(update["update_id"])
        query = update.get("callback_query")
        if isinstance(query, dict) and "id" in query:
            self._known_callbacks.add(str(query["id"]))
        self._update_counter = max(self._update_counter, update_id + 1)
        self._updates.append(_Pending(update=update, forced=True))
        self._updates_signal.fire()
        return update_id

    def pending_updates(self) -> list[JSONDict]:
        """Updates not yet confirmed by an offset (delivered or not)."""
        return [pending.update for pending in self._updates]

    def sent(self, chat_id: int) -> list[SentMessage]:
        """Every message the bot sent to chat_id, oldest first."""
        return list(self._sent.get(chat_id, []))

    def message(self, chat_id: int, message_id: int) -> SentMessage:
        """The bot's message message_id in chat_id (KeyError if there is none)."""
        return self._by_id[(chat_id, message_id)]

    def transcript(self, chat_id: int) -> str:
        """The chat as readable lines: user messages, presses, bot messages and edits."""
        lines = self._transcripts.get(chat_id) or ["(empty)"]
        return f"transcript of chat {chat_id}:\n  " + "\n  ".join(lines)

    def block(self, chat_id: int) -> None:
        """From now on sends and edits to chat_id fail with 403 'bot was blocked by the user'."""
        self.blocked.add(chat_id)

    def unblock(self, chat_id: int) -> None:
        """Undo block()."""
        self.blocked.discard(chat_id)

    async def wait_for_message(
        self,
        chat_id: int,
        predicate: Callable[[SentMessage], bool] | None = None,
        timeout: float = 10,
        *,
        since: int | None = None,
    ) -> SentMessage:
        """Wait for the next message to chat_id not yet returned by this method that matches predicate.

        Every chat has a cursor: a message returned here (and all before it) is not returned again.
        since (an index into sent(chat_id), e.g. len(api.sent(chat))) starts the search further on.
        """
        cursor = self._seen_messages.get(chat_id, 0)
        if since is not None:
            cursor = max(cursor, since)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            messages = self._sent.get(chat_id, [])
            for index in range(cursor, len(messages)):
                if predicate is None or predicate(messages[index]):
                    self._seen_messages[chat_id] = max(self._seen_messages.get(chat_id, 0), index + 1)
                    return messages[index]
            cursor = len(messages)
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(
                    f"no new message to chat {chat_id} matching the predicate within {timeout}s\n"
                    f"{self.transcript(chat_id)}"
                )
            await self._chat_signal(chat_id).wait(remaining)

    async def wait_for_edit(
        self,
        chat_id: int,
        message_id: int,
        predicate: Callable[[SentMessage], bool] | None = None,
        timeout: float = 10,
    ) -> SentMessage:
        """Wait for an edit of the message not yet returned by this method after which predicate holds."""
        key = (chat_id, message_id)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            sent = self._by_id.get(key)
            seen = self._seen_edits.get(key, 0)
            if sent is not None and len(sent.edits) > seen and (predicate is None or predicate(sent)):
                self._seen_edits[key] = len(sent.edits)
                return sent
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(
                    f"no edit of message {message_id} in chat {chat_id} matching the predicate "
                    f"within {timeout}s\n{self.transcript(chat_id)}"
                )
            await self._chat_signal(chat_id).wait(remaining)

    async def wait_for_callback_answer(self, callback_query_id: str, timeout: float = 10) -> AnsweredCallback:
        """Wait until the bot has answered that callback query."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for answer in self.answered_callbacks:
                if answer.callback_query_id == callback_query_id:
                    return answer
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"callback query {callback_query_id} not answered within {timeout}s")
            await self._answer_signal.wait(remaining)

    def fail_next(
        self,
        method: str,
        *,
        retry_after: int | None = None,
        status: int = 429,
        times: int = 1,
        description: str | None = None,
    ) -> None:
        """Make the next `times` calls of method fail: 429 with parameters.retry_after, or any status.

        A 429 always carries retry_after (default 1), as Telegram's do; PTB then raises RetryAfter.
        """
        parameters: JSONDict | None = None
        if status == 429 and retry_after is None:
            retry_after = 1
        if retry_after is not None:
            parameters = {"retry_after": retry_after}
        if description is None:
            description = (
                f"Too Many Requests: retry after {retry_after}" if status == 429 else _describe(status)
            )
        queue = self._failures.setdefault(self._canonical.get(method.lower(), method), deque())
        queue.extend(_Failure(status, description, parameters) for _ in range(times))

    def calls(self, method: str) -> list[JSONDict]:
        """The decoded parameters of every call of method, in order (failed calls included)."""
        return list(self._calls.get(self._canonical.get(method.lower(), method), []))

    def methods(self) -> list[str]:
        """The name of every call the fake received, in order."""
        return list(self._call_order)

    def commands(self, language_code: str | None = None, scope: JSONDict | None = None) -> list[JSONDict]:
        """The commands setMyCommands stored for that language_code and scope (default scope)."""
        return list(self._commands.get(self._commands_key(language_code, scope), []))

    # ---------------------------------------------------------------- HTTP

    async def _not_found(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != TOKEN:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        raw_method = request.match_info["method"]
        method = self._canonical.get(raw_method.lower(), raw_method)
        try:
            params = await self._params(request)
            self._calls.setdefault(method, []).append(params)
            self._call_order.append(method)
            failures = self._failures.get(method)
            if failures:
                failure = failures.popleft()
                raise _ApiError(failure.status, failure.description, failure.parameters)
            if self._rate is not None and (method.startswith("send") or method.startswith("edit")):
                self._check_rate(params)
            handler = self._handlers.get(method, self._fallback(method))
            result = await handler(params)
        except _ApiError as error:
            body: JSONDict = {"ok": False, "error_code": error.status, "description": error.description}
            if error.parameters is not None:
                body["parameters"] = error.parameters
            return web.json_response(body, status=error.status)
        except Exception as exc:  # a bug in the fake: answer like Telegram would and keep a note
            self.server_errors.append(f"{method}: {exc!r}")
            body = {"ok": False, "error_code": 500, "description": f"Internal Server Error: {exc!r}"}
            return web.json_response(body, status=500)
        return web.json_response({"ok": True, "result": result})

    async def _params(self, request: web.Request) -> JSONDict:
        params: JSONDict = {key: _decode(key, value) for key, value in request.query.items()}
        if request.content_type == "application/json":
            body = await request.read()
            if body:
                loaded = json.loads(body)
                if isinstance(loaded, dict):
                    params.update(loaded)
        elif request.can_read_body:
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, str):
                    params[key] = _decode(key, value)
                elif isinstance(value, bytes | bytearray):
                    params[key] = _decode(key, bytes(value).decode("utf-8", "replace"))
                else:  # an uploaded file
                    content = value.file.read()
                    params[key] = {
                        "filename": value.filename,
                        "content_type": value.content_type,
                        "size": len(content),
                        "content": content,
                    }
        return params

    # ---------------------------------------------------------------- methods

    async def _true(self, params: JSONDict) -> bool:
        return True

    def _fallback(self, method: str) -> Callable[[JSONDict], Awaitable[Any]]:
        if method.startswith("send") or method == "forwardMessage":

            async def send(params: JSONDict) -> JSONDict:
                return await self._send_other(method, params)

            return send
        return self._true

    async def _get_me(self, params: JSONDict) -> JSONDict:
        return dict(BOT_USER)

    async def _delete_webhook(self, params: JSONDict) -> bool:
        if params.get("drop_pending_updates") is True:
            self._updates.clear()
        self.webhook = None
        return True

    async def _set_webhook(self, params: JSONDict) -> bool:
        url = params.get("url")
        if not isinstance(url, str) or not url.startswith("https://"):
            raise _ApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        self.webhook = dict(params)
        return True

    async def _get_webhook_info(self, params: JSONDict) -> JSONDict:
        url = self.webhook.get("url", "") if self.webhook is not None else ""
        info: JSONDict = {"url": url, "has_custom_certificate": False}
        info["pending_update_count"] = len(self._updates)
        if self.webhook_last_error is not None:
            info["last_error_date"], info["last_error_message"] = self.webhook_last_error
        return info

    def limit_rate(self, *, overall: int = 30, per_chat: int = 1) -> None:
        """Answer 429 (retry_after 1) beyond `overall` sends a second, or `per_chat` a second in one chat."""
        self._rate = (overall, per_chat)

    def _check_rate(self, params: JSONDict) -> None:
        assert self._rate is not None
        overall, per_chat = self._rate
        now = time.monotonic()
        chat_id = _as_int(params.get("chat_id"), "chat_id")
        in_chat = self._chat_send_times.setdefault(chat_id, deque())
        for times in (self._send_times, in_chat):
            while times and times[0] <= now - 1.0:
                times.popleft()
        if len(self._send_times) >= overall or len(in_chat) >= per_chat:
            self.rate_limited += 1
            raise _ApiError(429, "Too Many Requests: retry after 1", {"retry_after": 1})
        self._send_times.append(now)
        in_chat.append(now)

    async def _get_updates(self, params: JSONDict) -> list[JSONDict]:
        if self.webhook is not None:
            self.conflicts += 1
            raise _ApiError(409, "Conflict: can't use getUpdates method while webhook is active")
        if self._polling:
            self.conflicts += 1
            raise _ApiError(409, "Conflict: terminated by other getUpdates request")
        self._polling += 1
        try:
            return await self._poll(params)
        finally:
            self._polling -= 1

    async def _poll(self, params: JSONDict) -> list[JSONDict]:
        offset = params.get("offset")
        if offset is not None:
            self._confirm(_as_int(offset, "offset"))
        limit = min(max(_as_int(params.get("limit", 100), "limit"), 1), 100)
        timeout = params.get("timeout", 0)
        if not isinstance(timeout, int | float) or isinstance(timeout, bool):
            raise _ApiError(400, "Bad Request: invalid timeout")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(timeout)
        while True:
            batch = sorted(self._updates, key=lambda pending: pending.update_id)[:limit]
            remaining = deadline - loop.time()
            if batch or self._closing or remaining <= 0:
                break
            await self._updates_signal.wait(remaining)
        for pending in batch:
            pending.delivered = True
        return [pending.update for pending in batch]

    def _confirm(self, offset: int) -> None:
        if offset < 0:
            del self._updates[:offset]
            return
        self._updates = [
            pending
            for pending in self._updates
            if pending.update_id >= offset or (pending.forced and not pending.delivered)
        ]

    async def _set_my_commands(self, params: JSONDict) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise _ApiError(400, "Bad Request: can't parse commands JSON object")
        key = self._commands_key(params.get("language_code"), params.get("scope"))
        self._commands[key] = [dict(command) for command in commands]
        return True

    async def _get_my_commands(self, params: JSONDict) -> list[JSONDict]:
        return self.commands(params.get("language_code"), params.get("scope"))

    async def _delete_my_commands(self, params: JSONDict) -> bool:
        self._commands.pop(self._commands_key(params.get("language_code"), params.get("scope")), None)
        return True

    async def _send_message(self, params: JSONDict) -> JSONDict:
        chat_id = self._target_chat(params)
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise _ApiError(400, TEXT_EMPTY)
        self._check_length(text, params.get("parse_mode"))
        markup = self._markup(params)
        sent = self._store(chat_id, text, markup, "sendMessage", params)
        return self._message_dict(sent)

    async def _send_other(self, method: str, params: JSONDict) -> JSONDict:
        chat_id = self._target_chat(params)
        text = params.get("text", params.get("caption", ""))
        sent = self._store(chat_id, str(text), self._markup(params), method, params)
        return self._message_dict(sent)

    async def _edit_message_text(self, params: JSONDict) -> JSONDict | bool:
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise _ApiError(400, TEXT_EMPTY)
        self._check_length(text, params.get("parse_mode"))
        markup = self._markup(params)
        if "inline_message_id" in params:
            return True
        sent = self._editable(params)
        return self._apply_edit(sent, text, markup)

    async def _edit_message_reply_markup(self, params: JSONDict) -> JSONDict | bool:
        markup = self._markup(params)
        if "inline_message_id" in params:
            return True
        sent = self._editable(params)
        return self._apply_edit(sent, sent.text, markup)

    async def _delete_message(self, params: JSONDict) -> bool:
        chat_id = _as_int(params.get("chat_id"), "chat_id")
        sent = self._by_id.get((chat_id, _as_int(params.get("message_id"), "message_id")))
        if sent is None or sent.deleted:
            raise _ApiError(400, "Bad Request: message to delete not found")
        sent.deleted = True
        self._log(chat_id, f"bot deleted #{sent.message_id}")
        self._chat_signal(chat_id).fire()
        return True

    async def _answer_callback_query(self, params: JSONDict) -> bool:
        query_id = str(params.get("callback_query_id", ""))
        if query_id not in self._known_callbacks:
            raise _ApiError(
                400, "Bad Request: query is too old and response timeout expired or query ID is invalid"
            )
        text = params.get("text")
        self.answered_callbacks.append(
            AnsweredCallback(
                callback_query_id=query_id,
                text=None if text is None else str(text),
                show_alert=params.get("show_alert") is True,
                answered_at=time.monotonic(),
            )
        )
        self._answer_signal.fire()
        return True

    # ---------------------------------------------------------------- helpers

    def _enqueue(self, payload: JSONDict, update_id: int | None) -> int:
        forced = update_id is not None
        if update_id is None:
            update_id = self._update_counter
        self._update_counter = max(self._update_counter, update_id + 1)
        self._updates.append(_Pending(update={"update_id": update_id, **payload}, forced=forced))
        self._updates_signal.fire()
        return update_id

    def _user(self, user_id: int, first_name: str, language_code: str) -> JSONDict:
        user: JSONDict = {
            "id": user_id,
            "is_bot": False,
            "first_name": first_name,
            "language_code": language_code,
        }
        self._users[user_id] = user
        return user

    def _chat(self, chat_id: int) -> JSONDict:
        chat: JSONDict = {"id": chat_id, "type": "private"}
        user = self._users.get(chat_id)
        if user is not None:
            chat["first_name"] = user["first_name"]
        return chat

    def _allocate_message_id(self, chat_id: int) -> int:
        message_id = self._next_message_id.get(chat_id, 1)
        self._next_message_id[chat_id] = message_id + 1
        return message_id

    def _chat_signal(self, chat_id: int) -> _Signal:
        signal = self._chat_signals.get(chat_id)
        if signal is None:
            signal = self._chat_signals[chat_id] = _Signal()
        return signal

    def _log(self, chat_id: int, line: str) -> None:
        if len(line) > _TRANSCRIPT_WIDTH:
            line = f"{line[: _TRANSCRIPT_WIDTH - 20]}… ({len(line)} chars)"
        self._transcripts.setdefault(chat_id, []).append(line)

    def _target_chat(self, params: JSONDict) -> int:
        chat_id = _as_int(params.get("chat_id"), "chat_id")
        if chat_id in self.blocked:
            raise _ApiError(403, BLOCKED)
        return chat_id

    def _check_length(self, text: str, parse_mode: Any) -> None:
        if _visible_length(text, parse_mode if isinstance(parse_mode, str) else None) > MAX_TEXT_LENGTH:
            raise _ApiError(400, TOO_LONG)

    def _markup(self, params: JSONDict) -> JSONDict | None:
        markup = params.get("reply_markup")
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise _ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
        count = sum(len(row) for row in markup.get("inline_keyboard", []))
        size = len(json.dumps(markup, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
        if count > MAX_BUTTONS or size > MAX_MARKUP_BYTES:
            raise _ApiError(400, MARKUP_TOO_LONG)
        for row in markup.get("inline_keyboard", []):
            for button in row:
                data = button.get("callback_data")
                if data is None:
                    continue
                size = len(str(data).encode("utf-8"))
                if not 1 <= size <= MAX_CALLBACK_DATA_BYTES:
                    raise _ApiError(400, BUTTON_DATA_INVALID)
        return markup

    def _store(
        self, chat_id: int, text: str, markup: JSONDict | None, method: str, params: JSONDict
    ) -> SentMessage:
        sent = SentMessage(
            message_id=self._allocate_message_id(chat_id),
            chat_id=chat_id,
            text=text,
            reply_markup=markup,
            original_text=text,
            date=int(time.time()),
            method=method,
            params=params,
            accepted_at=time.monotonic(),
        )
        self._sent.setdefault(chat_id, []).append(sent)
        self._by_id[(chat_id, sent.message_id)] = sent
        kind = "" if method == "sendMessage" else f" ({method})"
        self._log(chat_id, f"bot #{sent.message_id}{kind}: {text}{self._keyboard_note(sent)}")
        self._chat_signal(chat_id).fire()
        return sent

    def _editable(self, params: JSONDict) -> SentMessage:
        chat_id = self._target_chat(params)
        sent = self._by_id.get((chat_id, _as_int(params.get("message_id"), "message_id")))
        if sent is None or sent.deleted:
            raise _ApiError(400, EDIT_NOT_FOUND)
        return sent

    def _apply_edit(self, sent: SentMessage, text: str, markup: JSONDict | None) -> JSONDict:
        if self.not_modified_errors and text == sent.text and markup == sent.reply_markup:
            raise _ApiError(400, NOT_MODIFIED)
        sent.text = text
        sent.reply_markup = markup
        sent.edits.append(text)
        self._log(sent.chat_id, f"bot edited #{sent.message_id}: {text}{self._keyboard_note(sent)}")
        self._chat_signal(sent.chat_id).fire()
        return self._message_dict(sent)

    @staticmethod
    def _keyboard_note(sent: SentMessage) -> str:
        pairs = buttons(sent)
        return f"  [{' | '.join(f'{text}={data}' for text, data in pairs)}]" if pairs else ""

    def _message_dict(self, sent: SentMessage) -> JSONDict:
        message: JSONDict = {
            "message_id": sent.message_id,
            "from": dict(BOT_USER),
            "chat": self._chat(sent.chat_id),
            "date": sent.date,
        }
        if sent.text:
            message["text" if sent.method in ("sendMessage", "forwardMessage") else "caption"] = sent.text
        if sent.edits:
            message["edit_date"] = int(time.time())
        if sent.reply_markup is not None and "inline_keyboard" in sent.reply_markup:
            message["reply_markup"] = sent.reply_markup
        return message

    @staticmethod
    def _commands_key(language_code: Any, scope: Any) -> tuple[str, str]:
        scope = scope if isinstance(scope, dict) else {"type": "default"}
        return (str(language_code or ""), json.dumps(scope, sort_keys=True))
