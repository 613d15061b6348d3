"""Issue 13, items 5 to 8: a report far from the plan, /away with its days and bookings, reasons with
rejections and corrections, and /bookings in sections."""

import asyncio
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.conversation.router import Conversation
from bot.conversation.views import PAGE_SIZE, request_line
from bot.delivery import Deliverer
from bot.i18n import Translator
from bot.messages import Incoming, Reply
from bot.rate_limit import RateLimiter
from db.models import Absence, AuditEvent, Budget, DialogState, OutboxMessage, Request, School
from db.uow import UnitOfWork
from services import closeout
from services.policy import load_policy, set_rule
from services.requests import submit_request
from tests.builders import draft
from tests.chat_world import NOW, START, Clock
from tests.test_conversation import Phone, _join, _request, _say
from tests.test_telegram import OFFICE, SCHOOL, Telegram, _key_of, telegram  # noqa: F401

DE = Translator("de")
QUESTION_FROM = DE.gettext("From which day are you away? (e.g. 12.3. or Monday)")


def _reply(talk: Conversation, user: str, text: str = "", choice: str | None = None) -> Reply:
    """The last reply to one event (an error comes first, the question asked again last)."""
    return talk.handle(Incoming("test", user, user, text=text, choice=choice))[-1]


def _text(reply: Reply) -> str:
    """The reply without its numbered options."""
    return reply.text.split("\n\n1. ")[0]


def _deliver(engine: Engine, clock: Clock) -> Phone:
    phone = Phone()
    deliverer = Deliverer(engine, {"test": phone}, limiter=RateLimiter(per_chat_gap=0), clock=clock)
    asyncio.run(deliverer.run_once())
    return phone


def _request_row(engine: Engine, request_id: int) -> Request:
    with UnitOfWork(engine) as uow:
        request = uow.session.get(Request, request_id)
    assert request is not None
    return request


def _booked(engine: Engine) -> tuple[Conversation, Clock]:
    """The demo's Arabic request (#1, 10 March 10:00, 60 min in person), booked with Amira."""
    clock = Clock(NOW)
    talk = _join(engine, clock)
    _request(talk)
    _say(talk, "amira", choice="of:a:1")
    assert _request_row(engine, 1).state == "booked"
    return talk, clock


# --- plausibility of reports ---------------------------------------------------------------------


def test_a_report_far_from_the_plan_asks_first_and_is_flagged_to_office_and_school(engine: Engine) -> None:
    talk, clock = _booked(engine)
    clock.now = START + timedelta(minutes=10)  # the session has begun, but ends at 11:00
    for typed in ("/report", "500", "200"):
        _say(talk, "amira", typed)
    check = _reply(talk, "amira", "0")
    request = _request_row(engine, 1)
    what = "; ".join(
        [
            DE.render(
                "{minutes} min is more than twice the planned {planned} min", {"minutes": 500, "planned": 60}
            ),
            DE.render("{minutes} min is more than 8 hours", {"minutes": 500}),
            DE.render("{km} km is more than the {km_max} km expected at most", {"km": 200, "km_max": 150}),
            DE.render(
                "it is reported before the planned end ({ends_at})", {"ends_at": START + timedelta(hours=1)}
            ),
        ]
    )
    # 500 min in person: 60, then 15 started half hours = 510 min x 24.00 = 204.00; 200 km x 0.30 = 60.00
    assert _text(check) == DE.render(
        "{line}\n{minutes} min, {km} km, other costs {expenses_cents}: you would be paid {amount_cents}.\n"
        "That is unusual: {what}.\nIf it is right, send it; the coordination office is told. Send anyway?",
        {
            "line": request_line(DE, request),
            "minutes": 500,
            "km": 200,
            "expenses_cents": 0,
            "amount_cents": 26400,
            "what": what,
        },
    )
    assert [(c.key, c.label) for c in check.choices] == [
        ("send", DE.gettext("Send anyway")),
        ("again", DE.gettext("Start again")),
    ]
    sent = _say(talk, "amira", choice="send")
    assert sent == DE.render(
        "Report sent: {amount_cents}. The school confirms it; then it is paid.", {"amount_cents": 26400}
    )
    phone = _deliver(engine, clock)
    line = request_line(DE, _request_row(engine, 1))
    flagged = DE.render(
        "This report is unusual: {what}. The school is asked to check it; you can correct it.", {"what": what}
    )
    assert f"{line}\n{flagged}\n\n1. {DE.gettext('Correct')}" in phone.inbox["office"]
    reported = DE.render(
        "The interpreter reports {minutes} min, {km} km, other costs {expenses_cents}: "
        "{amount_cents}.{unusual}",
        {
            "minutes": 500,
            "km": 200,
            "expenses_cents": 0,
            "amount_cents": 26400,
            "unusual": "\n" + DE.render("Please check: {what}.", {"what": what}),
        },
    )
    assert [m.split("\n\n1. ")[0] for m in phone.inbox["school"]][-1] == f"{line}\n{reported}"


def test_a_report_close_to_the_plan_goes_as_before_without_a_flag(engine: Engine) -> None:
    talk, clock = _booked(engine)
    clock.now = START + timedelta(minutes=70)
    for typed in ("/report", "75", "18"):
        _say(talk, "amira", typed)
    check = _reply(talk, "amira", "0")
    assert _text(check) == DE.render(
        "{line}\n{minutes} min, {km} km, other costs {expenses_cents}: "
        "you will be paid {amount_cents}. Send?",
        {
            "line": request_line(DE, _request_row(engine, 1)),
            "minutes": 75,
            "km": 18,
            "expenses_cents": 0,
            "amount_cents": 4140,
        },
    )
    _say(talk, "amira", choice="send")
    with UnitOfWork(engine) as uow:
        templates = set(uow.session.exec(select(OutboxMessage.template)))
    assert "closeout.reported" in templates
    assert "closeout.unusual" not in templates


def test_the_km_maximum_is_the_districts_policy(engine: Engine) -> None:
    _booked(engine)
    with UnitOfWork(engine) as uow:
        request = uow.session.get(Request, 1)
        assert request is not None
        policy = load_policy(uow.session, request.district_id)
        after = START + timedelta(hours=2)
        assert policy.report_km_max == 150
        assert closeout.unusual(request, 60, 151, policy, after) == (closeout.Unusual.FAR,)
        assert closeout.unusual(request, 120, 150, policy, after) == ()  # twice the plan is not more
        assert closeout.unusual(request, 121, 0, policy, after) == (closeout.Unusual.TWICE_PLANNED,)
        set_rule(uow.session, request.district_id, "report_km_max", "250", actor="t", now=NOW)
        raised = load_policy(uow.session, request.district_id)
        assert closeout.unusual(request, 60, 200, raised, after) == ()


# --- /away ---------------------------------------------------------------------------------------


def test_away_refuses_a_past_start_and_confirms_the_days_as_typed(engine: Engine) -> None:
    talk = _join(engine, Clock(NOW))  # Monday, 2 March 2026
    assert _say(talk, "amira", "/away") == QUESTION_FROM
    past = _say(talk, "amira", "1.3.2026")
    assert past == "\n".join(
        [
            DE.render(
                "{from_on} lies in the past; an absence can start today at the earliest.",
                {"from_on": date(2026, 3, 1)},
            ),
            QUESTION_FROM,
        ]
    )
    assert _say(talk, "amira", "2.3.") == DE.gettext("Until which day, inclusive?")  # today is fine
    assert _say(talk, "amira", "5.3.") == DE.render(
        "Noted: no offers from {from_on} until {until_on}.",
        {"from_on": date(2026, 3, 2), "until_on": date(2026, 3, 5)},
    )
    with UnitOfWork(engine) as uow:
        absence = uow.session.exec(select(Absence)).one()
    # Stored as the moments: midnight before the first day, midnight after the last (Berlin).
    assert (absence.starts_at, absence.ends_at) == (
        datetime(2026, 3, 1, 23, tzinfo=UTC),
        datetime(2026, 3, 5, 23, tzinfo=UTC),
    )


def test_away_names_the_bookings_inside_and_absences_are_listed_and_removed(engine: Engine) -> None:
    talk, _ = _booked(engine)
    _say(talk, "amira", "/away")
    _say(talk, "amira", "9.3.")
    noted = _reply(talk, "amira", "11.3.")
    assert _text(noted) == "\n".join(
        [
            DE.render(
                "Noted: no offers from {from_on} until {until_on}.",
                {"from_on": date(2026, 3, 9), "until_on": date(2026, 3, 11)},
            ),
            DE.gettext("You are booked in that time; hand a job back if you cannot do it:"),
            request_line(DE, _request_row(engine, 1)),
        ]
    )
    assert [c.key for c in noted.choices] == ["bk:gb:1"]
    with UnitOfWork(engine) as uow:
        absence_id = uow.session.exec(select(Absence.id)).one()

    listed = _reply(talk, "amira", "/away")
    days = {"from_on": date(2026, 3, 9), "until_on": date(2026, 3, 11)}
    assert _text(listed) == DE.gettext("You are away:") + "\n" + DE.render("{from_on} – {until_on}", days)
    assert [(c.key, c.label) for c in listed.choices] == [
        (f"rm-{absence_id}", DE.render("Remove {from_on} – {until_on}", days)),
        ("new", DE.gettext("New absence")),
    ]
    assert _say(talk, "amira", "2") == QUESTION_FROM  # a new one
    _say(talk, "amira", "/cancel")

    # Nobody else can remove it (a button of an earlier list asks first, as the list does).
    refused = _say(talk, "samir", choice=f"aw:rm:{absence_id}")
    assert refused == DE.gettext("This absence does not exist (any more).")
    asked = _say(talk, "amira", choice=f"aw:rm:{absence_id}")
    assert asked.startswith(
        DE.render("Remove your absence {from_on} – {until_on}? Offers reach you again for those days.", days)
    )
    removed = _say(talk, "amira", choice="yes")
    assert removed == DE.render("Removed: offers reach you again for {from_on} – {until_on}.", days)
    with UnitOfWork(engine) as uow:
        assert uow.session.exec(select(Absence)).all() == []
        audit = uow.session.exec(select(AuditEvent).where(AuditEvent.action == "absence.removed")).one()
    assert audit.entity_id == 1  # Amira
    assert _say(talk, "amira", "/away") == QUESTION_FROM  # nothing left to list


# --- decisions carry reasons ---------------------------------------------------------------------


def _held_request(engine: Engine) -> int:
    """A request for 2027, which has no budget yet: it waits for the coordinators."""
    with UnitOfWork(engine) as uow:
        school = uow.session.exec(select(School).order_by(col(School.id))).first()
        assert school is not None
        assert school.id is not None
        wanted = draft(school.id, starts_at=datetime(2027, 3, 10, 9, tzinfo=UTC))
        request = submit_request(
            uow.session, district_id=school.district_id, draft=wanted, actor="t", now=NOW
        )
        uow.commit()
        assert request.state == "awaiting_approval"
        assert request.id is not None
        return request.id


REJECT_QUESTION = "Why can #{request_id} not be approved? The school reads your reason (3 to 300 characters)."
REASON = "Für 2027 ist noch kein Geld bewilligt."


def test_a_rejection_asks_for_a_reason_and_the_school_reads_it(engine: Engine) -> None:
    clock = Clock(NOW)
    talk = _join(engine, clock)
    request_id = _held_request(engine)
    asked = _say(talk, "office", choice=f"rq:rj:{request_id}")
    assert asked == DE.render(REJECT_QUESTION, {"request_id": request_id})
    too_short = _say(talk, "office", "no")
    assert too_short.splitlines()[0] == DE.gettext("Please give the reason in 3 to 300 characters.")
    assert _request_row(engine, request_id).state == "awaiting_approval"
    done = _say(talk, "office", REASON)
    assert done == DE.render("#{request_id} is rejected; the school is told.", {"request_id": request_id})
    request = _request_row(engine, request_id)
    assert request.state == "rejected"
    phone = _deliver(engine, clock)
    told = DE.render(
        "The coordination office could not approve this request. Their reason: “{reason}”", {"reason": REASON}
    )
    assert phone.inbox["school"][-1] == f"{request_line(DE, request)}\n{told}"
    again = _say(talk, "office", choice=f"rq:rj:{request_id}")
    assert again == DE.render(
        "This request is {state} and cannot become {target}.", {"state": "rejected", "target": "rejected"}
    )


def _figures(minutes: int, km: int, amount_cents: int) -> str:
    return DE.render(
        "{minutes} min, {km} km, other costs {expenses_cents}: {amount_cents}",
        {"minutes": minutes, "km": km, "expenses_cents": 0, "amount_cents": amount_cents},
    )


def _correction(line: str, before: str, after: str, reason: str, change: str) -> str:
    return "\n".join(
        [
            DE.render("Correction of {line}", {"line": line}),
            DE.render("Before: {figures}", {"figures": before}),
            DE.render("After: {figures}", {"figures": after}),
            DE.render("Reason: “{reason}”", {"reason": reason}),
            change,
            DE.gettext("School and interpreter are told. Apply the correction?"),
        ]
    )


def test_a_correction_shows_before_and_after_and_school_and_interpreter_are_told(engine: Engine) -> None:
    talk, clock = _booked(engine)
    clock.now = START + timedelta(minutes=70)
    for typed in ("/report", "75", "18", "0"):
        _say(talk, "amira", typed)
    _say(talk, "amira", choice="send")
    _say(talk, "school", choice="co:no:1")
    _say(talk, "school", "Sie war nur 60 Minuten da.")
    line = request_line(DE, _request_row(engine, 1))
    reported = _figures(75, 18, 4140)  # 90 min billed x 24.00 + 18 km x 0.30

    _say(talk, "office", choice="co:fx:1")
    for typed in ("60", "18", "0"):
        _say(talk, "office", typed)
    falls = _reply(talk, "office", "Schule und Dolmetscherin einig: 60 Minuten")
    assert _text(falls) == _correction(
        line,
        reported,
        _figures(60, 18, 2940),
        "Schule und Dolmetscherin einig: 60 Minuten",
        DE.render("The charge falls by {change_cents}.", {"change_cents": 1200}),
    )
    assert [c.key for c in falls.choices] == ["apply", "again"]
    with UnitOfWork(engine) as uow:
        assert uow.session.exec(select(Budget)).one().charged_cents == 0  # nothing moved yet

    assert _say(talk, "office", choice="again") == DE.render(
        "The correct minutes for #{request_id}?", {"request_id": 1}
    )
    for typed in ("100", "18", "0"):
        _say(talk, "office", typed)
    rises = _reply(talk, "office", "Doch länger: 100 Minuten")
    assert _text(rises).splitlines()[2:5] == [
        DE.render("After: {figures}", {"figures": _figures(100, 18, 5340)}),  # 120 min billed
        DE.render("Reason: “{reason}”", {"reason": "Doch länger: 100 Minuten"}),
        DE.render("The charge rises by {change_cents}.", {"change_cents": 1200}),
    ]
    done = _say(talk, "office", choice="apply")
    assert done == DE.gettext("Corrected.") + " " + DE.render(
        "The charge rises by {change_cents}.", {"change_cents": 1200}
    )
    with UnitOfWork(engine) as uow:
        budget = uow.session.exec(select(Budget)).one()
    assert (budget.charged_cents, budget.reserved_cents) == (5340, 0)

    phone = _deliver(engine, clock)
    told = DE.render(
        "The coordination office has corrected the report: {minutes} min, {km} km, other costs "
        "{expenses_cents}, in all {amount_cents} (before: {previous_cents}). Reason: “{reason}”",
        {
            "minutes": 100,
            "km": 18,
            "expenses_cents": 0,
            "amount_cents": 5340,
            "previous_cents": 4140,
            "reason": "Doch länger: 100 Minuten",
        },
    )
    assert f"{line}\n{told}" in phone.inbox["school"]
    assert f"{line}\n{told}" in phone.inbox["amira"]

    # A second look after settlement with the same figures: nothing to book.
    _say(talk, "office", choice="co:fx:1")
    for typed in ("100", "18", "0"):
        _say(talk, "office", typed)
    same = _reply(talk, "office", "Nur zur Kontrolle")
    assert _text(same).splitlines()[1:5] == [
        DE.render("Before: {figures}", {"figures": _figures(100, 18, 5340)}),
        DE.render("After: {figures}", {"figures": _figures(100, 18, 5340)}),
        DE.render("Reason: “{reason}”", {"reason": "Nur zur Kontrolle"}),
        DE.gettext("The charge stays the same."),
    ]
    assert _say(talk, "office", "1") == DE.gettext("Corrected.") + " " + DE.gettext(
        "The charge stays the same."
    )
    with UnitOfWork(engine) as uow:
        assert uow.session.exec(select(Budget)).one().charged_cents == 5340


# --- /bookings -----------------------------------------------------------------------------------


def _rows(engine: Engine, starts: list[tuple[datetime, str]]) -> list[int]:
    """Requests of the demo's first school at these starts, in these states; their ids."""
    with UnitOfWork(engine) as uow:
        school = uow.session.exec(select(School).order_by(col(School.id))).first()
        assert school is not None
        assert school.id is not None
        rows = [
            Request(
                district_id=school.district_id,
                school_id=school.id,
                language="ar",
                mode="phone",
                topic="parent_talk",
                starts_at=at,
                duration_minutes=30,
                place="",
                place_latitude=school.latitude,
                place_longitude=school.longitude,
                state=state,
                created_at=NOW - timedelta(days=60),
                updated_at=NOW - timedelta(days=60),
            )
            for at, state in starts
        ]
        uow.session.add_all(rows)
        uow.commit()
        return [r.id or 0 for r in rows]


def test_bookings_lists_open_and_finished_apart_and_every_finished_one_newest_first(engine: Engine) -> None:
    talk = _join(engine, Clock(NOW))
    past_states = ["settled", "cancelled", "rejected", "referred", "settled", "settled", "cancelled"]
    finished = _rows(engine, [(NOW - timedelta(days=n + 1), s) for n, s in enumerate(past_states)])
    open_ = _rows(engine, [(START + timedelta(hours=n), "requested") for n in range(3)])
    first = _reply(talk, "school", "/bookings")
    lines = first.text.split("\n\n")
    assert lines[0].splitlines()[0] == DE.gettext("Open:")
    assert [line.split(" · ")[0] for line in lines[0].splitlines()[1:]] == [f"#{i}" for i in open_]
    assert lines[1].splitlines()[0] == DE.gettext("Finished, newest first:")
    shown = PAGE_SIZE - len(open_)
    assert [line.split(" · ")[0] for line in lines[1].splitlines()[1:]] == [f"#{i}" for i in finished[:shown]]
    following = _reply(talk, "school", choice="ls:bk:2")
    rest = following.text.split("\n\n")[0].splitlines()
    assert rest[0] == DE.gettext("Finished, newest first:")
    assert [line.split(" · ")[0] for line in rest[1:]] == [
        f"#{i}" for i in finished[shown:]
    ]  # all 7 reachable


def test_bookings_without_open_requests_says_so_above_the_finished_ones(engine: Engine) -> None:
    talk = _join(engine, Clock(NOW))
    (finished,) = _rows(engine, [(NOW - timedelta(days=3), "settled")])
    shown = _reply(talk, "school", "/bookings").text.split("\n\n")
    assert shown[0] == DE.gettext("No open requests. /request makes one.")
    assert shown[1].splitlines()[0] == DE.gettext("Finished, newest first:")
    assert shown[1].splitlines()[1].startswith(f"#{finished} · ")


# --- over Telegram -------------------------------------------------------------------------------


async def _buttons_stored(engine: Engine, key: str) -> None:
    """Wait until the sender has stored a notification's buttons as the member's choices.

    Pressing earlier races the sender's transaction: both then insert the member's dialog row, and
    the router takes the press for a duplicate event and drops it (reported, not fixed here).
    """
    for _ in range(200):
        with UnitOfWork(engine) as uow:
            if any(key in row.choices for row in uow.session.exec(select(DialogState))):
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{key} was never stored as a choice")


async def test_a_rejection_reason_reaches_the_school_over_telegram(telegram: Telegram) -> None:  # noqa: F811
    tg = telegram
    await tg.join(SCHOOL, tg.codes.school)
    await tg.join(OFFICE, tg.codes.coordinator)
    request_id = _held_request(tg.engine)
    held = await tg.api.wait_for_message(OFFICE, lambda m: any(k.startswith("rq:rj:") for _, k in m.buttons))
    await _buttons_stored(tg.engine, f"rq:rj:{request_id}")
    asked = await tg.choose(OFFICE, held, _key_of(held, "rq:rj:"))
    assert asked.text == DE.render(REJECT_QUESTION, {"request_id": request_id})
    done = await tg.say(OFFICE, REASON)
    assert done.text == DE.render(
        "#{request_id} is rejected; the school is told.", {"request_id": request_id}
    )
    told = await tg.api.wait_for_message(SCHOOL, lambda m: REASON in m.text)
    assert told.text == "\n".join(
        [
            request_line(DE, _request_row(tg.engine, request_id)),
            DE.render(
                "The coordination office could not approve this request. Their reason: “{reason}”",
                {"reason": REASON},
            ),
        ]
    )
