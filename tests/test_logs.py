"""Logs: tracebacks with frames and exception types but never the messages (they quote user input),
and no chatter from the libraries (fontTools' ~200 INFO lines per PDF)."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from bot.logs import traceback_without_messages

ROOT = Path(__file__).resolve().parent.parent
TYPED = "Mein Sohn heißt Karim, Klasse 4b"  # what someone typed, quoted in the exceptions below


class StepFailed(Exception):
    pass


def read_minutes(text: str) -> int:
    return int(text)


def handle(text: str) -> None:
    try:
        read_minutes(text)
    except ValueError as exc:
        raise StepFailed(f"could not handle {text!r}") from exc


def test_a_chained_traceback_keeps_frames_and_types_and_drops_the_messages() -> None:
    try:
        try:
            handle(TYPED)
        except StepFailed:
            empty: dict[str, int] = {}
            empty[TYPED]  # a second error while handling the first
    except KeyError as exc:
        text = traceback_without_messages(exc)
    assert TYPED not in text
    assert "Karim" not in text
    blocks = text.split("\n\n")
    assert [block.splitlines()[-1] for block in blocks] == [
        "ValueError",
        "The above exception was the direct cause of the following exception:",
        "tests.test_logs.StepFailed",
        "During handling of the above exception, another exception occurred:",
        "KeyError",
    ]
    assert "in read_minutes\n    return int(text)\n" in blocks[0]
    assert "in handle\n    raise StepFailed" in blocks[2]
    assert "in test_a_chained_traceback_keeps_frames_and_types_and_drops_the_messages" in blocks[4]


def run_logged(code: str, log_format: str = "") -> subprocess.CompletedProcess[str]:
    """`code` in a fresh interpreter after logging is set up as `python -m bot run` sets it up."""
    script = "from bot.cli.serve import quiet_http_logs\nquiet_http_logs()\n" + textwrap.dedent(code)
    env = {**os.environ, "LOG_FORMAT": log_format}
    return subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True, env=env
    )


def test_a_handler_crash_logs_frames_and_types_but_not_the_typed_text() -> None:
    logged = run_logged(
        f"""
        import logging
        from tests.test_logs import handle
        try:
            handle({TYPED!r})
        except Exception:
            logging.getLogger("bot.telegram.app").exception("update %s failed", 7)
        """
    )
    err = logged.stderr
    assert TYPED not in err
    assert "Karim" not in err
    assert " ERROR bot.telegram.app: update 7 failed\nTraceback (most recent call last):\n" in err
    assert "in read_minutes\n    return int(text)\n" in err
    assert err.rstrip().endswith("\ntests.test_logs.StepFailed")
    assert "\nValueError\n\nThe above exception was the direct cause of the following exception:\n" in err


def test_making_a_pdf_writes_no_font_lines() -> None:
    logged = run_logged(
        """
        import logging
        from datetime import date
        from bot.evaluation_export import evaluation_pdf
        from bot.i18n import Translator
        from services.evaluation import Evaluation, Group, Period, Worker

        outcomes = dict.fromkeys(("filled", "not_covered", "not_filled", "rejected", "cancelled", "open"), 0)
        evaluation = Evaluation(
            Period(date(2026, 4, 1), date(2026, 6, 30)), outcomes, Group("total", requests=1), None, None,
            [Group("ar", requests=1)], [], [Group("Grundschule Soltau", requests=1)], [], [Worker("Amira")],
        )
        assert evaluation_pdf(Translator("de"), evaluation, "Landkreis").startswith(b"%PDF-")
        logging.getLogger("bot").info("made a PDF")
        """
    )
    lines = logged.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].endswith(" INFO bot: made a PDF")  # INFO is logged, only not the libraries'


def test_json_lines_carry_fields_and_ids_but_neither_the_typed_text_nor_its_exception_message() -> None:
    logged = run_logged(
        f"""
        import logging
        from tests.test_logs import handle
        log = logging.getLogger("bot.telegram.app")
        log.info("update %s handled", 41, extra={{"update_id": 41, "platform": "telegram"}})
        try:
            handle({TYPED!r})
        except Exception:
            log.exception("update %s failed", 42, extra={{"update_id": 42}})
        """,
        log_format="json",
    )
    lines = logged.stderr.splitlines()
    assert len(lines) == 2  # one object per line, the traceback inside it
    first, second = (json.loads(line) for line in lines)
    assert set(first) == {"time", "level", "logger", "event", "process", "ids"}
    assert first["time"].endswith("+00:00")
    assert (first["level"], first["logger"], first["event"]) == (
        "INFO",
        "bot.telegram.app",
        "update 41 handled",
    )
    assert first["ids"] == {"update_id": 41, "platform": "telegram"}
    assert (second["level"], second["event"], second["ids"]) == (
        "ERROR",
        "update 42 failed",
        {"update_id": 42},
    )
    assert second["exception"] == "tests.test_logs.StepFailed"
    assert "in read_minutes\n    return int(text)\n" in second["traceback"]
    assert TYPED not in logged.stderr
    assert "Karim" not in logged.stderr


def test_the_default_stays_readable_lines() -> None:
    logged = run_logged('import logging\nlogging.getLogger("bot").info("started")', log_format="")
    assert logged.stderr.strip().endswith(" INFO bot: started")
    assert not logged.stderr.lstrip().startswith("{")
