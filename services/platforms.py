"""The chat platforms a district allows (policy rule `platforms`), and what follows for codes and chats.

Telegram is a service outside the EU without end-to-end encryption in bot chats, so a district
may allow Matrix only. Then an invite or link code is refused on Telegram, unused, and works on
Matrix; a chat linked on Telegram before gets no notifications any more, and its messages are
answered with the platforms to use instead. Nothing is deleted: allowing Telegram again brings
the links back (retention removes a deactivated member's links in any case).
"""

from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, func, select

from db.models import ChatIdentity, Delivery, Member
from services.errors import InvalidInvite
from services.policy import CHAT_PLATFORMS, PLATFORM_NAMES, load_policy
from services.text import N_


class PlatformNotAllowed(InvalidInvite):
    """The code is valid, but not on this platform; it was not used."""


def allows(allowed: tuple[str, ...], platform: str) -> bool:
    """Whether a chat on `platform` may act for the district; the local terminal chat always may."""
    return platform not in CHAT_PLATFORMS or platform in allowed


def names(allowed: tuple[str, ...]) -> str:
    """The platforms as people read them: `Telegram, Matrix`."""
    return ", ".join(PLATFORM_NAMES[platform] for platform in allowed)


def allowed_platforms(session: Session, district_id: int) -> tuple[str, ...]:
    return load_policy(session, district_id).platforms


def refuse_code_unless_allowed(session: Session, district_id: int, platform: str) -> None:
    """Raise PlatformNotAllowed when the district does not allow `platform` (before anything is written)."""
    allowed = allowed_platforms(session, district_id)
    if not allows(allowed, platform):
        raise PlatformNotAllowed(
            N_(
                "This county uses the bot only on {platforms}. Please send your code there: "
                "it was not used and stays valid."
            ),
            platforms=names(allowed),
        )


def _refused_links(session: Session, district_id: int) -> Any:
    """The ids of the district's chat links on a platform it does not allow, as a subquery."""
    allowed = allowed_platforms(session, district_id)
    refused = [platform for platform in CHAT_PLATFORMS if platform not in allowed]
    return (
        select(ChatIdentity.id)
        .join(Member, col(Member.id) == col(ChatIdentity.member_id))
        .where(Member.district_id == district_id, col(ChatIdentity.platform).in_(refused))
    )


def links_not_allowed(session: Session, district_id: int) -> int:
    """How many chat links of the district's members are on a platform the district does not allow."""
    query = select(func.count()).select_from(_refused_links(session, district_id).subquery())
    return int(session.exec(query).one())


def stop_deliveries(session: Session, district_id: int, *, now: datetime) -> int:
    """Give up what waits to be sent to chats on a platform the district no longer allows; how many.

    New notifications skip those chats (`identities_of`); this stops the ones already on their way,
    so that nothing more reaches the platform after the change.
    """
    result = session.execute(
        update(Delivery)
        .where(
            col(Delivery.identity_id).in_(_refused_links(session, district_id)),
            col(Delivery.sent_at).is_(None),
            col(Delivery.failed_at).is_(None),
        )
        # Given up, never sent: like any delivery given up, its text and file are not kept.
        .values(failed_at=now, last_error="platform not allowed", body=None, attachment=None)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
