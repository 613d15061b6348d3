"""The monthly billing: a known month of sessions, its exact figures, and its CSV and XLSX files."""

import io
import json
import subprocess
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy.engine import Engine

from bot.billing_export import billing_csv, billing_xlsx
from bot.i18n import Translator
from db.uow import UnitOfWork
from services.billing_report import monthly_billing, parse_month
from services.clock import BERLIN as BERLIN  # coordinator.py takes it from here
from services.closeout import confirm
from services.errors import InvalidInput
from services.requests import cancel
from services.vocabulary import Mode
from tests.builders import ACTOR, World, book, build_world, report_for, run_report, submit

ROOT = Path(__file__).resolve().parent.parent
MakeUow = Callable[[], UnitOfWork]


def at(day: int, hour: int, minute: int = 0, month: int = 5) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=BERLIN)


def settle(world: World, request_id: int, name: str, minutes: int, km: int, expenses_cents: int) -> None:
    report_for(world, request_id, name, minutes, at(28, 12, month=6), km=km, expenses_cents=expenses_cents)
    with world.make_uow() as u:
        confirm(
            u.session,
            district_id=world.district_id,
            request_id=request_id,
            actor=ACTOR,
            now=at(28, 13, month=6),
        )
        u.commit()


@pytest.fixture
def may(uow: MakeUow) -> World:
    """May 2026: Amira twice (one of them just after midnight on the 1st), Samir's late cancellation;
    April and June sessions and an unconfirmed one around it."""
    world = build_world(uow)
    world.interpreter("Amira Haddad", km_north=1)
    world.interpreter("Samir Nasser", km_north=2)
    early = submit(world, mode=Mode.PHONE, starts_at=at(1, 0, 30), minutes=40)  # 30 April, 22:30 UTC
    book(world, early, "Amira Haddad")
    settle(world, early, "Amira Haddad", 40, 0, 0)
    visit = submit(world, starts_at=at(5, 10))
    book(world, visit, "Amira Haddad")
    settle(world, visit, "Amira Haddad", 75, 18, 350)
    late = submit(world, starts_at=at(12, 9))
    book(world, late, "Samir Nasser")
    with world.make_uow() as u:  # cancelled two hours before: the in-person minimum
        cancel(u.session, district_id=world.district_id, request_id=late, actor=ACTOR, now=at(12, 7))
        u.commit()
    for outside in (at(30, 23, month=4), at(1, 9, month=6)):
        other = submit(world, mode=Mode.PHONE, starts_at=outside)
        book(world, other, "Samir Nasser")
        settle(world, other, "Samir Nasser", 30, 0, 0)
    unconfirmed = submit(world, mode=Mode.VIDEO, starts_at=at(20, 11))
    book(world, unconfirmed, "Samir Nasser")
    report_for(world, unconfirmed, "Samir Nasser", 30, at(20, 12))
    return world


def test_the_month_holds_exactly_the_paid_sessions_with_their_figures(may: World) -> None:
    with may.make_uow() as u:
        billing = monthly_billing(u.session, may.district_id, parse_month("2026-05"))
    summary = [
        (b.name, [(line.starts_at.astimezone(BERLIN).strftime("%d.%m. %H:%M"), line.minutes,
                   line.billed_minutes, line.km, line.expenses_cents, line.amount_cents, line.cancelled)
                  for line in b.lines])
        for b in billing
    ]  # fmt: skip
    assert summary == [
        (
            "Amira Haddad",
            [
                ("01.05. 00:30", 40, 45, 0, 0, 1800, False),  # phone: 30, then per started 15
                ("05.05. 10:00", 75, 90, 18, 350, 3600 + 540 + 350, False),  # 18 km x 0.30, a ticket
            ],
        ),
        ("Samir Nasser", [("12.05. 09:00", 0, 60, 0, 0, 2400, True)]),
    ]
    assert [(b.minutes, b.billed_minutes, b.km, b.expenses_cents, b.amount_cents) for b in billing] == [
        (115, 135, 18, 350, 6290),
        (0, 60, 0, 0, 2400),
    ]


def test_the_csv_in_german_and_in_english(may: World) -> None:
    with may.make_uow() as u:
        billing = monthly_billing(u.session, may.district_id, parse_month("2026-05"))
    assert billing_csv(Translator("de"), billing).splitlines() == [
        "Dolmetscher/in;Datum;Anfrage;Schule;Einsatzart;Minuten;Abgerechnete Minuten;km;"
        "Sonstige Kosten;Betrag;Notiz",
        "Amira Haddad;2026-05-01 00:30;1;Grundschule Soltau;telefonisch;40;45;0;0,00;18,00;",
        "Amira Haddad;2026-05-05 10:00;2;Grundschule Soltau;vor Ort;75;90;18;3,50;44,90;",
        "Summe Amira Haddad;;;;;115;135;18;3,50;62,90;",
        "Samir Nasser;2026-05-12 09:00;3;Grundschule Soltau;vor Ort;0;60;0;0,00;24,00;kurzfristige Absage",
        "Summe Samir Nasser;;;;;0;60;0;0,00;24,00;",
        "Summe;;;;;115;195;18;3,50;86,90;",
    ]
    assert billing_csv(Translator("en"), billing).splitlines()[0::3] == [
        "Interpreter,Date,Request,School,Mode,Minutes,Billed minutes,km,Other costs,Amount,Note",
        "Total Amira Haddad,,,,,115,135,18,3.50,62.90,",
        "Total,,,,,115,195,18,3.50,86.90,",
    ]


def test_the_xlsx_has_numbers_a_date_and_the_totals(may: World) -> None:
    with may.make_uow() as u:
        billing = monthly_billing(u.session, may.district_id, parse_month("2026-05"))
    data = billing_xlsx(Translator("de"), billing, parse_month("2026-05"))
    sheet = load_workbook(io.BytesIO(data)).active
    assert sheet is not None
    assert sheet.title == "2026-05"
    rows = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert rows[0][9] == "Betrag"
    assert rows[2] == [
        "Amira Haddad", datetime(2026, 5, 5, 10, 0), 2, "Grundschule Soltau", "vor Ort",
        75, 90, 18, 3.5, 44.9, None,
    ]  # fmt: skip
    assert [row[0] for row in rows] == [
        "Dolmetscher/in", "Amira Haddad", "Amira Haddad", "Summe Amira Haddad",
        "Samir Nasser", "Summe Samir Nasser", "Summe",
    ]  # fmt: skip
    assert rows[-1][5:10] == [115, 195, 18, 3.5, 86.9]  # spreadsheet numbers, in euros
    amounts = [row[9] for row in rows[1:] if not str(row[0]).startswith("Summe")]
    assert round(sum(amounts), 2) == rows[-1][9]  # the total is the sum of the sessions
    assert sheet["J2"].number_format == '#,##0.00 "€"'
    assert sheet["A4"].font.bold


def test_a_month_is_asked_for_by_number_or_by_name() -> None:
    today = date(2026, 11, 30)
    may = date(2026, 5, 1)
    for typed in (" 2026-05 ", "05/2026", "5.2026", "Mai 2026", "may 2026", "Mai", "mai", "May"):
        assert parse_month(typed, today) == may, typed
    assert parse_month("November", today) == date(2026, 11, 1)  # the month under way
    assert parse_month("Dezember", today) == date(2025, 12, 1)  # not yet begun: last year's
    assert parse_month("Mrz 2027", today) == date(2027, 3, 1)
    assert parse_month("märz", today) == date(2026, 3, 1)
    for wrong in ("2026-13", "9999-12", "0001-01", "Mai 26", "Maibaum", "13/2026", ""):
        with pytest.raises(InvalidInput):
            parse_month(wrong)


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_the_command_line_writes_both_files(may: World, engine: Engine, tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return run_report(engine, tmp_path, "billing", *args)

    shown = run("--month", "2026-05")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[-1] == "Total,,,,,115,195,18,3.50,86.90,"
    written = run("--month", "2026-05", "--format", "xlsx")
    assert written.stdout == "Wrote billing-2026-05.xlsx.\n"
    sheet = load_workbook(tmp_path / "billing-2026-05.xlsx").active
    assert sheet is not None
    assert sheet.cell(row=sheet.max_row, column=10).value == 86.9
    wrong = run("--month", "Maybe")
    assert (wrong.returncode, wrong.stderr) == (
        2,
        "“Maybe” is not a month; write e.g. 2026-05 or November 2026.\n",
    )
    empty = run("--month", "2025-01")
    assert empty.stdout.splitlines()[1:] == ["Total,,,,,0,0,0,0.00,0.00,"]


def test_coordinators_are_warned_near_and_beyond_the_allowance_once_each(uow: MakeUow) -> None:
    from sqlmodel import col, select

    from db.models import OutboxMessage
    from services.policy import set_rule

    world = build_world(uow)
    world.interpreter("Amira Haddad", km_north=1)
    with world.make_uow() as u:
        set_rule(
            u.session, world.district_id, "volunteer_allowance", "45.00", actor=ACTOR, now=at(1, 8, month=3)
        )
        u.commit()
    # Phone sessions: 40 min bill 45 (18.00), 60 min 60 (24.00), 30 min 30 (12.00), 30 again.
    for day, minutes in ((4, 40), (6, 60), (8, 30), (11, 30)):
        request_id = submit(world, mode=Mode.PHONE, starts_at=at(day, 10), minutes=minutes)
        book(world, request_id, "Amira Haddad")
        settle(world, request_id, "Amira Haddad", minutes, 0, 0)
    with world.make_uow() as u:
        warnings = u.session.exec(
            select(OutboxMessage)
            .where(col(OutboxMessage.template).in_(["allowance.near", "allowance.exceeded"]))
            .order_by(col(OutboxMessage.id))
        ).all()
        sent = [(m.template, m.recipient_type, json.loads(m.params)) for m in warnings]
    amira = {"interpreter_id": world.interpreters["Amira Haddad"], "year": 2026, "allowance_cents": 4500}
    assert sent == [
        ("allowance.near", "coordinators", {**amira, "paid_cents": 4200}),  # 93 %
        ("allowance.exceeded", "coordinators", {**amira, "paid_cents": 5400}),  # and the fourth: no more
    ]
