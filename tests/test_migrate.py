"""`migrate`, and `run` refusing a database behind the code unless AUTO_MIGRATE=1."""

from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlalchemy.engine import Engine

from bot.cli.main import main
from db.engine import make_engine
from db.migrate import current_revision, head_revision, upgrade

HEAD = head_revision()


def _cli(monkeypatch: pytest.MonkeyPatch, url: str, *argv: str, **env: str) -> int:
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("BOT_LOCALE", "en")
    monkeypatch.delenv("AUTO_MIGRATE", raising=False)
    monkeypatch.setenv("TELEGRAM_TOKEN", "123:test")  # `run` gets as far as the schema check
    monkeypatch.setenv("TELEGRAM_BASE_URL", "http://127.0.0.1:9/bot")  # never reached
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return main(list(argv))


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _at(url: str, revision: str) -> Engine:
    engine = make_engine(url)
    upgrade(engine, revision)
    return engine


def test_run_refuses_a_database_never_set_up_and_creates_nothing(
    never_migrated: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli(monkeypatch, never_migrated, "run") == 2
    assert capsys.readouterr().err.strip() == (
        "This database was never set up. Run “python -m bot init --name …” (a new district) "
        "or “python -m bot migrate” first, or set AUTO_MIGRATE=1."
    )
    assert _tables(never_migrated) == set()


def test_run_refuses_a_database_behind_the_code_naming_both_revisions(
    never_migrated: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _at(never_migrated, "0008").dispose()
    assert _cli(monkeypatch, never_migrated, "run") == 2
    assert capsys.readouterr().err.strip() == (
        f"The database is at revision 0008; this version of the bot needs {HEAD}. Back it up, "
        "then run “python -m bot migrate” (or set AUTO_MIGRATE=1 to migrate on start)."
    )
    assert "booking_change" not in _tables(never_migrated)  # 0009's table: nothing was migrated
    assert _cli(monkeypatch, never_migrated, "timers") == 2  # the timers alone refuse it too
    assert "this version of the bot needs" in capsys.readouterr().err


def test_migrate_check_then_migrate(
    never_migrated: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _at(never_migrated, "0008").dispose()
    assert _cli(monkeypatch, never_migrated, "migrate", "--check") == 1
    assert capsys.readouterr().out.strip() == (
        f"The database is at revision 0008; this version needs {HEAD}: run “python -m bot migrate”."
    )
    engine = make_engine(never_migrated)
    assert current_revision(engine) == "0008"
    assert _cli(monkeypatch, never_migrated, "migrate") == 0
    assert capsys.readouterr().out.strip() == f"The database was at revision 0008 and is now at {HEAD}."
    assert current_revision(engine) == HEAD
    assert "booking_change" in _tables(never_migrated)
    assert _cli(monkeypatch, never_migrated, "migrate", "--check") == 0
    assert capsys.readouterr().out.strip() == f"The database is up to date (revision {HEAD})."
    engine.dispose()


def test_admin_commands_refuse_too_and_auto_migrate_lets_them_migrate(
    never_migrated: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli(monkeypatch, never_migrated, "district", "list") == 2
    assert "never set up" in capsys.readouterr().err
    assert _tables(never_migrated) == set()
    assert _cli(monkeypatch, never_migrated, "district", "list", AUTO_MIGRATE="1") == 0
    assert capsys.readouterr().out.strip() == "There is no district yet; run “init” first."
    engine = make_engine(never_migrated)
    assert current_revision(engine) == HEAD
    engine.dispose()


def test_a_database_newer_than_the_code_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'newer.sqlite3'}"
    engine = _at(url, "head")
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '0099'")
    engine.dispose()
    assert _cli(monkeypatch, url, "budget", "show") == 2
    assert capsys.readouterr().err.strip() == (
        f"The database is at revision 0099, newer than this version of the bot knows ({HEAD}). "
        "Install the newer version."
    )


def test_a_database_newer_than_the_code_is_refused_by_every_command_that_would_migrate_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """After a rollback of the code: a sentence and exit 2 (no restart loop), never alembic's traceback."""
    url = f"sqlite:///{tmp_path / 'newer.sqlite3'}"
    engine = _at(url, "head")
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '0099'")
    engine.dispose()
    refusal = (
        f"The database is at revision 0099, newer than this version of the bot knows ({HEAD}). "
        "Install the newer version."
    )
    for argv, env in (
        (["migrate"], {}),
        (["migrate", "--check"], {}),
        (["init", "--name", "Landkreis Test"], {}),
        (["budget", "show"], {"AUTO_MIGRATE": "1"}),
        (["run"], {"AUTO_MIGRATE": "1"}),
    ):
        assert _cli(monkeypatch, url, *argv, **env) == 2, argv
        assert capsys.readouterr().err.strip() == refusal, argv
    engine = make_engine(url)
    assert current_revision(engine) == "0099"
    engine.dispose()


def test_init_migrates_as_before(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'new.sqlite3'}"
    assert _cli(monkeypatch, url, "init", "--name", "Landkreis Test") == 0
    engine = make_engine(url)
    assert current_revision(engine) == HEAD
    engine.dispose()


def test_version_names_the_installed_release_and_the_schema_it_needs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out == f"dolmetscherpool {version('dolmetscherpool')} (schema {HEAD})\n"
