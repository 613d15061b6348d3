"""A district's privacy notice (Art. 13 DSGVO): what people read at /start and /privacy.

The county writes it; until it does, the shipped template (services/privacy_notice/, German and
English) is shown, with its `[[...]]` placeholders for what only the county knows (its address,
the data-protection officer). A notice is stored per language as a row of the district's
settings (`policy_setting`, key `privacy_notice:de`), beside the rules but not one of them: it is
set as a whole from a file. `{district}`, `{platforms}`, `{retention_free_text}` and
`{retention_accounts}` in a notice are filled in each time it is shown, so it follows the rules;
other braces are left as they are.
"""

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources

from sqlmodel import Session, select

from db.models import District, PolicySetting
from services.audit import record
from services.errors import InvalidInput
from services.platforms import names
from services.policy import load_policy
from services.text import N_
from services.vocabulary import PRIVACY_LANGUAGES

LANGUAGES = PRIVACY_LANGUAGES
DEFAULT_LANGUAGE = "de"
KEY_PREFIX = "privacy_notice:"
MAX_CHARACTERS = 20_000  # a notice fits in a few chat messages; more is a wrong file
PLACEHOLDER = re.compile(r"\[\[[^\[\]]*\]\]")  # what the county fills in: [[Anschrift der Kreisverwaltung]]


@dataclass(frozen=True)
class Notice:
    """A notice as stored or shipped, before its values are filled in."""

    text: str
    language: str
    shipped: bool  # the template that comes with the bot, not the county's own

    @property
    def unfilled(self) -> list[str]:
        return PLACEHOLDER.findall(self.text)


@dataclass(frozen=True)
class Values:
    """What a notice's `{...}` names stand for; the caller formats the durations for the reader."""

    district: str
    platforms: str
    retention_free_text: timedelta
    retention_accounts: timedelta


def template(language: str) -> str:
    """The shipped template in `language` (German when there is none in that language)."""
    name = f"{language if language in LANGUAGES else DEFAULT_LANGUAGE}.txt"
    return resources.files("services").joinpath("privacy_notice", name).read_text(encoding="utf-8")


def _key(language: str) -> str:
    if language not in LANGUAGES:
        raise InvalidInput(
            N_("“{value}” is not a language of the notice; choose one of {values}."),
            value=language,
            values=", ".join(LANGUAGES),
        )
    return KEY_PREFIX + language


def _row(session: Session, district_id: int, language: str) -> PolicySetting | None:
    query = select(PolicySetting).where(
        PolicySetting.district_id == district_id, PolicySetting.key == _key(language)
    )
    return session.exec(query).first()


def stored(session: Session, district_id: int, language: str) -> Notice | None:
    row = _row(session, district_id, language)
    return Notice(row.value, language, shipped=False) if row else None


def notice_for(session: Session, district_id: int, language: str) -> Notice:
    """The notice a reader of `language` gets: the county's in that language, else its German one,
    else the shipped template in that language (the county's own text always wins over the template)."""
    wanted = language if language in LANGUAGES else DEFAULT_LANGUAGE
    for candidate in dict.fromkeys((wanted, DEFAULT_LANGUAGE)):
        own = stored(session, district_id, candidate)
        if own is not None:
            return own
    return Notice(template(wanted), wanted, shipped=True)


def values_of(session: Session, district_id: int) -> Values:
    district = session.get(District, district_id)
    assert district is not None
    policy = load_policy(session, district_id)
    return Values(
        district=district.name,
        platforms=names(policy.platforms),
        retention_free_text=policy.retention_free_text,
        retention_accounts=policy.retention_accounts,
    )


def fill(text: str, values: dict[str, str]) -> str:
    """Put the values in for their `{name}`; nothing else in the text is read as a field."""
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    return text


def check(text: str) -> str:
    """The text as it would be stored; refuses an empty or huge one, or one with unfilled placeholders."""
    text = text.replace("\r\n", "\n").strip()
    if not text:
        raise InvalidInput(N_("The privacy notice is empty."))
    if len(text) > MAX_CHARACTERS:
        raise InvalidInput(
            N_("The privacy notice has {length} characters; at most {most} are allowed."),
            length=len(text),
            most=MAX_CHARACTERS,
        )
    unfilled = PLACEHOLDER.findall(text)
    if unfilled:
        raise InvalidInput(
            N_(
                "The privacy notice still has {count} placeholder(s) to fill in, the first: {value}. "
                "Replace each [[…]] with the county's own text."
            ),
            count=len(unfilled),
            value=unfilled[0],
        )
    return text


def set_notice(
    session: Session, *, district_id: int, language: str, text: str, actor: str, now: datetime
) -> str:
    """Store the county's notice in `language` (checked first); returns the text as stored.

    The audit trail records that it changed and its length, not the text.
    """
    clean = check(text)
    row = _row(session, district_id, language) or PolicySetting(
        district_id=district_id, key=_key(language), value=""
    )
    row.value = clean
    session.add(row)
    record(
        session,
        district_id=district_id,
        actor=actor,
        action="privacy_notice.set",
        entity="district",
        entity_id=district_id,
        now=now,
        language=language,
        characters=len(clean),
    )
    return clean


def reset_notice(session: Session, *, district_id: int, language: str, actor: str, now: datetime) -> bool:
    """Go back to the shipped template in `language`; False when the county had set none."""
    row = _row(session, district_id, language)
    if row is None:
        return False
    session.delete(row)
    record(
        session,
        district_id=district_id,
        actor=actor,
        action="privacy_notice.reset",
        entity="district",
        entity_id=district_id,
        now=now,
        language=language,
    )
    return True
