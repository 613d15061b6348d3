"""Secrets at rest: the SQLite database and the Matrix store are their owner's only, nio's keys encrypted."""

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from bot.matrix.session import (
    LEGACY_STORE_KEY,
    BotState,
    MatrixSettings,
    make_client,
    save_state,
    secure_store,
)
from db.engine import make_engine
from services.errors import InvalidInput

KEY = "a-store-key-of-some-length"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The umask many systems have (022): files would be created world-readable."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.mark.usefixtures("open_umask")
def test_a_new_sqlite_database_and_its_wal_are_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "pool.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (a INTEGER)"))
        connection.execute(text("INSERT INTO t VALUES (1)"))
        files = {p.name: mode(p) for p in tmp_path.iterdir()}  # the WAL exists while a connection is open
    engine.dispose()
    assert files == {"pool.sqlite3": 0o600, "pool.sqlite3-wal": 0o600, "pool.sqlite3-shm": 0o600}


@pytest.mark.usefixtures("open_umask")
def test_an_existing_world_readable_sqlite_database_is_made_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "pool.sqlite3"
    for name in ("pool.sqlite3", "pool.sqlite3-wal", "pool.sqlite3-shm"):
        (tmp_path / name).write_bytes(b"")
        (tmp_path / name).chmod(0o644)
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
        assert {p.name: mode(p) for p in tmp_path.iterdir()} == {
            "pool.sqlite3": 0o600,
            "pool.sqlite3-wal": 0o600,
            "pool.sqlite3-shm": 0o600,
        }
    engine.dispose()


def test_a_missing_directory_is_left_to_sqlite_to_report(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'nowhere' / 'pool.sqlite3'}")
    with pytest.raises(OperationalError, match="unable to open database file"):
        engine.connect()


@pytest.mark.usefixtures("open_umask")
def test_the_matrix_store_is_made_private_whatever_it_was_before(tmp_path: Path) -> None:
    store = tmp_path / "store"
    (store / "sub").mkdir(parents=True)
    store.chmod(0o755)
    (store / "sub").chmod(0o755)
    for name in ("keys.db", "sub/other"):
        (store / name).write_text("")
        (store / name).chmod(0o644)
    outside = tmp_path / "outside"
    outside.write_text("")
    outside.chmod(0o644)
    (store / "link").symlink_to(outside)
    secure_store(store)
    assert (mode(store), mode(store / "sub"), mode(store / "keys.db"), mode(store / "sub" / "other")) == (
        0o700,
        0o700,
        0o600,
        0o600,
    )
    assert mode(outside) == 0o644  # a link out of the store is not followed


def env(store: Path, **more: str) -> dict[str, str]:
    return {
        "MATRIX_HOMESERVER": "https://matrix.example",
        "MATRIX_USER_ID": "@bot:example",
        "MATRIX_PASSWORD": "secret",
        "MATRIX_STORE_PATH": str(store),
        **more,
    }


def test_a_new_store_requires_a_key_of_16_characters(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as missing:
        MatrixSettings.from_env(env(tmp_path / "store"))
    assert missing.value.message.startswith("Set MATRIX_STORE_KEY: the bot encrypts its Matrix keys")
    with pytest.raises(InvalidInput) as short:
        MatrixSettings.from_env(env(tmp_path / "store", MATRIX_STORE_KEY="x" * 15))
    assert short.value.message == "MATRIX_STORE_KEY must be at least 16 characters long."
    assert not (tmp_path / "store").exists()


@pytest.mark.usefixtures("open_umask")
def test_nio_encrypts_the_store_with_the_key(tmp_path: Path) -> None:
    settings = MatrixSettings.from_env(env(tmp_path / "store", MATRIX_STORE_KEY=KEY))
    assert settings is not None
    assert KEY not in repr(settings)
    client = make_client(settings)
    assert client.config.pickle_key == KEY
    assert mode(tmp_path / "store") == 0o700


def test_a_store_from_before_the_key_goes_on_with_nios_default_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    save_state(store, BotState(device_id="OLDDEVICE", access_token="token"))
    settings = MatrixSettings.from_env(env(store))
    assert settings is not None
    caplog.set_level(logging.WARNING, logger="bot.matrix.session")
    assert make_client(settings).config.pickle_key == LEGACY_STORE_KEY
    assert [r.getMessage() for r in caplog.records if r.name == "bot.matrix.session"] == [
        "the Matrix store is encrypted with nio's default key; set MATRIX_STORE_KEY and start with an "
        "empty MATRIX_STORE_PATH (a new device) to encrypt it with a key of its own"
    ]
