"""What flows between a transport and the conversation: neutral events in, neutral replies out."""

import json
import re
from dataclasses import dataclass, field

MAX_CHOICE_KEY = 64  # Telegram's limit for callback data, in bytes
# Control characters but tab and newline (C0, DEL, C1) and lone surrogates (JSON can carry them):
# no step can use them, PostgreSQL refuses NUL in text and UTF-8 cannot encode a surrogate.
_UNUSABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def clean_input(text: str) -> str:
    """What a person typed, as the conversation takes it: every line break a newline, and no control
    character but newline and tab."""
    return _UNUSABLE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


@dataclass(frozen=True)
class Incoming:
    """A text or a chosen option from one user in one chat; `event_key` makes a redelivery harmless."""

    platform: str
    user_id: str
    chat_id: str
    text: str = ""
    choice: str | None = None
    event_key: str | None = None
    language_hint: str | None = None

    def __post_init__(self) -> None:
        # The conversation's entry: whatever a platform delivers, no step sees a control character.
        object.__setattr__(self, "text", clean_input(self.text))
        if self.choice is not None:
            object.__setattr__(self, "choice", clean_input(self.choice))


@dataclass(frozen=True)
class Choice:
    """An option: `key` is short and opaque (it goes into callback data), `label` is what the user reads."""

    key: str
    label: str

    def __post_init__(self) -> None:
        if len(self.key.encode()) > MAX_CHOICE_KEY:
            raise ValueError(f"choice key over {MAX_CHOICE_KEY} bytes: {self.key[:20]}…")


@dataclass(frozen=True)
class Attachment:
    """A file that goes with a message (a calendar file, a report)."""

    filename: str
    mime_type: str
    data: bytes


@dataclass(frozen=True)
class Reply:
    """One message to send; its choices become buttons, and the text already lists them by number.

    An attachment is sent right after the text, as a file of its own.
    """

    text: str
    choices: tuple[Choice, ...] = field(default_factory=tuple)
    attachment: Attachment | None = None


def numbered(text: str, choices: tuple[Choice, ...]) -> str:
    """The text followed by its choices as a numbered list, so a typed number works everywhere."""
    if not choices:
        return text
    lines = [f"{number}. {choice.label}" for number, choice in enumerate(choices, start=1)]
    return text + "\n\n" + "\n".join(lines)


def with_values(text: str, choices: tuple[Choice, ...]) -> str:
    """The text followed by quick picks that are values (`0 km · 10 km`): no numbers, because where
    a step asks for a number, a typed number is the value and never an option's place."""
    if not choices:
        return text
    return text + "\n\n" + " · ".join(choice.label for choice in choices)


def split_text(text: str, limit: int) -> list[str]:
    """Cut a long text into parts of at most `limit` characters, at line breaks where possible."""
    parts: list[str] = []
    rest = text
    while len(rest) > limit:
        cut = rest.rfind("\n", 0, limit)
        if cut <= 0:
            cut = limit
        parts.append(rest[:cut])
        rest = rest[cut:].lstrip("\n")
    parts.append(rest)
    return parts


def reply_to_body(reply: Reply) -> str:
    """A reply as stored with its delivery: text, choices and the file's name and type (bytes apart)."""
    file = reply.attachment
    described = {"name": file.filename, "type": file.mime_type} if file is not None else None
    return json.dumps(
        {"text": reply.text, "choices": [[c.key, c.label] for c in reply.choices], "file": described}
    )


def reply_from_body(body: str, data: bytes | None) -> Reply:
    """The reply stored by `reply_to_body`, with its file when the bytes are there."""
    stored = json.loads(body)
    file = stored.get("file")
    attachment = Attachment(file["name"], file["type"], data) if file and data is not None else None
    choices = tuple(Choice(key, label) for key, label in stored.get("choices", []))
    return Reply(stored["text"], choices, attachment)
