"""Nothing lost, nothing twice: crashes during intake, webhooks, 429s on parts, several processes.

The bot runs as a real `python -m bot run` process against the fake Bot API (over HTTP) where a
process must die or several must share a database; in the test's own event loop otherwise.
"""

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import aiohttp
import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.conversation.router import Handled
from bot.i18n import Translator
from bot.leader import AnotherProcessRuns
from bot.messages import Incoming, Reply, reply_to_body
from bot.process import BotProcess
from bot.rate_limit import RateLimiter
from bot.telegram.app import TelegramBot, Webhook
from db.models import ChatIdentity, Delivery, District, ProcessedEvent
from db.uow import UnitOfWork
from services import deliveries
from services.notices import AllowanceNear
from services.outbox import notify
from services.vocabulary import Recipient
from tests.chat_world import NOW, Clock, linked_coordinators, make_demo
from tests.fake_bot_api import FakeBotApi, SentMessage
from tests.pg_cluster import _free_port

ROOT = Path(__file__).resolve().parent.parent
FIRST_USER = 5001
SECRET = "s3cr3t-token_for-the-webhook"
DE = Translator("de")


def _members(engine: Engine, count: int) -> list[int]:
    """`count` coordinators of the demo district, each linked to a Telegram chat (user id = chat id)."""
    users = list(range(FIRST_USER, FIRST_USER + count))
    linked_coordinators(engine, users, now=NOW)
    return users


class BotApi(Protocol):
    @property
    def token(self) -> str: ...

    @property
    def base_url(self) -> str: ...


def _run(engine: Engine, api: BotApi, folder: Path, name: str, **env: str) -> subprocess.Popen[bytes]:
    """`python -m bot run` on the test's database and the fake Bot API; its log goes to `folder/name.log`."""
    log = (folder / f"{name}.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        cwd=folder,
        env={
            **os.environ,
            "DATABASE_URL": engine.url.render_as_string(hide_password=False),
            "TELEGRAM_TOKEN": api.token,
            "TELEGRAM_BASE_URL": api.base_url,
            "BOT_LOCALE": "en",
            "PYTHONPATH": str(ROOT),
            **env,
        },
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _count(engine: Engine, query: object) -> int:
    with UnitOfWork(engine) as uow:
        return int(uow.session.exec(query).one())  # type: ignore[call-overload]


async def _until(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Wait until `check()` holds; returns the seconds it took."""
    started = time.monotonic()
    while not await asyncio.to_thread(check):  # off the loop: the fake Bot API serves meanwhile
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.1)
    return time.monotonic() - started


def _answers(engine: Engine) -> tuple[int, int]:
    """(answers stored, answers sent)."""
    answers = select(func.count()).select_from(Delivery).where(col(Delivery.outbox_id).is_(None))
    return _count(engine, answers), _count(engine, answers.where(col(Delivery.sent_at).is_not(None)))


def _texts(api: FakeBotApi, users: list[int]) -> list[SentMessage]:
    return [message for user in users for message in api.sent(user) if message.method == "sendMessage"]


async def test_kill_9_during_bursts_loses_nothing_and_handles_nothing_twice(
    engine: Engine, tmp_path: Path
) -> None:
    users = _members(engine, 100)
    rng = random.Random(2026)
    pushed: list[int] = []
    kills = 3
    async with FakeBotApi() as api:
        for burst in range(kills):
            before = _count(engine, select(func.count()).select_from(ProcessedEvent))
            process = _run(engine, api, tmp_path, "bot")
            pushed += [api.push_text(users[i % len(users)], "/help", language_code="en") for i in range(200)]
            began = await _until(
                lambda before=before: (
                    _count(engine, select(func.count()).select_from(ProcessedEvent)) > before
                ),  # type: ignore[misc]
                60,
                "the process handles updates",
            )
            print(f"burst {burst}: handling began {began:.1f}s after the start")
            await asyncio.sleep(rng.uniform(0.0, 2.0))  # killed while handling, or sending, or both
            process.send_signal(signal.SIGKILL)
            process.wait()
            handled = _count(engine, select(func.count()).select_from(ProcessedEvent))
            print(f"burst {burst}: killed with {handled} of {len(pushed)} handled, {_answers(engine)}")
        process = _run(engine, api, tmp_path, "bot")
        try:
            drained = await _until(
                lambda: _answers(engine) == (len(pushed), len(pushed)), 120, "every answer"
            )
            print(f"after the last restart every answer was sent in {drained:.1f}s")
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
        assert api.pending_updates() == []  # every update confirmed to Telegram, in the end
        with UnitOfWork(engine) as uow:
            keys = uow.session.exec(select(ProcessedEvent.event_key)).all()
        assert sorted(keys) == sorted(f"update:{update_id}" for update_id in pushed)  # none lost
        assert _answers(engine) == (len(pushed), len(pushed))  # each handled once: one answer each
        texts = _texts(api, users)
        # An answer is sent again only if the process died between Telegram's accepting it and
        # the record of that: one message at a time is on its way, so at most one per kill.
        assert len(pushed) <= len(texts) <= len(pushed) + kills
        assert all(message.text.startswith("What you can do as a coordinator:") for message in texts)
        assert api.conflicts == 0


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as fake:
        yield fake


async def test_two_processes_on_postgresql_send_everything_once_and_a_standby_takes_over(
    engine: Engine, api: FakeBotApi, tmp_path: Path
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("several processes need PostgreSQL; on SQLite a second one is refused (tested below)")
    users = _members(engine, 30)
    first, second = _run(engine, api, tmp_path, "first"), _run(engine, api, tmp_path, "second")
    processes = {"first": first, "second": second}
    try:
        await _until(lambda: "setMyCommands" in api.methods(), 30, "one process leads")
        with UnitOfWork(engine) as uow:
            district = uow.session.exec(select(District)).one()
            for year in (2026, 2027):  # two notifications to each of the 30 coordinators
                notice = AllowanceNear(year=year, paid_cents=76000, allowance_cents=84000)
                notify(
                    uow.session,
                    district_id=district.id or 0,
                    recipient=Recipient.COORDINATORS,
                    recipient_id=district.id or 0,
                    notice=notice,
                    now=NOW,
                )
            uow.commit()
        await _until(lambda: len(_texts(api, users)) >= 60, 60, "60 notifications")
        await asyncio.sleep(2)  # time for a second copy, if there were one
        texts = _texts(api, users)
        assert len(texts) == 60
        assert sorted(m.chat_id for m in texts) == sorted(users * 2)
        assert api.conflicts == 0  # never two polls at once

        leader = next(n for n in processes if "this process leads" in (tmp_path / f"{n}.log").read_text())
        processes[leader].send_signal(signal.SIGKILL)
        processes[leader].wait()
        killed_at = time.monotonic()
        for user in users[:5]:
            api.push_text(user, "/help", language_code="en")
        await _until(lambda: len(_texts(api, users)) == 65, 30, "the standby answers")
        takeover = time.monotonic() - killed_at
        print(f"the standby answered {takeover:.1f}s after the leader was killed")
        assert takeover < 15  # the standby tries every 2 s, then signs in, polls and answers
        await asyncio.sleep(1)
        assert len(_texts(api, users)) == 65
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)


async def test_a_second_process_on_sqlite_is_refused_with_a_sentence(
    engine: Engine, api: FakeBotApi, tmp_path: Path
) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("on PostgreSQL a second process stands by (tested above)")
    make_demo(engine, NOW)
    first = BotProcess(
        engine, [TelegramBot(token=api.token, engine=engine, base_url=api.base_url, poll_timeout=1)]
    )
    await first.start()
    try:
        second = BotProcess(engine, [TelegramBot(token=api.token, engine=engine, base_url=api.base_url)])
        with pytest.raises(AnotherProcessRuns):
            await second.start()
        refused = await asyncio.to_thread(_run(engine, api, tmp_path, "second").wait, 60)
        assert refused == 2
        assert (
            (tmp_path / "second.log")
            .read_text()
            .endswith(
                "Another bot process is already running on this SQLite database. Stop it first; "
                "several processes need PostgreSQL.\n"
            )
        )
    finally:
        await first.stop()
    assert api.conflicts == 0


def _update(update_id: int, user: int, text: str) -> dict[str, object]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 1772438400,
            "chat": {"id": user, "type": "private"},
            "from": {"id": user, "is_bot": False, "first_name": "Test", "language_code": "en"},
            "text": text,
        },
    }


async def test_a_webhook_takes_updates_only_with_the_secret_and_answers_200_after_the_commit(
    engine: Engine, api: FakeBotApi
) -> None:
    codes = make_demo(engine, NOW)
    port = _free_port()
    webhook = Webhook(url="https://bot.kreis.example/telegram", secret=SECRET, host="127.0.0.1", port=port)
    telegram = TelegramBot(
        token=api.token, engine=engine, base_url=api.base_url, clock=Clock(NOW), webhook=webhook
    )
    process = BotProcess(engine, [telegram], limiter=RateLimiter(per_chat_gap=0.02), clock=Clock(NOW))
    await process.start()
    url = f"http://127.0.0.1:{port}/telegram"
    try:
        assert api.webhook is not None
        assert (api.webhook["url"], api.webhook["secret_token"]) == (webhook.url, SECRET)
        assert api.webhook["allowed_updates"] == ["message", "callback_query"]
        start = _update(1, 1001, f"/start {codes.school}")
        async with aiohttp.ClientSession() as http:
            for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}):
                async with http.post(url, json=start, headers=headers) as response:
                    assert response.status == 403
            assert _count(engine, select(func.count()).select_from(ChatIdentity)) == 0
            assert _count(engine, select(func.count()).select_from(ProcessedEvent)) == 0
            assert api.sent(1001) == []

            good = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
            async with http.post(url, json=start, headers=good) as response:
                assert response.status == 200
                # 200 comes only after the commit: the chat is linked and its answer stored already.
                assert _count(engine, select(func.count()).select_from(ChatIdentity)) == 1
                assert _answers(engine)[0] == 1
            welcome = await api.wait_for_message(1001, lambda m: m.method == "sendMessage")
            assert welcome.text.startswith("Welcome! You are registered as a school.")
            async with http.post(url, json=start, headers=good) as response:  # Telegram delivers it again
                assert response.status == 200
            async with http.post(url, data=b"{not json", headers=good) as response:
                assert response.status == 400
        await asyncio.sleep(0.3)
        assert len(api.sent(1001)) == 1  # the redelivery changed nothing and said nothing
        assert "getUpdates" not in api.methods()
    finally:
        await process.stop()


async def test_a_webhook_post_the_database_cannot_take_gets_503_so_telegram_retries(
    engine: Engine, api: FakeBotApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    make_demo(engine, NOW)
    port = _free_port()
    webhook = Webhook(url="https://bot.kreis.example/telegram", secret=SECRET, host="127.0.0.1", port=port)
    telegram = TelegramBot(token=api.token, engine=engine, base_url=api.base_url, webhook=webhook)
    process = BotProcess(engine, [telegram], limiter=RateLimiter(per_chat_gap=0.02))
    await process.start()

    def away(event: Incoming) -> Handled:
        raise OperationalError("SELECT 1", {}, Exception("could not connect to server"))

    try:
        monkeypatch.setattr(telegram.conversation, "handle_stored", away)
        async with aiohttp.ClientSession() as http:
            headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
            async with http.post(
                f"http://127.0.0.1:{port}/", json=_update(5, 1001, "/help"), headers=headers
            ) as r:
                assert r.status == 503
        assert api.sent(1001) == []  # no apology: the update comes again
    finally:
        await process.stop()


@pytest.fixture
async def telegram_process(engine: Engine, api: FakeBotApi) -> AsyncIterator[tuple[BotProcess, Clock]]:
    clock = Clock(NOW)
    telegram = TelegramBot(token=api.token, engine=engine, base_url=api.base_url, clock=clock, poll_timeout=1)
    process = BotProcess(engine, [telegram], limiter=RateLimiter(per_chat_gap=0.02), clock=clock)
    await process.start()
    try:
        yield process, clock
    finally:
        await process.stop()


async def _coordinator_joins(engine: Engine, api: FakeBotApi) -> None:
    """The demo's coordination office (chat 3001) redeems its code and is welcomed (in German)."""
    codes = make_demo(engine, NOW)
    api.push_text(3001, f"/start {codes.coordinator}")
    await api.wait_for_message(3001, lambda m: m.method == "sendMessage")


async def test_a_429_on_the_file_never_repeats_the_text(
    engine: Engine, api: FakeBotApi, telegram_process: tuple[BotProcess, Clock]
) -> None:
    process, clock = telegram_process
    await _coordinator_joins(engine, api)
    api.fail_next("sendPhoto", retry_after=7)
    api.push_text(3001, "/budget")
    figures = await api.wait_for_message(3001, lambda m: "5.000,00" in m.text)

    def chart_refused() -> Delivery | None:
        with UnitOfWork(engine) as uow:
            latest = uow.session.exec(select(Delivery).order_by(col(Delivery.id).desc())).first()
        return latest if latest is not None and latest.attempts else None

    await _until(lambda: chart_refused() is not None, 20, "the chart's 429 recorded")
    answer = chart_refused()
    assert answer is not None
    assert (answer.parts_sent, answer.attempts, answer.last_error, answer.sent_at) == (1, 1, "429", None)
    assert NOW + timedelta(seconds=7) < answer.due_at < NOW + timedelta(seconds=9)  # Telegram's retry_after
    clock.now = NOW + timedelta(seconds=10)
    process.deliverer.wake.set()
    photo = await api.wait_for_message(3001, lambda m: m.method == "sendPhoto")
    await asyncio.sleep(0.3)
    methods = [m.method for m in api.sent(3001)]
    assert methods == ["sendMessage", "sendMessage", "sendPhoto"]  # welcome, figures once, then the chart
    assert api.sent(3001)[1] == figures
    assert photo.params["photo"]["content"][:8] == b"\x89PNG\r\n\x1a\n"


async def test_a_direct_answer_hit_by_a_429_is_sent_after_the_wait(
    engine: Engine, api: FakeBotApi, telegram_process: tuple[BotProcess, Clock]
) -> None:
    process, clock = telegram_process
    await _coordinator_joins(engine, api)
    api.fail_next("sendMessage", retry_after=3, times=2)
    api.push_text(3001, "/help")
    api.push_text(3001, "/language")
    await asyncio.sleep(0.5)
    assert len(api.sent(3001)) == 1

    def retried(times: int) -> list[Delivery]:
        """The unsent answers whose send was refused `times` times (recorded) or more."""
        with UnitOfWork(engine) as uow:
            waiting = uow.session.exec(select(Delivery).where(col(Delivery.sent_at).is_(None))).all()
        return [d for d in waiting if d.attempts >= times]

    for times in (1, 2):  # past each retry's wait (3 s) in turn, once its refusal is recorded
        await _until(lambda: bool(retried(times)), 10, f"refusal {times} recorded")  # noqa: B023
        clock.now = min(d.due_at for d in retried(times)) + timedelta(seconds=0.5)
        process.deliverer.wake.set()
    await _until(lambda: len(api.sent(3001)) == 3, 10, "both answers")
    help_text, language = (m.text.splitlines()[0] for m in api.sent(3001)[1:])
    assert help_text == DE.render("What you can do as {role}:", {"role": DE.gettext("a coordinator")})
    assert language == DE.gettext("Which language should I use?")  # in order, after the wait


async def test_run_waits_for_telegram_when_it_cannot_be_reached_at_start(
    engine: Engine, tmp_path: Path
) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("waiting for Telegram is the same on either database; SQLite is enough")
    codes = make_demo(engine, datetime.now(UTC))  # the process runs on the real clock: a fresh code
    port = _free_port()
    api = FakeBotApi()
    process = _run(engine, api_at(port), tmp_path, "bot")
    try:
        log_file = tmp_path / "bot.log"
        unreachable = "Telegram cannot be reached (NetworkError); trying again"
        await _until(lambda: unreachable in log_file.read_text(), 60, "the process finds Telegram away")
        await asyncio.sleep(3)  # a few more tries, each after a longer pause
        assert process.poll() is None  # still there, trying
        await api.start(port)
        api.push_text(1001, f"/start {codes.school}", language_code="en")
        welcome = await api.wait_for_message(1001, lambda m: m.method == "sendMessage", timeout=40)
        assert welcome.text.startswith("Welcome! You are registered as a school.")
        log = log_file.read_text()
        assert log.count(unreachable) == 1  # said once a minute, not on every try
        assert api.token not in log
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        await api.stop()


class api_at:  # noqa: N801 (stands in for a FakeBotApi that is not started yet)
    """The base URL and token of a fake Bot API that will listen on `port`."""

    def __init__(self, port: int) -> None:
        self.token = FakeBotApi().token
        self.base_url = f"http://127.0.0.1:{port}/bot"


def test_telegram_webhook_settings_are_checked() -> None:
    from bot.transports import telegram_webhook
    from services.errors import InvalidInput

    assert telegram_webhook({}) is None
    good = {"TELEGRAM_WEBHOOK_URL": "https://bot.example/tg", "TELEGRAM_WEBHOOK_SECRET": SECRET}
    assert telegram_webhook(good) == Webhook("https://bot.example/tg", SECRET, "127.0.0.1", 8443)
    assert telegram_webhook({**good, "WEBHOOK_LISTEN": "0.0.0.0:9000"}) == Webhook(
        "https://bot.example/tg", SECRET, "0.0.0.0", 9000
    )
    for bad in (
        {**good, "TELEGRAM_WEBHOOK_SECRET": "short"},
        {**good, "TELEGRAM_WEBHOOK_SECRET": "with space in it, long enough"},
        {**good, "TELEGRAM_WEBHOOK_URL": "http://bot.example/tg"},
        {**good, "WEBHOOK_LISTEN": "8443"},
        {**good, "WEBHOOK_LISTEN": "host:99999"},
    ):
        with pytest.raises(InvalidInput):
            telegram_webhook(bad)


async def test_behind_one_webhook_url_a_standby_takes_the_post_and_rings_the_leader_to_answer(
    engine: Engine, api: FakeBotApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("several processes need PostgreSQL")
    monkeypatch.setattr("bot.delivery.IDLE_POLL", 60.0)  # without the doorbell the answer would wait a minute
    codes = make_demo(engine, NOW)
    processes = []
    for port in (_free_port(), _free_port()):
        webhook = Webhook(
            url="https://bot.kreis.example/telegram", secret=SECRET, host="127.0.0.1", port=port
        )
        clock = Clock(NOW)
        telegram = TelegramBot(
            token=api.token, engine=engine, base_url=api.base_url, clock=clock, webhook=webhook
        )
        process = BotProcess(engine, [telegram], limiter=RateLimiter(per_chat_gap=0.02), clock=clock)
        await process.start()
        processes.append((process, port))
    try:
        (leader, _), (standby, standby_port) = processes
        assert (leader.leading, standby.leading) == (True, False)
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        async with aiohttp.ClientSession() as http:
            update = _update(1, 1001, f"/start {codes.school}")
            async with http.post(
                f"http://127.0.0.1:{standby_port}/telegram", json=update, headers=headers
            ) as r:
                assert r.status == 200
        welcome = await api.wait_for_message(1001, lambda m: m.method == "sendMessage")
        assert welcome.text.startswith("Welcome! You are registered as a school.")
    finally:
        for process, _ in reversed(processes):
            await process.stop()


async def test_the_process_that_takes_the_lead_sends_what_a_dead_one_had_claimed(
    engine: Engine, api: FakeBotApi
) -> None:
    users = _members(engine, 1)
    with UnitOfWork(engine) as uow:
        identity = uow.session.exec(select(ChatIdentity)).one()
        answer = deliveries.add_answer(
            uow.session, identity_id=identity.id or 0, body=reply_to_body(Reply("Noch da")), now=NOW
        )
        claimed = uow.session.get(Delivery, answer)
        assert claimed is not None
        claimed.claimed_until = NOW + timedelta(seconds=60)  # claimed by a process killed while sending
        uow.commit()
    clock = Clock(NOW)
    telegram = TelegramBot(token=api.token, engine=engine, base_url=api.base_url, clock=clock, poll_timeout=1)
    process = BotProcess(engine, [telegram], limiter=RateLimiter(per_chat_gap=0.02), clock=clock)
    await process.start()
    try:
        sent = await api.wait_for_message(users[0], lambda m: m.method == "sendMessage", timeout=10)
        assert sent.text == "Noch da"  # at once, not after the dead process's lease of a minute
    finally:
        await process.stop()
