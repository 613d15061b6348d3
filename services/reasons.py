"""The one rule for a reason someone gives (a hand-back, a rejection, a dispute, a correction)."""

from services.errors import InvalidInput
from services.text import N_

REASON_MIN, REASON_MAX = 3, 300


def clean_reason(text: str) -> str:
    """The reason with its spaces collapsed and blank lines dropped (its line breaks stay, as typed);
    3 to 300 characters, else one clear sentence."""
    lines = (" ".join(line.split()) for line in text.splitlines())
    reason = "\n".join(line for line in lines if line)
    if not REASON_MIN <= len(reason) <= REASON_MAX:
        raise InvalidInput(N_("Please give the reason in 3 to 300 characters."))
    return reason
