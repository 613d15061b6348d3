"""deploy/: the systemd unit, the env file, the container, compose and the proxy, checked as far as
this machine allows (systemd-analyze, docker compose, nginx where installed; each skips with a reason
otherwise), and every environment variable the code reads named in env.example and the README.

The real install (deploy/install.sh into a fresh venv, then the bot run from it) is
tests/test_production_install.py.
"""

import json
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "dolmetscherpool.service"
VENV_PYTHON = "/opt/dolmetscherpool/venv/bin/python"
# Read only by the tests: a deployment never sets them.
TEST_ONLY = {"REQUIRE_POSTGRES", "KEEP_SYNAPSE"}


# --- the environment variables ------------------------------------------------------------------

_READS = [
    re.compile(r"""\b(?:environ|env)\s*(?:\.get\(|\.setdefault\(|\[)\s*["']([A-Z][A-Z0-9_]*)["']"""),
    re.compile(r"""\bgetenv\(\s*["']([A-Z][A-Z0-9_]*)["']"""),
]


def variables_read(folders: tuple[str, ...] = ("bot", "services", "db")) -> dict[str, set[str]]:
    """Every environment variable named in a read in those folders, with the files that read it."""
    found: dict[str, set[str]] = {}
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            for pattern in _READS:
                for name in pattern.findall(text):
                    found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def env_example() -> dict[str, list[str]]:
    """Each variable env.example names (set or commented out) with the comment lines just above it."""
    named: dict[str, list[str]] = {}
    comment: list[str] = []
    for line in (DEPLOY / "env.example").read_text(encoding="utf-8").splitlines():
        variable = re.fullmatch(r"#? ?([A-Z][A-Z0-9_]*)=(\S*)", line)
        if variable:
            named[variable.group(1)] = comment
            comment = []
        elif line.startswith("# ") and not line.startswith("# ---"):
            comment = [*comment, line[2:]]
        else:
            comment = []
    return named


def readme_configuration() -> set[str]:
    """The variables in the README's Configuration table."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", table, flags=re.MULTILINE))


def test_the_scan_finds_the_variables_the_code_is_known_to_read() -> None:
    read = variables_read()
    # A scan that found nothing would let every check below pass: these reads are known.
    assert {"DATABASE_URL", "TELEGRAM_TOKEN", "MATRIX_STORE_KEY", "HEALTH_LISTEN", "LOG_FORMAT"} <= set(read)
    assert "db/engine.py" in read["DATABASE_URL"]
    assert "bot/health.py" in read["HEALTH_STALE_AFTER"]
    assert len(read) >= 18


def test_every_variable_the_code_reads_is_in_env_example_with_a_comment() -> None:
    named = env_example()
    missing = sorted(set(variables_read()) - set(named) - TEST_ONLY)
    assert missing == [], f"read by the code but not in deploy/env.example: {missing}"
    uncommented = sorted(name for name, comment in named.items() if not comment)
    assert uncommented == [], f"no comment above them in deploy/env.example: {uncommented}"
    stale = sorted(set(named) - set(variables_read()))
    assert stale == [], f"in deploy/env.example but read nowhere: {stale}"
    assert not set(named) & TEST_ONLY


def test_every_variable_the_code_reads_is_in_the_readme_configuration_table() -> None:
    table = readme_configuration()
    missing = sorted(set(variables_read()) - table - TEST_ONLY)
    assert missing == [], f"read by the code but not in the README's Configuration table: {missing}"
    stale = sorted(table - set(variables_read()) - TEST_ONLY)
    assert stale == [], f"in the README's Configuration table but read nowhere: {stale}"


def test_env_example_is_read_alike_by_systemd_and_compose() -> None:
    """No quotes, no spaces around '=', no value with a space or '#': both read such lines differently."""
    for line in (DEPLOY / "env.example").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            assert re.fullmatch(r"[A-Z][A-Z0-9_]*=[^\s\"'#]*", line), line


# --- systemd ------------------------------------------------------------------------------------


def unit_settings(text: str) -> dict[tuple[str, str], list[str]]:
    """(section, key) -> values in order (systemd allows a key more than once)."""
    settings: dict[tuple[str, str], list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        settings.setdefault((section, key), []).append(value)
    return settings


def test_the_unit_runs_the_bot_as_its_own_user_in_its_state_directory() -> None:
    unit = unit_settings(UNIT.read_text())

    def one(key: str) -> str:
        values = unit[("Service", key)]
        assert len(values) == 1, key
        return values[0]

    assert one("ExecStart") == f"{VENV_PYTHON} -m bot run"
    assert one("User") == "dolmetscherpool"
    assert one("EnvironmentFile") == "/etc/dolmetscherpool/env"
    assert one("StateDirectory") == "dolmetscherpool"
    assert one("WorkingDirectory") == "/var/lib/dolmetscherpool"
    assert one("ProtectSystem") == "strict"
    assert one("Restart") == "on-failure"
    assert one("RestartPreventExitStatus") == "2"  # a refused set-up: restarting does not fix it
    assert (one("NoNewPrivileges"), one("PrivateTmp"), one("ProtectHome")) == ("yes", "yes", "yes")
    assert ("Service", "ExecStartPre") not in unit  # no migration on start: an upgrade runs migrate
    assert ("Service", "DynamicUser") not in unit
    assert unit[("Install", "WantedBy")] == ["multi-user.target"]
    # Under ProtectSystem=strict only these are writable: the state (database file, Matrix store),
    # and matplotlib's cache.
    env = dict(item.split("=", 1) for item in shlex.split(one("Environment")))
    assert env["MPLCONFIGDIR"] == "/var/cache/dolmetscherpool"
    assert one("CacheDirectory") == "dolmetscherpool"
    assert ("Service", "ReadWritePaths") not in unit


def _verifiable_unit(tmp_path: Path) -> Path:
    """The unit with only its ExecStart's interpreter pointed at one that exists here."""
    text = UNIT.read_text()
    assert text.count(VENV_PYTHON) == 1
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace(VENV_PYTHON, sys.executable))
    return copy


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_finds_nothing_in_the_unit(tmp_path: Path) -> None:
    found = subprocess.run(
        ["systemd-analyze", "verify", str(_verifiable_unit(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # verify exits 0 on unknown keys and bad values too, and only prints them: nothing printed.
    assert (found.returncode, found.stdout, found.stderr) == (0, "", "")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_the_unit_is_hardened(tmp_path: Path) -> None:
    found = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(_verifiable_unit(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if "--offline" in found.stderr and found.returncode != 0:
        pytest.skip("this systemd-analyze has no --offline security check")
    level = re.search(r"Overall exposure level for dolmetscherpool\.service: ([\d.]+) (\w+)", found.stdout)
    assert level is not None, found.stdout + found.stderr
    # 0 is a fully locked service, 10 an unprotected one; systemd calls up to 2 "OK".
    assert float(level.group(1)) <= 2.0, found.stdout
    assert level.group(2) == "OK"


def test_the_admin_wrapper_runs_the_bot_like_the_unit() -> None:
    """deploy/dolmetscherpool-cli: same user, env file, state directory and interpreter as the unit."""
    wrapper = (DEPLOY / "dolmetscherpool-cli").read_text()
    unit = unit_settings(UNIT.read_text())
    assert subprocess.run(["sh", "-n", str(DEPLOY / "dolmetscherpool-cli")], check=False).returncode == 0
    assert os.access(DEPLOY / "dolmetscherpool-cli", os.X_OK)
    for key in ("User", "EnvironmentFile", "StateDirectory", "WorkingDirectory", "CacheDirectory", "UMask"):
        assert f"-p {key}={unit[('Service', key)][0]} " in wrapper, key
    assert f'{VENV_PYTHON} -m bot "$@"' in wrapper


# --- the container and compose --------------------------------------------------------------------


def containerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of deploy/Containerfile, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", (DEPLOY / "Containerfile").read_text())
    lines = [line.strip() for line in joined.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def _packages() -> list[str]:
    pyproject = (ROOT / "pyproject.toml").read_text()
    include = re.search(r"include = \[([^\]]*)\]", pyproject)
    assert include is not None
    return [name.strip().strip('"').rstrip("*") for name in include.group(1).split(",")]


def test_the_container_installs_with_install_sh_and_runs_as_a_user() -> None:
    steps = containerfile()
    runs = [args for kind, args in steps if kind == "RUN"]
    installs = [args for args in runs if "deploy/install.sh" in args]
    assert installs == ["sh /src/deploy/install.sh /opt/dolmetscherpool/venv /src && rm -rf /src"]
    assert not any("pip" in args for args in runs)  # no install steps besides the tested ones
    copied = [args.split()[0] for kind, args in steps if kind == "COPY"]
    # Every package pyproject.toml ships is in the build, and the files the build reads.
    assert set(_packages()) | {"pyproject.toml", "deploy/install.sh"} <= set(copied)
    assert steps[0] == ("FROM", "python:3.11-slim")
    user = [args for kind, args in steps if kind == "USER"]
    assert user == ["10001:10001"]
    assert ("ENTRYPOINT", '["python", "-m", "bot"]') in steps
    assert ("CMD", '["run"]') in steps
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    for name in _packages():
        assert f"!{name}/" in ignored, name  # the build context holds them (everything else is left out)


def _healthcheck_command() -> list[str]:
    args = next(args for kind, args in containerfile() if kind == "HEALTHCHECK")
    command = json.loads(args.split("CMD", 1)[1])
    assert isinstance(command, list)
    return [str(part) for part in command]


class _Health(BaseHTTPRequestHandler):
    status = 200
    paths: list[str] = []  # noqa: RUF012 - shared by the server's handler instances on purpose

    def do_GET(self) -> None:
        type(self).paths.append(self.path)
        self.send_response(type(self).status)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[int, type[_Health]]]:
    handler: type[_Health] = type("Handler", (_Health,), {"status": 200, "paths": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], handler
    server.shutdown()
    server.server_close()


def _check(command: list[str], **env: str) -> int:
    assert command[0] == "python"
    return subprocess.run([sys.executable, *command[1:]], env={**os.environ, **env}, timeout=30).returncode


def test_the_containers_healthcheck_is_healthy_only_on_a_200_from_healthz(
    health_server: tuple[int, type[_Health]],
) -> None:
    port, handler = health_server
    command = _healthcheck_command()
    assert _check(command, HEALTH_LISTEN=f"0.0.0.0:{port}") == 0
    handler.status = 503
    assert _check(command, HEALTH_LISTEN=f"127.0.0.1:{port}") == 1
    assert handler.paths == ["/healthz", "/healthz"]
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        nobody = free.getsockname()[1]
    assert _check(command, HEALTH_LISTEN=f"127.0.0.1:{nobody}") == 1  # no answer: unhealthy


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_compose_runs_the_bot_from_the_containerfile_next_to_postgres_16() -> None:
    spec = compose()
    assert set(spec["services"]) == {"bot", "postgres"}
    assert set(spec["volumes"]) == {"database", "matrix-store"}
    postgres, bot = spec["services"]["postgres"], spec["services"]["bot"]
    assert postgres["image"] == "postgres:16"
    assert postgres["volumes"] == ["database:/var/lib/postgresql/data"]
    assert postgres["healthcheck"]["test"] == [
        "CMD-SHELL",
        "pg_isready -U dolmetscherpool -d dolmetscherpool",
    ]
    assert (DEPLOY / bot["build"]["context"]).resolve() == ROOT
    assert (ROOT / bot["build"]["dockerfile"]) == DEPLOY / "Containerfile"
    assert bot["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert bot["env_file"] == "dolmetscherpool.env"
    assert (bot["restart"], postgres["restart"]) == ("unless-stopped", "unless-stopped")
    environment = bot["environment"]
    assert environment["DATABASE_URL"].startswith("postgresql+psycopg://dolmetscherpool:${POSTGRES_PASSWORD")
    assert environment["DATABASE_URL"].endswith("@postgres:5432/dolmetscherpool")
    assert bot["volumes"] == [f"matrix-store:{environment['MATRIX_STORE_PATH']}"]
    # The image makes the store's directory for its user, so the new volume starts owned by it.
    assert any(
        kind == "RUN" and environment["MATRIX_STORE_PATH"] in args and "-o 10001" in args
        for kind, args in containerfile()
    )


def test_composes_healthcheck_asks_healthz_where_the_bot_listens(
    health_server: tuple[int, type[_Health]],
) -> None:
    port, handler = health_server
    bot = compose()["services"]["bot"]
    command = bot["healthcheck"]["test"]
    assert command[0] == "CMD"
    listen = bot["environment"]["HEALTH_LISTEN"]
    assert f"http://{listen}/healthz" in command[-1]
    moved = [part.replace(listen, f"127.0.0.1:{port}") for part in command[1:]]
    assert _check(moved) == 0
    handler.status = 503
    assert _check(moved) == 1
    assert handler.paths == ["/healthz", "/healthz"]


def _compose_command() -> tuple[list[str], bool] | None:
    """`docker compose` (v2), else `docker-compose` (v1, which predates the top-level name)."""
    if shutil.which("docker"):
        v2 = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30, check=False)
        if v2.returncode == 0:
            return ["docker", "compose"], True
    if shutil.which("docker-compose"):
        return ["docker-compose"], False
    return None


@pytest.mark.skipif(
    _compose_command() is None, reason="neither docker compose nor docker-compose is installed"
)
def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    found = _compose_command()
    assert found is not None
    command, has_name = found
    folder = tmp_path / "deploy"
    folder.mkdir()
    text = (DEPLOY / "compose.yaml").read_text()
    assert re.search(r"^name: dolmetscherpool$", text, flags=re.MULTILINE)
    if not has_name:
        text = re.sub(r"^name: .*\n", "", text, flags=re.MULTILINE)
    (folder / "compose.yaml").write_text(text)
    shutil.copy(DEPLOY / "env.example", folder / "dolmetscherpool.env")

    def config(**env: str) -> subprocess.CompletedProcess[str]:
        clean = {k: v for k, v in os.environ.items() if k != "POSTGRES_PASSWORD"}
        return subprocess.run(
            [*command, "-f", str(folder / "compose.yaml"), "config"],
            cwd=folder,
            env={**clean, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )

    refused = config()
    assert refused.returncode != 0
    assert "set POSTGRES_PASSWORD in deploy/.env" in refused.stderr
    accepted = config(POSTGRES_PASSWORD="0123abcd")
    assert accepted.returncode == 0, accepted.stderr
    resolved = yaml.safe_load(accepted.stdout)
    bot = resolved["services"]["bot"]
    url = "postgresql+psycopg://dolmetscherpool:0123abcd@postgres:5432/dolmetscherpool"
    assert bot["environment"]["DATABASE_URL"] == url  # compose's own value wins over the env file's
    assert bot["environment"]["HEALTH_LISTEN"] == "127.0.0.1:9120"
    assert resolved["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"] == "0123abcd"


# --- the proxy ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def nginx_site(tmp_path: Path) -> Path:
    """deploy/nginx-webhook.conf with a throw-away certificate, as a whole nginx configuration."""
    if shutil.which("nginx") is None or shutil.which("openssl") is None:
        pytest.skip("nginx or openssl is not installed")
    subprocess.run(
        [
            *(
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=localhost",
            ),
            *("-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    site = (DEPLOY / "nginx-webhook.conf").read_text()
    site = site.replace("/etc/letsencrypt/live/bot.kreis.example/fullchain.pem", str(tmp_path / "cert.pem"))
    site = site.replace("/etc/letsencrypt/live/bot.kreis.example/privkey.pem", str(tmp_path / "key.pem"))
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\ndaemon off;\nevents {{}}\n"
        f"http {{\n  client_body_temp_path {tmp_path}/body;\n  proxy_temp_path {tmp_path}/proxy;\n"
        f"  access_log off;\n  include {tmp_path}/site.conf;\n}}\n"
    )
    return tmp_path


def test_nginx_accepts_the_webhook_snippet(nginx_site: Path) -> None:
    found = subprocess.run(
        ["nginx", "-t", "-p", str(nginx_site), "-c", str(nginx_site / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert found.returncode == 0, found.stderr
    assert "test is successful" in found.stderr


class _Webhook(BaseHTTPRequestHandler):
    seen: list[tuple[str, str, str | None, int]] = []  # noqa: RUF012 - shared by the handler instances

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        secret = self.headers.get("X-Telegram-Bot-Api-Secret-Token")
        type(self).seen.append(("POST", self.path, secret, length))
        self.send_response(200)
        self.end_headers()

    def do_GET(self) -> None:
        type(self).seen.append(("GET", self.path, None, 0))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_nginx_passes_only_webhook_posts_with_their_secret(nginx_site: Path) -> None:
    """A real nginx with the snippet in front of a stand-in for WEBHOOK_LISTEN."""
    handler: type[_Webhook] = type("Webhook", (_Webhook,), {"seen": []})
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    public = _free_port()
    site = (nginx_site / "site.conf").read_text()
    assert site.count("server 127.0.0.1:8443;") == 1
    assert site.count("listen 443 ssl;") == 1
    site = site.replace("server 127.0.0.1:8443;", f"server 127.0.0.1:{upstream.server_address[1]};")
    site = site.replace("listen 443 ssl;", f"listen 127.0.0.1:{public} ssl;").replace(
        "listen [::]:443 ssl;", ""
    )
    (nginx_site / "site.conf").write_text(site)
    nginx = subprocess.Popen(
        ["nginx", "-p", str(nginx_site), "-c", str(nginx_site / "nginx.conf")], stderr=subprocess.PIPE
    )
    try:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE

        def ask(method: str, path: str, body: bytes = b"", **headers: str) -> int:
            request = urllib.request.Request(f"https://127.0.0.1:{public}{path}", body or None, method=method)
            for name, value in headers.items():
                request.add_header(name, value)
            try:
                with urllib.request.urlopen(request, timeout=10, context=context) as answer:
                    return int(answer.status)
            except urllib.error.HTTPError as refused:
                return refused.code

        deadline = time.monotonic() + 20
        while True:
            try:
                status = ask(
                    "POST", "/telegram", b'{"update_id": 1}', **{"X-Telegram-Bot-Api-Secret-Token": "s3cr3t"}
                )
                break
            except urllib.error.URLError:
                if time.monotonic() > deadline or nginx.poll() is not None:
                    raise
                time.sleep(0.1)
        assert status == 200
        assert ask("GET", "/telegram") == 403  # POST only
        assert ask("GET", "/healthz") == 404  # health and metrics are not public
        assert ask("GET", "/metrics") == 404
        assert ask("POST", "/telegram/x", b"{}") == 404
        assert ask("POST", "/telegram", b"x" * (1024 * 1024 + 1)) == 413  # over client_max_body_size
        assert handler.seen == [("POST", "/telegram", "s3cr3t", 16)]
    finally:
        nginx.send_signal(signal.SIGTERM)
        nginx.wait(timeout=30)
        upstream.shutdown()
        upstream.server_close()


# --- install.sh ---------------------------------------------------------------------------------


def test_install_sh_names_its_arguments_when_they_are_missing() -> None:
    script = str(DEPLOY / "install.sh")
    assert os.access(script, os.X_OK)
    missing = subprocess.run([script], capture_output=True, text=True, timeout=30)
    assert (missing.returncode, missing.stderr) == (2, f"usage: {script} VENV [SOURCE]\n")
    nowhere = subprocess.run([script, "/nonexistent/venv", "/nonexistent"], capture_output=True, text=True)
    assert (nowhere.returncode, nowhere.stderr) == (2, f"{script}: no pyproject.toml in /nonexistent\n")
    assert not Path("/nonexistent/venv").exists()
