"""One notification to 100 chats against a Bot API that answers 429 above 30/s overall or 1/s per chat.

Measures, in one process and one run, against the fake Bot API with that rate limit:
- baseline: a bare PTB bot sending the 100 messages one after another, as fast as it can, and
  waiting out each 429's retry_after before sending that message again;
- the bot's delivery: one outbox row to 100 coordinators, expanded and sent through the one paced
  sender (the real `Deliverer`, SQLite).
Prints messages a second (from the first message accepted to the last, so the bot's reading of
the outbox before its first send is apart) and the 429s each drew.

Run: `.venv/bin/python -m bench.fanout [--chats 100] [--rounds 3]`
"""

import argparse
import asyncio
import tempfile
import warnings
from datetime import timedelta
from pathlib import Path

from sqlalchemy.engine import Engine
from telegram import Bot
from telegram.error import RetryAfter

from bot.delivery import Deliverer
from bot.telegram.sender import TelegramSender
from db.engine import make_engine
from db.migrate import upgrade
from db.uow import UnitOfWork
from services.notices import AllowanceNear
from services.outbox import notify
from services.vocabulary import Recipient
from tests.chat_world import NOW, Clock, linked_coordinators
from tests.fake_bot_api import FakeBotApi

FIRST_CHAT = 5001


def line(label: str, messages: int, seconds: float, refused: int) -> str:
    rate = (messages - 1) / seconds  # intervals between the first and the last
    return f"{label:<44} {messages:>4} msgs in {seconds:6.2f} s   {rate:6.2f} msg/s   429s {refused:>4}"


def span(api: FakeBotApi, chats: int) -> float:
    """Seconds from the first message the fake accepted to the last."""
    times = [m.accepted_at for c in range(FIRST_CHAT, FIRST_CHAT + chats) for m in api.sent(c)]
    return max(times) - min(times)


async def bare(api: FakeBotApi, chats: int) -> tuple[int, float, int]:
    """A bare PTB bot: send to every chat in turn; on a 429 wait its retry_after and send it again."""
    bot = Bot(api.token, base_url=api.base_url)
    await bot.initialize()
    before = api.rate_limited
    for chat in range(FIRST_CHAT, FIRST_CHAT + chats):
        while True:
            try:
                await bot.send_message(chat_id=chat, text="Neue Nachricht")
                break
            except RetryAfter as exc:
                with warnings.catch_warnings():  # PTB 22 warns that retry_after becomes a timedelta
                    warnings.simplefilter("ignore")
                    wait = exc.retry_after
                await asyncio.sleep(wait.total_seconds() if isinstance(wait, timedelta) else float(wait))
    await bot.shutdown()
    return chats, span(api, chats), api.rate_limited - before


def _coordinators(folder: Path, chats: int) -> tuple[Engine, int]:
    engine = make_engine(f"sqlite:///{folder / 'fanout.sqlite3'}")
    upgrade(engine)
    return engine, linked_coordinators(engine, range(FIRST_CHAT, FIRST_CHAT + chats), now=NOW, locale="de")


async def paced(api: FakeBotApi, folder: Path, chats: int, year: int) -> tuple[int, float, int]:
    """The bot's delivery: one notification to every coordinator, through the paced sender."""
    engine, district_id = _coordinators(folder, chats)
    clock = Clock(NOW)
    bot = Bot(api.token, base_url=api.base_url)
    await bot.initialize()
    deliverer = Deliverer(engine, {"telegram": TelegramSender(bot)}, clock=clock)
    with UnitOfWork(engine) as uow:
        notice = AllowanceNear(year=year, paid_cents=76000, allowance_cents=84000)
        notify(
            uow.session, district_id=district_id, recipient=Recipient.COORDINATORS, recipient_id=district_id,
            notice=notice, now=NOW,
        )  # fmt: skip
        uow.commit()
    before = api.rate_limited
    while sum(len(api.sent(c)) for c in range(FIRST_CHAT, FIRST_CHAT + chats)) < chats:
        await deliverer.run_once()
        await asyncio.sleep(0.01)
    await bot.shutdown()
    engine.dispose()
    return chats, span(api, chats), api.rate_limited - before


async def main(chats: int, rounds: int) -> None:
    results: list[str] = []
    for round_ in range(rounds):
        with tempfile.TemporaryDirectory() as folder:
            async with FakeBotApi() as api:
                api.limit_rate(overall=30, per_chat=1)
                base = await bare(api, chats)
            await asyncio.sleep(1.1)  # a fresh second for the fake's counting
            async with FakeBotApi() as api:
                api.limit_rate(overall=30, per_chat=1)
                ours = await paced(api, Path(folder), chats, 2026 + round_)
        results.append(line(f"baseline: bare PTB, one after another (#{round_ + 1})", *base))
        results.append(line(f"delivery: one notice to {chats} chats (#{round_ + 1})", *ours))
    print("\n".join(results))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.chats, arguments.rounds))
