"""Putting replies into Telegram chats: inline buttons, long texts split, errors sorted for retrying."""

import json
import logging
import warnings
from datetime import timedelta

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputFile
from telegram.error import BadRequest, ChatMigrated, Forbidden, RetryAfter

from bot.delivery import RetryLater, Undeliverable
from bot.messages import Reply, split_text

MAX_TEXT = 4096
MAX_BUTTONS = 100
MAX_MARKUP = 10_000  # bytes of reply_markup JSON
log = logging.getLogger(__name__)


def keyboard(reply: Reply) -> InlineKeyboardMarkup | None:
    """One button per row, so long labels stay readable on a phone.

    Telegram refuses a keyboard of more than 100 buttons or 10 KB, and the message with it; the
    lists page so that this never happens, but should one grow too big after all, the text goes
    without its buttons (they are numbered in it, so typing the number still works).
    """
    if not reply.choices:
        return None
    markup = InlineKeyboardMarkup(
        [[InlineKeyboardButton(c.label, callback_data=c.key)] for c in reply.choices]
    )
    if len(reply.choices) > MAX_BUTTONS or len(json.dumps(markup.to_dict()).encode()) > MAX_MARKUP:
        log.warning("a keyboard of %s buttons is too big for Telegram; sent without it", len(reply.choices))
        return None
    return markup


def _seconds(exc: RetryAfter) -> float:
    # PTB 22 warns that `retry_after` turns from int into timedelta; either is fine here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value: int | timedelta = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class TelegramSender:
    """The delivery's sender for Telegram; also used for direct replies."""

    max_text = MAX_TEXT

    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    async def send(self, chat_id: str, reply: Reply, *, key: str | None = None) -> str:
        """Send `reply` (split at 4096 characters, buttons with the last part; without text only the file)."""
        parts = split_text(reply.text, MAX_TEXT) if reply.text else []
        message_id = ""
        try:
            for index, part in enumerate(parts):
                markup = keyboard(reply) if index == len(parts) - 1 else None
                sent = await self.bot.send_message(chat_id=int(chat_id), text=part, reply_markup=markup)
                message_id = str(sent.message_id)
            file_id = await self._send_file(chat_id, reply)
            message_id = message_id or file_id
        except RetryAfter as exc:
            raise RetryLater(_seconds(exc)) from exc
        except (Forbidden, ChatMigrated) as exc:
            raise Undeliverable(type(exc).__name__) from exc
        except BadRequest as exc:
            if "chat not found" in exc.message.lower():
                raise Undeliverable("chat not found") from exc
            raise
        return message_id

    async def _send_file(self, chat_id: str, reply: Reply) -> str:
        if reply.attachment is None:
            return ""
        file = InputFile(reply.attachment.data, filename=reply.attachment.filename)
        if reply.attachment.mime_type.startswith("image/"):  # a chart shows as a picture in the chat
            sent = await self.bot.send_photo(chat_id=int(chat_id), photo=file)
        else:
            sent = await self.bot.send_document(chat_id=int(chat_id), document=file)
        return str(sent.message_id)

    async def edit(self, chat_id: str, message_id: str, reply: Reply, *, key: str | None = None) -> None:
        """Replace an earlier message's text and buttons (an offer that someone else took)."""
        try:
            await self.bot.edit_message_text(
                chat_id=int(chat_id),
                message_id=int(message_id),
                text=reply.text[:MAX_TEXT],
                reply_markup=keyboard(reply),
            )
        except RetryAfter as exc:
            raise RetryLater(_seconds(exc)) from exc
        except BadRequest as exc:
            if "not modified" not in exc.message.lower():
                raise Undeliverable("edit refused") from exc
        except Forbidden as exc:
            raise Undeliverable(type(exc).__name__) from exc
        if reply.attachment is not None:  # a file cannot be edited in: it follows as a message
            await self._send_file(chat_id, reply)
