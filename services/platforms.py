"""The chat platforms a district allows (policy rule `platforms`), and what follows for codes and chats.

Telegram is a service outside the EU without end-to-end encryption in bot chats, so a district
may allow Matrix only. Then an invite or link code is refused on Telegram, unused, and works on
Matrix; a chat linked on Telegram before gets no notifications any more, and its messages are
answered with the platforms to use instead. Nothing is deleted: allowing Telegram again brings
the links back (retention removes a deactivated member's links in any case).
"""

from sqlmodel import Session, col, func, select

from db.models import ChatIdentity, Member
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


def links_not_allowed(session: Session, district_id: int) -> int:
    """How many chat links of the district's members are on a platform the district does not allow."""
    allowed = allowed_platforms(session, district_id)
    refused = [platform for platform in CHAT_PLATFORMS if platform not in allowed]
    if not refused:
        return 0
    query = (
        select(func.count())
        .select_from(ChatIdentity)
        .join(Member, col(Member.id) == col(ChatIdentity.member_id))
        .where(Member.district_id == district_id, col(ChatIdentity.platform).in_(refused))
    )
    return int(session.exec(query).one())
