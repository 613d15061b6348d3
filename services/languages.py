"""Languages as BCP-47 tags, with their names from CLDR (babel) in the reader's locale."""

from collections.abc import Callable
from functools import cache

from babel import Locale

from services.errors import InvalidInput
from services.text import N_

# CLDR has no entry under these tags; both are common in German interpreter pools.
_CLDR_ALIASES = {"prs": "fa_AF"}  # Dari: CLDR names it as Persian of Afghanistan
_OWN_NAMES = {"kmr": N_("Kurmanji (Northern Kurdish)")}
SCHOOL_LANGUAGE = "de"


@cache
def _known_tags() -> frozenset[str]:
    cldr = {key.lower() for key in Locale("en").languages if isinstance(key, str) and "_" not in key}
    return frozenset(cldr | set(_CLDR_ALIASES) | set(_OWN_NAMES))


def normalize_tag(tag: str) -> str:
    """A known primary language tag in lower case (`AR` -> `ar`); raises InvalidInput otherwise."""
    cleaned = tag.strip().replace("_", "-").lower()
    if cleaned not in _known_tags():
        raise InvalidInput(N_("“{tag}” is not a language code we know (e.g. ar, fa, uk)."), tag=tag)
    if cleaned == SCHOOL_LANGUAGE:
        raise InvalidInput(N_("German is the school's own language; no interpreter is needed for it."))
    return cleaned


def language_name(tag: str, locale: str, translate: Callable[[str], str]) -> str:
    """The language's name in `locale` (`ar` -> Arabisch / Arabic); `translate` covers CLDR's gaps."""
    if tag in _OWN_NAMES:
        return translate(_OWN_NAMES[tag])
    name = Locale.parse(locale).languages.get(_CLDR_ALIASES.get(tag, tag))
    return str(name) if name else tag


def search_languages(text: str, locale: str, translate: Callable[[str], str]) -> list[str]:
    """Tags whose code or name (in `locale` or English) matches `text`: exact hits first, then prefixes."""
    needle = text.strip().lower()
    if not needle:
        return []
    exact: list[str] = []
    prefix: list[str] = []
    for tag in sorted(_known_tags() - {SCHOOL_LANGUAGE}):
        names = {
            tag,
            language_name(tag, locale, translate).lower(),
            language_name(tag, "en", translate).lower(),
        }
        if needle in names:
            exact.append(tag)
        elif any(name.startswith(needle) for name in names):
            prefix.append(tag)
    return exact + prefix
