"""Parsing and canonical text for durations, money and shares, as typed by a coordinator."""

import re
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from services.errors import InvalidInput
from services.text import N_

_DURATION_PART = re.compile(r"(\d{1,6})\s*([smhd])", re.ASCII)  # ASCII digits: int() takes them
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_MONEY = re.compile(r"^(\d{1,9})(?:[.,](\d{1,2}))?$", re.ASCII)


def parse_duration(text: str) -> timedelta:
    """`90s`, `15m`, `4h`, `2d` or combinations like `1h30m`."""
    cleaned = text.strip().lower().replace(" ", "")
    parts = _DURATION_PART.findall(cleaned)
    if not cleaned or "".join(n + u for n, u in parts) != cleaned:
        raise InvalidInput(N_("“{value}” is not a duration; write e.g. 90s, 15m, 4h or 2d."), value=text)
    return timedelta(seconds=sum(int(n) * _UNIT_SECONDS[u] for n, u in parts))


def format_duration(value: timedelta) -> str:
    """The shortest canonical form: 5400 s -> `90m`, 86400 s -> `1d`."""
    seconds = int(value.total_seconds())
    for unit in ("d", "h", "m"):
        if seconds and seconds % _UNIT_SECONDS[unit] == 0:
            return f"{seconds // _UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"


def parse_money(text: str) -> int:
    """`24.00`, `24,00` or `24` in euros, to integer cents; never negative, at most two decimals."""
    match = _MONEY.match(text.strip())
    if not match:
        raise InvalidInput(N_("“{value}” is not an amount; write e.g. 24.00."), value=text)
    euros, cents = match.group(1), (match.group(2) or "0").ljust(2, "0")
    return int(euros) * 100 + int(cents)


def format_money_plain(cents: int) -> str:
    """`2400` -> `24.00`: the canonical, locale-free form used in files and policy values."""
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def parse_percent(text: str) -> int:
    """`80%` or `80`, a whole percentage from 1 to 100."""
    raw = text.strip().removesuffix("%").strip()
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 3) or not 1 <= int(raw) <= 100:
        raise InvalidInput(N_("“{value}” is not a percentage from 1 to 100."), value=text)
    return int(raw)


def parse_decimal(text: str) -> Decimal:
    """A positive decimal like `1.3`."""
    try:
        value = Decimal(text.strip().replace(",", "."))
    except InvalidOperation:
        value = Decimal(-1)
    if not value.is_finite() or value <= 0:
        raise InvalidInput(N_("“{value}” is not a positive number."), value=text)
    return value


def round_cents(value: Decimal) -> int:
    """Commercial rounding (half up) to whole cents."""
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))
