"""docs/datenschutz.md classifies every column of every table: a new column fails here until it is."""

import re
from pathlib import Path

from sqlmodel import SQLModel

import db.models  # noqa: F401  (registers the tables)

DOC = Path(__file__).resolve().parent.parent / "docs" / "datenschutz.md"
KINDS = {"direkt", "Kennung", "Freitext", "nein"}
CONCERNS = {"Dolmetscher/in": "interpreter", "Schule": "school", "Koordination": "coordinator"}


def _inventory() -> dict[str, dict[str, str]]:
    """Per table heading (### `name`), each column row's "Personenbezug"."""
    tables: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        heading = re.fullmatch(r"### `(\w+)`", line.strip())
        if heading:
            current = tables.setdefault(heading.group(1), {})
            continue
        row = re.match(r"\| `(\w+)` \|", line)
        if row and current is not None:
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            assert len(cells) == 4, f"a row needs Spalte | Inhalt | Personenbezug | Aufbewahrung: {line}"
            current[row.group(1)] = cells[2]
    return tables


def concerns() -> dict[str, set[str]]:
    """Per table, the roles it holds data about (its `Betrifft:` line: names of CONCERNS, or –)."""
    found: dict[str, set[str]] = {}
    table = None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        heading = re.fullmatch(r"### `(\w+)`", line.strip())
        if heading:
            table = heading.group(1)
        elif line.startswith("Betrifft:") and table is not None:
            names = [name.strip() for name in line.removeprefix("Betrifft:").split(",")]
            found[table] = {CONCERNS[name] for name in names if name != "–"}
            table = None
    return found


def test_every_column_of_every_table_is_classified_and_nothing_stale_is() -> None:
    documented = _inventory()
    actual = {table.name: [c.name for c in table.columns] for table in SQLModel.metadata.sorted_tables}
    missing = [f"{t}.{c}" for t, columns in actual.items() for c in columns if c not in documented.get(t, {})]
    stale = [f"{t}.{c}" for t, columns in documented.items() for c in columns if c not in actual.get(t, [])]
    assert missing == [], f"classify these in {DOC.name}: {missing}"
    assert stale == [], f"these are in {DOC.name} but not in the models: {stale}"


def test_each_column_has_one_of_the_four_kinds() -> None:
    odd = {
        f"{t}.{c}": kind
        for t, columns in _inventory().items()
        for c, kind in columns.items()
        if kind not in KINDS
    }
    assert odd == {}


def test_the_contact_data_and_free_texts_are_classified_as_what_they_are() -> None:
    inventory = _inventory()
    assert {c: inventory["interpreter"][c] for c in ("name", "phone", "email", "gender")} == dict.fromkeys(
        ("name", "phone", "email", "gender"), "direkt"
    )
    assert (inventory["request"]["note"], inventory["request"]["place"]) == ("Freitext", "Freitext")
    assert inventory["closeout"]["dispute_reason"] == "Freitext"
    assert inventory["outbox_message"]["params"] == "Freitext"
    assert inventory["chat_identity"]["user_id"] == "direkt"


def test_each_table_says_whom_it_concerns() -> None:
    """Every table has a `Betrifft:` line naming known kinds of person (the export is checked against it)."""
    assert sorted(concerns()) == sorted(_inventory())
