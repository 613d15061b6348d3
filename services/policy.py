"""A district's policy: every rule of the pool, stored per district and changed by a coordinator.

The defaults below follow common practice of German community-interpreter pools; a new district
gets them written into its rows, and from then on only the rows count.
"""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import bindparam, event
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import SessionTransaction, object_session
from sqlmodel import Session, select

from db.models import PolicySetting
from services.audit import record
from services.errors import InvalidInput
from services.text import N_
from services.units import (
    format_duration,
    format_money_plain,
    parse_decimal,
    parse_duration,
    parse_money,
)
from services.vocabulary import Mode

DEFAULT_REFERRAL_TEXT = (
    "Für Sprachen, die unser Pool nicht abdeckt, vermittelt der Gemeindedolmetscherdienst des "
    "Ethno-Medizinischen Zentrums e.V. (EMZ) in Hannover Gemeindedolmetscherinnen und "
    "Gemeindedolmetscher: www.ethno-medizinisches-zentrum.de"
)


class Kind(StrEnum):
    DURATION = "duration"
    MONEY = "money"
    COUNT = "count"
    PERCENT = "percent"
    DECIMAL = "decimal"
    DISTANCE = "distance"  # whole km
    TEXT = "text"
    YES_NO = "yes_no"
    PLATFORMS = "platforms"  # the chat platforms a district allows, e.g. telegram,matrix


# The chat platforms a district decides on; others (the local terminal chat) run on no one else's servers.
CHAT_PLATFORMS = ("telegram", "matrix")
PLATFORM_NAMES = {"telegram": "Telegram", "matrix": "Matrix"}


@dataclass(frozen=True)
class Rule:
    key: str
    kind: Kind
    default: str
    description: str


RULES: tuple[Rule, ...] = (
    Rule("hourly_rate", Kind.MONEY, "24.00", N_("Pay per hour, in euros")),
    Rule("in_person_minimum", Kind.DURATION, "60m", N_("In person: minimum billed time")),
    Rule("in_person_increment", Kind.DURATION, "30m", N_("In person: billed per started …")),
    Rule("remote_minimum", Kind.DURATION, "30m", N_("Phone and video: minimum billed time")),
    Rule("remote_increment", Kind.DURATION, "15m", N_("Phone and video: billed per started …")),
    Rule("written_minimum", Kind.DURATION, "30m", N_("Written: minimum billed time")),
    Rule("written_increment", Kind.DURATION, "30m", N_("Written: billed per started …")),
    Rule("km_rate", Kind.MONEY, "0.30", N_("Travel: euros per km driven (round trip, in person only)")),
    Rule("road_factor", Kind.DECIMAL, "1.3", N_("Estimate: road distance per straight-line km")),
    Rule("lead_time_in_person", Kind.DURATION, "24h", N_("In person: requests at least this far ahead")),
    Rule("lead_time_remote", Kind.DURATION, "2h", N_("Phone and video: requests at least this far ahead")),
    Rule("lead_time_written", Kind.DURATION, "24h", N_("Written: requests at least this far ahead")),
    Rule("offer_wave_size", Kind.COUNT, "3", N_("Offers sent at once")),
    Rule("offer_timeout", Kind.DURATION, "4h", N_("An offer expires after")),
    Rule("offer_timeout_share", Kind.PERCENT, "50%", N_("…but at most this share of the time left")),
    Rule("free_cancellation_until", Kind.DURATION, "24h", N_("Schools cancel free of charge until")),
    Rule("reminder_first", Kind.DURATION, "24h", N_("First reminder before the start")),
    Rule("reminder_second", Kind.DURATION, "2h", N_("Second reminder before the start")),
    Rule("closeout_reminder_after", Kind.DURATION, "1d", N_("Remind the interpreter to report after")),
    Rule("closeout_auto_confirm_after", Kind.DURATION, "3d", N_("A report counts as confirmed after")),
    Rule("budget_alert_first", Kind.PERCENT, "80%", N_("First budget alert at this share used")),
    Rule("budget_alert_second", Kind.PERCENT, "95%", N_("Second budget alert at this share used")),
    Rule("travel_buffer", Kind.DURATION, "30m", N_("In person: time kept free between two jobs")),
    Rule("invite_validity", Kind.DURATION, "14d", N_("Invite codes are valid for")),
    Rule("volunteer_allowance", Kind.MONEY, "840.00", N_("Tax-free volunteer allowance per year")),
    Rule("report_km_max", Kind.DISTANCE, "150", N_("Reports: more km than this are flagged as unusual")),
    Rule(
        "late_change_counts_as_cancellation",
        Kind.YES_NO,
        "yes",
        N_("A late change the interpreter cannot keep costs the late-cancellation fee"),
    ),
    Rule("referral_text", Kind.TEXT, DEFAULT_REFERRAL_TEXT, N_("Where to turn when the pool cannot help")),
    Rule(
        "platforms",
        Kind.PLATFORMS,
        "telegram,matrix",
        N_("Chat platforms the district allows: telegram,matrix, matrix or telegram"),
    ),
    Rule(
        "retention_free_text",
        Kind.DURATION,
        "90d",
        N_("Notes, typed places and reasons are deleted this long after the session"),
    ),
    Rule(
        "retention_accounts",
        Kind.DURATION,
        "3650d",
        N_("Requests, bookings and the budget's books are deleted this long after their fiscal year"),
    ),
)
RULES_BY_KEY = {rule.key: rule for rule in RULES}

# Each rule's range, written as a coordinator types values: it keeps a typo from breaking the pool
# (a zero increment, 500 offers at once, an offer open for 9999 days). It guards what is typed;
# stored values are read as they are. Text rules count characters; yes/no rules have no range.
BOUNDS: dict[str, tuple[str, str]] = {
    "hourly_rate": ("1.00", "200.00"),
    "in_person_minimum": ("15m", "8h"),
    "in_person_increment": ("5m", "2h"),
    "remote_minimum": ("15m", "8h"),
    "remote_increment": ("5m", "2h"),
    "written_minimum": ("15m", "8h"),
    "written_increment": ("5m", "2h"),
    "km_rate": ("0.00", "2.00"),
    "road_factor": ("1.0", "3.0"),
    "lead_time_in_person": ("1h", "14d"),
    "lead_time_remote": ("15m", "14d"),
    "lead_time_written": ("1h", "14d"),
    "offer_wave_size": ("1", "20"),
    "offer_timeout": ("5m", "7d"),
    "offer_timeout_share": ("10%", "100%"),
    "free_cancellation_until": ("1h", "14d"),
    "reminder_first": ("1h", "14d"),
    "reminder_second": ("5m", "3d"),
    "closeout_reminder_after": ("1h", "14d"),
    "closeout_auto_confirm_after": ("1d", "60d"),
    "budget_alert_first": ("10%", "99%"),
    "budget_alert_second": ("10%", "100%"),
    "travel_buffer": ("5m", "4h"),
    "invite_validity": ("1h", "90d"),
    "volunteer_allowance": ("1.00", "10000.00"),
    "report_km_max": ("10", "2000"),
    "referral_text": ("1", "1000"),
    "retention_free_text": ("1d", "730d"),
    "retention_accounts": ("365d", "10950d"),  # budget law asks for 10 years; the county decides
}
# A rule added without its own range gets its kind's.
_KIND_BOUNDS: dict[Kind, tuple[str, str]] = {
    Kind.DURATION: ("5m", "30d"),
    Kind.MONEY: ("0.00", "1000.00"),
    Kind.COUNT: ("1", "20"),
    Kind.PERCENT: ("1%", "100%"),
    Kind.DECIMAL: ("0.1", "10"),
    Kind.DISTANCE: ("1", "2000"),
    Kind.TEXT: ("1", "1000"),
}


@dataclass(frozen=True)
class Policy:
    hourly_rate: int  # cents
    in_person_minimum: timedelta
    in_person_increment: timedelta
    remote_minimum: timedelta
    remote_increment: timedelta
    written_minimum: timedelta
    written_increment: timedelta
    km_rate: int  # cents
    road_factor: Decimal
    lead_time_in_person: timedelta
    lead_time_remote: timedelta
    lead_time_written: timedelta
    offer_wave_size: int
    offer_timeout: timedelta
    offer_timeout_share: int  # percent
    free_cancellation_until: timedelta
    reminder_first: timedelta
    reminder_second: timedelta
    closeout_reminder_after: timedelta
    closeout_auto_confirm_after: timedelta
    budget_alert_first: int  # percent
    budget_alert_second: int  # percent
    travel_buffer: timedelta
    invite_validity: timedelta
    volunteer_allowance: int  # cents
    report_km_max: int
    late_change_counts_as_cancellation: bool
    referral_text: str
    platforms: tuple[str, ...]  # in CHAT_PLATFORMS' order, never empty
    retention_free_text: timedelta
    retention_accounts: timedelta

    def billing_steps(self, mode: Mode) -> tuple[int, int]:
        """(minimum, increment) in whole minutes for a mode."""
        pairs = {
            Mode.IN_PERSON: (self.in_person_minimum, self.in_person_increment),
            Mode.PHONE: (self.remote_minimum, self.remote_increment),
            Mode.VIDEO: (self.remote_minimum, self.remote_increment),
            Mode.WRITTEN: (self.written_minimum, self.written_increment),
        }
        minimum, increment = pairs[mode]
        return int(minimum.total_seconds()) // 60, int(increment.total_seconds()) // 60

    def lead_time(self, mode: Mode) -> timedelta:
        if mode is Mode.IN_PERSON:
            return self.lead_time_in_person
        if mode is Mode.WRITTEN:
            return self.lead_time_written
        return self.lead_time_remote


def _parse_count(text: str) -> int:
    raw = text.strip()
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9):
        raise InvalidInput(N_("“{value}” is not a whole number."), value=text)
    return int(raw)


def _parse_km(text: str) -> int:
    raw = text.strip().lower().removesuffix("km").strip()
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9):
        raise InvalidInput(N_("“{value}” is not a whole number."), value=text)
    return int(raw)


def _parse_yes_no(text: str) -> bool:
    raw = text.strip().casefold()
    if raw in ("yes", "ja", "true", "1"):
        return True
    if raw in ("no", "nein", "false", "0"):
        return False
    raise InvalidInput(N_("“{value}” is neither yes nor no."), value=text)


def _parse_text(text: str) -> str:
    return text.strip()


def _parse_platforms(text: str) -> tuple[str, ...]:
    names = {part for part in re.split(r"[\s,;]+", text.strip().casefold()) if part}
    if not names or names - set(CHAT_PLATFORMS):
        raise InvalidInput(
            N_("“{value}” is no list of chat platforms; write telegram,matrix or matrix or telegram."),
            value=text,
        )
    return tuple(platform for platform in CHAT_PLATFORMS if platform in names)


def _parse_policy_percent(text: str) -> int:
    # Any whole percentage parses; the rule's range (see BOUNDS) says which are allowed.
    raw = text.strip().removesuffix("%").strip()
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9):
        raise InvalidInput(N_("“{value}” is not a percentage; write e.g. 80%."), value=text)
    return int(raw)


_PARSERS: dict[Kind, Callable[[str], Any]] = {
    Kind.DURATION: parse_duration,
    Kind.MONEY: parse_money,
    Kind.COUNT: _parse_count,
    Kind.PERCENT: _parse_policy_percent,
    Kind.DECIMAL: parse_decimal,
    Kind.TEXT: _parse_text,
    Kind.YES_NO: _parse_yes_no,
    Kind.DISTANCE: _parse_km,
    Kind.PLATFORMS: _parse_platforms,
}


def _canonical(kind: Kind, value: Any) -> str:
    if kind is Kind.DURATION:
        return format_duration(value)
    if kind is Kind.MONEY:
        return format_money_plain(value)
    if kind is Kind.PERCENT:
        return f"{value}%"
    if kind is Kind.YES_NO:
        return "yes" if value else "no"
    if kind is Kind.PLATFORMS:
        return ",".join(value)
    return str(value)


def parse_value(key: str, text: str) -> Any:
    """Parse `text` for the rule `key`; raises InvalidInput for an unknown key or a bad value."""
    rule = RULES_BY_KEY.get(key)
    if rule is None:
        raise InvalidInput(
            N_("“{key}” is not a policy rule. Known rules: {keys}."), key=key, keys=", ".join(RULES_BY_KEY)
        )
    value = _PARSERS[rule.kind](text)
    minutes_only = rule.kind is Kind.DURATION and rule.key.endswith(("_minimum", "_increment"))
    if minutes_only and value.total_seconds() % 60:
        raise InvalidInput(N_("Billing steps are whole minutes, e.g. 15m."))
    return value


def bounds(rule: Rule) -> tuple[str, str] | None:
    """The lowest and highest value `rule` takes, as typed (for text: characters); None for yes/no
    and the platforms, which are a choice."""
    if rule.kind in (Kind.YES_NO, Kind.PLATFORMS):
        return None
    return BOUNDS.get(rule.key) or _KIND_BOUNDS[rule.kind]


def parse_input(key: str, text: str) -> Any:
    """Parse what a coordinator typed for `key`, refusing a value outside the rule's range."""
    value = parse_value(key, text)
    rule = RULES_BY_KEY[key]
    limits = bounds(rule)
    if limits is None:
        return value
    low_text, high_text = limits
    if rule.kind is Kind.TEXT:
        if not int(low_text) <= len(value) <= int(high_text):
            raise InvalidInput(
                N_("Allowed for {key}: {low} to {high} characters. The text has {length}."),
                key=key,
                low=low_text,
                high=high_text,
                length=len(value),
            )
        return value
    parse = _PARSERS[rule.kind]
    if not parse(low_text) <= value <= parse(high_text):
        raise InvalidInput(
            N_("Allowed for {key}: {low} to {high}. “{value}” is outside this range."),
            key=key,
            low=low_text,
            high=high_text,
            value=text,
        )
    return value


def _build(values: dict[str, str]) -> Policy:
    parsed = {rule.key: parse_value(rule.key, values.get(rule.key, rule.default)) for rule in RULES}
    return Policy(**parsed)


DEFAULT_POLICY = _build({})
assert {f.name for f in fields(Policy)} == set(RULES_BY_KEY), "every rule needs a Policy field"


def write_defaults(session: Session, district_id: int) -> None:
    """Store every rule's default for a new district."""
    for rule in RULES:
        session.add(PolicySetting(district_id=district_id, key=rule.key, value=rule.default))


def stored_values(session: Session, district_id: int) -> dict[str, str]:
    rows = session.exec(select(PolicySetting).where(PolicySetting.district_id == district_id))
    return {row.key: row.value for row in rows}


_SETTINGS = PolicySetting.__table__  # type: ignore[attr-defined]
# Read by nearly every event: built once, run with parameters (see db/upsert.py).
_RULES_OF = select(_SETTINGS.c.key, _SETTINGS.c.value).where(
    _SETTINGS.c.district_id == bindparam("district_id")
)
LOADED = "policy.loaded"  # session.info: district id -> its Policy, as read in this transaction
_BUILT: dict[tuple[tuple[str, str], ...], Policy] = {}  # stored rule values -> their Policy
_BUILT_MOST = 64


def _built(values: tuple[tuple[str, str], ...]) -> Policy:
    """The Policy these stored values make, parsed once per process for the same values."""
    policy = _BUILT.get(values)
    if policy is None:
        if len(_BUILT) >= _BUILT_MOST:
            _BUILT.clear()
        policy = _BUILT[values] = _build(dict(values))
    return policy


def _changes_policy(session: Session) -> bool:
    return any(isinstance(row, PolicySetting) for row in (*session.new, *session.dirty, *session.deleted))


def load_policy(session: Session, district_id: int) -> Policy:
    """The district's policy; a rule added after the district was made falls back to its default.

    Read once per transaction (an event asks for it several times): the session keeps it until the
    transaction ends or a rule is written in it (flushed: `_forget_policy`; unflushed rows are not
    cached around). The rules' texts are parsed once per process for the same values.
    """
    loaded: dict[int, Policy] = session.info.setdefault(LOADED, {})
    policy = loaded.get(district_id)
    if policy is not None and not _changes_policy(session):
        return policy
    rows = session.execute(_RULES_OF, {"district_id": district_id})
    policy = _built(tuple(sorted((key, value) for key, value in rows if key in RULES_BY_KEY)))
    loaded[district_id] = policy
    return policy


@event.listens_for(PolicySetting, "after_insert")
@event.listens_for(PolicySetting, "after_update")
@event.listens_for(PolicySetting, "after_delete")
def _forget_policy(_mapper: Any, _connection: Any, row: PolicySetting) -> None:
    """A rule written in a session: its next `load_policy` reads the rules again."""
    session = object_session(row)
    if session is not None:
        session.info.pop(LOADED, None)


@event.listens_for(OrmSession, "after_transaction_end")
def _transaction_ended(session: OrmSession, transaction: SessionTransaction) -> None:
    """The next transaction reads the rules afresh (another process may have changed them)."""
    if transaction.parent is None:
        session.info.pop(LOADED, None)


def policy_from(values: Mapping[str, str]) -> Policy:
    """The policy stored `values` (key to text) make; missing rules take their defaults."""
    return _build(dict(values))


def clashing_rules(policy: Policy) -> list[InvalidInput]:
    """Rules that contradict each other (`set_rule` refuses a change that would make one)."""
    clashes = []
    if policy.budget_alert_first >= policy.budget_alert_second:
        clashes.append(InvalidInput(N_("The first budget alert must come before the second.")))
    if policy.reminder_second >= policy.reminder_first:
        clashes.append(
            InvalidInput(N_("The second reminder must come later (closer to the start) than the first."))
        )
    if policy.retention_free_text >= policy.retention_accounts:
        clashes.append(
            InvalidInput(
                N_(
                    "Free text must be deleted before the accounts are: "
                    "retention_free_text shorter than retention_accounts."
                )
            )
        )
    return clashes


def set_rule(
    session: Session, district_id: int, key: str, text: str, *, actor: str, now: datetime
) -> tuple[str, str]:
    """Change one rule; returns (old, new) canonical texts. Cross-rule checks run on the result."""
    rule_value = parse_input(key, text)
    canonical = _canonical(RULES_BY_KEY[key].kind, rule_value)
    current = stored_values(session, district_id)
    clashes = clashing_rules(_build({**current, key: canonical}))
    if clashes:
        raise clashes[0]
    row = session.exec(
        select(PolicySetting).where(PolicySetting.district_id == district_id, PolicySetting.key == key)
    ).first()
    old = row.value if row else RULES_BY_KEY[key].default
    if row is None:
        session.add(PolicySetting(district_id=district_id, key=key, value=canonical))
    else:
        row.value = canonical
        session.add(row)
    record(
        session,
        district_id=district_id,
        actor=actor,
        action="policy.changed",
        entity="district",
        entity_id=district_id,
        now=now,
        key=key,
        old=old,
        new=canonical,
    )
    return old, canonical
