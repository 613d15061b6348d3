"""Chat identities: which member a platform account belongs to, and where to reach a recipient."""

import functools
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy import select as sa_select
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, select

from db.models import ChatIdentity, Member
from services.audit import record
from services.invites import redeem_invite
from services.platforms import allowed_platforms, allows
from services.vocabulary import Recipient, Role


def find_identity(session: Session, platform: str, user_id: str) -> ChatIdentity | None:
    query = select(ChatIdentity).where(ChatIdentity.platform == platform, ChatIdentity.user_id == user_id)
    return session.exec(query).first()


# Every event begins with these: built once, run with parameters (see db/upsert.py).
_IDENTITY_AND_MEMBER = (
    select(ChatIdentity, Member)
    .join(Member, col(Member.id) == col(ChatIdentity.member_id))
    .where(
        col(ChatIdentity.platform) == bindparam("platform"), col(ChatIdentity.user_id) == bindparam("user")
    )
)
_LINKS = ChatIdentity.__table__  # type: ignore[attr-defined]
_TOUCH = (
    update(_LINKS)
    .where(_LINKS.c.id == bindparam("identity_id"))
    .values(chat_id=bindparam("chat"), last_seen_at=bindparam("seen"))
)


def identity_and_member(session: Session, platform: str, user_id: str) -> tuple[ChatIdentity, Member] | None:
    """A platform account's chat link and its member, in one read; None for a stranger."""
    found = session.execute(_IDENTITY_AND_MEMBER, {"platform": platform, "user": user_id}).first()
    return None if found is None else (found[0], found[1])


def member_of(session: Session, platform: str, user_id: str) -> Member | None:
    """The member behind a platform account, or None for a stranger."""
    found = identity_and_member(session, platform, user_id)
    return None if found is None else found[1]


def touch(session: Session, identity: ChatIdentity, *, chat_id: str, now: datetime) -> None:
    """Remember the chat the member last wrote from (notifications go there)."""
    session.execute(_TOUCH, {"identity_id": identity.id, "chat": chat_id, "seen": now})
    # Written by the statement above: the loaded row takes the values as if read back.
    set_committed_value(identity, "chat_id", chat_id)
    set_committed_value(identity, "last_seen_at", now)


def link(
    session: Session, *, platform: str, user_id: str, chat_id: str, code: str, now: datetime, locale: str
) -> Member:
    """Redeem an invite code and bind the platform account to the new member.

    An account already bound keeps its member: a second code would make one chat act for two
    people, so it is refused by the caller before this is reached.
    """
    member = redeem_invite(session, code=code, now=now, locale=locale, platform=platform)
    assert member.id is not None
    identity = ChatIdentity(
        member_id=member.id,
        platform=platform,
        user_id=user_id,
        chat_id=chat_id,
        created_at=now,
        last_seen_at=now,
    )
    session.add(identity)
    session.flush()
    record(
        session,
        district_id=member.district_id,
        actor=f"member:{member.id}",
        action="identity.linked",
        entity="member",
        entity_id=member.id,
        now=now,
        platform=platform,
    )
    return member


def set_notify_everywhere(session: Session, member: Member, everywhere: bool, *, now: datetime) -> None:
    """Notifications to every linked chat (True) or only to the one last written from (False)."""
    member.notify_everywhere = everywhere
    session.add(member)
    assert member.id is not None
    record(
        session,
        district_id=member.district_id,
        actor=f"member:{member.id}",
        action="member.notify_everywhere" if everywhere else "member.notify_last_chat",
        entity="member",
        entity_id=member.id,
        now=now,
    )


def reachable_members(
    session: Session,
    recipient: Recipient,
    recipient_id: int,
    district_id: int,
    *,
    deactivated_too: bool = False,
) -> list[tuple[Member, list[ChatIdentity]]]:
    """The members a notification is for (a school's contacts, an interpreter, all coordinators, or
    one member), each with the chats it reaches them in as `identities_of` lists them: one read.

    Members whose access was taken away are left out, unless `deactivated_too` (the notice that
    tells them so); a member without a chat comes with none."""
    found = session.execute(
        _members_with_links(recipient, deactivated_too),
        {"district_id": district_id, "recipient_id": recipient_id},
    )
    allowed = allowed_platforms(session, district_id)
    members: dict[int, tuple[Member, list[ChatIdentity]]] = {}
    for member, identity in found:
        assert member.id is not None
        _, links = members.setdefault(member.id, (member, []))
        if identity is not None and allows(allowed, identity.platform):
            links.append(identity)
    return list(members.values())


@functools.cache
def _members_with_links(recipient: Recipient, deactivated_too: bool) -> Any:
    """`reachable_members`' statement, built once per kind of recipient (see db/upsert.py): the
    members by id, each one's chats in `_LINKS_OF`'s order."""
    wanted: Any = bindparam("recipient_id")
    conditions = [col(Member.district_id) == bindparam("district_id")]
    if not deactivated_too:
        conditions.append(col(Member.deactivated_at).is_(None))
    if recipient is Recipient.MEMBER:
        conditions.append(col(Member.id) == wanted)
    elif recipient is Recipient.SCHOOL:
        conditions += [col(Member.role) == Role.SCHOOL.value, col(Member.school_id) == wanted]
    elif recipient is Recipient.INTERPRETER:
        conditions += [col(Member.role) == Role.INTERPRETER.value, col(Member.interpreter_id) == wanted]
    else:  # every coordinator of the district (the recipient id is the district's)
        conditions.append(col(Member.role) == Role.COORDINATOR.value)
    return (
        sa_select(Member, ChatIdentity)
        .outerjoin(ChatIdentity, col(ChatIdentity.member_id) == col(Member.id))
        .where(*conditions)
        .order_by(col(Member.id), col(ChatIdentity.last_seen_at).desc(), col(ChatIdentity.id))
    )


_LINKS_OF = (
    select(ChatIdentity)
    .where(col(ChatIdentity.member_id) == bindparam("member_id"))
    .order_by(col(ChatIdentity.last_seen_at).desc(), col(ChatIdentity.id))
)


def identities_of(session: Session, member_id: int, *, refused_too: bool = False) -> list[ChatIdentity]:
    """Where a member can be reached; the most recently used account first.

    Chats on a platform the member's district no longer allows are left out (nothing is sent
    there), unless `refused_too`.
    """
    member = session.get(Member, member_id)
    if member is None:
        return []
    allowed = allowed_platforms(session, member.district_id)
    found = session.exec(_LINKS_OF, params={"member_id": member_id})
    return [identity for identity in found if refused_too or allows(allowed, identity.platform)]


def identity_in_chat(session: Session, platform: str, chat_id: str) -> ChatIdentity | None:
    """The identity whose notifications go to this chat (a direct chat has one)."""
    query = select(ChatIdentity).where(ChatIdentity.platform == platform, ChatIdentity.chat_id == chat_id)
    return session.exec(query.order_by(col(ChatIdentity.last_seen_at).desc())).first()


def move_chat(session: Session, identity: ChatIdentity, chat_id: str) -> None:
    """Send to a new chat from now on (the old direct room is gone), without counting as activity."""
    identity.chat_id = chat_id
    session.add(identity)
