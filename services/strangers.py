"""Strangers (accounts not linked to a member) cost nothing: only invite codes are counted.

A stranger's plain messages write nothing. Each `/start CODE` counts, per account, in a window
of 15 minutes: after 5 the code is not even looked at until the window has passed, so guessing
codes is slow and a flood costs one row. The row holds a hash of the account, never its id or a
code; rows of windows that have passed are deleted whenever one is written, so the table is
bounded by the accounts that tried within the last window. The log gets counts, never the code.
"""

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlmodel import Session, col

from db.models import Member, StrangerAttempt
from db.upsert import insert_for
from services import identities
from services.errors import DomainError, InvalidInvite
from services.platforms import PlatformNotAllowed
from services.text import N_

log = logging.getLogger(__name__)

WINDOW = timedelta(minutes=15)
LIMIT = 5


class TooManyAttempts(DomainError):
    """The account used up its invite codes for this window; the code was not checked."""


@dataclass(frozen=True)
class Attempt:
    count: int  # within the window, this one included
    window_start: datetime

    @property
    def retry_at(self) -> datetime:
        return self.window_start + WINDOW


def account_hash(platform: str, user_id: str) -> str:
    return hashlib.sha256(f"{platform}\x00{user_id}".encode()).hexdigest()


def count_attempt(session: Session, *, platform: str, user_id: str, now: datetime) -> Attempt:
    """Count one code attempt of an account (atomically, also between processes); prune passed windows."""
    # A passed window of this account goes too, so the insert below starts it afresh.
    session.execute(delete(StrangerAttempt).where(col(StrangerAttempt.window_start) <= now - WINDOW))
    values = {
        "platform": platform,
        "user_hash": account_hash(platform, user_id),
        "window_start": now,
        "count": 1,
    }
    insert = insert_for(session, StrangerAttempt).values(**values)
    upsert = insert.on_conflict_do_update(
        index_elements=["platform", "user_hash"], set_={"count": col(StrangerAttempt.count) + 1}
    ).returning(col(StrangerAttempt.count), col(StrangerAttempt.window_start))
    count, window_start = session.execute(upsert).one()
    return Attempt(count, window_start)


def forget(session: Session, *, platform: str, user_id: str) -> None:
    """The account is a member now: its attempts no longer matter."""
    session.execute(
        delete(StrangerAttempt).where(
            col(StrangerAttempt.platform) == platform,
            col(StrangerAttempt.user_hash) == account_hash(platform, user_id),
        )
    )


def redeem(
    session: Session, *, platform: str, user_id: str, chat_id: str, code: str, now: datetime, locale: str
) -> Member:
    """Link the account with an invite code, if it has attempts left in this window.

    Raises TooManyAttempts (code unchecked) or InvalidInvite; either way the attempt stays
    counted when the caller commits, which is safe because neither is raised after a write.
    """
    attempt = count_attempt(session, platform=platform, user_id=user_id, now=now)
    short = account_hash(platform, user_id)[:8]  # enough to tell accounts apart in a log, not to find them
    if attempt.count > LIMIT:
        if attempt.count & (attempt.count - 1) == 0 or attempt.count == LIMIT + 1:  # log lines grow as log2
            log.warning(
                "invite codes from %s account %s refused: %d attempts in this window, %d allowed",
                platform,
                short,
                attempt.count,
                LIMIT,
            )
        raise TooManyAttempts(
            N_("Too many attempts with invite codes. Please try again after {retry_at}."),
            retry_at=attempt.retry_at,
        )
    try:
        member = identities.link(
            session, platform=platform, user_id=user_id, chat_id=chat_id, code=code, now=now, locale=locale
        )
    except PlatformNotAllowed:
        log.info(
            "invite code from %s account %s refused: the district does not allow %s",
            platform,
            short,
            platform,
        )
        raise
    except InvalidInvite:
        log.info(
            "wrong invite code from %s account %s: attempt %d of %d", platform, short, attempt.count, LIMIT
        )
        raise
    forget(session, platform=platform, user_id=user_id)
    return member
