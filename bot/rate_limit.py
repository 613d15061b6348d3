"""How fast the bot may send: never more than `per_second` in any second, a gap per chat, slowing on 429.

Telegram allows about 30 messages a second overall and one a second per chat. A bucket that
starts full and refills at the full rate lets twice that through in the first second, which is
exactly what draws 429s; so here every second counts: at most `per_second` messages in any
window of a second (a hair longer, against timing jitter on the way). Within that, messages are
paced one slot apart, and only a few (`burst`) may go at once, so that an answer after a quiet
moment leaves at once but a fan-out goes at an even pace. A 429 holds its own chat for the
platform's `retry_after` and slows everyone: the pace is halved and recovers step by step, so a
busy moment ends without a storm of retries.
"""

from collections import deque
from dataclasses import dataclass, field

RECOVERY_PER_SECOND = 0.1  # share of the full pace regained per second after a 429
SLOWEST = 0.1  # the pace never drops below this share of `per_second`
# Slots lie a hair further apart than 1/per_second, and the window is a hair longer than a
# second, so that jitter on the way never squeezes per_second + 1 messages into the platform's second.
MARGIN = 1.01


@dataclass
class RateLimiter:
    """Pure bookkeeping over a monotonic clock the caller passes in; it never sleeps itself.

    A sender asks `wait` and, when it is 0, calls `sent` before it awaits the platform, so two
    senders in one event loop never take the same slot.
    """

    per_second: float = 30.0
    per_chat_gap: float = 1.0
    burst: int = 5
    _next_slot: float = field(default=float("-inf"), init=False)
    _share: float = field(default=1.0, init=False)
    _share_at: float = field(default=0.0, init=False)
    _last_in_chat: dict[str, float] = field(default_factory=dict, init=False)
    _recent: deque[float] = field(default_factory=deque, init=False)  # sends in the last window

    def share(self, now: float) -> float:
        """The part of the full pace allowed now (1.0 unless a 429 slowed things down lately)."""
        regained = (now - self._share_at) * RECOVERY_PER_SECOND
        return min(1.0, self._share + max(regained, 0.0))

    def _interval(self, now: float) -> float:
        return MARGIN / (self.per_second * self.share(now))

    def wait(self, chat: str, now: float) -> float:
        """Seconds until a message to `chat` may go out (0: now)."""
        chat_wait = self._last_in_chat.get(chat, float("-inf")) + self.per_chat_gap - now
        interval = self._interval(now)
        # Up to `burst` slots may be taken ahead; the pace catches up after them.
        pace_wait = self._next_slot - (self.burst - 1) * interval - now
        while self._recent and self._recent[0] <= now - MARGIN:
            self._recent.popleft()
        full = len(self._recent) >= self.per_second * self.share(now)
        window_wait = self._recent[0] + MARGIN - now if full and self._recent else 0.0
        needed = max(chat_wait, pace_wait, window_wait)
        return needed if needed > 1e-6 else 0.0  # float dust is not worth a sleep

    def sent(self, chat: str, now: float) -> None:
        """Take the slot for a message that goes out now."""
        self._next_slot = max(self._next_slot, now) + self._interval(now)
        self._last_in_chat[chat] = now
        self._recent.append(now)

    def pause_chat(self, chat: str, now: float, seconds: float) -> None:
        """The platform asked to wait (429): nothing more to this chat before then, and slower overall."""
        self._last_in_chat[chat] = now + seconds - self.per_chat_gap
        self._share, self._share_at = max(SLOWEST, self.share(now) / 2), now
        # No burst right after a 429: the next message waits a full (slower) slot.
        self._next_slot = max(self._next_slot, now + self.burst * self._interval(now))
