"""The monthly billing as files: CSV (for any program) and XLSX (for the county's accounts office).

Headers and labels are in the reader's language. In CSV, German uses `;` and decimal commas (as
German spreadsheet programs expect), English `,` and points; times are `YYYY-MM-DD HH:MM`, Berlin.
In XLSX, numbers stay numbers (amounts in euros with a currency format), so sums can be checked.
Text that a spreadsheet would run as a formula (a name imported as `=cmd|...`) is written as text in
both (see `bot/spreadsheet.py`).
"""

import csv
import io
from datetime import date, datetime
from decimal import Decimal

from babel.numbers import format_decimal
from openpyxl import Workbook
from openpyxl.styles import Font

from bot.i18n import Translator
from bot.spreadsheet import as_text, formula_like
from services.billing_report import BillingLine, InterpreterBilling
from services.clock import BERLIN
from services.text import N_
from services.vocabulary import MODE_LABELS, Mode

HEADERS = (
    N_("Interpreter"),
    N_("Date"),
    N_("Request"),
    N_("School"),
    N_("Mode"),
    N_("Minutes"),
    N_("Billed minutes"),
    N_("km"),
    N_("Other costs"),
    N_("Amount"),
    N_("Note"),
)
EURO_FORMAT = '#,##0.00 "€"'
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _euros(cents: int) -> Decimal:
    return Decimal(cents) / 100


def _note(t: Translator, line: BillingLine) -> str:
    return t.gettext("late cancellation") if line.cancelled else ""


def _row(t: Translator, name: str, line: BillingLine) -> list[object]:
    return [
        name,
        line.starts_at.astimezone(BERLIN).replace(tzinfo=None),
        line.request_id,
        line.school,
        t.gettext(MODE_LABELS[Mode(line.mode)]),
        line.minutes,
        line.billed_minutes,
        line.km,
        _euros(line.expenses_cents),
        _euros(line.amount_cents),
        _note(t, line),
    ]


def _total_row(label: str, billing: list[InterpreterBilling] | InterpreterBilling) -> list[object]:
    parts = billing if isinstance(billing, list) else [billing]
    return [
        label,
        None,
        None,
        None,
        None,
        sum(b.minutes for b in parts),
        sum(b.billed_minutes for b in parts),
        sum(b.km for b in parts),
        _euros(sum(b.expenses_cents for b in parts)),
        _euros(sum(b.amount_cents for b in parts)),
        None,
    ]


def _rows(t: Translator, billing: list[InterpreterBilling]) -> list[tuple[list[object], bool]]:
    """(cells, is a total) in order: each interpreter's sessions and total, then the grand total."""
    rows: list[tuple[list[object], bool]] = []
    for person in billing:
        rows += [(_row(t, person.name, line), False) for line in person.lines]
        rows.append((_total_row(t.render("Total {name}", {"name": person.name}), person), True))
    rows.append((_total_row(t.gettext("Total"), billing), True))
    return rows


def billing_csv(t: Translator, billing: list[InterpreterBilling]) -> str:
    out = io.StringIO()
    # CRLF, as RFC 4180 and Excel have it: with "\n" the csv module leaves a CR inside a name unquoted,
    # and spreadsheet programs break the row there.
    writer = csv.writer(out, delimiter=";" if t.locale == "de" else ",", lineterminator="\r\n")
    writer.writerow([t.gettext(h) for h in HEADERS])
    for cells, _ in _rows(t, billing):
        writer.writerow([_csv_cell(t, cell) for cell in cells])
    return out.getvalue()


def _csv_cell(t: Translator, cell: object) -> str:
    if cell is None:
        return ""
    if isinstance(cell, Decimal):
        return str(format_decimal(cell, format="0.00", locale=t.locale))
    if isinstance(cell, datetime):
        return cell.strftime("%Y-%m-%d %H:%M")
    if isinstance(cell, str):
        return as_text(cell)
    return str(cell)


def billing_xlsx(t: Translator, billing: list[InterpreterBilling], month: date) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = month.strftime("%Y-%m")
    sheet.append([t.gettext(h) for h in HEADERS])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for cells, is_total in _rows(t, billing):
        sheet.append(cells)
        row = sheet[sheet.max_row]
        for cell in row:
            # openpyxl stores a string starting with `=` as a formula; the quote prefix keeps Excel
            # from turning the others (`+1`, `@SUM(A1)`) into one when the cell is edited.
            if isinstance(cell.value, str) and formula_like(cell.value):
                cell.data_type = "s"
                cell.quotePrefix = True
        row[1].number_format = "DD.MM.YYYY HH:MM"
        row[8].number_format = row[9].number_format = EURO_FORMAT
        if is_total:
            for cell in row:
                cell.font = Font(bold=True)
    sheet.freeze_panes = "A2"
    for column, width in zip("ABCDEFGHIJK", (22, 17, 9, 28, 12, 9, 15, 7, 13, 13, 18), strict=True):
        sheet.column_dimensions[column].width = width
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
