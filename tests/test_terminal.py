"""The terminal chat, driven line by line: the same booking as over Telegram, on the demo data."""

import io
from datetime import timedelta
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import select

from bot.i18n import Translator
from bot.terminal import TerminalChat
from db.models import Budget, Request
from db.uow import UnitOfWork
from tests.chat_world import NOW, START, START_TEXT, Clock

DE = Translator("de")


class Terminal:
    def __init__(self, engine: Engine, files: Path) -> None:
        self.out = io.StringIO()
        self.clock = Clock(NOW)
        self.chat = TerminalChat(engine, out=self.out, clock=self.clock, files=files)

    def say(self, line: str) -> str:
        """Type one line; returns everything printed in answer (replies and notifications)."""
        start = self.out.tell()
        self.chat.say(line)
        return self.out.getvalue()[start:]


def test_the_booking_passes_in_the_terminal_chat(engine: Engine, tmp_path: Path) -> None:
    term = Terminal(engine, tmp_path)
    for line in ("/request", "arabisch", "1", START_TEXT, "60", "1", "1", "1", "1"):
        shown = term.say(line)
    assert DE.money(3688) in shown  # the estimate: the dearest of three offers
    sent = term.say("1")
    offered_to = [name for name in ("Amira Haddad", "Samir Khalil", "Rojin Ahmed") if f"→ an {name}:" in sent]
    assert offered_to == ["Amira Haddad", "Samir Khalil", "Rojin Ahmed"]
    assert "→ an Grundschule Soltau-Mitte:" in sent

    assert term.say("/as samir") == DE.render("You are now {name}.", {"name": "Samir Khalil"}) + "\n"
    accepted = term.say("1")  # the offer's first option: accept
    assert "→ an Amira Haddad (geänderte Nachricht):" in accepted
    assert "→ an Rojin Ahmed (geänderte Nachricht):" in accepted
    assert (
        DE.render(
            "Booked: {interpreter_name} will come.{contact}",
            {"interpreter_name": "Samir Khalil", "contact": ""},
        )
        in accepted
    )

    term.say("/as rojin")
    late = term.say("1")
    assert DE.gettext("Someone else has already taken this job.") in late

    term.clock.now = START + timedelta(minutes=80)
    term.say("/as samir")
    for line in ("/report", "75", "18", "0"):
        shown = term.say(line)
    assert DE.money(4140) in shown
    reported = term.say("1")
    assert "→ an Grundschule Soltau-Mitte:" in reported

    term.say("/as grundschule")
    confirmed = term.say("1")  # the notification's first option: confirm
    assert DE.render("Thank you, the report for #{request_id} is confirmed.", {"request_id": 1}) in confirmed
    with UnitOfWork(engine) as uow:
        budget = uow.session.exec(select(Budget)).one()
        request = uow.session.exec(select(Request)).one()
    assert (budget.charged_cents, budget.reserved_cents, request.state) == (4140, 0, "settled")

    term.say("/as koordinierung")
    shown = term.say("/budget")
    assert DE.money(4140) in shown
    assert DE.money(495860) in shown
    chart = tmp_path / "budget-2026.png"
    assert shown.rstrip().endswith(DE.render("[file: {file}]", {"file": str(chart)}))
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "dolmetscheinsatz-1.ics").read_bytes().startswith(b"BEGIN:VCALENDAR")

    term.say("/as samir")
    earned = term.say("/earnings")
    assert (
        DE.render(
            "Paid for sessions in {year}: {paid_cents}. The tax-free volunteer allowance is "
            "{allowance_cents}; {left_cents} of it is left.",
            {"year": 2026, "paid_cents": 4140, "allowance_cents": 84000, "left_cents": 79860},
        )
        in earned
    )
