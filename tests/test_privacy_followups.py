"""Issue 15's loose ends after review: a nightly purge given up still has a next night, an erased
person is never given access again, an interpreter cannot erase themselves away from a booked
session, and erasing a name leaves words that merely contain it alone."""

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.conversation.router import Conversation
from bot.i18n import Translator
from bot.messages import Incoming
from bot.scheduling import rearm, run_due
from bot.terminal import TerminalChat
from db.models import ChatIdentity, DueTask, Interpreter, OutboxMessage, Request
from db.uow import UnitOfWork
from services import access, personal_data, retention
from services.due import MAX_ATTEMPTS, Kind
from services.errors import IllegalTransition
from services.identities import link
from services.invites import create_invite
from services.personal_data import REDACTED, _pattern
from services.vocabulary import RequestState, Role
from tests.builders import NOW, book, build_world, cells_holding, submit
from tests.chat_world import Clock

DE = Translator("de")


def _linked(engine: Engine, district_id: int, role: Role, for_id: int, user: str) -> int:
    with UnitOfWork(engine) as uow:
        _, code = create_invite(
            uow.session, district_id=district_id, role=role, for_id=for_id, actor="t", now=NOW
        )
        member = link(
            uow.session, platform="telegram", user_id=user, chat_id=user, code=code, now=NOW, locale="de"
        )
        uow.commit()
        assert member.id is not None
        return member.id


def test_a_night_given_up_still_arms_the_next_one(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    world = build_world(lambda: UnitOfWork(engine))
    rearm(engine, NOW)  # Monday 09:00 Berlin: the first night is Tuesday 03:15
    first = datetime(2026, 3, 3, 2, 15, tzinfo=UTC)

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(retention, "purge", broken)
    for attempt in range(MAX_ATTEMPTS):  # each failure waits a minute longer; ten minutes covers them all
        at = first + timedelta(minutes=10 * attempt)
        assert run_due(engine, lambda at=at: at) == 0  # type: ignore[misc]
    with UnitOfWork(engine) as uow:
        nights = uow.session.exec(
            select(DueTask).where(DueTask.kind == Kind.RETENTION.value).order_by(col(DueTask.id))
        ).all()
        # Without the re-arming on give-up, only the failed night would be here, and no night after it.
        assert [(t.subject_id, t.variant, t.outcome) for t in nights] == [
            (world.district_id, "2026-03-03", "failed"),
            (world.district_id, "2026-03-04", ""),
        ]
    monkeypatch.undo()
    assert run_due(engine, lambda: first + timedelta(days=1)) == 1  # and the next night runs


def test_an_erased_member_is_not_given_access_again(engine: Engine) -> None:
    world = build_world(lambda: UnitOfWork(engine))
    amira = world.interpreter("Amira Haddad")
    member = _linked(engine, world.district_id, Role.INTERPRETER, amira, "102")
    with UnitOfWork(engine) as uow:
        personal_data.erase(uow.session, member_id=member, actor="test", now=NOW)
        uow.commit()
    with UnitOfWork(engine) as uow, pytest.raises(IllegalTransition) as refused:
        access.activate_member(
            uow.session, district_id=world.district_id, member_id=member, actor="t", now=NOW
        )
    assert DE.render(refused.value.message, refused.value.params) == (
        f"Die Daten von Person {member} wurden gelöscht; ihr Zugang kann nicht wieder freigeschaltet werden. "
        "Kommt sie zurück, laden Sie sie neu ein."
    )
    with UnitOfWork(engine) as uow:
        assert [m.deactivated_at is not None for m in access.members_of_interpreter(uow.session, amira)] == [
            True
        ]


def test_an_interpreter_with_a_session_ahead_is_told_to_give_it_back_before_erasing(engine: Engine) -> None:
    world = build_world(lambda: UnitOfWork(engine))
    amira = world.interpreter("Amira Haddad")
    _linked(engine, world.district_id, Role.INTERPRETER, amira, "102")
    request_id = submit(world)
    book(world, request_id, "Amira Haddad")
    talk = Conversation(engine, Clock(NOW))

    def say(text: str = "", choice: str | None = None) -> list[str]:
        return [r.text for r in talk.handle(Incoming("telegram", "102", "102", text=text, choice=choice))]

    shown = talk.handle(Incoming("telegram", "102", "102", text="/mydata"))
    erase = [c for r in shown for c in r.choices]
    assert len(erase) == 1
    asked = talk.handle(Incoming("telegram", "102", "102", choice=erase[0].key))
    yes = asked[-1].choices[0]
    assert say(choice=yes.key) == [
        f"Nichts wurde gelöscht: Sie haben noch Einsätze vor sich (#{request_id}). Damit keine Schule ohne "
        "Dolmetscher/in dasteht, geben Sie diese bitte zuerst zurück (/jobs) oder wenden Sie sich an die "
        "Koordinierungsstelle; danach können Sie Ihre Daten löschen."
    ]
    with UnitOfWork(engine) as uow:
        request = uow.session.get(Request, request_id)
        assert request is not None
        assert (request.state, request.interpreter_id) == (RequestState.BOOKED.value, amira)
        assert len(uow.session.exec(select(ChatIdentity)).all()) == 1  # still linked, nothing erased


def test_erasing_a_name_leaves_words_that_only_contain_it() -> None:
    pattern = _pattern(["Anna", "+49 170 5550123", "4917055501"])
    assert pattern is not None
    text = "Annahme bestätigt, Anna kommt; Rückruf +49 170 5550123 oder 004917055501."
    assert pattern.sub(REDACTED, text) == (
        f"Annahme bestätigt, {REDACTED} kommt; Rückruf {REDACTED} oder 00{REDACTED}."
    )


def test_a_deactivation_that_stood_30_days_becomes_an_erasure_in_the_nightly_purge(engine: Engine) -> None:
    world = build_world(lambda: UnitOfWork(engine))
    amira = world.interpreter("Amira Haddad")
    samir = world.interpreter("Samir Khalil")
    with UnitOfWork(engine) as uow:
        for interpreter_id, phone in ((amira, "+49 170 5550123"), (samir, "+49 170 5550999")):
            row = uow.session.get(Interpreter, interpreter_id)
            assert row is not None
            row.phone = phone
            uow.session.add(row)
        uow.commit()
    gone = _linked(engine, world.district_id, Role.INTERPRETER, amira, "102")
    recent = _linked(engine, world.district_id, Role.INTERPRETER, samir, "103")
    with UnitOfWork(engine) as uow:
        access.deactivate_member(
            uow.session, district_id=world.district_id, member_id=gone, actor="t", now=NOW
        )
        later = NOW + timedelta(days=2)
        access.deactivate_member(
            uow.session, district_id=world.district_id, member_id=recent, actor="t", now=later
        )
        uow.commit()
    rearm(engine, NOW)
    night = datetime(2026, 4, 2, 1, 15, tzinfo=UTC)  # 03:15 CEST, 31 days after the first deactivation
    run_due(engine, lambda: night)  # the missed nights run once, and the weekly digest
    assert cells_holding(engine, "+49 170 5550123") == []  # erased, as on a request
    assert cells_holding(engine, "+49 170 5550999") != []  # 29 days: a coordinator may still take it back
    with UnitOfWork(engine) as uow:
        erased = uow.session.exec(
            select(OutboxMessage).where(OutboxMessage.template == "person.erased")
        ).all()
        assert [json.loads(m.params)["member_id"] for m in erased] == [gone]
        assert access.erased_before(uow.session, gone)
        assert not access.erased_before(uow.session, recent)
    run_due(engine, lambda: night + timedelta(days=2))
    with UnitOfWork(engine) as uow:  # two nights on: Samir's 30 days are up; Amira is not told of twice
        erased = uow.session.exec(
            select(OutboxMessage).where(OutboxMessage.template == "person.erased")
        ).all()
        assert sorted(json.loads(m.params)["member_id"] for m in erased) == [gone, recent]


def test_the_terminal_saves_a_mydata_export_for_its_user_only(engine: Engine, tmp_path: Path) -> None:
    term = TerminalChat(engine, out=io.StringIO(), clock=Clock(NOW), files=tmp_path)
    term.say("/as samir")
    term.say("/mydata")
    (export,) = tmp_path.glob("mydata-*.json")
    assert json.loads(export.read_text())["tables"]["interpreter"][0]["name"] == "Samir Khalil"
    assert export.stat().st_mode & 0o777 == 0o600
