"""Operator alerts, on SQLite and PostgreSQL: each is written once, goes to the right people, and arrives.

A due row failing on every attempt, an interpreter an offer cannot reach, a platform away for more
than 15 minutes: each is told once (also when it is tried again, or by another process at the same
time), to the operator contact when one is set, through the real outbox and delivery path.
"""

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.cli.main import main
from bot.delivery import Deliverer
from bot.i18n import Translator
from bot.liveness import Liveness
from bot.notifications import render
from bot.outage import OutageWatch
from bot.process import BotProcess
from bot.rate_limit import RateLimiter
from bot.scheduling import run_due
from bot.telegram.app import TelegramBot
from db.models import ChatIdentity, Delivery, DueTask, Member, OutboxMessage
from db.uow import UnitOfWork
from services import operator_alerts, timers
from services.deliveries import expand, mark_failed
from services.districts import create_district
from services.due import MAX_ATTEMPTS, Kind
from services.identities import link
from services.invites import create_invite
from services.notices import CloseoutPrompt
from services.outbox import notify
from services.setup_check import interpreters_without_chat
from services.vocabulary import Recipient, Role
from tests.builders import ACTOR, NOW, World, build_world, submit
from tests.chat_world import Clock, make_demo
from tests.fake_bot_api import FakeBotApi
from tests.test_conversation import Phone

MakeUow = Callable[[], UnitOfWork]
DE = Translator("de")
EXPIRY = NOW + timedelta(hours=4)  # the first wave of a request submitted at NOW


@pytest.fixture
def world(uow: MakeUow) -> World:
    world = build_world(uow)
    world.interpreter("Amira", km_north=1)
    return world


def _member(world: World, role: Role, for_id: int, user: str) -> int:
    """A member of the district linked on the fake platform `test` (chat id = user); their member id."""
    with world.make_uow() as u:
        _, code = create_invite(
            u.session,
            district_id=world.district_id,
            role=role,
            for_id=for_id,
            actor=ACTOR,
            now=NOW,
            name=user,
        )
        member = link(u.session, platform="test", user_id=user, chat_id=user, code=code, now=NOW, locale="de")
        u.commit()
        assert member.id is not None
        return member.id


def _unlinked_member(world: World, role: Role, for_id: int, name: str) -> int:
    """A member without any chat (their invite redeemed, their account gone)."""
    member_id = _member(world, role, for_id, name)
    with world.make_uow() as u:
        for identity in u.session.exec(select(ChatIdentity).where(ChatIdentity.member_id == member_id)):
            u.session.delete(identity)
        u.commit()
    return member_id


def _alerts(world: World, template: str) -> list[tuple[str, int, dict[str, Any]]]:
    with world.make_uow() as u:
        rows = u.session.exec(
            select(OutboxMessage).where(OutboxMessage.template == template).order_by(col(OutboxMessage.id))
        )
        return [(m.recipient_type, m.recipient_id, json.loads(m.params)) for m in rows]


def _deliver(engine: Engine, phone: Phone, at: datetime) -> None:
    """The bot's delivery loop until quiet: outbox rows become deliveries, alerts written meanwhile too."""
    deliverer = Deliverer(engine, {"test": phone}, limiter=RateLimiter(per_chat_gap=0), clock=Clock(at))
    for _ in range(5):
        if not asyncio.run(deliverer.run_once()):
            return


def _break_wave_expiry(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(session: Any, task: DueTask, now: datetime) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setitem(timers.HANDLERS, Kind.OFFER_EXPIRY, broken)


def _fire(engine: Engine, at: datetime) -> int:
    return run_due(engine, lambda: at)


def _fail_until_given_up(engine: Engine) -> datetime:
    """Fire the broken wave expiry at each retry until it is given up; returns when that was."""
    at = EXPIRY
    for attempt in range(1, MAX_ATTEMPTS + 1):
        assert _fire(engine, at) == 0
        at += timedelta(minutes=attempt)  # the retry pause grows by a minute each time
    return at - timedelta(minutes=MAX_ATTEMPTS)


# --- a due row given up -----------------------------------------------------------------------------


def test_a_due_row_given_up_is_told_once_and_arrives_once(
    world: World, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _member(world, Role.COORDINATOR, world.district_id, "office")
    request_id = submit(world)
    _break_wave_expiry(monkeypatch)
    given_up_at = _fail_until_given_up(engine)
    with world.make_uow() as u:
        task = u.session.exec(select(DueTask).where(DueTask.kind == "offer_expiry")).one()
    assert (task.outcome, task.attempts, task.last_error, task.done_at) == (
        "failed",
        MAX_ATTEMPTS,
        "RuntimeError",
        given_up_at,
    )
    expected = {
        "task_id": task.id,
        "task_kind": "offer_expiry",
        "request_id": request_id,
        "attempts": MAX_ATTEMPTS,
        "error": "RuntimeError",
        "failed_at": given_up_at.isoformat(),
    }
    assert _alerts(world, "operator.due_failed") == [("coordinators", world.district_id, expected)]

    # Firing again finds nothing; a late second process recording a failure of it changes nothing.
    assert run_due(engine, lambda: given_up_at + timedelta(days=1)) == 0
    with world.make_uow() as u:
        assert timers.record_failure(u.session, task.id or 0, "RuntimeError", given_up_at) is False
        u.commit()
    assert len(_alerts(world, "operator.due_failed")) == 1

    phone = Phone()
    _deliver(engine, phone, given_up_at)
    _deliver(engine, phone, given_up_at + timedelta(minutes=5))
    with world.make_uow() as u:
        text = render(u.session, DE, "operator.due_failed", expected, Role.COORDINATOR).text
    assert phone.inbox["office"].count(text) == 1
    assert text.startswith(
        "Störung: das Ende einer Angebotsrunde ist 5-mal gescheitert und wurde aufgegeben "
        "(zuletzt Mo., 02.03.2026, 13:10 Uhr, Fehler: RuntimeError).\n"
        f"#{request_id} · "
    )
    assert f"„due task {task.id}“" in text


def test_two_processes_giving_up_the_same_row_at_once_tell_it_once(
    world: World, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    submit(world)
    _break_wave_expiry(monkeypatch)
    at = EXPIRY
    for attempt in range(1, MAX_ATTEMPTS):  # one attempt short of giving up
        _fire(engine, at)
        at += timedelta(minutes=attempt)
    with world.make_uow() as u:
        task_id = u.session.exec(select(DueTask.id).where(DueTask.kind == "offer_expiry")).one()
    assert task_id is not None
    results: list[bool] = []
    barrier = threading.Barrier(2)

    def record() -> None:
        barrier.wait()
        with UnitOfWork(engine) as u:
            results.append(timers.record_failure(u.session, task_id, "RuntimeError", at))
            u.commit()

    threads = [threading.Thread(target=record) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(results) == [False, True]
    assert len(_alerts(world, "operator.due_failed")) == 1
    with world.make_uow() as u:
        task = u.session.get(DueTask, task_id)
        assert task is not None
        assert (task.attempts, task.outcome) == (MAX_ATTEMPTS, "failed")


def test_a_marker_written_by_two_transactions_at_once_is_written_once(world: World, engine: Engine) -> None:
    """The second insert waits for the first (PostgreSQL: the unique key; SQLite: the write lock) and
    then is a no-op inside its savepoint; its transaction goes on and commits."""
    amira = world.interpreters["Amira"]
    first_wrote = threading.Event()
    results: dict[str, bool] = {}

    def first() -> None:
        with UnitOfWork(engine) as u:
            results["first"] = operator_alerts.interpreter_unreachable(
                u.session, district_id=world.district_id, interpreter_id=amira, now=NOW
            )
            first_wrote.set()
            threading.Event().wait(0.5)  # the second is waiting on the key meanwhile
            u.commit()

    def second() -> None:
        first_wrote.wait(10)
        with UnitOfWork(engine) as u:
            results["second"] = operator_alerts.interpreter_unreachable(
                u.session, district_id=world.district_id, interpreter_id=amira, now=NOW
            )
            u.commit()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results == {"first": True, "second": False}
    assert [(r, i) for r, i, _ in _alerts(world, "operator.no_chat")] == [("coordinators", world.district_id)]


# --- an interpreter without a chat --------------------------------------------------------------------


def test_an_offer_to_an_interpreter_without_a_chat_tells_the_coordinators_once(
    world: World, engine: Engine
) -> None:
    world.interpreter("Samir", km_north=2)
    samir = world.interpreters["Samir"]
    amira = world.interpreters["Amira"]
    _member(world, Role.INTERPRETER, samir, "samir")
    _member(world, Role.COORDINATOR, world.district_id, "office")
    with world.make_uow() as u:
        assert [i.name for i in interpreters_without_chat(u.session, world.district_id)] == ["Amira"]
    submit(world)
    submit(world, starts_at=NOW + timedelta(days=9))  # a second offer to Amira: no second alert
    phone = Phone()
    _deliver(engine, phone, NOW)
    # Delivered to the office: its params are gone; the text named Amira, read from her row.
    assert _alerts(world, "operator.no_chat") == [("coordinators", world.district_id, {})]
    assert len(phone.inbox["samir"]) == 2  # Samir's offers reached him
    command = f"python -m bot --district testkreis invite create --role interpreter --for {amira}"
    told = [m for m in phone.inbox["office"] if command in m]
    assert told == [
        DE.render(
            "{name} (interpreter {interpreter_id}) has no linked chat, so offers do not reach them: "
            "each one waits unanswered until it expires. Send them an invite code:\n{command}",
            {"name": "Amira", "interpreter_id": amira, "command": command},
        )
    ]
    with world.make_uow() as u:  # a later batch (a restart, another process) does not tell it again
        assert (
            operator_alerts.interpreter_unreachable(
                u.session, district_id=world.district_id, interpreter_id=amira, now=NOW
            )
            is False
        )


# --- a platform away ----------------------------------------------------------------------------------


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_a_platform_away_for_15_minutes_is_told_once_per_outage_and_its_return_too(
    world: World, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    with world.make_uow() as u:
        other = create_district(u.session, name="Landkreis Celle", slug="celle", now=NOW)
        u.commit()
        assert other.id is not None
    clock = FakeClock(NOW)
    liveness = Liveness(clock)
    liveness.watch("telegram")
    liveness.reached("telegram")
    watch = OutageWatch(engine, liveness)
    clock.now = NOW + timedelta(minutes=1)
    liveness.missed("telegram")
    since = clock.now
    for minutes in (5, 15):
        clock.now = NOW + timedelta(minutes=minutes)
        liveness.missed("telegram")
        assert watch.check() == 0  # 14 minutes away: not yet
    clock.now = NOW + timedelta(minutes=16)
    with caplog.at_level(logging.INFO, logger="bot.outage"):
        assert watch.check() == 2  # one alert to each district
        clock.now = NOW + timedelta(minutes=20)
        assert watch.check() == 0
        # Another process looking at the same outage (the same first miss) writes nothing new.
        assert OutageWatch(engine, liveness).check() == 0
        clock.now = NOW + timedelta(minutes=31)
        liveness.reached("telegram")
        assert watch.check() == 2
        assert watch.check() == 0
    down = _alerts(world, "operator.platform_down")
    assert down == [
        ("coordinators", world.district_id, {"platform": "telegram", "since_at": since.isoformat()}),
        ("coordinators", other.id, {"platform": "telegram", "since_at": since.isoformat()}),
    ]
    back = _alerts(world, "operator.platform_back")
    assert [(r, i) for r, i, _ in back] == [("coordinators", world.district_id), ("coordinators", other.id)]
    assert back[0][2] == {
        "platform": "telegram",
        "since_at": since.isoformat(),
        "back_at": (NOW + timedelta(minutes=31)).isoformat(),
    }
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("ERROR", f"platform telegram unreachable since {since.isoformat()}; the operators are told"),
        ("INFO", f"platform telegram reachable again (away since {since.isoformat()})"),
    ]

    # A new outage is a new alert.
    clock.now = NOW + timedelta(minutes=40)
    liveness.missed("telegram")
    clock.now = NOW + timedelta(minutes=56)
    assert watch.check() == 2
    assert len(_alerts(world, "operator.platform_down")) == 4


def test_a_standby_and_a_brief_miss_write_nothing(world: World, engine: Engine) -> None:
    clock = FakeClock(NOW)
    liveness = Liveness(clock)
    liveness.watch("matrix")
    liveness.missed("matrix")
    clock.now = NOW + timedelta(minutes=10)
    liveness.reached("matrix")
    clock.now = NOW + timedelta(minutes=30)
    assert OutageWatch(engine, liveness).check() == 0
    liveness.missed("matrix")
    liveness.unwatch("matrix")  # another process leads now
    clock.now = NOW + timedelta(hours=2)
    assert OutageWatch(engine, liveness).check() == 0
    assert _alerts(world, "operator.platform_down") == []


# --- the operator contact -----------------------------------------------------------------------------


def _cli(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("BOT_LOCALE", "en")
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_operator_contact_is_set_shown_and_cleared_on_the_command_line(
    world: World, engine: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    office = _member(world, Role.COORDINATOR, world.district_id, "office")
    it = _unlinked_member(world, Role.COORDINATOR, world.district_id, "it")
    assert _cli(engine, monkeypatch, capsys, "operator", "show") == (
        0,
        "No operator contact is set: technical alerts go to the coordinators.\n"
        "Coordinators (member id, name, linked chat):\n"
        f"{office:>6}  office  yes\n"
        f"{it:>6}  it  no\n",
        "",
    )
    assert _cli(engine, monkeypatch, capsys, "operator", "set", "--member", "999") == (
        2,
        "",
        "There is no member 999 in this district.\n",
    )
    code, out, _ = _cli(engine, monkeypatch, capsys, "operator", "set", "--member", str(it))
    assert code == 0
    assert out == (
        f"The operator contact of Landkreis testkreis is now it (member {it}). Failed timers and platform "
        "outages go to them; undelivered notifications to them and the coordinators.\n"
        "They have no linked chat yet: until they link one, the alerts go to the coordinators.\n"
    )
    code, out, _ = _cli(engine, monkeypatch, capsys, "operator", "show")
    assert out.splitlines()[0].startswith(f"Operator contact: it (member {it}), set by cli")
    assert (
        out.splitlines()[1]
        == "They have no linked chat yet: until they link one, the alerts go to the coordinators."
    )
    assert _cli(engine, monkeypatch, capsys, "operator", "clear")[1] == (
        "The operator contact is removed: technical alerts go to the coordinators.\n"
    )
    assert _cli(engine, monkeypatch, capsys, "operator", "clear")[1] == (
        "No operator contact is set: technical alerts go to the coordinators.\n"
    )


def test_with_an_operator_contact_technical_alerts_go_to_them_and_undelivered_ones_to_both(
    world: World, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _member(world, Role.COORDINATOR, world.district_id, "office")
    it = _member(world, Role.SCHOOL, world.school_id, "it")  # not a coordinator: no say over the money
    with world.make_uow() as u:
        operator_alerts.set_operator(
            u.session, district_id=world.district_id, member_id=it, actor=ACTOR, now=NOW
        )
        u.commit()
    submit(world)
    _break_wave_expiry(monkeypatch)
    given_up_at = _fail_until_given_up(engine)
    assert [(r, i) for r, i, _ in _alerts(world, "operator.due_failed")] == [("member", it)]

    clock = FakeClock(NOW)
    liveness = Liveness(clock)
    liveness.watch("matrix")
    liveness.missed("matrix")
    clock.now = NOW + timedelta(minutes=15)
    assert OutageWatch(engine, liveness).check() == 1
    assert [(r, i) for r, i, _ in _alerts(world, "operator.platform_down")] == [("member", it)]

    # A notification given up goes to the coordinators, who know the person, and to the operator.
    samir = world.interpreter("Samir", km_north=9)
    samir_member = _member(world, Role.INTERPRETER, samir, "samir")
    _give_up_a_notice_to(world, samir, samir_member, given_up_at)
    failed = _alerts(world, "delivery.failed")
    assert [(r, i) for r, i, _ in failed] == [("coordinators", world.district_id), ("member", it)]
    assert failed[0][2] == failed[1][2] == {"member_id": samir_member, "cause": "gone"}

    # An operator who is a coordinator has the coordinators' copy: no second one.
    with world.make_uow() as u:
        office = u.session.exec(select(Member).where(Member.name == "office")).one()
        assert office.id is not None
        operator_alerts.set_operator(
            u.session, district_id=world.district_id, member_id=office.id, actor=ACTOR, now=NOW
        )
        u.commit()
    _give_up_a_notice_to(world, samir, samir_member, given_up_at + timedelta(days=1))  # once a day per person
    assert [(r, i) for r, i, _ in _alerts(world, "delivery.failed")] == [
        ("coordinators", world.district_id),
        ("member", it),
        ("coordinators", world.district_id),
    ]


def _give_up_a_notice_to(world: World, interpreter_id: int, member_id: int, at: datetime) -> None:
    """A notification for the interpreter whose chat is gone (the platform refused it for good)."""
    with world.make_uow() as u:
        notify(
            u.session,
            district_id=world.district_id,
            recipient=Recipient.INTERPRETER,
            recipient_id=interpreter_id,
            notice=CloseoutPrompt(request_id=1),
            now=at,
        )
        expand(u.session, now=at)
        delivery = u.session.exec(
            select(Delivery)
            .join(ChatIdentity, col(ChatIdentity.id) == Delivery.identity_id)
            .where(ChatIdentity.member_id == member_id, col(Delivery.failed_at).is_(None))
        ).one()
        assert delivery.id is not None
        mark_failed(u.session, delivery.id, error="Forbidden", now=at)
        u.commit()


# --- the whole way: the real PTB against the fake Bot API ---------------------------------------------


async def test_telegram_away_for_15_minutes_reaches_the_office_once_when_it_is_back(engine: Engine) -> None:
    codes = make_demo(engine, NOW)
    api = FakeBotApi()
    await api.start()
    clock = Clock(NOW)
    telegram = TelegramBot(token=api.token, engine=engine, base_url=api.base_url, clock=clock, poll_timeout=1)
    process = BotProcess(engine, [telegram], limiter=RateLimiter(per_chat_gap=0.02), clock=clock)
    process.outages.every = 0.2
    await process.start()
    try:
        api.push_text(OFFICE, f"/start {codes.coordinator}", language_code="de")
        await api.wait_for_message(OFFICE)  # linked
        port = api.port
        await api.stop()  # Telegram is away
        await _eventually(lambda: process.liveness.unreachable_since("telegram") is not None)
        since = process.liveness.unreachable_since("telegram")
        assert since is not None
        await asyncio.sleep(1)
        assert _count(engine, "operator.platform_down") == 0  # away, but not for 15 minutes yet
        clock.now = since + timedelta(minutes=15, seconds=1)
        await _eventually(lambda: _count(engine, "operator.platform_down") == 1)
        await api.start(port)  # back: the alert waiting for it goes out, then the all-clear
        down = DE.render(
            "Alert: the bot has not reached {platform} since {since_at}. Messages wait and go out once it "
            "is back. Check the server's network; “python -m bot doctor” tests the connection.",
            {"platform": "Telegram", "since_at": since},
        )
        assert (await api.wait_for_message(OFFICE, lambda m: m.text == down, timeout=30)).text == down
        back = await api.wait_for_message(OFFICE, lambda m: "Telegram ist seit" in m.text, timeout=30)
        assert back.text.endswith("Wartende Nachrichten gehen jetzt raus.")
        await asyncio.sleep(1)  # time for a second copy to show up, if there were one
        texts = [m.text for m in api.sent(OFFICE)]
        assert texts.count(down) == 1
        assert sum("Telegram ist seit" in text for text in texts) == 1
        assert (_count(engine, "operator.platform_down"), _count(engine, "operator.platform_back")) == (1, 1)
    finally:
        await process.stop()
        await api.stop()
    assert api.server_errors == []


OFFICE = 4242


def _count(engine: Engine, template: str) -> int:
    with UnitOfWork(engine) as u:
        return len(u.session.exec(select(OutboxMessage.id).where(OutboxMessage.template == template)).all())


async def _eventually(check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)
