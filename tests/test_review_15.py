"""Review of issue 15: how its parts meet (an erasure while a message to the person is on its way, names
with letters beyond ASCII), each on SQLite and PostgreSQL."""

import asyncio
import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from bot.cli.main import main
from bot.delivery import Deliverer
from bot.messages import Reply, reply_to_body
from bot.rate_limit import RateLimiter
from db.engine import make_engine
from db.models import ChatIdentity, Delivery, Interpreter
from db.uow import UnitOfWork
from services import deliveries, personal_data
from services.identities import link
from services.invites import create_invite
from services.platforms import stop_deliveries
from services.policy import set_rule
from services.vocabulary import Role
from tests.builders import NOW, World, build_world, cells_holding
from tests.chat_world import Clock
from tests.test_conversation import Phone

PHONE = "+49 170 5550199"


def _linked(world: World, role: Role, for_id: int, user: str) -> int:
    """A member linked on the fake platform `test` (chat id = user); their member id."""
    with world.make_uow() as uow:
        _, code = create_invite(
            uow.session, district_id=world.district_id, role=role, for_id=for_id, actor="test", now=NOW
        )
        member = link(
            uow.session, platform="test", user_id=user, chat_id=user, code=code, now=NOW, locale="de"
        )
        uow.commit()
        assert member.id is not None
        return member.id


def _answer(world: World, member_id: int, body: str) -> None:
    with world.make_uow() as uow:
        chat = uow.session.exec(select(ChatIdentity).where(ChatIdentity.member_id == member_id)).one()
        assert chat.id is not None
        deliveries.add_answer(uow.session, identity_id=chat.id, body=reply_to_body(Reply(body)), now=NOW)
        uow.commit()


class ErasingPhone(Phone):
    """A platform during whose first send to `erased_chat` that person's data is erased (/mydata in
    another process, or `person erase`): the delivery being sent loses its row."""

    def __init__(self, engine: Engine, member_id: int, erased_chat: str) -> None:
        super().__init__()
        self.engine, self.member_id, self.erased_chat = engine, member_id, erased_chat

    async def send(self, chat_id: str, reply: Reply, *, key: str | None = None) -> str:
        if chat_id == self.erased_chat and self.member_id:
            with UnitOfWork(self.engine) as uow:
                personal_data.erase(uow.session, member_id=self.member_id, actor="test", now=NOW)
                uow.commit()
            self.member_id = 0
        return await super().send(chat_id, reply, key=key)


def test_an_erasure_while_a_message_to_the_person_is_on_its_way_holds_up_nobody_else(
    engine: Engine,
) -> None:
    world = build_world(lambda: UnitOfWork(engine))
    amira = _linked(world, Role.INTERPRETER, world.interpreter("Amira"), "amira")
    school = _linked(world, Role.SCHOOL, world.school_id, "school")
    _answer(world, amira, "Ihre Daten")  # claimed first, erased while it is sent
    _answer(world, school, "Ihre Anfrage")
    phone = ErasingPhone(engine, amira, "amira")
    deliverer = Deliverer(engine, {"test": phone}, limiter=RateLimiter(per_chat_gap=0), clock=Clock(NOW))

    assert asyncio.run(deliverer.run_once()) == 2  # the round goes on after the vanished row

    assert phone.inbox == {"amira": ["Ihre Daten"], "school": ["Ihre Anfrage"]}
    with UnitOfWork(engine) as uow:
        rows = uow.session.exec(select(Delivery)).all()
        assert [(r.body, r.sent_at is not None) for r in rows] == [(None, True)]  # the school's, sent
    assert asyncio.run(deliverer.run_once()) == 0


def test_an_erased_name_with_letters_beyond_ascii_goes_from_other_texts_in_any_case(engine: Engine) -> None:
    world = build_world(lambda: UnitOfWork(engine))
    ozlem = _linked(world, Role.INTERPRETER, world.interpreter("Özlem Öztürk"), "ozlem")
    office = _linked(world, Role.COORDINATOR, world.district_id, "office")
    _answer(world, office, "Pool: Özlem Öztürk (ar), ÖZLEM ÖZTÜRK (tr)")  # a list the office was sent
    assert {"delivery.body", "interpreter.name"} <= set(cells_holding(engine, "Öztürk", "ÖZTÜRK"))

    with UnitOfWork(engine) as uow:
        personal_data.erase(uow.session, member_id=ozlem, actor="test", now=NOW)
        uow.commit()

    # SQLite's lower() folds ASCII letters only: the name must be found all the same.
    assert cells_holding(engine, "Öztürk", "ÖZTÜRK") == ["interpreter.name"]  # kept for the billing
    with UnitOfWork(engine) as uow:
        bodies = [d.body for d in uow.session.exec(select(Delivery)) if d.body]
    assert [json.loads(b)["text"] for b in bodies] == ["Pool: […] (ar), […] (tr)"]


def test_person_erase_on_sqlite_leaves_the_phone_neither_in_the_file_nor_in_its_wal(
    tmp_path: Path, sqlite_template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "pool.sqlite3"
    shutil.copy(sqlite_template, path)
    engine = make_engine(f"sqlite:///{path}")
    running = engine.connect()  # the bot, running: its open connection keeps the -wal file in use
    try:
        world = build_world(lambda: UnitOfWork(engine))
        amira = world.interpreter("Amira")
        with world.make_uow() as uow:
            interpreter = uow.session.get(Interpreter, amira)
            assert interpreter is not None
            interpreter.phone = PHONE
            uow.session.add(interpreter)
            uow.commit()
        member = _linked(world, Role.INTERPRETER, amira, "amira")

        def on_disk() -> bool:
            wal = path.with_name(path.name + "-wal")
            return PHONE.encode() in path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")

        assert on_disk()
        monkeypatch.setenv("DATABASE_URL", f"sqlite:///{path}")
        monkeypatch.setenv("BOT_LOCALE", "en")
        assert main(["person", "erase", "--member", str(member), "--yes"]) == 0
        assert cells_holding(engine, PHONE) == []
        assert not on_disk()  # fails without the checkpoint after the erasure
    finally:
        running.close()
        engine.dispose()


def test_what_waited_for_a_platform_no_longer_allowed_is_given_up_without_its_text_or_file(
    engine: Engine,
) -> None:
    world = build_world(lambda: UnitOfWork(engine))
    with world.make_uow() as uow:
        _, code = create_invite(
            uow.session,
            district_id=world.district_id,
            role=Role.SCHOOL,
            for_id=world.school_id,
            actor="t",
            now=NOW,
        )
        member = link(
            uow.session, platform="telegram", user_id="7", chat_id="7", code=code, now=NOW, locale="de"
        )
        chat = uow.session.exec(select(ChatIdentity).where(ChatIdentity.member_id == member.id)).one()
        assert chat.id is not None
        export = b'{"phone": "' + PHONE.encode() + b'"}'  # a /mydata file on its way
        deliveries.add_answer(
            uow.session, identity_id=chat.id, body=reply_to_body(Reply("x")), attachment=export, now=NOW
        )
        uow.commit()
    with world.make_uow() as uow:
        set_rule(uow.session, world.district_id, "platforms", "matrix", actor="t", now=NOW)
        assert stop_deliveries(uow.session, world.district_id, now=NOW) == 1
        uow.commit()
    with world.make_uow() as uow:
        stopped = uow.session.exec(select(Delivery)).one()
        assert (stopped.failed_at, stopped.last_error) == (NOW, "platform not allowed")
        assert (stopped.body, stopped.attachment) == (None, None)  # never sent now: nothing of it is kept
