"""The request lifecycle: which state may follow which. Every state change goes through here."""

from services.errors import IllegalTransition
from services.text import N_
from services.vocabulary import RequestState as S

TRANSITIONS: dict[S, frozenset[S]] = {
    S.REQUESTED: frozenset({S.OFFERED, S.AWAITING_APPROVAL, S.REFERRED, S.UNFILLED, S.CANCELLED}),
    S.AWAITING_APPROVAL: frozenset({S.OFFERED, S.UNFILLED, S.REJECTED, S.CANCELLED}),
    S.OFFERED: frozenset({S.BOOKED, S.UNFILLED, S.AWAITING_APPROVAL, S.CANCELLED}),
    # An interpreter who gives a booking back sends the request to matching again.
    S.BOOKED: frozenset({S.COMPLETED, S.OFFERED, S.UNFILLED, S.AWAITING_APPROVAL, S.CANCELLED}),
    S.COMPLETED: frozenset({S.SETTLED}),
    S.UNFILLED: frozenset({S.REFERRED, S.OFFERED, S.AWAITING_APPROVAL, S.CANCELLED}),
    S.SETTLED: frozenset(),
    S.REFERRED: frozenset(),
    S.REJECTED: frozenset(),
    S.CANCELLED: frozenset(),
}

OPEN_STATES = frozenset({S.REQUESTED, S.AWAITING_APPROVAL, S.OFFERED, S.UNFILLED})
# States whose reservation may still be open on the ledger.
RESERVING_STATES = frozenset({S.OFFERED, S.BOOKED, S.COMPLETED})


def can_transition(current: S, target: S) -> bool:
    return target in TRANSITIONS[current]


def check_transition(current: S, target: S) -> None:
    """Raise IllegalTransition unless `current -> target` is in the lifecycle."""
    if not can_transition(current, target):
        raise IllegalTransition(
            N_("This request is {state} and cannot become {target}."),
            state=current.value,
            target=target.value,
        )
