"""Every command of `python -m bot` names a handler that exists (bot/cli/main.py's `_Lazy` names are
strings mypy cannot follow: a wrong one would only show when someone runs that command)."""

import argparse
import inspect

import pytest

from bot.cli.main import _Lazy, build_parser
from bot.i18n import Translator


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[str, object]]:
    """(command line, handler) of every command that has one, subcommands included."""
    found: list[tuple[str, object]] = []
    handler = parser.get_default("handler")
    if handler is not None:
        found.append((" ".join(path), handler))
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += _commands(child, (*path, name))
    return found


def test_every_lazy_handler_resolves_to_a_function_of_context_and_args() -> None:
    commands = _commands(build_parser(Translator("en")))
    lazy = [(line, handler) for line, handler in commands if isinstance(handler, _Lazy)]
    assert len(lazy) >= 30  # the commands are there at all (32 when this was written)
    for line, handler in lazy:
        assert isinstance(handler, _Lazy)
        resolved = handler.resolve()
        assert callable(resolved), line
        assert list(inspect.signature(resolved).parameters)[:2] in (["ctx", "args"], ["context", "args"]), (
            line
        )


def test_a_wrong_name_is_found_by_resolving_it() -> None:
    with pytest.raises(AttributeError, match="no_such_handler"):
        _Lazy("commands.no_such_handler").resolve()
    with pytest.raises(ModuleNotFoundError, match="no_such_module"):
        _Lazy("no_such_module.run").resolve()
