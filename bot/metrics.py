"""What one bot process counts for `/metrics`: updates handled, deliveries, due rows.

Each process (and each test's process) has its own `CollectorRegistry`, never the global
default one, so several processes in one interpreter count apart. The counters are safe to
bump from the worker threads the delivery and the timers record their results in. The gauges
that describe the database (requests, budgets, failed rows) are read at scrape time by
`bot/health.py`, not counted here.
"""

from prometheus_client import CollectorRegistry, Counter

PREFIX = "dolmetscherpool"


class Metrics:
    """The counters of one process; the transports, the delivery and the timers bump them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.updates_handled = Counter(
            f"{PREFIX}_updates_handled",
            "Chat events (Telegram updates, Matrix messages) handled to their commit.",
            ["platform"],
            registry=self.registry,
        )
        self.deliveries_sent = Counter(
            f"{PREFIX}_deliveries_sent",
            "Notifications and answers delivered (all their parts accepted by the platform).",
            ["platform"],
            registry=self.registry,
        )
        self.deliveries_retried = Counter(
            f"{PREFIX}_deliveries_retried",
            "Failed delivery attempts that will be tried again.",
            ["platform"],
            registry=self.registry,
        )
        self.deliveries_failed = Counter(
            f"{PREFIX}_deliveries_failed",
            "Deliveries given up (undeliverable, out of patience, or not renderable).",
            ["platform"],
            registry=self.registry,
        )
        self.due_fired = Counter(
            f"{PREFIX}_due_rows_fired",
            "Due rows (offer expiry, reminders, closeout, digests, ...) fired by this process.",
            ["kind"],
            registry=self.registry,
        )
        self.due_failed = Counter(
            f"{PREFIX}_due_rows_failed",
            "Failed attempts of due rows (tried again, given up after five: see failed_due_rows).",
            ["kind"],
            registry=self.registry,
        )

    def start_at_zero(self, platforms: list[str]) -> None:
        """Show every series from the start, at 0, so that a rate over it means something at once."""
        from services.due import Kind  # the database layer: not imported before a process polls

        for platform in platforms:
            self.updates_handled.labels(platform=platform)
            for counter in (self.deliveries_sent, self.deliveries_retried, self.deliveries_failed):
                counter.labels(platform=platform)
        for kind in Kind:
            self.due_fired.labels(kind=kind.value)
            self.due_failed.labels(kind=kind.value)

    def handled(self, platform: str) -> None:
        self.updates_handled.labels(platform=platform).inc()

    def delivered(self, platform: str, outcome: str) -> None:
        """One delivery attempt's outcome: `sent`, `retried` or `failed`."""
        counter = {
            "sent": self.deliveries_sent,
            "retried": self.deliveries_retried,
            "failed": self.deliveries_failed,
        }[outcome]
        counter.labels(platform=platform).inc()

    def fired(self, kind: str, *, ok: bool) -> None:
        (self.due_fired if ok else self.due_failed).labels(kind=kind).inc()
