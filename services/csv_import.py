"""Reading CSV files a coordinator exports from a spreadsheet: all rows valid, or nothing."""

import csv
import io
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


def read_rows(text: str, *, file: str, columns: Sequence[str]) -> Iterator[Row]:
    """Rows of a CSV with a header naming at least `columns`; comma or semicolon separated."""
    text = text.removeprefix("\ufeff")  # spreadsheet programs like to start with a BOM
    first = text.splitlines()[0] if text.strip() else ""
    delimiter = ";" if first.count(";") > first.count(",") else ","
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    header = [h.strip() for h in reader.fieldnames or []]
    for column in columns:
        if column not in header:
            raise ImportRowError(
                file=file, line=1, column=column, cause=InvalidInput(N_("The header lacks this column."))
            )
    reader.fieldnames = header
    for values in reader:
        if not any((v or "").strip() for v in values.values() if isinstance(v, str)):
            continue
        clean = {k: (v or "").strip() for k, v in values.items() if isinstance(k, str) and isinstance(v, str)}
        yield Row(file, reader.line_num, clean)


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
