"""The bot on Matrix, end to end: a real Synapse homeserver, the real bot, real matrix-nio clients.

Synapse is started once for the suite (SQLite, 127.0.0.1, rate limits lifted); every test has its
own bot account, store and people, so tests do not see each other's rooms.
"""

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from bot.i18n import Translator
from bot.matrix.app import MatrixBot
from bot.matrix.session import MatrixSettings
from bot.process import BotProcess
from bot.rate_limit import RateLimiter
from db.models import Closeout, Offer, Request
from db.uow import UnitOfWork
from tests.chat_world import NOW, START, START_TEXT, Clock, DemoCodes, make_demo
from tests.matrix_people import PASSWORD, MatrixPerson, Received, unique
from tests.synapse_server import SynapseServer

DE, EN = Translator("de"), Translator("en")


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
    settings = MatrixSettings(synapse.url, bot_id, tmp_path / "bot-store", password=PASSWORD)
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


async def test_a_school_books_in_an_encrypted_room_and_the_money_comes_out_exact(matrix: Matrix) -> None:
    mx = matrix
    school = await mx.person("school", mx.codes.school, encrypted=True)
    welcome = school.inbox[0]
    assert welcome.encrypted  # the bot answered in the encrypted room, encrypted
    assert welcome.body.startswith(
        DE.render("Welcome! You are registered as {role}.", {"role": DE.gettext("school")})
    )
    assert "!request" in welcome.body  # commands as Element users type them
    assert "/request" not in welcome.body
    amira = await mx.person("amira", mx.codes.amira)
    samir = await mx.person("samir", mx.codes.samir)
    rojin = await mx.person("rojin", mx.codes.rojin, encrypted=True, language="English")
    office = await mx.person("office", mx.codes.coordinator)

    summary = await _request_arabic(school)
    assert DE.render("Estimated cost: {estimate_cents}", {"estimate_cents": 3688}) in summary.text
    assert (
        DE.render(
            "Budget left: {available_cents}, afterwards {after_cents}.",
            {"available_cents": 500000, "after_cents": 496312},
        )
        in summary.text
    )
    since = {p.user_id: len(p.inbox) for p in (amira, samir, rojin)}
    sent = await school.say("1")  # send the request
    assert sent.encrypted

    def is_offer(message: Received) -> bool:
        return message.text.startswith("#1 · ")

    offers = {
        p.user_id: await p.next_message(is_offer, since=since[p.user_id]) for p in (amira, samir, rojin)
    }
    assert "10.03.26, 10:00" in offers[amira.user_id].text
    assert DE.money(2400) in offers[amira.user_id].text  # Amira lives in Soltau: no travel
    assert "€36.88" in offers[rojin.user_id].text
    assert offers[rojin.user_id].encrypted
    assert offers[rojin.user_id].text.endswith("\n\n1. Accept\n2. Decline")

    # Samir types the number of "Accept"; the others' offers are edited to "taken".
    booked_since = len(school.inbox)
    await samir.send("1")
    booked = await school.next_message(lambda m: "Samir" in m.text, since=booked_since)
    assert "+49 5191 0000" in booked.text
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
