"""People on Matrix for the tests: real matrix-nio clients (with end-to-end encryption) on the test Synapse.

Each person opens a direct room to the bot (encrypted or not), writes in it and keeps what the
bot wrote there, with later edits applied; they join any room they are invited to, as Element does.
"""

import asyncio
import contextlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

from nio import (
    AsyncClient,
    AsyncClientConfig,
    InviteMemberEvent,
    LoginResponse,
    MatrixRoom,
    MegolmEvent,
    MemoryDownloadResponse,
    RoomCreateResponse,
    RoomEncryptedFile,
    RoomEncryptedImage,
    RoomMessageFile,
    RoomMessageImage,
    RoomMessageText,
    RoomSendResponse,
)
from nio.crypto.attachments import decrypt_attachment

from tests.synapse_server import STORE_KEY, SynapseServer

PASSWORD = "correct horse battery staple"
ENCRYPTION = {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}
_names = itertools.count(1)


def unique(localpart: str) -> str:
    """A user name not used before on the suite's one homeserver."""
    return f"{localpart}{next(_names)}"


@dataclass
class Received:
    """A message from the bot as the person's client shows it (the latest edit's text)."""

    event_id: str
    room_id: str
    body: str
    html: str
    encrypted: bool
    edits: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.edits[-1] if self.edits else self.body


# What the bot sends as files: calendar entries, reports (m.file) and charts (m.image).
FileEvent: TypeAlias = RoomMessageFile | RoomEncryptedFile | RoomMessageImage | RoomEncryptedImage


async def until(check: Callable[[], bool], timeout: float = 20, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class MatrixPerson:
    """One person's Matrix client: a device with its own key store, syncing in the background."""

    def __init__(self, server: SynapseServer, localpart: str, store: Path) -> None:
        self.server = server
        self.localpart = unique(localpart)
        self.user_id = server.register(self.localpart, PASSWORD)
        store.mkdir(parents=True, exist_ok=True)
        config = AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True, pickle_key=STORE_KEY)
        self.client = AsyncClient(server.url, self.user_id, store_path=str(store), config=config)
        self.room_id = ""
        self.inbox: list[Received] = []
        self.sent_event_ids: list[str] = []
        self.unreadable: list[str] = []  # event ids of messages this device got no key for
        self.files: list[FileEvent] = []
        self._sync: asyncio.Task[None] | None = None

    async def start(self) -> None:
        login = await self.client.login(PASSWORD, device_name="test phone")
        assert isinstance(login, LoginResponse), login
        if self.client.should_upload_keys:
            await self.client.keys_upload()
        self.client.add_event_callback(self._on_message, RoomMessageText)
        self.client.add_event_callback(self._on_invite, InviteMemberEvent)
        self.client.add_event_callback(self._on_unreadable, MegolmEvent)
        self.client.add_event_callback(
            self._on_file, (RoomMessageFile, RoomEncryptedFile, RoomMessageImage, RoomEncryptedImage)
        )
        self._sync = asyncio.create_task(self.client.sync_forever(timeout=1000, full_state=True))

    async def stop(self) -> None:
        if self._sync is not None:
            self._sync.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sync
        await self.client.close()

    async def _on_message(self, room: MatrixRoom, event: RoomMessageText) -> None:
        if event.sender == self.user_id:
            return
        content: dict[str, Any] = event.source.get("content", {})
        relation = content.get("m.relates_to", {})
        if relation.get("rel_type") == "m.replace":
            for message in self.inbox:
                if message.event_id == relation.get("event_id"):
                    message.edits.append(content.get("m.new_content", {}).get("body", ""))
            return
        html = event.formatted_body or ""
        self.inbox.append(Received(event.event_id, room.room_id, event.body, html, event.decrypted))

    async def _on_file(self, room: MatrixRoom, event: FileEvent) -> None:
        if event.sender != self.user_id:
            self.files.append(event)

    async def file_content(self, event: FileEvent) -> bytes:
        """Download a file the bot sent, decrypting it when it came in an encrypted room."""
        response = await self.client.download(mxc=event.url)
        assert isinstance(response, MemoryDownloadResponse), response
        if isinstance(event, RoomEncryptedFile | RoomEncryptedImage):
            data: bytes = decrypt_attachment(response.body, event.key["k"], event.hashes["sha256"], event.iv)
            return data
        return bytes(response.body)

    async def _on_unreadable(self, room: MatrixRoom, event: MegolmEvent) -> None:
        self.unreadable.append(event.event_id)

    async def _on_invite(self, room: MatrixRoom, event: InviteMemberEvent) -> None:
        if event.state_key == self.user_id and event.membership == "invite":
            await self.client.join(room.room_id)

    async def open_room(self, bot_user_id: str, *, encrypted: bool) -> None:
        """Open a direct room to the bot and wait until it has joined."""
        response = await self.client.room_create(
            is_direct=True, invite=[bot_user_id], initial_state=[ENCRYPTION] if encrypted else []
        )
        assert isinstance(response, RoomCreateResponse), response
        self.room_id = response.room_id

        def bot_joined() -> bool:
            room = self.client.rooms.get(self.room_id)
            return room is not None and bot_user_id in room.users and not room.users[bot_user_id].invited

        await until(bot_joined, what="the bot to join")
        if encrypted:  # until the client knows, it would send in the clear
            await until(lambda: bool(self.client.rooms[self.room_id].encrypted), what="encryption")

    async def send(self, text: str, room_id: str | None = None) -> str:
        target = room_id or self.room_id
        await until(lambda: target in self.client.rooms, what="the room in this client's sync")
        response = await self.client.room_send(
            target,
            "m.room.message",
            {"msgtype": "m.text", "body": text},
            ignore_unverified_devices=True,
        )
        assert isinstance(response, RoomSendResponse), response
        self.sent_event_ids.append(response.event_id)
        return str(response.event_id)

    async def say(self, text: str) -> Received:
        """Write `text` and return the bot's next message."""
        since = len(self.inbox)
        await self.send(text)
        return await self.next_message(since=since)

    async def next_message(
        self, check: Callable[[Received], bool] | None = None, *, since: int = 0, timeout: float = 20
    ) -> Received:
        """The first message at or after position `since` that passes `check`."""
        found: list[Received] = []

        def arrived() -> bool:
            found[:] = [m for m in self.inbox[since:] if check is None or check(m)]
            return bool(found)

        await until(arrived, timeout, what=f"a message to {self.localpart}")
        return found[0]

    async def edited(self, message: Received, check: Callable[[str], bool], timeout: float = 20) -> str:
        """Wait until `message` has been edited to a text that passes `check`."""
        await until(lambda: any(check(text) for text in message.edits), timeout, what="an edit")
        return message.text
