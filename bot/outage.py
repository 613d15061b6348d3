"""The leading process watches its platforms: one away for `DOWN_AFTER` is an outage the operators hear of.

Every district's operators get one alert per outage (keyed by the platform and the moment it began,
so a second check or a second process writes nothing new) and one "reachable again" when it ends.
The alert may itself wait for the platform to come back, or reach them on the other platform; it
says when the outage began. A process that takes the lead in the middle of an outage knows only its
own first miss, so it may report the same outage once more, with its own start.
"""

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine

from bot.liveness import Liveness
from db.uow import UnitOfWork
from services import operator_alerts

log = logging.getLogger(__name__)
DOWN_AFTER = timedelta(minutes=operator_alerts.DOWN_AFTER_MINUTES)
CHECK_SECONDS = 60.0


class OutageWatch:
    """Looks at `Liveness` now and then and writes the operators' alerts (see the module docstring)."""

    def __init__(
        self,
        engine: Engine,
        liveness: Liveness,
        *,
        active: Callable[[], bool] = lambda: True,
        on_written: Callable[[], None] = lambda: None,
        down_after: timedelta = DOWN_AFTER,
    ) -> None:
        self.engine = engine
        self.liveness = liveness
        self.active = active
        self.on_written = on_written
        self.down_after = down_after
        self._reported: dict[str, datetime] = {}  # platform -> start of the outage reported
        self.every = CHECK_SECONDS  # between checks in `run`

    def check(self) -> int:
        """Write what is due now: an outage past `down_after`, the end of one reported; returns how
        many alerts were written."""
        now = self.liveness.clock()
        written = 0
        for platform in self.liveness.watched():
            since = self.liveness.unreachable_since(platform)
            reported = self._reported.get(platform)
            if reported is not None and since != reported:  # it answered since (and may be away anew)
                if told := self._write(operator_alerts.platform_reachable, platform, reported, now):
                    log.info("platform %s reachable again (away since %s)", platform, reported.isoformat())
                written += told
                del self._reported[platform]
            if since is not None and since != reported and now - since >= self.down_after:
                if told := self._write(operator_alerts.platform_unreachable, platform, since, now):
                    log.error(
                        "platform %s unreachable since %s; the operators are told",
                        platform,
                        since.isoformat(),
                    )
                written += told
                self._reported[platform] = since
        return written

    def _write(self, alert: Callable[..., int], platform: str, since: datetime, now: datetime) -> int:
        with UnitOfWork(self.engine) as uow:
            told = alert(uow.session, platform=platform, since=since.astimezone(UTC), now=now)
            uow.commit()
        return told

    async def run(self) -> None:
        """Check every `every` seconds while this process leads, until cancelled."""
        while True:
            await asyncio.sleep(self.every)
            if not self.active():
                continue
            try:
                if await asyncio.to_thread(self.check):
                    self.on_written()  # in the event loop: the sender's wake-up is not thread-safe
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("checking whether the platforms are reachable failed; trying again")
