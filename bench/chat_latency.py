"""Button press to answer, through the real PTB stack against the fake Bot API server, vs. a bare bot.

Measures, in one process and one run:
- baseline: a bare PTB bot that answers a button press by sending a message (and one that edits);
- a step of the request dialog (summary -> change -> duration -> summary, every press timed);
- Accept on a fresh offer, until the offer message is edited to say the job is yours.
Prints the median and p95 in milliseconds and the ratio to the baseline, for the bot on SQLite and
on PostgreSQL (a cluster of its own, `--db`). The bare bot runs beside the bot, on a fake Bot API
of its own, and each of its presses comes right before one of the bot's: measured one after the
other, the two drifted apart with the machine (the bare bot's median 6.8-10.1 ms in one hour).

Every press, the bare bot's too, comes `THINK` seconds after the answer before it, as a person's
does: a press that follows the last answer within a millisecond measures the overall sending pace
(30 a second) and the recording of that answer, not the press. Both bots' start-up is set aside
from the garbage collector once they are started, as `python -m bot run` does (bot/heap.py).

Run: `.venv/bin/python -m bench.chat_latency [--rounds N] [--db both|sqlite|postgresql]`
"""

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine
from telegram import Update
from telegram.ext import Application, CallbackQueryHandler, ContextTypes

from bot.heap import set_aside_start_up
from bot.process import BotProcess
from bot.rate_limit import RateLimiter
from bot.telegram.app import TelegramBot
from db.engine import make_engine
from db.migrate import upgrade
from db.uow import UnitOfWork
from services.offers import offers_of
from services.requests import RequestDraft, submit_request
from services.vocabulary import Mode, Topic
from tests.chat_world import NOW, Clock, make_demo
from tests.fake_bot_api import FakeBotApi, SentMessage
from tests.pg_cluster import PostgresCluster

SCHOOL, AMIRA = 1001, 2001
THINK = 0.3  # seconds between an answer and the next press: a person reads before pressing


def summary(label: str, samples: list[float], baseline: list[float] | None) -> str:
    ms = sorted(s * 1000 for s in samples)
    median, p95 = statistics.median(ms), ms[max(0, round(0.95 * len(ms)) - 1)]
    line = f"{label:<34} n={len(ms):<4} median {median:7.2f} ms   p95 {p95:7.2f} ms"
    if baseline:
        base = statistics.median(baseline) * 1000
        line += f"   ratio {median / base:5.2f}x"
    return line


async def timed(action: Callable[[], Awaitable[SentMessage]]) -> float:
    start = time.perf_counter()
    await action()
    return time.perf_counter() - start


class BareBot:
    """A bare PTB bot on a fake Bot API of its own: one handler that sends a message (or edits) when
    a button is pressed. Each of its presses is timed right before one of the bot's, so both meet
    the machine in the same state (run one after the other, their medians drifted 30 % apart)."""

    def __init__(self, api: FakeBotApi) -> None:
        self.api = api
        self.app = (
            Application.builder().token(api.token).base_url(api.base_url).concurrent_updates(True).build()
        )
        self.app.add_handler(CallbackQueryHandler(self._on_button))
        self.message_id = 0
        self.sends: list[float] = []
        self.edits: list[float] = []

    @staticmethod
    async def _on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        assert query.message is not None
        await query.answer()
        if query.data == "edit":
            await query.edit_message_text(f"edited {time.perf_counter()}")
        else:
            await context.bot.send_message(query.message.chat.id, f"echo {query.data}")

    async def start(self) -> None:
        await self.app.initialize()
        await self.app.start()
        assert self.app.updater is not None
        await self.app.updater.start_polling(poll_interval=0, timeout=1)
        self.message_id = (await self.app.bot.send_message(42, "press", reply_markup=None)).message_id

    async def stop(self) -> None:
        assert self.app.updater is not None
        await self.app.updater.stop()
        await self.app.stop()
        await self.app.shutdown()

    async def send(self) -> None:
        """One press answered with a message, timed; `THINK` after the last answer."""
        await asyncio.sleep(THINK)
        self.sends.append(await timed(lambda: press_and_wait(self.api, 42, self.message_id, "send")))

    async def edit(self) -> None:
        """One press answered by editing the message, timed; `THINK` after the last answer."""
        await asyncio.sleep(THINK)
        self.edits.append(await timed(lambda: press_and_edit(self.api, 42, self.message_id, "edit")))


async def press_and_wait(api: FakeBotApi, chat: int, message_id: int, data: str) -> SentMessage:
    since = len(api.sent(chat))
    api.press(chat, message_id, data, strict=False)
    return await api.wait_for_message(chat, since=since)


async def press_and_edit(api: FakeBotApi, chat: int, message_id: int, data: str) -> SentMessage:
    api.press(chat, message_id, data, strict=False)
    return await api.wait_for_edit(chat, message_id)


async def dialog_and_accept(
    api: FakeBotApi, rounds: int, engine: Engine, bare: BareBot
) -> tuple[list[float], list[float]]:
    """The bot's dialog steps and Accepts, timed, each right after one of the bare bot's presses."""
    upgrade(engine)
    codes = make_demo(engine, NOW)
    clock = Clock(NOW)
    telegram = TelegramBot(token=api.token, engine=engine, base_url=api.base_url, clock=clock, poll_timeout=1)
    bot = BotProcess(engine, [telegram], limiter=RateLimiter(per_chat_gap=0), clock=clock)
    await bot.start()
    set_aside_start_up()  # what `python -m bot run` does after the start (bot/cli/serve.py); the bare bot too
    for user, code in ((SCHOOL, codes.school), (AMIRA, codes.amira)):
        api.push_text(user, f"/start {code}")
        await api.wait_for_message(user)
    current = None
    # Every answer is the next question (a wrong input would time an error and its second message).
    for text in ("/request", "ar", "1", "10.3. 10:00", "60", "1", "1", "1", "none"):
        since = len(api.sent(SCHOOL))
        api.push_text(SCHOOL, text)
        current = await api.wait_for_message(SCHOOL, since=since)
    assert current is not None
    assert current.buttons[0][1] == "send", current.text
    steps: list[float] = []
    for _ in range(rounds):
        for key, first_button in (("change", "language"), ("duration", "30"), ("60", "send")):
            await bare.send()
            await asyncio.sleep(THINK)
            start = time.perf_counter()
            current = await press_and_wait(api, SCHOOL, current.message_id, key)
            steps.append(time.perf_counter() - start)
            assert current.buttons[0][1] == first_button, current.text
    await asyncio.sleep(0.1)
    assert api.sent(SCHOOL)[-1].message_id == current.message_id, "a step answered with more than one message"

    accepts: list[float] = []
    for n in range(rounds):
        with UnitOfWork(engine) as uow:
            draft = RequestDraft(
                school_id=1, language="fr", mode=Mode.PHONE, starts_at=NOW + timedelta(days=2, hours=n),
                duration_minutes=30, topic=Topic.PARENT_TALK,
            )  # fmt: skip
            request = submit_request(uow.session, district_id=1, draft=draft, actor="bench", now=clock())
            uow.commit()
            offer_ids = {o.interpreter_id: o.id for o in offers_of(uow.session, request.id or 0)}
        bot.deliverer.wake.set()
        offer = await api.wait_for_message(AMIRA, lambda m: bool(m.buttons))
        await bare.edit()
        await asyncio.sleep(THINK)
        start = time.perf_counter()
        api.press(AMIRA, offer.message_id, f"of:a:{offer_ids[1]}")
        await api.wait_for_edit(AMIRA, offer.message_id, lambda m: "/jobs" in m.text)
        accepts.append(time.perf_counter() - start)
    await bot.stop()
    engine.dispose()
    return steps, accepts


def engines(which: str, folder: Path) -> Iterator[tuple[str, Engine]]:
    """An empty database of each kind asked for: SQLite in `folder`, PostgreSQL in a cluster of its own."""
    if which in ("both", "sqlite"):
        yield "SQLite", make_engine(f"sqlite:///{folder / 'bench.sqlite3'}")
    if which in ("both", "postgresql"):
        cluster = PostgresCluster()
        cluster.start()
        try:
            yield "PostgreSQL", make_engine(cluster.create_database("chat"))
        finally:
            cluster.stop()


async def main(rounds: int, which: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        for label, engine in engines(which, Path(folder)):
            async with FakeBotApi() as bare_api, FakeBotApi() as api:
                bare = BareBot(bare_api)
                await bare.start()
                try:
                    steps, accepts = await dialog_and_accept(api, rounds, engine, bare)
                finally:
                    await bare.stop()
            print(summary(f"baseline: bare PTB, press -> send (beside {label})", bare.sends, None))
            print(summary(f"baseline: bare PTB, press -> edit (beside {label})", bare.edits, None))
            print(summary(f"request dialog step ({label})", steps, bare.sends))
            print(summary(f"Accept, press -> offer edited ({label})", accepts, bare.edits))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--db", choices=("both", "sqlite", "postgresql"), default="both")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.rounds, arguments.db))
