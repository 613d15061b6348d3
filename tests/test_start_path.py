"""The start of `bot run` (issue 16: start to first getUpdates): what it reads and imports, and in what order.

The schema check reads the migration files' ids and the `alembic_version` table without Alembic;
these tests hold its answers to Alembic's own. What a process imports is read from `sys.modules`
in a fresh interpreter; how long anything takes is measured in bench/startup.py, never here.
"""

import asyncio
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine
from sqlmodel import select

import db.migrate
from bot.process import BotProcess
from bot.rate_limit import RateLimiter
from bot.telegram.app import TelegramBot
from db.engine import make_engine
from db.migrate import (
    alembic_config_without_engine,
    current_revision,
    head_revision,
    is_known_revision,
    upgrade,
)
from db.models import ChatIdentity
from db.uow import UnitOfWork
from tests.chat_world import NOW, Clock, make_demo
from tests.fake_bot_api import FakeBotApi

ROOT = Path(__file__).resolve().parent.parent


def _alembic_current(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def test_head_and_known_revisions_are_alembics_own() -> None:
    scripts = ScriptDirectory.from_config(alembic_config_without_engine())
    known = sorted(script.revision for script in scripts.walk_revisions())
    assert db.migrate._plain_chain() is not None  # the files are read plainly: Alembic is not asked
    assert head_revision() == scripts.get_current_head()
    assert sorted(db.migrate._plain_chain() or {}) == known
    assert len(known) >= 13
    for revision in known:
        assert is_known_revision(revision), revision
    for unknown in ("0099", "0000", "00", "head", ""):
        assert not is_known_revision(unknown), unknown


def test_a_migration_file_not_in_the_plain_form_is_left_to_alembic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A merge (a tuple of parents) is not read plainly: Alembic answers, and its answer counts."""
    migrations = tmp_path / "migrations"
    shutil.copytree(db.migrate.MIGRATIONS, migrations, ignore=shutil.ignore_patterns("__pycache__"))
    head = head_revision()
    (migrations / "versions" / "9999_merge.py").write_text(
        f'revision = "9999"\ndown_revision = ("{head}",)\nbranch_labels = None\ndepends_on = None\n\n\n'
        "def upgrade() -> None:\n    pass\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(db.migrate, "MIGRATIONS", migrations)
    assert db.migrate._plain_chain() is None
    assert head_revision() == "9999"
    assert is_known_revision("9999")
    assert is_known_revision(head)
    assert not is_known_revision("0099")


def test_current_revision_reads_what_alembic_reads(never_migrated: str) -> None:
    engine = make_engine(never_migrated)
    try:
        assert current_revision(engine) is None
        assert _alembic_current(engine) is None
        upgrade(engine, "0008")
        assert current_revision(engine) == _alembic_current(engine) == "0008"
        upgrade(engine)
        assert current_revision(engine) == _alembic_current(engine) == head_revision()
    finally:
        engine.dispose()


# Runs the schema check `run` runs (Context.prepare_schema) and prints what it left: the
# revision, and which of the libraries below the process imported.
SCHEMA_PROBE = """
import json, sys
from bot.cli.context import Context, Schema
from bot.i18n import Translator
from db.migrate import current_revision
context = Context(translator=Translator("en"), schema=Schema.LATER)
context.prepare_schema()
revision = current_revision(context.engine)
context.close()
print(json.dumps([revision, sorted({m.split(".")[0] for m in sys.modules} & {"alembic", "mako", "aiohttp"})]))
"""


def _schema_check(url: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("AUTO_MIGRATE", "DATABASE_URL")}
    return subprocess.run(
        [sys.executable, "-c", SCHEMA_PROBE],
        cwd=ROOT,
        env={**clean, "PYTHONPATH": str(ROOT), "BOT_LOCALE": "en", "DATABASE_URL": url, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_an_up_to_date_database_is_checked_without_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'current.sqlite3'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    done = _schema_check(url)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [head_revision(), []]


def test_a_database_behind_is_still_migrated_with_auto_migrate_and_refused_without(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'behind.sqlite3'}"
    engine = make_engine(url)
    upgrade(engine, "0008")
    engine.dispose()
    refused = _schema_check(url)
    assert refused.returncode == 1
    assert "InvalidInput" in refused.stderr
    engine = make_engine(url)
    assert current_revision(engine) == "0008"  # refused: nothing changed
    engine.dispose()
    migrated = _schema_check(url, AUTO_MIGRATE="1")
    assert migrated.returncode == 0, migrated.stderr
    assert json.loads(migrated.stdout) == [head_revision(), ["alembic", "mako"]]


# `python -m bot run` in this interpreter against a fake Bot API served from a thread. The
# conversation's import (the command menu's texts) and the process's preparation wait until the
# first getUpdates has arrived, so the modules loaded then are exactly what polling needed.
RUN_PROBE = """
import asyncio, json, os, signal, sys, threading
from tests.fake_bot_api import FakeBotApi

HEAVY = {heavy!r}
seen = {{}}
release = threading.Event()
served = threading.Event()
stopped = threading.Event()


class Api(FakeBotApi):
    async def _get_updates(self, params):
        if "polling" not in seen:
            seen["polling"] = sorted(m for m in HEAVY if m in sys.modules)
            release.set()
        return await super()._get_updates(params)


def serve():
    async def main():
        async with Api() as api:
            os.environ["TELEGRAM_TOKEN"] = api.token
            os.environ["TELEGRAM_BASE_URL"] = api.base_url
            served.set()
            await asyncio.to_thread(stopped.wait, 60)
    asyncio.run(main())


threading.Thread(target=serve, daemon=True).start()
assert served.wait(30)

import bot.telegram.app
from bot.process import BotProcess

held_commands = bot.telegram.app.all_commands
held_prepare = BotProcess._prepare_in_thread
held_start = BotProcess.start


def all_commands(locale):
    assert release.wait(30), "no getUpdates before the conversation was needed"
    return held_commands(locale)


def prepare(self):
    assert release.wait(30), "no getUpdates before the process was prepared"
    held_prepare(self)


async def start(self):
    await held_start(self)
    seen["ready"] = sorted(m for m in HEAVY if m in sys.modules)
    seen["ready_set"] = self.ready.is_set()
    os.kill(os.getpid(), signal.SIGTERM)


bot.telegram.app.all_commands = all_commands
BotProcess._prepare_in_thread = prepare
BotProcess.start = start
from bot.cli.main import main

code = main(["run"])
stopped.set()
print(json.dumps([code, seen]))
"""
# The ORM layer, the conversation, the delivery, and what no start needs at all.
START_HEAVY = (
    "sqlmodel",
    "db.models",
    "db.uow",
    "bot.conversation.router",
    "bot.delivery",
    "bot.scheduling",
    "services.deliveries",
    "alembic",
    "matplotlib",
    "nio",
)


def test_run_polls_before_it_imports_the_database_layer_and_the_conversation(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bot.sqlite3'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "MATRIX_", "HEALTH_"))}
    done = subprocess.run(
        [sys.executable, "-c", RUN_PROBE.format(heavy=START_HEAVY)],
        cwd=tmp_path,
        env={**clean, "PYTHONPATH": str(ROOT), "BOT_LOCALE": "en", "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    code, seen = json.loads(done.stdout.splitlines()[-1])
    assert code == 0
    assert seen["polling"] == []
    # Ready: what handling an update and sending need is there; Alembic, matplotlib and nio are not.
    assert seen["ready"] == sorted(set(START_HEAVY) - {"alembic", "matplotlib", "nio"})
    assert seen["ready_set"] is True


async def _until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for: {what}"
        await asyncio.sleep(0.02)


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as fake:
        yield fake


async def test_an_update_waiting_at_start_is_held_until_the_process_is_ready_and_then_handled(
    sqlite_template: Path, tmp_path: Path, api: FakeBotApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Polling begins before the process is prepared: the update that is there already is
    fetched, but neither handled nor confirmed until the outbox is taken over and the timers
    and the delivery run; then it is answered, and only then confirmed."""
    shutil.copy(sqlite_template, tmp_path / "start.sqlite3")  # the order is the same on either database
    engine = make_engine(f"sqlite:///{tmp_path / 'start.sqlite3'}")
    codes = make_demo(engine, NOW)
    api.push_text(3001, f"/start {codes.coordinator}")
    release = threading.Event()
    prepare = BotProcess._prepare_in_thread

    def held(process: BotProcess) -> None:
        assert release.wait(30)
        prepare(process)

    monkeypatch.setattr(BotProcess, "_prepare_in_thread", held)
    clock = Clock(NOW)
    telegram = TelegramBot(token=api.token, engine=engine, base_url=api.base_url, clock=clock, poll_timeout=1)
    process = BotProcess(engine, [telegram], limiter=RateLimiter(per_chat_gap=0.02), clock=clock)
    starting = asyncio.create_task(process.start())
    try:
        await _until(lambda: "getUpdates" in api.methods(), 30, "polling began")
        await asyncio.sleep(0.3)  # the batch with the update arrived and is being taken
        assert not process.ready.is_set()
        assert api.methods().count("getUpdates") == 1  # the batch is not done: no second poll
        assert api.sent(3001) == []
        assert len(api.pending_updates()) == 1  # fetched, not confirmed
        with UnitOfWork(engine) as uow:  # nothing of the update is stored yet
            assert uow.session.exec(select(ChatIdentity).where(ChatIdentity.chat_id == "3001")).all() == []
        release.set()
        await asyncio.wait_for(starting, 30)
        assert process.ready.is_set()
        welcome = await api.wait_for_message(3001, lambda m: m.method == "sendMessage")
        assert welcome.text
        await _until(lambda: api.pending_updates() == [], 10, "the update confirmed by the next offset")
        assert "setMyCommands" in api.methods()
    finally:
        release.set()
        if not starting.done():
            await asyncio.wait_for(starting, 30)
        await process.stop()
        engine.dispose()
