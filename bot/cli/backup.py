"""`backup` and `restore`: the database and the Matrix store in one archive (see db.backup).

Both work on DATABASE_URL with an engine of their own: a backup must work on a database behind
the code (it comes before `migrate`), and a restore checks the target is empty before anything
migrates it.
"""

import argparse
import os
from datetime import UTC, datetime
from pathlib import Path

from bot.cli.context import Context
from bot.i18n import Translator
from db.backup import BackupRefused, Method, Refusal, backup, restore
from db.engine import database_url, make_engine
from services.errors import InvalidInput
from services.text import N_

REFUSALS = {
    Refusal.NEVER_SET_UP: N_("This database was never set up, so there is nothing to back up."),
    Refusal.NO_FOLDER: N_("The folder “{folder}” does not exist; create it first."),
    Refusal.NOT_AN_ARCHIVE: N_("“{file}” is not a backup of this bot."),
    Refusal.FORMAT_TOO_NEW: N_(
        "“{file}” was written by a newer version of the bot (backup format {format}). "
        "Restore it with that version."
    ),
    Refusal.REVISION_UNKNOWN: N_(
        "The backup's database is at revision {revision}, which this version of the bot does not know. "
        "Restore it with the version that made it."
    ),
    Refusal.NEEDS_POSTGRESQL: N_(
        "This backup was made with pg_dump and restores into PostgreSQL only. To move to SQLite, "
        "make a backup with --logical."
    ),
    Refusal.NO_PG_RESTORE: N_(
        "This backup was made with pg_dump; restoring it needs pg_restore "
        "(the PostgreSQL client tools) on PATH."
    ),
    Refusal.NOT_EMPTY: N_(
        "The database is not empty: table “{table}” holds rows. A restore goes into an empty database "
        "only: create a new one, point DATABASE_URL at it and run the restore again. Nothing was changed."
    ),
    Refusal.STORE_NOT_EMPTY: N_(
        "The Matrix store “{path}” exists and is not empty. A restore writes the store only where there "
        "is none: move it aside or set MATRIX_STORE_PATH to a new directory. Nothing was changed."
    ),
    Refusal.TOOL_FAILED: N_("{tool} failed: {reason}"),
    Refusal.COUNTS_DIFFER: N_(
        "After the restore, table “{table}” holds {found} rows, the backup {expected}. The restore is "
        "incomplete: drop this database and restore into a new one."
    ),
}

METHODS = {
    Method.SQLITE: N_("SQLite's backup API"),
    Method.PG_DUMP: N_("pg_dump"),
    Method.LOGICAL: N_("a logical export"),
}


def matrix_store_path() -> Path:
    """MATRIX_STORE_PATH as the bot resolves it (bot/matrix/session.py), from the working directory."""
    return Path(os.environ.get("MATRIX_STORE_PATH", "").strip() or "matrix-store").resolve()


def _missing_sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names, if it does not exist (SQLite would create it on connecting)."""
    from sqlalchemy import make_url

    if not url.startswith("sqlite"):
        return None
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = Path(database)
    return None if path.exists() else path.resolve()


def size_text(t: Translator, size: int) -> str:
    if size < 1_000_000:
        return f"{t.number(round(size / 1000, 1))} kB"
    return f"{t.number(round(size / 1_000_000, 1))} MB"


def run_backup(ctx: Context, args: argparse.Namespace) -> int:
    """Write the database and the Matrix store into one archive (0600)."""
    missing = _missing_sqlite_file(database_url())
    if missing is not None:  # a mistyped DATABASE_URL: say so instead of making an empty file
        raise InvalidInput(
            N_("The database file “{file}” does not exist: check DATABASE_URL. Nothing was written."),
            file=str(missing),
        )
    engine = make_engine()
    try:
        written = backup(
            engine,
            Path(args.output),
            matrix_store=matrix_store_path(),
            now=datetime.now(UTC),
            logical=args.logical,
        )
    except BackupRefused as exc:
        raise InvalidInput(REFUSALS[exc.refusal], **exc.params) from exc
    finally:
        engine.dispose()
    manifest = written.manifest
    ctx.say(
        "Wrote the backup “{file}” ({size}): {tables} tables with {rows} rows at revision {revision}, "
        "made with {method}.",
        file=str(written.path),
        size=size_text(ctx.translator, written.size),
        tables=len(manifest.rows),
        rows=sum(manifest.rows.values()),
        revision=manifest.revision,
        method=ctx.translator.gettext(METHODS[manifest.method]),
    )
    if manifest.matrix_store:
        ctx.say(
            "It holds the Matrix store “{path}”, but not MATRIX_STORE_KEY: "
            "keep the key apart from the backups.",
            path=str(matrix_store_path()),
        )
    return 0


def run_restore(ctx: Context, args: argparse.Namespace) -> int:
    """Restore a backup into an empty database (and the Matrix store where there is none)."""
    engine = make_engine()
    store = matrix_store_path()
    try:
        restored = restore(engine, Path(args.file), matrix_store=store)
    except BackupRefused as exc:
        raise InvalidInput(REFUSALS[exc.refusal], **exc.params) from exc
    finally:
        engine.dispose()
    manifest = restored.manifest
    ctx.say(
        "Restored “{file}” (made {made_at} with {method}): {tables} tables with {rows} rows. "
        "The database is migrated to this version's schema.",
        file=args.file,
        made_at=manifest.created_at,
        method=ctx.translator.gettext(METHODS[manifest.method]),
        tables=len(manifest.rows),
        rows=sum(manifest.rows.values()),
    )
    if restored.matrix_store is not None:
        ctx.say(
            "Restored the Matrix store into “{path}”. "
            "The bot reads it only with the MATRIX_STORE_KEY it was made with.",
            path=str(restored.matrix_store),
        )
    return 0
