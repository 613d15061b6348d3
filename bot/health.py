"""`GET /healthz` and `GET /metrics` of one bot process, on `HEALTH_LISTEN` (see the README's "Betrieb").

`/healthz` is 503 only when this process cannot do its job now: the database does not answer,
or a platform this process polls or syncs has not been reached for `HEALTH_STALE_AFTER`
seconds (counted from the process start, or from taking the lead, before the first contact).
Failed due rows and old undelivered notifications are reported, in the JSON and as metrics, but
do not make it 503: they need a person, whom the operator alert tells once, and a failed row
stays failed, so a 503 for it would never end. A standby process (another one leads) is not
stale: it reports its role.

The database is read in threads of this server's own, with a timeout, so a database that hangs
neither blocks the event loop nor takes the threads the bot works in.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import text

from bot.liveness import Liveness
from bot.metrics import PREFIX, Metrics
from bot.process import BotProcess
from bot.transports import listen_address
from db.uow import UnitOfWork
from services import monitoring
from services.errors import InvalidInput
from services.text import N_

if TYPE_CHECKING:  # aiohttp (about 0.1-0.2 s of a start) is imported only for a process that listens
    from aiohttp import web

log = logging.getLogger(__name__)
STALE_AFTER = 90.0  # seconds without a successful poll or sync before /healthz says 503
DATABASE_TIMEOUT = 5.0  # seconds the database may take to answer a health check


@dataclass(frozen=True)
class HealthSettings:
    host: str
    port: int
    stale_after: float


def health_settings(env: Mapping[str, str] = os.environ) -> HealthSettings | None:
    """From HEALTH_LISTEN (`host:port`) and HEALTH_STALE_AFTER (seconds); None without HEALTH_LISTEN."""
    listen = env.get("HEALTH_LISTEN", "").strip()
    if not listen:
        return None
    address = listen_address(listen)
    if address is None:
        raise InvalidInput(N_("HEALTH_LISTEN must look like 127.0.0.1:9120."))
    host, port = address
    raw = env.get("HEALTH_STALE_AFTER", "").strip()
    try:
        stale_after = float(raw) if raw else STALE_AFTER
    except ValueError:
        stale_after = -1.0
    if not 0 < stale_after < 10**7:
        raise InvalidInput(N_("HEALTH_STALE_AFTER must be a number of seconds above 0, such as 90."))
    return HealthSettings(host.strip("[]"), port, stale_after)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class PlatformState:
    """One platform as this process sees it."""

    platform: str
    leading: bool
    last_reached: datetime | None
    unreachable_since: datetime | None
    age_seconds: float | None  # since the last contact; while leading and never reached, since leading
    stale: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "role": "leader" if self.leading else "standby",
            "last_reached": _iso(self.last_reached),
            "age_seconds": None if self.age_seconds is None else round(self.age_seconds, 1),
            "unreachable_since": _iso(self.unreachable_since),
            "stale": self.stale,
        }


def platform_state(liveness: Liveness, platform: str, now: datetime, stale_after: float) -> PlatformState:
    """Stale: led by this process, and no contact for `stale_after` seconds (the lead counts as one)."""
    last, since = liveness.last_reached(platform), liveness.watched_since(platform)
    # Before the first contact the age counts from taking the lead, at the latest the process start.
    start = max(since, liveness.started_at) if since is not None else None
    marks = [moment for moment in (last, start) if moment is not None]
    age = max((now - max(marks)).total_seconds(), 0.0) if marks else None
    return PlatformState(
        platform=platform,
        leading=since is not None,
        last_reached=last,
        unreachable_since=liveness.unreachable_since(platform),
        age_seconds=age,
        stale=since is not None and age is not None and age > stale_after,
    )


def oldest_seconds(figures: monitoring.Figures, now: datetime) -> float | None:
    """How long the oldest undelivered notification or answer has waited; None when none waits."""
    if figures.oldest_undelivered_at is None:
        return None
    return round(max((now - figures.oldest_undelivered_at).total_seconds(), 0.0), 1)


def _read(process: BotProcess, now: datetime) -> monitoring.Figures:
    with UnitOfWork(process.engine) as uow:
        uow.session.connection().execute(text("SELECT 1"))
        return monitoring.figures(uow.session, now)


class _Snapshot(Collector):
    """The gauges of one scrape: what the database held and how long each platform has been quiet."""

    def __init__(
        self, figures: monitoring.Figures | None, platforms: list[PlatformState], now: datetime
    ) -> None:
        self.figures, self.platforms, self.now = figures, platforms, now

    def describe(self) -> list[GaugeMetricFamily]:
        return []  # registered for one scrape only: nothing to check against

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            f"{PREFIX}_database_up",
            "1 if the database answered this scrape, else 0.",
            value=int(bool(self.figures)),
        )
        contact = GaugeMetricFamily(
            f"{PREFIX}_platform_last_contact_seconds",
            "Seconds since the platform was last reached (while leading and never reached: since leading).",
            labels=["platform"],
        )
        leading = GaugeMetricFamily(
            f"{PREFIX}_platform_leading",
            "1 if this process polls or syncs the platform.",
            labels=["platform"],
        )
        stale = GaugeMetricFamily(
            f"{PREFIX}_platform_stale", "1 if /healthz counts the platform as stale.", labels=["platform"]
        )
        for state in self.platforms:
            if state.age_seconds is not None:
                contact.add_metric([state.platform], state.age_seconds)
            leading.add_metric([state.platform], int(state.leading))
            stale.add_metric([state.platform], int(state.stale))
        yield from (contact, leading, stale)
        figures = self.figures
        if figures is None:
            return
        yield GaugeMetricFamily(
            f"{PREFIX}_failed_due_rows",
            "Due rows in the database whose handler failed.",
            value=figures.failed_due_rows,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_oldest_undelivered_seconds",
            "Age of the oldest notification or answer neither sent nor given up (0 when there is none).",
            value=oldest_seconds(figures, self.now) or 0.0,
        )
        requests = GaugeMetricFamily(
            f"{PREFIX}_requests", "Requests per district and state.", labels=["district", "state"]
        )
        for (district, state_name), count in sorted(figures.requests.items()):
            requests.add_metric([district, state_name], count)
        yield requests
        budget = GaugeMetricFamily(
            f"{PREFIX}_budget_available_cents",
            "Budget available this fiscal year per district, in cents.",
            labels=["district", "year"],
        )
        for district, cents in sorted(figures.budgets_available.items()):
            budget.add_metric([district, str(figures.year)], cents)
        yield budget


class HealthServer:
    """Serves /healthz and /metrics for one `BotProcess`; `start` binds, `stop` closes."""

    def __init__(
        self,
        process: BotProcess,
        *,
        stale_after: float = STALE_AFTER,
        database_timeout: float = DATABASE_TIMEOUT,
    ) -> None:
        self.process = process
        self.liveness = process.liveness
        self.metrics: Metrics = process.metrics
        self.metrics.start_at_zero([transport.platform for transport in process.transports])
        self.stale_after = stale_after
        self.database_timeout = database_timeout
        self.port: int | None = None
        self._runner: web.AppRunner | None = None
        self._threads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="health")

    async def start(self, host: str, port: int) -> None:
        from aiohttp import web

        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)  # a scrape every few seconds: no log lines
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        self.port = int(self._runner.addresses[0][1])
        log.info("health and metrics on %s:%s", host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._threads.shutdown(wait=False, cancel_futures=True)

    def platforms(self, now: datetime) -> list[PlatformState]:
        return [
            platform_state(self.liveness, transport.platform, now, self.stale_after)
            for transport in self.process.transports
        ]

    async def figures(self, now: datetime) -> monitoring.Figures | None:
        """The database's figures, or None when it does not answer in time."""
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self._threads, _read, self.process, now)
            return await asyncio.wait_for(future, timeout=self.database_timeout)
        except Exception as exc:
            log.warning("health check: the database does not answer (%s)", type(exc).__name__)
            return None

    async def report(self) -> tuple[int, dict[str, Any]]:
        """The status code and the JSON of /healthz."""
        now = self.liveness.clock()
        figures = await self.figures(now)
        platforms = self.platforms(now)
        healthy = figures is not None and not any(state.stale for state in platforms)
        body = {
            "status": "ok" if healthy else "unhealthy",
            "database": "reachable" if figures is not None else "unreachable",
            "platforms": {state.platform: state.as_json() for state in platforms},
            "stale_after_seconds": self.stale_after,
            "oldest_undelivered_seconds": None if figures is None else oldest_seconds(figures, now),
            "failed_due_rows": None if figures is None else figures.failed_due_rows,
        }
        return (200 if healthy else 503), body

    async def _healthz(self, request: web.Request) -> web.Response:
        from aiohttp import web

        status, body = await self.report()
        return web.json_response(body, status=status)

    async def _metrics(self, request: web.Request) -> web.Response:
        from aiohttp import web

        now = self.liveness.clock()
        snapshot = CollectorRegistry(auto_describe=False)
        snapshot.register(_Snapshot(await self.figures(now), self.platforms(now), now))
        body = generate_latest(self.metrics.registry) + generate_latest(snapshot)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
