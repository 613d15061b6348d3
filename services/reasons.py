"""The one rule for a reason someone gives (a hand-back, a rejection, a dispute, a correction)."""

from services.errors import InvalidInput
from services.text import N_

REASON_MIN, REASON_MAX = 3, 300


def clean_reason(text: str) -> str:
    """The reason on one line, its spaces collapsed; 3 to 300 characters, else one clear sentence."""
    reason = " ".join(text.split())
    if not REASON_MIN <= len(reason) <= REASON_MAX:
        raise InvalidInput(N_("Please give the reason in 3 to 300 characters."))
    return reason
