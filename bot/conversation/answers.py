"""Typed answers as people write them in chat: dates like `12.3. 14:30`, durations like `1,5 h`."""

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from services.clock import BERLIN
from services.errors import InvalidInput
from services.text import N_

# re.ASCII: `\d` is 0-9 only, never `²`, `①` or Arabic-Indic digits, so int() takes whatever matched.
_DATE_TIME = re.compile(
    r"^(?:(\w+)\.?,?\s+)?(\d{1,2})\.(\d{1,2})\.(\d{2}|\d{4})?\s*(?:,|um)?\s*(\d{1,2})(?:[:.](\d{2}))?\s*(?:uhr|h)?$",
    re.ASCII,
)
_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[ t](\d{1,2}):(\d{2})$", re.ASCII)
_DATE = re.compile(r"^(?:(\w+)\.?,?\s+)?(\d{1,2})\.(\d{1,2})\.(\d{2}|\d{4})?$", re.ASCII)
# `morgen 10:00`, `Di. 14:30`, `tomorrow at 9.30`, `Tuesday 2:30 pm`: a day word, then the time.
_WORD_TIME = re.compile(
    r"^([a-zäöüß]+(?: after tomorrow)?)\.?,?\s*(?:um|at)?\s*"
    r"(\d{1,2})(?:[:.](\d{2}))?\s*(?:uhr|h|([ap])\.?m\.?)?$",
    re.ASCII,
)
_WORD = re.compile(r"^([a-zäöüß]+(?: after tomorrow)?)\.?$", re.ASCII)
_DAYS_AHEAD = {
    "heute": 0, "today": 0, "morgen": 1, "tomorrow": 1,
    "übermorgen": 2, "uebermorgen": 2, "day after tomorrow": 2,
}  # fmt: skip
_WEEKDAYS = {
    **dict.fromkeys(("mo", "montag", "mon", "monday"), 0),
    **dict.fromkeys(("di", "dienstag", "tue", "tues", "tuesday"), 1),
    **dict.fromkeys(("mi", "mittwoch", "wed", "wednesday"), 2),
    **dict.fromkeys(("do", "donnerstag", "thu", "thur", "thurs", "thursday"), 3),
    **dict.fromkeys(("fr", "freitag", "fri", "friday"), 4),
    **dict.fromkeys(("sa", "samstag", "sonnabend", "sat", "saturday"), 5),
    **dict.fromkeys(("so", "sonntag", "sun", "sunday"), 6),
}
_MINUTES = re.compile(r"^(\d{1,6})\s*(?:min|minuten|minutes|m)?\.?$", re.ASCII)
_HOURS = re.compile(r"^(\d{1,2})(?:[.,](\d{1,2}))?\s*(?:h|std|stunden?|hours?)\.?$", re.ASCII)
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})\s*(?:h|std)?$", re.ASCII)
_DIGITS = re.compile(r"[0-9]{1,18}", re.ASCII)
MAX_ID = 2**31 - 1  # the largest id of a row (PostgreSQL's INTEGER); a bigger one names nothing
_EARLIEST_YEAR, _LATEST_YEAR = 2000, 2100  # dates beyond are typing errors (and would overflow)


def whole_number(text: str, *, most: int) -> int | None:
    """`text` as a whole number from 0 to `most`, or None: only ASCII digits count.

    `str.isdigit()` accepts `²`, `①` and other digits that `int()` refuses or reads otherwise; this
    is the one parser for numbers typed or carried in a button.
    """
    if not _DIGITS.fullmatch(text):
        return None
    number = int(text)
    return number if number <= most else None


@dataclass(frozen=True)
class Answer:
    """What the user gave at a step: the key of a choice (button, number or label) and/or free text."""

    key: str | None
    text: str


def _first_word(label: str) -> str:
    """`Ja, stornieren` -> `ja`: the word a person types for a whole label."""
    words = label.casefold().replace(",", " ").split()
    return words[0] if words else ""


def resolve(text: str, choice: str | None, offered: dict[str, str], *, positions: bool = True) -> Answer:
    """Match a button, a typed number (`2`) or a typed label (`Telefon`, or `ja` for `Ja, stornieren`)
    to one of the offered choices.

    `offered` maps each key to its label, in the order they were numbered. Where the step asks for a
    number (`positions=False`), a typed number is the value and never picks an option by its place.
    """
    if choice is not None:
        return Answer(choice if choice in offered or ":" in choice else None, text)
    cleaned = text.strip()
    keys = list(offered)
    number = whole_number(cleaned, most=len(keys)) if positions else None
    if number is not None and number >= 1:
        return Answer(keys[number - 1], cleaned)
    folded = cleaned.casefold()
    if not folded:
        return Answer(None, cleaned)
    for key, label in offered.items():
        if folded in (label.casefold(), key.casefold()):
            return Answer(key, cleaned)
    # One word for a longer label (`ja`, `nein`), when it names exactly one of them.
    starting = [key for key, label in offered.items() if _first_word(label) == folded]
    return Answer(starting[0] if len(starting) == 1 else None, cleaned)


def _year_for(day: int, month: int, year: str | None, today: date) -> int:
    if year is None:
        # No year written: the next such day from today on.
        return today.year if (month, day) >= (today.month, today.day) else today.year + 1
    full = int(year) + 2000 if len(year) == 2 else int(year)
    if not _EARLIEST_YEAR <= full <= _LATEST_YEAR:
        raise ValueError(year)
    return full


def _day_word(word: str, today: date) -> date | None:
    """`heute`, `morgen`, `übermorgen` (and in English) from today; a weekday (`Di`, `Dienstag`,
    `Tue`, `Tuesday`) is the next such day after today, so today's own weekday means a week ahead
    (today is `heute`). None for any other word."""
    if word in _DAYS_AHEAD:
        return today + timedelta(days=_DAYS_AHEAD[word])
    if word in _WEEKDAYS:
        return today + timedelta(days=(_WEEKDAYS[word] - today.weekday() - 1) % 7 + 1)
    return None


def _hour(hour: str, half: str | None) -> int:
    """The hour of the day; `2 pm` is 14, `12 am` is 0."""
    value = int(hour)
    if half is None:
        return value
    if not 1 <= value <= 12:
        raise ValueError(hour)
    return value % 12 + (12 if half == "p" else 0)


def parse_when(text: str, now: datetime) -> datetime:
    """`12.3. 14:30`, `12.03.2026 14:30`, `Do 12.3. 9 Uhr` or `2026-03-12 14:30`, Berlin time, to UTC.

    Also a day word and a time: `heute 15:00`, `morgen 10:00`, `übermorgen 9:30`, `Di 14:30`,
    `Dienstag 14:30`, `today 15:00`, `tomorrow 10:00`, `Tue 2:30 pm`; a weekday is the next such day
    after today (see `_day_word`).
    """
    cleaned = " ".join(text.strip().lower().split())
    today = now.astimezone(BERLIN).date()
    match = _DATE_TIME.match(cleaned)
    iso = _ISO.match(cleaned)
    worded = _WORD_TIME.match(cleaned)
    weekday: str | None = None  # a weekday written before a date, to check against it
    try:
        if worded and (day_of := _day_word(worded.group(1), today)) is not None:
            clock = time(_hour(worded.group(2), worded.group(4)), int(worded.group(3) or 0))
            moment = datetime.combine(day_of, clock, tzinfo=BERLIN)
        elif match:
            weekday, day, month, year, hour, minute = match.groups()
            moment = datetime(
                _year_for(int(day), int(month), year, today),
                int(month),
                int(day),
                int(hour),
                int(minute or 0),
                tzinfo=BERLIN,
            )
        elif iso:
            y, mo, d, h, mi = (int(g) for g in iso.groups())
            moment = datetime(_year_for(d, mo, str(y), today), mo, d, h, mi, tzinfo=BERLIN)
        else:
            raise ValueError(cleaned)
    except ValueError:
        raise InvalidInput(
            N_("“{value}” is not a date with a time; write e.g. 12.3. 14:30 or tomorrow 10:00."), value=text
        ) from None
    _check_weekday(weekday, moment.date())
    return moment.astimezone(UTC)


def _check_weekday(word: str | None, day: date) -> None:
    """`Fr 12.3.` where the 12th is a Thursday: one of the two is a typing error, so ask again."""
    if word is not None and word in _WEEKDAYS and _WEEKDAYS[word] != day.weekday():
        raise InvalidInput(N_("{day_on} is another weekday; please check the date."), day_on=day)


def parse_day(text: str, now: datetime, *, on_or_after: date | None = None) -> date:
    """`12.3.` or `12.03.2026` as a calendar day (the next such day when the year is left out).

    Also `heute`, `morgen`, `übermorgen`, a weekday (`Fr`, `Freitag`, `Fri`, `Friday`: the next such
    day after today) and their English words. `on_or_after` (the first day, when the last is asked)
    is where a weekday or a day without year counts from instead: the first such day from it on.
    """
    cleaned = " ".join(text.strip().lower().split())
    today = now.astimezone(BERLIN).date()
    match = _DATE.match(cleaned)
    worded = _WORD.match(cleaned)
    try:
        word = worded.group(1) if worded else ""
        if on_or_after is not None and word in _WEEKDAYS:
            return on_or_after + timedelta(days=(_WEEKDAYS[word] - on_or_after.weekday()) % 7)
        if worded and (day_of := _day_word(word, today)) is not None:
            return day_of
        if not match:
            raise ValueError(cleaned)
        weekday, day, month, year = match.groups()
        base = today if on_or_after is None else on_or_after
        typed = date(_year_for(int(day), int(month), year, base), int(month), int(day))
    except ValueError:
        raise InvalidInput(
            N_("“{value}” is not a date; write e.g. 12.3., 12.03.2027 or Friday."), value=text
        ) from None
    _check_weekday(weekday, typed)
    return typed


def start_of_day(day: date) -> datetime:
    """Midnight in Berlin at the start of `day`, in UTC."""
    return datetime.combine(day, time(0, 0), tzinfo=BERLIN).astimezone(UTC)


def end_of_day(day: date) -> datetime:
    return start_of_day(day + timedelta(days=1))


def parse_minutes(text: str) -> int:
    """`90`, `90 min`, `1:30`, `1,5 h` or `2 Std.` as whole minutes."""
    cleaned = text.strip().lower()
    if match := _MINUTES.match(cleaned):
        return int(match.group(1))
    if match := _CLOCK.match(cleaned):
        return int(match.group(1)) * 60 + int(match.group(2))
    if match := _HOURS.match(cleaned):
        whole, fraction = int(match.group(1)), str(match.group(2) or "0")
        return whole * 60 + int(fraction) * 60 // int(10 ** len(fraction))
    raise InvalidInput(N_("“{value}” is not a duration; write the minutes, e.g. 75, or 1:15."), value=text)


def parse_count(text: str, *, most: int) -> int:
    """A whole number from 0 to `most` (kilometres and the like)."""
    number = whole_number(text.strip().lower().removesuffix("km").strip(), most=most)
    if number is None:
        raise InvalidInput(N_("“{value}” is not a whole number from 0 to {most}."), value=text, most=most)
    return number
