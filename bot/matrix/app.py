"""The Matrix bot: one device, a sync loop, direct rooms; handlers only translate to and from neutral events.

Each sync is handled in full, in order, before its token is saved, so after a crash or restart
the homeserver repeats only what was not finished, and the event ids (kept in `processed_event`
by the conversation) make a repeated event harmless. The very first sync only sets the bot up:
nothing sent before the bot first started is answered.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

import aiohttp
from nio import (
    AsyncClient,
    InviteMemberEvent,
    MegolmEvent,
    RoomCreateResponse,
    RoomMemberEvent,
    RoomMessageText,
    RoomPreset,
    SyncError,
    SyncResponse,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from bot.backoff import Backoff
from bot.conversation.router import Conversation
from bot.db_thread import database_thread, run_in
from bot.i18n import DEFAULT_LOCALE, Translator, pick_locale
from bot.matrix.sender import MatrixSender
from bot.matrix.session import BotState, MatrixSettings, log_in, make_client, save_state, server_of
from bot.messages import Incoming, Reply
from bot.process import Outlet
from db.uow import UnitOfWork
from services import identities
from services.dialogs import first_time

PLATFORM = "matrix"
T = TypeVar("T")
log = logging.getLogger(__name__)
ENCRYPTION = {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}
SYNC_FILTER: dict[str, Any] = {
    "room": {"timeline": {"limit": 50}, "state": {"lazy_load_members": False}},
    "presence": {"types": []},
}
ROOM_WAIT = 30.0  # seconds to wait for a room the bot created to show up in its sync
SYNC_GRACE = 60.0  # seconds a sync may take beyond its long-poll timeout before it counts as hung
JOIN_TIMEOUT = 30.0


async def _nowhere(_chat_id: str, _reply: Reply) -> None:
    """Until the process starts the transport, there is nowhere to send to."""


def strip_reply_fallback(body: str, content: dict[str, Any]) -> str:
    """A Matrix reply starts with the quoted message (`> ...` lines); only the answer counts."""
    if "m.in_reply_to" not in content.get("m.relates_to", {}) or not body.startswith("> "):
        return body
    lines = body.split("\n")
    while lines and lines[0].startswith(">"):
        lines.pop(0)
    return "\n".join(lines).strip()


class MatrixBot:
    """The Matrix transport: syncs, answers in direct rooms, joins when invited, opens rooms to notify."""

    platform = PLATFORM

    def __init__(
        self,
        settings: MatrixSettings,
        *,
        engine: Engine,
        clock: Callable[[], datetime] | None = None,
        poll_timeout: float = 30,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.conversation = Conversation(engine, clock)
        self._db = database_thread(engine, workers=4, name="matrix")
        self.client: AsyncClient = make_client(settings)
        self.sender = MatrixSender(self.client, self._reopen, settings.server_allowed)
        self.poll_timeout = poll_timeout
        self.state = BotState()
        self._outlet = Outlet(wake=lambda: None, push=lambda _chat, _answers: None, say=_nowhere)
        self._stopping = False
        self._poll: asyncio.Future[SyncResponse | SyncError] | None = None
        self._loop: asyncio.Task[None] | None = None
        self._synced = asyncio.Event()
        self._upkeep: asyncio.Task[None] | None = None
        self._upkeep_again = False
        self._pending_joins: set[str] = set()  # invitations whose join failed; tried again each sync
        self._chores: set[asyncio.Task[None]] = set()  # declined invitations, until they are sent

    async def _in_db(self, function: Callable[..., T], *args: Any) -> T:
        """Database work in the process's database thread (one on SQLite: no busy-sleeps)."""
        return await run_in(self._db, function, *args)

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self, outlet: Outlet) -> None:
        """Every process: nothing to do before it leads (one device syncs and sends)."""
        self._outlet = outlet
        self._stopping = False

    async def lead(self) -> None:
        """Sign in and sync; while the homeserver cannot be reached, keep trying (logged once a minute)."""
        self._stopping = False
        self._outlet.liveness.watch(PLATFORM)
        away = Backoff(log, "Matrix homeserver cannot be reached")
        while True:
            try:
                self.state = await log_in(self.client, self.settings)
                if self.client.should_upload_keys:
                    await self.client.keys_upload()
                # The first sync after a start asks for the full state: nio keeps rooms and members in memory.
                await self._sync(timeout_ms=0, full_state=True)
                break
            except (aiohttp.ClientError, OSError, TimeoutError, RuntimeError) as exc:
                self._outlet.liveness.missed(PLATFORM)
                await away.failed(exc)
        self._loop = asyncio.create_task(self._run())
        # The device's public signing key, to compare out of band with what people's clients show.
        fingerprint = self.client.olm.account.identity_keys["ed25519"] if self.client.olm else "?"
        log.info(
            "Matrix: signed in as %s (device %s, ed25519 key %s)",
            self.client.user_id,
            self.client.device_id,
            fingerprint,
        )

    async def unlead(self) -> None:
        """Stop syncing (another process leads now, or this one stops)."""
        self._stopping = True
        if self._poll is not None:
            self._poll.cancel()  # only the waiting long poll; a sync being handled is finished first
        if self._loop is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
            self._loop = None
        if self._upkeep is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._upkeep, timeout=10)
        self._outlet.liveness.unwatch(PLATFORM)

    async def stop(self) -> None:
        await self.unlead()
        await self.client.close()

    async def _run(self) -> None:
        pause = 1.0
        while not self._stopping:
            try:
                await self._sync(timeout_ms=int(self.poll_timeout * 1000), full_state=False)
                pause = 1.0
            except asyncio.CancelledError:
                if self._stopping:
                    return
                raise
            except Exception:
                log.exception("Matrix sync failed; trying again in %.0fs", pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 60)

    # --- one sync -------------------------------------------------------------------------------

    async def _sync(self, *, timeout_ms: int, full_state: bool) -> None:
        # nio skips a response whose token it has seen; a sync retried after a failure must be
        # handled (and decrypted) again, so nio is told where the last finished sync ended.
        self.client.next_batch = self.state.sync_token or None
        self._poll = asyncio.ensure_future(
            self.client.sync(
                timeout=timeout_ms,
                sync_filter=SYNC_FILTER,
                since=self.state.sync_token or None,
                full_state=full_state,
            )
        )
        try:
            response = await asyncio.wait_for(self._poll, timeout=timeout_ms / 1000 + SYNC_GRACE)
        except asyncio.CancelledError:
            raise
        except Exception:
            self._outlet.liveness.missed(PLATFORM)
            raise
        finally:
            self._poll = None
        if isinstance(response, SyncError):
            self._outlet.liveness.missed(PLATFORM)
            raise RuntimeError(f"sync refused: {response.status_code}")
        self._outlet.liveness.reached(PLATFORM)
        answer = bool(self.state.sync_token)  # the very first sync only joins and records
        for room_id, invite in response.rooms.invite.items():
            if not self._invited_by_allowed(room_id, invite.invite_state):
                continue
            self._pending_joins.add(room_id)
        for room_id in set(self._pending_joins):
            await self._join(room_id)
        for room_id, info in response.rooms.join.items():
            if info.timeline.limited and answer:
                log.warning(
                    "Matrix: room %s had more new events than one sync holds; older ones skipped", room_id
                )
            for event in info.timeline.events:
                await self._on_event(room_id, event, answer=answer)
        self.state.sync_token = response.next_batch
        save_state(self.settings.store_path, self.state)
        if self._upkeep is None or self._upkeep.done():
            # Beside the next long poll, so the next message is not held up by the key upkeep.
            self._upkeep = asyncio.create_task(self._exchange_keys())
        else:
            self._upkeep_again = True
        self._synced.set()
        self._synced.clear()

    async def _exchange_keys(self) -> None:
        """Keep the device's keys and sessions current, as nio's own sync loop does after each sync."""
        client = self.client
        again = True
        while again:
            self._upkeep_again = False
            try:
                await client.send_to_device_messages()
                if client.should_upload_keys:
                    await client.keys_upload()
                if client.should_query_keys:
                    await client.keys_query()
                if client.should_claim_keys:
                    await client.keys_claim(client.get_users_for_key_claiming())
            except Exception:
                log.exception("Matrix key exchange failed; retried after the next sync")
            again = self._upkeep_again  # a sync finished meanwhile: its keys need the same care

    def _invited_by_allowed(self, room_id: str, invite_state: list[Any]) -> bool:
        """Whether the invitation comes from a server on MATRIX_ALLOWED_SERVERS; one that does not is
        declined (in the background) before anything of it is stored."""
        inviter = next(
            (
                event.sender
                for event in invite_state
                if isinstance(event, InviteMemberEvent)
                and event.state_key == self.client.user_id
                and event.membership == "invite"
            ),
            "",
        )
        if self.settings.server_allowed(inviter):
            return True
        log.info(
            "Matrix: declined an invitation from a server not on MATRIX_ALLOWED_SERVERS (%s)",
            server_of(inviter),
        )
        self._background(self.client.room_leave(room_id))
        return False

    def _background(self, work: Awaitable[object]) -> None:
        """Run `work` without waiting for it (a declined invitation); its failure is of no consequence."""

        async def quietly() -> None:
            with contextlib.suppress(Exception):
                await work

        task = asyncio.create_task(quietly())
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)

    async def _join(self, room_id: str) -> None:
        """Anyone may invite the bot; onboarding decides who gets further. A failed join is tried again."""
        try:
            response = await asyncio.wait_for(self.client.join(room_id), timeout=JOIN_TIMEOUT)
        except Exception as exc:
            log.warning("Matrix: could not join room %s (%s); trying again", room_id, type(exc).__name__)
            self._pending_joins.add(room_id)
            return
        if hasattr(response, "status_code"):
            log.warning("Matrix: could not join room %s (%s)", room_id, response.status_code)
            if response.status_code == "M_LIMIT_EXCEEDED" or not str(response.status_code).startswith("M_"):
                self._pending_joins.add(room_id)
            else:
                self._pending_joins.discard(room_id)  # refused for good (the invitation was withdrawn)
            return
        self._pending_joins.discard(room_id)
        log.info("Matrix: joined room %s on invitation", room_id)

    # --- events ---------------------------------------------------------------------------------

    async def _on_event(self, room_id: str, event: object, *, answer: bool) -> None:
        sender = getattr(event, "sender", None)
        if sender is None or sender == self.client.user_id:
            return
        if not self.settings.server_allowed(sender):
            # Before anything is read or written: no reply, no processed event, no stranger counter.
            log.info(
                "Matrix: ignored an event from a server not on MATRIX_ALLOWED_SERVERS (%s)", server_of(sender)
            )
            return
        if isinstance(event, RoomMemberEvent):
            if event.membership in ("leave", "ban") and not self._others(room_id):
                await self._leave(room_id)  # the person left: a room of one is no use
            elif event.membership in ("invite", "join") and self._is_group(room_id) and answer:
                await self._refuse_group(room_id, event.event_id)  # someone else came in: leave
            return
        if not answer or getattr(event, "server_timestamp", 0) < self.state.first_start_ms:
            return
        try:
            if isinstance(event, RoomMessageText):
                await self._on_text(room_id, event)
            elif isinstance(event, MegolmEvent):
                await self._on_unreadable(room_id, event)
        except (OperationalError, InterfaceError):
            raise  # the database is away: the sync is not saved, and comes again once it is back
        except Exception:
            log.exception("Matrix event %s failed", getattr(event, "event_id", "?"))
            await self._apologise(room_id, sender)

    async def _on_text(self, room_id: str, event: RoomMessageText) -> None:
        """Pass a text message from a direct room on to the conversation."""
        if self._is_group(room_id):
            await self._refuse_group(room_id, event.event_id)
            return
        incoming = Incoming(
            PLATFORM,
            event.sender,
            room_id,
            text=strip_reply_fallback(event.body, event.source.get("content", {})),
            event_key=f"event:{event.event_id}",
        )
        try:
            handled = await self._in_db(self.conversation.handle_stored, incoming)
        finally:
            self._outlet.wake()  # the answers are stored with the event; the one sender sends them
        if handled.answers:
            self._outlet.push(room_id, handled.answers)
        for index, reply in enumerate(handled.direct):  # a stranger's replies are not stored
            await self.sender.send(room_id, reply, key=f"reply:{event.event_id}:{index}", direct=True)

    async def _on_unreadable(self, room_id: str, event: MegolmEvent) -> None:
        """An encrypted message without its key (sent before the bot could read along): ask to resend."""
        locale = await self._in_db(self._first_time_locale, event.event_id, event.sender)
        if locale is None:
            return
        with contextlib.suppress(Exception):
            await self.client.request_room_key(event)
        text = Translator(locale).gettext(
            "I could not read your last message: it was encrypted before I could read along. "
            "Please send it again."
        )
        await self.sender.send(room_id, Reply(text), key=f"unreadable:{event.event_id}", direct=True)

    def _first_time_locale(self, event_id: str, user_id: str) -> str | None:
        """The person's language if this event is new (and now recorded), else None.

        A stranger's event is not recorded: strangers write no rows (services/strangers.py); the
        sync token, saved after the sync is handled, keeps it from coming back but after a crash.
        """
        with UnitOfWork(self.engine) as uow:
            now = self.conversation.clock()
            member = identities.member_of(uow.session, PLATFORM, user_id)
            if member is None:
                return pick_locale(None)
            if not first_time(uow.session, platform=PLATFORM, event_key=f"event:{event_id}", now=now):
                return None
            uow.commit()
        return pick_locale(member.locale)

    def _others(self, room_id: str) -> list[str]:
        """The people in a room besides the bot, joined or invited."""
        room = self.client.rooms.get(room_id)
        return [] if room is None else [u for u in room.users if u != self.client.user_id]

    def _is_group(self, room_id: str) -> bool:
        return len(self._others(room_id)) > 1

    async def _refuse_group(self, room_id: str, event_id: str) -> None:
        """Personal data stays out of shared rooms: say so once, then leave."""
        if await self._in_db(self._first_time_locale, event_id, "") is None:
            return
        text = Translator(DEFAULT_LOCALE).gettext(
            "I only talk in direct chats, so that nobody else reads along. "
            "Please start a direct chat with me."
        )
        await self.sender.send(room_id, Reply(text), key=f"group:{event_id}", direct=True)
        await self._leave(room_id)

    async def _apologise(self, room_id: str, user_id: str) -> None:
        try:
            locale = await self._in_db(self.conversation.locale_of, PLATFORM, user_id)
            text = Translator(locale).gettext(
                "Sorry, something went wrong on our side. Please try again in a moment."
            )
            await self.sender.send(room_id, Reply(text))
        except Exception:
            log.warning("could not tell the room about a failed event")

    async def _leave(self, room_id: str) -> None:
        with contextlib.suppress(Exception):
            await self.client.room_leave(room_id)
            await self.client.room_forget(room_id)

    # --- rooms the bot opens --------------------------------------------------------------------

    async def _reopen(self, room_id: str) -> str | None:
        """Open a new encrypted direct room to the person whose room this was; notifications go there now."""
        user_id = await self._in_db(self._user_in_chat, room_id)
        if user_id is None or not self.settings.server_allowed(user_id):
            return None
        response = await self.client.room_create(
            is_direct=True,
            preset=RoomPreset.trusted_private_chat,
            invite=[user_id],
            initial_state=[ENCRYPTION],
        )
        if not isinstance(response, RoomCreateResponse):
            log.warning("Matrix: could not open a direct room (%s)", getattr(response, "status_code", "?"))
            return None
        # Moved before waiting: if the wait times out, a retry sends to this room, not yet another one.
        await self._in_db(self._move_chat, room_id, response.room_id)
        await self._wait_for_room(response.room_id, user_id)
        return str(response.room_id)

    async def _wait_for_room(self, room_id: str, user_id: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ROOM_WAIT
        while not self.sender.usable(room_id) or user_id not in self.client.rooms[room_id].users:
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError("the new room did not arrive in the sync")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._synced.wait(), timeout=left)

    def _user_in_chat(self, room_id: str) -> str | None:
        with UnitOfWork(self.engine) as uow:
            identity = identities.identity_in_chat(uow.session, PLATFORM, room_id)
        return identity.user_id if identity else None

    def _move_chat(self, old: str, new: str) -> None:
        with UnitOfWork(self.engine) as uow:
            identity = identities.identity_in_chat(uow.session, PLATFORM, old)
            if identity is not None:
                identities.move_chat(uow.session, identity, new)
                uow.commit()
