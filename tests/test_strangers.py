"""Strangers cost nothing: plain messages write no rows, wrong invite codes are limited per account."""

import logging
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel, col
from sqlmodel import select as select_rows

from bot.conversation.router import Conversation
from bot.i18n import Translator
from bot.messages import Incoming
from db.models import ChatIdentity, Invite, ProcessedEvent, StrangerAttempt
from db.uow import UnitOfWork
from services.demo import DEMO_NAME
from services.strangers import LIMIT, WINDOW, account_hash
from tests.chat_world import NOW, Clock, make_demo

DE = Translator("de")
NOT_VALID = DE.gettext(
    "This invite code is not valid. Please check it or ask your coordinator for a new one."
)
WELCOME = (
    DE.gettext(
        "Welcome to Dolmetscherpool. This bot is for the schools, interpreters and coordination office of a "
        "county's interpreter pool. To take part you need an invite code from your coordination office; "
        "then send: /start CODE"
    )
    + "\n\n"
    + DE.render(
        "Privacy: {district} is responsible for this bot. It stores your chat account only once you join "
        "with a code, and then only what the pool needs. /privacy shows the full notice.",
        {"district": DEMO_NAME},
    )
)  # with the short privacy notice of the only district


def too_many(retry_at: object) -> str:
    return DE.render(
        "Too many attempts with invite codes. Please try again after {retry_at}.", {"retry_at": retry_at}
    )


def row_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            table.name: connection.execute(select(func.count()).select_from(table)).scalar_one()
            for table in SQLModel.metadata.sorted_tables
        }


def attempts(engine: Engine) -> list[tuple[str, str, int]]:
    with UnitOfWork(engine) as uow:
        rows = uow.session.exec(select_rows(StrangerAttempt)).all()
        return [(row.platform, row.user_hash, row.count) for row in rows]


def start(talk: Conversation, user: str, code: str, key: str) -> str:
    replies = talk.handle(Incoming("telegram", user, user, text=f"/start {code}", event_key=key))
    assert len(replies) == 1
    return replies[0].text


def test_plain_messages_from_strangers_write_no_rows(engine: Engine) -> None:
    make_demo(engine, NOW)
    talk = Conversation(engine, Clock(NOW))
    before = row_counts(engine)
    for n, text in enumerate(["hallo", "/help", "/start", "/request", "1", "", "x" * 5000]):
        replies = talk.handle(Incoming("telegram", f"{n}", f"{n}", text=text, event_key=f"update:{n}"))
        assert [reply.text for reply in replies] == [WELCOME]
    talk.handle(Incoming("telegram", "7", "7", choice="accept:12", event_key="update:7"))
    assert row_counts(engine) == before


def test_wrong_codes_are_limited_per_account_counted_in_one_row_and_logged_without_the_code(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    codes = make_demo(engine, NOW)
    clock = Clock(NOW)
    talk = Conversation(engine, clock)
    before = row_counts(engine)
    caplog.set_level(logging.INFO, logger="services.strangers")
    answers = [start(talk, "666", f"WRONG{n:04d}", f"update:{n}") for n in range(300)]
    assert answers[:LIMIT] == [NOT_VALID] * LIMIT
    assert answers[LIMIT:] == [too_many(NOW + WINDOW)] * (300 - LIMIT)
    # Further codes are not even checked: a valid one is refused as well, and stays unused.
    assert start(talk, "666", codes.school, "update:300") == too_many(NOW + WINDOW)
    assert attempts(engine) == [("telegram", account_hash("telegram", "666"), 301)]
    assert row_counts(engine) == {**before, "stranger_attempt": 1}  # no processed_event, no audit
    with UnitOfWork(engine) as uow:
        assert uow.session.exec(select_rows(Invite).where(col(Invite.used_at).is_not(None))).all() == []

    messages = [record.getMessage() for record in caplog.records if record.name == "services.strangers"]
    assert all("WRONG" not in message and codes.school not in message for message in messages)
    assert all("666" not in message for message in messages)  # the account, only as a short hash
    short = account_hash("telegram", "666")[:8]
    assert messages[:LIMIT] == [
        f"wrong invite code from telegram account {short}: attempt {n} of {LIMIT}"
        for n in range(1, LIMIT + 1)
    ]
    assert messages[LIMIT:] == [  # the first refusal, then one line each time the count doubles
        f"invite codes from telegram account {short} refused: {n} attempts in this window, {LIMIT} allowed"
        for n in (6, 8, 16, 32, 64, 128, 256)
    ]

    # Another account is not held up by this one (five minutes on: its window ends later).
    clock.now = NOW + timedelta(minutes=5)
    assert start(talk, "777", "WRONG", "other:1") == NOT_VALID

    # After the window the account may try again, counted afresh; the other one's window still runs.
    clock.now = NOW + WINDOW + timedelta(seconds=1)
    assert start(talk, "666", "WRONG", "later:1") == NOT_VALID
    assert sorted(attempts(engine)) == sorted(
        [("telegram", account_hash("telegram", "777"), 1), ("telegram", account_hash("telegram", "666"), 1)]
    )
    assert start(talk, "666", codes.school, "later:2").startswith(
        DE.render("Welcome! You are registered as {role}.", {"role": DE.gettext("a school")})
    )
    assert attempts(engine) == [("telegram", account_hash("telegram", "777"), 1)]  # a member now: no counter
    with UnitOfWork(engine) as uow:
        assert uow.session.exec(select_rows(ChatIdentity.user_id)).all() == ["666"]
        assert uow.session.exec(select_rows(ProcessedEvent.event_key)).all() == [
            "later:2"
        ]  # a redelivery of the link is known


def test_a_redelivered_link_is_not_handled_again(engine: Engine) -> None:
    codes = make_demo(engine, NOW)
    talk = Conversation(engine, Clock(NOW))
    event = Incoming("telegram", "5", "5", text=f"/start {codes.amira}", event_key="update:1")
    assert len(talk.handle(event)) == 1
    counts = row_counts(engine)
    assert talk.handle(event) == []
    assert row_counts(engine) == counts


def test_the_counter_stays_bounded_as_windows_pass(engine: Engine) -> None:
    make_demo(engine, NOW)
    clock = Clock(NOW)
    talk = Conversation(engine, clock)
    for n in range(40):  # one new account every 2 minutes for 80 minutes
        clock.now = NOW + timedelta(minutes=2 * n)
        assert start(talk, f"guess{n}", "WRONG", f"update:{n}") == NOT_VALID
        # only the accounts that tried in the last 15 minutes (the window) are kept
        assert row_counts(engine)["stranger_attempt"] == min(n + 1, 8)
