"""`python -m bot operator set|show|clear`: the person a district's technical alerts go to."""

import argparse

from bot.cli.context import Context
from services import operator_alerts
from services.text import N_


def operator_set(ctx: Context, args: argparse.Namespace) -> int:
    """Make a member the district's operator contact."""
    with ctx.uow() as uow:
        district = ctx.district(uow)
        assert district.id is not None
        member = operator_alerts.set_operator(
            uow.session, district_id=district.id, member_id=args.member, actor=ctx.actor(), now=ctx.now()
        )
        reachable = operator_alerts.has_chat(uow.session, args.member)
        uow.commit()
    ctx.say(
        "The operator contact of {district} is now {name} (member {member_id}). Failed timers and "
        "platform outages go to them; undelivered notifications to them and the coordinators.",
        district=district.name,
        name=member.name or "—",
        member_id=args.member,
    )
    if not reachable:
        ctx.say(_NO_CHAT)
    return 0


_NO_CHAT = N_("They have no linked chat yet: until they link one, the alerts go to the coordinators.")


def operator_show(ctx: Context, args: argparse.Namespace) -> int:
    """Show the district's operator contact, and the coordinators who could be one."""
    with ctx.uow() as uow:
        district = ctx.district(uow)
        assert district.id is not None
        view = operator_alerts.show_operator(uow.session, district.id)
        coordinators = operator_alerts.candidates(uow.session, district.id)
    if view is None:
        ctx.say("No operator contact is set: technical alerts go to the coordinators.")
    else:
        ctx.say(
            "Operator contact: {name} (member {member_id}), set by {actor} on {set_at}.",
            name=view.name or "—",
            member_id=view.member_id,
            actor=view.set_by,
            set_at=view.set_at,
        )
        if not view.has_chat:
            ctx.say(_NO_CHAT)
    if coordinators:
        ctx.say("Coordinators (member id, name, linked chat):")
    for member, linked in coordinators:
        chat = ctx.translator.gettext(N_("yes") if linked else N_("no"))
        print(f"{member.id:>6}  {member.name or '—'}  {chat}")
    return 0


def operator_clear(ctx: Context, args: argparse.Namespace) -> int:
    """Remove the operator contact: technical alerts go to the coordinators again."""
    with ctx.uow() as uow:
        district = ctx.district(uow)
        assert district.id is not None
        cleared = operator_alerts.clear_operator(
            uow.session, district_id=district.id, actor=ctx.actor(), now=ctx.now()
        )
        uow.commit()
    if cleared:
        ctx.say("The operator contact is removed: technical alerts go to the coordinators.")
    else:
        ctx.say("No operator contact is set: technical alerts go to the coordinators.")
    return 0
