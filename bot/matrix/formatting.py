"""A reply as Matrix message content: a plain body and an HTML body, commands written with `!`.

Element and other clients take `/` for their own commands, so every command the bot mentions
(`/request`, `/start CODE`) is shown as `!request`, `!start CODE`. The choices, which the text
already lists by number, become an ordered list in the HTML body.
"""

import html
import re
from functools import cache
from typing import Any

from bot.conversation.router import FEATURES, command_list
from bot.messages import Reply, numbered

HTML_FORMAT = "org.matrix.custom.html"


@cache
def _command_pattern() -> re.Pattern[str]:
    names = {"start", "as"} | {name for role in FEATURES for name, _ in command_list(role)}
    names |= {name for name, _ in command_list(None)}
    alternatives = "|".join(sorted(names, key=len, reverse=True))
    return re.compile(rf"(?<![\w/:.]){re.escape('/')}({alternatives})\b")


def bang_commands(text: str) -> str:
    """`/request` -> `!request` wherever the text names one of the bot's commands (not in URLs)."""
    return _command_pattern().sub(r"!\1", text)


def _html(reply: Reply) -> str:
    listed = numbered("", reply.choices)
    text = bang_commands(reply.text)
    if reply.choices and reply.text.endswith(listed):
        question = bang_commands(reply.text[: -len(listed)])
        items = "".join(f"<li>{html.escape(c.label)}</li>" for c in reply.choices)
        return _lines(question) + f"<ol>{items}</ol>"
    return _lines(text)


def _lines(text: str) -> str:
    return "<br>".join(html.escape(line) for line in text.split("\n"))


def message_content(reply: Reply) -> dict[str, Any]:
    """The `m.room.message` content for a reply (`m.text`, with both bodies)."""
    return {
        "msgtype": "m.text",
        "body": bang_commands(reply.text),
        "format": HTML_FORMAT,
        "formatted_body": _html(reply),
    }


def edit_content(original_event_id: str, reply: Reply) -> dict[str, Any]:
    """An edit of an earlier message (`m.replace`); clients without edits show the `* ` fallback."""
    new = message_content(reply)
    return {
        "msgtype": "m.text",
        "body": "* " + new["body"],
        "format": HTML_FORMAT,
        "formatted_body": "* " + new["formatted_body"],
        "m.new_content": new,
        "m.relates_to": {"rel_type": "m.replace", "event_id": original_event_id},
    }
