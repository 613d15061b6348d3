"""Taking access away: a deactivated member's events are refused and change nothing, a deactivated
interpreter gets no offers and their Accept is refused (in chat and at the service), the person is told
once, sessions ahead are handed back or refuse it, the last coordinator stays; the CLI's `person`."""

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.cli.context import Context
from bot.cli.main import main
from bot.delivery import Deliverer
from bot.i18n import Translator
from bot.notifications import render
from bot.rate_limit import RateLimiter
from db.models import (
    AuditEvent,
    DialogState,
    District,
    Interpreter,
    Invite,
    LedgerEntry,
    Member,
    Offer,
    OutboxMessage,
    Request,
)
from db.uow import UnitOfWork
from services import access
from services.deliveries import expand
from services.errors import IllegalTransition, OfferClosed
from services.identities import member_of
from services.invites import create_invite
from services.notices import OfferExpired
from services.offers import accept_offer
from services.outbox import notify
from services.vocabulary import Recipient, Role
from tests.builders import NOW, World, book, build_world, submit
from tests.chat_world import Clock
from tests.test_conversation import Phone, _join, _request, _say
from tests.test_telegram import (  # noqa: F401 (the fixture)
    AMIRA,
    OFFICE,
    SCHOOL,
    Telegram,
    _key_of,
    _request_arabic,
    telegram,
)

DE = Translator("de")
ENDED = (
    "Your access to Dolmetscherpool has ended. For questions, a copy of your data or its erasure, please "
    "contact the coordination office of {district}."
)
NOT_IN_POOL = (
    "You are no longer in the pool, so you cannot accept jobs. Please contact the coordination office."
)


# --- helpers ------------------------------------------------------------------------------------------


def _member_id(engine: Engine, user: str) -> int:
    with UnitOfWork(engine) as uow:
        member = member_of(uow.session, "test", user)
        assert member is not None
        assert member.id is not None
        return member.id


def _district_name(engine: Engine) -> str:
    with UnitOfWork(engine) as uow:
        return uow.session.exec(select(District.name)).one()


def _offers(engine: Engine) -> list[tuple[str, int, str]]:
    """(interpreter's first name, wave, state) of every offer, oldest first."""
    with UnitOfWork(engine) as uow:
        rows = uow.session.exec(
            select(Offer, Interpreter)
            .join(Interpreter, col(Interpreter.id) == Offer.interpreter_id)
            .order_by(col(Offer.id))
        )
        return [(i.name.split()[0], o.wave, o.state) for o, i in rows]


def _offer_id(engine: Engine, first_name: str) -> int:
    with UnitOfWork(engine) as uow:
        rows = uow.session.exec(
            select(Offer, Interpreter).join(Interpreter, col(Interpreter.id) == Offer.interpreter_id)
        )
        [found] = [o.id for o, i in rows if i.name.startswith(first_name)]
        assert found is not None
        return found


def _snapshot(engine: Engine) -> dict[str, Any]:
    """Offers, requests, ledger and outbox as rows of plain values: what a refused event must not touch."""
    with UnitOfWork(engine) as uow:
        s = uow.session
        return {
            "offers": [
                (o.id, o.state, o.responded_at) for o in s.exec(select(Offer).order_by(col(Offer.id)))
            ],
            "requests": [
                (r.id, r.state, r.interpreter_id, r.estimate_cents, r.wave)
                for r in s.exec(select(Request).order_by(col(Request.id)))
            ],
            "ledger": [
                (e.kind, e.amount_cents, e.request_id)
                for e in s.exec(select(LedgerEntry).order_by(col(LedgerEntry.id)))
            ],
            "outbox": len(list(s.exec(select(OutboxMessage)))),
            "dialogs": len(list(s.exec(select(DialogState)))),
        }


def _deactivation_notices(engine: Engine) -> list[int]:
    with UnitOfWork(engine) as uow:
        rows = uow.session.exec(select(OutboxMessage).where(OutboxMessage.template == "member.deactivated"))
        return [m.recipient_id for m in rows]


def _office_deactivates(talk: Any, engine: Engine, user: str) -> str:
    """The office picks `user` from /deactivate's list and confirms; returns the answer to the confirm."""
    listing = _say(talk, "office", "/deactivate")
    member_id = _member_id(engine, user)
    assert f"member {member_id})" in listing or f"Mitglied {member_id})" in listing
    _say(talk, "office", choice=f"dc:pk:{member_id}")
    return _say(talk, "office", choice="deactivate")


# --- in the chat --------------------------------------------------------------------------------------


def test_a_deactivated_interpreters_old_accept_button_is_refused_and_changes_nothing(engine: Engine) -> None:
    talk = _join(engine, Clock(NOW))
    _request(talk)
    assert _offers(engine) == [("Amira", 1, "open"), ("Samir", 1, "open"), ("Rojin", 1, "open")]
    amira_offer = _offer_id(engine, "Amira")

    done = _office_deactivates(talk, engine, "amira")
    name = "Amira Haddad"
    assert done == "\n".join(
        [
            DE.render("{name} is deactivated: their access has ended, and they are told.", {"name": name}),
            DE.render(
                "Open offers withdrawn: {offers}. Sessions handed back: {requests}.",
                {"offers": 1, "requests": "0"},
            ),
        ]
    )
    # Her offer is withdrawn and the wave topped up from the next candidate; she is never asked again.
    offers = _offers(engine)
    assert offers[:3] == [("Amira", 1, "withdrawn"), ("Samir", 1, "open"), ("Rojin", 1, "open")]
    assert len(offers) == 4
    assert offers[3][1:] == (2, "open")
    assert offers[3][0] != "Amira"

    before = _snapshot(engine)
    refused = _say(talk, "amira", choice=f"of:a:{amira_offer}")
    assert refused == DE.render(ENDED, {"district": _district_name(engine)})
    assert _snapshot(engine) == before  # no booking, no reservation, no message, no dialog
    for text in ("/help", "/jobs", "hallo", "/start XYZ"):
        assert _say(talk, "amira", text) == DE.render(ENDED, {"district": _district_name(engine)})
    assert _snapshot(engine) == before
    with UnitOfWork(engine) as uow:
        request = uow.session.get(Request, 1)
        assert request is not None
        assert request.state == "offered"
        assert request.interpreter_id is None


def test_the_person_is_told_exactly_once_and_gets_nothing_else(engine: Engine) -> None:
    clock = Clock(NOW)
    talk = _join(engine, clock)
    _request(talk)
    phone = Phone()
    deliverer = Deliverer(engine, {"test": phone}, limiter=RateLimiter(per_chat_gap=0), clock=clock)
    asyncio.run(deliverer.run_once())
    assert len(phone.inbox["amira"]) == 1  # her offer
    amira = _member_id(engine, "amira")
    _notify_amira(engine, amira)  # on its way (expanded into a delivery) but not sent yet: it stops
    with UnitOfWork(engine) as uow:
        assert expand(uow.session, now=NOW) == 1
        uow.commit()

    _office_deactivates(talk, engine, "amira")
    asyncio.run(deliverer.run_once())
    with UnitOfWork(engine) as uow:
        told = render(uow.session, DE, "member.deactivated", {"member_id": amira}, Role.INTERPRETER).text
    assert phone.inbox["amira"][1:] == [told]
    assert told == DE.render(
        "Your access to Dolmetscherpool has ended: the coordination office of {district} has deactivated "
        "it. You will get no more job offers; your open offers are withdrawn, and any sessions still "
        "ahead go to other interpreters. This bot will not answer you or write to you any more. If you "
        "have questions, please contact the coordination office.",
        {"district": _district_name(engine)},
    )
    # Deactivating again tells nobody anything; a notice to her written later reaches nobody.
    assert _office_deactivates_by_id(talk, amira) == DE.render(
        "{name} is already deactivated. Nothing was changed.", {"name": "Amira Haddad"}
    )
    _notify_amira(engine, amira)
    asyncio.run(deliverer.run_once())
    assert len(phone.inbox["amira"]) == 2
    assert _deactivation_notices(engine) == [amira]


def _notify_amira(engine: Engine, amira: int) -> None:
    """A notice about her offer to the interpreter Amira, written and committed."""
    offer_id = _offer_id(engine, "Amira")
    with UnitOfWork(engine) as uow:
        member = uow.session.get(Member, amira)
        assert member is not None
        assert member.interpreter_id is not None
        notify(
            uow.session,
            district_id=member.district_id,
            recipient=Recipient.INTERPRETER,
            recipient_id=member.interpreter_id,
            notice=OfferExpired(offer_id=offer_id, request_id=1),
            now=NOW,
        )
        uow.commit()


def _office_deactivates_by_id(talk: Any, member_id: int) -> str:
    return _say(talk, "office", f"/deactivate {member_id}")


def test_a_deactivated_school_contacts_request_is_refused_and_the_school_stays(engine: Engine) -> None:
    talk = _join(engine, Clock(NOW))
    _request(talk)
    school = _member_id(engine, "school")
    _say(talk, "school", "/request")  # an unfinished dialog, dropped with the access
    with UnitOfWork(engine) as uow:
        member = uow.session.get(Member, school)
        assert member is not None
        assert member.school_id is not None
        _, code = create_invite(
            uow.session,
            district_id=member.district_id,
            role=Role.SCHOOL,
            for_id=member.school_id,
            actor="t",
            now=NOW,
        )
        uow.commit()
    _say(talk, "colleague", f"/start {code}")

    listing = _say(talk, "office", "/deactivate")
    assert "Amira Haddad" in listing
    assert f"{school})" in listing
    _say(talk, "office", choice=f"dc:pk:{school}")
    done = _say(talk, "office", choice="deactivate")
    assert done == DE.render(
        "{name} is deactivated: their access has ended, and they are told.",
        {"name": f"Grundschule Soltau-Mitte #{school}"},
    )
    before = _snapshot(engine)
    assert _say(talk, "school", "/request") == DE.render(ENDED, {"district": _district_name(engine)})
    assert _snapshot(engine) == before
    with UnitOfWork(engine) as uow:
        assert uow.session.exec(select(DialogState).where(DialogState.member_id == school)).first() is None
        request = uow.session.get(Request, 1)
        assert request is not None
        assert request.state == "offered"
    # The school's other contact is untouched: their /request asks its first question.
    assert _say(talk, "colleague", "/request") != DE.render(ENDED, {"district": _district_name(engine)})
    with UnitOfWork(engine) as uow:
        colleague = member_of(uow.session, "test", "colleague")
        assert colleague is not None
        assert colleague.deactivated_at is None
        assert uow.session.exec(select(DialogState).where(DialogState.member_id == colleague.id)).one().flow


def test_the_last_coordinator_cannot_be_deactivated(engine: Engine) -> None:
    talk = _join(engine, Clock(NOW))
    office = _member_id(engine, "office")
    _say(talk, "office", f"/deactivate {office}")
    refused = _say(talk, "office", choice="deactivate")
    name = "#" + str(office)
    with UnitOfWork(engine) as uow:
        member = uow.session.get(Member, office)
        assert member is not None
        name = member.name or name
        assert member.deactivated_at is None
    assert refused.startswith(
        DE.render(
            "{name} is the last active coordinator of this district and cannot be deactivated. "
            "Invite another coordinator first.",
            {"name": name},
        )
    )
    with UnitOfWork(engine) as uow, pytest.raises(IllegalTransition):
        access.deactivate_member(
            uow.session, district_id=member.district_id, member_id=office, actor="t", now=NOW
        )


def test_sessions_ahead_are_handed_back_in_chat_when_confirmed(engine: Engine) -> None:
    talk = _join(engine, Clock(NOW))
    _request(talk)
    _say(talk, "samir", choice=f"of:a:{_offer_id(engine, 'Samir')}")
    samir = _member_id(engine, "samir")
    asked = _say(talk, "office", f"/deactivate {samir}")
    assert DE.gettext("Hand back and deactivate") in asked
    assert "#1 ·" in asked
    done = _say(talk, "office", choice="deactivate")
    assert (
        DE.render(
            "Open offers withdrawn: {offers}. Sessions handed back: {requests}.",
            {"offers": 0, "requests": "#1"},
        )
        in done
    )
    with UnitOfWork(engine) as uow:
        request = uow.session.get(Request, 1)
        assert request is not None
        assert request.state == "offered"
        assert request.interpreter_id is None
        templates = [
            m.template for m in uow.session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id)))
        ]
    assert "request.interpreter_cancelled" in templates  # the school is told
    assert ("Samir", 1, "cancelled") in _offers(engine)
    assert not [o for o in _offers(engine) if o[0] == "Samir" and o[2] == "open"]


async def test_through_telegram_a_real_press_of_the_old_accept_button_is_refused(
    telegram: Telegram,  # noqa: F811  (the fixture of tests/test_telegram.py)
) -> None:
    tg = telegram
    for user, code in ((SCHOOL, tg.codes.school), (AMIRA, tg.codes.amira), (OFFICE, tg.codes.coordinator)):
        await tg.join(user, code)
    await tg.press(SCHOOL, await _request_arabic(tg), "send")
    offer = await tg.api.wait_for_message(AMIRA, lambda m: bool(m.buttons))
    with UnitOfWork(tg.engine) as uow:
        member = member_of(uow.session, "telegram", str(AMIRA))
        assert member is not None
        amira = member.id

    since = len(tg.api.sent(OFFICE))
    tg.api.push_text(OFFICE, "/deaktivieren", language_code="de")
    listing = await tg.api.wait_for_message(OFFICE, lambda m: bool(m.buttons), since=since)
    since = len(tg.api.sent(OFFICE))
    await tg.press(OFFICE, listing, f"dc:pk:{amira}")  # the coordinators' other alerts may come between
    asked = await tg.api.wait_for_message(
        OFFICE,
        lambda m: ("deactivate", DE.gettext("Deactivate")) in [(k, label) for label, k in m.buttons],
        since=since,
    )
    who = DE.render(
        "{name} ({role}{school}, member {member_id})",
        {"name": "Amira Haddad", "role": DE.gettext("interpreter"), "school": "", "member_id": amira},
    )
    assert asked.text.splitlines()[0] == DE.render("Deactivate {who}?", {"who": who})
    since = len(tg.api.sent(AMIRA))
    await tg.press(OFFICE, asked, "deactivate")
    told = await tg.api.wait_for_message(AMIRA, lambda m: "Dolmetscherpool" in m.text, since=since)
    with UnitOfWork(tg.engine) as uow:
        text = render(uow.session, DE, "member.deactivated", {"member_id": amira}, Role.INTERPRETER).text
    assert told.text == text
    district = _district_name(tg.engine)

    before = _snapshot(tg.engine)
    since = len(tg.api.sent(AMIRA))
    await tg.press(AMIRA, offer, _key_of(offer, "of:a:"))
    refused = await tg.api.wait_for_message(AMIRA, lambda m: m.method == "sendMessage", since=since)
    assert refused.text == DE.render(ENDED, {"district": district})
    assert _snapshot(tg.engine) == before


# --- at the service ---------------------------------------------------------------------------------


@pytest.fixture
def world(engine: Engine) -> World:
    w = build_world(lambda: UnitOfWork(engine))
    for name, km in (("Aylin", 1), ("Bashir", 2), ("Chiara", 3), ("Dara", 4)):
        w.interpreter(name, km_north=km)
    return w


def _open_offers(world: World, request_id: int) -> list[int]:
    with world.make_uow() as uow:
        rows = uow.session.exec(
            select(Offer.interpreter_id)
            .where(Offer.request_id == request_id, Offer.state == "open")
            .order_by(col(Offer.interpreter_id))
        )
        return list(rows)


def _interpreter_member(world: World, name: str) -> int:
    with world.make_uow() as uow:
        member = Member(
            district_id=world.district_id,
            role=Role.INTERPRETER.value,
            name=name,
            interpreter_id=world.interpreters[name],
            created_at=NOW,
        )
        uow.session.add(member)
        uow.commit()
        assert member.id is not None
        return member.id


def test_an_inactive_interpreters_accept_is_refused_at_the_service(world: World) -> None:
    ids = world.interpreters
    request_id = submit(world)
    assert _open_offers(world, request_id) == [ids["Aylin"], ids["Bashir"], ids["Chiara"]]
    offer = _offer_of(world, request_id, "Aylin")
    with world.make_uow() as uow:  # out of the pool, her offer still open: the Accept itself refuses
        interpreter = uow.session.get(Interpreter, ids["Aylin"])
        assert interpreter is not None
        interpreter.active = False
        uow.session.add(interpreter)
        uow.commit()
    with world.make_uow() as uow, pytest.raises(OfferClosed) as refused:
        accept_offer(uow.session, offer_id=offer, interpreter_id=ids["Aylin"], actor="t", now=NOW)
    assert refused.value.message == NOT_IN_POOL
    with world.make_uow() as uow:
        request = uow.session.get(Request, request_id)
        assert request is not None
        assert (request.state, request.interpreter_id) == ("offered", None)
        assert uow.session.get(Offer, offer).state == "open"  # type: ignore[union-attr]


def _offer_of(world: World, request_id: int, name: str) -> int:
    with world.make_uow() as uow:
        offer_id = uow.session.exec(
            select(Offer.id).where(
                Offer.request_id == request_id, Offer.interpreter_id == world.interpreters[name]
            )
        ).one()
        assert offer_id is not None
        return offer_id


def test_matching_skips_a_deactivated_interpreter_and_refills_the_wave(world: World) -> None:
    ids = world.interpreters
    aylin = _interpreter_member(world, "Aylin")
    first = submit(world)
    with world.make_uow() as uow:
        done = access.deactivate_member(
            uow.session, district_id=world.district_id, member_id=aylin, actor="t", now=NOW
        )
        uow.commit()
    assert (done.role, done.withdrawn_offer_ids, done.handed_back_request_ids) == (
        Role.INTERPRETER,
        (_offer_of(world, first, "Aylin"),),
        (),
    )
    assert _open_offers(world, first) == [ids["Bashir"], ids["Chiara"], ids["Dara"]]
    second = submit(world, starts_at=NOW + timedelta(days=9))
    assert _open_offers(world, second) == [ids["Bashir"], ids["Chiara"], ids["Dara"]]
    with world.make_uow() as uow, pytest.raises(OfferClosed) as refused:
        accept_offer(
            uow.session,
            offer_id=_offer_of(world, first, "Aylin"),
            interpreter_id=ids["Aylin"],
            actor="t",
            now=NOW,
        )
    assert refused.value.message == NOT_IN_POOL
    with world.make_uow() as uow:
        events = list(uow.session.exec(select(AuditEvent).where(col(AuditEvent.action).like("%deactivated"))))
    assert sorted(e.action for e in events) == ["interpreter.deactivated", "member.deactivated"]
    details = [json.loads(e.detail) for e in events]
    assert {"role": "interpreter", "operator_contact_cleared": False} in details
    assert all(isinstance(v, (int, bool, list)) or v == "interpreter" for d in details for v in d.values())


def test_sessions_ahead_refuse_the_deactivation_unless_handed_back(world: World) -> None:
    ids = world.interpreters
    aylin = _interpreter_member(world, "Aylin")
    request_id = submit(world)
    book(world, request_id, "Aylin")
    with world.make_uow() as uow, pytest.raises(IllegalTransition) as refused:
        access.deactivate_member(
            uow.session, district_id=world.district_id, member_id=aylin, actor="t", now=NOW
        )
    assert refused.value.params == {"name": "Aylin", "requests": f"#{request_id}"}
    with world.make_uow() as uow:
        assert uow.session.get(Interpreter, ids["Aylin"]).active  # type: ignore[union-attr]
        done = access.deactivate_member(
            uow.session,
            district_id=world.district_id,
            member_id=aylin,
            actor="t",
            now=NOW,
            hand_back_reason="Zugang beendet.",
        )
        uow.commit()
    assert done.handed_back_request_ids == (request_id,)
    with world.make_uow() as uow:
        request = uow.session.get(Request, request_id)
        assert request is not None
        assert (request.state, request.interpreter_id) == ("offered", None)
    assert _open_offers(world, request_id) == [ids["Bashir"], ids["Chiara"], ids["Dara"]]


def test_unused_invites_for_the_interpreter_expire_with_the_access(world: World) -> None:
    aylin = _interpreter_member(world, "Aylin")
    with world.make_uow() as uow:
        create_invite(
            uow.session,
            district_id=world.district_id,
            role=Role.INTERPRETER,
            for_id=world.interpreters["Aylin"],
            actor="t",
            now=NOW,
        )
        uow.commit()
    with world.make_uow() as uow:
        access.deactivate_member(
            uow.session, district_id=world.district_id, member_id=aylin, actor="t", now=NOW
        )
        uow.commit()
    with world.make_uow() as uow:
        assert [i.expires_at for i in uow.session.exec(select(Invite))] == [NOW]


# --- on the command line ------------------------------------------------------------------------------


def _cli(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("BOT_LOCALE", "en")
    monkeypatch.setattr(Context, "now", staticmethod(lambda: NOW))
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_person_deactivate_and_activate_on_the_command_line(
    world: World, engine: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    aylin = _interpreter_member(world, "Aylin")
    request_id = submit(world)
    book(world, request_id, "Aylin")
    assert _cli(engine, monkeypatch, capsys, "person", "deactivate", "--member", str(aylin)) == (
        2,
        "",
        f"Aylin still has sessions ahead: #{request_id}. So that no school is left without its "
        "interpreter, these are handed back first: deactivate with the hand-back (on the command "
        "line: --hand-back).\n",
    )
    assert _deactivation_notices(engine) == []
    assert _cli(
        engine, monkeypatch, capsys, "person", "deactivate", "--member", str(aylin), "--hand-back"
    ) == (
        0,
        "Aylin is deactivated: their access has ended, and they are told.\n"
        f"Open offers withdrawn: 0. Sessions handed back: #{request_id}.\n",
        "",
    )
    assert _cli(engine, monkeypatch, capsys, "person", "deactivate", "--member", str(aylin)) == (
        0,
        "Aylin is already deactivated. Nothing was changed.\n",
        "",
    )
    assert _deactivation_notices(engine) == [aylin]
    assert _cli(engine, monkeypatch, capsys, "person", "deactivate", "--member", "999") == (
        2,
        "",
        "There is no member 999 in this district.\n",
    )
    assert _cli(engine, monkeypatch, capsys, "person", "list") == (
        0,
        f"{aylin:>6}  interpreter  Aylin  (0 chats)  deactivated on Mon 2 Mar 2026, 09:00\n",
        "",
    )
    assert _cli(engine, monkeypatch, capsys, "person", "activate", "--member", str(aylin)) == (
        0,
        "Aylin has access again. Where their chat links were removed, an invite code links a chat.\n",
        "",
    )
    with world.make_uow() as uow:
        assert uow.session.get(Interpreter, world.interpreters["Aylin"]).active  # type: ignore[union-attr]
        assert uow.session.get(Member, aylin).deactivated_at is None  # type: ignore[union-attr]
    assert _cli(engine, monkeypatch, capsys, "person", "activate", "--member", str(aylin)) == (
        0,
        "Aylin has access already. Nothing was changed.\n",
        "",
    )
