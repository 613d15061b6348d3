"""Backups of the database and the Matrix store into one archive, and a restore into an empty database.

The archive is a gzipped tar, written 0600 to a temporary file beside the target and renamed at the
end, so a half-written backup never looks finished. It holds `manifest.json` (format, moment, dialect,
method, Alembic revision, rows per table), the database in one of three forms, and the Matrix store:

- `sqlite`: a snapshot made with SQLite's online backup API (consistent while the bot writes);
- `pg_dump`: `pg_dump -Fc` taken in the same snapshot the rows were counted in;
- `logical`: every table's rows as JSON lines, for PostgreSQL without pg_dump, or on request.

A restore refuses a database that holds any row (empty tables from `init`/`migrate` are fine) and
a Matrix store that is not empty, before it changes anything. A `sqlite` or `logical` backup restores
into either database (rows are copied at the backup's revision), a `pg_dump` one into PostgreSQL only.
Afterwards the rows are counted against the manifest and the database is migrated to head.
"""

import base64
import enum
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import Connection, MetaData, Table, create_engine, func, inspect, select, text
from sqlalchemy.engine import URL, Engine

from db.migrate import is_known_revision, upgrade

FORMAT = 1
MANIFEST = "manifest.json"
SQLITE_MEMBER = "database.sqlite3"
DUMP_MEMBER = "database.dump"
ROWS_DIR = "rows"
STORE_DIR = "matrix-store"
ALEMBIC_TABLE = "alembic_version"
SQLITE_HEADER = b"SQLite format 3\x00"
CHUNK = 500


class Method(enum.StrEnum):
    SQLITE = "sqlite"
    PG_DUMP = "pg_dump"
    LOGICAL = "logical"


class Refusal(enum.Enum):
    """Why a backup or restore stopped; the edge turns each into a sentence (params in brackets)."""

    NEVER_SET_UP = "never_set_up"
    NO_FOLDER = "no_folder"  # folder
    NOT_AN_ARCHIVE = "not_an_archive"  # file
    FORMAT_TOO_NEW = "format_too_new"  # file, format
    REVISION_UNKNOWN = "revision_unknown"  # revision
    NEEDS_POSTGRESQL = "needs_postgresql"
    NO_PG_RESTORE = "no_pg_restore"
    NOT_EMPTY = "not_empty"  # table
    STORE_NOT_EMPTY = "store_not_empty"  # path
    TOOL_FAILED = "tool_failed"  # tool, reason
    COUNTS_DIFFER = "counts_differ"  # table, expected, found


class BackupRefused(Exception):
    """A backup or restore that cannot go on; nothing was written (or, for a restore, changed)."""

    def __init__(self, refusal: Refusal, **params: object) -> None:
        super().__init__(refusal.value)
        self.refusal = refusal
        self.params = params


@dataclass(frozen=True)
class Manifest:
    format: int
    created_at: datetime
    dialect: str
    method: Method
    revision: str
    rows: dict[str, int]
    matrix_store: bool

    def to_json(self) -> bytes:
        data = {
            "format": self.format,
            "created_at": self.created_at.astimezone(UTC).isoformat(),
            "dialect": self.dialect,
            "method": self.method.value,
            "revision": self.revision,
            "rows": self.rows,
            "matrix_store": self.matrix_store,
        }
        return json.dumps(data, indent=2, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> "Manifest":
        data = json.loads(raw)
        return cls(
            format=int(data["format"]),
            created_at=datetime.fromisoformat(data["created_at"]),
            dialect=str(data["dialect"]),
            method=Method(data["method"]),
            revision=str(data["revision"]),
            rows={str(k): int(v) for k, v in data["rows"].items()},
            matrix_store=bool(data["matrix_store"]),
        )


@dataclass(frozen=True)
class Written:
    path: Path
    size: int
    manifest: Manifest


# -- backup ----------------------------------------------------------------------------------------


def backup(
    engine: Engine, output: Path, *, matrix_store: Path | None, now: datetime, logical: bool = False
) -> Written:
    """Write the database (and the Matrix store, when that directory exists) into the archive `output`.

    On PostgreSQL pg_dump is used when it is on PATH, unless `logical`; SQLite is always snapshotted
    first, so the bot can keep writing meanwhile.
    """
    folder = output.parent
    if not folder.is_dir():
        raise BackupRefused(Refusal.NO_FOLDER, folder=str(folder))
    with tempfile.TemporaryDirectory(dir=folder, prefix=f".{output.name}.") as scratch:
        work = Path(scratch)
        if engine.dialect.name == "sqlite":
            method, revision, rows = _backup_sqlite(engine, work, logical=logical)
        else:
            method, revision, rows = _backup_postgresql(engine, work, logical=logical)
        store = matrix_store if matrix_store is not None and matrix_store.is_dir() else None
        manifest = Manifest(FORMAT, now, engine.dialect.name, method, revision, rows, store is not None)
        (work / MANIFEST).write_bytes(manifest.to_json())
        partial = work / "backup.tar.gz"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            tar.add(work / MANIFEST, arcname=MANIFEST, filter=_private)
            for member in (SQLITE_MEMBER, DUMP_MEMBER, ROWS_DIR):
                if (work / member).exists():
                    tar.add(work / member, arcname=member, filter=_private)
            if store is not None:
                _add_store(tar, store, work / "store-snapshots")
            raw.flush()
            os.fsync(raw.fileno())
        partial.chmod(0o600)
        os.replace(partial, output)
    return Written(output, output.stat().st_size, manifest)


def _private(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Owner-only modes and no owner names in the archive (the restore sets its own modes anyway)."""
    info.mode = 0o700 if info.isdir() else 0o600
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _backup_sqlite(engine: Engine, work: Path, *, logical: bool) -> tuple[Method, str, dict[str, int]]:
    snapshot = work / SQLITE_MEMBER
    _sqlite_copy(engine, snapshot)
    plain = create_engine(f"sqlite:///{snapshot}")
    try:
        with plain.connect() as connection:
            revision = _revision(connection)
            rows = _export_rows(connection, work / ROWS_DIR) if logical else _count_rows(connection)
    finally:
        plain.dispose()
    if logical:
        snapshot.unlink()
    return (Method.LOGICAL if logical else Method.SQLITE), revision, rows


def _sqlite_copy(engine: Engine, snapshot: Path) -> None:
    """A consistent copy of a live SQLite database (its WAL included), as a plain rollback-journal file."""
    source = engine.raw_connection()
    target = sqlite3.connect(snapshot)
    try:
        connection = source.driver_connection
        assert isinstance(connection, sqlite3.Connection)
        connection.backup(target)
        target.execute("PRAGMA journal_mode=DELETE")
    finally:
        target.close()
        source.close()


def _backup_postgresql(engine: Engine, work: Path, *, logical: bool) -> tuple[Method, str, dict[str, int]]:
    pg_dump = None if logical else shutil.which("pg_dump")
    isolated = engine.connect().execution_options(isolation_level="REPEATABLE READ")
    with isolated as connection, connection.begin():
        connection.execute(text("SET TRANSACTION READ ONLY"))
        revision = _revision(connection)
        if pg_dump is None:
            return Method.LOGICAL, revision, _export_rows(connection, work / ROWS_DIR)
        # pg_dump reads the very snapshot the rows are counted in, while this transaction stays open.
        snapshot = connection.execute(text("SELECT pg_export_snapshot()")).scalar_one()
        rows = _count_rows(connection)
        _run(
            [pg_dump, "--format=custom", "--no-owner", "--no-privileges",
             f"--snapshot={snapshot}", f"--file={work / DUMP_MEMBER}"],
            engine.url,
        )  # fmt: skip
        return Method.PG_DUMP, revision, rows


def _revision(connection: Connection) -> str:
    from alembic.runtime.migration import MigrationContext

    revision = MigrationContext.configure(connection).get_current_revision()
    if revision is None:
        raise BackupRefused(Refusal.NEVER_SET_UP)
    return revision


def _tables(connection: Connection) -> list[Table]:
    """The database's own tables (not alembic's), parents before children."""
    metadata = MetaData()
    metadata.reflect(bind=connection)
    return [table for table in metadata.sorted_tables if table.name != ALEMBIC_TABLE]


def _count_rows(connection: Connection) -> dict[str, int]:
    return {
        table.name: int(connection.execute(select(func.count()).select_from(table)).scalar_one())
        for table in _tables(connection)
    }


def _export_rows(connection: Connection, folder: Path) -> dict[str, int]:
    """Write each table's rows as JSON lines (`rows/TABLE.jsonl`), in primary-key order."""
    folder.mkdir()
    counts: dict[str, int] = {}
    for table in _tables(connection):
        count = 0
        with (folder / f"{table.name}.jsonl").open("w", encoding="utf-8") as out:
            query = select(table).order_by(*table.primary_key.columns)
            for row in connection.execution_options(yield_per=1000).execute(query).mappings():
                out.write(json.dumps({name: _encode(value) for name, value in row.items()}) + "\n")
                count += 1
        counts[table.name] = count
    return counts


def _encode(value: Any) -> Any:
    """A column value as JSON, tagged where JSON has no type of its own (lossless both ways)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return {"datetime": (value.astimezone(UTC) if value.tzinfo else value).isoformat()}
    if isinstance(value, date):
        return {"date": value.isoformat()}
    if isinstance(value, time):
        return {"time": value.isoformat()}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, Decimal):
        return {"decimal": str(value)}
    if isinstance(value, dict | list):
        return {"json": value}
    raise TypeError(f"cannot back up a value of type {type(value).__name__}")


def _decode(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    ((tag, raw),) = value.items()
    if tag == "datetime":
        return datetime.fromisoformat(raw)
    if tag == "date":
        return date.fromisoformat(raw)
    if tag == "time":
        return time.fromisoformat(raw)
    if tag == "bytes":
        return base64.b64decode(raw)
    if tag == "decimal":
        return Decimal(raw)
    return raw  # "json"


def _add_store(tar: tarfile.TarFile, store: Path, snapshots: Path) -> None:
    """Add the Matrix store; its SQLite files (nio's keys) through the backup API: the bot may be writing."""
    tar.add(store, arcname=STORE_DIR, recursive=False, filter=_private)
    databases = {path for path in store.rglob("*") if path.is_file() and _is_sqlite(path)}
    for path in sorted(store.rglob("*")):
        relative = path.relative_to(store)
        name = f"{STORE_DIR}/{relative.as_posix()}"
        if path.is_symlink() or not (path.is_dir() or path.is_file()):
            continue
        if path.is_dir():
            tar.add(path, arcname=name, recursive=False, filter=_private)
        elif path in databases:
            copy = snapshots / relative
            copy.parent.mkdir(parents=True, exist_ok=True)
            _sqlite_file_copy(path, copy)
            tar.add(copy, arcname=name, filter=_private)
        elif not any(path.with_name(path.name.removesuffix(s)) in databases for s in _SQLITE_SIDE_FILES):
            tar.add(path, arcname=name, filter=_private)


_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def _is_sqlite(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(len(SQLITE_HEADER)) == SQLITE_HEADER


def _sqlite_file_copy(path: Path, copy: Path) -> None:
    source, target = sqlite3.connect(path), sqlite3.connect(copy)
    try:
        source.backup(target)
        target.execute("PRAGMA journal_mode=DELETE")
    finally:
        target.close()
        source.close()


# -- restore ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Restored:
    manifest: Manifest
    matrix_store: Path | None  # where the store was written, None when the backup has none


def read_manifest(archive: Path) -> Manifest:
    """The manifest of a backup; refused when the file is not one this code can restore."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            member = tar.extractfile(MANIFEST)
            assert member is not None
            raw = member.read()
    except (tarfile.TarError, KeyError, AssertionError, EOFError, OSError) as exc:
        if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError):
            raise
        raise BackupRefused(Refusal.NOT_AN_ARCHIVE, file=str(archive)) from exc
    try:
        data = json.loads(raw)
        version = int(data["format"])
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupRefused(Refusal.NOT_AN_ARCHIVE, file=str(archive)) from exc
    if version > FORMAT:
        raise BackupRefused(Refusal.FORMAT_TOO_NEW, file=str(archive), format=version)
    try:
        return Manifest.from_json(raw)
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupRefused(Refusal.NOT_AN_ARCHIVE, file=str(archive)) from exc


def restore(engine: Engine, archive: Path, *, matrix_store: Path) -> Restored:
    """Restore `archive` into the empty database of `engine`, and its Matrix store into `matrix_store`.

    Everything that can refuse is checked before the database or the store is touched: the archive,
    the revision (known to this code), the target's dialect and tools, an empty store, an empty database.
    """
    manifest = read_manifest(archive)
    if not is_known_revision(manifest.revision):
        raise BackupRefused(Refusal.REVISION_UNKNOWN, revision=manifest.revision)
    target = engine.dialect.name
    pg_restore = shutil.which("pg_restore")
    if manifest.method is Method.PG_DUMP:
        if target != "postgresql":
            raise BackupRefused(Refusal.NEEDS_POSTGRESQL)
        if pg_restore is None:
            raise BackupRefused(Refusal.NO_PG_RESTORE)
    if manifest.matrix_store and _holds_files(matrix_store):
        raise BackupRefused(Refusal.STORE_NOT_EMPTY, path=str(matrix_store))
    filled = first_filled_table(engine)
    if filled is not None:
        raise BackupRefused(Refusal.NOT_EMPTY, table=filled)
    with tarfile.open(archive, "r:gz") as tar, tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        if manifest.method is Method.SQLITE:
            snapshot = _extract_file(tar, SQLITE_MEMBER, work)
            if target == "sqlite":
                _sqlite_replace(engine, snapshot)
            else:
                _copy_rows_from_sqlite(engine, snapshot, manifest.revision)
        elif manifest.method is Method.PG_DUMP:
            assert pg_restore is not None
            dump = _extract_file(tar, DUMP_MEMBER, work)
            _drop_tables(engine)
            _run([pg_restore, "--no-owner", "--no-privileges", "--single-transaction", "--exit-on-error",
                  f"--dbname={_database_name(engine.url)}", str(dump)], engine.url)  # fmt: skip
        else:
            _clear_to_revision(engine, manifest.revision)
            _import_rows(engine, lambda name: _archived_rows(tar, name))
        _check_counts(engine, manifest.rows)
        upgrade(engine)
        written = None
        if manifest.matrix_store:
            _restore_store(tar, matrix_store)
            written = matrix_store
    return Restored(manifest, written)


def _holds_files(store: Path) -> bool:
    if not store.exists():
        return False
    return not store.is_dir() or any(store.iterdir())


def first_filled_table(engine: Engine) -> str | None:
    """The first table (by name) that holds a row, alembic's excepted; None for an empty database."""
    with engine.connect() as connection:
        for name in sorted(inspect(connection).get_table_names()):
            if name == ALEMBIC_TABLE:
                continue
            table = Table(name, MetaData())
            if connection.execute(select(text("1")).select_from(table).limit(1)).first() is not None:
                return name
    return None


def _extract_file(tar: tarfile.TarFile, name: str, work: Path) -> Path:
    member = tar.extractfile(name)
    if member is None:
        raise KeyError(name)
    path = work / name
    with member, path.open("wb") as out:
        shutil.copyfileobj(member, out)
    return path


def _sqlite_replace(engine: Engine, snapshot: Path) -> None:
    """Replace the (empty) target with the snapshot, page by page, through SQLite's backup API."""
    source = sqlite3.connect(snapshot)
    target = engine.raw_connection()
    try:
        connection = target.driver_connection
        assert isinstance(connection, sqlite3.Connection)
        source.backup(connection)
    finally:
        target.close()
        source.close()
    engine.dispose()  # pooled connections may hold the old schema


def _copy_rows_from_sqlite(engine: Engine, snapshot: Path, revision: str) -> None:
    """A SQLite backup into PostgreSQL: the rows of the snapshot, copied at its revision."""
    _clear_to_revision(engine, revision)
    plain = create_engine(f"sqlite:///{snapshot}")
    try:
        with plain.connect() as source:
            tables = {table.name: table for table in _tables(source)}

            def rows(name: str) -> Iterator[dict[str, Any]]:
                if name not in tables:
                    return iter(())
                query = select(tables[name]).order_by(*tables[name].primary_key.columns)
                return (dict(row) for row in source.execute(query).mappings())

            _import_rows(engine, rows)
    finally:
        plain.dispose()


def _archived_rows(tar: tarfile.TarFile, name: str) -> Iterator[dict[str, Any]]:
    try:
        member = tar.extractfile(f"{ROWS_DIR}/{name}.jsonl")
    except KeyError:
        return
    if member is None:
        return
    with io.TextIOWrapper(member, encoding="utf-8") as lines:
        for line in lines:
            yield {column: _decode(value) for column, value in json.loads(line).items()}


def _drop_tables(engine: Engine) -> None:
    """Drop the target's tables (all empty, checked before) so the backup's schema replaces them."""
    with engine.begin() as connection:
        metadata = MetaData()
        metadata.reflect(bind=connection)
        metadata.drop_all(bind=connection)


def _clear_to_revision(engine: Engine, revision: str) -> None:
    """An empty schema at `revision`, whatever revision the (empty) target had."""
    _drop_tables(engine)
    upgrade(engine, revision)


def _import_rows(engine: Engine, rows_of: Callable[[str], Iterable[dict[str, Any]]]) -> None:
    """Insert every table's rows, parents first, in one transaction; then PostgreSQL's id sequences."""
    with engine.begin() as connection:
        tables = _tables(connection)
        for table in tables:
            chunk: list[dict[str, Any]] = []
            for row in rows_of(table.name):
                chunk.append(_fit(table, row, connection.dialect.name))
                if len(chunk) == CHUNK:
                    connection.execute(table.insert(), chunk)
                    chunk = []
            if chunk:
                connection.execute(table.insert(), chunk)
        if connection.dialect.name == "postgresql":
            for table in tables:
                _reset_sequences(connection, table)


def _fit(table: Table, row: Mapping[str, Any], dialect: str) -> dict[str, Any]:
    """A row for the target: datetimes in UTC, naive on SQLite and aware on PostgreSQL."""
    fitted: dict[str, Any] = {}
    for name, value in row.items():
        if isinstance(value, datetime):
            if dialect == "sqlite":
                value = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
            elif value.tzinfo is None:
                value = value.replace(tzinfo=UTC)  # SQLite keeps UTC without a zone
        fitted[name] = value
    return fitted


def _reset_sequences(connection: Connection, table: Table) -> None:
    """Let the next id follow the restored ones (the rows came with their ids)."""
    for column in table.primary_key.columns:
        serial = select(func.pg_get_serial_sequence(table.name, column.name))
        sequence = connection.execute(serial).scalar_one()
        if sequence is None:
            continue
        highest = connection.execute(select(func.max(column))).scalar_one()
        connection.execute(
            text("SELECT setval(:sequence, :value, :called)"),
            {"sequence": sequence, "value": highest or 1, "called": highest is not None},
        )


def _check_counts(engine: Engine, expected: Mapping[str, int]) -> None:
    with engine.connect() as connection:
        found = _count_rows(connection)
    for table, count in sorted(expected.items()):
        if found.get(table, 0) != count:
            raise BackupRefused(Refusal.COUNTS_DIFFER, table=table, expected=count, found=found.get(table, 0))


def _restore_store(tar: tarfile.TarFile, store: Path) -> None:
    """Write the store's files into a new directory beside `store` (0700, files 0600), then move it in."""
    store.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(dir=store.parent, prefix=f".{store.name}.restore-"))
    try:
        for member in tar.getmembers():
            parts = PurePosixPath(member.name).parts
            if not parts or parts[0] != STORE_DIR or len(parts) == 1:
                continue
            if ".." in parts or member.name.startswith("/"):
                raise BackupRefused(Refusal.NOT_AN_ARCHIVE, file=str(tar.name))
            path = fresh.joinpath(*parts[1:])
            if member.isdir():
                path.mkdir(mode=0o700, parents=True, exist_ok=True)
                path.chmod(0o700)
            elif member.isfile():
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with source, os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(source, out)
        fresh.chmod(0o700)
        if store.exists():
            store.rmdir()  # empty, checked before
        fresh.rename(store)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise


# -- pg_dump and pg_restore ------------------------------------------------------------------------

# libpq's connection parameters that a URL may carry in its query, and their environment variables.
_LIBPQ_ENV = {
    "host": "PGHOST",
    "hostaddr": "PGHOSTADDR",
    "port": "PGPORT",
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslcrl": "PGSSLCRL",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "application_name": "PGAPPNAME",
    "options": "PGOPTIONS",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
    "service": "PGSERVICE",
    "passfile": "PGPASSFILE",
    "channel_binding": "PGCHANNELBINDING",
    "gssencmode": "PGGSSENCMODE",
}


def libpq_environment(url: URL) -> dict[str, str]:
    """The environment that points pg_dump/pg_restore at `url`: the password never goes on a command line."""
    env = dict(os.environ)
    for key, value in url.query.items():
        if key in _LIBPQ_ENV:
            env[_LIBPQ_ENV[key]] = value if isinstance(value, str) else value[-1]
    given: tuple[tuple[str, str | None], ...] = (
        ("PGHOST", url.host),
        ("PGPORT", str(url.port) if url.port else None),
        ("PGUSER", url.username),
        ("PGPASSWORD", url.password),
        ("PGDATABASE", url.database),
    )
    for name, setting in given:
        if setting:
            env[name] = setting
    return env


def _database_name(url: URL) -> str:
    return url.database or url.username or "postgres"


def _run(command: list[str], url: URL) -> None:
    # The command is ours (a tool found on PATH and fixed options); no shell.
    result = subprocess.run(  # noqa: S603
        command, env=libpq_environment(url), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        reason = " ".join(result.stderr.strip().splitlines()[-3:]) or f"exit status {result.returncode}"
        if url.password:
            reason = reason.replace(str(url.password), "***")
        raise BackupRefused(Refusal.TOOL_FAILED, tool=Path(command[0]).name, reason=reason)
