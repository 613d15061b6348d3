"""`run` and `timers`: the long-running commands, kept apart from the admin commands.

Importing this module (and what `run` imports before polling begins) brings in neither the ORM
layer nor the conversation: those are imported in a thread once polling has begun
(bot/process.py), so a start reaches its first getUpdates sooner (issue 16).
"""

import argparse
import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from bot.cli.context import Context, Schema
from services.errors import InvalidInput
from services.text import N_

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from bot.process import Transport
    from bot.scheduling import Timers


def run(ctx: Context, args: argparse.Namespace) -> int:
    """Run the bot on every configured platform (Telegram, Matrix); with none, the demo only if asked."""
    from bot.transports import configured_transports, platforms_configured

    ctx.schema = Schema.LATER  # checked once the database answers (`_serve`)
    if not platforms_configured(os.environ):
        if args.demo:
            from bot.cli.commands import chat

            return chat(ctx, args)
        if not _holds_a_district():
            raise InvalidInput(
                N_(
                    "This database holds no district, and no chat platform is configured. To try the bot "
                    "in the terminal on demo data: run --demo (it keeps them in demo.sqlite3). To set up "
                    "a district: init --name “Landkreis …”, then set TELEGRAM_TOKEN, or MATRIX_HOMESERVER "
                    "and MATRIX_USER_ID (see the README)."
                )
            )
        raise InvalidInput(
            N_(
                "No chat platform is configured: set TELEGRAM_TOKEN, or MATRIX_HOMESERVER and "
                "MATRIX_USER_ID (see the README). To try the bot in the terminal on demo data: run --demo."
            )
        )
    transports = configured_transports(ctx.engine, os.environ)
    names = ", ".join(t.platform for t in transports)
    return _serve(
        ctx, transports, N_("The bot is running ({platforms}). Stop it with Ctrl+C."), platforms=names
    )


def _holds_a_district() -> bool:
    """Whether the configured database holds a district, read without creating or migrating it.

    `run` that refuses must leave no trace: no new SQLite file, no tables in an empty database.
    """
    from sqlalchemy import create_engine, func, inspect, make_url, select

    from db.engine import database_url
    from db.models import District

    url = database_url()
    file = make_url(url).database if url.startswith("sqlite") else None
    if file is not None and file != ":memory:" and not file.startswith("file:") and not Path(file).exists():
        return False
    engine = create_engine(url)
    try:
        if not inspect(engine).has_table("district"):
            return False
        with engine.connect() as connection:
            return bool(connection.execute(select(func.count()).select_from(District)).scalar())
    finally:
        engine.dispose()


def timers(ctx: Context, args: argparse.Namespace) -> int:
    """Run only the timers (offer expiry, reminders, closeout, digests), without any chat."""
    ctx.schema = Schema.LATER
    return _serve(ctx, [], N_("The timers are running. Stop them with Ctrl+C."))


def _serve(ctx: Context, transports: "list[Transport]", started: str, **params: str) -> int:
    """Start the transports and the timers, say `started`, and run until SIGINT or SIGTERM."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    from bot.heap import set_aside_start_up
    from bot.leader import AnotherProcessRuns
    from bot.process import BotProcess

    health_at = None
    if os.environ.get("HEALTH_LISTEN", "").strip():
        from bot.health import HealthServer, health_settings

        health_at = health_settings(os.environ)  # a bad value is refused before anything starts
    quiet_http_logs()
    bot = BotProcess(ctx.engine, transports)
    bot.make_timers = lambda: _timers(ctx)

    async def serve() -> None:
        """With HEALTH_LISTEN, /healthz answers from the start: 503 while the database is not there."""
        if health_at is None:
            return await run_until_stopped()
        health = HealthServer(bot, stale_after=health_at.stale_after)
        try:
            await health.start(health_at.host, health_at.port)
        except OSError as exc:
            raise InvalidInput(
                N_("HEALTH_LISTEN={listen} cannot be used: the address is taken or not this machine's."),
                listen=os.environ.get("HEALTH_LISTEN", "").strip(),
            ) from exc
        try:
            await run_until_stopped()
        finally:
            await health.stop()

    async def run_until_stopped() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        pause, said = 1.0, float("-inf")
        while not stop.is_set():
            try:
                await asyncio.to_thread(ctx.prepare_schema)  # refuses a database behind the code
                await bot.start()
                set_aside_start_up()
                break
            except (OperationalError, InterfaceError) as exc:  # the database is not there (yet)
                if loop.time() - said >= 60:
                    log.warning("the database cannot be reached (%s); trying again", type(exc).__name__)
                    said = loop.time()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=pause)
                pause = min(pause * 2, 30)
        else:
            return
        ctx.say(started, **params)
        try:
            await stop.wait()
        finally:
            await bot.stop()

    try:
        asyncio.run(serve())
    except AnotherProcessRuns as exc:
        raise InvalidInput(
            N_(
                "Another bot process is already running on this SQLite database. Stop it first; "
                "several processes need PostgreSQL."
            )
        ) from exc
    return 0


def quiet_http_logs() -> None:
    """Log at INFO, but keep the libraries quiet: HTTP request lines hold the Telegram token, and
    nio and its store log message contents and keys when verbose. Tracebacks carry frames and
    exception types, not the exceptions' messages, which may quote what someone typed."""
    from bot.logs import configure_logging

    configure_logging(logging.INFO)
    quiet_libraries()


def quiet_libraries() -> None:
    # fontTools writes about 200 INFO lines for every PDF (subsetting its fonts), matplotlib its font search.
    # alembic's INFO lines ("Context impl …") would precede every start; a migration on start is
    # logged by `Context.prepare_schema` in one line instead.
    for noisy in ("httpx", "httpcore", "nio", "peewee", "aiohttp", "fontTools", "matplotlib", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # nio's validation warnings quote the event they reject, which may hold a message's text.
    for quoting in ("nio.events", "nio.responses"):
        logging.getLogger(quoting).setLevel(logging.ERROR)


def _timers(ctx: Context) -> "Timers":
    from bot.scheduling import Timers

    return Timers(ctx.engine)
