"""No input crashes a step: every step of every role's dialogs, fuzzed on SQLite and PostgreSQL.

The conversation is walked into each step once (a `Spot`); then hypothesis sends many inputs from
that same step, the dialog restored before each one: any Unicode, control characters, NUL, lone
surrogates, 100,000 characters, commands with odd arguments and forged buttons of any shape and size.
Every input gets a reply (never an exception), and an input that is refused changes nothing.
"""

import json
import time
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel, col, delete, select

from bot.conversation.answers import parse_count, parse_day, parse_minutes, parse_when, resolve, whole_number
from bot.conversation.router import Conversation, Handled
from bot.i18n import Translator, echo
from bot.messages import Incoming, clean_input
from db.models import Closeout, DialogState, Member, Offer, Request
from db.uow import UnitOfWork
from services import identities
from services.errors import InvalidInput
from services.units import parse_duration, parse_money, parse_percent
from tests.chat_world import NOW, make_demo

DE = Translator("de")
USERS = ("school", "amira", "samir", "office")
EXAMPLES_PER_SPOT = 20
# Tables a refused input may touch: the event's id and the dialog (asked again, so the same).
BOOKKEEPING = {"processed_event", "dialog_state"}


@pytest.mark.parametrize("typed", ["²", "³", "①", "٣", "𝟙", "⁹", "½", "-1", "+1", "1.0", "", "9" * 19])
def test_only_ascii_digits_are_a_number(typed: str) -> None:
    assert whole_number(typed, most=10**18) is None
    assert resolve(typed, None, {"a": "A", "b": "B"}).key is None


def test_a_number_is_ascii_digits_up_to_the_most() -> None:
    assert [whole_number(t, most=100) for t in ("0", "007", "100", "101")] == [0, 7, 100, None]
    assert whole_number(str(2**63), most=2**31 - 1) is None
    assert whole_number(" 1", most=9) is None  # callers strip what people type
    assert resolve("2", None, {"a": "A", "b": "B"}).key == "b"


@pytest.mark.parametrize("typed", ["²", "1²", "①0", "١٢", "１２"])
def test_unicode_digits_are_refused_with_a_sentence(typed: str) -> None:
    for parse in (parse_minutes, lambda t: parse_count(t, most=1000), lambda t: parse_day(t + ".3.", NOW)):
        with pytest.raises(InvalidInput):
            parse(typed)
    with pytest.raises(InvalidInput):
        parse_when(f"{typed}.3. 10:00", NOW)


@pytest.mark.parametrize(
    "typed", ["1.1.0001 10:00", "31.12.9999 23:59", "9999-12-31 23:59", "1.1.1999 10:00"]
)
def test_dates_beyond_the_years_a_budget_may_have_are_refused(typed: str) -> None:
    with pytest.raises(InvalidInput):
        parse_when(typed, NOW)
    with pytest.raises(InvalidInput):
        parse_day(typed.split()[0], NOW)


@pytest.mark.parametrize("typed", ["²", "1²", "١٢", "9" * 5000, "-1"])
def test_the_coordinators_numbers_take_ascii_digits_only(typed: str) -> None:
    for parse in (parse_percent, parse_money, lambda t: parse_duration(t + "m")):
        with pytest.raises(InvalidInput):
            parse(typed)


def test_control_characters_are_dropped_at_the_entry_but_newlines_and_tabs_stay() -> None:
    assert clean_input("a\x00b\r\nc\td\x1b[0m\x7f\x85\ud800e") == "ab\nc\td[0me"
    event = Incoming("test", "u", "c", text="Grund\x00 mit NUL", choice="rq:cx:1\x00")
    assert (event.text, event.choice) == ("Grund mit NUL", "rq:cx:1")


def test_an_echo_quotes_at_most_100_characters_on_one_line() -> None:
    assert echo("kurz") == "kurz"
    assert echo("a\n b") == "a b"
    assert echo("x" * 100_000) == "x" * 99 + "…"
    with pytest.raises(InvalidInput) as caught:
        parse_minutes("1" * 100_000)
    assert DE.error(caught.value) == DE.render(
        "“{value}” is not a duration; write the minutes, e.g. 75, or 1:15.", {"value": "1" * 99 + "…"}
    )


class FixedClock:
    """Now, as the test sets it, standing still (so a restored step sees the same moment)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Watched(Conversation):
    """The real conversation, noting whether the last event was refused (a domain error, rolled back)."""

    refused = False

    def _handle_error(self, *args: Any, **kwargs: Any) -> Handled:
        self.refused = True
        return super()._handle_error(*args, **kwargs)


@dataclass(frozen=True)
class Spot:
    """A step of a dialog (or no dialog) as one user stood in it: restored before every fuzzed input."""

    name: str
    user: str
    at: datetime
    flow: str
    step: str
    draft: str
    choices: str

    @property
    def offered(self) -> list[str]:
        return [key for key, _ in json.loads(self.choices)]


def _member_id(engine: Engine, user: str) -> int:
    with UnitOfWork(engine) as uow:
        member = identities.member_of(uow.session, "test", user)
        assert member is not None
        assert member.id is not None
        return member.id


def _dialog_of(engine: Engine, member_id: int) -> tuple[str, str, str, str]:
    with UnitOfWork(engine) as uow:
        row = uow.session.exec(select(DialogState).where(DialogState.member_id == member_id)).first()
        if row is None:
            return "", "", "{}", "[]"
        return row.flow, row.step, row.draft, row.choices


def _restore(engine: Engine, member_id: int, spot: Spot) -> None:
    with UnitOfWork(engine) as uow:
        uow.session.exec(delete(DialogState).where(col(DialogState.member_id) == member_id))
        if spot.flow or spot.choices != "[]":
            row = DialogState(
                member_id=member_id,
                flow=spot.flow,
                step=spot.step,
                draft=spot.draft,
                choices=spot.choices,
                updated_at=spot.at,
            )
            uow.session.add(row)
        uow.commit()


def _fingerprint(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table but the bookkeeping, in primary-key order."""
    tables = [t for t in SQLModel.metadata.sorted_tables if t.name not in BOOKKEEPING]
    with engine.connect() as connection:
        return {
            t.name: [
                tuple(r)
                for r in connection.exec_driver_sql(
                    f"SELECT * FROM {t.name} ORDER BY {', '.join(c.name for c in t.primary_key.columns)}"
                )
            ]
            for t in tables
        }


def _outbox_count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM outbox_message")).scalar_one())


class World:
    """The demo district walked into every step of every dialog; `spots` are those steps."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.clock = FixedClock(NOW)
        self.talk = Watched(engine, self.clock)
        codes = make_demo(engine, NOW)
        for user, code in zip(
            USERS, (codes.school, codes.amira, codes.samir, codes.coordinator), strict=True
        ):
            self.say(user, f"/start {code}")
        self.members = {user: _member_id(engine, user) for user in USERS}
        self.spots: list[Spot] = []

    def say(self, user: str, line: str = "", choice: str | None = None) -> str:
        replies = self.talk.handle(Incoming("test", user, user, text=line, choice=choice))
        return "\n".join(r.text for r in replies)

    def mark(self, name: str, user: str) -> None:
        flow, step, draft, choices = _dialog_of(self.engine, self.members[user])
        if name.endswith("idle"):
            assert flow == "", name
        else:
            assert f"{flow}/{step}" == name, (name, flow, step)
        self.spots.append(Spot(f"{name}", user, self.clock.now, flow, step, draft, choices))

    def walk(self) -> None:
        for user, role in (("school", "school"), ("amira", "interpreter"), ("office", "coordinator")):
            self.mark(f"{role}/idle", user)
        self.say("school", "/request")
        for typed, step in (
            ("ar", "language"),
            ("vor Ort", "mode"),
            ("10.3. 10:00", "when"),
            ("60", "duration"),
            ("1", "place"),
            ("1", "topic"),
            ("1", "gender"),
            ("1", "note"),
        ):
            self.mark(f"request/{step}", "school")
            self.say("school", typed)
        self.mark("request/summary", "school")
        self.say("school", "2")
        self.mark("request/field", "school")
        self.say("school", "/cancel")
        for start in ("10.3. 10:00", "11.3. 10:00", "20.3. 10:00"):
            for typed in ("/request", "ar", "vor Ort", start, "60", "1", "1", "1", "1", "1"):
                self.say("school", typed)
        with UnitOfWork(self.engine) as uow:
            ids = [r.id for r in uow.session.exec(select(Request).order_by(col(Request.id)))]
            amira = uow.session.get(Member, self.members["amira"])
            assert amira is not None
            offers = uow.session.exec(
                select(Offer).where(Offer.interpreter_id == amira.interpreter_id).order_by(col(Offer.id))
            ).all()
        assert len(ids) == 3
        assert len(offers) == 3
        self.requests = ids
        for offer in offers[:2]:
            self.say("amira", choice=f"of:a:{offer.id}")
        self.say("school", choice=f"rq:cx:{ids[2]}")
        self.mark("cancel/confirm", "school")
        self.say("school", "/cancel")
        self.say("amira", "/away")
        self.mark("away/from", "amira")
        self.say("amira", "9.4.")
        self.mark("away/until", "amira")
        self.say("amira", "/cancel")
        self.clock.now = NOW + timedelta(days=10)  # both booked jobs are over
        self.say("amira", "/report")
        self.mark("report/job", "amira")
        for typed, step in (("1", "minutes"), ("75", "km"), ("18", "expenses"), ("0", "check")):
            self.say("amira", typed)
            self.mark(f"report/{step}", "amira")
        self.say("amira", "1")
        self.say("school", choice=f"co:no:{ids[0]}")
        self.mark("dispute/reason", "school")
        self.say("school", "Sie war nur 60 Minuten da.")
        self.say("office", choice=f"co:fx:{ids[0]}")
        for typed, step in (("60", "minutes"), ("18", "km"), ("0", "expenses")):
            self.mark(f"correct/{step}", "office")
            self.say("office", typed)
        self.mark("correct/reason", "office")
        self.say("office", "Schule und Dolmetscherin einig")
        self.mark("correct/confirm", "office")
        self.say("office", "/cancel")


PREFIXES = ["rq:cx", "co:ok", "co:no", "of:a", "of:d", "bk:gb", "rp:go", "rq:ap", "rq:rj", "rq:rf", "co:fx"]
PREFIXES += ["ls:rq", "ls:bk", "ls:jb", "ls:pl", "ls:co"]  # the pages of the lists
NASTY = [
    "²",
    "³",
    "①",
    "٣",
    "١٢",
    "𝟙𝟚",
    "⁹⁰",
    "½",
    "\x00",
    "a\x00b",
    "ar\x00",
    "60\x00",
    "\x1b[31m",
    "\ud800",
    "\u202e",
    "\t\n\r",
    "1" * 100_000,
    "x" * 100_000,
    "9" * 30,
    "99999999999999999999",
    "31.12.9999 23:59",
    "1.1.0001 00:00",
    "31.12.9999",
    "1.1.0001",
    "9999-12-31 23:59",
    "10.3.²⁰²⁶ 10:00",
    "١٠.٣. ١٠:٠٠",
    "99:99",
    "1,99999 h",
    "1000",
    "1001",
    "0",
    "-1",
    "12.90",
    "9999999999.99",
    "/evaluation ²",
    "/evaluation 9999",
    "/evaluation 0001-01-01 9999-12-31",
    "/billing ²⁰²⁶-⁰⁵",
    "/billing 9999-12",
    "/billing " + "9" * 50,
    "/start " + "x" * 1000,
    "/request\x00",
    "/" + "a" * 5000,
    "!pool",
    "abbrechen\x00",
]
COMMANDS = [
    "/request",
    "/bookings",
    "/jobs",
    "/report",
    "/away",
    "/earnings",
    "/budget",
    "/requests",
    "/pool",
    "/closeouts",
    "/billing",
    "/evaluation",
    "/language",
    "/connect",
    "/notify",
    "/help",
    "/cancel",
    "/start",
]
GOOD = ["1", "2", "3", "ar", "vor Ort", "10.3. 10:00", "60", "75", "18", "0", "Ein Grund.", "9.4.", "12.4."]
HUGE_IDS = [0, 1, 2, 3, 2**31 - 1, 2**31, 2**63 - 1, 2**63, 2**64, 10**100]


def _texts() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(NASTY),
        st.text(max_size=30),
        st.text(st.characters(codec="utf-8"), max_size=10),
        st.builds(
            lambda piece, times: piece * times, st.text(min_size=1, max_size=4), st.integers(1, 30_000)
        ),
        st.builds(lambda good, tail: good + tail, st.sampled_from(GOOD), st.text(max_size=5)),
        st.builds(lambda cmd, arg: f"{cmd} {arg}", st.sampled_from(COMMANDS), st.text(max_size=20)),
    )


def _choices(offered: list[str]) -> st.SearchStrategy[str]:
    ids = st.one_of(st.sampled_from(HUGE_IDS).map(str), st.integers(-5, 2**70).map(str), st.text(max_size=12))
    forged = st.builds(lambda prefix, raw: f"{prefix}:{raw}", st.sampled_from([*PREFIXES, "x", ""]), ids)
    options = [
        forged,
        st.text(max_size=80),
        st.sampled_from(["²", "①", "\x00", ":", "::", "1:²", "a" * 5000]),
    ]
    if offered:
        options.append(st.sampled_from(offered))
        options.append(
            st.builds(lambda key, tail: key + tail, st.sampled_from(offered), st.sampled_from(["\x00", "²"]))
        )
    return st.one_of(*options)


def _events(offered: list[str]) -> st.SearchStrategy[tuple[str, str | None]]:
    return st.one_of(
        st.tuples(_texts(), st.none()),
        st.tuples(st.sampled_from(["", "x", "²"]), _choices(offered)),
    )


@pytest.fixture
def world(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> World:
    # The files are drawn after the transaction and have nothing to do with what was typed; they take
    # a second each, so the fuzzing replaces them with stubs.
    for name in (
        "budget_chart.budget_chart_png",
        "evaluation_export.evaluation_pdf",
        "billing_export.billing_xlsx",
    ):
        monkeypatch.setattr(f"bot.{name}", lambda *_args: b"stub")
    if engine.dialect.name == "sqlite":
        # No fsync per commit (as the PostgreSQL cluster of the tests runs): a crash is not the subject.
        event.listen(
            engine, "connect", lambda connection, _record: connection.execute("PRAGMA synchronous=OFF")
        )
    built = World(engine)
    built.walk()
    return built


SPOT_NAMES = [
    "school/idle",
    "interpreter/idle",
    "coordinator/idle",
    "request/language",
    "request/mode",
    "request/when",
    "request/duration",
    "request/place",
    "request/topic",
    "request/gender",
    "request/note",
    "request/summary",
    "request/field",
    "cancel/confirm",
    "away/from",
    "away/until",
    "report/job",
    "report/minutes",
    "report/km",
    "report/expenses",
    "report/check",
    "dispute/reason",
    "correct/minutes",
    "correct/km",
    "correct/expenses",
    "correct/reason",
    "correct/confirm",
]


def _fuzz(world: World, spot: Spot) -> int:
    """Hypothesis's inputs at one spot; returns how many were tried."""
    member_id = world.members[spot.user]
    sorry = DE.gettext("Sorry, something went wrong on our side. Please try again in a moment.")
    state: dict[str, Any] = {"dirty": True, "print": None, "tried": 0}

    @settings(
        max_examples=EXAMPLES_PER_SPOT,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @seed(zlib.crc32(spot.name.encode()))  # the same inputs on every run, other ones at every step
    @given(event=_events(spot.offered))
    def fuzz(event: tuple[str, str | None]) -> None:
        state["tried"] += 1
        typed, choice = event
        if state["dirty"]:
            world.clock.now = spot.at
            _restore(world.engine, member_id, spot)
            state["print"] = _fingerprint(world.engine)
            state["dirty"] = False
        world.talk.refused = False
        replies = world.talk.handle(Incoming("test", spot.user, spot.user, text=typed, choice=choice))
        texts = [r.text for r in replies]
        # No direct reply only where a notification answers (a request sent, an offer accepted).
        notified = _outbox_count(world.engine) > len(state["print"]["outbox_message"])
        assert texts or notified, (spot.name, event)
        assert all(t.strip() and t != sorry for t in texts), (spot.name, event)
        if not world.talk.refused:
            state["dirty"] = True
            return
        assert _fingerprint(world.engine) == state["print"], (spot.name, event)
        flow, step, draft, _ = _dialog_of(world.engine, member_id)
        assert (flow, step, draft) in ((spot.flow, spot.step, spot.draft), ("", "", "{}")), (spot.name, event)
        state["dirty"] = flow != spot.flow

    fuzz()
    return int(state["tried"])


def test_every_step_of_every_role_answers_any_input_and_a_refusal_changes_nothing(world: World) -> None:
    assert [s.name for s in world.spots] == SPOT_NAMES
    started = time.monotonic()
    tried = sum(_fuzz(world, spot) for spot in world.spots)
    print(f"{tried} fuzzed inputs over {len(world.spots)} steps in {time.monotonic() - started:.1f} s")


def test_a_reason_keeps_its_text_without_nul_and_100000_characters_get_a_sentence(world: World) -> None:
    spot = next(s for s in world.spots if s.name == "correct/reason")
    world.clock.now = spot.at
    _restore(world.engine, world.members["office"], spot)
    before = _fingerprint(world.engine)
    too_long = world.say("office", "Schule und Dolmetscherin einig. " * 4000)
    assert too_long.splitlines()[0] == DE.gettext("Please give the reason in 3 to 300 characters.")
    assert _fingerprint(world.engine) == before
    world.say("office", "Nur\x00 60\x1b Minuten\r\nda.\x7f")  # before and after, to confirm
    done = world.say("office", "1")
    assert done == DE.gettext("Corrected.") + " " + DE.render(
        "The charge falls by {change_cents}.", {"change_cents": 1200}
    )
    with UnitOfWork(world.engine) as uow:
        closeout = uow.session.exec(select(Closeout)).one()
    assert closeout.correction_reason == "Nur 60 Minuten\nda."
