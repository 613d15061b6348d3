"""A throw-away Synapse homeserver for the test suite (matrix-synapse from PyPI, no mocks).

It runs from this virtualenv as a child process, with SQLite, on 127.0.0.1 and a free port, in a
temporary directory. Every path in its configuration is absolute (Synapse may change directory).
Open registration without verification lets the tests create their users; the shared secret
makes an admin, whose API sets or lifts one user's rate limit for the rate-limit test. The
configured rate limits are lifted so the suite never waits on them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
STORE_KEY = "test-only-store-key-3f9c1a"  # MATRIX_STORE_KEY of the tests' bots and people (nio's pickle key)
SERVER_NAME = "localhost"
_UNLIMITED = {"per_second": 10000, "burst_count": 10000}
_RATE_LIMITS = (
    "rc_message",
    "rc_registration",
    "rc_joins_per_room",
    "rc_3pid_validation",
    "rc_admin_redaction",
    "rc_room_creation",
    "rc_reports",
    "rc_presence",
    "rc_delayed_event_mgmt",
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _config(base: Path, port: int, shared_secret: str) -> dict[str, Any]:
    config: dict[str, Any] = {
        "server_name": SERVER_NAME,
        "pid_file": str(base / "homeserver.pid"),
        "listeners": [
            {
                "port": port,
                "bind_addresses": [HOST],
                "type": "http",
                "tls": False,
                "x_forwarded": False,
                "resources": [{"names": ["client"], "compress": False}],
            }
        ],
        "database": {"name": "sqlite3", "args": {"database": str(base / "homeserver.db")}},
        "log_config": str(base / "log.yaml"),
        "media_store_path": str(base / "media"),
        "signing_key_path": str(base / "signing.key"),
        "enable_registration": True,
        "enable_registration_without_verification": True,
        "registration_shared_secret": shared_secret,
        "report_stats": False,
        "macaroon_secret_key": secrets.token_hex(32),
        "form_secret": secrets.token_hex(32),
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "url_preview_enabled": False,
        "presence": {"enabled": False},
        "rc_login": {
            "address": _UNLIMITED,
            "account": _UNLIMITED,
            "failed_attempts": _UNLIMITED,
        },
        "rc_joins": {"local": _UNLIMITED, "remote": _UNLIMITED},
        "rc_invites": {"per_room": _UNLIMITED, "per_user": _UNLIMITED, "per_issuer": _UNLIMITED},
        "rc_key_requests": _UNLIMITED,
    }
    for key in _RATE_LIMITS:
        config[key] = _UNLIMITED
    return config


_LOG_CONFIG = """version: 1
formatters:
  plain:
    format: '%(asctime)s %(levelname)s %(name)s: %(message)s'
handlers:
  file:
    class: logging.FileHandler
    formatter: plain
    filename: {path}
root:
  level: WARNING
  handlers: [file]
disable_existing_loggers: false
"""


class SynapseServer:
    """A Synapse homeserver in a temp directory; `start()`, `register(...)`, `stop()`."""

    def __init__(self, start_timeout: float = 90) -> None:
        self.start_timeout = start_timeout
        self.base: Path | None = None
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.shared_secret = secrets.token_hex(16)
        self.admin_token: str | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        base = Path(tempfile.mkdtemp(prefix="synapse-", dir="/tmp"))
        self.base = base
        self.port = _free_port()
        (base / "media").mkdir()
        (base / "log.yaml").write_text(_LOG_CONFIG.format(path=base / "homeserver.log"))
        # JSON is YAML: no YAML writer needed.
        (base / "homeserver.yaml").write_text(json.dumps(_config(base, self.port, self.shared_secret)))
        synapse = [
            sys.executable,
            "-m",
            "synapse.app.homeserver",
            "--config-path",
            str(base / "homeserver.yaml"),
        ]
        subprocess.run([*synapse, "--generate-keys"], cwd=base, check=True, capture_output=True)
        self.process = subprocess.Popen(
            synapse, cwd=base, stdout=subprocess.DEVNULL, stderr=(base / "stderr.log").open("wb")
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Synapse exited at start:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/_matrix/client/versions", timeout=2):
                    break
            except OSError:
                time.sleep(0.2)
        else:
            self.stop()
            raise RuntimeError(f"Synapse did not answer within {self.start_timeout}s:\n{self.log_tail()}")
        self.admin_token = self.register_admin("admin")

    def log_tail(self, lines: int = 40) -> str:
        assert self.base is not None
        text = ""
        for name in ("homeserver.log", "stderr.log"):
            path = self.base / name
            if path.exists():
                text += path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, token: str | None = None
    ) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"{method} {path}: {exc.code} {exc.read()!r}") from exc

    def register_admin(self, localpart: str) -> str:
        """Register an admin through the shared-secret API and return its access token."""
        nonce = self._call("GET", "/_synapse/admin/v1/register")["nonce"]
        password = secrets.token_hex(12)
        mac = hmac.new(self.shared_secret.encode(), digestmod=hashlib.sha1)
        mac.update(b"\x00".join([nonce.encode(), localpart.encode(), password.encode(), b"admin"]))
        body = {
            "nonce": nonce,
            "username": localpart,
            "password": password,
            "admin": True,
            "mac": mac.hexdigest(),
        }
        token: str = self._call("POST", "/_synapse/admin/v1/register", body)["access_token"]
        return token

    def register(self, localpart: str, password: str) -> str:
        """Register an ordinary user with open registration; returns the full user id."""
        body = {"username": localpart, "password": password, "auth": {"type": "m.login.dummy"}}
        user_id: str = self._call("POST", "/_matrix/client/v3/register", body)["user_id"]
        return user_id

    def limit_messages(self, user_id: str, per_second: int, burst_count: int) -> None:
        """Give one user a tight message rate limit (the admin API's per-user override)."""
        path = f"/_synapse/admin/v1/users/{urllib.parse.quote(user_id)}/override_ratelimit"
        body = {"messages_per_second": per_second, "burst_count": burst_count}
        self._call("POST", path, body, token=self.admin_token)

    def unlimit_messages(self, user_id: str) -> None:
        path = f"/_synapse/admin/v1/users/{urllib.parse.quote(user_id)}/override_ratelimit"
        self._call("DELETE", path, token=self.admin_token)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self.base is not None and not os.environ.get("KEEP_SYNAPSE"):
            shutil.rmtree(self.base, ignore_errors=True)
