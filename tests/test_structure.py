"""The shape the code must keep: imports run bot -> services -> db, and every text is translated."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from bot.i18n import LOCALES, Translator, catalog_path

ROOT = Path(__file__).resolve().parent.parent


def _keywords() -> list[str]:
    """The extraction keywords `locales/update.py` uses, so the test checks exactly what it extracts."""
    source = (ROOT / "locales" / "update.py").read_text()
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "KEYWORDS":
            value = ast.literal_eval(node.value)
            assert isinstance(value, list)
            return [str(v) for v in value]
    raise AssertionError("locales/update.py defines no KEYWORDS")


KEYWORDS = _keywords()
FORBIDDEN = {"db": {"services", "bot"}, "services": {"bot", "telegram", "nio", "apscheduler"}}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_imports_run_one_way(layer: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imports(path) & FORBIDDEN[layer])
        for path in (ROOT / layer).rglob("*.py")
    }
    assert {p: bad for p, bad in offenders.items() if bad} == {}


def test_every_message_has_a_german_and_an_english_translation(tmp_path: Path) -> None:
    pot = tmp_path / "messages.pot"
    subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", "extract",
         "-F", str(ROOT / "locales" / "babel.cfg"),
         *KEYWORDS, "-o", str(pot), "--omit-header", str(ROOT)],
        capture_output=True,
        check=True,
    )  # fmt: skip
    with pot.open("rb") as f:
        wanted = {m.id for m in read_po(f) if m.id}
    assert len(wanted) > 100
    for locale in LOCALES:
        with catalog_path(locale).open("rb") as f:
            catalog = read_po(f, locale=locale)
        # A plural entry's id and string are tuples (singular and plural): each form must be there.
        translated = {m.id: m.string for m in catalog if m.id and m.string and all(m.string) and not m.fuzzy}
        assert sorted(wanted - set(translated), key=str) == [], f"untranslated in {locale}"
        for msgid, text in translated.items():
            if isinstance(msgid, tuple):
                assert isinstance(text, tuple), (locale, msgid)
                assert len(text) == 2, (locale, msgid)
                # The singular may say `once` instead of `{count}`; nothing else may be missing or new.
                named = set(re.findall(r"{(\w*)}", msgid[1]))
                assert set(re.findall(r"{(\w*)}", text[1])) == named, (locale, msgid)
                assert set(re.findall(r"{(\w*)}", text[0])) | {"count"} >= named, (locale, msgid)
                continue
            assert isinstance(msgid, str)
            assert isinstance(text, str)
            assert set(re.findall(r"{(\w*)}", msgid)) == set(re.findall(r"{(\w*)}", text)), (locale, msgid)


def test_money_dates_and_languages_follow_the_locale() -> None:
    de, en = Translator("de"), Translator("en")
    assert (de.money(2400), en.money(2400)) == ("24,00\xa0€", "€24.00")
    assert (de.language("ar"), en.language("ar"), de.language("kmr"), en.language("prs")) == (
        "Arabisch", "Arabic", "Kurmandschi (Nordkurdisch)", "Dari",
    )  # fmt: skip
    assert de.when("2026-03-10T09:00:00+00:00") == "Di., 10.03.2026, 10:00 Uhr"
    assert en.when("2026-03-10T09:00:00+00:00") == "Tue 10 Mar 2026, 10:00"
    message = "Requests {mode} need more notice; the earliest possible start is {earliest_at}."
    rendered = de.render(message, {"mode": "in_person", "earliest_at": "2026-03-10T09:00:00+00:00"})
    assert rendered.startswith("Anfragen vor Ort")
    assert rendered.endswith("Di., 10.03.2026, 10:00 Uhr.")
