"""Data minimisation, on SQLite and PostgreSQL, through the chat and the real delivery path.

The dialog asks for no pupils' or parents' data and refuses a note with a phone number or an e-mail
address. An offer says language, mode, time, duration, town and topic; the place details and the note
reach the booked interpreter alone. The calendar files hold what each reader needs on the day. Outbox
rows keep ids: names, contact data and reasons are read when a message is delivered, and its params
are cleared once no delivery of it waits. A row written before (with the old params) still delivers.
"""

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest
from icalendar import Calendar, Event
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.delivery import Deliverer, Undeliverable
from bot.i18n import Translator
from bot.messages import Incoming, Reply
from bot.rate_limit import RateLimiter
from db.models import Delivery, Interpreter, Member, Offer, OutboxMessage, Request, School
from db.uow import UnitOfWork
from services.errors import InvalidInput
from services.requests import check_note
from tests.chat_world import NOW, Clock
from tests.test_conversation import Phone, _join, _request, _say

DE = Translator("de")
SAMIR_PHONE, SAMIR_EMAIL = "+49 170 5550102", "samir@example.org"
PLACE = "Turnhalle, Am Sportplatz 3, 29614 Soltau"
NOTE = "Syrischer Dialekt, Thema Versetzung"
NOTE_ASKED = (
    "What should the interpreter know (at most {max} characters)? The topic in a few words, a dialect, "
    "special needs. Please do not write names of pupils or parents, and no phone numbers or e-mail addresses."
)
PLACE_ASKED = (
    "The school's own phone number or the meeting link for the interpreter? Please not a parent's number: "
    "the interpreter calls the school or joins the meeting."
)
NO_CONTACT = (
    "Please leave phone numbers and e-mail addresses out of the note; the interpreter reaches the school "
    "through the booking."
)


class FilePhone(Phone):
    """The fake platform, which also keeps the files each chat got."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.files: dict[str, list[bytes]] = {}

    async def send(self, chat_id: str, reply: Reply, *, key: str | None = None) -> str:
        sent = await super().send(chat_id, reply, key=key)
        if reply.attachment is not None:
            self.files.setdefault(chat_id, []).append(reply.attachment.data)
        return sent


def _deliver(engine: Engine, phone: Phone, clock: Clock) -> int:
    """The bot's delivery loop until quiet; how many messages went out."""
    deliverer = Deliverer(engine, {"test": phone}, limiter=RateLimiter(per_chat_gap=0), clock=clock)
    sent = 0
    for _ in range(5):
        once = asyncio.run(deliverer.run_once())
        if not once:
            break
        sent += once
    return sent


def _event(data: bytes) -> Event:
    (event,) = Calendar.from_ical(data).walk("VEVENT")
    assert isinstance(event, Event)
    return event


def _params(engine: Engine) -> dict[int, tuple[str, str, str]]:
    """Every outbox row: its template, recipient type and params as stored."""
    with UnitOfWork(engine) as uow:
        rows = uow.session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all()
        return {m.id or 0: (m.template, m.recipient_type, m.params) for m in rows}


def _samir_reachable(engine: Engine) -> None:
    """Samir gets a phone number and an e-mail address of his own (the demo's are shared or empty)."""
    with UnitOfWork(engine) as uow:
        samir = uow.session.exec(select(Interpreter).where(Interpreter.name == "Samir Khalil")).one()
        samir.phone, samir.email = SAMIR_PHONE, SAMIR_EMAIL
        uow.session.add(samir)
        uow.commit()


def _offer_of(engine: Engine, name: str) -> int:
    with UnitOfWork(engine) as uow:
        offer = uow.session.exec(
            select(Offer)
            .join(Interpreter, col(Interpreter.id) == Offer.interpreter_id)
            .where(Interpreter.name == name)
        ).one()
        return offer.id or 0


# --- what the dialog asks for --------------------------------------------------------------------


@pytest.mark.parametrize(
    "note",
    [
        "Bitte vorher Frau K. anrufen: 0151 2345678",
        "Vater erreichbar unter +49 30 1234567",
        "Tel. 030/123456",
        "Rückfragen an eltern.k@example.org",
    ],
)
def test_a_note_with_a_phone_number_or_an_e_mail_address_is_refused(note: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_note(note)
    assert refused.value.message == NO_CONTACT


@pytest.mark.parametrize(
    "note",
    [
        "Syrischer Dialekt, Thema Versetzung",
        "Termin am 12.03.2026 um 10:30",
        "Schuljahr 2025-2026",
        "Raum 0.12",
    ],
)
def test_dates_years_and_rooms_in_a_note_are_not_taken_for_phone_numbers(note: str) -> None:
    check_note(note)


def test_the_dialog_asks_for_the_schools_own_number_and_a_note_without_names_or_contact_data(
    engine: Engine,
) -> None:
    talk = _join(engine, Clock(NOW))
    for line in ("/request", "ar", "telefonisch", "10.3. 10:00"):
        _say(talk, "school", line)
    assert _say(talk, "school", "60") == DE.gettext(PLACE_ASKED) + "\n\n1. " + DE.gettext(
        "I will send it later"
    )
    _say(talk, "school", "05191 123456")  # the school's own number: fine as a place
    _say(talk, "school", "1")  # parent talk
    asked = _say(talk, "school", "1")  # no gender wished
    assert asked == DE.render(NOTE_ASKED, {"max": 200}) + "\n\n1. " + DE.gettext("No note")
    assert asked.startswith(
        "Was sollte die Dolmetscherin oder der Dolmetscher wissen (höchstens 200 Zeichen)?"
    )
    refused = _say(talk, "school", "Bitte die Mutter anrufen: 0151 2345678")
    assert refused.startswith(DE.gettext(NO_CONTACT))
    assert _say(talk, "school", "mutter@example.org").startswith(DE.gettext(NO_CONTACT))
    summary = _say(talk, "school", NOTE)  # the refusals changed nothing: the same step takes the note
    assert DE.render("Note: {note}", {"note": NOTE}) in summary.splitlines()
    assert DE.render("Place: {place}", {"place": "05191 123456"}) in summary.splitlines()
    assert "0151" not in summary
    assert "mutter@" not in summary


# --- offers, the booking, the calendar files, the outbox ----------------------------------------


def test_offers_show_no_note_or_place_and_only_the_booked_interpreter_gets_them(engine: Engine) -> None:
    clock = Clock(NOW)
    talk = _join(engine, clock)
    _samir_reachable(engine)
    for line in ("/request", "ar", "vor Ort", "10.3. 10:00", "60", PLACE, "1", "1", NOTE):
        _say(talk, "school", line)
    _say(talk, "school", "1")  # send
    stored = _params(engine)
    assert {template for template, _, _ in stored.values()} == {"offer.new", "request.received"}
    for template, _, params in stored.values():  # ids and figures only
        assert set(json.loads(params)) <= {"offer_id", "request_id", "expires_at"}, template

    phone = FilePhone()
    assert _deliver(engine, phone, clock) == 4  # three offers and the school's receipt
    for user in ("amira", "samir", "rojin"):
        (offer,) = phone.inbox[user]
        assert offer.splitlines()[1].startswith("Neuer Einsatz: Soltau (")  # the school's town
        assert offer.splitlines()[1].endswith("entfernt), Elterngespräch")  # and the topic
        assert "Sportplatz" not in offer
        assert NOTE not in offer
    assert set(_params(engine).values()) == {(t, r, "{}") for t, r, _ in stored.values()}  # delivered

    talk.handle(Incoming("test", "samir", "samir", choice=f"of:a:{_offer_of(engine, 'Samir Khalil')}"))
    for _template, _, params in _params(engine).values():  # nothing about Samir but his id
        assert SAMIR_PHONE not in params
        assert SAMIR_EMAIL not in params
        assert "Samir" not in params
        assert "Sportplatz" not in params
    phone.inbox["samir"] = phone.inbox["samir"][:1]  # what the answer to the tap said is not the point
    _deliver(engine, phone, clock)

    # Samir's offer message becomes his confirmation, with the place and the note (its params were
    # cleared long before: the edit goes by the delivery's ref). The others' offers say it is taken.
    confirmed = phone.inbox["samir"][0]
    assert confirmed.splitlines()[1:] == [
        f"Sie haben den Einsatz: {PLACE}.",
        f"Notiz: {NOTE}",
        "/jobs zeigt alle Ihre Einsätze.",
    ]
    taken = DE.gettext("Someone else has already taken this job. Thank you!")
    for user in ("amira", "rojin"):
        assert [text.splitlines()[1:] for text in phone.inbox[user]] == [[taken]]
        assert user not in phone.files
    jobs = _say(talk, "samir", "/jobs")
    assert f"   {PLACE}" in jobs.splitlines()
    assert f"   Notiz: {NOTE}" in jobs.splitlines()
    assert "Sportplatz" not in _say(talk, "amira", "/jobs")

    # The school's confirmation names Samir and how to reach him, read from his record at delivery.
    booked = [text for text in phone.inbox["school"] if "Samir" in text]
    assert [text.splitlines()[1:] for text in booked] == [
        ["Gebucht: Samir Khalil übernimmt den Einsatz.", f"Kontakt: {SAMIR_PHONE}, {SAMIR_EMAIL}"]
    ]
    for _template, _, params in _params(engine).values():
        assert params == "{}"  # every message went out: none keeps what it said

    # The calendar files: the interpreter's with where, the school, the mode and the note; the
    # school's with the mode and who comes, as the confirmation shows them.
    with UnitOfWork(engine) as uow:
        school = uow.session.exec(select(School).join(Request, col(Request.school_id) == School.id)).one()
        school_name = school.name
    (samir_file,) = phone.files["samir"]
    (school_file,) = phone.files["school"]
    mine, theirs = _event(samir_file), _event(school_file)
    assert str(mine["summary"]) == str(theirs["summary"]) == "Dolmetscheinsatz: Arabisch (#1)"
    assert str(mine["location"]) == PLACE
    assert str(mine["description"]).splitlines() == [
        f"Schule: {school_name}",
        "Einsatzart: vor Ort",
        f"Notiz: {NOTE}",
    ]
    assert "location" not in theirs
    assert str(theirs["description"]).splitlines() == [
        "Einsatzart: vor Ort",
        "Dolmetscher/in: Samir Khalil",
        f"Kontakt: {SAMIR_PHONE}, {SAMIR_EMAIL}",
    ]
    clock.now += timedelta(hours=1)
    assert _deliver(engine, phone, clock) == 0  # nothing is rendered twice


def test_a_phone_session_puts_the_schools_number_in_the_interpreters_calendar_only(engine: Engine) -> None:
    clock = Clock(NOW)
    talk = _join(engine, clock)
    for line in ("/request", "ar", "telefonisch", "10.3. 10:00", "60", "05191 123456", "1", "1", "1"):
        _say(talk, "school", line)
    _say(talk, "school", "1")  # send
    phone = FilePhone()
    _deliver(engine, phone, clock)
    assert all("05191" not in text for user in ("amira", "samir", "rojin") for text in phone.inbox[user])
    talk.handle(Incoming("test", "amira", "amira", choice=f"of:a:{_offer_of(engine, 'Amira Haddad')}"))
    _deliver(engine, phone, clock)
    (mine,) = (_event(data) for data in phone.files["amira"])
    (theirs,) = (_event(data) for data in phone.files["school"])
    assert str(mine["location"]) == "telefonisch: 05191 123456"
    assert "location" not in theirs
    assert "05191" not in str(theirs["description"])


# --- params cleared, old rows ---------------------------------------------------------------------


def test_params_are_cleared_when_sent_or_given_up_and_kept_while_a_retry_waits(engine: Engine) -> None:
    clock = Clock(NOW)
    talk = _join(engine, clock)
    _request(talk)
    phone = Phone(broken={"amira": Undeliverable("blocked"), "samir": RuntimeError("network down")})
    _deliver(engine, phone, clock)
    with UnitOfWork(engine) as uow:
        offers = {
            name: json.loads(message.params)
            for name, message in uow.session.exec(
                select(Interpreter.name, OutboxMessage)
                .join(OutboxMessage, col(OutboxMessage.recipient_id) == Interpreter.id)
                .where(OutboxMessage.template == "offer.new")
            ).all()
        }
        waiting = uow.session.exec(
            select(Delivery.due_at).where(col(Delivery.sent_at).is_(None), col(Delivery.failed_at).is_(None))
        ).all()
    assert offers["Amira Haddad"] == {}  # given up: never tried again, so nothing to keep
    assert offers["Rojin Ahmed"] == {}  # sent
    assert set(offers["Samir Khalil"]) == {"expires_at", "offer_id", "request_id"}  # its retry renders it
    phone.broken = {}
    clock.now = max(waiting) + timedelta(seconds=1)
    _deliver(engine, phone, clock)
    assert len(phone.inbox["samir"]) == 1
    assert phone.inbox["samir"][0].splitlines()[1].startswith("Neuer Einsatz: ")
    assert [params for _, _, params in _params(engine).values()] == ["{}"] * len(_params(engine))
    told = DE.render(  # the office's notice of the blocked chat names Amira, from her member id
        "A notification did not reach {name}: {cause} Please get in touch with them another way.",
        {"name": "Amira Haddad", "cause": DE.gettext("the bot was blocked or the chat no longer exists.")},
    )
    assert phone.inbox["office"] == [told]


def _old_row(engine: Engine, recipient_type: str, recipient_id: int, template: str, params: object) -> None:
    """An outbox row as the code before wrote it: names, contact data and reasons among its params."""
    with UnitOfWork(engine) as uow:
        member = uow.session.exec(select(Member).where(Member.role == "school")).one()
        uow.session.add(
            OutboxMessage(
                district_id=member.district_id,
                recipient_type=recipient_type,
                recipient_id=recipient_id,
                template=template,
                params=json.dumps(params),
                created_at=NOW,
            )
        )
        uow.commit()


def test_rows_written_before_still_deliver_from_the_database_or_with_a_neutral_word(engine: Engine) -> None:
    clock = Clock(NOW)
    talk = _join(engine, clock)
    _samir_reachable(engine)
    _request(talk)
    talk.handle(Incoming("test", "samir", "samir", choice=f"of:a:{_offer_of(engine, 'Samir Khalil')}"))
    phone = Phone()
    _deliver(engine, phone, clock)
    with UnitOfWork(engine) as uow:
        request = uow.session.exec(select(Request)).one()
        school_id, district_id = request.school_id, request.district_id
    phone.inbox.clear()
    old_booked = {
        "request_id": 1,
        "calendar_sequence": None,
        "interpreter_name": "Alter Name",
        "interpreter_phone": "+49 1111",
        "interpreter_email": "alt@example.org",
    }
    _old_row(engine, "school", school_id, "request.booked", old_booked)
    _old_row(engine, "school", school_id, "request.rejected", {"request_id": 1, "reason": "Altes Budget"})
    old_hand_back = {"request_id": 1, "interpreter_name": "Alter Name", "reason": "Alt", "outcome": "offered"}
    _old_row(engine, "coordinators", district_id, "request.handed_back", old_hand_back)
    _old_row(engine, "coordinators", district_id, "closeout.disputed", {"request_id": 1, "reason": "Alt"})
    assert _deliver(engine, phone, clock) == 4
    line = phone.inbox["school"][0].splitlines()[0]
    gone = DE.gettext("no reason kept")
    assert gone == "kein Grund gespeichert"
    rejected = "The coordination office could not approve this request. Their reason: “{reason}”"
    assert [text.splitlines()[1:] for text in phone.inbox["school"]] == [
        ["Gebucht: Samir Khalil übernimmt den Einsatz.", f"Kontakt: {SAMIR_PHONE}, {SAMIR_EMAIL}"],  # as now
        [DE.render(rejected, {"reason": gone})],
    ]
    handed_back = "{interpreter_name} handed this job back: “{reason}”. It is offered to other interpreters."
    disputed = DE.render("The school disputes the report: “{reason}”", {"reason": gone})
    assert phone.inbox["office"] == [
        line + "\n" + DE.render(handed_back, {"interpreter_name": "Jemand aus dem Pool", "reason": gone}),
        line + "\n" + disputed + "\n\n1. " + DE.gettext("Correct"),
    ]
    with UnitOfWork(engine) as uow:
        deliveries = uow.session.exec(select(Delivery).where(col(Delivery.outbox_id).is_not(None))).all()
    assert all(d.sent_at is not None and d.failed_at is None for d in deliveries)
    for _template, _, params in _params(engine).values():
        assert params == "{}"
