"""How fast the bot may send: an overall pace with no burst, a minimum gap per chat, and slowing on 429.

Telegram allows about 30 messages a second overall and one a second per chat. A bucket that
starts full lets a burst through at once, which is exactly what draws 429s; so the overall limit
here is a pace: each message takes the next slot, `1 / per_second` after the one before. A 429
holds its own chat for the platform's `retry_after` and slows everyone: the pace is halved and
recovers step by step, so a busy moment ends without a storm of retries.
"""

from dataclasses import dataclass, field

RECOVERY_PER_SECOND = 0.1  # share of the full pace regained per second after a 429
SLOWEST = 0.1  # the pace never drops below this share of `per_second`
# Slots lie a hair further apart than 1/per_second, so that timing jitter on the way to the
# platform never squeezes per_second + 1 messages into one second of its counting.
MARGIN = 1.01


@dataclass
class RateLimiter:
    """Pure bookkeeping over a monotonic clock the caller passes in; it never sleeps itself.

    A sender asks `wait` and, when it is 0, calls `sent` before it awaits the platform, so two
    senders in one event loop never take the same slot.
    """

    per_second: float = 30.0
    per_chat_gap: float = 1.0
    _next_slot: float = field(default=float("-inf"), init=False)
    _share: float = field(default=1.0, init=False)
    _share_at: float = field(default=0.0, init=False)
    _last_in_chat: dict[str, float] = field(default_factory=dict, init=False)

    def share(self, now: float) -> float:
        """The part of the full pace allowed now (1.0 unless a 429 slowed things down lately)."""
        regained = (now - self._share_at) * RECOVERY_PER_SECOND
        return min(1.0, self._share + max(regained, 0.0))

    def wait(self, chat: str, now: float) -> float:
        """Seconds until a message to `chat` may go out (0: now)."""
        chat_wait = self._last_in_chat.get(chat, float("-inf")) + self.per_chat_gap - now
        needed = max(chat_wait, self._next_slot - now)
        return needed if needed > 1e-6 else 0.0  # float dust is not worth a sleep

    def sent(self, chat: str, now: float) -> None:
        """Take the slot for a message that goes out now."""
        self._next_slot = max(self._next_slot, now) + MARGIN / (self.per_second * self.share(now))
        self._last_in_chat[chat] = now

    def pause_chat(self, chat: str, now: float, seconds: float) -> None:
        """The platform asked to wait (429): nothing more to this chat before then, and slower overall."""
        self._last_in_chat[chat] = now + seconds - self.per_chat_gap
        self._share, self._share_at = max(SLOWEST, self.share(now) / 2), now
        self._next_slot = max(self._next_slot, now + MARGIN / (self.per_second * self._share))
