"""`python -m bot doctor`: a broken set-up is named line by line (exit 1), a correct one passes (exit 0).

Doctor runs through `bot.cli.main.main(["doctor"])` with the environment set, against real databases
(SQLite and PostgreSQL), the fake Bot API over HTTP (in a thread of its own, as doctor runs its own
event loop), and a real Synapse for the Matrix login; once as a `python -m bot doctor` process.
"""

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import inspect, make_url
from sqlalchemy.engine import Engine
from sqlmodel import select

from bot.cli import doctor as doctor_module
from bot.cli.doctor import Section as DoctorSection
from bot.cli.doctor import (
    budget_findings,
    check_fonts,
    check_matrix,
    check_timezone,
    policy_findings,
    render,
)
from bot.cli.main import main
from bot.i18n import Translator
from db.engine import make_engine
from db.migrate import current_revision, head_revision, upgrade
from db.models import PolicySetting
from db.uow import UnitOfWork
from services.districts import create_district
from services.identities import link
from services.invites import create_invite
from services.ledger import set_total
from services.pool import InterpreterData, save_interpreter
from services.schools import SchoolData, save_school
from services.vocabulary import Mode, Role
from tests.fake_bot_api import BOT_USERNAME, FakeBotApi
from tests.synapse_server import SynapseServer

ROOT = Path(__file__).resolve().parent.parent
HEAD = head_revision()
# New Year's Eve, 23:30 UTC: in Berlin it is already 2027, so this year's budget is 2027's.
NOW = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)
VARIABLES = (
    "DATABASE_URL",
    "AUTO_MIGRATE",
    "TELEGRAM_TOKEN",
    "TELEGRAM_BASE_URL",
    "TELEGRAM_BOT_USERNAME",
    "TELEGRAM_WEBHOOK_URL",
    "TELEGRAM_WEBHOOK_SECRET",
    "WEBHOOK_LISTEN",
    "MATRIX_HOMESERVER",
    "MATRIX_USER_ID",
    "MATRIX_PASSWORD",
    "MATRIX_ACCESS_TOKEN",
    "MATRIX_STORE_PATH",
    "MATRIX_STORE_KEY",
)
FONTS_EN = "  ✓ The charts and the PDF have their fonts: DejaVuSans.ttf, DejaVuSans-Bold.ttf."
FONTS_DE = "  ✓ Diagramme und PDF haben ihre Schriften: DejaVuSans.ttf, DejaVuSans-Bold.ttf."


@dataclass
class ApiThread:
    api: FakeBotApi
    loop: asyncio.AbstractEventLoop

    def call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(10)


@pytest.fixture
def bot_api() -> Iterator[ApiThread]:
    """The fake Bot API on an event loop in its own thread (doctor runs asyncio.run in the test's)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    served = ApiThread(FakeBotApi(), loop)
    served.call(served.api.start())
    yield served
    served.call(served.api.stop())
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def _doctor(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], locale: str, **env: str
) -> tuple[int, list[str]]:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BOT_LOCALE", locale)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(doctor_module, "clock", lambda: NOW)
    status = main(["doctor"])
    return status, capsys.readouterr().out.splitlines()


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


# --- a broken set-up ----------------------------------------------------------------------------


def test_a_database_never_migrated_a_refused_token_and_an_open_unkeyed_store_are_named(
    never_migrated: str,
    bot_api: ApiThread,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    store.chmod(0o755)
    homeserver = f"http://127.0.0.1:{bot_api.api.port}"  # answers 404 to /_matrix/client/versions
    env = {
        "DATABASE_URL": never_migrated,
        "TELEGRAM_TOKEN": "654321:REFUSED",
        "TELEGRAM_BASE_URL": bot_api.api.base_url,
        "MATRIX_HOMESERVER": homeserver,
        "MATRIX_USER_ID": "@dolmetscherpool:localhost",
        "MATRIX_PASSWORD": "secret-password",
        "MATRIX_STORE_PATH": str(store),
    }
    status, lines = _doctor(monkeypatch, capsys, "en", **env)
    assert status == 1
    assert lines == [
        "Database",
        f"  ✓ The database answers: {_shown(never_migrated)}",
        "  ✗ The database was never migrated: it has none of the bot's tables. Run “python -m bot migrate” "
        "(or “python -m bot init --name …” for a new district).",
        "Telegram",
        "  ✗ Telegram refused the token (TELEGRAM_TOKEN). Ask @BotFather for the bot's token "
        "(/token) and set "
        "it again.",
        "Matrix",
        f"  ✗ The Matrix homeserver {homeserver} does not answer: HTTP 404",
        f"  ! The Matrix store {store} is open to other users (store has mode 0755); “run” makes it private "
        f"on start, or run “chmod -R go= {store}”.",
        "  ✗ Set MATRIX_STORE_KEY: the bot encrypts its Matrix keys in MATRIX_STORE_PATH with it. Choose a "
        "random secret of at least 16 characters and keep it apart from the store's backup.",
        "This machine",
        "  ✓ The time zone Europe/Berlin loads.",
        FONTS_EN,
        "Not ready: 4 problems stop the bot (✗).",
    ]
    status, lines = _doctor(monkeypatch, capsys, "de", **env)
    assert status == 1
    assert lines == [
        "Datenbank",
        f"  ✓ Die Datenbank antwortet: {_shown(never_migrated)}",
        "  ✗ Die Datenbank wurde nie eingerichtet: Sie hat keine Tabellen des Bots. Führen Sie "
        "„python -m bot "
        "migrate“ aus (oder „python -m bot init --name …“ für einen neuen Landkreis).",
        "Telegram",
        "  ✗ Telegram hat das Token abgelehnt (TELEGRAM_TOKEN). Holen Sie das Token des Bots bei @BotFather "
        "(/token) und setzen Sie es neu.",
        "Matrix",
        f"  ✗ Der Matrix-Homeserver {homeserver} antwortet nicht: HTTP 404",
        f"  ! Der Matrix-Speicher {store} ist für andere Benutzer offen (store hat Modus 0755); „run“ "
        f"schränkt ihn beim Start ein, oder führen Sie „chmod -R go= {store}“ aus.",
        "  ✗ Bitte setzen Sie MATRIX_STORE_KEY: Damit verschlüsselt der Bot seine Matrix-Schlüssel in "
        "MATRIX_STORE_PATH. Wählen Sie ein zufälliges Geheimnis aus mindestens 16 Zeichen und "
        "bewahren Sie es "
        "getrennt von der Sicherung des Speichers auf.",
        "Dieser Rechner",
        "  ✓ Die Zeitzone Europe/Berlin lässt sich laden.",
        FONTS_DE,
        "Nicht bereit: 4 Probleme halten den Bot auf (✗).",
    ]
    # Doctor only looked: no table, the store's mode as it was, the token never in the output.
    assert _tables(never_migrated) == set()
    assert store.stat().st_mode & 0o777 == 0o755
    assert list(store.iterdir()) == []
    assert bot_api.api.calls("getMe") == []  # the fake refused the token before any method ran


def _world(engine: Engine, *, budget_year: int, link_all: bool) -> None:
    """A district with two interpreters and two schools; the first of each linked, or all of them."""
    with UnitOfWork(engine) as uow:
        session = uow.session
        district = create_district(session, name="Landkreis Test", now=NOW)
        assert district.id is not None
        set_total(session, district_id=district.id, year=budget_year, total_cents=500_000, actor="t", now=NOW)
        people: list[tuple[Role, int]] = []
        for name in ("Amira Haddad", "Samir Khalil"):
            data = InterpreterData(name, ("ar",), "Soltau", 52.99, 9.84, frozenset({Mode.IN_PERSON}))
            interpreter = save_interpreter(session, district_id=district.id, data=data, actor="t", now=NOW)
            assert interpreter.id is not None
            people.append((Role.INTERPRETER, interpreter.id))
        for name in ("Grundschule Soltau", "Oberschule Walsrode"):
            data_school = SchoolData(name, "Am Markt 1", "Soltau", 52.99, 9.84)
            school = save_school(session, district_id=district.id, data=data_school, actor="t", now=NOW)
            assert school.id is not None
            people.append((Role.SCHOOL, school.id))
        linked = people if link_all else [people[0], people[2]]
        if link_all:
            linked.append((Role.COORDINATOR, district.id))
        for user, (role, for_id) in enumerate(linked, start=7001):
            _, code = create_invite(
                session, district_id=district.id, role=role, for_id=for_id, actor="t", now=NOW
            )
            link(
                session,
                platform="telegram",
                user_id=str(user),
                chat_id=str(user),
                code=code,
                now=NOW,
                locale="de",
            )
        uow.commit()


def test_a_district_without_this_years_budget_coordinator_and_links_and_a_rule_out_of_range(
    engine: Engine,
    bot_api: ApiThread,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _world(engine, budget_year=2026, link_all=False)  # 2026 in UTC, but it is 2027 in Berlin
    with UnitOfWork(engine) as uow:
        row = uow.session.exec(select(PolicySetting).where(PolicySetting.key == "offer_timeout")).one()
        row.value = "9999d"
        uow.session.add(row)
        uow.commit()
    api = bot_api.api
    api.webhook = {"url": "https://old.example/hook"}
    api.webhook_last_error = (1_767_222_000, "Connection refused")  # 2025-12-31 23:00 UTC

    async def push() -> None:
        api.push_text(9999, "/start")

    bot_api.call(push())
    env = {"DATABASE_URL": _url(engine), "TELEGRAM_TOKEN": api.token, "TELEGRAM_BASE_URL": api.base_url}
    status, lines = _doctor(monkeypatch, capsys, "en", **env)
    assert status == 1
    invite = "python -m bot invite create --role"
    assert lines == [
        "Database",
        f"  ✓ The database answers: {_shown(_url(engine))}",
        f"  ✓ The database is up to date (revision {HEAD}).",
        "Telegram",
        f"  ✓ Telegram accepts the token: the bot is @{BOT_USERNAME}.",
        "  ! TELEGRAM_BOT_USERNAME is unset, so invite codes come without a t.me link. Set "
        f"TELEGRAM_BOT_USERNAME={BOT_USERNAME}.",
        "  ! Telegram has a webhook set (https://old.example/hook), but TELEGRAM_WEBHOOK_URL is unset: “run” "
        "will delete it and poll (updates waiting are kept).",
        "  ! Updates waiting at Telegram: 1. The bot takes them once it runs.",
        "  ! Telegram's last error delivering to the webhook (at Thu 1 Jan 2026, 00:00): Connection refused",
        "Matrix",
        "  – Matrix is not configured (MATRIX_HOMESERVER and MATRIX_USER_ID are unset).",
        "This machine",
        "  ✓ The time zone Europe/Berlin loads.",
        FONTS_EN,
        "Landkreis Test (--district landkreis-test)",
        "  ✗ There is no budget for 2027: every request waits for a coordinator's approval. Set it: "
        "python -m bot budget set --year 2027 --amount …",
        "  ✗ The rule offer_timeout holds “9999d”, which “policy set” would refuse. Set it again: "
        "python -m bot policy set offer_timeout …",
        "  ✗ The district has no coordinator: nobody approves requests or hears of problems. Invite one: "
        f"{invite} coordinator --for 1",
        "  ! Samir Khalil (interpreter 2) has no linked chat, so offers to them reach nobody. Invite them: "
        f"{invite} interpreter --for 2",
        "  ! Oberschule Walsrode (school 2) has no contact with a linked chat, so it cannot request "
        f"interpreters in the chat. Invite one: {invite} school --for 2",
        "Not ready: 3 problems stop the bot (✗).",
    ]
    status, lines = _doctor(monkeypatch, capsys, "de", **env)
    assert status == 1
    assert lines[6:10] == [
        "  ! Bei Telegram ist ein Webhook gesetzt (https://old.example/hook), aber TELEGRAM_WEBHOOK_URL ist "
        "nicht gesetzt: „run“ löscht ihn und holt Updates selbst ab (wartende Updates bleiben erhalten).",
        "  ! Bei Telegram wartende Updates: 1. Der Bot holt sie ab, sobald er läuft.",
        "  ! Letzter Fehler von Telegram beim Zustellen an den Webhook (Do., 01.01.2026, 00:00 Uhr): "
        "Connection refused",
        "Matrix",
    ]
    assert lines[14:] == [
        "Landkreis Test (--district landkreis-test)",
        "  ✗ Für 2027 gibt es kein Budget: Jede Anfrage wartet auf die Genehmigung der Koordinierung. Setzen "
        "Sie es: python -m bot budget set --year 2027 --amount …",
        "  ✗ Die Regel offer_timeout steht auf „9999d“, was „policy set“ ablehnen würde. Setzen Sie sie neu: "
        "python -m bot policy set offer_timeout …",
        "  ✗ Der Landkreis hat keine Koordinierung: Niemand genehmigt Anfragen oder erfährt von Problemen. "
        f"Laden Sie jemanden ein: {invite} coordinator --for 1",
        "  ! Samir Khalil (Dolmetscher/in 2) hat keinen verbundenen Chat, Angebote erreichen also niemanden. "
        f"Laden Sie sie oder ihn ein: {invite} interpreter --for 2",
        "  ! Oberschule Walsrode (Schule 2) hat keinen Kontakt mit verbundenem Chat und kann im Chat keine "
        f"Dolmetscher/innen anfragen. Laden Sie jemanden ein: {invite} school --for 2",
        "Nicht bereit: 3 Probleme halten den Bot auf (✗).",
    ]
    # In December, next year's budget is named too (requests for January need it).
    december = datetime(2026, 12, 10, 9, 0, tzinfo=UTC)
    with UnitOfWork(engine) as uow:
        findings = budget_findings(uow.session, 1, december, None)
    assert render([DoctorSection("Budget", findings)], Translator("en"))[1:3] == [
        "  ✓ The budget for 2026 is set: €5,000.00, of which €5,000.00 available.",
        "  ! There is no budget for 2027 yet; requests for January wait for approval until it is set: "
        "python -m bot budget set --year 2027 --amount …",
    ]


def test_rules_that_contradict_or_fit_badly_are_named() -> None:
    en = Translator("en")
    clash = policy_findings({"budget_alert_first": "96%", "budget_alert_second": "95%"}, "kreis")
    assert [en.render(f.message, f.params) for f in clash] == [
        "The first budget alert must come before the second."
    ]
    assert [f.status.value for f in clash] == ["problem"]
    # Offers open for all the time left: only phone and video (2h ahead) reach the 4h timeout.
    concern = policy_findings({"offer_timeout_share": "100%"}, None)
    assert [(f.status.value, en.render(f.message, f.params)) for f in concern] == [
        (
            "warning",
            "Offers stay open for 4h and up to all the time left, but requests by phone or video may come "
            "only 2h ahead: their first offers may stay open until the session begins. Lower "
            "offer_timeout_share or offer_timeout.",
        )
    ]
    assert [en.render(f.message, f.params) for f in policy_findings({}, None)] == [
        "The rules are within their ranges and fit together."
    ]


def test_a_database_behind_the_code_is_named_and_left_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    old = make_engine(url)
    upgrade(old, "0008")
    status, lines = _doctor(monkeypatch, capsys, "en", DATABASE_URL=url)
    assert status == 1
    assert lines[2] == (
        f"  ✗ The database is at revision 0008, the code needs {HEAD}: back it up, then run "
        "“python -m bot migrate”."
    )
    status, lines = _doctor(monkeypatch, capsys, "en", DATABASE_URL=url, AUTO_MIGRATE="1")
    assert lines[2] == (
        f"  ! The database is at revision 0008, the code needs {HEAD}; AUTO_MIGRATE=1 migrates it when the "
        "bot starts. Back it up first."
    )
    assert current_revision(old) == "0008"
    old.dispose()


# --- a correct set-up ---------------------------------------------------------------------------


def test_a_correct_set_up_passes_every_check(
    engine: Engine,
    bot_api: ApiThread,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _world(engine, budget_year=2027, link_all=True)
    api = bot_api.api
    env = {
        "DATABASE_URL": _url(engine),
        "TELEGRAM_TOKEN": api.token,
        "TELEGRAM_BASE_URL": api.base_url,
        "TELEGRAM_BOT_USERNAME": f"@{BOT_USERNAME}",
    }
    status, lines = _doctor(monkeypatch, capsys, "en", **env)
    assert status == 0
    assert lines == [
        "Database",
        f"  ✓ The database answers: {_shown(_url(engine))}",
        f"  ✓ The database is up to date (revision {HEAD}).",
        "Telegram",
        f"  ✓ Telegram accepts the token: the bot is @{BOT_USERNAME}.",
        "  ✓ No webhook is set: the bot fetches updates by long polling.",
        "Matrix",
        "  – Matrix is not configured (MATRIX_HOMESERVER and MATRIX_USER_ID are unset).",
        "This machine",
        "  ✓ The time zone Europe/Berlin loads.",
        FONTS_EN,
        "Landkreis Test (--district landkreis-test)",
        "  ✓ The budget for 2027 is set: €5,000.00, of which €5,000.00 available.",
        "  ✓ The rules are within their ranges and fit together.",
        "  ✓ Every interpreter has a linked chat (2).",
        "Ready: every check passed.",
    ]
    status, lines = _doctor(monkeypatch, capsys, "de", **env)
    assert status == 0
    assert lines[-5:] == [
        "Landkreis Test (--district landkreis-test)",
        "  ✓ Das Budget für 2027 ist gesetzt: 5.000,00\xa0€, davon 5.000,00\xa0€ verfügbar.",
        "  ✓ Die Regeln liegen in ihren Bereichen und passen zusammen.",
        "  ✓ Alle Dolmetscher/innen haben einen verbundenen Chat (2).",
        "Bereit: Alle Prüfungen bestanden.",
    ]
    monkeypatch.setenv("BOT_LOCALE", "en")
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ready"] is True
    assert report["sections"][1] == {
        "title": "Telegram",
        "checks": [
            {"status": "ok", "text": f"Telegram accepts the token: the bot is @{BOT_USERNAME}."},
            {"status": "ok", "text": "No webhook is set: the bot fetches updates by long polling."},
        ],
    }


def test_this_machine_without_time_zone_data_or_a_font_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib

    en = Translator("en")
    missing_zone = check_timezone(lambda _key: ZoneInfo.no_cache("Nowhere/No_Such_Zone"))
    assert (missing_zone.status.value, en.render(missing_zone.message, missing_zone.params)) == (
        "problem",
        "The time zone Europe/Berlin cannot be loaded: install the time zone data (“pip install tzdata”, "
        "or the system's tzdata package).",
    )
    monkeypatch.setitem(matplotlib.rcParams, "font.family", ["No Such Font"])
    no_font = check_fonts()
    assert (no_font.status.value, en.render(no_font.message, no_font.params)) == (
        "problem",
        "matplotlib finds no TrueType font for “No Such Font” to draw the charts and the evaluation PDF. "
        "Install the DejaVu fonts (e.g. the package fonts-dejavu-core).",
    )


# --- Matrix: whoami with the token the bot has, never a password login ----------------------------


@pytest.fixture(scope="module")
def synapse() -> Iterator[SynapseServer]:
    server = SynapseServer()
    server.start()
    yield server
    server.stop()


def _matrix_lines(env: dict[str, str]) -> list[str]:
    return render([check_matrix(env)], Translator("en"))[1:-1]


def test_the_matrix_login_is_checked_with_whoami_and_never_with_the_password(
    synapse: SynapseServer, tmp_path: Path
) -> None:
    body = {"username": "doctorbot", "password": "pw-doctor-1", "auth": {"type": "m.login.dummy"}}
    registered = synapse._call("POST", "/_matrix/client/v3/register", body)
    user_id, token, device = registered["user_id"], registered["access_token"], registered["device_id"]
    store = tmp_path / "store"
    base = {
        "MATRIX_HOMESERVER": synapse.url,
        "MATRIX_USER_ID": user_id,
        "MATRIX_STORE_PATH": str(store),
        "MATRIX_STORE_KEY": "a-store-key-of-32-characters-xyz",
    }
    assert _matrix_lines({**base, "MATRIX_ACCESS_TOKEN": token}) == [
        f"  ✓ The Matrix homeserver {synapse.url} answers.",
        f"  ✓ The homeserver knows the bot's login: {user_id}, device {device}.",
        f"  ✓ The Matrix store {store} does not exist yet; “run” creates it.",
        "  ✓ The store's keys are encrypted with MATRIX_STORE_KEY.",
    ]
    assert _matrix_lines({**base, "MATRIX_PASSWORD": "pw-doctor-1"}) == [
        f"  ✓ The Matrix homeserver {synapse.url} answers.",
        "  ✓ The bot has not logged in yet: “run” logs in with MATRIX_PASSWORD on its first start (doctor "
        "does not, as each password login makes a new device).",
        f"  ✓ The Matrix store {store} does not exist yet; “run” creates it.",
        "  ✓ The store's keys are encrypted with MATRIX_STORE_KEY.",
    ]
    assert not store.exists()
    # A store whose token the homeserver forgot, made before MATRIX_STORE_KEY: run logs in again.
    store.mkdir(mode=0o700)
    state = {"device_id": "OLDDEVICE", "access_token": "syt_forgotten", "sync_token": "", "first_start_ms": 1}
    (store / "bot-state.json").write_text(json.dumps(state))
    (store / "bot-state.json").chmod(0o600)
    unkeyed = {key: value for key, value in base.items() if key != "MATRIX_STORE_KEY"}
    assert _matrix_lines({**unkeyed, "MATRIX_PASSWORD": "pw-doctor-1"}) == [
        f"  ✓ The Matrix homeserver {synapse.url} answers.",
        "  ! The homeserver no longer knows the stored access token (M_UNKNOWN_TOKEN): “run” logs in again "
        "with MATRIX_PASSWORD, as the same device.",
        f"  ✓ The Matrix store {store} is writable and private.",
        "  ! The store is encrypted with nio's default key, as MATRIX_STORE_KEY is unset. For a key of its "
        "own: set MATRIX_STORE_KEY and start with an empty store (a new device).",
    ]
    assert _matrix_lines({**base, "MATRIX_ACCESS_TOKEN": token, "MATRIX_USER_ID": "@other:localhost"})[1] == (
        f"  ✗ The access token belongs to {user_id}, not to MATRIX_USER_ID (@other:localhost)."
    )
    devices = synapse._call("GET", "/_matrix/client/v3/devices", token=token)["devices"]
    assert [d["device_id"] for d in devices] == [device]  # no login made a device


# --- as a process -------------------------------------------------------------------------------


def test_python_m_bot_doctor_exits_1_on_a_database_never_migrated(tmp_path: Path) -> None:
    database = tmp_path / "empty.sqlite3"
    database.touch()
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    env.update(DATABASE_URL=f"sqlite:///{database}", BOT_LOCALE="en", PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, "-m", "bot", "doctor"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines() == [
        "Database",
        f"  ✓ The database answers: sqlite:///{database}",
        "  ✗ The database was never migrated: it has none of the bot's tables. Run “python -m bot migrate” "
        "(or “python -m bot init --name …” for a new district).",
        "Chat platforms",
        "  ✗ No chat platform is configured: set TELEGRAM_TOKEN, or MATRIX_HOMESERVER and MATRIX_USER_ID "
        "(see the README).",
        "This machine",
        "  ✓ The time zone Europe/Berlin loads.",
        FONTS_EN,
        "Not ready: 2 problems stop the bot (✗).",
    ]
    assert _tables(f"sqlite:///{database}") == set()
