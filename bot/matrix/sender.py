"""Putting replies into Matrix rooms: transaction ids that survive retries, 429s sorted for delivery.

A send names its transaction id after the message's key, so when a send is retried (after a
timeout, a 429 or a restart) the homeserver recognises it and does not post the message twice.
Encrypted rooms are handled by nio: it shares the room key with the person's devices first.
"""

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from nio import AsyncClient, ErrorResponse, LocalProtocolError, RoomSendResponse

from bot.conversation.messages import Reply, split_text
from bot.delivery import RetryLater, Undeliverable
from bot.matrix.formatting import edit_content, message_content

log = logging.getLogger(__name__)
MAX_TEXT = 16000  # well below the 64 KiB event limit, HTML body included
GONE = {"M_FORBIDDEN", "M_NOT_FOUND", "M_UNKNOWN_TOKEN"}
WAIT_FOR_LIMIT_TIMES = 5  # direct replies wait out this many 429s before giving up


def transaction_id(key: str) -> str:
    """A stable transaction id for a message key (the key itself may hold any characters)."""
    return "dp-" + hashlib.sha256(key.encode()).hexdigest()[:32]


class MatrixSender:
    """The delivery's sender for Matrix; also used for the transport's direct replies.

    `reopen(room_id)` is asked for a new direct room when the person's room is gone; it returns
    the new room's id or None when there is nobody to reach.
    """

    def __init__(self, client: AsyncClient, reopen: Callable[[str], Awaitable[str | None]]) -> None:
        self.client = client
        self.reopen = reopen

    def usable(self, room_id: str) -> bool:
        """The bot is in the room and someone else is in it or invited to it."""
        room = self.client.rooms.get(room_id)
        if room is None or self.client.user_id not in room.users:
            return False
        return any(user != self.client.user_id for user in room.users)

    async def send(
        self, chat_id: str, reply: Reply, *, key: str | None = None, wait_on_limit: bool = False
    ) -> str:
        """Send `reply` (split when very long); returns the last event id."""
        room_id = chat_id
        if not self.usable(room_id):
            reopened = await self.reopen(room_id)
            if reopened is None:
                raise Undeliverable("no room")
            room_id = reopened
        parts = split_text(reply.text, MAX_TEXT)
        event_id = ""
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            content = message_content(Reply(part, reply.choices if last else ()))
            part_key = f"{key}/{index}" if key is not None else None
            event_id = await self._put(room_id, content, part_key, wait_on_limit=wait_on_limit)
        return event_id

    async def edit(self, chat_id: str, message_id: str, reply: Reply, *, key: str | None = None) -> None:
        """Replace an earlier message (an offer that someone else took)."""
        if not self.usable(chat_id):
            raise Undeliverable("no room")
        edit_key = f"{key}/edit" if key is not None else None
        await self._put(chat_id, edit_content(message_id, reply), edit_key, wait_on_limit=False)

    async def _put(
        self, room_id: str, content: dict[str, Any], key: str | None, *, wait_on_limit: bool
    ) -> str:
        tx_id = transaction_id(key) if key is not None else None
        for _ in range(WAIT_FOR_LIMIT_TIMES):
            try:
                response = await self.client.room_send(
                    room_id, "m.room.message", content, tx_id=tx_id, ignore_unverified_devices=True
                )
            except LocalProtocolError as exc:
                raise Undeliverable("room unknown") from exc
            if isinstance(response, RoomSendResponse):
                return str(response.event_id)
            assert isinstance(response, ErrorResponse)
            if response.status_code == "M_LIMIT_EXCEEDED":
                seconds = (response.retry_after_ms or 5000) / 1000
                if not wait_on_limit:
                    raise RetryLater(seconds)
                log.info("Matrix rate limit: waiting %.1fs before the same send", seconds)
                await asyncio.sleep(seconds)
                continue
            if response.status_code in GONE:
                raise Undeliverable(str(response.status_code))
            raise RuntimeError(f"Matrix send failed: {response.status_code}")
        raise RetryLater(5)
