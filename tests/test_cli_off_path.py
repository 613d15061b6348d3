"""The command line off the happy path (issue 13, item 12): German help and errors, every policy
value's range, spreadsheet CSVs, `district list`, and `run` that never writes demo data unasked."""

import argparse
import ast
import io
import os
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from bot.cli.argparse_texts import ARGPARSE_TEXTS, expected_arguments, translated_argparse
from bot.cli.main import build_parser
from bot.i18n import Translator
from bot.terminal import TerminalChat
from db.models import District, Interpreter, PolicySetting
from db.uow import UnitOfWork
from services.clock import BERLIN
from services.csv_import import decode_csv, read_rows
from services.districts import coordinator_counts
from services.errors import DomainError, InvalidInput
from services.invites import create_invite, redeem_invite
from services.policy import BOUNDS, RULES, RULES_BY_KEY, Kind, Rule, bounds, parse_input, set_rule
from services.pool import POOL_COLUMNS, import_pool
from services.units import format_money_plain, parse_duration, parse_money
from services.vocabulary import Role
from tests.builders import ACTOR, NOW, build_world

ROOT = Path(__file__).resolve().parent.parent
MakeUow = Callable[[], UnitOfWork]
DE = Translator("de")


def cli(
    cwd: Path, *args: str, locale: str | None = "de", url: str | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """`python -m bot ARGS` in `cwd` with no chat platform configured; DATABASE_URL only when given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "MATRIX_", "DATABASE_URL"))}
    env |= {"PYTHONPATH": str(ROOT), "COLUMNS": "100"}
    env.pop("BOT_LOCALE", None)
    if locale is not None:
        env["BOT_LOCALE"] = locale
    if url is not None:
        env["DATABASE_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.sqlite3'}"


def url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


# --- argparse in German -------------------------------------------------------------------------


POLICY_SET_HELP_DE = """\
Aufruf: python -m bot policy set [-h] REGEL WERT

eine Regel ändern, z. B. „policy set offer_timeout 2h“

Argumente:
  REGEL       die Regel
  WERT        Zeitangaben wie 90s, 15m, 4h, 2d; Beträge wie 24.00

Optionen:
  -h, --help  diese Hilfe zeigen und beenden
"""


def test_help_is_german_by_default_and_english_with_bot_locale_en(tmp_path: Path) -> None:
    german = cli(tmp_path, "--help", locale=None)
    assert (german.returncode, german.stderr) == (0, "")
    lines = german.stdout.splitlines()
    assert lines[0] == "Aufruf: python -m bot [-h] [--version] [--district SLUG] BEFEHL ..."
    assert "Argumente:" in lines
    assert "Optionen:" in lines
    assert "  -h, --help       diese Hilfe zeigen und beenden" in lines
    assert "    district       die Landkreise" in lines
    assert "usage" not in german.stdout
    assert "options" not in german.stdout

    policy_set = cli(tmp_path, "policy", "set", "--help", locale=None)
    assert (policy_set.returncode, policy_set.stdout) == (0, POLICY_SET_HELP_DE)

    english = cli(tmp_path, "policy", "set", "--help", locale="en")
    assert english.returncode == 0
    assert english.stdout.splitlines()[:1] == ["usage: python -m bot policy set [-h] RULE VALUE"]
    assert "positional arguments:" in english.stdout
    assert "  -h, --help  show this help message and exit" in english.stdout


def test_argparse_errors_are_german_sentences_with_exit_2(tmp_path: Path) -> None:
    missing = cli(tmp_path, "policy", "set", "offer_timeout")
    assert (missing.returncode, missing.stdout) == (2, "")
    assert missing.stderr == (
        "Aufruf: python -m bot policy set [-h] REGEL WERT\n"
        "python -m bot policy set: Fehler: Diese Angaben fehlen: WERT\n"
    )
    unknown = cli(tmp_path, "frobnicate")
    assert unknown.returncode == 2
    assert unknown.stderr.splitlines()[1] == (
        "python -m bot: Fehler: Argument BEFEHL: 'frobnicate' gibt es nicht. Möglich sind: 'init', "
        "'migrate', 'backup', 'restore', 'doctor', 'run', 'chat', 'timers', 'district', 'pool', "
        "'schools', 'budget', 'policy', 'report', 'operator', 'privacy', 'person', 'retention', 'invite'"
    )
    year = cli(tmp_path, "budget", "show", "--year", "x")
    assert (year.returncode, year.stderr.splitlines()[1]) == (
        2,
        "python -m bot budget show: Fehler: Argument --year: „x“ ist keine ganze Zahl.",
    )
    extra = cli(tmp_path, "district", "list", "more")
    assert (extra.returncode, extra.stderr.splitlines()[1]) == (
        2,
        "python -m bot: Fehler: Unbekannte Angaben: more",
    )


def _argparse_ids() -> tuple[set[str], set[tuple[str, str]]]:
    """Every literal argparse passes to `_` or `ngettext` in the running Python."""
    tree = ast.parse(Path(argparse.__file__).read_text(encoding="utf-8"))
    single, plural = set(), set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        texts = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        if node.func.id == "_" and texts:
            single.add(texts[0])
        elif node.func.id == "ngettext" and len(texts) == 2:
            plural.add((texts[0], texts[1]))
    return single, plural


# Mistakes of a program that builds a parser, never of a person typing a command.
PROGRAMMER_ERRORS = {
    ".__call__() not defined",
    "conflicting subparser: %s",
    "conflicting subparser alias: %s",
    'argument "-" with mode %r',
    "cannot merge actions - two groups are named %r",
    "'required' is an invalid argument for positionals",
    "invalid option string %(option)r: must start with a character %(prefix_chars)r",
    "dest= is required for options like %r",
    "invalid conflict_resolution value: %r",
    "mutually exclusive arguments must be optional",
    "cannot have multiple subparser arguments",
    "%r is not callable",
}


def test_every_argparse_text_a_user_can_meet_is_in_the_catalogs_in_german() -> None:
    single, plural = _argparse_ids()
    assert single - PROGRAMMER_ERRORS == set(ARGPARSE_TEXTS)
    assert plural - {("conflicting option string: %s", "conflicting option strings: %s")} == {
        ("expected %s argument", "expected %s arguments")
    }
    untranslated = [text for text in ARGPARSE_TEXTS if DE.gettext(text) == text]
    assert untranslated == []
    assert (expected_arguments(DE, 1), expected_arguments(DE, 2)) == (
        "Erwartet wird 1 Wert.",
        "Erwartet werden 2 Werte.",
    )


def test_argparse_speaks_our_language_only_inside_the_block() -> None:
    english_gettext = argparse._  # type: ignore[attr-defined]
    with translated_argparse(DE):
        help_text = build_parser(DE).format_help()
    assert help_text.startswith("Aufruf: python -m bot")
    assert argparse._ is english_gettext  # type: ignore[attr-defined]
    assert argparse.ArgumentParser(prog="x").format_usage() == "usage: x [-h]\n"


# --- every policy value has a range ---------------------------------------------------------------

RANGED = [rule for rule in RULES if rule.kind not in (Kind.YES_NO, Kind.PLATFORMS)]


def _step(rule: Rule, text: str, direction: int) -> str:
    """The value next to `text` (one minute, cent, unit, percent or tenth) below (-1) or above (+1)."""
    if rule.kind is Kind.DURATION:  # as days, hours and minutes: 730d and a minute are 730d1m
        minutes = int((parse_duration(text) + direction * timedelta(minutes=1)).total_seconds()) // 60
        days, rest = divmod(minutes, 1440)
        parts = ((days, "d"), (rest // 60, "h"), (rest % 60, "m"))
        return "".join(f"{n}{unit}" for n, unit in parts if n)
    if rule.kind is Kind.MONEY:
        cents = parse_money(text) + direction
        return format_money_plain(cents)
    if rule.kind is Kind.PERCENT:
        return f"{int(text.removesuffix('%')) + direction}%"
    if rule.kind is Kind.DECIMAL:
        return str(Decimal(text) + direction * Decimal("0.1"))
    return str(int(text) + direction)


def test_every_rule_but_yes_no_has_its_own_range_and_its_default_lies_inside() -> None:
    assert set(BOUNDS) == {rule.key for rule in RANGED}
    for rule in RANGED:
        low, high = BOUNDS[rule.key]
        if rule.kind is Kind.TEXT:
            assert int(low) <= len(rule.default) <= int(high), rule.key
        else:
            assert parse_input(rule.key, low) <= parse_input(rule.key, rule.default), rule.key
            assert parse_input(rule.key, rule.default) <= parse_input(rule.key, high), rule.key


@pytest.mark.parametrize("rule", RANGED, ids=[rule.key for rule in RANGED])
def test_each_rule_takes_its_minimum_and_maximum_and_refuses_what_lies_beyond(rule: Rule) -> None:
    limits = bounds(rule)
    assert limits is not None
    low, high = limits
    if rule.kind is Kind.TEXT:
        assert parse_input(rule.key, "x" * int(low)) == "x" * int(low)
        assert parse_input(rule.key, "x" * int(high)) == "x" * int(high)
        for length in (int(low) - 1, int(high) + 1):
            with pytest.raises(InvalidInput) as refused:
                parse_input(rule.key, "x" * length)
            assert DE.error(refused.value) == (
                f"Erlaubt für {rule.key}: {low} bis {high} Zeichen. Der Text hat {length}."
            )
        return
    assert parse_input(rule.key, low) < parse_input(rule.key, high)
    beyond = [_step(rule, high, +1)]
    if not (rule.kind is Kind.MONEY and parse_money(low) == 0):  # below 0.00 is no amount at all
        beyond.append(_step(rule, low, -1))
    for value in beyond:
        with pytest.raises(InvalidInput) as refused:
            parse_input(rule.key, value)
        assert (
            DE.error(refused.value) == f"Erlaubt für {rule.key}: {low} bis {high}. „{value}“ liegt außerhalb."
        )
    if rule.kind is Kind.MONEY and parse_money(low) == 0:
        with pytest.raises(InvalidInput):
            parse_input(rule.key, "-0.01")


def test_yes_no_rules_take_yes_and_no_only() -> None:
    for rule in (r for r in RULES if r.kind is Kind.YES_NO):
        assert (parse_input(rule.key, "ja"), parse_input(rule.key, "no")) == (True, False)
        with pytest.raises(InvalidInput):
            parse_input(rule.key, "vielleicht")


def test_an_offer_open_for_9999_days_is_refused_and_nothing_changes(uow: MakeUow) -> None:
    world = build_world(uow)
    with uow() as u, pytest.raises(InvalidInput) as refused:
        set_rule(u.session, world.district_id, "offer_timeout", "9999d", actor=ACTOR, now=NOW)
    assert DE.error(refused.value) == "Erlaubt für offer_timeout: 5m bis 7d. „9999d“ liegt außerhalb."
    with uow() as u:
        assert set_rule(u.session, world.district_id, "offer_timeout", "7d", actor=ACTOR, now=NOW) == (
            "4h",
            "7d",
        )
        u.commit()
    with uow() as u:
        stored = u.session.exec(
            select(PolicySetting).where(
                PolicySetting.district_id == world.district_id, PolicySetting.key == "offer_timeout"
            )
        ).one()
        assert stored.value == "7d"
    assert RULES_BY_KEY["offer_timeout"].default == "4h"


def test_policy_set_on_the_command_line_names_the_range(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    assert cli(tmp_path, "init", "--name", "Landkreis Test", url=url).returncode == 0
    refused = cli(tmp_path, "policy", "set", "offer_timeout", "9999d", url=url)
    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.stderr == "Erlaubt für offer_timeout: 5m bis 7d. „9999d“ liegt außerhalb.\n"
    shown = cli(tmp_path, "policy", "show", url=url, locale="en").stdout.splitlines()
    assert [line.split()[:2] for line in shown if line.startswith("offer_timeout ")] == [
        ["offer_timeout", "4h"]
    ]
    assert next(line for line in shown if line.startswith("offer_timeout ")).endswith(
        "An offer expires after (5m–7d)"
    )


# --- CSV from a spreadsheet -----------------------------------------------------------------------

GERMAN_EXCEL = (
    "sep=;\r\n"
    "Name;Languages;Municipality;Latitude;Longitude;Modes;Phone;Email\r\n"
    "Jürgen Größe;ar, fa;Soltau;52,9868;9,8433;phone, video;;\r\n"
    ";;;;;;;\r\n"
    "Amira Haddad;ar;Bispingen;53,0833;9,9999;in_person;+49 5194 1;amira@example.org\r\n"
)


def test_a_german_excel_file_in_windows_1252_with_semicolons_is_read(uow: MakeUow) -> None:
    world = build_world(uow)
    text = decode_csv(GERMAN_EXCEL.encode("cp1252"), file="pool.csv")
    assert text == GERMAN_EXCEL
    with uow() as u:
        count = import_pool(
            u.session, district_id=world.district_id, text=text, file="pool.csv", actor=ACTOR, now=NOW
        )
        u.commit()
    assert count == 2
    with uow() as u:
        rows = u.session.exec(select(Interpreter).order_by(Interpreter.name)).all()
        assert [(i.name, i.municipality, round(i.latitude, 4), i.modes) for i in rows] == [
            ("Amira Haddad", "Bispingen", 53.0833, "in_person"),
            ("Jürgen Größe", "Soltau", 52.9868, "phone,video"),
        ]


def test_encodings_and_separators() -> None:
    header = ",".join(POOL_COLUMNS)
    assert decode_csv(("\ufeff" + header).encode("utf-8"), file="f") == header
    assert decode_csv(("\ufeff" + header).encode("utf-16-le"), file="f").lstrip("\ufeff") == header
    tabbed = header.replace(",", "\t") + "\nA\tar\tX\t52\t9\tphone\t\t\n"
    assert [r.values["name"] for r in read_rows(tabbed, file="f", columns=POOL_COLUMNS)] == ["A"]
    assert [r.line for r in read_rows(GERMAN_EXCEL, file="f", columns=POOL_COLUMNS)] == [3, 5]


@pytest.mark.parametrize(
    ("data", "sentence"),
    [
        (
            b"PK\x03\x04rest of a workbook",
            "pool.xlsx ist eine Arbeitsmappe, keine CSV-Datei. Speichern Sie sie als CSV.",
        ),
        (b"n\x00a\x00m\x00e\x00", "pool.xlsx ist keine Textdatei. Speichern Sie die Tabelle als CSV."),
    ],
)
def test_a_file_that_is_no_csv_text_is_named_as_the_problem(data: bytes, sentence: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        decode_csv(data, file="pool.xlsx")
    assert DE.error(refused.value) == sentence


def test_a_table_without_a_separator_or_with_other_columns_says_so() -> None:
    def error(text: str) -> str:
        with pytest.raises(DomainError) as refused:
            list(read_rows(text, file="pool.csv", columns=("name", "languages")))
        return DE.error(refused.value)

    assert error("name|languages\nA|ar\n") == (
        "pool.csv lässt sich nicht als Tabelle lesen: Die erste Zeile hat keine Spalten, getrennt durch "
        "Kommas, Semikolons oder Tabulatoren. Sie muss die Spalten name, languages nennen."
    )
    assert error("") == "pool.csv ist leer."
    assert error("Name;Sprachen\nA;ar\n") == (
        "pool.csv, Zeile 1, Spalte „languages“: Die Kopfzeile hat sie nicht. Sie hat: Name, Sprachen. "
        "Es wurde nichts importiert."
    )


def test_pool_import_on_the_command_line_reads_a_german_excel_file(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    assert cli(tmp_path, "init", "--name", "Landkreis Test", url=url).returncode == 0
    (tmp_path / "pool.csv").write_bytes(GERMAN_EXCEL.encode("cp1252"))
    done = cli(tmp_path, "pool", "import", "pool.csv", url=url, locale="en")
    assert (done.returncode, done.stdout, done.stderr) == (0, "Imported 2 interpreters.\n", "")
    listed = cli(tmp_path, "pool", "list", url=url, locale="en").stdout.splitlines()
    assert [line.split("  ", 2)[2] for line in listed] == [
        "Jürgen Größe  (Soltau)  Arabic, Persian  [by phone, by video]",
        "Amira Haddad  (Bispingen)  Arabic  [in person]",
    ]
    (tmp_path / "pool.xlsx").write_bytes(b"PK\x03\x04\x14\x00")
    refused = cli(tmp_path, "pool", "import", "pool.xlsx", url=url)
    assert (refused.returncode, refused.stderr) == (
        2,
        "pool.xlsx ist eine Arbeitsmappe, keine CSV-Datei. Speichern Sie sie als CSV.\n",
    )


# --- districts ------------------------------------------------------------------------------------


def test_coordinator_counts_per_district(uow: MakeUow) -> None:
    first = build_world(uow)
    build_world(uow, slug="zweiter-kreis")  # a district without coordinators is not counted
    with uow() as u:
        for _ in range(2):
            _, code = create_invite(
                u.session,
                district_id=first.district_id,
                role=Role.COORDINATOR,
                for_id=first.district_id,
                actor=ACTOR,
                now=NOW,
            )
            redeem_invite(u.session, code=code, now=NOW)
        u.commit()
    with uow() as u:
        assert coordinator_counts(u.session) == {first.district_id: 2}


def test_init_prints_the_id_and_district_list_shows_coordinators(engine: Engine, tmp_path: Path) -> None:
    url = url_of(engine)
    empty = cli(tmp_path, "district", "list", url=url)
    assert (empty.returncode, empty.stdout) == (
        0,
        "Es gibt noch keinen Landkreis. Führen Sie zuerst „init“ aus.\n",
    )
    made = cli(tmp_path, "init", "--name", "Landkreis Celle", "--slug", "celle", url=url)
    assert (made.returncode, made.stdout) == (
        0,
        "Der Landkreis „Landkreis Celle“ ist angelegt (ID 1, --district celle).\n",
    )
    demo = cli(tmp_path, "init", "--demo", url=url, locale="en")
    assert demo.stdout.splitlines()[0].startswith("Created the demo district “")
    assert "(id 2, --district " in demo.stdout.splitlines()[0]
    listed = cli(tmp_path, "district", "list", url=url)
    assert listed.returncode == 0
    lines = listed.stdout.splitlines()
    assert lines[0] == (
        "   1  Landkreis Celle  (--district celle)  "
        "noch keine Koordinierung (invite create --role coordinator --for 1)"
    )
    assert lines[1].startswith("   2  ")
    assert lines[1].endswith("noch keine Koordinierung (invite create --role coordinator --for 2)")
    with UnitOfWork(engine) as u:
        _, code = create_invite(
            u.session, district_id=1, role=Role.COORDINATOR, for_id=1, actor=ACTOR, now=NOW
        )
        redeem_invite(u.session, code=code, now=NOW)
        u.commit()
    assert cli(tmp_path, "district", "list", url=url, locale="en").stdout.splitlines()[0] == (
        "   1  Landkreis Celle  (--district celle)  coordinators: 1"
    )


# --- run never writes demo data unasked -----------------------------------------------------------

NO_DISTRICT_DE = (
    "Diese Datenbank enthält keinen Landkreis, und keine Chat-Plattform ist eingerichtet. Zum Ausprobieren "
    "im Terminal mit Demodaten: run --demo (die Daten liegen dann in demo.sqlite3). Für einen Landkreis: "
    "init --name „Landkreis …“, dann TELEGRAM_TOKEN oder MATRIX_HOMESERVER und MATRIX_USER_ID setzen "
    "(siehe README).\n"
)
NO_PLATFORM_DE = (
    "Keine Chat-Plattform ist eingerichtet. Setzen Sie TELEGRAM_TOKEN oder MATRIX_HOMESERVER und "
    "MATRIX_USER_ID (siehe README). Zum Ausprobieren im Terminal mit Demodaten: run --demo.\n"
)


def _districts(engine: Engine) -> list[str]:
    with UnitOfWork(engine) as u:
        return [d.slug for d in u.session.exec(select(District).order_by(District.id))]  # type: ignore[arg-type]


def test_run_without_a_platform_writes_nothing_and_says_what_to_do(engine: Engine, tmp_path: Path) -> None:
    url = url_of(engine)
    empty = cli(tmp_path, "run", url=url)
    assert (empty.returncode, empty.stdout, empty.stderr) == (2, "", NO_DISTRICT_DE)
    assert _districts(engine) == []
    build_world(lambda: UnitOfWork(engine), slug="heidekreis")
    real = cli(tmp_path, "run", url=url)
    assert (real.returncode, real.stdout, real.stderr) == (2, "", NO_PLATFORM_DE)
    assert _districts(engine) == ["heidekreis"]  # no demo district beside the real one
    assert not (tmp_path / "demo.sqlite3").exists()


def test_run_demo_keeps_the_demo_in_its_own_file(tmp_path: Path) -> None:
    done = cli(tmp_path, "run", "--demo", locale="en", stdin="/as amira\n/quit\n")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "The demo's data are kept in demo.sqlite3; delete that file to start afresh."
    assert "You are now Amira Haddad." in done.stdout
    assert (tmp_path / "demo.sqlite3").is_file()
    assert not (tmp_path / "dolmetscherpool.sqlite3").exists()  # the default database stays untouched
    again = cli(tmp_path, "run", "--demo", locale="en", stdin="/quit\n")
    assert again.returncode == 0
    assert "Terminal chat on the demo data" in again.stdout


def test_make_run_starts_the_demo_chat() -> None:
    makefile = (ROOT / "Makefile").read_text().splitlines()
    recipe = makefile[makefile.index("run: $(STAMP)") + 1]
    assert recipe.strip() == "$(BIN)/python -m bot run --demo"


# --- the README walkthrough, on any day of the year -----------------------------------------------


def _walkthrough() -> list[str]:
    """The README walkthrough as typed lines: two or more spaces part them; (…) and -> … are notes."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("A booking, start to end", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    typed = []
    for line in block.splitlines():
        for part in re.split(r"\s{2,}", line.split("->", 1)[0].strip()):
            text = re.sub(r"\([^)]*\)", "", part).strip()
            if text:
                typed.append(text)
    return typed


@pytest.mark.parametrize(
    "today",
    [
        datetime(2026, 1, 1, 0, 5, tzinfo=BERLIN),  # New Year's night
        datetime(2026, 6, 13, 23, 30, tzinfo=BERLIN),  # a Saturday, late
        datetime(2026, 12, 29, 18, 0, tzinfo=BERLIN),  # the last day that still books into this year
    ],
    ids=["new-year", "saturday-night", "29-december"],
)
def test_the_readme_walkthrough_books_and_charges_on_any_day(
    engine: Engine, tmp_path: Path, today: datetime
) -> None:
    typed = _walkthrough()
    assert typed[:4] == ["/request", "arabisch", "1", "übermorgen 10:00"]
    session = (today + timedelta(days=2)).replace(hour=10, minute=0)
    now = [today.astimezone(UTC)]
    out = io.StringIO()
    chat = TerminalChat(engine, out=out, locale="de", clock=lambda: now[0], files=tmp_path)
    for line in typed:
        if line == "/report":  # "once the session has begun (in the demo: after it)"
            now[0] = (session + timedelta(hours=2)).astimezone(UTC)
        chat.say(line)
    text = out.getvalue()
    assert f"{DE.day(session.date())}, 10:00 Uhr · 60 min" in text
    assert "Gebucht: Samir Khalil übernimmt den Einsatz." in text
    # 75 min in person bill 90 (60, then per started 30): 36.00 EUR, and 18 km at 0.30: 5.40 EUR.
    assert f"Im Jahr {today.year} abgerechnet: 41,40\xa0€" in text
