"""The admin command line, run as a coordinator would run it: a separate process on a fresh database."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cli(tmp_path: Path, *args: str, locale: str = "en") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}", "BOT_LOCALE": locale}
    env.pop("TELEGRAM_BOT_USERNAME", None)
    env.pop("MATRIX_USER_ID", None)
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )


def test_init_demo_then_budget_show_json(tmp_path: Path) -> None:
    made = cli(tmp_path, "init", "--demo")
    assert made.returncode == 0, made.stderr
    invites = [line.split(": ") for line in made.stdout.splitlines() if " – " in line]
    assert [label.split(" – ")[0] for label, _ in invites] == ["School", *["Interpreter"] * 3, "Coordinator"]
    assert all(len(code) == 32 for _, code in invites)
    shown = cli(tmp_path, "budget", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    budget = json.loads(shown.stdout)
    assert budget["total_cents"] == 500000
    assert budget["reserved_cents"] == budget["charged_cents"] == 0
    assert budget["available_cents"] == 500000
    assert budget["district"] == "heidekreis"
    assert cli(tmp_path, "init", "--demo").returncode == 0  # a second run changes nothing
    pool = cli(tmp_path, "pool", "list").stdout.splitlines()
    assert len(pool) == 15
    languages = set()
    for line in pool:
        languages |= {name.strip() for name in line.split(")  ")[1].split("  [")[0].split(",")}
    assert len(languages) == 20


def test_errors_go_to_stderr_translated_with_a_nonzero_exit(tmp_path: Path) -> None:
    assert cli(tmp_path, "init", "--demo").returncode == 0
    bad = cli(tmp_path, "policy", "set", "offer_timeout", "soon", locale="de")
    assert (bad.returncode, bad.stdout) == (2, "")
    assert bad.stderr == "„soon“ ist keine Zeitangabe. Schreiben Sie z. B. 90s, 15m, 4h oder 2d.\n"
    good = cli(tmp_path, "policy", "set", "offer_timeout", "2h")
    assert (good.returncode, good.stdout.strip()) == (0, "offer_timeout: 4h → 2h")
    assert ["offer_timeout", "2h"] in [
        line.split()[:2] for line in cli(tmp_path, "policy", "show").stdout.splitlines()
    ]
    money = cli(tmp_path, "budget", "set", "--year", "2030", "--amount", "12,5")
    assert money.returncode == 0
    assert (
        json.loads(cli(tmp_path, "budget", "show", "--year", "2030", "--json").stdout)["total_cents"] == 1250
    )
    missing = cli(tmp_path, "budget", "show", "--year", "2031")
    assert missing.returncode == 2
    assert "no budget for 2031" in missing.stderr


def test_import_with_a_bad_row_reports_file_line_and_column(tmp_path: Path) -> None:
    assert cli(tmp_path, "init", "--name", "Landkreis Test").returncode == 0
    csv = tmp_path / "pool.csv"
    csv.write_text(
        "name,languages,municipality,latitude,longitude,modes,phone,email\nA,ar,X,52,9,phone,,\nB,zz,X,52,9,phone,,\n"
    )
    result = cli(tmp_path, "pool", "import", str(csv))
    assert result.returncode == 2
    assert f"{csv}, line 3, column “languages”" in result.stderr
    assert cli(tmp_path, "pool", "list").stdout == ""


def test_invite_create_prints_a_code(tmp_path: Path) -> None:
    assert cli(tmp_path, "init", "--demo").returncode == 0
    made = cli(tmp_path, "invite", "create", "--role", "interpreter", "--for", "4")
    assert made.returncode == 0, made.stderr
    code = made.stdout.splitlines()[0].split(": ")[1]
    assert len(code) == 32
    assert cli(tmp_path, "invite", "create", "--role", "school", "--for", "999").returncode == 2
    assert cli(tmp_path, "--help").returncode == 0


def test_chat_runs_the_terminal_chat_on_demo_data(tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'chat.sqlite3'}", "BOT_LOCALE": "en"}
    env.pop("TELEGRAM_TOKEN", None)
    done = subprocess.run(
        [sys.executable, "-m", "bot", "chat"],
        cwd=ROOT,
        env=env,
        input="/as amira\n/jobs\n/as koord\n/budget\n/quit\n",
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "You are now Amira Haddad." in done.stdout
    assert "No jobs at the moment." in done.stdout  # the demo people speak BOT_LOCALE's language
    assert "Total: €5,000.00" in done.stdout
