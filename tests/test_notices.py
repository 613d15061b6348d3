"""The typed contract between services and notifications: every notice has a params class and a text
in both languages, is stored as the JSON it always was, and renders for every role it may go to."""

import json
from collections.abc import Callable
from dataclasses import fields
from datetime import UTC, date, datetime
from typing import Any, get_args, get_type_hints

import pytest
from sqlmodel import col, select

from bot.conversation.views import pace_text
from bot.i18n import LOCALES, Translator
from bot.notifications import TEMPLATES, render, render_notice
from db.models import Offer, OutboxMessage
from db.uow import UnitOfWork
from services.notices import (
    PARAMS,
    AboutRequest,
    DigestWeekly,
    Notice,
    NoticeParams,
    OfferNew,
    RequestAwaitingApproval,
    RequestBooked,
    as_json,
    from_json,
)
from services.outbox import notify
from services.vocabulary import Recipient, Role
from tests.builders import NOW, World, book, build_world, submit

MakeUow = Callable[[], UnitOfWork]
ROLE = {
    Recipient.SCHOOL: Role.SCHOOL,
    Recipient.INTERPRETER: Role.INTERPRETER,
    Recipient.COORDINATORS: Role.COORDINATOR,
    Recipient.MEMBER: Role.COORDINATOR,  # the operator contact: any role; the text is the same
}
DE = Translator("de")


def sample(cls: type[NoticeParams], *, request_id: int = 1, offer_id: int = 1) -> NoticeParams:
    """An instance of a params class with a plausible value in every field (None in none)."""
    by_name: dict[str, Any] = {
        "request_id": request_id,
        "offer_id": offer_id,
        "language": "ar",
        "mode": "in_person",
        "reason": "not_filled",
        "uncovered": ("ka", "ti"),
        "unusual": ("twice_planned", "early"),
        "runs_out_on": date(2026, 10, 26),
        "year": 2026,
    }
    by_type: dict[Any, Any] = {int: 7, str: "x", bool: True, datetime: NOW, date: date(2026, 10, 26)}
    values = {}
    for f in fields(cls):
        kind = get_type_hints(cls)[f.name]
        kind = next((k for k in get_args(kind) if k is not type(None)), kind)  # `int | None` -> int
        values[f.name] = by_name[f.name] if f.name in by_name else by_type[kind]
    return cls(**values)


@pytest.fixture
def world(uow: MakeUow) -> World:
    world = build_world(uow)
    world.interpreter("Amira", km_north=3)
    return world


def test_every_notice_has_one_params_class_and_one_text() -> None:
    assert set(PARAMS) == set(Notice)
    assert set(TEMPLATES) == set(Notice)
    for notice in Notice:
        assert PARAMS[notice].notice is notice
        assert TEMPLATES[notice].params is PARAMS[notice]
        assert PARAMS[notice].recipients, notice


def test_every_notice_has_a_german_text_and_renders_for_each_recipient(world: World) -> None:
    request_id = submit(world)
    book(world, request_id, "Amira")
    with world.make_uow() as u:
        offer = u.session.exec(select(Offer).where(Offer.request_id == request_id)).one()
        assert offer.id is not None
        for notice in Notice:
            params = sample(PARAMS[notice], request_id=request_id, offer_id=offer.id)
            message = TEMPLATES[notice].message
            assert DE.gettext(message) != message, notice  # German is the default: it must be there
            stored = json.loads(json.dumps(as_json(params)))
            for locale in LOCALES:
                t = Translator(locale)
                for recipient in PARAMS[notice].recipients:
                    reply = render(u.session, t, notice.value, stored, ROLE[recipient])
                    assert reply.text, (notice, locale, recipient)
                    assert "{" not in reply.text, (notice, locale, recipient)
                    if isinstance(params, AboutRequest):
                        assert reply.text.startswith(f"#{request_id} · "), (notice, locale)
                    assert reply == render_notice(u.session, t, params, ROLE[recipient])


def test_the_params_go_through_json_and_back_unchanged() -> None:
    for notice in Notice:
        params = sample(PARAMS[notice])
        stored = json.loads(json.dumps(as_json(params)))
        assert from_json(notice, stored) == params
        assert from_json(notice, {**stored, "unknown": 1}) == params  # a key it does not know is ignored


def test_params_are_stored_as_before(world: World) -> None:
    """Datetimes and dates as ISO text, lists for tuples, None as null; the key in `template`."""
    offer_new = OfferNew(offer_id=3, request_id=2, expires_at=NOW)
    digest = DigestWeekly(
        since_at=NOW,
        bookings=1,
        charged_cents=2,
        available_cents=3,
        used_percent=4,
        unfilled=5,
        uncovered=("ka",),
        year_end_cents=None,
        runs_out_on=date(2026, 10, 26),
    )
    with world.make_uow() as u:
        for notice, recipient in ((offer_new, Recipient.INTERPRETER), (digest, Recipient.COORDINATORS)):
            notify(
                u.session,
                district_id=world.district_id,
                recipient=recipient,
                recipient_id=world.district_id,
                notice=notice,
                now=NOW,
            )
        u.commit()
    with world.make_uow() as u:
        rows = u.session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all()
        stored = [(m.template, json.loads(m.params)) for m in rows]
    assert stored == [
        ("offer.new", {"expires_at": "2026-03-02T08:00:00+00:00", "offer_id": 3, "request_id": 2}),
        (
            "digest.weekly",
            {
                "since_at": "2026-03-02T08:00:00+00:00",
                "bookings": 1,
                "charged_cents": 2,
                "available_cents": 3,
                "used_percent": 4,
                "unfilled": 5,
                "uncovered": ["ka"],
                "year_end_cents": None,
                "runs_out_on": "2026-10-26",
            },
        ),
    ]
    assert datetime.fromisoformat(stored[0][1]["expires_at"]).utcoffset() == UTC.utcoffset(None)


def test_a_notice_goes_only_to_the_recipients_it_is_meant_for(world: World) -> None:
    with world.make_uow() as u, pytest.raises(ValueError, match=r"offer\.new"):
        notify(
            u.session,
            district_id=world.district_id,
            recipient=Recipient.SCHOOL,
            recipient_id=world.school_id,
            notice=OfferNew(offer_id=1, request_id=1, expires_at=NOW),
            now=NOW,
        )


def test_a_stored_notice_without_a_parameter_or_text_does_not_render(world: World) -> None:
    with world.make_uow() as u:
        lacking = {"request_id": 1, "expires_at": NOW.isoformat()}
        with pytest.raises(KeyError, match="offer_id"):
            render(u.session, DE, "offer.new", lacking, Role.INTERPRETER)
        with pytest.raises(KeyError, match=r"offer\.nonsense"):
            render(u.session, DE, "offer.nonsense", {}, Role.INTERPRETER)
        # A parameter that may be None counts as None when missing (rows written before it existed).
        cancelled = render(u.session, DE, "request.cancelled", {"request_id": 1, "fee_cents": 0}, Role.SCHOOL)
    assert cancelled.attachment is None


def test_buttons_go_only_to_the_role_that_decides(world: World) -> None:
    request_id = submit(world)
    params = RequestAwaitingApproval(request_id=request_id, reason="budget", estimate_cents=100)
    with world.make_uow() as u:
        for_school = render_notice(u.session, DE, params, Role.SCHOOL)
        for_office = render_notice(u.session, DE, params, Role.COORDINATOR)
        booked = sample(RequestBooked, request_id=request_id)
        with_file = render_notice(u.session, DE, booked, Role.SCHOOL)
    assert for_school.choices == ()
    assert [c.key for c in for_office.choices] == [f"rq:ap:{request_id}", f"rq:rj:{request_id}"]
    assert for_office.text.startswith(for_school.text)
    assert with_file.attachment is not None
    assert with_file.attachment.filename == f"dolmetscheinsatz-{request_id}.ics"


def test_the_digest_says_when_the_budget_runs_out(world: World) -> None:
    """`runs_out_on` comes back as a date (the text once failed on the ISO string)."""
    digest = sample(DigestWeekly)
    assert isinstance(digest, DigestWeekly)
    with world.make_uow() as u:
        reply = render(u.session, DE, "digest.weekly", as_json(digest), Role.COORDINATOR)
    assert reply.text.endswith(pace_text(DE, date(2026, 10, 26), 7))
