"""`python -m bot person export|erase`: one person's data (Art. 15 and Art. 17 DSGVO)."""

import argparse
import os
import sys
from pathlib import Path

from bot.cli.context import Context
from bot.conversation.deactivation import HAND_BACK_REASON
from bot.conversation.mydata import outcome_text, preview_text
from db.engine import checkpoint
from services import personal_data
from services.policy import load_policy
from services.vocabulary import Role

YES_WORDS = {"yes", "ja", "y", "j"}


def person_export(ctx: Context, args: argparse.Namespace) -> int:
    """Write everything stored about a member as JSON: to stdout, or to a file only its owner can read."""
    with ctx.uow() as uow:
        district = ctx.district(uow)
        assert district.id is not None
        personal_data.get_member(uow.session, args.member, district.id)
        data = personal_data.export_json(uow.session, args.member)
    if args.output is None:
        sys.stdout.write(data.decode() + "\n")
        return 0
    target = Path(args.output)
    # Created 0600 from the start: the file holds contact data, and a chmod afterwards would leave a gap.
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(data)
    os.chmod(target, 0o600)  # an existing file keeps its mode through O_CREAT
    ctx.say("Written to {file} (readable only by you).", file=str(target))
    return 0


def person_erase(ctx: Context, args: argparse.Namespace) -> int:
    """Erase a member's data, keeping what budget law requires; asks first unless --yes."""
    t = ctx.translator
    with ctx.uow() as uow:
        district = ctx.district(uow)
        assert district.id is not None
        member = personal_data.get_member(uow.session, args.member, district.id)
        retention = load_policy(uow.session, district.id).retention_accounts
        role = Role(member.role)
    if not args.yes:
        print(preview_text(t, role, retention))
        prompt = t.render("Erase the data of member {member_id}? Type yes: ", {"member_id": args.member})
        try:
            answer = input(prompt)
        except EOFError:
            answer = ""
        if answer.strip().casefold() not in YES_WORDS:
            ctx.say("Nothing was erased.")
            return 1
    with ctx.uow() as uow:
        report = personal_data.erase(
            uow.session,
            member_id=args.member,
            actor=ctx.actor(),
            now=ctx.now(),
            district_id=district.id,
            hand_back_reason=t.gettext(HAND_BACK_REASON) if args.hand_back else None,
        )
        uow.commit()
    checkpoint(ctx.engine)  # as after a purge: the erased data leaves SQLite's -wal file too
    print(outcome_text(t, report))
    if not report.already:
        ctx.say("The coordinators have been told.")
    return 0
