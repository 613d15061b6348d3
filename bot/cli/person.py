"""`python -m bot person ...`: one person's access (list, deactivate, activate)."""

import argparse

from bot.cli.context import Context
from bot.conversation.deactivation import HAND_BACK_REASON, ROLE_LABELS, outcome_lines
from services import access


def person_deactivate(ctx: Context, args: argparse.Namespace) -> int:
    """End a member's access at once (an interpreter's: out of the pool, their offers withdrawn)."""
    with ctx.uow() as uow:
        district = ctx.district(uow)
        assert district.id is not None
        done = access.deactivate_member(
            uow.session,
            district_id=district.id,
            member_id=args.member,
            actor=ctx.actor(),
            now=ctx.now(),
            hand_back_reason=ctx.translator.gettext(HAND_BACK_REASON) if args.hand_back else None,
        )
        uow.commit()
    for line in outcome_lines(ctx.translator, done):
        print(line)
    return 0


def person_activate(ctx: Context, args: argparse.Namespace) -> int:
    """Give a deactivated member their access back."""
    with ctx.uow() as uow:
        district = ctx.district(uow)
        assert district.id is not None
        done = access.activate_member(
            uow.session, district_id=district.id, member_id=args.member, actor=ctx.actor(), now=ctx.now()
        )
        uow.commit()
    if done.already:
        ctx.say("{name} has access already. Nothing was changed.", name=done.name)
    else:
        ctx.say(
            "{name} has access again. Where their chat links were removed, an invite code links a chat.",
            name=done.name,
        )
    return 0


def person_list(ctx: Context, args: argparse.Namespace) -> int:
    """List the district's members: id, role, name, linked chats, deactivated since when."""
    t = ctx.translator
    with ctx.uow() as uow:
        district = ctx.district(uow)
        assert district.id is not None
        found = access.people(uow.session, district.id)
    for person in found:
        chats = t.render_plural("{count} chat", "{count} chats", person.chats)
        line = f"{person.member_id:>6}  {t.gettext(ROLE_LABELS[person.role])}  {person.name}  ({chats})"
        if person.deactivated_at is not None:
            line += "  " + t.render(
                "deactivated on {deactivated_at}", {"deactivated_at": person.deactivated_at}
            )
        print(line)
    return 0
