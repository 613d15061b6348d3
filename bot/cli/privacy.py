"""`python -m bot privacy set|show|reset`: the district's privacy notice (Art. 13 DSGVO)."""

import argparse
import sys
from pathlib import Path

from bot.cli.context import Context
from bot.conversation.privacy import notice_text
from bot.i18n import Translator
from services import privacy
from services.errors import InvalidInput
from services.text import N_


def _read(path: str) -> str:
    """The file's text; one that is not UTF-8 gets a sentence, not a traceback."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(N_("“{file}” is not UTF-8 text."), file=path) from exc


def privacy_set(ctx: Context, args: argparse.Namespace) -> int:
    """Store the county's notice from a UTF-8 text file."""
    text = _read(args.file)
    with ctx.uow() as uow:
        district = ctx.district(uow)
        assert district.id is not None
        stored = privacy.set_notice(
            uow.session,
            district_id=district.id,
            language=args.language,
            text=text,
            actor=ctx.actor(),
            now=ctx.now(),
        )
        uow.commit()
    ctx.say(
        "The privacy notice of {district} ({language}) is set: {length} characters. "
        "/privacy shows it in the chat, and /start points to it.",
        district=district.name,
        language=args.language,
        length=len(stored),
    )
    return 0


def privacy_show(ctx: Context, args: argparse.Namespace) -> int:
    """Print the notice as the chat shows it, or (--raw) as stored, to edit and set again."""
    with ctx.uow() as uow:
        district = ctx.district(uow)
        assert district.id is not None
        notice = privacy.notice_for(uow.session, district.id, args.language)
        shown = notice_text(Translator(args.language), uow.session, district.id)
    if args.raw:  # byte for byte what `privacy set` takes back, the shipped file's own last newline included
        sys.stdout.write(notice.text if notice.text.endswith("\n") else notice.text + "\n")
        return 0
    print(shown)
    print()
    if notice.shipped:
        ctx.say(
            "This is the template that comes with the bot. Fill in its {count} [[…]] placeholder(s): "
            "privacy show --raw > notice.txt, edit the file, then privacy set notice.txt.",
            count=len(notice.unfilled),
        )
    elif notice.language != args.language:
        ctx.say("The county has set no notice in this language; readers of it get this one.")
    return 0


def privacy_reset(ctx: Context, args: argparse.Namespace) -> int:
    """Drop the county's notice in a language: the shipped template is shown again."""
    with ctx.uow() as uow:
        district = ctx.district(uow)
        assert district.id is not None
        removed = privacy.reset_notice(
            uow.session, district_id=district.id, language=args.language, actor=ctx.actor(), now=ctx.now()
        )
        uow.commit()
    if removed:
        ctx.say(
            "The privacy notice ({language}) is reset to the template that comes with the bot.",
            language=args.language,
        )
    else:
        ctx.say(
            "No privacy notice ({language}) was set; the template that comes with the bot is shown.",
            language=args.language,
        )
    return 0
