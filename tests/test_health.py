"""/healthz and /metrics of a real bot process: PTB long-polls the fake Bot API, the server answers HTTP.

The process is the one `run` builds (transport, delivery, timers) with the health server on a
free port; a poll that fails is a real failed HTTP request (the fake is stopped), and the
database that stops answering is a PostgreSQL server that is shut down.
"""

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.health import HealthServer, HealthSettings, health_settings
from bot.i18n import Translator
from bot.process import BotProcess
from bot.rate_limit import RateLimiter
from bot.scheduling import Timers
from bot.telegram.app import TelegramBot, Webhook
from db.engine import make_engine
from db.migrate import upgrade
from db.models import District, DueTask, Member, School
from db.uow import UnitOfWork
from services.audit import record
from services.demo import DEMO_BUDGET_CENTS, DEMO_SLUG
from services.errors import InvalidInput
from services.notices import RequestRejected
from services.outbox import notify
from services.requests import submit_request
from services.vocabulary import Recipient
from tests.builders import draft
from tests.chat_world import NOW, Clock, DemoCodes, make_demo
from tests.fake_bot_api import FakeBotApi
from tests.pg_cluster import PostgresCluster, find_pg_bin

ROOT = Path(__file__).resolve().parent.parent
STALE = 2.0  # HEALTH_STALE_AFTER in these tests, in seconds
SCHOOL, STRANGER = 1001, 9999


@dataclass
class World:
    api: FakeBotApi
    process: BotProcess
    health: HealthServer
    engine: Engine
    clock: Clock
    codes: DemoCodes | None = None

    async def get(self, path: str) -> tuple[int, str]:
        assert self.health.port is not None
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{self.health.port}{path}") as response,
        ):
            return response.status, await response.text()

    async def healthz(self) -> tuple[int, dict[str, Any]]:
        status, body = await self.get("/healthz")
        return status, json.loads(body)

    async def healthz_until(self, status: int, timeout: float = 20) -> dict[str, Any]:
        """The first /healthz answer with `status`, asked every 0.1 s."""
        deadline = time.monotonic() + timeout
        while True:
            answer, body = await self.healthz()
            if answer == status:
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"/healthz stayed {answer}: {body}")
            await asyncio.sleep(0.1)

    async def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of /metrics: (name, sorted labels) -> value."""
        status, body = await self.get("/metrics")
        assert status == 200
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(body)
            for sample in family.samples
        }

    async def metric_until(self, key: tuple[str, tuple[tuple[str, str], ...]], value: float) -> None:
        deadline = time.monotonic() + 15
        while (await self.metrics()).get(key) != value:
            assert time.monotonic() < deadline, f"{key} never became {value}"
            await asyncio.sleep(0.05)


async def _eventually(check: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def _world(engine: Engine, api: FakeBotApi, *, timers: bool = False, **telegram: Any) -> World:
    clock = Clock(NOW)
    bot = TelegramBot(
        token=api.token, engine=engine, base_url=api.base_url, clock=clock, poll_timeout=1, **telegram
    )
    process = BotProcess(
        engine,
        [bot],
        limiter=RateLimiter(per_chat_gap=0.02),
        clock=clock,
        timers=Timers(engine, clock=clock, poll_seconds=0.5) if timers else None,
    )
    health = HealthServer(process, stale_after=STALE)
    await health.start("127.0.0.1", 0)
    await process.start()
    return World(api, process, health, engine, clock)


@pytest.fixture
async def world(engine: Engine) -> AsyncIterator[World]:
    codes = make_demo(engine, NOW)
    api = FakeBotApi()
    await api.start()
    w = await _world(engine, api, timers=True)
    w.codes = codes
    try:
        yield w
    finally:
        await w.process.stop()
        await w.health.stop()
        await api.stop()
    assert api.server_errors == []


async def test_healthz_is_200_while_polls_succeed_503_once_the_last_is_stale_and_200_when_back(
    world: World,
) -> None:
    liveness = world.process.liveness
    await _eventually(lambda: liveness.last_reached("telegram") is not None)
    status, body = await world.healthz()
    assert status == 200
    telegram = body["platforms"]["telegram"]
    assert telegram["last_reached"].endswith("Z")
    assert datetime.fromisoformat(telegram["last_reached"]) == liveness.last_reached("telegram")
    assert 0 <= telegram["age_seconds"] < STALE
    assert body == {
        "status": "ok",
        "database": "reachable",
        "platforms": {
            "telegram": {
                "role": "leader",
                "last_reached": telegram["last_reached"],
                "age_seconds": telegram["age_seconds"],
                "unreachable_since": None,
                "stale": False,
            }
        },
        "stale_after_seconds": STALE,
        "oldest_undelivered_seconds": None,
        "failed_due_rows": 0,
    }

    port = world.api.port
    await world.api.stop()  # Telegram is away: every getUpdates fails from now on
    stopped = liveness.clock()
    body = await world.healthz_until(503)
    telegram = body["platforms"]["telegram"]
    assert (body["status"], body["database"], telegram["role"], telegram["stale"]) == (
        "unhealthy",
        "reachable",
        "leader",
        True,
    )
    assert telegram["age_seconds"] >= STALE  # rounded to a tenth
    last = datetime.fromisoformat(telegram["last_reached"])
    assert liveness.clock() - last >= timedelta(seconds=STALE)
    assert last <= stopped + timedelta(seconds=1.5)  # the last poll answered was the one the stop woke
    assert telegram["unreachable_since"] is not None
    assert datetime.fromisoformat(telegram["unreachable_since"]) >= last
    metrics = await world.metrics()
    assert metrics[("dolmetscherpool_platform_stale", (("platform", "telegram"),))] == 1
    assert metrics[("dolmetscherpool_platform_last_contact_seconds", (("platform", "telegram"),))] > STALE

    await world.api.start(port)  # back: the next poll succeeds
    body = await world.healthz_until(200)
    assert body["platforms"]["telegram"]["stale"] is False
    assert body["platforms"]["telegram"]["unreachable_since"] is None
    assert body["status"] == "ok"


async def test_metrics_count_updates_deliveries_due_rows_requests_and_the_budget(world: World) -> None:
    api, engine = world.api, world.engine
    for text in ("hallo", "hello", "?"):  # a stranger's messages: each handled, each answered directly
        since = len(api.sent(STRANGER))
        api.push_text(STRANGER, text)
        await api.wait_for_message(STRANGER, lambda _: True, since=since)
    assert world.codes is not None
    api.push_text(SCHOOL, f"/start {world.codes.school}")
    await api.wait_for_message(SCHOOL, lambda _: True)  # the welcome: a stored answer, delivered
    with UnitOfWork(engine) as uow:
        district_id = uow.session.exec(select(District.id).where(District.slug == DEMO_SLUG)).one()
        assert district_id is not None
        linked = uow.session.exec(select(Member.school_id).where(Member.role == "school")).one()
        # Another school's request: the linked school hears nothing of it, so one delivery stays one.
        school = uow.session.exec(
            select(School.id).where(School.id != linked).order_by(col(School.id))
        ).first()
        assert school is not None
        wanted = draft(school, starts_at=world.clock() + timedelta(days=8))
        request = submit_request(
            uow.session, district_id=district_id, draft=wanted, actor="test", now=world.clock()
        )
        estimate = request.estimate_cents
        assert request.id is not None
        # A notice written ten minutes ago, to the linked school, whose first send fails (HTTP 500).
        api.fail_next("sendMessage", status=500)
        said = record(  # the coordinator's reason, which the notice names by its audit event
            uow.session,
            district_id=district_id,
            actor="test",
            action="request.rejected",
            entity="request",
            entity_id=request.id,
            now=world.clock(),
            reason="Kein Budget mehr",
        )
        uow.session.flush()
        notify(
            uow.session,
            district_id=district_id,
            recipient=Recipient.SCHOOL,
            recipient_id=linked or 0,
            notice=RequestRejected(request_id=request.id, audit_id=said),
            now=world.clock() - timedelta(minutes=10),
        )
        # A reminder of a request that is not there fails; after four failed attempts, this one ends it.
        uow.session.add(
            DueTask(
                district_id=district_id,
                kind="reminder",
                subject_id=999_999,
                due_at=NOW - timedelta(minutes=1),
                attempts=4,
                created_at=NOW,
            )
        )
        uow.commit()
    assert world.process.timers is not None
    world.process.timers.poke()
    world.process.deliverer.wake.set()
    telegram = (("platform", "telegram"),)
    retried = ("dolmetscherpool_deliveries_retried_total", telegram)
    await world.metric_until(retried, 1)
    status, body = await world.healthz()
    assert status == 200  # an old notification is reported, not paged by 503
    assert 600 <= body["oldest_undelivered_seconds"] < 630
    await api.wait_for_message(SCHOOL, lambda m: "Kein Budget mehr" in m.text)  # its retry, 2 s later

    async def failed_rows() -> int:
        return int((await world.healthz())[1]["failed_due_rows"])

    deadline = time.monotonic() + 15
    while await failed_rows() != 1:
        assert time.monotonic() < deadline, "the due row did not fail"
        await asyncio.sleep(0.1)

    sent = ("dolmetscherpool_deliveries_sent_total", telegram)
    await world.metric_until(sent, 2)  # recorded just after the fake took it
    metrics = await world.metrics()
    assert metrics[("dolmetscherpool_updates_handled_total", telegram)] == 4
    assert metrics[sent] == 2  # the welcome and the notice
    assert metrics[retried] == 1
    assert metrics[("dolmetscherpool_oldest_undelivered_seconds", ())] == 0
    assert metrics[("dolmetscherpool_due_rows_failed_total", (("kind", "reminder"),))] == 1
    assert metrics[("dolmetscherpool_failed_due_rows", ())] == 1
    assert metrics[("dolmetscherpool_database_up", ())] == 1
    assert metrics[("dolmetscherpool_platform_leading", telegram)] == 1
    assert metrics[("dolmetscherpool_platform_stale", telegram)] == 0
    # The request went out as offers to the demo pool; none of them has a chat yet.
    assert metrics[("dolmetscherpool_requests", (("district", DEMO_SLUG), ("state", "offered")))] == 1
    budget = (("district", DEMO_SLUG), ("year", "2026"))
    assert metrics[("dolmetscherpool_budget_available_cents", budget)] == DEMO_BUDGET_CENTS - estimate
    assert metrics[("dolmetscherpool_deliveries_failed_total", telegram)] == 0  # counted from 0 on
    assert metrics[("dolmetscherpool_due_rows_fired_total", (("kind", "digest"),))] == 0
    status, body = await world.healthz()
    assert (status, body["status"], body["failed_due_rows"]) == (200, "ok", 1)  # reported, not paged by 503
    assert body["oldest_undelivered_seconds"] is None


async def test_healthz_is_503_while_postgresql_is_down() -> None:
    """A PostgreSQL server of this test's own is shut down under the running process."""
    if find_pg_bin() is None:
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail("REQUIRE_POSTGRES=1 but no PostgreSQL binaries")
        pytest.skip("no PostgreSQL binaries under /usr/lib/postgresql/*/bin")
    cluster = PostgresCluster()
    cluster.start()
    try:
        engine = make_engine(cluster.create_database("health"))
        await asyncio.to_thread(upgrade, engine)
        make_demo(engine, NOW)
        async with FakeBotApi() as api:
            world = await _world(engine, api)
            try:
                await _eventually(lambda: world.process.liveness.last_reached("telegram") is not None)
                status, body = await world.healthz()
                assert (status, body["database"]) == (200, "reachable")
                await asyncio.to_thread(cluster.stop)
                body = await world.healthz_until(503)
                assert (body["status"], body["database"]) == ("unhealthy", "unreachable")
                assert (body["failed_due_rows"], body["oldest_undelivered_seconds"]) == (None, None)
                assert body["platforms"]["telegram"]["stale"] is False  # Telegram itself still answers
                metrics = await world.metrics()
                assert metrics[("dolmetscherpool_database_up", ())] == 0
                assert not [key for key in metrics if key[0] == "dolmetscherpool_budget_available_cents"]
            finally:
                with contextlib.suppress(Exception):  # giving up the lead needs the database
                    await asyncio.wait_for(world.process.stop(), timeout=30)
                await world.health.stop()
        engine.dispose()
    finally:
        cluster.stop()


async def test_a_standby_process_is_healthy_and_says_so_until_it_takes_the_lead(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("a second process on SQLite is refused (test_intake.py)")
    make_demo(engine, NOW)
    async with FakeBotApi() as api:
        first = await _world(engine, api)
        second = await _world(engine, api)
        try:
            assert (first.process.leading, second.process.leading) == (True, False)
            await asyncio.sleep(STALE + 0.5)  # longer than a leader may go without a poll
            status, body = await second.healthz()
            standby = body["platforms"]["telegram"]
            assert (status, body["status"], standby["role"], standby["stale"]) == (
                200,
                "ok",
                "standby",
                False,
            )
            assert (await first.healthz())[1]["platforms"]["telegram"]["role"] == "leader"
            metrics = await second.metrics()
            assert metrics[("dolmetscherpool_platform_leading", (("platform", "telegram"),))] == 0

            await first.process.stop()
            await _eventually(lambda: second.process.leading)
            await _eventually(lambda: second.process.liveness.unreachable_since("telegram") is None)
            status, body = await second.healthz()
            assert (status, body["platforms"]["telegram"]["role"]) == (200, "leader")
        finally:
            await second.process.stop()
            for world in (first, second):
                await world.health.stop()
        assert api.server_errors == []


async def test_in_webhook_mode_the_leader_asks_for_the_webhook_state_and_a_post_counts(
    engine: Engine,
) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("the database plays no part here")
    make_demo(engine, NOW)
    async with FakeBotApi() as api:
        listen = _free_port()
        secret = "s" * 32
        hook = Webhook(url="https://bot.example.org/telegram", secret=secret, host="127.0.0.1", port=listen)
        world = await _world(engine, api, webhook=hook, webhook_check=0.3)
        try:
            await _eventually(lambda: len(api.calls("getWebhookInfo")) >= 2)
            status, body = await world.healthz()
            assert (status, body["platforms"]["telegram"]["role"]) == (200, "leader")
            assert api.calls("getUpdates") == []  # no polls in webhook mode: the checks keep it fresh
            await asyncio.sleep(STALE + 0.5)
            assert (await world.healthz())[0] == 200

            port = api.port
            await api.stop()
            body = await world.healthz_until(503)
            assert body["platforms"]["telegram"]["stale"] is True
            liveness = world.process.liveness
            before = liveness.last_reached("telegram")
            update = {
                "update_id": 1,
                "message": {"message_id": 1, "date": 0, "chat": {"id": 5, "type": "group"}},
            }
            async with (
                aiohttp.ClientSession() as http,
                http.post(
                    f"http://127.0.0.1:{listen}/telegram",
                    json=update,
                    headers={"X-Telegram-Bot-Api-Secret-Token": secret},
                ) as response,
            ):
                assert response.status == 200
            assert (liveness.last_reached("telegram") or NOW) > (before or NOW)  # Telegram reached us
            assert (await world.healthz())[0] == 200
            await api.start(port)
        finally:
            await world.process.stop()
            await world.health.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_health_settings_from_the_environment() -> None:
    assert health_settings({}) is None
    assert health_settings({"HEALTH_LISTEN": " 127.0.0.1:9120 "}) == HealthSettings("127.0.0.1", 9120, 90.0)
    assert health_settings({"HEALTH_LISTEN": "[::1]:9120", "HEALTH_STALE_AFTER": "2.5"}) == HealthSettings(
        "::1", 9120, 2.5
    )
    for listen in ("9120", "127.0.0.1:", ":9120", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:nine"):
        with pytest.raises(InvalidInput) as refused:
            health_settings({"HEALTH_LISTEN": listen})
        assert refused.value.message == "HEALTH_LISTEN must look like 127.0.0.1:9120."
    for stale in ("soon", "0", "-5", "nan", "inf"):
        with pytest.raises(InvalidInput) as refused:
            health_settings({"HEALTH_LISTEN": "127.0.0.1:9120", "HEALTH_STALE_AFTER": stale})
        assert refused.value.message == "HEALTH_STALE_AFTER must be a number of seconds above 0, such as 90."


def test_run_refuses_a_bad_health_listen_with_a_sentence(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.sqlite3'}",
        "TELEGRAM_TOKEN": "123:abc",
        "HEALTH_LISTEN": "localhost",
    }
    env.pop("BOT_LOCALE", None)
    done = subprocess.run(
        [sys.executable, "-m", "bot", "run"], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert done.stderr.strip().endswith(
        Translator("de").gettext("HEALTH_LISTEN must look like 127.0.0.1:9120.")
    )
    assert not (tmp_path / "bot.sqlite3").exists()  # refused before anything was touched
