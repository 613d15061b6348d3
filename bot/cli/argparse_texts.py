"""argparse's own texts (usage, headings, errors) through our catalogs, in `BOT_LOCALE`'s language.

argparse translates with the `_` and `ngettext` it imported from `gettext` into its module;
`translated_argparse` points those two at a Translator while a parser is built and used, and puts
them back afterwards. The ids below are argparse's own, character for character as Python 3.11
writes them; they are listed here so that `locales/update.py` extracts them. A test compares this
list with the running Python's argparse, so a new Python that words them differently fails loudly.
"""

import argparse
from collections.abc import Iterator
from contextlib import contextmanager

from bot.i18n import Translator
from services.text import N_

ARGPARSE_TEXTS = (
    N_("usage: "),
    N_("positional arguments"),
    N_("options"),
    N_("show this help message and exit"),
    N_("%(prog)s: error: %(message)s\n"),
    N_("argument %(argument_name)s: %(message)s"),
    N_("the following arguments are required: %s"),
    N_("one of the arguments %s is required"),
    N_("unrecognized arguments: %s"),
    N_("invalid choice: %(value)r (choose from %(choices)s)"),
    N_("invalid %(type)s value: %(value)r"),
    N_("unknown parser %(parser_name)r (choices: %(choices)s)"),
    N_("expected one argument"),
    N_("expected at most one argument"),
    N_("expected at least one argument"),
    N_("ambiguous option: %(option)s could match %(matches)s"),
    N_("not allowed with argument %s"),
    N_("ignored explicit argument %r"),
    N_("unexpected option string: %s"),
    N_("can't open '%(filename)s': %(error)s"),
)


def expected_arguments(t: Translator, n: int) -> str:
    """argparse's one plural text (`nargs=N`); written out here so that extraction keeps the pair."""
    return t.ngettext("expected %s argument", "expected %s arguments", n) % n


@contextmanager
def translated_argparse(t: Translator) -> Iterator[None]:
    """argparse speaks `t`'s language inside the block (building the parser and parsing with it)."""
    # argparse offers no hook for its texts; its module-level `_` and `ngettext` are the seam.
    ours = {"_": t.gettext, "ngettext": t.ngettext}
    saved = {name: getattr(argparse, name) for name in ours}
    for name, function in ours.items():
        setattr(argparse, name, function)
    try:
        yield
    finally:
        for name, function in saved.items():
            setattr(argparse, name, function)
