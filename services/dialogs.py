"""A member's unfinished dialog, stored so that a restart or another platform continues it."""

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete
from sqlmodel import Session, col, select

from db.models import DialogState, ProcessedEvent


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


def load_dialog(session: Session, member_id: int) -> Dialog:
    row = session.exec(select(DialogState).where(DialogState.member_id == member_id)).first()
    if row is None:
        return Dialog()
    return Dialog(row.flow, row.step, json.loads(row.draft), dict(json.loads(row.choices)))


def save_dialog(session: Session, member_id: int, dialog: Dialog, *, now: datetime) -> None:
    """Store the dialog; an empty one (no flow, no choices) removes the row."""
    row = session.exec(select(DialogState).where(DialogState.member_id == member_id)).first()
    if not dialog.flow and not dialog.choices:
        if row is not None:
            session.delete(row)
        return
    if row is None:
        row = DialogState(member_id=member_id, flow="", step="", draft="{}", choices="[]", updated_at=now)
    row.flow, row.step = dialog.flow, dialog.step
    row.draft = json.dumps(dialog.draft, sort_keys=True)
    row.choices = json.dumps(list(dialog.choices.items()))  # pairs: the order is the numbering
    row.updated_at = now
    session.add(row)


def first_time(session: Session, *, platform: str, event_key: str, now: datetime) -> bool:
    """Record an incoming event; False when it was seen before (a redelivery must have no effect)."""
    seen = session.exec(
        select(ProcessedEvent.id).where(
            ProcessedEvent.platform == platform, ProcessedEvent.event_key == event_key
        )
    ).first()
    if seen is not None:
        return False
    session.add(ProcessedEvent(platform=platform, event_key=event_key, created_at=now))
    session.flush()
    return True


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
