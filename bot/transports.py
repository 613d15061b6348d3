"""Which platforms this process serves, from the environment (see the README's configuration table)."""

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from services.errors import InvalidInput
from services.text import N_

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from bot.process import Transport
    from bot.telegram.app import Webhook


def configured_transports(engine: "Engine", env: Mapping[str, str] = os.environ) -> "list[Transport]":
    """Telegram when TELEGRAM_TOKEN is set, Matrix when MATRIX_HOMESERVER and MATRIX_USER_ID are; or both."""
    transports: list[Transport] = []
    token = env.get("TELEGRAM_TOKEN", "").strip()
    if token:
        from bot.telegram.app import OFFICIAL_API, TelegramBot

        base_url = env.get("TELEGRAM_BASE_URL", "").strip().rstrip("/") or OFFICIAL_API
        webhook = telegram_webhook(env)
        transports.append(TelegramBot(token=token, engine=engine, base_url=base_url, webhook=webhook))
    if matrix_configured(env):  # nio (about 30 MiB) is imported only for a process that serves Matrix
        from bot.matrix.app import MatrixBot
        from bot.matrix.session import MatrixSettings

        settings = MatrixSettings.from_env(env)
        if settings is not None:
            transports.append(MatrixBot(settings, engine=engine))
    return transports


def matrix_configured(env: Mapping[str, str] = os.environ) -> bool:
    """Whether MATRIX_HOMESERVER and MATRIX_USER_ID are both set (the rest is checked by MatrixSettings)."""
    return bool(env.get("MATRIX_HOMESERVER", "").strip() and env.get("MATRIX_USER_ID", "").strip())


def platforms_configured(env: Mapping[str, str] = os.environ) -> bool:
    """Whether a chat platform is named (TELEGRAM_TOKEN, or MATRIX_HOMESERVER and MATRIX_USER_ID)."""
    return bool(env.get("TELEGRAM_TOKEN", "").strip() or matrix_configured(env))


def telegram_webhook(env: Mapping[str, str]) -> "Webhook | None":
    """Webhook mode when TELEGRAM_WEBHOOK_URL is set; it needs TELEGRAM_WEBHOOK_SECRET and WEBHOOK_LISTEN."""
    from bot.telegram.app import Webhook

    url = env.get("TELEGRAM_WEBHOOK_URL", "").strip()
    if not url:
        return None
    secret = env.get("TELEGRAM_WEBHOOK_SECRET", "").strip()
    # Telegram takes 1-256 characters A-Z, a-z, 0-9, _ and - as the secret token.
    if not (16 <= len(secret) <= 256) or not all(c.isascii() and (c.isalnum() or c in "_-") for c in secret):
        raise InvalidInput(
            N_(
                "TELEGRAM_WEBHOOK_SECRET must be 16 to 256 characters of A-Z, a-z, 0-9, _ and - "
                "when TELEGRAM_WEBHOOK_URL is set."
            )
        )
    if not url.startswith("https://"):
        raise InvalidInput(N_("TELEGRAM_WEBHOOK_URL must start with https://"))
    address = listen_address(env.get("WEBHOOK_LISTEN", "127.0.0.1:8443"))
    if address is None:
        raise InvalidInput(N_("WEBHOOK_LISTEN must look like 127.0.0.1:8443."))
    host, port = address
    return Webhook(url=url, secret=secret, host=host, port=port)


def listen_address(text: str) -> tuple[str, int] | None:
    """`host:port` (WEBHOOK_LISTEN, HEALTH_LISTEN) as host and port; None when it is not one."""
    host, _, port = text.strip().rpartition(":")
    if not host or not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host, int(port)
