"""`backup` and `restore`: round trips on SQLite and PostgreSQL (pg_dump and the logical export),
from SQLite to PostgreSQL, the Matrix store, and the refusals that change nothing."""

import itertools
import json
import os
import sqlite3
import stat
import tarfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect
from sqlalchemy import select as core_select
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel, col, select

import db.models  # noqa: F401  (the tables, for the metadata)
from bot.cli.main import main
from db.engine import make_engine
from db.migrate import current_revision, head_revision, upgrade
from db.models import Budget, ChatIdentity, LedgerEntry, Member, Offer, Request
from db.uow import UnitOfWork
from services import closeout
from services.deliveries import add_answer
from services.identities import link
from services.invites import create_invite
from services.vocabulary import Role
from tests.builders import ACTOR, NOW, SOON, book, build_world, submit
from tests.pg_cluster import PostgresCluster, find_pg_bin

AFTER = SOON + timedelta(hours=2)
_names = itertools.count()
ATTACHMENT = bytes(range(256)) + b"\x00\xff PDF"  # every byte value: the export must not lose one
NIO_ROWS = [("olm-account", b"\x01\x02secret")]


def url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def populate(engine: Engine) -> int:
    """A district with a budget, a settled booking (ledger: reserve, release, charge), a booked and an open
    request, two members linked on Telegram and Matrix, and a direct answer with a file; the district id."""

    def make_uow() -> UnitOfWork:
        return UnitOfWork(engine)

    world = build_world(make_uow)
    amira = world.interpreter("Amira", km_north=6)
    world.interpreter("Samir", km_north=12)
    settled = submit(world)
    book(world, settled, "Amira")
    with make_uow() as u:
        closeout.report(
            u.session, request_id=settled, interpreter_id=amira, minutes=75, km=18, expenses_cents=0,
            actor=ACTOR, now=AFTER,
        )  # fmt: skip
        u.commit()
    with make_uow() as u:
        assert closeout.confirm(
            u.session, district_id=world.district_id, request_id=settled, actor=ACTOR, now=AFTER
        )
        u.commit()
    booked = submit(world, starts_at=SOON + timedelta(days=1))
    book(world, booked, "Samir")
    submit(world, starts_at=SOON + timedelta(days=2), language="ar")
    with make_uow() as u:
        _, coordinator = create_invite(
            u.session, district_id=world.district_id, role=Role.COORDINATOR, for_id=world.district_id,
            actor=ACTOR, now=NOW,
        )  # fmt: skip
        _, interpreter = create_invite(
            u.session,
            district_id=world.district_id,
            role=Role.INTERPRETER,
            for_id=amira,
            actor=ACTOR,
            now=NOW,
        )
        link(u.session, platform="telegram", user_id="4711", chat_id="4711", code=coordinator, now=NOW,
             locale="de")  # fmt: skip
        link(u.session, platform="matrix", user_id="@amira:kreis.example", chat_id="!dm:kreis.example",
             code=interpreter, now=NOW, locale="ar")  # fmt: skip
        identity = u.session.exec(select(ChatIdentity).where(col(ChatIdentity.platform) == "matrix")).one()
        assert identity.id is not None
        add_answer(u.session, identity_id=identity.id, body="Ihr Termin", attachment=ATTACHMENT, now=NOW)
        u.commit()
    return world.district_id


def rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, read through the models (so datetimes are aware UTC on both databases)."""
    with engine.connect() as connection:
        return {
            table.name: [
                tuple(row)
                for row in connection.execute(core_select(table).order_by(*table.primary_key.columns))
            ]
            for table in SQLModel.metadata.sorted_tables
        }


def assert_the_data_set(engine: Engine) -> None:
    """The figures `populate` leaves, exactly: budget, ledger, bookings, members."""
    with UnitOfWork(engine) as u:
        budget = u.session.exec(select(Budget)).one()
        # A request reserves for its farthest candidate: 24.00 + 12 km x 1.3 x 2 x 0.30 EUR = 33.36 EUR;
        # booking Amira (6 km) gives back 4.68 EUR; her report (90 billed minutes + 18 km x 0.30 EUR =
        # 41.40 EUR) is charged. Requests 2 (Samir, 12 km) and 3 (open) keep 33.36 EUR each.
        assert (budget.total_cents, budget.reserved_cents, budget.charged_cents) == (500000, 6672, 4140)
        ledger = [
            (e.request_id, e.kind, e.amount_cents)
            for e in u.session.exec(select(LedgerEntry).order_by(col(LedgerEntry.id)))
        ]
        assert ledger == [
            (1, "reserve", 3336), (1, "release", 468), (1, "release", 2868), (1, "charge", 4140),
            (2, "reserve", 3336), (3, "reserve", 3336),
        ]  # fmt: skip
        offers = [
            (o.request_id, o.interpreter_id, o.state)
            for o in u.session.exec(select(Offer).order_by(col(Offer.id)))
        ]
        assert offers == [
            (1, 1, "accepted"), (1, 2, "withdrawn"), (2, 1, "withdrawn"), (2, 2, "accepted"),
            (3, 1, "open"), (3, 2, "open"),
        ]  # fmt: skip
        states = [(r.id, r.state) for r in u.session.exec(select(Request).order_by(col(Request.id)))]
        assert states == [(1, "settled"), (2, "booked"), (3, "offered")]
        members = [
            (m.role, identity.platform, identity.user_id)
            for m, identity in u.session.exec(
                select(Member, ChatIdentity).join(ChatIdentity).order_by(col(Member.id))
            )
        ]
        assert members == [
            ("coordinator", "telegram", "4711"),
            ("interpreter", "matrix", "@amira:kreis.example"),
        ]


def make_store(path: Path) -> None:
    """A Matrix store as the bot leaves it: bot-state.json, nio's SQLite database, a folder."""
    path.mkdir(mode=0o700)
    (path / "bot-state.json").write_text('{"device_id": "ABCDEF"}')
    (path / "keys").mkdir()
    (path / "keys" / "note.txt").write_bytes(b"\x00binary\xff")
    nio = sqlite3.connect(path / "@bot:kreis.example_ABCDEF.db")
    nio.execute("PRAGMA journal_mode=WAL")
    nio.execute("CREATE TABLE accounts (name TEXT, pickle BLOB)")
    nio.executemany("INSERT INTO accounts VALUES (?, ?)", NIO_ROWS)
    nio.commit()
    nio.close()


def manifest_of(archive: Path) -> dict[str, Any]:
    with tarfile.open(archive, "r:gz") as tar:
        member = tar.extractfile("manifest.json")
        assert member is not None
        data: dict[str, Any] = json.loads(member.read())
        return data


@pytest.fixture
def blank(request: pytest.FixtureRequest, engine: Engine, tmp_path: Path) -> Iterator[Engine]:
    """A database of the same kind as `engine`, never migrated (no tables at all)."""
    if engine.dialect.name == "sqlite":
        target = make_engine(f"sqlite:///{tmp_path / 'restored.sqlite3'}")
        yield target
        target.dispose()
        return
    cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
    name = f"r{os.getpid()}_{next(_names)}"
    target = make_engine(cluster.create_database(name))
    yield target
    target.dispose()
    cluster.drop_database(name)


@pytest.fixture
def pg_tools_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cluster's own pg_dump/pg_restore first on PATH (the versions that match the server)."""
    bin_dir = find_pg_bin()
    assert bin_dir is not None
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


@pytest.fixture
def no_pg_tools(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No pg_dump or pg_restore on PATH (the machine has only the Python side)."""
    empty = tmp_path / "no-tools"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def cli(monkeypatch: pytest.MonkeyPatch, database: Engine, store: Path, *argv: str) -> int:
    monkeypatch.setenv("DATABASE_URL", url_of(database))
    monkeypatch.setenv("MATRIX_STORE_PATH", str(store))
    monkeypatch.setenv("BOT_LOCALE", "en")
    return main(list(argv))


def test_round_trip_gives_identical_rows_and_the_store_with_its_modes(
    engine: Engine,
    blank: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    pg_tools_on_path: None,
) -> None:
    populate(engine)
    make_store(tmp_path / "store")
    folder = tmp_path / "backups"
    folder.mkdir()
    archive = folder / "nightly.tar.gz"
    umask = os.umask(0o022)  # what a shell usually has: the archive must be 0600 all the same
    try:
        assert cli(monkeypatch, engine, tmp_path / "store", "backup", "--output", str(archive)) == 0
    finally:
        os.umask(umask)

    out = capsys.readouterr().out
    manifest = manifest_of(archive)
    method = "sqlite" if engine.dialect.name == "sqlite" else "pg_dump"
    assert manifest["method"] == method
    assert (manifest["revision"], manifest["dialect"]) == (head_revision(), engine.dialect.name)
    assert (manifest["rows"]["ledger_entry"], manifest["rows"]["member"]) == (6, 2)
    assert sum(manifest["rows"].values()) == sum(len(r) for r in rows(engine).values())
    assert f"Wrote the backup “{archive}” (" in out
    assert f"{len(manifest['rows'])} tables with {sum(manifest['rows'].values())} rows at revision" in out
    assert "but not MATRIX_STORE_KEY" in out
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    assert os.listdir(folder) == ["nightly.tar.gz"]  # no half-written leftovers

    restored_store = tmp_path / "elsewhere" / "store"
    assert cli(monkeypatch, blank, restored_store, "restore", str(archive)) == 0

    out = capsys.readouterr().out
    assert f"Restored “{archive}” (made " in out
    assert "The database is migrated" in out
    assert rows(blank) == rows(engine)
    assert_the_data_set(blank)
    assert current_revision(blank) == head_revision()
    # The store: the same files, 0700 folders, 0600 files, nio's database readable.
    assert stat.S_IMODE(restored_store.stat().st_mode) == 0o700
    assert stat.S_IMODE((restored_store / "keys").stat().st_mode) == 0o700
    files = sorted(p.relative_to(restored_store).as_posix() for p in restored_store.rglob("*") if p.is_file())
    assert files == ["@bot:kreis.example_ABCDEF.db", "bot-state.json", "keys/note.txt"]
    for name in files:
        assert stat.S_IMODE((restored_store / name).stat().st_mode) == 0o600
    assert (restored_store / "bot-state.json").read_text() == '{"device_id": "ABCDEF"}'
    assert (restored_store / "keys" / "note.txt").read_bytes() == b"\x00binary\xff"
    nio = sqlite3.connect(restored_store / "@bot:kreis.example_ABCDEF.db")
    assert nio.execute("SELECT name, pickle FROM accounts").fetchall() == NIO_ROWS
    nio.close()


def test_postgresql_without_pg_dump_writes_a_logical_export_that_restores_into_a_migrated_database(
    engine: Engine,
    blank: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    no_pg_tools: None,
) -> None:
    """Also on SQLite with --logical. The target had `migrate` run (empty tables); new ids follow the old."""
    populate(engine)
    archive = tmp_path / "logical.tar.gz"
    logical = ["--logical"] if engine.dialect.name == "sqlite" else []
    assert cli(monkeypatch, engine, tmp_path / "no-store", "backup", "--output", str(archive), *logical) == 0
    assert "made with a logical export." in capsys.readouterr().out
    assert manifest_of(archive)["method"] == "logical"
    with tarfile.open(archive, "r:gz") as tar:
        names = tar.getnames()
    assert "rows/ledger_entry.jsonl" in names
    assert "database.sqlite3" not in names
    assert not any(name.startswith("matrix-store") for name in names)

    target = blank
    upgrade(target)  # `migrate` ran: tables exist, all empty
    assert cli(monkeypatch, target, tmp_path / "no-store", "restore", str(archive)) == 0
    assert rows(target) == rows(engine)
    assert_the_data_set(target)
    assert not (tmp_path / "no-store").exists()
    # The ids go on after the restored ones (PostgreSQL's sequences were reset).
    with UnitOfWork(target) as u:
        u.session.add(LedgerEntry(budget_id=1, kind="adjust", amount_cents=-100, actor=ACTOR, created_at=NOW))
        u.commit()
    with UnitOfWork(target) as u:
        assert u.session.exec(select(LedgerEntry.id).where(col(LedgerEntry.kind) == "adjust")).one() == 7


@pytest.mark.parametrize(
    ("source", "logical", "target"),
    [("sqlite", False, "postgresql"), ("sqlite", True, "postgresql"), ("postgresql", True, "sqlite")],
)
def test_moving_a_county_between_sqlite_and_postgresql(
    source: str,
    logical: bool,
    target: str,
    sqlite_template: Path,
    pg_cluster: PostgresCluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pg_tools_on_path: None,
) -> None:
    """A SQLite backup (file or logical) restores into PostgreSQL, a logical PostgreSQL one into SQLite."""
    name = f"m{os.getpid()}_{source}_{int(logical)}_{target}"
    databases = {
        "sqlite": make_engine(f"sqlite:///{tmp_path / 'county.sqlite3'}"),
        "postgresql": make_engine(pg_cluster.create_database(name)),
    }
    # A county's server runs on Berlin time: a naive UTC value from SQLite would be read as Berlin's.
    with databases["postgresql"].connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql(f"ALTER DATABASE \"{name}\" SET timezone TO 'Europe/Berlin'")
    databases["postgresql"].dispose()
    try:
        upgrade(databases[source])
        populate(databases[source])
        archive = tmp_path / "move.tar.gz"
        flags = ["--logical"] if logical else []
        assert (
            cli(monkeypatch, databases[source], tmp_path / "s", "backup", "--output", str(archive), *flags)
            == 0
        )
        assert cli(monkeypatch, databases[target], tmp_path / "s", "restore", str(archive)) == 0
        assert rows(databases[target]) == rows(databases[source])
        assert_the_data_set(databases[target])
        assert current_revision(databases[target]) == head_revision()
    finally:
        for database in databases.values():
            database.dispose()
        pg_cluster.drop_database(name)


def test_restore_into_a_database_with_rows_is_refused_and_changes_nothing(
    engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    pg_tools_on_path: None,
) -> None:
    populate(engine)
    make_store(tmp_path / "store")
    archive = tmp_path / "b.tar.gz"
    assert cli(monkeypatch, engine, tmp_path / "store", "backup", "--output", str(archive)) == 0
    capsys.readouterr()
    with UnitOfWork(engine) as u:  # a change after the backup, which a restore would undo
        u.session.add(LedgerEntry(budget_id=1, kind="adjust", amount_cents=-100, actor=ACTOR, created_at=NOW))
        u.commit()
    before = rows(engine)

    assert cli(monkeypatch, engine, tmp_path / "new-store", "restore", str(archive)) == 2

    err = capsys.readouterr().err
    assert err.startswith("The database is not empty: table “audit_event” holds rows.")
    assert "Nothing was changed." in err
    assert rows(engine) == before
    assert not (tmp_path / "new-store").exists()
    if engine.dialect.name == "postgresql":  # and a pg_dump archive never goes into SQLite
        sqlite_file = tmp_path / "target.sqlite3"
        sqlite_engine = make_engine(f"sqlite:///{sqlite_file}")
        assert cli(monkeypatch, sqlite_engine, tmp_path / "new-store", "restore", str(archive)) == 2
        assert capsys.readouterr().err.strip() == (
            "This backup was made with pg_dump and restores into PostgreSQL only. To move to SQLite, "
            "make a backup with --logical."
        )
        assert not sqlite_file.exists()


def test_restore_refuses_a_store_with_files_before_touching_the_database(
    engine: Engine,
    blank: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    pg_tools_on_path: None,
) -> None:
    populate(engine)
    make_store(tmp_path / "store")
    archive = tmp_path / "b.tar.gz"
    assert cli(monkeypatch, engine, tmp_path / "store", "backup", "--output", str(archive)) == 0
    capsys.readouterr()
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "bot-state.json").write_text("{}")

    assert cli(monkeypatch, blank, occupied, "restore", str(archive)) == 2

    err = capsys.readouterr().err
    assert err.startswith(f"The Matrix store “{occupied}” exists and is not empty.")
    assert inspect(blank).get_table_names() == []  # not even migrated
    assert [p.name for p in occupied.iterdir()] == ["bot-state.json"]
    assert (occupied / "bot-state.json").read_text() == "{}"


def test_the_password_reaches_pg_dump_only_in_its_environment(
    pg_cluster: PostgresCluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A stand-in pg_dump records its command line and PGPASSWORD, then fails with the password in its
    message: the command line has no password, the sentence shows *** and no archive is left."""
    name = f"p{os.getpid()}_{next(_names)}"
    engine = make_engine(pg_cluster.create_database(name, template="dp_template"))
    tools = tmp_path / "tools"
    tools.mkdir()
    record = tmp_path / "record.txt"
    script = tools / "pg_dump"
    script.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" > {record}\n'
        f'echo "PGPASSWORD=$PGPASSWORD PGDATABASE=$PGDATABASE" >> {record}\n'
        'echo "pg_dump: error: password for $PGUSER was $PGPASSWORD, refused" >&2\n'
        "exit 1\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    secret = engine.url.set(password="s3cret-Pw")  # the test cluster trusts, so any password connects
    archive = tmp_path / "out" / "b.tar.gz"
    archive.parent.mkdir()
    monkeypatch.setenv("DATABASE_URL", secret.render_as_string(hide_password=False))
    monkeypatch.setenv("BOT_LOCALE", "en")

    assert main(["backup", "--output", str(archive)]) == 2

    lines = record.read_text().splitlines()
    arguments, environment = lines[:-1], lines[-1]
    assert not any("s3cret" in argument for argument in arguments)
    assert arguments[:3] == ["--format=custom", "--no-owner", "--no-privileges"]
    assert environment == f"PGPASSWORD=s3cret-Pw PGDATABASE={engine.url.database}"
    err = capsys.readouterr().err
    assert err.strip() == "pg_dump failed: pg_dump: error: password for postgres was ***, refused"
    assert os.listdir(archive.parent) == []
    engine.dispose()
    pg_cluster.drop_database(name)


def test_a_file_that_is_no_backup_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bogus = tmp_path / "bogus.tar.gz"
    bogus.write_bytes(b"not a tar at all")
    target = tmp_path / "t.sqlite3"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{target}")
    monkeypatch.setenv("BOT_LOCALE", "en")
    assert main(["restore", str(bogus)]) == 2
    assert capsys.readouterr().err.strip() == f"“{bogus}” is not a backup of this bot."
    assert not target.exists()


def test_a_backup_of_a_sqlite_file_that_does_not_exist_names_it_and_makes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "mistyped.sqlite3"
    archive = tmp_path / "b.tar.gz"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{missing}")
    monkeypatch.setenv("BOT_LOCALE", "en")
    assert main(["backup", "--output", str(archive)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"The database file “{missing}” does not exist: check DATABASE_URL. Nothing was written."
    )
    assert sorted(os.listdir(tmp_path)) == []
