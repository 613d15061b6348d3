"""The start of `bot run` (issue 16: start to first getUpdates): what it reads and imports, and in what order.

The schema check reads the migration files' ids and the `alembic_version` table without Alembic;
these tests hold its answers to Alembic's own. What a process imports is read from `sys.modules`
in a fresh interpreter; how long anything takes is measured in bench/startup.py, never here.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

import db.migrate
from db.engine import make_engine
from db.migrate import (
    alembic_config_without_engine,
    current_revision,
    head_revision,
    is_known_revision,
    upgrade,
)

ROOT = Path(__file__).resolve().parent.parent


def _alembic_current(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def test_head_and_known_revisions_are_alembics_own() -> None:
    scripts = ScriptDirectory.from_config(alembic_config_without_engine())
    known = sorted(script.revision for script in scripts.walk_revisions())
    assert db.migrate._plain_chain() is not None  # the files are read plainly: Alembic is not asked
    assert head_revision() == scripts.get_current_head()
    assert sorted(db.migrate._plain_chain() or {}) == known
    assert len(known) >= 13
    for revision in known:
        assert is_known_revision(revision), revision
    for unknown in ("0099", "0000", "00", "head", ""):
        assert not is_known_revision(unknown), unknown


def test_a_migration_file_not_in_the_plain_form_is_left_to_alembic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A merge (a tuple of parents) is not read plainly: Alembic answers, and its answer counts."""
    migrations = tmp_path / "migrations"
    shutil.copytree(db.migrate.MIGRATIONS, migrations, ignore=shutil.ignore_patterns("__pycache__"))
    head = head_revision()
    (migrations / "versions" / "9999_merge.py").write_text(
        f'revision = "9999"\ndown_revision = ("{head}",)\nbranch_labels = None\ndepends_on = None\n\n\n'
        "def upgrade() -> None:\n    pass\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(db.migrate, "MIGRATIONS", migrations)
    assert db.migrate._plain_chain() is None
    assert head_revision() == "9999"
    assert is_known_revision("9999")
    assert is_known_revision(head)
    assert not is_known_revision("0099")


def test_current_revision_reads_what_alembic_reads(never_migrated: str) -> None:
    engine = make_engine(never_migrated)
    try:
        assert current_revision(engine) is None
        assert _alembic_current(engine) is None
        upgrade(engine, "0008")
        assert current_revision(engine) == _alembic_current(engine) == "0008"
        upgrade(engine)
        assert current_revision(engine) == _alembic_current(engine) == head_revision()
    finally:
        engine.dispose()


# Runs the schema check `run` runs (Context.prepare_schema) and prints what it left: the
# revision, and which of the libraries below the process imported.
SCHEMA_PROBE = """
import json, sys
from bot.cli.context import Context, Schema
from bot.i18n import Translator
from db.migrate import current_revision
context = Context(translator=Translator("en"), schema=Schema.LATER)
context.prepare_schema()
revision = current_revision(context.engine)
context.close()
print(json.dumps([revision, sorted({m.split(".")[0] for m in sys.modules} & {"alembic", "mako", "aiohttp"})]))
"""


def _schema_check(url: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("AUTO_MIGRATE", "DATABASE_URL")}
    return subprocess.run(
        [sys.executable, "-c", SCHEMA_PROBE],
        cwd=ROOT,
        env={**clean, "PYTHONPATH": str(ROOT), "BOT_LOCALE": "en", "DATABASE_URL": url, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_an_up_to_date_database_is_checked_without_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'current.sqlite3'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    done = _schema_check(url)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [head_revision(), []]


def test_a_database_behind_is_still_migrated_with_auto_migrate_and_refused_without(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'behind.sqlite3'}"
    engine = make_engine(url)
    upgrade(engine, "0008")
    engine.dispose()
    refused = _schema_check(url)
    assert refused.returncode == 1
    assert "InvalidInput" in refused.stderr
    engine = make_engine(url)
    assert current_revision(engine) == "0008"  # refused: nothing changed
    engine.dispose()
    migrated = _schema_check(url, AUTO_MIGRATE="1")
    assert migrated.returncode == 0, migrated.stderr
    assert json.loads(migrated.stdout) == [head_revision(), ["alembic", "mako"]]
