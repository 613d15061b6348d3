"""A member's unfinished dialog, stored so that a restart or another platform continues it."""

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete
from sqlmodel import Session, col, select

from db.models import DialogState, ProcessedEvent
from db.upsert import built_for, insert_on


@dataclass
class Dialog:
    """Which flow and step a member is in, the draft so far, and the choices last offered (key -> label)."""

    flow: str = ""
    step: str = ""
    draft: dict[str, Any] = field(default_factory=dict)
    choices: dict[str, str] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return bool(self.flow)

    @property
    def kept(self) -> bool:
        """Whether `save_dialog` keeps a row for it: a flow under way, or choices a number picks."""
        return bool(self.flow or self.choices)


_STATES = DialogState.__table__  # type: ignore[attr-defined]
_EVENTS = ProcessedEvent.__table__  # type: ignore[attr-defined]
# Every event reads and writes its member's dialog: built once (db/upsert.py), run with parameters.
_LOAD = select(_STATES.c.flow, _STATES.c.step, _STATES.c.draft, _STATES.c.choices).where(
    _STATES.c.member_id == bindparam("member_id")
)
_FORGET = delete(_STATES).where(_STATES.c.member_id == bindparam("member_id"))


def _keep(dialect: str) -> Any:
    insert = insert_on(dialect, _STATES)
    columns = ("flow", "step", "draft", "choices", "updated_at")
    return insert.on_conflict_do_update(
        index_elements=[_STATES.c.member_id], set_={name: insert.excluded[name] for name in columns}
    )


def _record_event(dialect: str) -> Any:
    insert = insert_on(dialect, _EVENTS)
    return insert.on_conflict_do_nothing(index_elements=[_EVENTS.c.platform, _EVENTS.c.event_key]).returning(
        _EVENTS.c.id
    )


def load_dialog(session: Session, member_id: int) -> Dialog:
    # Plain columns, not the ORM row: `save_dialog` writes with one statement, and no stale copy
    # of the row stays in the session behind it.
    row = session.execute(_LOAD, {"member_id": member_id}).first()
    if row is None:
        return Dialog()
    return Dialog(row.flow, row.step, json.loads(row.draft), dict(json.loads(row.choices)))


def save_dialog(
    session: Session, member_id: int, dialog: Dialog, *, now: datetime, had_row: bool = True
) -> None:
    """Store the dialog, in one statement; an empty one (no flow, no choices) removes the row.

    `had_row=False`: the member had none when the event began (an empty dialog is never stored), so
    an empty one writes nothing: a button press outside any dialog (Accept, /jobs) saves a statement.
    """
    if not dialog.kept:
        if had_row:
            session.execute(_FORGET, {"member_id": member_id})
        return
    values = {
        "member_id": member_id,
        "flow": dialog.flow,
        "step": dialog.step,
        "draft": json.dumps(dialog.draft, sort_keys=True),
        "choices": json.dumps(list(dialog.choices.items())),  # pairs: the order is the numbering
        "updated_at": now,
    }
    session.execute(built_for(session, _keep), values)


def first_time(session: Session, *, platform: str, event_key: str, now: datetime) -> bool:
    """Record an incoming event; False when it was seen before (a redelivery must have no effect).

    One statement: a copy handled at the same moment by another transaction waits for it on the
    unique key and then finds the row (PostgreSQL), or waits for the write lock (SQLite).
    """
    values = {"platform": platform, "event_key": event_key, "created_at": now}
    # A returned id, not the rowcount: on PostgreSQL that read 1 here also when nothing was written.
    return session.execute(built_for(session, _record_event), values).first() is not None


def prune_processed_events(session: Session, *, before: datetime) -> int:
    """Forget event ids older than `before`: no platform redelivers that late."""
    result = session.exec(delete(ProcessedEvent).where(col(ProcessedEvent.created_at) < before))
    return int(result.rowcount or 0)


def offer_choices(session: Session, member_id: int, choices: dict[str, str], *, now: datetime) -> None:
    """A notification's buttons become what a typed number picks, unless a dialog is under way."""
    dialog = load_dialog(session, member_id)
    if dialog.active:
        return
    dialog.choices = dict(choices)
    save_dialog(session, member_id, dialog, now=now)
