"""What one press costs since issue 16: a quiet event wakes nothing, pushed answers go out without a
look at the outbox, and the policy is read once per transaction.

These are behaviours (which statements run, which events wake the sender), not timings; the
timings are in bench/chat_latency.py.
"""

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.conversation.router import Conversation, Handled
from bot.delivery import Deliverer
from bot.messages import Incoming, Reply
from bot.process import BotProcess
from bot.rate_limit import RateLimiter
from bot.telegram import app as telegram_app
from bot.telegram.app import ACKNOWLEDGE_WITHIN, TelegramBot
from db.models import District, Offer
from db.uow import UnitOfWork
from services.notices import RequestCancelled
from services.outbox import notify
from services.policy import load_policy, set_rule
from services.vocabulary import Recipient
from tests.chat_world import NOW, Clock, make_demo
from tests.fake_bot_api import FakeBotApi, SentMessage

SCHOOL = 1001
REQUEST = ("/request", "ar", "vor Ort", "10.3. 10:00", "60", "1", "1", "1", "1")  # up to the summary


class Phone:
    """A chat platform that records what each chat got."""

    max_text = 4096

    def __init__(self) -> None:
        self.inbox: dict[str, list[str]] = {}

    async def send(self, chat_id: str, reply: Reply, *, key: str | None = None) -> str:
        self.inbox.setdefault(chat_id, []).append(reply.text)
        return str(len(self.inbox[chat_id]))

    async def edit(self, chat_id: str, message_id: str, reply: Reply, *, key: str | None = None) -> None:
        self.inbox[chat_id][int(message_id) - 1] = reply.text


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements the engine runs meanwhile, lower-cased."""
    seen: list[str] = []

    def record(_conn: object, _cursor: object, sql: str, *_args: object) -> None:
        seen.append(sql.lower())

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _joined(engine: Engine, clock: Clock) -> Conversation:
    codes = make_demo(engine, NOW)
    talk = Conversation(engine, clock)
    for user, code in (("school", codes.school), ("amira", codes.amira)):
        talk.handle(Incoming("test", user, user, text=f"/start {code}"))
    return talk


def _press(talk: Conversation, user: str, text: str = "", choice: str | None = None) -> Handled:
    return talk.handle_stored(Incoming("test", user, user, text=text, choice=choice))


def test_a_dialog_step_is_quiet_and_a_submission_or_an_accept_is_not(engine: Engine) -> None:
    clock = Clock(NOW)
    talk = _joined(engine, clock)
    phone = Phone()
    deliverer = Deliverer(engine, {"test": phone}, limiter=RateLimiter(per_chat_gap=0), clock=clock)
    for line in REQUEST:
        step = _press(talk, "school", line)
        # Each step wrote its answer and nothing for anyone else: the sender and timers need no look.
        assert step.quiet, line
        assert len(step.answers) == 1
        assert step.notices == []
        asyncio.run(deliverer.run_once())  # the answer goes out (as pushed), so the next is not held
    submitted = _press(talk, "school", "1")  # "Send": offers go to three interpreters
    assert not submitted.quiet
    asyncio.run(deliverer.run_once())
    assert len(phone.inbox["amira"]) == 1  # her offer
    with UnitOfWork(engine) as uow:
        offer = uow.session.exec(select(Offer).where(Offer.interpreter_id == 1)).one()
    accepted = _press(talk, "amira", choice=f"of:a:{offer.id}")
    assert not accepted.quiet  # the school is told, reminders are armed
    assert len(accepted.notices) == 1  # her own confirmation, rendered in the event's transaction


def test_pushed_answers_go_out_without_a_look_at_the_outbox_and_a_wake_still_reads_it(engine: Engine) -> None:
    clock = Clock(NOW)
    talk = _joined(engine, clock)
    phone = Phone()
    deliverer = Deliverer(engine, {"test": phone}, limiter=RateLimiter(per_chat_gap=0), clock=clock)

    async def until(chat: str, count: int) -> None:
        for _ in range(200):
            if len(phone.inbox.get(chat, [])) >= count:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{chat} got {phone.inbox.get(chat)}")

    async def scenario() -> tuple[list[str], list[str]]:
        running = asyncio.create_task(deliverer.run_forever())
        await asyncio.sleep(0.2)  # the first round looked at the outbox and went idle
        step = _press(talk, "school", "/request")
        with statements(engine) as pushed:
            deliverer.push("test", "school", step.answers, step.notices)
            await until("school", 1)
            await asyncio.sleep(0.1)  # whatever the round does after the send
        with UnitOfWork(engine) as uow:
            district_id = uow.session.exec(select(District.id)).one()
            assert district_id is not None
            notify(
                uow.session,
                district_id=district_id,
                recipient=Recipient.SCHOOL,
                recipient_id=1,
                notice=RequestCancelled(request_id=7, fee_cents=0, calendar_sequence=None),
                now=NOW,
            )
            uow.commit()
        with statements(engine) as woken:
            deliverer.wake.set()
            await until("school", 2)
        deliverer.stop()
        deliverer.wake.set()
        await running
        return pushed, woken

    pushed, woken = asyncio.run(scenario())
    assert len(phone.inbox["school"]) == 2
    # The pushed answer was recorded as sent, and nothing read the outbox or asked what is due next.
    assert any(sql.startswith("update delivery") for sql in pushed)
    assert not [sql for sql in pushed if sql.startswith("select") and "outbox_message" in sql]
    # A wake (a notification written by another transaction) still makes the round read the outbox.
    assert [sql for sql in woken if sql.startswith("select") and "outbox_message" in sql]


def test_the_policy_is_read_once_per_transaction_and_afresh_after_a_change(engine: Engine) -> None:
    make_demo(engine, NOW)
    with Session(engine) as session, Session(engine) as other:
        district_id = session.exec(select(District.id)).one()
        assert district_id is not None
        with statements(engine) as seen:
            first = load_policy(session, district_id)
            again = load_policy(session, district_id)
        assert again is first
        assert len([sql for sql in seen if "policy_setting" in sql]) == 1
        assert first.hourly_rate == 2400
        # A rule written in the same transaction is seen by its next read.
        set_rule(session, district_id, "hourly_rate", "25.00", actor="t", now=NOW)
        assert load_policy(session, district_id).hourly_rate == 2500
        session.rollback()
        assert load_policy(session, district_id).hourly_rate == 2400  # rolled back: read afresh
        session.commit()
        # Another transaction changes it: the next transaction here reads it, not the kept copy.
        set_rule(other, district_id, "hourly_rate", "26.50", actor="t", now=NOW)
        other.commit()
        assert load_policy(session, district_id).hourly_rate == 2650


async def _school_asked(
    api: FakeBotApi, engine: Engine, limiter: RateLimiter
) -> tuple[BotProcess, SentMessage]:
    """A bot with the school joined and asked its first question of /request (with buttons)."""
    clock = Clock(NOW)
    codes = make_demo(engine, NOW)
    telegram = TelegramBot(token=api.token, engine=engine, base_url=api.base_url, clock=clock, poll_timeout=1)
    bot = BotProcess(engine, [telegram], limiter=limiter, clock=clock)
    await bot.start()
    api.push_text(SCHOOL, f"/start {codes.school}")
    await api.wait_for_message(SCHOOL)
    since = len(api.sent(SCHOOL))
    api.push_text(SCHOOL, "/request")
    return bot, await api.wait_for_message(SCHOOL, lambda m: bool(m.buttons), since=since)


async def test_a_pressed_button_stops_spinning_right_after_its_answer_went_out(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The order alone: on a loaded machine the first press's handling can outlast the 0.2 s after
    # which the spinner is answered anyway (the next test holds that bound).
    monkeypatch.setattr(telegram_app, "ACKNOWLEDGE_WITHIN", 30.0)
    async with FakeBotApi() as api:
        bot, asked = await _school_asked(api, engine, RateLimiter(per_chat_gap=0))
        try:
            since = len(api.sent(SCHOOL))
            callback = api.press(SCHOOL, asked.message_id, asked.buttons[0][1])
            spun = await api.wait_for_callback_answer(callback)
            answer = await api.wait_for_message(SCHOOL, since=since)
        finally:
            await bot.stop()
    # Its request was not built and sent beside the handling and the answer's own send.
    assert answer.accepted_at <= spun.answered_at
    assert answer.text != asked.text


async def test_a_button_whose_answer_must_wait_stops_spinning_anyway(engine: Engine) -> None:
    async with FakeBotApi() as api:
        # One message a second to a chat: the press's answer waits for the question's second to pass.
        bot, asked = await _school_asked(api, engine, RateLimiter(per_chat_gap=1.0))
        try:
            since = len(api.sent(SCHOOL))
            pressed_at = time.monotonic()
            callback = api.press(SCHOOL, asked.message_id, asked.buttons[0][1])
            spun = await api.wait_for_callback_answer(callback)
            answer = await api.wait_for_message(SCHOOL, since=since)
        finally:
            await bot.stop()
    assert spun.answered_at < answer.accepted_at
    assert spun.answered_at - pressed_at < ACKNOWLEDGE_WITHIN + 0.5  # and the way there and back


def test_a_pushed_answer_is_sent_in_the_next_round_of_the_event_loop(engine: Engine) -> None:
    """The sleeping delivery loop wakes on one future: the answer goes out before whatever else
    (the poll's next getUpdates) was made ready by the same event, not after it."""
    clock = Clock(NOW)
    talk = _joined(engine, clock)
    phone = Phone()

    async def scenario() -> list[int]:
        deliverer = Deliverer(engine, {"test": phone}, limiter=RateLimiter(per_chat_gap=0), clock=clock)
        running = asyncio.create_task(deliverer.run_forever())
        for _ in range(20):  # its first round reads the outbox (empty), then it sleeps
            await asyncio.sleep(0.01)
        seen = []
        for line in REQUEST[:3]:
            handled = await asyncio.to_thread(_press, talk, "school", line)
            deliverer.push("test", "school", handled.answers)
            await asyncio.sleep(0)  # one round of the event loop
            seen.append(len(phone.inbox.get("school", [])))
            for _ in range(5):  # its record of the send is written meanwhile
                await asyncio.sleep(0.01)
        deliverer.stop()
        await running
        return seen

    assert asyncio.run(scenario()) == [1, 2, 3]
