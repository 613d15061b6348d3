"""The privacy notice in the chat (Art. 13 DSGVO): /privacy, the short notice before an invite code,
the pointer after it; and the answer to a chat on a platform its county no longer allows.

Strangers write nothing, so a stranger's /privacy only reads. A stranger's county is not known
before the code: with one district in the deployment its notice is shown, with several the
stranger names theirs (`/privacy SLUG`).
"""

from datetime import datetime, timedelta

from sqlmodel import Session

from bot.i18n import Translator
from db.models import District, Member
from services import platforms, privacy
from services.districts import all_districts
from services.invites import create_link_code
from services.policy import PLATFORM_NAMES
from services.text import N_


def duration(t: Translator, span: timedelta) -> str:
    """`90 Tage`, `10 Jahre`: a retention period as the notice reads it (365 days make a year)."""
    if span % timedelta(days=1):
        return t.render_plural("{count} hour", "{count} hours", int(span.total_seconds() // 3600))
    days = span.days
    if days % 365 == 0:
        return t.render_plural("{count} year", "{count} years", days // 365)
    return t.render_plural("{count} day", "{count} days", days)


def notice_text(t: Translator, session: Session, district_id: int) -> str:
    """The district's notice for a reader of `t`'s language, with the current rules filled in."""
    notice = privacy.notice_for(session, district_id, t.locale)
    values = privacy.values_of(session, district_id)
    text = privacy.fill(
        notice.text,
        {
            "district": values.district,
            "platforms": values.platforms,
            "retention_free_text": duration(t, values.retention_free_text),
            "retention_accounts": duration(t, values.retention_accounts),
        },
    )
    if notice.shipped and notice.unfilled:
        # Said plainly rather than hidden: the reader sees which parts the county still owes.
        return t.gettext("The county has not completed this notice yet: the parts in [[…]] are missing.") + (
            "\n\n" + text
        )
    return text


def short_notice(t: Translator, session: Session) -> str:
    """What a stranger reads before the code: who is responsible, what is stored, where to read more."""
    districts = all_districts(session)
    if len(districts) == 1:
        return t.render(
            N_(
                "Privacy: {district} is responsible for this bot. It stores your chat account only once "
                "you join with a code, and then only what the pool needs. /privacy shows the full notice."
            ),
            {"district": districts[0].name},
        )
    return t.gettext(
        "Privacy: the county whose coordination office gave you the code is responsible for this bot. "
        "It stores your chat account only once you join with a code, and then only what the pool needs. "
        "/privacy shows the full notice."
    )


def for_stranger(t: Translator, session: Session, slug: str) -> str:
    """/privacy before the code: the only district's notice, or the one named, or the list to name one."""
    districts = all_districts(session)
    named = [d for d in districts if d.slug == slug.strip().casefold()] if slug else []
    chosen: District | None = named[0] if named else (districts[0] if len(districts) == 1 else None)
    if chosen is not None:
        assert chosen.id is not None
        return notice_text(t, session, chosen.id)
    if not districts:
        return short_notice(t, session)
    lines = [t.gettext("This bot serves several counties. Send /privacy with your county's short name:")]
    lines += [f"/privacy {d.slug} – {d.name}" for d in districts]
    return "\n".join(lines)


def pointer(t: Translator) -> str:
    """After joining: where the notice is (shown once, with the welcome)."""
    return t.gettext("What is stored about you, for how long, and your rights: /privacy")


def refused_chat(
    t: Translator, session: Session, member: Member, *, platform: str, command: str, now: datetime
) -> str:
    """The answer in a chat on a platform the member's county no longer allows.

    /privacy still shows the notice, and /connect gives a code that links an account on an allowed
    platform to the same person (their role, dialogs and jobs go with it); anything else is refused.
    """
    allowed = platforms.allowed_platforms(session, member.district_id)
    if command == "privacy":
        return notice_text(t, session, member.district_id)
    if command == "connect":
        _, code = create_link_code(session, member=member, now=now)
        bang = "!" if allowed == ("matrix",) else "/"  # Element takes a leading / for its own commands
        return t.render(
            N_(
                "Send this message to the bot on {platforms} within an hour:\n\n{command}start {code}\n\n"
                "The code works once; your role, dialogs and jobs go with it."
            ),
            {"platforms": platforms.names(allowed), "command": bang, "code": code},
        )
    return t.render(
        N_(
            "Your county no longer uses this bot on {platform}, so nothing reaches you here any more. "
            "Please use {platforms}: /connect here gives you a code that links your account there."
        ),
        {"platform": PLATFORM_NAMES.get(platform, platform), "platforms": platforms.names(allowed)},
    )
