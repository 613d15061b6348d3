"""How a report far from the plan is explained: to the interpreter before sending, to the office and the
school after."""

from collections.abc import Iterable
from datetime import timedelta

from bot.i18n import Translator
from db.models import Request
from services.closeout import Unusual
from services.text import N_

UNUSUAL_TEXTS = {
    Unusual.TWICE_PLANNED: N_("{minutes} min is more than twice the planned {planned} min"),
    Unusual.LONG_DAY: N_("{minutes} min is more than 8 hours"),
    Unusual.FAR: N_("{km} km is more than the {km_max} km expected at most"),
    Unusual.EARLY: N_("it is reported before the planned end ({ends_at})"),
}


def unusual_text(
    t: Translator, request: Request, flags: Iterable[str], *, minutes: int, km: int, km_max: int
) -> str:
    """What is unusual, as one line: `75 min is more than twice the planned 30 min; …`."""
    params = {
        "minutes": minutes,
        "planned": request.duration_minutes,
        "km": km,
        "km_max": km_max,
        "ends_at": request.starts_at + timedelta(minutes=request.duration_minutes),
    }
    known = [Unusual(flag) for flag in flags if flag in set(Unusual)]
    return "; ".join(t.render(UNUSUAL_TEXTS[flag], params) for flag in known)
