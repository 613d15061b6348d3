"""Translation and locale formatting at the edge: catalogs from `locales/`, money, dates, language names.

Message parameters are formatted by name (see `services.errors`): `*_cents` as money, `*_at`
as a Berlin date and time, `language` as its name, `mode`, `topic`, `state`, `target` as labels.
"""

import contextlib
import gettext
import hashlib
import io
import os
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal, format_percent

import locales
from services.clock import BERLIN
from services.errors import DomainError, ImportRowError
from services.languages import language_name
from services.vocabulary import MODE_LABELS, STATE_LABELS, TOPIC_LABELS, Mode, RequestState, Topic

LOCALES = ("de", "en")
DEFAULT_LOCALE = "de"
# The catalogs are package data of `locales`, so an installed bot finds them outside the source tree.
LOCALES_DIR = Path(locales.__file__).resolve().parent


def catalog_path(locale: str) -> Path:
    return LOCALES_DIR / locale / "LC_MESSAGES" / "messages.po"


@cache
def _translations(locale: str) -> gettext.GNUTranslations:
    return gettext.GNUTranslations(io.BytesIO(compiled_catalog(catalog_path(locale))))


def compiled_catalog(po: Path) -> bytes:
    """The .mo of a .po file: no build step, and never a stale .mo.

    Compiling takes 0.1-0.3 s, a third of a start, so the result is kept beside the .po (in
    `__pycache__`, as Python keeps bytecode) under the hash of the .po's bytes: an edited .po is
    compiled afresh. Where that folder cannot be written (an installed, read-only package), it is
    compiled in memory each time.
    """
    text = po.read_bytes()
    folder = po.parent / "__pycache__"
    cached = folder / f"{po.stem}.{hashlib.sha256(text).hexdigest()[:20]}.mo"
    with contextlib.suppress(OSError):
        return cached.read_bytes()
    from babel.messages.mofile import write_mo  # only when compiling
    from babel.messages.pofile import read_po

    buffer = io.BytesIO()
    write_mo(buffer, read_po(io.BytesIO(text), locale=po.parent.parent.name), use_fuzzy=False)
    compiled = buffer.getvalue()
    with contextlib.suppress(OSError):
        folder.mkdir(exist_ok=True)
        for stale in folder.glob(f"{po.stem}.*.mo"):
            stale.unlink(missing_ok=True)
        partial = folder / f"{cached.name}.{os.getpid()}.partial"
        partial.write_bytes(compiled)
        partial.replace(cached)  # atomic: a process starting alongside reads all of it or nothing
    return compiled


def pick_locale(wanted: str | None) -> str:
    """A supported locale for a wish like `en_US.UTF-8`; German when nothing fits."""
    primary = (wanted or "").split(".")[0].split("_")[0].split("-")[0].lower()
    return primary if primary in LOCALES else DEFAULT_LOCALE


def env_locale() -> str:
    """The command line's locale: `BOT_LOCALE`, else German."""
    return pick_locale(os.environ.get("BOT_LOCALE"))


ECHO = 100  # at most this many characters of what someone typed are quoted back


def echo(typed: str) -> str:
    """What someone typed, as a sentence quotes it: its first 100 characters, on one line."""
    line = " ".join(typed.split())
    return line if len(line) <= ECHO else line[: ECHO - 1] + "…"


# Day and time patterns: always the weekday and four digits of the year (a two-digit year hid that a
# date without one had landed in the next year); English in day-month order, as in Britain.
_DATE_PATTERNS = {"de": ("EEE, dd.MM.yyyy", "HH:mm 'Uhr'"), "en": ("EEE d MMM yyyy", "HH:mm")}


class Translator:
    """Everything a user reads, in one locale."""

    def __init__(self, locale: str) -> None:
        self.locale = pick_locale(locale)
        self._catalog = _translations(self.locale)

    def gettext(self, message: str) -> str:
        return self._catalog.gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self._catalog.ngettext(singular, plural, n)

    def money(self, cents: int) -> str:
        return str(format_currency(Decimal(cents) / 100, "EUR", locale=self.locale))

    def whole_euros(self, euros: float) -> str:
        """`5000` -> `5.000 €` (de) or `€5,000` (en): amounts on a chart's axis."""
        pattern = Locale.parse(self.locale).currency_formats["standard"].pattern.replace(".00", "")
        return str(format_currency(round(euros), "EUR", pattern, locale=self.locale, currency_digits=False))

    def number(self, value: float) -> str:
        return str(format_decimal(value, locale=self.locale))

    def percent(self, share: float) -> str:
        """`82.5` -> `82,5 %` (de) or `82.5%` (en)."""
        # The locale's own pattern (`#,##0 %` in de), with one optional decimal place.
        pattern = Locale.parse(self.locale).percent_formats[None].pattern.replace("0", "0.#", 1)
        return str(format_percent(share / 100, pattern, locale=self.locale))

    def when(self, moment: datetime | str) -> str:
        """A Berlin date and time with weekday and full year: `Fr., 12.03.2027, 10:00 Uhr` (de) or
        `Fri 12 Mar 2027, 10:00` (en)."""
        if isinstance(moment, str):
            moment = datetime.fromisoformat(moment)
        day, clock = _DATE_PATTERNS[self.locale]
        return str(
            format_datetime(moment.astimezone(BERLIN), f"{day}, {clock}", tzinfo=BERLIN, locale=self.locale)
        )

    def month(self, day: date) -> str:
        """`2026-10-01` -> `Oktober 2026` (de) or `October 2026` (en)."""
        return str(format_date(day, "LLLL yyyy", locale=self.locale))

    def month_short(self, day: date) -> str:
        """`2026-10-01` -> `Okt` (de) or `Oct` (en), for chart axes."""
        return str(format_date(day, "LLL", locale=self.locale)).rstrip(".")

    def day(self, day: date) -> str:
        """`2027-03-12` -> `Fr., 12.03.2027` (de) or `Fri 12 Mar 2027` (en)."""
        return str(format_date(day, _DATE_PATTERNS[self.locale][0], locale=self.locale))

    def period(self, first: date, last: date) -> str:
        """`01.04.2026 – 30.06.2026` (de) or `1 Apr 2026 – 30 Jun 2026` (en): a span of whole days,
        where weekdays would only be noise."""
        pattern = _DATE_PATTERNS[self.locale][0].removeprefix("EEE, ").removeprefix("EEE ")
        return " – ".join(str(format_date(day, pattern, locale=self.locale)) for day in (first, last))

    def weekday(self, day: date) -> str:
        """`2027-03-12` -> `Freitag` (de) or `Friday` (en)."""
        return str(format_date(day, "EEEE", locale=self.locale))

    def language(self, tag: str) -> str:
        return language_name(tag, self.locale, self.gettext)

    def _param(self, name: str, value: Any) -> str:
        if value is None:
            return ""
        if name.endswith("_cents"):
            return self.money(int(value))
        if name.endswith("_percent"):
            return self.percent(float(value))
        if name.endswith("_at"):
            return self.when(value)
        if name.endswith("_month"):
            return self.month(value)
        if name.endswith("_on"):
            return self.day(value)
        if name == "language":
            return self.language(str(value))
        if name == "mode":
            return self.gettext(MODE_LABELS[Mode(value)])
        if name == "topic":
            return self.gettext(TOPIC_LABELS[Topic(value)])
        if name in ("state", "target"):
            return self.gettext(STATE_LABELS[RequestState(value)])
        return str(value)

    def render_plural(
        self, singular: str, plural: str, count: int, params: Mapping[str, Any] | None = None
    ) -> str:
        """The form of a message for `count` (gettext's ngettext: `asked once`, `asked {count} times`),
        with `{count}` and the other parameters filled in like `render` does."""
        values = {name: self._param(name, value) for name, value in (params or {}).items()}
        return self._catalog.ngettext(singular, plural, count).format(count=count, **values)

    def render(self, message: str, params: Mapping[str, Any] | None = None) -> str:
        """Translate `message` and fill in its parameters, each formatted for the locale."""
        values = {name: self._param(name, value) for name, value in (params or {}).items()}
        return self.gettext(message).format(**values)

    def error(self, exc: DomainError) -> str:
        """The sentence a user sees for a domain error."""
        params = dict(exc.params)
        if isinstance(params.get("value"), str):
            params["value"] = echo(params["value"])
        if isinstance(exc, ImportRowError):
            params["reason"] = self.error(exc.cause)
        return self.render(exc.message, params)
