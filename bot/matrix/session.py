"""The Matrix bot's login and what it keeps between runs, under MATRIX_STORE_PATH.

nio's own store (SQLite) there holds the device's keys and end-to-end sessions. Beside it,
`bot-state.json` holds the device id and access token of the bot's one device (so a restart
is the same device, and encrypted rooms keep working), the sync token of the last fully
handled sync, and the moment of the bot's first start (older events are never answered).
The file is written atomically and readable only by its owner; it is never logged.

The store is the bot's identity: the directory is made 0700 and its files 0600 on every start,
whatever they were before, and nio encrypts the keys in it with MATRIX_STORE_KEY, so a copy of
the store without the key (a backup, a disk) reads nobody's messages.
"""

import json
import logging
import os
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from nio import AsyncClient, AsyncClientConfig, LoginResponse, WhoamiResponse

from services.errors import InvalidInput
from services.text import N_

log = logging.getLogger(__name__)

STATE_FILE = "bot-state.json"
DEVICE_NAME = "Dolmetscherpool"
MIN_STORE_KEY = 16
LEGACY_STORE_KEY = "DEFAULT_KEY"  # nio's default, which stores made before MATRIX_STORE_KEY carry
# The part of a user id after the first ':': a DNS name, IPv4 or [IPv6] address, and an optional port.
_SERVER_NAME = re.compile(r"(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(:[0-9]{1,5})?")


class MatrixLoginFailed(InvalidInput):
    """The homeserver refused the configured credentials (told to whoever started the bot)."""

    def __init__(self, reason: str) -> None:
        super().__init__(N_("The Matrix homeserver refused the bot's login ({reason})."), reason=reason)


@dataclass(frozen=True)
class MatrixSettings:
    homeserver: str
    user_id: str
    store_path: Path
    password: str | None = None
    access_token: str | None = None
    store_key: str = ""
    allowed_servers: frozenset[str] = frozenset()  # MATRIX_ALLOWED_SERVERS; empty: every server

    def server_allowed(self, user_id: str) -> bool:
        """Whether `@user:server` is on a server the bot talks to (every one when no list is set)."""
        return not self.allowed_servers or server_of(user_id) in self.allowed_servers

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "MatrixSettings | None":
        """The settings from MATRIX_* variables, or None when Matrix is not configured."""
        homeserver = env.get("MATRIX_HOMESERVER", "").strip().rstrip("/")
        user_id = env.get("MATRIX_USER_ID", "").strip()
        if not homeserver or not user_id:
            return None
        password = env.get("MATRIX_PASSWORD") or None
        token = env.get("MATRIX_ACCESS_TOKEN") or None
        if password is None and token is None:
            raise InvalidInput(N_("Set MATRIX_PASSWORD or MATRIX_ACCESS_TOKEN together with MATRIX_USER_ID."))
        store = Path(env.get("MATRIX_STORE_PATH", "").strip() or "matrix-store").resolve()
        allowed = allowed_servers(env.get("MATRIX_ALLOWED_SERVERS", ""))
        settings = cls(homeserver, user_id, store, password, token, env.get("MATRIX_STORE_KEY", ""), allowed)
        pickle_key(settings)  # a missing key is a configuration error, reported before anything starts
        return settings

    def __repr__(self) -> str:  # never print the secrets
        return f"MatrixSettings({self.homeserver!r}, {self.user_id!r}, {str(self.store_path)!r})"


def server_of(user_id: str) -> str:
    """`@anna:matrix.example.org` -> `matrix.example.org` (server names are compared case-blind)."""
    return user_id.partition(":")[2].casefold()


def allowed_servers(text: str) -> frozenset[str]:
    """MATRIX_ALLOWED_SERVERS: server names separated by commas (`example.org, matrix.kreis.de:8448`)."""
    names = frozenset(part.strip().casefold() for part in text.split(",") if part.strip())
    for name in names:
        if not _SERVER_NAME.fullmatch(name):
            raise InvalidInput(
                N_(
                    "MATRIX_ALLOWED_SERVERS lists server names separated by commas, e.g. "
                    "matrix.example.org; “{value}” is not one."
                ),
                value=name,
            )
    return names


@dataclass
class BotState:
    device_id: str = ""
    access_token: str = ""
    sync_token: str = ""
    first_start_ms: int = 0


def load_state(store: Path) -> BotState:
    path = store / STATE_FILE
    if not path.exists():
        return BotState()
    data = json.loads(path.read_text())
    return BotState(**{k: v for k, v in data.items() if k in BotState.__dataclass_fields__})


def save_state(store: Path, state: BotState) -> None:
    """Write the state file atomically (a crash leaves the old or the new file, never half of one)."""
    path = store / STATE_FILE
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(asdict(state), handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def pickle_key(settings: MatrixSettings) -> str:
    """The key nio encrypts the store's keys with: MATRIX_STORE_KEY, which a new store requires."""
    if settings.store_key:
        if len(settings.store_key) < MIN_STORE_KEY:
            raise InvalidInput(N_("MATRIX_STORE_KEY must be at least 16 characters long."))
        return settings.store_key
    if load_state(settings.store_path).device_id:
        return LEGACY_STORE_KEY  # an old store goes on working; make_client says so in the log
    raise InvalidInput(
        N_(
            "Set MATRIX_STORE_KEY: the bot encrypts its Matrix keys in MATRIX_STORE_PATH with it. "
            "Choose a random secret of at least 16 characters and keep it apart from the store's backup."
        )
    )


def secure_store(store: Path) -> None:
    """Owner only: the store directory 0700 and everything in it 0600, whatever they were before."""
    store.mkdir(parents=True, exist_ok=True, mode=0o700)
    store.chmod(0o700)  # mkdir's mode is not applied to a directory that already existed
    for path in store.rglob("*"):
        if not path.is_symlink():
            path.chmod(0o700 if path.is_dir() else 0o600)


def client_config(store_key: str) -> AsyncClientConfig:
    # A 429 comes back to the caller at once (max_limit_exceeded=0): delivery holds just that
    # chat for retry_after_ms instead of nio sleeping inside the send and blocking every chat.
    return AsyncClientConfig(
        encryption_enabled=True,
        store_sync_tokens=False,
        max_limit_exceeded=0,
        max_timeouts=2,
        pickle_key=store_key,
    )


def make_client(settings: MatrixSettings) -> AsyncClient:
    """The client object (no network yet); `log_in` makes it the bot's device."""
    key = pickle_key(settings)
    if key == LEGACY_STORE_KEY:
        # Re-keying would mean re-encrypting nio's sessions; a new device is the clean way.
        log.warning(
            "the Matrix store is encrypted with nio's default key; set MATRIX_STORE_KEY and start "
            "with an empty MATRIX_STORE_PATH (a new device) to encrypt it with a key of its own"
        )
    secure_store(settings.store_path)
    return AsyncClient(
        settings.homeserver, settings.user_id, store_path=str(settings.store_path), config=client_config(key)
    )


async def log_in(client: AsyncClient, settings: MatrixSettings) -> BotState:
    """Log in as the bot's one device (the same one across restarts) and load its key store."""
    state = load_state(settings.store_path)
    if not state.first_start_ms:
        state.first_start_ms = int(time.time() * 1000)
    token = settings.access_token or state.access_token
    if token:
        client.access_token = token
        who = await client.whoami()
        if isinstance(who, WhoamiResponse) and who.user_id != settings.user_id:
            raise MatrixLoginFailed(f"{who.user_id} ≠ MATRIX_USER_ID")
        if not isinstance(who, WhoamiResponse) and who.status_code != "M_UNKNOWN_TOKEN":
            raise MatrixLoginFailed(str(who.status_code))  # the homeserver is unwell: try again later
        if isinstance(who, WhoamiResponse) and who.device_id:
            client.restore_login(settings.user_id, who.device_id, token)
            state.device_id = who.device_id
            state.access_token = "" if settings.access_token else token
            save_state(settings.store_path, state)
            secure_store(settings.store_path)  # nio has just created its database with the umask's mode
            return state
        if settings.password is None:
            raise MatrixLoginFailed(str(getattr(who, "status_code", None) or "M_UNKNOWN_TOKEN"))
    client.device_id = state.device_id or ""
    login = await client.login(settings.password, device_name=DEVICE_NAME)
    if not isinstance(login, LoginResponse):
        raise MatrixLoginFailed(str(getattr(login, "status_code", "login refused")))
    state.device_id, state.access_token = login.device_id, login.access_token
    save_state(settings.store_path, state)
    secure_store(settings.store_path)  # nio has just created its database with the umask's mode
    return state
