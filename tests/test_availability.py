"""Before sending, the summary says who could take the request; when nobody can in its mode, it names the
mode that would work and offers to switch. Sent anyway, the school and the office read the real reason."""

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.conversation.router import Conversation
from bot.i18n import Translator
from bot.notifications import render
from db.models import Interpreter, Offer, OutboxMessage, Request
from db.uow import UnitOfWork
from services.pool import add_absence
from services.requests import quote
from services.vocabulary import Mode, Role, UnmetReason
from tests.builders import NOW, SOON, World, build_world, draft
from tests.chat_world import Clock
from tests.test_conversation import _join, _say
from tests.test_telegram import SCHOOL, Telegram, telegram  # noqa: F401 (the fixture)

DE = Translator("de")
MakeUow = Callable[[], UnitOfWork]
NOT_IN_MODE = "Nobody in the pool who speaks {language} works {mode}."
NOT_FREE = "Everyone in the pool who could take it {mode} is busy or away at that time."
COULD = "Someone could take it {mode}."
SWITCH = "Ask for it {mode} instead"


@pytest.fixture
def world(uow: MakeUow) -> World:
    return build_world(uow)


def _quote(world: World, **kwargs: Any) -> Any:
    with world.make_uow() as u:
        return quote(
            u.session, district_id=world.district_id, draft=draft(world.school_id, **kwargs), now=NOW
        )


def test_the_quote_counts_everyone_who_could_take_it_not_only_the_first_wave(world: World) -> None:
    for n in range(4):
        world.interpreter(f"A{n}", km_north=n)
    world.interpreter("Away", km_north=9, modes=frozenset({Mode.VIDEO}))  # not in person
    q = _quote(world)
    assert (q.covered, q.eligible, q.estimate_cents, q.reason, q.other_modes) == (
        True,
        4,
        2400 + 156,  # the dearest of the first wave of 3: 2 km away, 2 x 2 x 1.3 x 0.30
        None,
        (),
    )


def test_nobody_in_this_mode_names_the_modes_that_would_work_and_still_allowed(world: World) -> None:
    world.interpreter("Leyla", ("prs",), modes=frozenset({Mode.VIDEO, Mode.IN_PERSON}))
    q = _quote(world, language="prs", mode=Mode.PHONE)
    assert (q.covered, q.eligible, q.reason, q.other_modes) == (
        True,
        0,
        UnmetReason.NOT_IN_MODE,
        (Mode.IN_PERSON, Mode.VIDEO),
    )
    # Three hours ahead: in person needs 24 hours' notice, so only video is suggested.
    soon = _quote(world, language="prs", mode=Mode.PHONE, starts_at=NOW + timedelta(hours=3))
    assert soon.other_modes == (Mode.VIDEO,)
    nobody = _quote(world, language="ka")
    assert (nobody.covered, nobody.eligible, nobody.reason, nobody.other_modes) == (
        False,
        0,
        UnmetReason.NOT_COVERED,
        (),
    )


def test_nobody_free_then_is_told_apart_from_nobody_in_the_mode(world: World) -> None:
    world.interpreter("Leyla", ("prs",), modes=frozenset({Mode.PHONE}))
    with world.make_uow() as u:
        add_absence(
            u.session,
            district_id=world.district_id,
            interpreter_id=world.interpreters["Leyla"],
            starts_at=SOON - timedelta(days=1),
            ends_at=SOON + timedelta(days=1),
            actor="t",
            now=NOW,
        )
        u.commit()
    q = _quote(world, language="prs", mode=Mode.PHONE)
    assert (q.eligible, q.reason, q.other_modes) == (0, UnmetReason.NOT_FREE, ())


def _only_video_for_dari(engine: Engine) -> None:
    """The demo pool's Dari: Leyla works by video only, Ahmad is no longer active."""
    with UnitOfWork(engine) as uow:
        for interpreter in uow.session.exec(select(Interpreter)):
            if interpreter.name == "Leyla Rahimi":
                interpreter.modes = "video"
            elif interpreter.name == "Ahmad Noori":
                interpreter.active = False
            uow.session.add(interpreter)
        uow.commit()


def _dari_by_phone(talk: Conversation) -> str:
    for line in ("/request", "Dari", "telefonisch", "10.3. 10:00", "60", "1", "1", "1"):
        _say(talk, "school", line)
    return _say(talk, "school", "1")  # no note: the summary


def test_dari_by_phone_with_only_a_video_interpreter_suggests_video_before_sending(engine: Engine) -> None:
    talk = _join(engine, Clock(NOW))
    _only_video_for_dari(engine)
    summary = _dari_by_phone(talk)
    why = DE.render(NOT_IN_MODE, {"language": "prs", "mode": "phone"})
    assert why == "Niemand im Pool, der Dari spricht, arbeitet telefonisch."
    assert f"{why}\n{DE.render(COULD, {'mode': 'video'})}\n" in summary
    assert summary.endswith(
        f"\n\n1. Stattdessen per Video anfragen\n2. {DE.gettext('Send')}"
        f"\n3. {DE.gettext('Change something')}\n4. {DE.gettext('Discard')}"
    )
    # Switching asks for the video link (the phone number no longer fits), then shows it again.
    assert _say(talk, "school", "1").startswith(
        DE.gettext(
            "The school's own phone number or the meeting link for the interpreter? Please not a parent's "
            "number: the interpreter calls the school or joins the meeting."
        )
    )
    again = _say(talk, "school", "1")  # I will send it later
    assert DE.render("Mode: {mode}", {"mode": "video"}) in again
    could = DE.render_plural(
        "{count} interpreter in the pool could take it.", "{count} interpreters in the pool could take it.", 1
    )
    assert could == "1 Dolmetscher/in im Pool könnte sie übernehmen."
    assert could in again
    assert why not in again
    _say(talk, "school", "1")  # send
    with UnitOfWork(engine) as uow:
        request = uow.session.exec(select(Request)).one()
        offered = [o.interpreter_id for o in uow.session.exec(select(Offer))]
        leyla = uow.session.exec(select(Interpreter.id).where(Interpreter.name == "Leyla Rahimi")).one()
    assert (request.state, request.mode, offered) == ("offered", "video", [leyla])


def test_dari_by_phone_sent_anyway_tells_the_school_video_would_work_and_the_office_why(
    engine: Engine,
) -> None:
    talk = _join(engine, Clock(NOW))
    _only_video_for_dari(engine)
    _dari_by_phone(talk)
    _say(talk, "school", "2")  # send it as it is
    with UnitOfWork(engine) as uow:
        request = uow.session.exec(select(Request)).one()
        assert (request.state, request.state_reason) == ("unfilled", "not_in_mode")
        rows = uow.session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all()
        told = {(m.template, m.recipient_type): json.loads(m.params) for m in rows}
        assert {t for t, _ in told} == {"request.unfilled", "request.unfilled_coordinator"}
        school = render(uow.session, DE, "request.unfilled", told["request.unfilled", "school"], Role.SCHOOL)
        office = render(
            uow.session,
            DE,
            "request.unfilled_coordinator",
            told["request.unfilled_coordinator", "coordinators"],
            Role.COORDINATOR,
        )
    why = "Niemand im Pool, der Dari spricht, arbeitet telefonisch."
    assert school.text.split("\n", 1)[1] == (
        f"{why} Jemand könnte sie per Video übernehmen: Wenn Ihnen das passt, stellen Sie mit /request eine "
        "neue Anfrage. Die Koordinierungsstelle ist ebenfalls informiert."
    )
    assert office.text.split("\n", 1)[1].startswith(
        f"Nicht besetzt: {why} Jemand könnte sie per Video übernehmen.\n\n1. "
    )
    assert "niemand arbeitet in dieser Form" in _say(talk, "office", "/requests")


async def test_dari_by_phone_gets_the_video_suggestion_before_sending_on_telegram(
    telegram: Telegram,  # noqa: F811  (the fixture of tests/test_telegram.py)
) -> None:
    tg = telegram
    await tg.join(SCHOOL, tg.codes.school)
    _only_video_for_dari(tg.engine)
    await tg.say(SCHOOL, "/request")
    mode = await tg.say(SCHOOL, "Dari")
    await tg.choose(SCHOOL, mode, "phone")
    duration = await tg.say(SCHOOL, "10.3. 10:00")
    place = await tg.choose(SCHOOL, duration, "60")
    topic = await tg.choose(SCHOOL, place, "later")
    gender = await tg.choose(SCHOOL, topic, "parent_talk")
    note = await tg.choose(SCHOOL, gender, "any")
    summary = await tg.choose(SCHOOL, note, "none")
    assert "Niemand im Pool, der Dari spricht, arbeitet telefonisch." in summary.text
    assert summary.buttons[0] == ("Stattdessen per Video anfragen", "to-video")
    link = await tg.choose(SCHOOL, summary, "to-video")
    again = await tg.choose(SCHOOL, link, "later")
    assert "1 Dolmetscher/in im Pool könnte sie übernehmen." in again.text
    assert [key for _, key in again.buttons] == ["send", "change", "drop"]
