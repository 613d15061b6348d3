"""Art. 15 and 17: each person's export holds what the inventory lists for them; erasure leaves no contact
data anywhere, keeps what budget law needs unchanged, and says so."""

import io
import json
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, func, select

from bot.cli.context import Context
from bot.cli.main import main
from bot.i18n import Translator
from bot.terminal import TerminalChat
from db.models import ChatIdentity, Interpreter, LedgerEntry, Member, Offer, OutboxMessage, Request
from db.uow import UnitOfWork
from services import closeout, deliveries, personal_data
from services.billing_report import InterpreterBilling, monthly_billing
from services.changes import ChangeDraft, ask_change, confirm_change
from services.dialogs import Dialog, save_dialog
from services.errors import DomainError
from services.evaluation import evaluate, make_period
from services.identities import link
from services.invites import create_invite
from services.offers import accept_offer
from services.operator_alerts import set_operator
from services.personal_data import KEPT, REMOVED
from services.pool import InterpreterData, add_absence, save_interpreter
from services.requests import RequestDraft, submit_request
from services.vocabulary import Gender, Mode, Role, Topic
from tests.builders import NOW, SOLTAU, SOON, book, build_world, cells_holding, submit
from tests.chat_world import Clock
from tests.test_datenschutz import _inventory, concerns
from tests.test_telegram import (  # noqa: F401 (the fixture)
    OFFICE,
    SAMIR,
    Telegram,
    _file_after,
    _is_text,
    _key_of,
    telegram,
)

PHONE = "+49 170 5550123"
EMAIL = "amira.haddad@example.org"
AFTER = SOON + timedelta(hours=2)
DE = Translator("de")


@dataclass(frozen=True)
class People:
    district_id: int
    school: int  # member ids
    interpreter: int
    coordinator: int
    other_coordinator: int
    interpreter_id: int
    request_id: int


def _member(engine: Engine, district_id: int, role: Role, for_id: int, user: int, name: str = "") -> int:
    with UnitOfWork(engine) as uow:
        _, code = create_invite(
            uow.session, district_id=district_id, role=role, for_id=for_id, actor="test", now=NOW, name=name
        )
        member = link(
            uow.session,
            platform="telegram",
            user_id=str(user),
            chat_id=str(user),
            code=code,
            now=NOW,
            locale="de",
        )
        uow.commit()
        assert member.id is not None
        return member.id


def spread(engine: Engine) -> People:
    """A pool whose interpreter was booked, changed, reported, disputed and corrected, so that their data
    has spread: offers, the budget's books, notifications to every chat, answers, audit, dialogs."""
    world = build_world(lambda: UnitOfWork(engine))
    district = world.district_id
    with UnitOfWork(engine) as uow:
        amira = save_interpreter(
            uow.session,
            district_id=district,
            data=InterpreterData(
                "Amira Haddad", ("ar",), "Soltau", *SOLTAU, frozenset(Mode), PHONE, EMAIL, Gender.FEMALE
            ),
            actor="test",
            now=NOW,
        )
        uow.commit()
        assert amira.id is not None
        interpreter_id = amira.id
    school = _member(engine, district, Role.SCHOOL, world.school_id, 101, "Frau Kunz")
    interpreter = _member(engine, district, Role.INTERPRETER, interpreter_id, 102)
    coordinator = _member(engine, district, Role.COORDINATOR, district, 103, "Herr Brandt")
    other = _member(engine, district, Role.COORDINATOR, district, 104, "Frau Lange")
    as_school, as_interpreter, as_coordinator = (
        personal_data.actor_of(m) for m in (school, interpreter, coordinator)
    )
    with UnitOfWork(engine) as uow:
        s = uow.session
        set_operator(s, district_id=district, member_id=coordinator, actor="test", now=NOW)
        request = submit_request(
            s,
            district_id=district,
            draft=RequestDraft(
                world.school_id, "ar", Mode.IN_PERSON, SOON, 60, Topic.PARENT_TALK, "Raum 4", None, "Zeugnis"
            ),
            actor=as_school,
            now=NOW,
            member_id=school,
        )
        assert request.id is not None
        offer = s.exec(select(Offer).where(Offer.request_id == request.id)).one()
        assert offer.id is not None
        accept_offer(s, offer_id=offer.id, interpreter_id=interpreter_id, actor=as_interpreter, now=NOW)
        change = ask_change(
            s,
            district_id=district,
            request_id=request.id,
            draft=ChangeDraft(SOON, 60, Mode.IN_PERSON, "Raum 12"),
            actor=as_school,
            now=NOW,
        )
        assert change.id is not None
        confirm_change(s, change_id=change.id, interpreter_id=interpreter_id, actor=as_interpreter, now=NOW)
        add_absence(
            s,
            district_id=district,
            interpreter_id=interpreter_id,
            starts_at=SOON + timedelta(days=7),
            ends_at=SOON + timedelta(days=9),
            actor=as_interpreter,
            now=NOW,
        )
        closeout.report(
            s,
            request_id=request.id,
            interpreter_id=interpreter_id,
            minutes=75,
            km=18,
            expenses_cents=0,
            actor=as_interpreter,
            now=AFTER,
        )
        closeout.dispute(
            s,
            district_id=district,
            request_id=request.id,
            reason="Sie kam erst um 10:30.",
            actor=as_school,
            now=AFTER + timedelta(hours=1),
        )
        closeout.correct(
            s,
            district_id=district,
            request_id=request.id,
            minutes=60,
            km=18,
            expenses_cents=0,
            reason=f"Rücksprache mit {EMAIL}: 60 min.",
            actor=as_coordinator,
            now=AFTER + timedelta(hours=2),
        )
        for member in (school, interpreter, coordinator):
            save_dialog(s, member, Dialog("request", "note", {"note": "angefangen"}), now=AFTER)
        deliveries.expand(s, now=AFTER + timedelta(hours=3))
        # A coordinator's answer that listed the pool, contact data and all.
        chat = s.exec(select(ChatIdentity).where(col(ChatIdentity.member_id) == coordinator)).one()
        assert chat.id is not None
        deliveries.add_answer(s, identity_id=chat.id, body=f"Amira Haddad, {PHONE}, {EMAIL}", now=AFTER)
        uow.commit()
    return People(district, school, interpreter, coordinator, other, interpreter_id, request.id)


def _personal_columns() -> dict[str, set[str]]:
    """Per table, the columns the inventory classes as direkt, Kennung or Freitext."""
    return {
        table: {column for column, kind in columns.items() if kind != "nein"}
        for table, columns in _inventory().items()
    }


@pytest.mark.parametrize("role", ["interpreter", "school", "coordinator"])
def test_the_export_holds_every_column_the_inventory_lists_for_that_kind_of_person(
    engine: Engine, role: str
) -> None:
    people = spread(engine)
    member_id = {
        "interpreter": people.interpreter,
        "school": people.school,
        "coordinator": people.coordinator,
    }[role]
    with UnitOfWork(engine) as uow:
        # Any member may be the district's operator contact; here the one asked about.
        set_operator(
            uow.session, district_id=people.district_id, member_id=member_id, actor="test", now=AFTER
        )
        uow.commit()
    with UnitOfWork(engine) as uow:
        exported = json.loads(personal_data.export_json(uow.session, member_id))
    personal = _personal_columns()
    wanted = {table for table, roles in concerns().items() if role in roles}
    missing: dict[str, Any] = {}
    for table in sorted(wanted):
        rows = exported["tables"].get(table, [])
        have = set().union(*(row.keys() for row in rows)) if rows else set()
        if not personal[table] <= have:
            missing[table] = sorted(personal[table] - have)
    assert missing == {}
    assert set(exported["tables"]) == wanted  # and no table the inventory does not name for them
    assert (exported["member_id"], exported["role"]) == (member_id, role)


def _books(
    engine: Engine, district_id: int
) -> tuple[tuple[Any, ...], dict[str, object], list[InterpreterBilling]]:
    """The ledger's sums per budget and kind, the evaluation of the year and the billing of March."""
    with UnitOfWork(engine) as uow:
        s = uow.session
        sums = s.exec(
            select(LedgerEntry.budget_id, LedgerEntry.kind, func.sum(LedgerEntry.amount_cents))
            .group_by(col(LedgerEntry.budget_id), col(LedgerEntry.kind))
            .order_by(col(LedgerEntry.budget_id), col(LedgerEntry.kind))
        ).all()
        figures = evaluate(s, district_id, make_period(date(2026, 1, 1), date(2026, 12, 31))).as_json()
        billing = monthly_billing(s, district_id, date(2026, 3, 1))
        return tuple(sums), figures, billing


def test_after_erasure_the_interpreters_phone_and_email_are_nowhere_and_the_books_are_unchanged(
    engine: Engine,
) -> None:
    people = spread(engine)
    spread_to = cells_holding(engine, PHONE, EMAIL)
    assert len(spread_to) >= 3, spread_to  # the interpreter's row, and copies elsewhere
    books = _books(engine, people.district_id)
    assert books[0] != ()
    assert [b.name for b in books[2]] == ["Amira Haddad"]
    later = AFTER + timedelta(days=1)

    with UnitOfWork(engine) as uow:
        report = personal_data.erase(uow.session, member_id=people.interpreter, actor="test", now=later)
        uow.commit()

    assert cells_holding(engine, PHONE, EMAIL) == []
    # The name stays only where the billing reads it.
    assert cells_holding(engine, "Amira Haddad") == ["interpreter.name"]
    assert _books(engine, people.district_id) == books
    assert report.already is False
    until = date(2036, 12, 29)  # the end of the session's fiscal year 2026, plus 3650 days
    assert {(k.what, k.count, k.until) for k in report.kept if k.what != "audit"} == {
        ("requests", 1, until),
        ("offers", 1, until),
        ("closeouts", 1, until),
        ("ledger", _ledger_rows(engine), until),
        ("billing_name", 1, until),
        ("member", 1, until),
    }
    removed = dict(report.removed)
    assert removed["chat_links"] == 1
    assert removed["dialog"] == 1, removed
    with UnitOfWork(engine) as uow:
        interpreter = uow.session.get(Interpreter, people.interpreter_id)
        assert interpreter is not None
        assert (interpreter.phone, interpreter.email, interpreter.gender, interpreter.active) == (
            "",
            "",
            None,
            False,
        )
        member = uow.session.get(Member, people.interpreter)
        assert member is not None
        assert member.deactivated_at is not None
        told = uow.session.exec(select(OutboxMessage).where(OutboxMessage.template == "person.erased")).all()
        assert [(m.recipient_type, json.loads(m.params)) for m in told] == [
            ("coordinators", {"member_id": people.interpreter, "role": "interpreter"})
        ]

    with UnitOfWork(engine) as uow:  # a second erasure finds nothing and tells nobody
        again = personal_data.erase(uow.session, member_id=people.interpreter, actor="test", now=later)
        uow.commit()
    assert (again.already, again.removed_total) == (True, 0)
    with UnitOfWork(engine) as uow:
        told_count = uow.session.exec(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.template == "person.erased")
        ).one()
        assert told_count == 1


def _ledger_rows(engine: Engine) -> int:
    with UnitOfWork(engine) as uow:
        return int(uow.session.exec(select(func.count()).select_from(LedgerEntry)).one())


def test_a_school_contact_is_erased_with_their_typed_texts_and_the_last_coordinator_never(
    engine: Engine,
) -> None:
    people = spread(engine)
    later = AFTER + timedelta(days=1)
    with UnitOfWork(engine) as uow:
        report = personal_data.erase(uow.session, member_id=people.school, actor="test", now=later)
        uow.commit()
    assert cells_holding(engine, "Frau Kunz", "Sie kam erst um 10:30.", "Zeugnis", "Raum 12") == []
    assert dict(report.removed)["free_texts"] >= 2  # the request's note and place, the dispute's reason
    with UnitOfWork(engine) as uow:
        request = uow.session.get(Request, people.request_id)
        assert request is not None
        assert (request.note, request.place) == ("", "Schulstraße 4, 29614 Soltau")  # in person: the school
        erased = personal_data.export(uow.session, people.school)
    assert set(erased["tables"]["member"][0].items()) >= {("name", ""), ("locale", None)}
    assert erased["tables"]["chat_identity"] == []

    with UnitOfWork(engine) as uow:
        personal_data.erase(uow.session, member_id=people.coordinator, actor="test", now=later)
        uow.commit()
    with UnitOfWork(engine) as uow, pytest.raises(DomainError, match="last active coordinator"):
        personal_data.erase(uow.session, member_id=people.other_coordinator, actor="test", now=later)
    with UnitOfWork(engine) as uow:
        member = uow.session.get(Member, people.other_coordinator)
        assert member is not None
        assert (member.name, member.deactivated_at) == ("Frau Lange", None)


def test_mydata_in_the_terminal_chat_sends_the_file_then_erases_after_the_confirmation(
    engine: Engine, tmp_path: Path
) -> None:
    out = io.StringIO()
    term = TerminalChat(engine, out=out, clock=Clock(NOW), files=tmp_path)
    with UnitOfWork(engine) as uow:
        samir = uow.session.exec(select(Interpreter).where(Interpreter.name == "Samir Khalil")).one()
        samir.phone, samir.email = PHONE, EMAIL
        uow.session.add(samir)
        uow.commit()

    def say(line: str) -> str:
        start = out.tell()
        term.say(line)
        return out.getvalue()[start:]

    say("/as samir")
    shown = say("/meinedaten")
    assert DE.render("Name: {name}", {"name": "Samir Khalil"}) in shown
    exported = json.loads((tmp_path / f"mydata-{_member_of(engine, 'samir-khalil')}.json").read_text())
    assert exported["tables"]["interpreter"][0]["phone"] == PHONE
    assert exported["tables"]["chat_identity"][0]["user_id"] == "samir-khalil"

    asked = say("1")  # the button under the summary: erase my data …
    assert "Art. 17 Abs. 3 lit. b DSGVO" in asked
    assert DE.gettext(KEPT["billing_name"]) in asked
    assert DE.gettext(REMOVED["contact_data"]) in asked
    assert DE.render_plural("{count} year", "{count} years", 10) in asked  # retention_accounts: 3650 days
    assert say("2") == "\n" + DE.gettext("Nothing was erased.") + "\n"  # no: nothing happens
    assert cells_holding(engine, PHONE, EMAIL) != []

    say("/mydata")
    say("1")
    done = say("1")  # yes
    assert DE.gettext("Your data was erased.").split(".")[0] in done
    told = [part for part in done.split("\n→ ") if "Koordinierungsstelle" in part.split("\n")[0]]
    assert len(told) == 1
    assert "Art. 17" in told[0]
    assert cells_holding(engine, PHONE, EMAIL) == []
    # The bot no longer knows the chat: a stranger's welcome.
    assert "/start" in say("/hilfe")
    with UnitOfWork(engine) as uow:
        erased = uow.session.exec(
            select(OutboxMessage).where(OutboxMessage.template == "person.erased")
        ).all()
        assert len(erased) == 1


def _member_of(engine: Engine, user_id: str) -> int:
    with UnitOfWork(engine) as uow:
        identity = uow.session.exec(select(ChatIdentity).where(ChatIdentity.user_id == user_id)).one()
        return identity.member_id


def _cli(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("BOT_LOCALE", "en")
    monkeypatch.setattr(Context, "now", staticmethod(lambda: AFTER + timedelta(days=1)))
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_person_export_and_erase_on_the_command_line(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    people = spread(engine)
    member = str(people.interpreter)
    target = tmp_path / "amira.json"
    code, out, _ = _cli(
        engine, monkeypatch, capsys, "person", "export", "--member", member, "--output", str(target)
    )
    assert (code, out) == (0, f"Written to {target} (readable only by you).\n")
    assert target.stat().st_mode & 0o777 == 0o600
    assert json.loads(target.read_text())["tables"]["interpreter"][0]["email"] == EMAIL
    code, out, _ = _cli(engine, monkeypatch, capsys, "person", "export", "--member", member)
    assert json.loads(out) == json.loads(target.read_text())

    monkeypatch.setattr("builtins.input", lambda prompt: "no")
    code, out, _ = _cli(engine, monkeypatch, capsys, "person", "erase", "--member", member)
    assert code == 1
    assert out.startswith("Erasing removes at once:\n• name and language setting\n• contact data")
    assert out.endswith("Nothing was erased.\n")
    assert cells_holding(engine, PHONE) != []

    monkeypatch.setattr("builtins.input", lambda prompt: "yes")
    code, out, _ = _cli(engine, monkeypatch, capsys, "person", "erase", "--member", member)
    assert code == 0
    assert "Kept for budget law, by number only:\n• requests and bookings" in out
    assert "at the latest until Mon 29 Dec 2036" in out
    assert out.endswith("The coordinators have been told.\n")
    assert cells_holding(engine, PHONE, EMAIL) == []

    code, out, _ = _cli(engine, monkeypatch, capsys, "person", "erase", "--member", member, "--yes")
    assert code == 0
    assert out.startswith(f"The data of member {member} had been erased already.\n\nKept")
    code, _, err = _cli(engine, monkeypatch, capsys, "person", "export", "--member", "999")
    assert (code, err) == (2, "There is no person 999 in this district.\n")


def test_an_interpreter_with_a_session_ahead_is_erased_only_with_the_hand_back(engine: Engine) -> None:
    world = build_world(lambda: UnitOfWork(engine))
    amira = world.interpreter("Amira Haddad")
    member = _member(engine, world.district_id, Role.INTERPRETER, amira, 102)
    request_id = submit(world)
    book(world, request_id, "Amira Haddad")
    with UnitOfWork(engine) as uow, pytest.raises(DomainError, match="sessions ahead"):
        personal_data.erase(uow.session, member_id=member, actor="test", now=NOW)
    with UnitOfWork(engine) as uow:
        report = personal_data.erase(
            uow.session, member_id=member, actor="test", now=NOW, hand_back_reason="Daten gelöscht"
        )
        uow.commit()
    assert dict(report.removed)["chat_links"] == 1
    with UnitOfWork(engine) as uow:
        request = uow.session.get(Request, request_id)
        assert request is not None
        assert (request.interpreter_id, request.state != "booked") == (None, True)


async def test_mydata_over_telegram_sends_the_file_and_erases_after_the_confirmation(
    telegram: Telegram,  # noqa: F811  (the fixture of tests/test_telegram.py)
) -> None:
    """The real PTB against the fake Bot API: the JSON file as a document, the buttons, the direct goodbye."""
    tg = telegram
    await tg.join(OFFICE, tg.codes.coordinator)
    await tg.join(SAMIR, tg.codes.samir)
    summary, file = await _file_after(tg, SAMIR, "/meinedaten", "sendDocument")
    assert summary.text.startswith(
        DE.render(
            "What Dolmetscherpool stores about you (member {member_id}):",
            {"member_id": _member_of(tg.engine, str(SAMIR))},
        )
    )
    exported = json.loads(file["content"])
    assert file["filename"] == f"mydata-{exported['member_id']}.json"
    assert exported["tables"]["chat_identity"][0]["user_id"] == str(SAMIR)

    asked = await tg.choose(SAMIR, summary, _key_of(summary, "my:er:"))
    assert [key for _, key in asked.buttons] == ["my-erase-yes", "my-erase-no"]
    since = len(tg.api.sent(OFFICE))
    done = await tg.choose(SAMIR, asked, "my-erase-yes")
    assert done.text.startswith(DE.gettext("Your data was erased."))
    told = await tg.api.wait_for_message(OFFICE, _is_text, since=since)
    assert told.text.startswith(
        DE.render(
            "The data of member {member_id} ({role}) was erased (Art. 17 GDPR): contact data, chat links, "
            "dialog and typed texts. Requests, reports and the budget's books stay under the number, for "
            "budget law. “python -m bot person export --member {member_id}” shows what is left.",
            {"member_id": exported["member_id"], "role": DE.gettext("interpreter")},
        )
    )
    with UnitOfWork(tg.engine) as uow:
        assert uow.session.exec(select(ChatIdentity).where(ChatIdentity.user_id == str(SAMIR))).all() == []
    stranger = await tg.say(SAMIR, "/hilfe")
    assert "/start CODE" in stranger.text
