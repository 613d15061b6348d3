"""Refresh the catalogs: extract message ids, merge them into de and en, copy ids into en.

English is the source language, so an English entry is its id; German is translated by hand.
Run with `make catalogs`; the test suite fails while any German entry is missing.
"""

import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po, write_po

HERE = Path(__file__).resolve().parent
KEYWORDS = [
    "-k", "N_", "-k", "render", "-k", "say", "-k", "ask", "-k", "ask_number", "-k", "choice:2",
    "-k", "render_plural:1,2",  # singular and plural (ngettext, a default keyword, is extracted too)
]  # fmt: skip


def main() -> None:
    pot = HERE / "messages.pot"
    pybabel = [sys.executable, "-m", "babel.messages.frontend"]
    subprocess.run(
        [*pybabel, "extract", "-F", str(HERE / "babel.cfg"), *KEYWORDS, "-o", str(pot),
         "--no-location", "--sort-output", "--omit-header", str(HERE.parent)],
        check=True,
    )  # fmt: skip
    subprocess.run(
        [*pybabel, "update", "-i", str(pot), "-d", str(HERE), "--no-fuzzy-matching", "--ignore-obsolete"],
        check=True,
    )
    english = HERE / "en" / "LC_MESSAGES" / "messages.po"
    with english.open("rb") as f:
        catalog = read_po(f, locale="en")
    for message in catalog:
        if isinstance(message.id, tuple) and not all(message.string or ()):
            message.string = message.id  # singular and plural, English's two forms
        elif message.id and not message.string:
            message.string = message.id
    with english.open("wb") as f:
        write_po(f, catalog, omit_header=False, no_location=True, sort_output=True)


if __name__ == "__main__":
    main()
