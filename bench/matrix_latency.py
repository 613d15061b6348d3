"""A message to its answer on Matrix: real Synapse, the real bot and a real nio client, vs. a bare bot.

Measures, in one process and one run, with one Synapse (SQLite) started for it:
- baseline: a bare matrix-nio bot that echoes each message (sync_forever and room_send), in a
  plain and in an encrypted direct room;
- the Dolmetscherpool bot answering a command (`!help`: member, dialog and event id read and
  written in one transaction), in a plain and in an encrypted direct room.
Prints the median and p95 in milliseconds and the ratio to the baseline of the same room kind.

Run: `.venv/bin/python -m bench.matrix_latency [--rounds N]`
"""

import argparse
import asyncio
import contextlib
import tempfile
import time
from pathlib import Path

from nio import AsyncClient, AsyncClientConfig, InviteMemberEvent, MatrixRoom, RoomMessageText

from bench.chat_latency import summary
from bot.matrix.app import MatrixBot
from bot.matrix.session import MatrixSettings
from bot.process import BotProcess
from bot.rate_limit import RateLimiter
from db.engine import make_engine
from db.migrate import upgrade
from tests.chat_world import NOW, Clock, make_demo
from tests.matrix_people import PASSWORD, MatrixPerson, unique
from tests.synapse_server import STORE_KEY, SynapseServer


async def round_trips(person: MatrixPerson, text: str, rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        await person.say(text)
        samples.append(time.perf_counter() - start)
    return samples


async def echo_bot(server: SynapseServer, folder: Path, rounds: int) -> tuple[list[float], list[float]]:
    """A bare nio bot: joins when invited, echoes every text."""
    bot_id = server.register(unique("echo"), PASSWORD)
    config = AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True, pickle_key=STORE_KEY)
    (folder / "echo").mkdir()
    echo = AsyncClient(server.url, bot_id, store_path=str(folder / "echo"), config=config)
    await echo.login(PASSWORD)

    async def on_invite(room: MatrixRoom, event: InviteMemberEvent) -> None:
        if event.state_key == bot_id:
            await echo.join(room.room_id)

    async def on_text(room: MatrixRoom, event: RoomMessageText) -> None:
        if event.sender != bot_id:
            content = {"msgtype": "m.text", "body": f"echo {event.body}"}
            await echo.room_send(room.room_id, "m.room.message", content, ignore_unverified_devices=True)

    echo.add_event_callback(on_invite, InviteMemberEvent)
    echo.add_event_callback(on_text, RoomMessageText)
    syncing = asyncio.create_task(echo.sync_forever(timeout=30000, full_state=True))
    results = []
    for encrypted in (False, True):
        person = MatrixPerson(server, "person", folder / unique("person"))
        await person.start()
        await person.open_room(bot_id, encrypted=encrypted)
        await round_trips(person, "warm-up", 3)
        results.append(await round_trips(person, "hallo", rounds))
        await person.stop()
    syncing.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await syncing
    await echo.close()
    return results[0], results[1]


async def dolmetscherpool(
    server: SynapseServer, folder: Path, rounds: int
) -> tuple[list[float], list[float]]:
    engine = make_engine(f"sqlite:///{folder / 'bench.sqlite3'}")
    upgrade(engine)
    codes = make_demo(engine, NOW)
    clock = Clock(NOW)
    bot_id = server.register(unique("dolmetscherpool"), PASSWORD)
    settings = MatrixSettings(
        server.url, bot_id, folder / "bot-store", password=PASSWORD, store_key=STORE_KEY
    )
    transport = MatrixBot(settings, engine=engine, clock=clock)
    process = BotProcess(engine, [transport], limiter=RateLimiter(per_chat_gap=0), clock=clock)
    await process.start()
    results = []
    for encrypted, code in ((False, codes.school), (True, codes.coordinator)):
        person = MatrixPerson(server, "person", folder / unique("person"))
        await person.start()
        await person.open_room(bot_id, encrypted=encrypted)
        await person.say(f"!start {code}")
        await round_trips(person, "!help", 3)
        results.append(await round_trips(person, "!help", rounds))
        await person.stop()
    await process.stop()
    engine.dispose()
    return results[0], results[1]


async def main(rounds: int) -> None:
    server = SynapseServer()
    server.start()
    try:
        with tempfile.TemporaryDirectory() as folder:
            plain_echo, encrypted_echo = await echo_bot(server, Path(folder), rounds)
            plain, encrypted = await dolmetscherpool(server, Path(folder), rounds)
    finally:
        server.stop()
    print(summary("baseline: bare nio echo, plain", plain_echo, None))
    print(summary("baseline: bare nio echo, encrypted", encrypted_echo, None))
    print(summary("!help answered, plain room", plain, plain_echo))
    print(summary("!help answered, encrypted room", encrypted, encrypted_echo))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    asyncio.run(main(parser.parse_args().rounds))
