"""Reading CSV files a coordinator exports from a spreadsheet: all rows valid, or nothing."""

import codecs
import csv
import io
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from services.errors import DomainError, ImportRowError, InvalidInput
from services.text import N_

T = TypeVar("T")


@dataclass(frozen=True)
class Row:
    file: str
    line: int
    values: dict[str, str]

    def cell(self, column: str, parse: Callable[[str], T]) -> T:
        """Parse one cell; a bad value raises ImportRowError naming file, line and column."""
        try:
            return parse(self.values.get(column, "") or "")
        except DomainError as exc:
            raise ImportRowError(file=self.file, line=self.line, column=column, cause=exc) from exc


def decode_csv(data: bytes, *, file: str) -> str:
    """A CSV file's text: UTF-8 (BOM or not), UTF-16 with BOM, or Windows-1252 as older Excel saves it."""
    if data.startswith(b"PK\x03\x04"):
        raise InvalidInput(N_("{file} is a workbook, not a CSV file. Save it as CSV."), file=file)
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16")
    if b"\x00" in data:
        raise InvalidInput(N_("{file} is not a text file. Save the table as CSV."), file=file)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        raise InvalidInput(
            N_("{file} is neither UTF-8 nor Windows text. Save it as “CSV UTF-8”."), file=file
        ) from None


_DELIMITERS = (",", ";", "\t")
_EXCEL_SEPARATOR = re.compile(r"^\s*sep=(.)\s*$", re.IGNORECASE)  # Excel's hint line, e.g. `sep=;`


def _delimiter(first: str) -> str | None:
    """The separator the header line uses most: comma, semicolon or tab; None when it has none."""
    count, found = max((first.count(d), d) for d in _DELIMITERS)
    return found if count else None


def read_rows(text: str, *, file: str, columns: Sequence[str]) -> Iterator[Row]:
    """Rows of a CSV whose header names at least `columns` (any case); comma, semicolon or tab separated."""
    text = text.removeprefix("\ufeff")  # spreadsheet programs like to start with a BOM
    lines = text.splitlines()
    skipped = 0
    hint = _EXCEL_SEPARATOR.match(lines[0]) if lines else None
    if hint:
        delimiter: str | None = hint.group(1)
        text, skipped = text.split("\n", 1)[1] if "\n" in text else "", 1
    else:
        delimiter = _delimiter(lines[0] if lines else "")
    if delimiter is None:
        if not text.strip():
            raise InvalidInput(N_("{file} is empty."), file=file)
        raise InvalidInput(
            N_(
                "{file} cannot be read as a table: its first line has no columns separated by commas, "
                "semicolons or tabs. It must name the columns {columns}."
            ),
            file=file,
            columns=", ".join(columns),
        )
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    found = [h.strip() for h in reader.fieldnames or []]
    header = [h.lower() for h in found]
    for column in columns:
        if column not in header:
            raise ImportRowError(
                file=file,
                line=1 + skipped,
                column=column,
                cause=InvalidInput(N_("The header lacks it; it has: {found}."), found=", ".join(found)),
            )
    reader.fieldnames = header
    for values in reader:
        if not any((v or "").strip() for v in values.values() if isinstance(v, str)):
            continue
        clean = {k: (v or "").strip() for k, v in values.items() if isinstance(k, str) and isinstance(v, str)}
        yield Row(file, reader.line_num + skipped, clean)


def required_text(max_length: int) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if not value.strip():
            raise InvalidInput(N_("This field must not be empty."))
        if len(value) > max_length:
            raise InvalidInput(N_("At most {max} characters."), max=max_length)
        return value.strip()

    return parse


def optional_text(max_length: int) -> Callable[[str], str]:
    def parse(value: str) -> str:
        return required_text(max_length)(value) if value.strip() else ""

    return parse


def coordinate(low: float, high: float) -> Callable[[str], float]:
    def parse(value: str) -> float:
        try:
            number = float(value.replace(",", "."))
        except ValueError:
            number = float("nan")
        if not low <= number <= high:
            raise InvalidInput(
                N_("“{value}” is not a coordinate between {low} and {high}."), value=value, low=low, high=high
            )
        return number

    return parse


latitude = coordinate(-90.0, 90.0)
longitude = coordinate(-180.0, 180.0)
