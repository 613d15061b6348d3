"""The production install: the Containerfile's own steps (its COPYs, then its RUN of deploy/install.sh,
which installs without the dev extras) into a fresh venv here, then the bot run from it, outside the
source tree, as an admin would.

The venv is made once for the module (about 40 s with a warm pip cache; the time is printed). Every
command runs from a temp directory with no PYTHONPATH and none of the bot's variables inherited, so
the code, the catalogs and the migrations can only come from the installed package.
"""

import asyncio
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from services.clock import BERLIN
from tests.fake_bot_api import FakeBotApi
from tests.pg_cluster import PostgresCluster, _free_port
from tests.test_deploy import containerfile

ROOT = Path(__file__).resolve().parent.parent
CONTAINER_VENV = "/opt/dolmetscherpool/venv"
STALE = 3.0  # HEALTH_STALE_AFTER for the run below, in seconds
COORDINATOR, INTERPRETER = 7001, 7002  # Telegram user ids (= chat ids) of the two people invited
# Packages of the dev extras (and the test tools) that a production venv must not hold.
DEV_ONLY = {
    "pytest",
    "pytest-asyncio",
    "pytest-xdist",
    "hypothesis",
    "ruff",
    "mypy",
    "matrix-synapse",
    "pypdf",
}
# Variables of the bot a test process may carry: none of them reaches the installed bot unasked.
BOT_VARIABLES = re.compile(
    r"^(DATABASE_URL|BOT_LOCALE|TELEGRAM_.*|WEBHOOK_.*|MATRIX_.*|HEALTH_.*|AUTO_MIGRATE|LOG_FORMAT)$"
)


@dataclass(frozen=True)
class Installed:
    venv: Path
    python: Path
    outside: Path  # a working directory outside the source tree

    def env(self, **extra: str) -> dict[str, str]:
        clean = {
            key: value
            for key, value in os.environ.items()
            if not BOT_VARIABLES.match(key) and key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
        }
        return {**clean, "PATH": f"{self.venv / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}", **extra}

    def bot(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """`python -m bot ARGS` from the installed venv, in the directory outside the tree."""
        return subprocess.run(
            [str(self.python), "-m", "bot", *args],
            cwd=self.outside,
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=120,
        )


def _container_build(into: Path) -> str:
    """Lay out what deploy/Containerfile COPYs into /src under `into`; its install RUN line, for here."""
    for kind, args in containerfile():
        if kind != "COPY":
            continue
        *sources, target = args.split()
        assert target.startswith("/src/"), target
        for source in sources:
            landing = into / target.removeprefix("/src/")
            if target.endswith("/") or len(sources) > 1:
                landing = landing / Path(source).name
            landing.parent.mkdir(parents=True, exist_ok=True)
            if (ROOT / source).is_dir():  # .dockerignore leaves __pycache__ out of the context
                shutil.copytree(ROOT / source, landing, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(ROOT / source, landing)
    (run,) = [args for kind, args in containerfile() if kind == "RUN" and "deploy/install.sh" in args]
    return run


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The Containerfile's install, here: its COPYs into a source dir, then its very RUN line."""
    base = tmp_path_factory.mktemp("production")
    venv, source = base / "venv", base / "src"
    run = _container_build(source)
    command = run.replace(CONTAINER_VENV, str(venv)).replace("/src", str(source))
    started = time.monotonic()
    done = subprocess.run(
        ["sh", "-c", command],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=900,
    )
    print(f"the install took {time.monotonic() - started:.1f}s: {command}")
    assert done.returncode == 0, done.stderr[-4000:]
    assert not source.exists()  # removed, as in the image: the venv needs no source afterwards
    outside = tmp_path_factory.mktemp("elsewhere")
    assert not outside.resolve().is_relative_to(ROOT)
    return Installed(venv, venv / "bin" / "python", outside)


def _python(installed: Installed, code: str) -> Any:
    """Run `code` in the installed venv (outside the tree); it prints JSON."""
    done = subprocess.run(
        [str(installed.python), "-c", code],
        cwd=installed.outside,
        env=installed.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_install_holds_what_runs_and_nothing_of_the_tests(installed: Installed) -> None:
    found = _python(
        installed,
        "import importlib.metadata as m, json, bot, locales, db.migrations;"
        "dist = m.distribution('dolmetscherpool');"
        "print(json.dumps({'names': sorted(d.metadata['Name'].lower() for d in m.distributions()),"
        " 'direct_url': dist.read_text('direct_url.json'),"
        " 'files': [bot.__file__, locales.__file__, db.migrations.__file__]}))",
    )
    names = {re.sub(r"[-_.]+", "-", name) for name in found["names"]}
    assert names & DEV_ONLY == set()
    assert {"dolmetscherpool", "python-telegram-bot", "matrix-nio", "psycopg", "prometheus-client"} <= names
    assert json.loads(found["direct_url"]).get("dir_info", {}).get("editable", False) is False
    site = (
        installed.venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    )
    assert [Path(f).parent for f in found["files"]] == [
        site / "bot",
        site / "locales",
        site / "db" / "migrations",
    ]


def test_the_installed_bot_speaks_german_outside_the_source_tree(installed: Installed) -> None:
    helped = installed.bot("--help")
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("Aufruf: python -m bot [-h] [--version] [--district SLUG] BEFEHL ...\n")
    assert "die Einrichtung prüfen" in helped.stdout  # from the German catalog, shipped in the package
    english = installed.bot("--help", BOT_LOCALE="en")
    assert english.stdout.startswith("usage: python -m bot [-h] [--version] [--district SLUG] COMMAND ...\n")
    version = installed.bot("--version")
    assert re.fullmatch(r"dolmetscherpool \d+\.\d+\.\d+ \(schema \d{4}\)\n", version.stdout), version.stdout


def test_the_privacy_notice_templates_are_installed_with_the_package(installed: Installed) -> None:
    database = {"DATABASE_URL": f"sqlite:///{installed.outside / 'privacy.sqlite3'}"}
    made = installed.bot("init", "--name", "Landkreis Heidekreis", **database)
    assert made.returncode == 0, made.stderr
    for language in ("de", "en"):
        shown = installed.bot("privacy", "show", "--raw", "--language", language, **database)
        assert shown.returncode == 0, shown.stderr
        shipped = ROOT / "services" / "privacy_notice" / f"{language}.txt"
        assert shown.stdout == shipped.read_text(encoding="utf-8")


def test_doctor_names_a_missing_and_an_unmigrated_sqlite_database(installed: Installed) -> None:
    missing = installed.outside / "missing.sqlite3"
    found = installed.bot("doctor", DATABASE_URL=f"sqlite:///{missing}")
    assert found.returncode == 1
    assert (
        f"  ✗ Die Datenbankdatei {missing} gibt es nicht. Legen Sie sie mit „python -m bot init "
        "--name …“ an, oder setzen Sie DATABASE_URL auf die richtige Datei.\n"
    ) in found.stdout
    assert not missing.exists()  # doctor only reads
    empty = installed.outside / "empty.sqlite3"
    sqlite3.connect(empty).close()
    found = installed.bot("doctor", DATABASE_URL=f"sqlite:///{empty}")
    assert found.returncode == 1
    assert _never_migrated() in found.stdout
    assert found.stdout.endswith("Nicht bereit: 2 Probleme halten den Bot auf (✗).\n")  # and no platform


def _never_migrated() -> str:
    return (
        "  ✗ Die Datenbank wurde nie eingerichtet: Sie hat keine Tabellen des Bots. Führen Sie "
        "„python -m bot migrate“ aus (oder „python -m bot init --name …“ für einen neuen Landkreis).\n"
    )


@pytest.fixture
def empty_postgres(pg_cluster: PostgresCluster) -> Iterator[str]:
    """A database on the suite's cluster that was never migrated (not from the migrated template)."""
    name = f"production_{os.getpid()}"
    url = pg_cluster.create_database(name)
    yield url
    pg_cluster.drop_database(name)


def _healthz(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            return int(answer.status), json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


async def _until_status(
    port: int, status: int, timeout: float, role: str = "leader"
) -> tuple[float, dict[str, Any]]:
    """The first /healthz answer with `status` while Telegram has `role` (asked every 0.1 s), and when."""
    started = time.monotonic()
    while True:
        try:
            answer, body = await asyncio.to_thread(_healthz, port)
            if answer == status and body["platforms"]["telegram"]["role"] == role:
                return time.monotonic() - started, body
        except (urllib.error.URLError, ConnectionError):
            pass  # not listening yet
        if time.monotonic() - started > timeout:
            raise AssertionError(f"/healthz did not answer {status} within {timeout}s")
        await asyncio.sleep(0.1)


async def _code_of(installed: Installed, database: str, role: str, for_id: str) -> str:
    made = await asyncio.to_thread(
        installed.bot, "invite", "create", "--role", role, "--for", for_id, DATABASE_URL=database
    )
    assert made.returncode == 0, made.stderr
    code = re.search(r": (\S+)\n", made.stdout)
    assert code is not None, made.stdout
    return code.group(1)


async def test_a_county_sets_it_up_on_postgresql_runs_it_and_sees_its_health(
    installed: Installed, empty_postgres: str
) -> None:
    """doctor on a database never migrated, run refusing it, the admin steps, doctor satisfied while
    `run` serves the fake Bot API, /healthz 200, and 503 once Telegram is away longer than the threshold."""
    database = {"DATABASE_URL": empty_postgres}
    async with FakeBotApi() as api:
        telegram = {"TELEGRAM_TOKEN": api.token, "TELEGRAM_BASE_URL": api.base_url}

        found = await asyncio.to_thread(installed.bot, "doctor", **database, **telegram)
        assert found.returncode == 1
        assert _never_migrated() in found.stdout
        assert "  ✓ Telegram nimmt das Token an: Der Bot ist @" in found.stdout

        refused = await asyncio.to_thread(installed.bot, "run", **database, **telegram)
        assert refused.returncode == 2
        assert refused.stderr == (  # the sentence alone: no library's log lines before it
            "Diese Datenbank wurde nie eingerichtet. Führen Sie zuerst „python -m bot init --name …“ (ein "
            "neuer Landkreis) oder „python -m bot migrate“ aus, oder setzen Sie AUTO_MIGRATE=1.\n"
        )
        assert api.calls("getUpdates") == []  # refused before serving

        year = str(datetime.now(BERLIN).year)
        pool = installed.outside / "pool.csv"
        pool.write_text(
            "name,languages,municipality,latitude,longitude,modes,phone,email\n"
            "Amira Haddad,ar,Soltau,52.99,9.84,in_person;phone,,\n"
        )
        for step in (
            ("init", "--name", "Landkreis Heidekreis"),
            ("budget", "set", "--year", year, "--amount", "5000"),
            ("pool", "import", str(pool)),
        ):
            done = await asyncio.to_thread(installed.bot, *step, **database)
            assert done.returncode == 0, (step, done.stderr)
        coordinator_code = await _code_of(installed, empty_postgres, "coordinator", "1")
        interpreter_code = await _code_of(installed, empty_postgres, "interpreter", "1")

        found = await asyncio.to_thread(installed.bot, "doctor", **database, **telegram)
        assert found.returncode == 1
        assert "  ✓ Die Datenbank ist auf dem neuesten Stand" in found.stdout
        assert "python -m bot invite create --role coordinator --for 1" in found.stdout

        health = _free_port()
        log = (installed.outside / "run.log").open("wb")
        process = subprocess.Popen(
            [str(installed.python), "-m", "bot", "run"],
            cwd=installed.outside,
            env=installed.env(
                **database,
                **telegram,
                HEALTH_LISTEN=f"127.0.0.1:{health}",
                HEALTH_STALE_AFTER=str(STALE),
                BOT_LOCALE="en",
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            took, body = await _until_status(health, 200, 60)
            print(f"/healthz answered 200 {took:.1f}s after the start")
            # Before it leads (the advisory lock, getMe) it reports a standby, which is never stale.
            assert (body["status"], body["database"], body["failed_due_rows"]) == ("ok", "reachable", 0)
            assert body["platforms"]["telegram"]["stale"] is False

            api.push_text(COORDINATOR, f"/start {coordinator_code}")
            api.push_text(INTERPRETER, f"/start {interpreter_code}")
            for user in (COORDINATOR, INTERPRETER):
                await api.wait_for_message(user, timeout=30)

            found = await asyncio.to_thread(installed.bot, "doctor", **database, **telegram)
            print(found.stdout)
            assert found.returncode == 0, found.stdout
            assert f"  ✓ Das Budget für {year} ist gesetzt" in found.stdout
            assert "  ✓ Alle Dolmetscher/innen haben einen verbundenen Chat (1).\n" in found.stdout
            assert "✗" not in found.stdout
            assert found.stdout.splitlines()[-1].startswith("Bereit")  # with warnings (a username, December)

            await api.stop()  # Telegram is away: every getUpdates fails from now on
            stopped = time.monotonic()
            _, body = await _until_status(health, 503, STALE + 30)
            waited = time.monotonic() - stopped
            telegram_state = body["platforms"]["telegram"]
            assert (body["status"], body["database"], telegram_state["stale"]) == (
                "unhealthy",
                "reachable",
                True,
            )
            assert telegram_state["age_seconds"] >= STALE
            print(f"/healthz answered 503 {waited:.1f}s after the fake Bot API stopped")
            assert STALE - 1.5 <= waited <= STALE + 10
        finally:
            process.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(process.wait, 60)
            log.close()
        assert code == 0, (installed.outside / "run.log").read_text()[-3000:]
