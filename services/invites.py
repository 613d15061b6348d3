"""Invite codes: how a school contact, an interpreter or a coordinator gets into the chat.

A code has 192 bits of randomness, is valid for the policy's period and works once. Only its
SHA-256 is stored, so a copy of the database gives nobody a way in.
"""

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlmodel import Session, select

from db.models import Interpreter, Invite, Member, School
from services.audit import record
from services.errors import InvalidInput, InvalidInvite
from services.platforms import refuse_code_unless_allowed
from services.policy import load_policy
from services.text import N_
from services.vocabulary import Role

LINK_CODE_VALIDITY = timedelta(hours=1)  # shown in a chat, so short-lived


def hash_code(code: str) -> str:
    return hashlib.sha256(code.strip().encode()).hexdigest()


def deep_link(bot_username: str, code: str) -> str:
    return f"https://t.me/{bot_username}?start={code}"


def create_invite(
    session: Session, *, district_id: int, role: Role, for_id: int, actor: str, now: datetime, name: str = ""
) -> tuple[Invite, str]:
    """Make an invite for a school (its id), an interpreter (their id) or a coordinator (the district id).

    Returns the stored invite and the code, which is shown once and never stored.
    """
    school_id = interpreter_id = None
    if role is Role.SCHOOL:
        school = session.get(School, for_id)
        if school is None or school.district_id != district_id:
            raise InvalidInput(N_("There is no school {id} in this district."), id=for_id)
        school_id = school.id
    elif role is Role.INTERPRETER:
        interpreter = session.get(Interpreter, for_id)
        if interpreter is None or interpreter.district_id != district_id:
            raise InvalidInput(N_("There is no interpreter {id} in this district."), id=for_id)
        interpreter_id = interpreter.id
        name = name or interpreter.name
    elif for_id != district_id:
        raise InvalidInput(N_("A coordinator invite is for the district itself (id {id})."), id=district_id)
    code = secrets.token_urlsafe(24)
    invite = Invite(
        district_id=district_id,
        role=role.value,
        name=name.strip()[:200],
        school_id=school_id,
        interpreter_id=interpreter_id,
        code_hash=hash_code(code),
        expires_at=now + load_policy(session, district_id).invite_validity,
        created_by=actor,
        created_at=now,
    )
    session.add(invite)
    session.flush()
    assert invite.id is not None
    record(
        session,
        district_id=district_id,
        actor=actor,
        action="invite.created",
        entity="invite",
        entity_id=invite.id,
        now=now,
    )
    return invite, code


def create_link_code(session: Session, *, member: Member, now: datetime) -> tuple[Invite, str]:
    """A one-time code, valid for an hour, that adds another chat (Telegram or Matrix) to `member`.

    Redeemed like an invite, it makes no new member: the new chat acts for the same person,
    with the same role, dialogs and jobs.
    """
    assert member.id is not None
    code = secrets.token_urlsafe(12)
    invite = Invite(
        district_id=member.district_id,
        role=member.role,
        name=member.name,
        school_id=member.school_id,
        interpreter_id=member.interpreter_id,
        member_id=member.id,
        code_hash=hash_code(code),
        expires_at=now + LINK_CODE_VALIDITY,
        created_by=f"member:{member.id}",
        created_at=now,
    )
    session.add(invite)
    session.flush()
    record(
        session,
        district_id=member.district_id,
        actor=f"member:{member.id}",
        action="link_code.created",
        entity="invite",
        entity_id=invite.id or 0,
        now=now,
    )
    return invite, code


def redeem_invite(
    session: Session, *, code: str, now: datetime, locale: str | None = None, platform: str | None = None
) -> Member:
    """Turn a code into a member, once; a wrong, used or expired code raises InvalidInvite.

    A link code gives back the member it was made for. On a `platform` the district does not
    allow, the code is refused with the platforms to use (PlatformNotAllowed) and stays unused.
    """
    invite = session.exec(select(Invite).where(Invite.code_hash == hash_code(code)).with_for_update()).first()
    if invite is None:
        raise InvalidInvite(
            N_("This invite code is not valid. Please check it or ask your coordinator for a new one.")
        )
    if invite.used_at is not None:
        raise InvalidInvite(
            N_("This invite code has already been used. Please ask your coordinator for a new one.")
        )
    if invite.expires_at <= now:
        raise InvalidInvite(N_("This invite code has expired. Please ask your coordinator for a new one."))
    if platform is not None:
        refuse_code_unless_allowed(session, invite.district_id, platform)
    if invite.member_id is not None:
        existing = session.get(Member, invite.member_id)
        assert existing is not None
        invite.used_at = now
        session.add(invite)
        return existing
    member = Member(
        district_id=invite.district_id,
        role=invite.role,
        name=invite.name,
        school_id=invite.school_id,
        interpreter_id=invite.interpreter_id,
        locale=locale,
        created_at=now,
    )
    session.add(member)
    session.flush()
    invite.used_at, invite.member_id = now, member.id
    session.add(invite)
    assert member.id is not None
    record(
        session,
        district_id=invite.district_id,
        actor=f"member:{member.id}",
        action="invite.redeemed",
        entity="invite",
        entity_id=invite.id or 0,
        now=now,
    )
    return member
