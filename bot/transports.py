"""Which platforms this process serves, from the environment (see the README's configuration table)."""

import os
from collections.abc import Mapping

from sqlalchemy.engine import Engine

from bot.process import Transport


def configured_transports(engine: Engine, env: Mapping[str, str] = os.environ) -> list[Transport]:
    """Telegram when TELEGRAM_TOKEN is set, Matrix when MATRIX_HOMESERVER and MATRIX_USER_ID are; or both."""
    transports: list[Transport] = []
    token = env.get("TELEGRAM_TOKEN", "").strip()
    if token:
        from bot.telegram.app import OFFICIAL_API, TelegramBot

        base_url = env.get("TELEGRAM_BASE_URL", "").strip().rstrip("/") or OFFICIAL_API
        transports.append(TelegramBot(token=token, engine=engine, base_url=base_url))
    from bot.matrix.session import MatrixSettings

    settings = MatrixSettings.from_env(env)
    if settings is not None:
        from bot.matrix.app import MatrixBot

        transports.append(MatrixBot(settings, engine=engine))
    return transports
