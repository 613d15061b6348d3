"""Handing a job back: asked to confirm and why, the first wave asked again, one message for the school,
the reason for the coordinators; the loser of an Accept race told once; why a request stays unfilled."""

import asyncio
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.conversation.views import request_line
from bot.delivery import Deliverer, Undeliverable
from bot.i18n import Translator
from bot.messages import Incoming
from bot.notifications import render
from bot.rate_limit import RateLimiter
from bot.scheduling import run_due
from db.models import Interpreter, Offer, OutboxMessage, Request
from db.uow import UnitOfWork
from services.errors import InvalidInput, NotFound
from services.offers import accept_offer, decline_offer, give_back
from services.policy import set_rule
from services.requests import approve
from services.vocabulary import Mode, Role
from tests.builders import ACTOR, NOW, SOON, World, book, build_world, submit
from tests.chat_world import Clock
from tests.test_conversation import Phone, _join, _request, _say
from tests.test_telegram import (  # noqa: F401 (the fixture)
    AMIRA,
    OFFICE,
    SAMIR,
    SCHOOL,
    Telegram,
    _calendar_event,
    _key_of,
    _request_arabic,
    telegram,
)

DE = Translator("de")
MakeUow = Callable[[], UnitOfWork]
ASK = "Hand back {line}? It goes to other interpreters at once, and the school is told."
WHY = "Why can you not take it? One short sentence for the coordination office (3 to 300 characters)."
HANDED = "You have handed back #{request_id}. The school is told."
SEARCHING = "The interpreter had to hand this job back. We are looking for someone else."
TO_OFFICE = "{interpreter_name} handed this job back: “{reason}”. It is offered to other interpreters."
NOBODY_ELSE = (
    "The interpreter had to hand this job back, and nobody else in the pool can take it at that time. "
    "The coordination office is told and will get back to you."
)
NOBODY_ELSE_OFFICE = (
    "{interpreter_name} handed this job back: “{handed_back_reason}”. Nobody else in the pool can take it "
    "at that time.{alternative}"
)
TAKEN = "Someone else has already taken this job. Thank you!"


def _offers(engine: Engine) -> list[tuple[str, int, str]]:
    """(interpreter, wave, state) of every offer, oldest first."""
    with UnitOfWork(engine) as uow:
        rows = uow.session.exec(
            select(Offer, Interpreter)
            .join(Interpreter, col(Interpreter.id) == Offer.interpreter_id)
            .order_by(col(Offer.id))
        )
        return [(i.name.split()[0], o.wave, o.state) for o, i in rows]


def _offer_id(engine: Engine, first_name: str, state: str = "open") -> int:
    with UnitOfWork(engine) as uow:
        rows = uow.session.exec(
            select(Offer, Interpreter)
            .join(Interpreter, col(Interpreter.id) == Offer.interpreter_id)
            .where(Offer.state == state)
        )
        [found] = [o.id for o, i in rows if i.name.startswith(first_name)]
        assert found is not None
        return found


def _notices(engine: Engine, since: int = 0) -> list[tuple[str, str, dict[str, Any]]]:
    """(template, recipient type, params) of the outbox after row `since`."""
    with UnitOfWork(engine) as uow:
        rows = uow.session.exec(
            select(OutboxMessage).where(col(OutboxMessage.id) > since).order_by(col(OutboxMessage.id))
        )
        return [(m.template, m.recipient_type, json.loads(m.params)) for m in rows]


def _last_outbox_id(engine: Engine) -> int:
    with UnitOfWork(engine) as uow:
        return max(m.id or 0 for m in uow.session.exec(select(OutboxMessage)))


def _rendered(engine: Engine, template: str, params: dict[str, Any], role: Role) -> str:
    with UnitOfWork(engine) as uow:
        return render(uow.session, DE, template, params, role).text


def _line(engine: Engine, request_id: int = 1) -> str:
    with UnitOfWork(engine) as uow:
        request = uow.session.get(Request, request_id)
        assert request is not None
        return request_line(DE, request)


def _state(engine: Engine, request_id: int = 1) -> tuple[str, int | None]:
    with UnitOfWork(engine) as uow:
        request = uow.session.get(Request, request_id)
        assert request is not None
        return request.state, request.interpreter_id


# --- in the chat ----------------------------------------------------------------------------------


def test_a_hand_back_asks_to_confirm_and_why_and_goes_to_the_first_wave_again(engine: Engine) -> None:
    talk = _join(engine, Clock(NOW))
    _request(talk)
    assert _offers(engine) == [("Amira", 1, "open"), ("Samir", 1, "open"), ("Rojin", 1, "open")]
    _say(talk, "samir", choice=f"of:a:{_offer_id(engine, 'Samir')}")
    samir = _state(engine)[1]

    asked = _say(talk, "samir", choice="bk:gb:1")
    assert asked == DE.render(ASK, {"line": _line(engine)}) + "\n\n1. Ja, zurückgeben\n2. Nein, behalten"
    assert _say(talk, "samir", "2") == DE.gettext("Nothing was changed. The job stays yours.")
    assert _state(engine) == ("booked", samir)

    _say(talk, "samir", choice="bk:gb:1")
    assert _say(talk, "samir", "ja") == DE.gettext(WHY)
    too_short = _say(talk, "samir", "ok")
    assert too_short == DE.gettext("Please give the reason in 3 to 300 characters.") + "\n" + DE.gettext(WHY)
    assert _state(engine) == ("booked", samir)  # nothing changes before the reason is given
    before = _last_outbox_id(engine)

    [done] = talk.handle(Incoming("test", "samir", "samir", text="Mein Kind ist krank."))
    assert done.text == DE.render(HANDED, {"request_id": 1})
    assert done.attachment is not None
    assert b"METHOD:CANCEL" in done.attachment.data
    assert _state(engine) == ("offered", None)
    # Amira and Rojin, withdrawn when Samir took it, are asked again, and Hodan of the next wave.
    assert _offers(engine) == [
        ("Amira", 1, "withdrawn"),
        ("Samir", 1, "cancelled"),
        ("Rojin", 1, "withdrawn"),
        ("Amira", 2, "open"),
        ("Rojin", 2, "open"),
        ("Hodan", 2, "open"),
    ]
    told = [(template, to) for template, to, _ in _notices(engine, before)]
    assert told == [
        ("offer.new", "interpreter"),
        ("offer.new", "interpreter"),
        ("offer.new", "interpreter"),
        ("request.interpreter_cancelled", "school"),  # one message, and no "nobody available"
        ("request.handed_back", "coordinators"),
    ]
    school, office = (
        params for template, _, params in _notices(engine, before) if template.startswith("request")
    )
    assert _rendered(engine, "request.interpreter_cancelled", school, Role.SCHOOL) == (
        _line(engine) + "\n" + DE.gettext(SEARCHING)
    )
    assert _rendered(engine, "request.handed_back", office, Role.COORDINATOR) == (
        _line(engine)
        + "\n"
        + DE.render(TO_OFFICE, {"interpreter_name": "Samir Khalil", "reason": "Mein Kind ist krank."})
    )

    _say(talk, "amira", choice=f"of:a:{_offer_id(engine, 'Amira')}")
    with UnitOfWork(engine) as uow:
        amira = uow.session.exec(select(Interpreter.id).where(Interpreter.name == "Amira Haddad")).one()
    assert _state(engine) == ("booked", amira)


def test_a_job_that_has_begun_cannot_be_handed_back(engine: Engine) -> None:
    clock = Clock(NOW)
    talk = _join(engine, clock)
    _request(talk)
    _say(talk, "amira", choice=f"of:a:{_offer_id(engine, 'Amira')}")
    clock.now = SOON + timedelta(minutes=1)
    assert _say(talk, "amira", choice="bk:gb:1") == DE.gettext(
        "The session has already begun; it can no longer be handed back."
    )
    assert _state(engine)[0] == "booked"


def test_the_loser_of_an_accept_race_reads_it_once(engine: Engine) -> None:
    clock = Clock(NOW)
    talk = _join(engine, clock)
    _request(talk)
    phone = Phone(broken={"amira": Undeliverable()})  # Amira's chat is gone: her notice fails
    deliverer = Deliverer(engine, {"test": phone}, limiter=RateLimiter(per_chat_gap=0), clock=clock)
    asyncio.run(deliverer.run_once())
    rojin_offer = phone.inbox["rojin"][0]
    _say(talk, "samir", choice=f"of:a:{_offer_id(engine, 'Samir')}")

    # Rojin taps Accept while the notice that edits her offer message is still on its way: the
    # tap gets no answer of its own, the edited offer message tells her.
    assert (
        talk.handle(
            Incoming("test", "rojin", "rojin", choice=f"of:a:{_offer_id(engine, 'Rojin', 'withdrawn')}")
        )
        == []
    )
    asyncio.run(deliverer.run_once())
    assert phone.inbox["rojin"] == [rojin_offer.split("\n")[0] + "\n" + DE.gettext(TAKEN)]
    # Once the notice has arrived, a later Accept is answered: that tells nothing twice.
    rojin_offer_id = _offer_id(engine, "Rojin", "withdrawn")
    assert _say(talk, "rojin", choice=f"of:a:{rojin_offer_id}") == DE.gettext(
        "Someone else has already taken this job."
    )
    # Amira's notice failed: her tap is the one message that tells her.
    amira_offer = _offer_id(engine, "Amira", "withdrawn")
    assert _say(talk, "amira", choice=f"of:a:{amira_offer}") == DE.gettext(
        "Someone else has already taken this job."
    )


# --- the services ---------------------------------------------------------------------------------


@pytest.fixture
def world(uow: MakeUow) -> World:
    return build_world(uow)


def _outbox(world: World, template: str) -> list[tuple[str, dict[str, Any]]]:
    with world.make_uow() as u:
        rows = u.session.exec(
            select(OutboxMessage).where(OutboxMessage.template == template).order_by(col(OutboxMessage.id))
        )
        return [(m.recipient_type, json.loads(m.params)) for m in rows]


def _give_back(world: World, request_id: int, name: str, reason: str = "Ich bin krank.") -> None:
    with world.make_uow() as u:
        give_back(
            u.session,
            request_id=request_id,
            interpreter_id=world.interpreters[name],
            reason=reason,
            actor=ACTOR,
            now=NOW,
        )
        u.commit()


def test_a_hand_back_nobody_else_can_take_gives_the_school_one_message_without_referral(
    world: World, engine: Engine
) -> None:
    world.interpreter("Amira")
    request_id = submit(world)
    book(world, request_id, "Amira")
    _give_back(world, request_id, "Amira", "  Mein   Auto ist kaputt. ")
    assert _state(engine, request_id) == ("unfilled", None)
    assert _outbox(world, "request.interpreter_cancelled") == []
    assert _outbox(world, "request.handed_back") == []
    [(to, school)] = _outbox(world, "request.unfilled")
    assert (to, school["handed_back"], school["calendar_sequence"]) == ("school", True, 3)
    text = _rendered(engine, "request.unfilled", school, Role.SCHOOL)
    assert text == _line(engine, request_id) + "\n" + DE.gettext(NOBODY_ELSE)
    [(to, office)] = _outbox(world, "request.unfilled_coordinator")
    # The row names the hand-back's audit event; the reason (its spaces tidied) is read from there.
    assert (to, office["reason"], type(office["audit_id"])) == ("coordinators", "not_free", int)
    assert "Auto" not in json.dumps(office)
    assert "Amira" not in json.dumps(office)
    assert _rendered(engine, "request.unfilled_coordinator", office, Role.COORDINATOR) == (
        _line(engine, request_id)
        + "\n"
        + DE.render(
            NOBODY_ELSE_OFFICE,
            {"interpreter_name": "Amira", "handed_back_reason": "Mein Auto ist kaputt.", "alternative": ""},
        )
        + f"\n\n1. {DE.gettext('Try again')}\n2. {DE.gettext('Refer')}"
    )


@pytest.mark.parametrize("reason", ["", "ok", "x" * 301])
def test_a_hand_back_without_a_proper_reason_changes_nothing(
    world: World, engine: Engine, reason: str
) -> None:
    world.interpreter("Amira")
    request_id = submit(world)
    book(world, request_id, "Amira")
    with pytest.raises(InvalidInput):
        _give_back(world, request_id, "Amira", reason)
    assert _state(engine, request_id) == ("booked", world.interpreters["Amira"])


def test_the_coordinators_retry_asks_the_first_wave_again_but_not_who_declined_or_gave_it_back(
    world: World, engine: Engine
) -> None:
    a, b = world.interpreter("A", km_north=1), world.interpreter("B", km_north=2)
    request_id = submit(world)
    book(world, request_id, "A")  # B's offer is withdrawn: someone else took it
    _give_back(world, request_id, "A")
    assert _offers(engine) == [("A", 1, "cancelled"), ("B", 1, "withdrawn"), ("B", 2, "open")]
    run_due(engine, lambda: NOW + timedelta(hours=4))  # B lets it expire
    assert _state(engine, request_id) == ("unfilled", None)
    [(_, school)] = _outbox(world, "request.unfilled")
    assert _rendered(engine, "request.unfilled", school, Role.SCHOOL) == (
        _line(engine, request_id)
        + "\n"
        + DE.gettext(
            "Nobody from the pool has accepted this request. The coordination office is told and will "
            "get back to you."
        )
    )
    [(_, office)] = _outbox(world, "request.unfilled_coordinator")
    assert office["reason"] == "not_filled"

    with world.make_uow() as u:  # Try again: B, whose offer expired, is asked again; A is not
        approve(u.session, district_id=world.district_id, request_id=request_id, actor=ACTOR, now=NOW)
        u.commit()
    assert _offers(engine)[2:] == [("B", 2, "expired"), ("B", 3, "open")]
    with world.make_uow() as u:
        accept_offer(u.session, offer_id=_offer_id(engine, "B"), interpreter_id=b, actor=ACTOR, now=NOW)
        u.commit()
    assert _state(engine, request_id) == ("booked", b)
    with world.make_uow() as u:  # and A, who gave it back, was not asked again
        assert len(u.session.exec(select(Offer).where(Offer.interpreter_id == a)).all()) == 1


def test_a_declined_request_is_not_retried_with_who_declined(world: World, engine: Engine) -> None:
    world.interpreter("A")
    request_id = submit(world)
    with world.make_uow() as u:
        offer = u.session.exec(select(Offer)).one()
        decline_offer(
            u.session, offer_id=offer.id or 0, interpreter_id=offer.interpreter_id, actor=ACTOR, now=NOW
        )
        u.commit()
    assert _state(engine, request_id)[0] == "unfilled"
    with world.make_uow() as u, pytest.raises(NotFound):
        approve(u.session, district_id=world.district_id, request_id=request_id, actor=ACTOR, now=NOW)


UNFILLED = "{why} The coordination office is told and will get back to you."
WITH_OTHER = (
    "{why} Someone could take it {other}: if that suits you, send a new request with /request. "
    "The coordination office is told as well."
)


def test_an_unfilled_request_names_the_real_reason_to_school_and_coordinators(
    world: World, engine: Engine
) -> None:
    world.interpreter("Leyla", ("prs",), modes=frozenset({Mode.VIDEO}))
    by_phone = submit(world, language="prs", mode=Mode.PHONE)
    assert _state(engine, by_phone)[0] == "unfilled"
    school = {p["request_id"]: p for _, p in _outbox(world, "request.unfilled")}
    office = {p["request_id"]: p for _, p in _outbox(world, "request.unfilled_coordinator")}
    assert (school[by_phone]["reason"], school[by_phone]["other_mode"]) == ("not_in_mode", "video")
    why = DE.render(
        "Nobody in the pool who speaks {language} works {mode}.", {"language": "prs", "mode": "phone"}
    )
    assert why == "Niemand im Pool, der Dari spricht, arbeitet telefonisch."
    assert _rendered(engine, "request.unfilled", school[by_phone], Role.SCHOOL) == (
        _line(engine, by_phone) + "\n" + DE.render(WITH_OTHER, {"why": why, "other": "per Video"})
    )
    assert "EMZ" not in _rendered(engine, "request.unfilled", school[by_phone], Role.SCHOOL)
    assert _rendered(engine, "request.unfilled_coordinator", office[by_phone], Role.COORDINATOR).startswith(
        _line(engine, by_phone)
        + "\n"
        + DE.render(
            "Unfilled: {why}{alternative}",
            {"why": why, "alternative": " " + DE.render("Someone could take it {mode}.", {"mode": "video"})},
        )
    )
    assert "Jemand könnte sie per Video übernehmen." in _rendered(
        engine, "request.unfilled_coordinator", office[by_phone], Role.COORDINATOR
    )


def test_nobody_free_at_that_time_is_its_own_reason(world: World, engine: Engine) -> None:
    world.interpreter("Olena", ("uk",), modes=frozenset({Mode.IN_PERSON}))
    first = submit(world, language="uk")
    book(world, first, "Olena")
    second = submit(world, language="uk", starts_at=SOON + timedelta(minutes=30))
    assert _state(engine, second) == ("unfilled", None)
    [(_, school)] = [(t, p) for t, p in _outbox(world, "request.unfilled") if p["request_id"] == second]
    assert (school["reason"], school["other_mode"]) == ("not_free", None)
    why = DE.render(
        "Everyone in the pool who could take it {mode} is busy or away at that time.", {"mode": "in_person"}
    )
    assert _rendered(engine, "request.unfilled", school, Role.SCHOOL) == (
        _line(engine, second) + "\n" + DE.render(UNFILLED, {"why": why})
    )
    with world.make_uow() as u:
        assert [r.state_reason for r in u.session.exec(select(Request).order_by(col(Request.id)))] == [
            None,
            "not_free",
        ]


# --- through Telegram -----------------------------------------------------------------------------


async def test_a_hand_back_is_offered_to_a_first_wave_interpreter_who_accepts_and_is_booked(
    telegram: Telegram,  # noqa: F811  (the fixture of tests/test_telegram.py)
) -> None:
    tg = telegram
    for user, code in ((SCHOOL, tg.codes.school), (AMIRA, tg.codes.amira), (SAMIR, tg.codes.samir)):
        await tg.join(user, code)
    await tg.join(OFFICE, tg.codes.coordinator)
    summary = await _request_arabic(tg)
    await tg.press(SCHOOL, summary, "send")
    first_offer = await tg.api.wait_for_message(AMIRA, lambda m: bool(m.buttons))
    offer = await tg.api.wait_for_message(SAMIR, lambda m: bool(m.buttons))
    await tg.press(SAMIR, offer, _key_of(offer, "of:a:"))
    await tg.api.wait_for_message(SCHOOL, lambda m: "Samir" in m.text)
    await tg.api.wait_for_edit(AMIRA, first_offer.message_id, lambda m: DE.gettext(TAKEN) in m.text)

    jobs = await tg.say(SAMIR, "/jobs")
    asked = await tg.choose(SAMIR, jobs, _key_of(jobs, "bk:gb:"))
    assert asked.text.startswith(DE.render(ASK, {"line": _line(tg.engine)}))
    why = await tg.choose(SAMIR, asked, "yes")
    assert why.text == DE.gettext(WHY)
    since = len(tg.api.sent(SCHOOL))
    handed = await tg.say(SAMIR, "Mein Kind ist krank.")
    assert handed.text == DE.render(HANDED, {"request_id": 1})

    # Amira, whose first offer was withdrawn when Samir took it, gets a new one and takes it.
    again = await tg.api.wait_for_message(
        AMIRA, lambda m: bool(m.buttons) and m.message_id != first_offer.message_id
    )
    await tg.press(AMIRA, again, _key_of(again, "of:a:"))
    booked = await tg.api.wait_for_message(SCHOOL, lambda m: "Amira Haddad" in m.text, since=since)
    event = _calendar_event(
        await tg.api.wait_for_message(
            SCHOOL, lambda m: m.method == "sendDocument" and _calendar_event(m)["sequence"] == 3
        )
    )
    assert (event["uid"], event["status"]) == ("request-1@dolmetscherpool", "CONFIRMED")
    told = [m.text for m in tg.api.sent(SCHOOL)[since:] if m.method == "sendMessage"]
    assert told == [_line(tg.engine) + "\n" + DE.gettext(SEARCHING), booked.text]  # one message, then booked
    reason = DE.render(TO_OFFICE, {"interpreter_name": "Samir Khalil", "reason": "Mein Kind ist krank."})
    await tg.api.wait_for_message(OFFICE, lambda m: reason in m.text)


def test_a_hand_back_the_budget_cannot_carry_again_waits_for_the_office_in_one_message(
    uow: MakeUow, engine: Engine
) -> None:
    world = build_world(uow, budget_cents=2500)
    world.interpreter("A")
    world.interpreter("B", km_north=50)  # 60 min plus 2 x 50 km x 1.3 x 0.30 = 63.00 EUR
    with world.make_uow() as u:
        set_rule(u.session, world.district_id, "offer_wave_size", "1", actor=ACTOR, now=NOW)
        u.commit()
    request_id = submit(world)
    book(world, request_id, "A")
    _give_back(world, request_id, "A")
    assert _state(engine, request_id) == ("awaiting_approval", None)
    [(to, school)] = _outbox(world, "request.interpreter_cancelled")
    assert (to, school["held"]) == ("school", True)
    assert _outbox(world, "request.awaiting_approval") == []  # the hand-back's messages say it, once each
    [(_, office)] = _outbox(world, "request.handed_back")
    assert _rendered(engine, "request.handed_back", office, Role.COORDINATOR) == (
        _line(engine, request_id)
        + "\n"
        + DE.render(
            "{interpreter_name} handed this job back: “{reason}”. Another interpreter would cost more "
            "than the budget has left, so it waits for your decision.",
            {"interpreter_name": "A", "reason": "Ich bin krank."},
        )
        + f"\n\n1. {DE.gettext('Approve')}\n2. {DE.gettext('Reject')}"  # the decision goes with it
    )
    assert _rendered(engine, "request.interpreter_cancelled", school, Role.SCHOOL).endswith(
        "\n"
        + DE.gettext(
            "The interpreter had to hand this job back. Someone else would cost more than the budget "
            "has left; the coordination office decides."
        )
    )
