"""`python -m bot person ...`: one person's access (deactivate, activate)."""

import argparse

from bot.cli.context import Context
from bot.conversation.deactivation import HAND_BACK_REASON, outcome_lines
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
