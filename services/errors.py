"""Domain errors. Each carries a catalog message id and its parameters; the edge translates them.

Parameters are formatted by name at the edge: `*_cents` as money, `*_at` as a Berlin date and
time, `language` as the language's name, `mode`, `topic`, `state` and `target` as their labels.
"""

from typing import Any

from services.text import N_


class DomainError(Exception):
    """A rule was broken; nothing was changed."""

    def __init__(self, message: str, **params: Any) -> None:
        super().__init__(message)
        self.message = message
        self.params = params

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, {self.params!r})"


class InvalidInput(DomainError):
    """The input is not acceptable (format, range, a rule of the request)."""


class NotFound(DomainError):
    """The thing asked for does not exist in this district."""


class IllegalTransition(DomainError):
    """The request's state does not allow this step."""


class AlreadyTaken(DomainError):
    """Another interpreter accepted first."""


class OfferClosed(DomainError):
    """The offer expired or was withdrawn."""


class BudgetExceeded(DomainError):
    """Not enough money left in the budget."""


class InvalidInvite(DomainError):
    """The invite code is wrong, used or expired."""


class ImportRowError(InvalidInput):
    """A cell of an imported file is bad (`cause` says why); nothing of the file was imported."""

    def __init__(self, *, file: str, line: int, column: str, cause: DomainError) -> None:
        super().__init__(
            N_("{file}, line {line}, column “{column}”: {reason} Nothing was imported."),
            file=file,
            line=line,
            column=column,
        )
        self.cause = cause
