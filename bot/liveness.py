"""When each chat platform was last reached, for `/healthz`, the metrics and the operator alert.

A transport calls `reached` after every successful poll, sync or webhook check and `missed`
after a failed one. `unreachable_since` is the first miss after the last success: how long a
platform has been away, whatever the number of attempts in between.
"""

import threading
from collections.abc import Callable
from datetime import UTC, datetime


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Liveness:
    """Per platform: the last success and the first failure since; safe to read from any thread."""

    def __init__(self, clock: Callable[[], datetime] = _utcnow) -> None:
        self.clock = clock
        self.started_at = clock()
        self._lock = threading.Lock()
        self._reached: dict[str, datetime] = {}
        self._missing_since: dict[str, datetime] = {}
        self._watched: dict[str, datetime] = {}  # platform -> since when this process polls or syncs it

    def watch(self, platform: str) -> None:
        """This process is responsible for reaching `platform` (it polls or syncs it)."""
        with self._lock:
            self._watched.setdefault(platform, self.clock())

    def unwatch(self, platform: str) -> None:
        """Another process polls or syncs `platform` now (this one stands by)."""
        with self._lock:
            self._watched.pop(platform, None)
            self._missing_since.pop(platform, None)

    def reached(self, platform: str) -> None:
        with self._lock:
            self._reached[platform] = self.clock()
            self._missing_since.pop(platform, None)

    def missed(self, platform: str) -> None:
        with self._lock:
            self._missing_since.setdefault(platform, self.clock())

    def watched(self) -> list[str]:
        with self._lock:
            return sorted(self._watched)

    def watched_since(self, platform: str) -> datetime | None:
        """Since when this process polls or syncs `platform`; None while it stands by."""
        with self._lock:
            return self._watched.get(platform)

    def last_reached(self, platform: str) -> datetime | None:
        with self._lock:
            return self._reached.get(platform)

    def unreachable_since(self, platform: str) -> datetime | None:
        """The first failure since the last success; None while the platform answers."""
        with self._lock:
            return self._missing_since.get(platform)
