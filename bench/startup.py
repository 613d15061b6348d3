"""Start, memory and `--help`: `python -m bot run` against the fake Bot API vs. a bare PTB bot, in one run.

Measures, alternating the two processes round by round:
- start to first getUpdates: from spawning the process to its first long poll arriving at the fake
  Bot API (tests/fake_bot_api.py), quiet and again with `--load` busy processes (default 2, one
  per core of the house machine) spinning meanwhile;
- start to first answer: a message from a new chat waits at the fake when the process is spawned;
  from the spawn to the process's reply to it (the bot answers a stranger, the bare bot echoes).
  The bot polls before it has imported what handling needs (bot/process.py), so this is the
  figure a person waiting at start sees;
- memory after start: the process's resident set (VmRSS) half a second after that answer;
- `python -m bot --help`: wall time of the whole process vs. `python -c pass`.
The bot runs on a fresh, migrated SQLite database with the demo district; the bare bot is an
Application with one message handler, polling the same fake.

Run: `.venv/bin/python -m bench.startup [--rounds 5] [--load 2] [--help-rounds 10]`
"""

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.big_world import figures, fresh
from db.engine import make_engine
from tests.fake_bot_api import FakeBotApi, JSONDict

ROOT = Path(__file__).resolve().parent.parent
SETTLE = 0.5  # seconds after the first getUpdates before reading the resident set
BARE_BOT = """
import os
from telegram.ext import Application, MessageHandler, filters

async def echo(update, context):
    await update.message.reply_text(update.message.text)

builder = Application.builder().token(os.environ["TELEGRAM_TOKEN"])
app = builder.base_url(os.environ["TELEGRAM_BASE_URL"]).build()
app.add_handler(MessageHandler(filters.TEXT, echo))
app.run_polling(poll_interval=0, timeout=10)
"""
BUSY = "while True: pass"


class TimedApi(FakeBotApi):
    """The fake Bot API, noting when the first getUpdates of the current process arrives."""

    def __init__(self) -> None:
        super().__init__()
        self.first_poll: asyncio.Event = asyncio.Event()
        self.first_poll_at = 0.0
        self.first_answer: asyncio.Event = asyncio.Event()
        self.first_answer_at = 0.0
        self.waiting_chat = 0  # the chat whose message waits at the start of this round

    async def _get_updates(self, params: JSONDict) -> list[JSONDict]:
        if not self.first_poll.is_set():
            self.first_poll_at = time.perf_counter()
            self.first_poll.set()
        return await super()._get_updates(params)

    async def _send_message(self, params: JSONDict) -> JSONDict:
        sent = await super()._send_message(params)
        if str(params.get("chat_id")) == str(self.waiting_chat) and not self.first_answer.is_set():
            self.first_answer_at = time.perf_counter()
            self.first_answer.set()
        return sent


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


async def start_once(
    api: TimedApi, command: list[str], env: dict[str, str], folder: Path, chat: int
) -> tuple[float, float, float]:
    """Spawn the process with a message from `chat` waiting; (seconds to its first getUpdates,
    seconds to its answer, MiB resident soon after)."""
    api.first_poll.clear()
    api.first_answer.clear()
    api.waiting_chat = chat
    api.push_text(chat, "Hallo")  # a new chat each round: a stranger is answered every time
    log = (folder / "process.log").open("ab")
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        await asyncio.wait_for(api.first_poll.wait(), timeout=60)
        await asyncio.wait_for(api.first_answer.wait(), timeout=60)
        await asyncio.sleep(SETTLE)
        return api.first_poll_at - started, api.first_answer_at - started, rss_mib(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(process.wait, 15)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait)
        log.close()


def busy(count: int) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(count)]  # noqa: S603


def wall(command: list[str], rounds: int) -> list[float]:
    seconds = []
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)  # noqa: S603 - our own python
        seconds.append(time.perf_counter() - start)
    return seconds


def memory_line(label: str, samples: list[float], baseline: list[float] | None = None) -> str:
    median = statistics.median(samples)
    line = f"{label:<50} n={len(samples):<4} median {median:8.1f} MiB   max {max(samples):8.1f} MiB"
    if baseline:
        line += f"   ratio {median / statistics.median(baseline):6.2f}x"
    return line


async def starts(rounds: int, load: int, folder: Path) -> None:
    database = folder / "bench.sqlite3"
    fresh(make_engine(f"sqlite:///{database}")).dispose()
    async with TimedApi() as api:
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{database}",
            "TELEGRAM_TOKEN": api.token,
            "TELEGRAM_BASE_URL": api.base_url,
            "BOT_LOCALE": "en",
            "PYTHONPATH": str(ROOT),
        }
        bot = [sys.executable, "-m", "bot", "run"]
        bare = [sys.executable, "-c", BARE_BOT]
        results: dict[str, list[tuple[float, float, float]]] = {}
        chats = iter(range(7001, 8000))
        for condition, spinning in (("quiet", 0), (f"{load} busy processes", load)):
            spinners = busy(spinning)
            try:
                for _ in range(rounds):
                    for name, command in (("bare PTB bot", bare), ("python -m bot run", bot)):
                        sample = await start_once(api, command, env, folder, next(chats))
                        results.setdefault(f"{name}, {condition}", []).append(sample)
            finally:
                for spinner in spinners:
                    spinner.kill()
                    spinner.wait()
        for condition in ("quiet", f"{load} busy processes"):
            base = [s for s, _, _ in results[f"bare PTB bot, {condition}"]]
            mine = [s for s, _, _ in results[f"python -m bot run, {condition}"]]
            print(figures(f"baseline: bare PTB bot to getUpdates ({condition})", base))
            print(figures(f"bot run to first getUpdates ({condition})", mine, base))
            base = [a for _, a, _ in results[f"bare PTB bot, {condition}"]]
            mine = [a for _, a, _ in results[f"python -m bot run, {condition}"]]
            print(figures(f"baseline: bare PTB bot to its first answer ({condition})", base))
            print(figures(f"bot run to its first answer ({condition})", mine, base))
        base_rss = [m for _, _, m in results["bare PTB bot, quiet"]]
        bot_rss = [m for _, _, m in results["python -m bot run, quiet"]]
        print(memory_line("baseline: bare PTB bot, resident after start", base_rss))
        print(memory_line("bot run, resident after start", bot_rss, base_rss))


def main(rounds: int, load: int, help_rounds: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(starts(rounds, load, Path(folder)))
    nothing = wall([sys.executable, "-c", "pass"], help_rounds)
    helped = wall([sys.executable, "-m", "bot", "--help"], help_rounds)
    print(figures("baseline: python -c pass", nothing))
    print(figures("python -m bot --help", helped, nothing))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--load", type=int, default=2)
    parser.add_argument("--help-rounds", type=int, default=10)
    arguments = parser.parse_args()
    main(arguments.rounds, arguments.load, arguments.help_rounds)
