"""Databases for the tests: every database test runs on SQLite and on a real PostgreSQL cluster.

The cluster is started by the suite itself (initdb + pg_ctl in a temp dir). Without PostgreSQL
binaries the PostgreSQL half skips with a reason, unless REQUIRE_POSTGRES=1 (set by .ci/run)
turns that into a failure.
"""

import itertools
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from db.engine import make_engine
from db.migrate import upgrade
from db.uow import UnitOfWork
from tests.pg_cluster import PostgresCluster, find_pg_bin

_TEMPLATE = "dp_template"
_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    if find_pg_bin() is None:
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail("REQUIRE_POSTGRES=1 but no PostgreSQL binaries under /usr/lib/postgresql/*/bin")
        pytest.skip("no PostgreSQL binaries under /usr/lib/postgresql/*/bin")
    cluster = PostgresCluster()
    cluster.start()
    template = make_engine(cluster.create_database(_TEMPLATE))
    upgrade(template)
    template.dispose()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()  # the last connection closing checkpoints the WAL into the file we copy
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[Engine]:
    """A freshly migrated database of either kind."""
    if request.param == "sqlite":
        path = tmp_path / "test.sqlite3"
        shutil.copy(sqlite_template, path)
        sqlite = make_engine(f"sqlite:///{path}")
        yield sqlite
        sqlite.dispose()
        return
    cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
    name = f"t{os.getpid()}_{next(_counter)}"
    pg = make_engine(cluster.create_database(name, template=_TEMPLATE))
    yield pg
    pg.dispose()
    cluster.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def never_migrated(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database that exists (a SQLite file of 0 bytes) but was never migrated."""
    if request.param == "sqlite":
        path = tmp_path / "never-migrated.sqlite3"
        path.touch()
        yield f"sqlite:///{path}"
        return
    cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
    name = f"n{os.getpid()}_{next(_counter)}"
    yield cluster.create_database(name)
    cluster.drop_database(name)


@pytest.fixture
def uow(engine: Engine) -> Callable[[], UnitOfWork]:
    """A factory of units of work on the test database."""
    return lambda: UnitOfWork(engine)
