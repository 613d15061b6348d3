"""Putting replies into Matrix rooms: transaction ids that survive retries, 429s sorted for delivery.

A send names its transaction id after the message's key, so when a send is retried (after a
timeout, a 429 or a restart) the homeserver recognises it and does not post the message twice.
Encrypted rooms are handled by nio: it shares the room key with the person's devices first.
"""

import asyncio
import hashlib
import io
import logging
import struct
from collections.abc import Awaitable, Callable
from typing import Any

from nio import (
    AsyncClient,
    ErrorResponse,
    LocalProtocolError,
    MembersSyncError,
    RoomSendResponse,
    SendRetryError,
    UploadResponse,
)

from bot.delivery import RetryLater, Undeliverable
from bot.matrix.formatting import edit_content, message_content
from bot.messages import Attachment, Reply, split_text

log = logging.getLogger(__name__)
MAX_TEXT = 16000  # well below the 64 KiB event limit, HTML body included
GONE = {"M_FORBIDDEN", "M_NOT_FOUND"}  # the bot is not (or no longer) in the room
WAIT_FOR_LIMIT_TIMES = 5  # direct replies wait out this many 429s before giving up


def transaction_id(key: str) -> str:
    """A stable transaction id for a message key (the key itself may hold any characters)."""
    return "dp-" + hashlib.sha256(key.encode()).hexdigest()[:32]


class MatrixSender:
    """The delivery's sender for Matrix; also used for the transport's direct replies.

    `reopen(room_id)` is asked for a new direct room when the person's room is gone (or has
    become a group); it returns the new room's id or None when there is nobody to reach. A
    message id is `ROOM_ID|EVENT_ID`, because an edit is only valid in the message's own room.
    """

    max_text = MAX_TEXT

    def __init__(
        self,
        client: AsyncClient,
        reopen: Callable[[str], Awaitable[str | None]],
        may_reach: Callable[[str], bool] = lambda _user_id: True,
    ) -> None:
        self.client = client
        self.reopen = reopen
        self.may_reach = may_reach  # MATRIX_ALLOWED_SERVERS: nothing goes to a person on another server
        self.moved: dict[str, str] = {}  # old room -> the room opened instead (for this run's queue)

    def usable(self, room_id: str) -> bool:
        """The bot is in the room with exactly one other person (joined or invited): a direct room."""
        room = self.client.rooms.get(room_id)
        if room is None or self.client.user_id not in room.users:
            return False
        return len([user for user in room.users if user != self.client.user_id]) == 1

    async def send(self, chat_id: str, reply: Reply, *, key: str | None = None, direct: bool = False) -> str:
        """Send `reply` (split when very long); returns the last message's id.

        `direct` is for answers to an event: they go to that event's room as it is, wait out a
        rate limit, and never open a room (which would wait for the sync that is answering).
        """
        room_id = self.moved.get(chat_id, chat_id)
        if not direct and not self.usable(room_id):
            reopened = await self.reopen(room_id)
            if reopened is None:
                raise Undeliverable("no room")
            self.moved[chat_id] = room_id = reopened
        if not direct:
            self._refuse_other_servers(room_id)
        parts = split_text(reply.text, MAX_TEXT) if reply.text else []
        event_id = ""
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            content = message_content(Reply(part, reply.choices if last else ()))
            part_key = f"{key}/{index}" if key is not None else None
            event_id = await self._put(room_id, content, part_key, wait_on_limit=direct)
        if reply.attachment is not None:
            file_key = f"{key}/file" if key is not None else None
            file_event = await self._put(
                room_id, await self._file_content(room_id, reply.attachment), file_key, wait_on_limit=direct
            )
            event_id = event_id or file_event
        return f"{room_id}|{event_id}"

    def _refuse_other_servers(self, room_id: str) -> None:
        """Nothing goes to a person on a server not on MATRIX_ALLOWED_SERVERS (linked before the list)."""
        room = self.client.rooms.get(room_id)
        others = [] if room is None else [user for user in room.users if user != self.client.user_id]
        if not all(self.may_reach(user) for user in others):
            raise Undeliverable("server not on MATRIX_ALLOWED_SERVERS")

    async def _file_content(self, room_id: str, attachment: Attachment) -> dict[str, Any]:
        """Upload the file (encrypted for an encrypted room) and describe it as an `m.file` message
        (`m.image` for a picture, which clients show inline)."""
        room = self.client.rooms.get(room_id)
        encrypted = bool(room is not None and room.encrypted)
        response, keys = await self.client.upload(
            io.BytesIO(attachment.data),
            content_type=attachment.mime_type,
            filename=attachment.filename,
            encrypt=encrypted,
            filesize=len(attachment.data),
        )
        if not isinstance(response, UploadResponse):
            raise RuntimeError(f"Matrix upload failed: {getattr(response, 'status_code', '?')}")
        content: dict[str, Any] = {
            "msgtype": "m.image" if attachment.mime_type.startswith("image/") else "m.file",
            "body": attachment.filename,
            "filename": attachment.filename,
            "info": {"mimetype": attachment.mime_type, "size": len(attachment.data), **_png_size(attachment)},
        }
        if encrypted:
            content["file"] = {"url": response.content_uri, **(keys or {})}
        else:
            content["url"] = response.content_uri
        return content

    async def edit(self, chat_id: str, message_id: str, reply: Reply, *, key: str | None = None) -> None:
        """Replace an earlier message (an offer that someone else took); elsewhere a new message goes out."""
        room_id, _, event_id = message_id.rpartition("|")
        if room_id != self.moved.get(chat_id, chat_id) or not self.usable(room_id):
            raise Undeliverable("the message is in another room")
        self._refuse_other_servers(room_id)
        edit_key = f"{key}/edit" if key is not None else None
        await self._put(room_id, edit_content(event_id, reply), edit_key, wait_on_limit=False)
        if reply.attachment is not None:  # a file cannot be edited in: it follows as a message
            file_key = f"{key}/edit-file" if key is not None else None
            await self._put(
                room_id, await self._file_content(room_id, reply.attachment), file_key, wait_on_limit=False
            )

    async def _put(
        self, room_id: str, content: dict[str, Any], key: str | None, *, wait_on_limit: bool
    ) -> str:
        tx_id = transaction_id(key) if key is not None else None
        for _ in range(WAIT_FOR_LIMIT_TIMES):
            try:
                response = await self.client.room_send(
                    room_id, "m.room.message", content, tx_id=tx_id, ignore_unverified_devices=True
                )
            except (MembersSyncError, SendRetryError):
                raise  # the room's members or keys could not be fetched just now: retried later
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
            if response.status_code == "M_UNKNOWN_TOKEN":
                log.error("Matrix: the homeserver no longer accepts the bot's access token; log in again")
            elif response.status_code in GONE:
                raise Undeliverable(str(response.status_code))
            raise RuntimeError(f"Matrix send failed: {response.status_code}")
        raise RetryLater(5)


def _png_size(attachment: Attachment) -> dict[str, int]:
    """Width and height of a PNG (from its header), so clients can lay an image out before loading it."""
    data = attachment.data
    if attachment.mime_type != "image/png" or data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return {}
    width, height = struct.unpack(">II", data[16:24])
    return {"w": width, "h": height}
