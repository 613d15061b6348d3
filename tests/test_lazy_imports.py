"""Heavy libraries are imported only where they are used (issue 16: memory after start, `--help`).

Each check runs in a fresh interpreter and reads `sys.modules`: what a process imports is
behaviour; how long it takes is measured in bench/, never asserted here.
"""

import argparse
import gettext
import io
import json
import os
import subprocess
import sys
from pathlib import Path

from bot.cli.main import _Lazy, build_parser
from bot.i18n import Translator, compiled_catalog

ROOT = Path(__file__).resolve().parent.parent
HEAVY = (
    "matplotlib",
    "nio",
    "openpyxl",
    "icalendar",
    "sqlalchemy",
    "sqlmodel",
    "alembic",
    "telegram",
    "aiohttp",
)

# Prints the top-level packages of HEAVY that are imported once `code` has run.
PROBE = """
import json, sys
{code}
print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}} & set({heavy!r}))))
"""


def _imported(code: str, **env: str) -> list[str]:
    """The heavy packages a fresh interpreter holds after running `code` (in the repository root)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "MATRIX_"))}
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(code=code, heavy=HEAVY)],
        cwd=ROOT,
        env={**clean, "PYTHONPATH": str(ROOT), "BOT_LOCALE": "en", **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result: list[str] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_help_imports_no_database_layer_and_no_chat_or_drawing_library() -> None:
    code = (
        "import runpy\n"
        "sys.argv = ['bot', '--help']\n"
        "try:\n"
        "    runpy.run_module('bot', run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
    )
    assert _imported(code) == []


def test_a_mistyped_command_is_refused_without_the_database_layer() -> None:
    code = (
        "from bot.cli.main import main\n"
        "try:\n"
        "    main(['no-such-command'])\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 2, exc.code\n"
    )
    assert _imported(code) == []


def test_run_with_telegram_only_imports_no_nio_matplotlib_openpyxl_or_icalendar() -> None:
    """The module graph of `bot run` with TELEGRAM_TOKEN set and no MATRIX_*: everything `run` builds."""
    code = (
        "import os\n"
        "from sqlalchemy import create_engine\n"
        "from bot.cli import commands\n"
        "from bot.transports import configured_transports\n"
        "import bot.health, bot.process, bot.conversation.router\n"
        "transports = configured_transports(create_engine('sqlite://'), os.environ)\n"
        "assert [t.platform for t in transports] == ['telegram'], transports\n"
    )
    imported = _imported(code, TELEGRAM_TOKEN="123:abc")
    assert "telegram" in imported  # the probe did load the Telegram side
    assert not {"nio", "matplotlib", "openpyxl", "icalendar"} & set(imported), imported


def test_matrix_configured_brings_nio_in() -> None:
    """The other side of the check above: with Matrix configured, its transport (and nio) is there."""
    code = (
        "import os\n"
        "from sqlalchemy import create_engine\n"
        "from bot.transports import configured_transports\n"
        "transports = configured_transports(create_engine('sqlite://'), os.environ)\n"
        "assert [t.platform for t in transports] == ['matrix'], transports\n"
    )
    env = {
        "MATRIX_HOMESERVER": "http://127.0.0.1:9",
        "MATRIX_USER_ID": "@bot:example.org",
        "MATRIX_ACCESS_TOKEN": "x",
        "MATRIX_STORE_KEY": "k" * 32,
        "MATRIX_STORE_PATH": "/nonexistent/store",
    }
    assert "nio" in _imported(code, **env)


def test_every_command_names_a_handler_that_exists() -> None:
    """The handlers are named as text (imported when they run): each name must resolve to a function."""
    parser = build_parser(Translator("en"))
    handlers: list[_Lazy] = []

    def walk(p: argparse.ArgumentParser) -> None:
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for command in action.choices.values():
                    handler = command.get_default("handler")
                    if handler is not None:
                        handlers.append(handler)
                    walk(command)

    walk(parser)
    assert len(handlers) == 32
    for handler in handlers:
        assert callable(handler.resolve()), f"{handler.module}.{handler.function}"


def _po(msgstr: str) -> str:
    return (
        'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n'
        f'msgid "Hello"\nmsgstr "{msgstr}"\n'
    )


def test_the_compiled_catalog_is_kept_and_follows_an_edited_po(tmp_path: Path) -> None:
    po = tmp_path / "de" / "LC_MESSAGES" / "messages.po"
    po.parent.mkdir(parents=True)
    po.write_text(_po("Hallo"), encoding="utf-8")

    def hello() -> str:
        return gettext.GNUTranslations(io.BytesIO(compiled_catalog(po))).gettext("Hello")

    assert hello() == "Hallo"
    kept = list((po.parent / "__pycache__").glob("messages.*.mo"))
    assert len(kept) == 1
    assert hello() == "Hallo"  # read from the kept file
    po.write_text(_po("Guten Tag"), encoding="utf-8")
    assert hello() == "Guten Tag"  # the edit is seen: the kept file is named by the .po's hash
    assert [p.name for p in (po.parent / "__pycache__").glob("messages.*.mo")] != [kept[0].name]
    assert len(list((po.parent / "__pycache__").glob("messages.*"))) == 1  # the old one is gone


def test_a_read_only_catalog_folder_is_compiled_in_memory(tmp_path: Path) -> None:
    po = tmp_path / "de" / "LC_MESSAGES" / "messages.po"
    po.parent.mkdir(parents=True)
    po.write_text(_po("Hallo"), encoding="utf-8")
    po.parent.chmod(0o555)
    try:
        translations = gettext.GNUTranslations(io.BytesIO(compiled_catalog(po)))
        assert translations.gettext("Hello") == "Hallo"
        assert not (po.parent / "__pycache__").exists() or os.geteuid() == 0
    finally:
        po.parent.chmod(0o755)
