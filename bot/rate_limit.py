"""How fast the bot may send: an overall rate (a token bucket) and a minimum gap per chat."""

from dataclasses import dataclass, field


@dataclass
class RateLimiter:
    """Pure bookkeeping over a monotonic clock the caller passes in; it never sleeps itself."""

    per_second: float = 25.0
    per_chat_gap: float = 1.0
    _tokens: float = field(default=-1.0, init=False)
    _updated: float = field(default=0.0, init=False)
    _last_in_chat: dict[str, float] = field(default_factory=dict, init=False)

    def _refill(self, now: float) -> None:
        if self._tokens < 0:
            self._tokens, self._updated = self.per_second, now
            return
        self._tokens = min(self.per_second, self._tokens + (now - self._updated) * self.per_second)
        self._updated = now

    def wait(self, chat: str, now: float) -> float:
        """Seconds until a message to `chat` may go out (0: now)."""
        self._refill(now)
        chat_wait = self._last_in_chat.get(chat, float("-inf")) + self.per_chat_gap - now
        overall_wait = 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.per_second
        needed = max(chat_wait, overall_wait)
        return needed if needed > 1e-6 else 0.0  # float dust is not worth a sleep

    def sent(self, chat: str, now: float) -> None:
        """Count a message that went out."""
        self._refill(now)
        self._tokens -= 1
        self._last_in_chat[chat] = now

    def pause_chat(self, chat: str, now: float, seconds: float) -> None:
        """The platform asked to wait (429): nothing more to this chat before then."""
        self._last_in_chat[chat] = now + seconds - self.per_chat_gap
