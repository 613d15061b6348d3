"""The bot on Matrix, end to end: a real Synapse homeserver, the real bot, real matrix-nio clients.

Synapse is started once for the suite (SQLite, 127.0.0.1, rate limits lifted); every test has its
own bot account, store and people, so tests do not see each other's rooms.
"""

import asyncio
import logging
import os
import signal
import sqlite3
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
import vodozemac
from icalendar import Calendar, Event
from nio.crypto.sessions import derive_pickle_key
from sqlalchemy.engine import Engine
from sqlmodel import select

from bot.cli.serve import quiet_libraries
from bot.conversation.router import Handled
from bot.i18n import Translator
from bot.matrix.app import MatrixBot
from bot.matrix.session import BotState, MatrixSettings, load_state, save_state
from bot.messages import Incoming, Reply
from bot.process import BotProcess
from bot.rate_limit import RateLimiter
from bot.telegram.app import TelegramBot
from db.models import ChatIdentity, Closeout, Delivery, Offer, ProcessedEvent, Request
from db.uow import UnitOfWork
from services.demo import DEMO_NAME
from tests.chat_world import NOW, START, START_TEXT, Clock, DemoCodes, arabic_summary_lines, make_demo
from tests.fake_bot_api import FakeBotApi, SentMessage
from tests.matrix_people import ENCRYPTION, PASSWORD, MatrixPerson, Received, unique, until
from tests.synapse_server import STORE_KEY, SynapseServer

ROOT = Path(__file__).resolve().parent.parent
DE, EN = Translator("de"), Translator("en")
SCHOOL_TG, AMIRA_TG = 1001, 2001  # Telegram user ids


@pytest.fixture(scope="session")
def synapse() -> Iterator[SynapseServer]:
    server = SynapseServer()
    server.start()
    yield server
    server.stop()


@dataclass
class Matrix:
    server: SynapseServer
    engine: Engine
    clock: Clock
    codes: DemoCodes
    folder: Path
    settings: MatrixSettings
    process: BotProcess
    people: list[MatrixPerson] = field(default_factory=list)

    @property
    def bot_id(self) -> str:
        return self.settings.user_id

    def start_bot(self) -> BotProcess:
        transport = MatrixBot(self.settings, engine=self.engine, clock=self.clock, poll_timeout=1)
        self.process = BotProcess(
            self.engine, [transport], limiter=RateLimiter(per_chat_gap=0.02), clock=self.clock
        )
        return self.process

    @property
    def transport(self) -> MatrixBot:
        transport = self.process.transports[0]
        assert isinstance(transport, MatrixBot)
        return transport

    async def person(
        self, name: str, code: str, *, encrypted: bool = False, language: str = ""
    ) -> MatrixPerson:
        """A person who opens a direct room to the bot and redeems their invite code."""
        person = MatrixPerson(self.server, name, self.folder / unique(name))
        self.people.append(person)
        await person.start()
        await person.open_room(self.bot_id, encrypted=encrypted)
        await person.say(f"!start {code}")
        if language:
            await person.say("!language")
            await person.say(language)
        return person


@pytest.fixture
async def matrix(engine: Engine, synapse: SynapseServer, tmp_path: Path) -> AsyncIterator[Matrix]:
    clock = Clock(NOW)
    codes = make_demo(engine, NOW)
    bot_name = unique("dolmetscherpool")
    bot_id = synapse.register(bot_name, PASSWORD)
    settings = MatrixSettings(
        synapse.url, bot_id, tmp_path / "bot-store", password=PASSWORD, store_key=STORE_KEY
    )
    world = Matrix(synapse, engine, clock, codes, tmp_path, settings, BotProcess(engine, []))
    process = world.start_bot()
    await process.start()
    try:
        yield world
    finally:
        await world.process.stop()
        for person in world.people:
            await person.stop()


async def _request_arabic(school: MatrixPerson) -> Received:
    """The request dialog, typed: names, values and numbers, to the summary."""
    asked = await school.say("!request")
    assert "<ol><li>" in asked.html  # the choices as a numbered list in the HTML body
    assert "\n1. " in asked.body  # and by number in the plain one
    for line in ("arabisch", "vor Ort", START_TEXT, "60", "1", "1", "1"):
        await school.say(line)
    return await school.say("1")


async def test_a_school_books_in_an_encrypted_room_and_the_money_comes_out_exact(
    matrix: Matrix, caplog: pytest.LogCaptureFixture
) -> None:
    mx = matrix
    caplog.set_level(logging.INFO)
    quiet_libraries()  # the levels `python -m bot run` uses
    school = await mx.person("school", mx.codes.school, encrypted=True)
    welcome = school.inbox[0]
    assert welcome.encrypted  # the bot answered in the encrypted room, encrypted
    assert welcome.body.startswith(
        DE.render("Welcome! You are registered as {role}.", {"role": DE.gettext("a school")})
    )
    assert "!request" in welcome.body  # commands as Element users type them
    assert "/request" not in welcome.body
    amira = await mx.person("amira", mx.codes.amira)
    samir = await mx.person("samir", mx.codes.samir)
    rojin = await mx.person("rojin", mx.codes.rojin, encrypted=True, language="English")
    office = await mx.person("office", mx.codes.coordinator)

    summary = await _request_arabic(school)
    assert [line for line in arabic_summary_lines(DE) if line not in summary.text] == []
    since = {p.user_id: len(p.inbox) for p in (amira, samir, rojin)}
    sent = await school.say("1")  # send the request
    assert sent.encrypted

    def is_offer(message: Received) -> bool:
        return message.text.startswith("#1 · ")

    offers = {
        p.user_id: await p.next_message(is_offer, since=since[p.user_id]) for p in (amira, samir, rojin)
    }
    assert "Di., 10.03.2026, 10:00 Uhr" in offers[amira.user_id].text
    assert DE.money(2400) in offers[amira.user_id].text  # Amira lives in Soltau: no travel
    assert "€36.88" in offers[rojin.user_id].text
    assert offers[rojin.user_id].encrypted
    assert offers[rojin.user_id].text.endswith("\n\n1. Accept\n2. Decline")

    # Samir types the number of "Accept"; the others' offers are edited to "taken".
    booked_since = len(school.inbox)
    await samir.send("1")
    booked = await school.next_message(lambda m: "Samir" in m.text, since=booked_since)
    assert "+49 5191 0000" in booked.text
    await until(lambda: bool(school.files), what="the calendar file")
    assert (school.files[0].body, type(school.files[0]).__name__) == (
        "dolmetscheinsatz-1.ics",
        "RoomEncryptedFile",
    )
    calendar = Calendar.from_ical(await school.file_content(school.files[0]))
    event = calendar.walk("VEVENT")[0]
    assert isinstance(event, Event)
    assert (str(event["uid"]), event["sequence"], event.start) == ("request-1@dolmetscherpool", 1, START)
    taken_de = DE.gettext("Someone else has already taken this job. Thank you!")
    await amira.edited(offers[amira.user_id], lambda text: taken_de in text)
    await rojin.edited(
        offers[rojin.user_id],
        lambda text: EN.gettext("Someone else has already taken this job. Thank you!") in text,
    )
    await samir.edited(offers[samir.user_id], lambda text: "!jobs" in text)

    # After the session: 75 minutes and 18 km, confirmed by the school in its encrypted room.
    mx.clock.now = START + timedelta(minutes=80)
    asked = await samir.say("!report")
    assert DE.render("{minutes} min as planned", {"minutes": 60}) in asked.text
    await samir.say("75")
    await samir.say("18")
    check = await samir.say("0")
    assert DE.money(4140) in check.text
    report_since = len(school.inbox)
    await samir.say("1")  # send the report
    reported = await school.next_message(lambda m: DE.money(4140) in m.text, since=report_since)
    assert reported.encrypted
    confirmed = await school.say("1")  # confirm
    with UnitOfWork(mx.engine) as uow:
        request = uow.session.exec(select(Request)).one()
        closeout = uow.session.exec(select(Closeout)).one()
        accepted = uow.session.exec(select(Offer).where(Offer.state == "accepted")).all()
    assert confirmed.text == DE.render(
        "Thank you, the report for #{request_id} is confirmed.", {"request_id": request.id}
    )
    assert request.state == "settled"
    assert len(accepted) == 1
    assert closeout.amount_cents == 4140
    budget = await office.say("!budget")
    assert DE.money(495860) in budget.text
    await until(lambda: bool(office.files), what="the budget chart")
    chart = office.files[0]
    assert (chart.body, chart.source["content"]["msgtype"]) == ("budget-2026.png", "m.image")
    assert {k: chart.source["content"]["info"][k] for k in ("w", "h")} == {"w": 800, "h": 450}
    assert (await office.file_content(chart))[:8] == b"\x89PNG\r\n\x1a\n"
    # The log tells what happened, never what was written, nor a code or a token.
    assert caplog.text.count("joined room") == 5  # the log was captured: one join per person
    secrets = [
        mx.codes.school,
        mx.codes.rojin,
        "arabisch",
        "vor Ort",
        PASSWORD,
        mx.transport.client.access_token,
    ]
    assert [s for s in secrets if s in caplog.text] == []


def _handled_events(engine: Engine) -> int:
    with UnitOfWork(engine) as uow:
        return len(uow.session.exec(select(ProcessedEvent).where(ProcessedEvent.platform == "matrix")).all())


async def test_a_restart_mid_dialog_continues_and_answers_nothing_twice(matrix: Matrix) -> None:
    mx = matrix
    school = await mx.person("school", mx.codes.school, encrypted=True)
    language_question = await school.say("!request")
    await school.say("arabisch")
    device = load_state(mx.settings.store_path).device_id
    replay_from = load_state(mx.settings.store_path).sync_token
    when_question = await school.say("vor Ort")

    await mx.process.stop()
    # The bot is down; the school answers anyway. Then the bot's last saved sync token is set back,
    # as if it had crashed after answering but before saving: the homeserver sends those events again.
    await school.send(START_TEXT)
    state_file = mx.settings.store_path / "bot-state.json"
    state = load_state(mx.settings.store_path)
    assert state.sync_token
    assert state.sync_token != replay_from
    state_file.write_text(state_file.read_text().replace(state.sync_token, replay_from))
    since = len(school.inbox)
    await mx.start_bot().start()

    duration_question = await school.next_message(since=since)
    assert duration_question.text.startswith(
        DE.gettext("How long will it take? Choose or type the minutes (e.g. 75 or 1:15).")
    )
    assert duration_question.encrypted  # the same device: the encrypted room works on
    assert load_state(mx.settings.store_path).device_id == device
    await asyncio.sleep(1.5)  # a full poll: a second answer to anything would have arrived by now
    texts = [m.text for m in school.inbox]
    assert texts.count(language_question.text) == 1
    assert texts.count(when_question.text) == 1
    assert len(school.inbox) == len(school.sent_event_ids)  # one answer per message, none twice
    assert _handled_events(mx.engine) == len(school.sent_event_ids)


async def test_events_from_before_the_first_start_are_ignored(
    engine: Engine, synapse: SynapseServer, tmp_path: Path
) -> None:
    codes = make_demo(engine, NOW)
    bot_id = synapse.register(unique("newbot"), PASSWORD)
    settings = MatrixSettings(
        synapse.url, bot_id, tmp_path / "bot-store", password=PASSWORD, store_key=STORE_KEY
    )
    school = MatrixPerson(synapse, "school", tmp_path / "school")
    await school.start()
    try:
        # Invited and written to before the bot ever ran: it joins later, but answers only what is new.
        created = await school.client.room_create(is_direct=True, invite=[bot_id])
        school.room_id = created.room_id
        await until(lambda: created.room_id in school.client.rooms, what="the room in the sync")
        await school.send(f"!start {codes.school}")
        clock = Clock(NOW)
        process = BotProcess(engine, [MatrixBot(settings, engine=engine, clock=clock, poll_timeout=1)])
        await process.start()
        try:
            onboarding = await school.say("hallo")
            assert onboarding.text == DE.gettext(
                "Welcome to Dolmetscherpool. This bot is for the schools, interpreters and "
                "coordination office of a county's interpreter pool. To take part you need an "
                "invite code from your coordination office; then send: /start CODE"
            ).replace("/start", "!start") + "\n\n" + DE.render(
                "Privacy: {district} is responsible for this bot. It stores your chat account only once "
                "you join with a code, and then only what the pool needs. /privacy shows the full notice.",
                {"district": DEMO_NAME},
            ).replace("/privacy", "!privacy")
            await asyncio.sleep(1.5)
            assert len(school.inbox) == 1  # the old "!start" was not answered
            with UnitOfWork(engine) as uow:
                assert uow.session.exec(select(ChatIdentity)).all() == []
        finally:
            await process.stop()
    finally:
        await school.stop()


async def _send_arabic_request(school: MatrixPerson) -> None:
    await _request_arabic(school)
    await school.send("1")


async def test_the_homeserver_rate_limit_is_waited_out_and_nothing_arrives_twice(
    matrix: Matrix, caplog: pytest.LogCaptureFixture
) -> None:
    mx = matrix
    caplog.set_level(logging.INFO, logger="bot")
    school = await mx.person("school", mx.codes.school)
    amira = await mx.person("amira", mx.codes.amira)
    samir = await mx.person("samir", mx.codes.samir)
    await _request_arabic(school)
    mx.server.limit_messages(mx.bot_id, per_second=1, burst_count=1)
    try:
        since = len(school.inbox)
        await school.send("1")  # send: a direct reply and three notifications, at most one a second
        await school.next_message(lambda m: "#1" in m.text, since=since)
        offers = [await p.next_message(lambda m: m.text.startswith("#1 · ")) for p in (amira, samir)]
        assert all(o.text.endswith("\n\n1. Annehmen\n2. Ablehnen") for o in offers)
        # Two commands at once: the second answer meets the limit and waits for retry_after_ms.
        since = len(school.inbox)
        await school.send("!help")
        await school.send("!bookings")
        listed = await school.next_message(lambda m: m.text.startswith(DE.gettext("Open:")), since=since)
        helped = await school.next_message(
            lambda m: m.text.startswith(DE.gettext("What you can do as {role}:")[:8]), since=since
        )
        assert school.inbox.index(helped) < school.inbox.index(listed)  # answered in order
    finally:
        mx.server.unlimit_messages(mx.bot_id)
    await asyncio.sleep(1.5)
    assert [m.text.startswith("#1 · ") for m in amira.inbox].count(True) == 1
    assert [m.text.startswith("#1 · ") for m in samir.inbox].count(True) == 1
    with UnitOfWork(mx.engine) as uow:
        rows = uow.session.exec(select(Delivery)).all()
    assert all(d.sent_at is not None for d in rows)
    assert any(d.attempts > 1 and d.last_error == "429" for d in rows)  # held back, then sent


async def test_a_retried_send_with_the_same_key_posts_once(matrix: Matrix) -> None:
    mx = matrix
    school = await mx.person("school", mx.codes.school, encrypted=True)
    first = await mx.transport.sender.send(school.room_id, Reply("Erinnerung"), key="delivery-77")
    again = await mx.transport.sender.send(school.room_id, Reply("Erinnerung"), key="delivery-77")
    other = await mx.transport.sender.send(school.room_id, Reply("Erinnerung"), key="delivery-78")
    assert first == again != other
    await school.next_message(lambda m: m.event_id == other.split("|")[1])
    assert [m.text for m in school.inbox].count("Erinnerung") == 2


async def test_a_person_who_left_the_room_is_reached_in_a_new_one(matrix: Matrix) -> None:
    mx = matrix
    school = await mx.person("school", mx.codes.school)
    amira = await mx.person("amira", mx.codes.amira)
    old_room = amira.room_id
    await amira.client.room_leave(old_room)
    await until_left(mx, old_room)

    await _send_arabic_request(school)
    offer = await amira.next_message(lambda m: m.text.startswith("#1 · "))
    assert offer.room_id != old_room
    assert offer.encrypted  # a room the bot opens is encrypted
    with UnitOfWork(mx.engine) as uow:
        identity = uow.session.exec(select(ChatIdentity).where(ChatIdentity.user_id == amira.user_id)).one()
    assert identity.chat_id == offer.room_id
    since = len(school.inbox)
    await amira.send("1", room_id=offer.room_id)  # Accept, typed in the new room
    await school.next_message(lambda m: "Amira" in m.text, since=since)


async def until_left(mx: Matrix, room_id: str) -> None:
    """Wait until the bot has left a room its person left."""
    await until(lambda: not mx.transport.sender.usable(room_id), what="the bot to leave")


async def test_a_group_room_is_refused_and_left(matrix: Matrix) -> None:
    mx = matrix
    school = await mx.person("school", mx.codes.school)
    colleague = MatrixPerson(mx.server, "colleague", mx.folder / "colleague")
    mx.people.append(colleague)
    await colleague.start()
    refusal_text = DE.gettext(
        "I only talk in direct chats, so that nobody else reads along. Please start a direct chat with me."
    )
    created = await school.client.room_create(name="Kollegium", invite=[mx.bot_id, colleague.user_id])
    refusal = await school.next_message(lambda m: m.room_id == created.room_id)
    assert refusal.text == refusal_text
    await until_left(mx, created.room_id)

    # A direct room that becomes a group: the bot says so once and leaves; nothing more goes there.
    direct = school.room_id
    await school.client.room_invite(direct, colleague.user_id)
    said = await school.next_message(lambda m: m.room_id == direct and m.text == refusal_text)
    await until_left(mx, direct)
    assert [m.text for m in school.inbox if m.room_id == direct].count(said.text) == 1


async def until_joined(mx: Matrix, room_id: str) -> None:
    await until(lambda: mx.transport.sender.usable(room_id), what="the bot to join")


async def _telegram_say(api: FakeBotApi, user: int, text: str) -> SentMessage:
    since = len(api.sent(user))
    api.push_text(user, text)
    return await api.wait_for_message(user, since=since)


async def _telegram_request(api: FakeBotApi, start_text: str) -> None:
    for line in ("/request", "ar", "vor Ort", start_text, "60", "1", "1", "1", "1"):
        await _telegram_say(api, SCHOOL_TG, line)
    api.push_text(SCHOOL_TG, "1")  # send


async def test_one_process_serves_both_platforms_and_a_person_linked_on_both(
    engine: Engine, synapse: SynapseServer, tmp_path: Path
) -> None:
    clock, codes = Clock(NOW), make_demo(engine, NOW)
    api = FakeBotApi()
    await api.start()
    bot_id = synapse.register(unique("bothbot"), PASSWORD)
    settings = MatrixSettings(
        synapse.url, bot_id, tmp_path / "bot-store", password=PASSWORD, store_key=STORE_KEY
    )
    telegram = TelegramBot(token=api.token, engine=engine, base_url=api.base_url, clock=clock, poll_timeout=1)
    matrix_bot = MatrixBot(settings, engine=engine, clock=clock, poll_timeout=1)
    process = BotProcess(engine, [telegram, matrix_bot], limiter=RateLimiter(per_chat_gap=0.02), clock=clock)
    await process.start()
    amira = MatrixPerson(synapse, "amira", tmp_path / "amira")
    try:
        await _telegram_say(api, SCHOOL_TG, f"/start {codes.school}")
        await _telegram_say(api, AMIRA_TG, f"/start {codes.amira}")
        connect = await _telegram_say(api, AMIRA_TG, "/connect")
        code = connect.text.split("/start ")[1].split()[0]
        await amira.start()
        await amira.open_room(bot_id, encrypted=True)
        linked = await amira.say(f"!start {code}")
        assert linked.text.startswith(
            DE.render(
                "This chat is linked now: here too you act as {role}.", {"role": DE.gettext("an interpreter")}
            )
        )
        reused = await amira.say(f"!start {code}")
        assert reused.text == DE.render(
            "You are already registered as {role}.", {"role": DE.gettext("an interpreter")}
        )

        # She wrote on Matrix last: the offer goes there, not to Telegram.
        telegram_before = len(api.sent(AMIRA_TG))
        await _telegram_request(api, START_TEXT)
        await amira.next_message(lambda m: m.text.startswith("#1 · "))
        await asyncio.sleep(1)
        assert len(api.sent(AMIRA_TG)) == telegram_before

        # On Telegram she chooses every linked chat: the next offer arrives in both.
        asked = await _telegram_say(api, AMIRA_TG, "/notify")
        assert asked.text.startswith(
            DE.render(
                "Where should notifications reach you? Linked: {platforms}.",
                {"platforms": "Matrix, Telegram"},
            )
        )
        api.press(AMIRA_TG, asked.message_id, "notify-all")
        await api.wait_for_message(
            AMIRA_TG,
            lambda m: m.text == DE.gettext("Done: notifications now reach you in every linked chat."),
        )
        await _telegram_request(api, "11.3. 10:00")
        on_matrix = await amira.next_message(lambda m: m.text.startswith("#2 · "))
        on_telegram = await api.wait_for_message(AMIRA_TG, lambda m: m.text.startswith("#2 · "))
        accept = next(key for _, key in on_telegram.buttons if key.startswith("of:a:"))
        api.press(AMIRA_TG, on_telegram.message_id, accept)  # accepted on Telegram: both messages change
        await api.wait_for_edit(AMIRA_TG, on_telegram.message_id, lambda m: "/jobs" in m.text)
        assert "!jobs" in await amira.edited(on_matrix, lambda text: "!jobs" in text)
    finally:
        await process.stop()
        await amira.stop()
        await api.stop()


async def test_a_message_encrypted_before_the_bot_joined_gets_a_request_to_send_it_again(
    matrix: Matrix,
) -> None:
    mx = matrix
    school = MatrixPerson(mx.server, "school", mx.folder / "early")
    mx.people.append(school)
    await school.start()
    # An encrypted room where the school writes before inviting the bot: the bot never got that key.
    created = await school.client.room_create(is_direct=True, initial_state=[ENCRYPTION])
    school.room_id = created.room_id
    await until(lambda: _encrypted(school, school.room_id), what="the room's encryption")
    await school.send(f"!start {mx.codes.school}")
    await school.client.room_invite(school.room_id, mx.bot_id)
    asked = await school.next_message()
    assert asked.text == DE.gettext(
        "I could not read your last message: it was encrypted before I could read along. "
        "Please send it again."
    )
    assert asked.encrypted
    welcome = await school.say(f"!start {mx.codes.school}")  # sent again, now readable
    assert welcome.text.startswith(
        DE.render("Welcome! You are registered as {role}.", {"role": DE.gettext("a school")})
    )


def _encrypted(person: MatrixPerson, room_id: str) -> bool:
    room = person.client.rooms.get(room_id)
    return room is not None and bool(room.encrypted)


async def test_python_m_bot_run_serves_matrix_and_refuses_a_bad_configuration(
    synapse: SynapseServer, tmp_path: Path
) -> None:
    bot_id = synapse.register(unique("clibot"), PASSWORD)
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'run.sqlite3'}",
        "BOT_LOCALE": "en",
        "MATRIX_HOMESERVER": synapse.url,
        "MATRIX_USER_ID": bot_id,
        "MATRIX_PASSWORD": PASSWORD,
        "MATRIX_STORE_PATH": str(tmp_path / "store"),
        "MATRIX_STORE_KEY": STORE_KEY,
    }
    env.pop("TELEGRAM_TOKEN", None)
    env.pop("MATRIX_ACCESS_TOKEN", None)
    store = tmp_path / "store"
    store.mkdir(mode=0o755)  # as a careless operator leaves it: the bot makes it private
    store.chmod(0o755)
    (store / "notes.txt").write_text("")
    (store / "notes.txt").chmod(0o644)
    made = subprocess.run(
        [sys.executable, "-m", "bot", "init", "--demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    school_code = made.stdout.split("School – ")[1].split(": ")[1].split()[0]
    # The coordinator's invite lines say how to start on Matrix too.
    assert f"  Matrix: invite {bot_id} to a direct chat, then send !start {school_code}\n" in made.stdout
    bot = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    school = MatrixPerson(synapse, "school", tmp_path / "school")
    try:
        await school.start()
        await school.open_room(bot_id, encrypted=True)
        welcome = await school.say(f"!start {school_code}")
        assert welcome.text.startswith("Willkommen!")
    finally:
        await school.stop()
        bot.send_signal(signal.SIGTERM)
        out, err = await bot.communicate()
    assert bot.returncode == 0, err
    assert out.decode() == "The bot is running (matrix). Stop it with Ctrl+C.\n"
    assert school_code not in err.decode()
    assert PASSWORD not in err.decode()
    assert STORE_KEY not in err.decode()
    _assert_private_and_keyed(store, bot_id)

    no_key = {**env, "MATRIX_STORE_KEY": "", "MATRIX_STORE_PATH": str(tmp_path / "new-store")}
    keyless = subprocess.run(
        [sys.executable, "-m", "bot", "run"],
        cwd=ROOT,
        env=no_key,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (keyless.returncode, keyless.stderr) == (
        2,
        "Set MATRIX_STORE_KEY: the bot encrypts its Matrix keys in MATRIX_STORE_PATH with it. "
        "Choose a random secret of at least 16 characters and keep it apart from the store's backup.\n",
    )
    assert not (tmp_path / "new-store").exists()

    missing = subprocess.run(
        [sys.executable, "-m", "bot", "run"],
        cwd=ROOT,
        env={**env, "MATRIX_PASSWORD": ""},
        capture_output=True,
        text=True,
        check=False,
    )
    assert (missing.returncode, missing.stderr) == (
        2,
        "Set MATRIX_PASSWORD or MATRIX_ACCESS_TOKEN together with MATRIX_USER_ID.\n",
    )
    wrong = {**env, "MATRIX_PASSWORD": "wrong", "MATRIX_STORE_PATH": str(tmp_path / "other-store")}
    refused = subprocess.run(
        [sys.executable, "-m", "bot", "run"], cwd=ROOT, env=wrong, capture_output=True, text=True, check=False
    )
    assert refused.returncode == 2
    assert refused.stderr.endswith("The Matrix homeserver refused the bot's login (M_FORBIDDEN).\n")


def _assert_private_and_keyed(store: Path, bot_id: str) -> None:
    """The store is its owner's only; nio's account in it opens with MATRIX_STORE_KEY, not nio's default."""
    assert stat.S_IMODE(store.stat().st_mode) == 0o700
    files = sorted(path.name for path in store.iterdir())
    assert "bot-state.json" in files
    assert "notes.txt" in files
    databases = [path for path in store.iterdir() if path.suffix == ".db"]
    assert len(databases) == 1
    assert databases[0].name.startswith(bot_id)
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in store.iterdir()}
    assert modes == dict.fromkeys(files, 0o600)
    with sqlite3.connect(databases[0]) as connection:
        (pickle,) = connection.execute("SELECT account FROM accounts").fetchone()
    text = bytes(pickle).decode()
    vodozemac.Account.from_pickle(text, derive_pickle_key(STORE_KEY))
    with pytest.raises(vodozemac.PickleException):
        vodozemac.Account.from_pickle(text, derive_pickle_key("DEFAULT_KEY"))


async def test_a_sync_that_failed_after_handling_is_handled_again_without_answering_twice(
    matrix: Matrix, monkeypatch: pytest.MonkeyPatch
) -> None:
    mx = matrix
    school = await mx.person("school", mx.codes.school, encrypted=True)
    failures: list[str] = []

    def save_fails_once(store: Path, state: BotState) -> None:
        if not failures:
            failures.append(state.sync_token)
            raise OSError("disk full")
        save_state(store, state)

    monkeypatch.setattr("bot.matrix.app.save_state", save_fails_once)
    helped = await school.say("!help")  # answered, then the sync fails before its token is saved
    await until(lambda: bool(failures), what="the failed save")
    await asyncio.sleep(2.5)  # the retry (after a 1 s pause) gets the same encrypted events again
    after = await school.say("!bookings")
    assert [m.text for m in school.inbox].count(helped.text) == 1
    assert after.text == DE.gettext("You have no requests yet. /request makes one.").replace("/", "!")
    unreadable = DE.gettext(
        "I could not read your last message: it was encrypted before I could read along. "
        "Please send it again."
    )
    assert unreadable not in [m.text for m in school.inbox]  # the retried sync was decrypted again
    assert load_state(mx.settings.store_path).sync_token not in failures


async def test_a_message_that_meets_the_database_away_is_handled_once_it_is_back(
    matrix: Matrix, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    mx = matrix
    school = await mx.person("school", mx.codes.school)
    handle = mx.transport.conversation.handle_stored
    away: list[str] = []

    def database_away_once(event: Incoming) -> Handled:
        if not away:
            away.append(event.text)
            raise OperationalError("BEGIN", {}, Exception("connection refused"))
        return handle(event)

    monkeypatch.setattr(mx.transport.conversation, "handle_stored", database_away_once)
    answered = await school.say("!bookings")  # the sync is not saved; it comes again after a pause
    assert away == ["!bookings"]
    assert answered.text == DE.gettext("You have no requests yet. /request makes one.").replace("/", "!")
    sorry = DE.gettext("Sorry, something went wrong on our side. Please try again in a moment.")
    await asyncio.sleep(1)
    assert [m.text for m in school.inbox].count(answered.text) == 1
    assert sorry not in [m.text for m in school.inbox]  # nobody is asked to try again
