"""The chat platforms a district allows (policy rule `platforms`) and the Matrix servers the bot talks to
(MATRIX_ALLOWED_SERVERS).

A Matrix-only district refuses an invite code on Telegram (the real PTB against the fake Bot API)
and leaves it usable: the same code then works on Matrix (a real Synapse). Chats linked on a platform
the district no longer allows get no notifications, and are answered with the platform to use.
"""

import asyncio
import logging
from datetime import timedelta
from pathlib import Path

import pytest
from nio import MatrixRoom, RoomMessageText
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.cli.main import main
from bot.conversation.router import Conversation
from bot.delivery import Undeliverable
from bot.i18n import Translator, echo
from bot.matrix.app import MatrixBot
from bot.matrix.session import MatrixSettings, server_of
from bot.messages import Incoming, Reply
from bot.process import BotProcess
from bot.rate_limit import RateLimiter
from bot.telegram.app import TelegramBot
from db.models import (
    ChatIdentity,
    Delivery,
    DialogState,
    District,
    Invite,
    Member,
    OutboxMessage,
    PolicySetting,
    ProcessedEvent,
    StrangerAttempt,
)
from db.uow import UnitOfWork
from services.deliveries import expand
from services.errors import InvalidInput
from services.identities import identities_of, link
from services.invites import hash_code
from services.platforms import links_not_allowed
from services.policy import load_policy, set_rule
from services.vocabulary import Recipient
from tests.chat_world import NOW, Clock, make_demo
from tests.fake_bot_api import FakeBotApi, SentMessage
from tests.matrix_people import PASSWORD, MatrixPerson, unique, until
from tests.synapse_server import STORE_KEY, SynapseServer
from tests.test_matrix import synapse  # noqa: F401  (the session's homeserver, as a fixture here too)

DE = Translator("de")
AMIRA_TG = 2001
REFUSED_ON_TELEGRAM = DE.render(
    "This county uses the bot only on {platforms}. Please send your code there: "
    "it was not used and stays valid.",
    {"platforms": "Matrix"},
)


def _district_id(engine: Engine) -> int:
    with UnitOfWork(engine) as uow:
        district_id = uow.session.exec(select(District.id)).one()
    assert district_id is not None
    return district_id


def _set_platforms(engine: Engine, value: str) -> tuple[str, str]:
    with UnitOfWork(engine) as uow:
        changed = set_rule(uow.session, _district_id(engine), "platforms", value, actor="t", now=NOW)
        uow.commit()
    return changed


def _cli(monkeypatch: pytest.MonkeyPatch, engine: Engine, *argv: str) -> int:
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("BOT_LOCALE", "de")
    return main(list(argv))


# --- the rule ---------------------------------------------------------------------------------------


def test_the_rule_takes_the_platforms_in_any_spelling_and_refuses_none_or_others(engine: Engine) -> None:
    make_demo(engine, NOW)
    district_id = _district_id(engine)
    with UnitOfWork(engine) as uow:
        assert load_policy(uow.session, district_id).platforms == ("telegram", "matrix")
    assert _set_platforms(engine, " Matrix ") == ("telegram,matrix", "matrix")
    assert _set_platforms(engine, "MATRIX; telegram") == ("matrix", "telegram,matrix")
    assert _set_platforms(engine, "telegram") == ("telegram,matrix", "telegram")
    for typed in ("", " , ", "signal", "matrix,signal", "whatsapp telegram"):
        with pytest.raises(InvalidInput) as refused:
            _set_platforms(engine, typed)
        assert DE.error(refused.value) == (
            f"„{echo(typed)}“ ist keine Liste von Chat-Plattformen; "
            "schreiben Sie telegram,matrix oder matrix oder telegram."
        )
    with UnitOfWork(engine) as uow:
        stored = uow.session.exec(
            select(PolicySetting.value).where(
                PolicySetting.district_id == district_id, PolicySetting.key == "platforms"
            )
        ).one()
        assert stored == "telegram"
        assert load_policy(uow.session, district_id).platforms == ("telegram",)


# --- redemption: refused on Telegram, the same code works on Matrix ----------------------------------


async def _telegram_say(api: FakeBotApi, user: int, text: str) -> SentMessage:
    since = len(api.sent(user))
    api.push_text(user, text, language_code="de")
    return await api.wait_for_message(user, since=since)


async def test_a_matrix_only_district_refuses_redemption_on_telegram_and_the_code_then_works_on_matrix(
    engine: Engine,
    synapse: SynapseServer,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bot.matrix.app")
    clock, codes = Clock(NOW), make_demo(engine, NOW)
    assert _cli(monkeypatch, engine, "policy", "set", "platforms", "matrix") == 0
    assert capsys.readouterr().out == "platforms: telegram,matrix → matrix\n"  # no chat linked yet

    api = FakeBotApi()
    await api.start()
    bot_id = synapse.register(unique("matrixonly"), PASSWORD)
    settings = MatrixSettings(
        synapse.url,
        bot_id,
        tmp_path / "bot-store",
        password=PASSWORD,
        store_key=STORE_KEY,
        allowed_servers=frozenset({server_of(bot_id)}),  # the people's server is on the list
    )
    telegram = TelegramBot(token=api.token, engine=engine, base_url=api.base_url, clock=clock, poll_timeout=1)
    matrix_bot = MatrixBot(settings, engine=engine, clock=clock, poll_timeout=1)
    process = BotProcess(engine, [telegram, matrix_bot], limiter=RateLimiter(per_chat_gap=0.02), clock=clock)
    await process.start()
    amira = MatrixPerson(synapse, "amira", tmp_path / "amira")
    try:
        for _ in range(2):  # refused twice: the first refusal used nothing up
            refused = await _telegram_say(api, AMIRA_TG, f"/start {codes.amira}")
            assert refused.text == REFUSED_ON_TELEGRAM
        with UnitOfWork(engine) as uow:
            assert uow.session.exec(select(Member)).all() == []
            assert uow.session.exec(select(ChatIdentity)).all() == []
            invite = uow.session.exec(select(Invite).where(Invite.code_hash == hash_code(codes.amira))).one()
            assert (invite.used_at, invite.member_id) == (None, None)

        await amira.start()
        await amira.open_room(bot_id, encrypted=True)
        welcome = await amira.say(f"!start {codes.amira}")
        assert welcome.text.startswith(
            DE.render("Welcome! You are registered as {role}.", {"role": DE.gettext("an interpreter")})
        )
        assert "!privacy" in welcome.text  # the pointer to the notice, once, with the welcome
        with UnitOfWork(engine) as uow:
            identities = uow.session.exec(select(ChatIdentity)).all()
            assert [(i.platform, i.user_id) for i in identities] == [("matrix", amira.user_id)]
            invite = uow.session.exec(select(Invite).where(Invite.code_hash == hash_code(codes.amira))).one()
            assert invite.used_at is not None
            assert invite.member_id == identities[0].member_id

        # The key the bot logs at its start is the one her client holds for the bot's device: what a
        # county publishes out of band for people to compare.
        device_id = matrix_bot.client.device_id
        seen = amira.client.device_store[bot_id][device_id].ed25519
        assert f"Matrix: signed in as {bot_id} (device {device_id}, ed25519 key {seen})" in caplog.messages

        # Telegram is told the code is used now; it never became a chat of hers there.
        used = await _telegram_say(api, AMIRA_TG, f"/start {codes.amira}")
        assert used.text == DE.gettext(
            "This invite code has already been used. Please ask your coordinator for a new one."
        )
    finally:
        await process.stop()
        await amira.stop()
        await api.stop()
    assert api.server_errors == []


# --- chats on a platform no longer allowed -----------------------------------------------------------


def _outbox(engine: Engine, recipient: Recipient, recipient_id: int, district_id: int) -> list[int]:
    """Queue one notification and expand it; the identity ids its deliveries go to."""
    with UnitOfWork(engine) as uow:
        message = OutboxMessage(
            district_id=district_id,
            recipient_type=recipient.value,
            recipient_id=recipient_id,
            template="request.rejected",
            params="{}",
            created_at=NOW,
        )
        uow.session.add(message)
        uow.session.flush()
        expand(uow.session, now=NOW)
        rows = uow.session.exec(select(Delivery).where(Delivery.outbox_id == message.id)).all()
        uow.commit()
    return sorted(row.identity_id for row in rows)


def test_chats_on_a_platform_no_longer_allowed_get_nothing_and_are_answered_with_the_way_on(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    codes = make_demo(engine, NOW)
    district_id = _district_id(engine)
    talk = Conversation(engine, lambda: NOW + timedelta(hours=1))
    with UnitOfWork(engine) as uow:
        school = link(
            uow.session,
            platform="telegram",
            user_id="1",
            chat_id="1",
            code=codes.school,
            now=NOW,
            locale="de",
        )
        amira = link(
            uow.session, platform="telegram", user_id="2", chat_id="2", code=codes.amira, now=NOW, locale="de"
        )
        uow.commit()
        assert amira.id is not None
        assert amira.interpreter_id is not None
        school_id, amira_id, amira_interpreter = school.school_id, amira.id, amira.interpreter_id
        assert school_id is not None
        connect = (
            talk.handle(Incoming("telegram", "2", "2", text="/connect"))[0]
            .text.split("/start ")[1]
            .split()[0]
        )
    amira_matrix = talk.handle(Incoming("matrix", "@amira:kreis.example", "!room", text=f"!start {connect}"))
    assert amira_matrix[0].text.startswith(
        DE.render(
            "This chat is linked now: here too you act as {role}.", {"role": DE.gettext("an interpreter")}
        )
    )
    with UnitOfWork(engine) as uow:
        by_platform = {(i.member_id, i.platform): i.id or 0 for i in uow.session.exec(select(ChatIdentity))}
        amira_member = uow.session.get(Member, amira_id)
        assert amira_member is not None
        amira_member.notify_everywhere = True
        uow.session.add(amira_member)
        uow.commit()
    assert _outbox(engine, Recipient.INTERPRETER, amira_interpreter, district_id) == sorted(
        [by_platform[(amira_id, "telegram")], by_platform[(amira_id, "matrix")]]
    )  # both wait to be sent

    # The coordinator allows Matrix only, and learns how many linked chats that cuts off.
    assert _cli(monkeypatch, engine, "policy", "set", "platforms", "matrix") == 0
    assert capsys.readouterr().out == (
        "platforms: telegram,matrix → matrix\n"
        "2 verknüpfte Chats sind auf einer Plattform, die der Landkreis nicht mehr zulässt: Sie bekommen "
        "keine Benachrichtigungen mehr, und ihre Nachrichten werden mit den zugelassenen Plattformen "
        "beantwortet (Matrix).\n"
        "1 Nachricht, die auf sie wartet, wird nicht gesendet.\n"
    )
    with UnitOfWork(engine) as uow:  # the one on its way to Telegram stops; the one to Matrix goes
        waiting = {
            d.identity_id: (d.failed_at is not None, d.last_error) for d in uow.session.exec(select(Delivery))
        }
    assert waiting == {
        by_platform[(amira_id, "telegram")]: (True, "platform not allowed"),
        by_platform[(amira_id, "matrix")]: (False, None),
    }
    assert _outbox(engine, Recipient.INTERPRETER, amira_interpreter, district_id) == [
        by_platform[(amira_id, "matrix")]
    ]
    assert _outbox(engine, Recipient.SCHOOL, school_id, district_id) == []  # its one chat is on Telegram
    with UnitOfWork(engine) as uow:
        assert [i.platform for i in identities_of(uow.session, amira_id)] == ["matrix"]
        seen_before = {i.id: i.last_seen_at for i in uow.session.exec(select(ChatIdentity))}
        dialogs_before = len(uow.session.exec(select(DialogState)).all())

    # The school writes on Telegram: it is told where to go, and nothing of the event is kept but its id.
    refusal = DE.render(
        "Your county no longer uses this bot on {platform}, so nothing reaches you here any more. "
        "Please use {platforms}: /connect here gives you a code that links your account there.",
        {"platform": "Telegram", "platforms": "Matrix"},
    )
    for text in ("/request", "hallo", "/bookings"):
        assert [r.text for r in talk.handle(Incoming("telegram", "1", "1", text=text, event_key=text))] == [
            refusal
        ]
    with UnitOfWork(engine) as uow:
        assert {i.id: i.last_seen_at for i in uow.session.exec(select(ChatIdentity))} == seen_before
        assert len(uow.session.exec(select(DialogState)).all()) == dialogs_before
        assert uow.session.exec(
            select(ProcessedEvent.event_key).order_by(col(ProcessedEvent.event_key))
        ).all() == [
            "/bookings",
            "/request",
            "hallo",
        ]
    notice = talk.handle(Incoming("telegram", "1", "1", text="/datenschutz"))[0].text
    assert "Datenschutzhinweise (Art. 13 DSGVO)" in notice  # the notice is still shown there

    # /connect there gives a code for Matrix (written with !, as Element needs it); it moves the school.
    moved = talk.handle(Incoming("telegram", "1", "1", text="/connect"))[0].text
    code = moved.split("!start ")[1].split()[0]
    assert moved == DE.render(
        "Send this message to the bot on {platforms} within an hour:\n\n{command}start {code}\n\n"
        "The code works once; your role, dialogs and jobs go with it.",
        {"platforms": "Matrix", "command": "!", "code": code},
    )
    on_telegram = talk.handle(Incoming("telegram", "9", "9", text=f"/start {code}"))
    assert [r.text for r in on_telegram] == [REFUSED_ON_TELEGRAM]  # a link code too works on Matrix only
    linked = talk.handle(Incoming("matrix", "@school:kreis.example", "!school", text=f"!start {code}"))
    assert linked[0].text.startswith(
        DE.render("This chat is linked now: here too you act as {role}.", {"role": DE.gettext("a school")})
    )
    with UnitOfWork(engine) as uow:
        school_matrix = uow.session.exec(
            select(ChatIdentity.id).where(ChatIdentity.user_id == "@school:kreis.example")
        ).one()
        assert links_not_allowed(uow.session, district_id) == 2
    assert _outbox(engine, Recipient.SCHOOL, school_id, district_id) == [school_matrix]

    # Allowed again, the Telegram chats are back: nothing was deleted.
    assert _cli(monkeypatch, engine, "policy", "set", "platforms", "telegram,matrix") == 0
    assert capsys.readouterr().out == "platforms: matrix → telegram,matrix\n"
    with UnitOfWork(engine) as uow:
        assert sorted(i.platform for i in identities_of(uow.session, amira_id)) == ["matrix", "telegram"]


def test_invite_create_names_the_platforms_and_links_only_the_allowed_one(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    make_demo(engine, NOW)
    _set_platforms(engine, "matrix")
    monkeypatch.setenv("TELEGRAM_BOT_USERNAME", "pool_bot")
    monkeypatch.setenv("MATRIX_USER_ID", "@pool:kreis.example")
    assert _cli(monkeypatch, engine, "invite", "create", "--role", "interpreter", "--for", "4") == 0
    lines = capsys.readouterr().out.splitlines()
    code = lines[0].split(": ")[1]
    assert (
        lines[1] == f"  Matrix: @pool:kreis.example in einen Direktchat einladen, dann !start {code} senden"
    )
    assert "t.me" not in "\n".join(lines)
    assert lines[3] == "Er gilt nur auf den Plattformen, die der Landkreis zulässt: Matrix."


# --- MATRIX_ALLOWED_SERVERS ---------------------------------------------------------------------------


def _settings(tmp_path: Path, allowed: str) -> MatrixSettings:
    env = {
        "MATRIX_HOMESERVER": "https://matrix.kreis.example",
        "MATRIX_USER_ID": "@pool:kreis.example",
        "MATRIX_PASSWORD": "x",
        "MATRIX_STORE_PATH": str(tmp_path / "store"),
        "MATRIX_STORE_KEY": STORE_KEY,
        "MATRIX_ALLOWED_SERVERS": allowed,
    }
    settings = MatrixSettings.from_env(env)
    assert settings is not None
    return settings


def test_allowed_servers_are_read_case_blind_and_a_user_id_in_the_list_is_refused(tmp_path: Path) -> None:
    settings = _settings(tmp_path, " Kreis.Example , matrix.schule.example:8448 ,")
    assert settings.allowed_servers == {"kreis.example", "matrix.schule.example:8448"}
    assert [
        settings.server_allowed(user)
        for user in (
            "@anna:kreis.example",
            "@Bernd:KREIS.example",
            "@c:matrix.schule.example:8448",
            "@d:matrix.schule.example",
            "@e:matrix.org",
            "@f:kreis.example.evil.org",
            "",
        )
    ] == [True, True, True, False, False, False, False]
    assert _settings(tmp_path, "").server_allowed("@e:matrix.org")  # no list: every server
    for typed in ("@anna:kreis.example", "https://kreis.example"):
        with pytest.raises(InvalidInput) as refused:
            _settings(tmp_path, f"kreis.example,{typed}")
        assert DE.error(refused.value) == (
            "MATRIX_ALLOWED_SERVERS nennt Servernamen, durch Kommas getrennt, z. B. matrix.example.org; "
            f"„{typed}“ ist keiner."
        )


def _message(sender: str) -> RoomMessageText:
    event = RoomMessageText.from_dict(
        {
            "type": "m.room.message",
            "event_id": "$one",
            "sender": sender,
            "origin_server_ts": 2_000_000_000_000,
            "content": {"msgtype": "m.text", "body": "!start SOMECODE"},
        }
    )
    assert isinstance(event, RoomMessageText)
    return event


async def test_an_event_from_another_server_is_ignored_before_anything_is_stored(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make_demo(engine, NOW)
    bot = MatrixBot(_settings(tmp_path, "kreis.example"), engine=engine, clock=lambda: NOW)
    caplog.set_level(logging.INFO, logger="bot.matrix.app")
    try:
        await bot._on_event("!room:kreis.example", _message("@mallory:elsewhere.example"), answer=True)
    finally:
        await bot.client.close()
    with UnitOfWork(engine) as uow:
        for table in (StrangerAttempt, ProcessedEvent, ChatIdentity):
            assert uow.session.exec(select(table)).all() == []
    assert [r.getMessage() for r in caplog.records] == [
        "Matrix: ignored an event from a server not on MATRIX_ALLOWED_SERVERS (elsewhere.example)"
    ]


async def test_nothing_is_sent_to_a_person_on_a_server_not_on_the_list(
    engine: Engine, tmp_path: Path
) -> None:
    """A chat linked before the list was set: its notifications are undeliverable, no room is opened."""
    bot = MatrixBot(_settings(tmp_path, "kreis.example"), engine=engine, clock=lambda: NOW)
    try:
        for room_id, person in (
            ("!far:kreis.example", "@mallory:elsewhere.example"),
            ("!near:kreis.example", "@anna:kreis.example"),
        ):
            room = MatrixRoom(room_id, bot.client.user_id)
            for user in (bot.client.user_id, person):
                room.add_member(user, None, None)
            bot.client.rooms[room_id] = room
        with pytest.raises(Undeliverable, match="MATRIX_ALLOWED_SERVERS"):
            await bot.sender.send("!far:kreis.example", Reply("Ihr Einsatz morgen"), key="n:1")
        with pytest.raises(Undeliverable, match="MATRIX_ALLOWED_SERVERS"):
            await bot.sender.edit("!far:kreis.example", "!far:kreis.example|$e", Reply("vergeben"), key="n:2")
        bot.sender._refuse_other_servers("!near:kreis.example")  # the allowed person's room passes
        codes = make_demo(engine, NOW)
        with UnitOfWork(engine) as uow:  # linked before the list was set; the room is gone
            link(
                uow.session,
                platform="matrix",
                user_id="@mallory:elsewhere.example",
                chat_id="!gone:kreis.example",
                code=codes.amira,
                now=NOW,
                locale="de",
            )
            uow.commit()
        assert await bot._reopen("!gone:kreis.example") is None  # no new room for them either
    finally:
        await bot.client.close()


async def test_an_invitation_from_a_server_not_on_the_list_is_declined(
    engine: Engine,
    synapse: SynapseServer,  # noqa: F811
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    make_demo(engine, NOW)
    bot_id = synapse.register(unique("listbot"), PASSWORD)
    settings = MatrixSettings(
        synapse.url,
        bot_id,
        tmp_path / "bot-store",
        password=PASSWORD,
        store_key=STORE_KEY,
        allowed_servers=frozenset({"kreis.example"}),  # not the test server the people are on
    )
    caplog.set_level(logging.INFO, logger="bot.matrix.app")
    process = BotProcess(engine, [MatrixBot(settings, engine=engine, poll_timeout=1)], clock=lambda: NOW)
    await process.start()
    mallory = MatrixPerson(synapse, "mallory", tmp_path / "mallory")
    try:
        await mallory.start()
        response = await mallory.client.room_create(is_direct=True, invite=[bot_id])
        room_id = response.room_id

        def declined() -> bool:
            room = mallory.client.rooms.get(room_id)
            return room is not None and room.member_count == 1 and bot_id not in room.users

        def logged() -> list[str]:
            return [r.getMessage() for r in caplog.records if "MATRIX_ALLOWED_SERVERS" in r.getMessage()]

        await until(lambda: bool(logged()), what="the invitation seen")
        await until(declined, what="the invitation declined")  # the bot's membership: leave
        await mallory.send("!start SOMECODE", room_id)  # into a room the bot is not in: nobody reads it
        await asyncio.sleep(2.5)  # two of the bot's long polls
    finally:
        await process.stop()
        await mallory.stop()
    server = server_of(mallory.user_id)
    assert logged() == [
        f"Matrix: declined an invitation from a server not on MATRIX_ALLOWED_SERVERS ({server})"
    ]
    assert mallory.user_id not in "\n".join(r.getMessage() for r in caplog.records)
    with UnitOfWork(engine) as uow:
        assert uow.session.exec(select(ProcessedEvent)).all() == []
