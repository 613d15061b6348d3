"""Logs that carry no user input: tracebacks with frames and exception types, never their messages.

An exception's message often quotes what was typed (`int()` of a reply, a database error with
the row it could not write), and logs are kept longer and read by more people than the data.
The frames (file, line, function, source line) and the type are what a fix needs.
"""

import json
import logging
import os
import traceback
from datetime import UTC, datetime
from types import TracebackType

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


def type_name(exc: BaseException) -> str:
    kind = type(exc)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def traceback_without_messages(exc: BaseException) -> str:
    """Like Python's own traceback, chained exceptions included, but each ends in its type only."""
    chain: list[tuple[BaseException, str]] = []  # (exception, how the next one is linked to it)
    seen: set[int] = set()
    current: BaseException | None = exc
    link = ""
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append((current, link))
        if current.__cause__ is not None:
            current, link = current.__cause__, CAUSE
        elif current.__context__ is not None and not current.__suppress_context__:
            current, link = current.__context__, CONTEXT
        else:
            current = None
    parts: list[str] = []
    for index, (item, _) in enumerate(reversed(chain)):
        if index:
            parts.append(chain[len(chain) - index][1])
        frames = traceback.format_list(traceback.extract_tb(item.__traceback__))
        parts.append("Traceback (most recent call last):\n" + "".join(frames) + type_name(item) + "\n")
    return "".join(parts).rstrip("\n")


class NoMessageFormatter(logging.Formatter):
    """A formatter whose tracebacks show frames and exception types, never exception messages."""

    def formatException(self, ei: ExcInfo) -> str:  # noqa: N802  (logging's name)
        _, exc, _ = ei
        return "" if exc is None else traceback_without_messages(exc)

    def format(self, record: logging.LogRecord) -> str:
        # logging caches the first handler's traceback text on the record; never reuse one that
        # another formatter wrote with the message in it.
        cached, record.exc_text = record.exc_text, None
        try:
            return super().format(record)
        finally:
            record.exc_text = cached


# What every LogRecord has; anything else on a record came through `extra=` (ids, counts).
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, event, process, the ids given as `extra`.

    For a log collector (journald, Loki, Elasticsearch) that wants fields, not prose. The same
    rule as the text lines holds: an exception is its type and frames, never its message.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
            "process": record.process,
        }
        ids = {
            key: value
            for key, value in vars(record).items()
            if key not in _STANDARD and isinstance(value, int | str | float | bool | None)
        }
        if ids:
            entry["ids"] = ids
        if record.exc_info is not None and record.exc_info[1] is not None:
            entry["exception"] = type_name(record.exc_info[1])
            entry["traceback"] = traceback_without_messages(record.exc_info[1])
        return json.dumps(entry, ensure_ascii=False, default=str)


def formatter_for(log_format: str | None) -> logging.Formatter:
    """`LOG_FORMAT=json` for JSON lines; anything else the readable lines."""
    if (log_format or "").strip().lower() == "json":
        return JsonFormatter()
    return NoMessageFormatter(FORMAT)


def configure_logging(level: int = logging.INFO) -> None:
    """Log to stderr at `level` as LOG_FORMAT says, every handler with the message-free tracebacks."""
    logging.basicConfig(level=level, format=FORMAT)
    formatter = formatter_for(os.environ.get("LOG_FORMAT"))
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)
