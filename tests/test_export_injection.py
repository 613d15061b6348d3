"""Exports neutralise formula injection: names from an import never become live spreadsheet formulas."""

import csv
import io
from datetime import UTC, date, datetime

import pytest
from openpyxl import load_workbook

from bot.billing_export import billing_csv, billing_xlsx
from bot.evaluation_export import evaluation_csv
from bot.i18n import Translator
from bot.spreadsheet import as_text
from services.billing_report import BillingLine, InterpreterBilling
from services.evaluation import Evaluation, Group, Period, Worker

HOSTILE = ["=cmd|' /C calc'!A0", "+1", "@SUM(A1)", "-2+3", "\t=1+1", "\r=1+1"]


@pytest.mark.parametrize("text", HOSTILE)
def test_a_formula_start_gets_a_leading_quote(text: str) -> None:
    assert as_text(text) == "'" + text


@pytest.mark.parametrize("text", ["Amira Haddad", "", "1+1", "a=b", " =1", "'=1", "Ärztin"])
def test_other_text_stays_as_it_is(text: str) -> None:
    assert as_text(text) == text


def _billing() -> list[InterpreterBilling]:
    """One interpreter per hostile name, each at a school with a hostile name; one amount negative."""
    return [
        InterpreterBilling(
            n,
            name,
            (
                BillingLine(
                    datetime(2026, 5, 5, 8, tzinfo=UTC),
                    n,
                    school,
                    "phone",
                    30,
                    30,
                    0,
                    -250 if n == 1 else 0,
                    1200,
                ),
            ),
        )
        for n, (name, school) in enumerate(zip(HOSTILE, reversed(HOSTILE), strict=True), start=1)
    ]


@pytest.mark.parametrize("locale", ["de", "en"])
def test_the_billing_csv_writes_hostile_names_as_text_and_numbers_as_numbers(locale: str) -> None:
    text = billing_csv(Translator(locale), _billing())
    rows = list(csv.reader(io.StringIO(text), delimiter=";" if locale == "de" else ","))
    sessions = rows[1:-1:2]
    assert [(row[0], row[3]) for row in sessions] == [
        ("'" + name, "'" + school) for name, school in zip(HOSTILE, reversed(HOSTILE), strict=True)
    ]
    assert sessions[0][8] == ("-2,50" if locale == "de" else "-2.50")  # a negative amount, not text
    cells = [cell for row in rows for cell in row]
    assert [cell for cell in cells if cell.startswith(("=", "+", "-", "@", "\t", "\r"))] == [
        "-2,50" if locale == "de" else "-2.50",
        "-2,50" if locale == "de" else "-2.50",  # the interpreter's total
        "-2,50" if locale == "de" else "-2.50",  # the grand total
    ]


def test_the_billing_xlsx_has_no_formula_cells() -> None:
    data = billing_xlsx(Translator("de"), _billing(), date(2026, 5, 1))
    sheet = load_workbook(io.BytesIO(data)).active
    assert sheet is not None
    cells = [cell for row in sheet.iter_rows() for cell in row]
    assert [cell.coordinate for cell in cells if cell.data_type == "f"] == []
    sessions = list(sheet.iter_rows(min_row=2, max_row=sheet.max_row - 1))[::2]
    hostile = [cell for row in sessions for cell in (row[0], row[3])]
    # XML reads a stored CR back as LF; either way the cell is text.
    assert [str(cell.value).replace("\n", "\r") for cell in hostile] == [
        text for pair in zip(HOSTILE, reversed(HOSTILE), strict=True) for text in pair
    ]
    assert [(cell.data_type, cell.quotePrefix) for cell in hostile] == [("s", True)] * 12
    assert sheet["A2"].value == "=cmd|' /C calc'!A0"  # the text itself, unchanged
    assert (sheet["I2"].value, sheet["I2"].data_type) == (-2.5, "n")
    assert [sheet["B2"].quotePrefix, sheet["I2"].quotePrefix] == [False, False]


def test_the_evaluation_csv_writes_hostile_names_as_text() -> None:
    schools = [Group(name, requests=1, filled=1) for name in HOSTILE]
    workers = [Worker(name, sessions=1, minutes=60, cost_cents=2400) for name in HOSTILE]
    outcomes = dict.fromkeys(("filled", "not_covered", "not_filled", "rejected", "cancelled", "open"), 0)
    evaluation = Evaluation(
        Period(date(2026, 4, 1), date(2026, 6, 30)),
        outcomes,
        Group("total", requests=6, filled=6),
        None,
        None,
        [],
        [],
        schools,
        [],
        workers,
    )
    rows = list(csv.reader(io.StringIO(evaluation_csv(Translator("de"), evaluation)), delimiter=";"))
    assert [row[1] for row in rows if row[0] == "Schule"] == ["'" + name for name in HOSTILE]
    assert [row[1] for row in rows if row[0] == "Dolmetscher/in"] == ["'" + name for name in HOSTILE]
    cells = [cell for row in rows for cell in row]
    assert [cell for cell in cells if cell.startswith(("=", "+", "-", "@", "\t", "\r"))] == []
