"""The admin commands. Each opens one unit of work and commits only when everything succeeded."""

import argparse
import json
import os
import sys
from pathlib import Path

from bot.cli.context import Context, Schema, refuse_newer_than_code
from db.uow import UnitOfWork
from services import ledger
from services.csv_import import decode_csv
from services.demo import create_demo, find_demo
from services.districts import all_districts, coordinator_counts, create_district
from services.errors import InvalidInput
from services.invites import create_invite, deep_link
from services.platforms import allowed_platforms, links_not_allowed, names, stop_deliveries
from services.policy import CHAT_PLATFORMS, RULES, Kind, bounds, set_rule, stored_values
from services.pool import import_pool, languages_of, list_pool
from services.schools import import_schools, list_schools
from services.text import N_
from services.units import parse_money
from services.vocabulary import Role, parse_modes


def _invite_line(ctx: Context, label: str, code: str, allowed: tuple[str, ...] = CHAT_PLATFORMS) -> None:
    """The code, with how to redeem it on each platform the district allows (and is configured)."""
    username = os.environ.get("TELEGRAM_BOT_USERNAME", "").strip().lstrip("@")
    ctx.say("{label}: {code}", label=label, code=code)
    if username and "telegram" in allowed:
        ctx.say("  {link}", link=deep_link(username, code))
    matrix_id = os.environ.get("MATRIX_USER_ID", "").strip()
    if matrix_id and "matrix" in allowed:
        ctx.say("  Matrix: invite {bot} to a direct chat, then send !start {code}", bot=matrix_id, code=code)


ROLE_LABELS = {
    Role.SCHOOL: N_("School"),
    Role.INTERPRETER: N_("Interpreter"),
    Role.COORDINATOR: N_("Coordinator"),
}


def _create_demo(ctx: Context, uow: UnitOfWork) -> None:
    """Create and commit the demo district, then print its invite codes."""
    demo = create_demo(uow.session, now=ctx.now(), actor=ctx.actor())
    uow.commit()
    ctx.say(
        "Created the demo district “{name}” (id {id}, --district {slug}).",
        name=demo.district.name,
        id=demo.district.id,
        slug=demo.district.slug,
    )
    ctx.say("Invite codes (each works once; in chat: /start CODE):")
    for invite in demo.invites:
        _invite_line(ctx, f"{ctx.translator.gettext(ROLE_LABELS[invite.role])} – {invite.label}", invite.code)


def init(ctx: Context, args: argparse.Namespace) -> int:
    """Migrate; create the named district, or the demo district with --demo."""
    ctx.schema = Schema.MIGRATE
    with ctx.uow() as uow:
        if args.demo:
            existing = find_demo(uow.session)
            if existing is not None:
                ctx.say("The demo district “{name}” exists already; nothing changed.", name=existing.name)
                return 0
            _create_demo(ctx, uow)
            return 0
        if not args.name:
            if all_districts(uow.session):
                ctx.say("The database is up to date.")
                return 0
            raise InvalidInput(N_("Name the district: init --name “Landkreis …” (or init --demo)."))
        district = create_district(uow.session, name=args.name, slug=args.slug, now=ctx.now())
        uow.commit()
        ctx.say(
            "Created the district “{name}” (id {id}, --district {slug}).",
            name=district.name,
            id=district.id,
            slug=district.slug,
        )
    return 0


def migrate(ctx: Context, args: argparse.Namespace) -> int:
    """Bring the database to this version's schema; with --check only say whether it is."""
    from db.migrate import current_revision, head_revision, upgrade

    ctx.schema = Schema.LATER
    before, head = current_revision(ctx.engine), head_revision()
    if before == head:
        ctx.say("The database is up to date (revision {head}).", head=head)
        return 0
    refuse_newer_than_code(before, head)
    if args.check:
        ctx.say(
            "The database is at revision {current}; this version needs {head}: run “python -m bot migrate”.",
            current=before or "–",
            head=head,
        )
        return 1
    upgrade(ctx.engine)
    ctx.say("The database was at revision {current} and is now at {head}.", current=before or "–", head=head)
    return 0


def district_list(ctx: Context, args: argparse.Namespace) -> int:
    """Every district: id, name, its --district name, and whether it has coordinators."""
    with ctx.uow() as uow:
        districts = all_districts(uow.session)
        counts = coordinator_counts(uow.session)
    if not districts:
        ctx.say("There is no district yet; run “init” first.")
    for d in districts:
        count = counts.get(d.id or 0, 0)
        if count:
            coordinators = ctx.translator.render("coordinators: {count}", {"count": count})
        else:
            coordinators = ctx.translator.render(
                "no coordinator yet (invite create --role coordinator --for {id})", {"id": d.id}
            )
        print(f"{d.id:>4}  {d.name}  (--district {d.slug})  {coordinators}")
    return 0


def chat(ctx: Context, args: argparse.Namespace) -> int:
    """The terminal chat on the demo data (made on first use); in demo.sqlite3 unless DATABASE_URL is set."""
    from bot.terminal import TerminalChat

    ctx.schema = Schema.MIGRATE  # the terminal chat is the demo: it makes its data, and the tables for them
    if ctx.use_demo_database():
        ctx.say("The demo's data are kept in demo.sqlite3; delete that file to start afresh.")
    return TerminalChat(ctx.engine, out=sys.stdout, locale=ctx.translator.locale).run()


def _read(path: str) -> str:
    return decode_csv(Path(path).read_bytes(), file=path)


def pool_import(ctx: Context, args: argparse.Namespace) -> int:
    """Import interpreters from CSV, all rows or none."""
    text = _read(args.file)
    with ctx.uow() as uow:
        district = ctx.district(uow)
        assert district.id is not None
        count = import_pool(
            uow.session, district_id=district.id, text=text, file=args.file, actor=ctx.actor(), now=ctx.now()
        )
        uow.commit()
    print(
        ctx.translator.render_plural("Imported {count} interpreter.", "Imported {count} interpreters.", count)
    )
    return 0


def pool_list(ctx: Context, args: argparse.Namespace) -> int:
    """List the pool: id, name, town, languages, modes."""
    t = ctx.translator
    with ctx.uow() as uow:
        district = ctx.district(uow)
        assert district.id is not None
        for i in list_pool(uow.session, district.id):
            assert i.id is not None
            languages = ", ".join(t.language(tag) for tag in languages_of(uow.session, i.id))
            modes = ", ".join(t.render("{mode}", {"mode": m}) for m in sorted(parse_modes(i.modes)))
            status = "" if i.active else t.gettext("inactive")
            print(f"{i.id:>4}  {i.name}  ({i.municipality})  {languages}  [{modes}] {status}".rstrip())
    return 0


def schools_import(ctx: Context, args: argparse.Namespace) -> int:
    """Import schools from CSV, all rows or none."""
    text = _read(args.file)
    with ctx.uow() as uow:
        district = ctx.district(uow)
        assert district.id is not None
        count = import_schools(
            uow.session, district_id=district.id, text=text, file=args.file, actor=ctx.actor(), now=ctx.now()
        )
        uow.commit()
    print(ctx.translator.render_plural("Imported {count} school.", "Imported {count} schools.", count))
    return 0


def schools_list(ctx: Context, args: argparse.Namespace) -> int:
    """List the schools: id, name, address."""
    with ctx.uow() as uow:
        district = ctx.district(uow)
        assert district.id is not None
        for s in list_schools(uow.session, district.id):
            print(f"{s.id:>4}  {s.name}  ({s.address})")
    return 0


def budget_set(ctx: Context, args: argparse.Namespace) -> int:
    """Create or change a year's budget."""
    cents = parse_money(args.amount)
    with ctx.uow() as uow:
        district = ctx.district(uow)
        assert district.id is not None
        ledger.set_total(
            uow.session,
            district_id=district.id,
            year=args.year,
            total_cents=cents,
            actor=ctx.actor(),
            now=ctx.now(),
        )
        uow.commit()
    ctx.say("The budget for {year} is now {total_cents}.", year=args.year, total_cents=cents)
    return 0


def budget_show(ctx: Context, args: argparse.Namespace) -> int:
    """Show total, reserved, charged and available money, as text or JSON in cents."""
    year = args.year or ledger.fiscal_year(ctx.now())
    with ctx.uow() as uow:
        district = ctx.district(uow)
        assert district.id is not None
        balance = ledger.balance_of(ledger.get_budget(uow.session, district.id, year))
    if args.json:
        print(
            json.dumps(
                {
                    "district": district.slug,
                    "year": balance.year,
                    "total_cents": balance.total_cents,
                    "reserved_cents": balance.reserved_cents,
                    "charged_cents": balance.charged_cents,
                    "available_cents": balance.available_cents,
                }
            )
        )
        return 0
    ctx.say("Budget {year} – {district}", year=year, district=district.name)
    ctx.say("Total:     {total_cents}", total_cents=balance.total_cents)
    ctx.say("Reserved:  {reserved_cents}", reserved_cents=balance.reserved_cents)
    ctx.say("Charged:   {charged_cents}", charged_cents=balance.charged_cents)
    ctx.say("Available: {available_cents}", available_cents=balance.available_cents)
    ctx.say("Used:      {percent} %", percent=ctx.translator.number(round(balance.used_percent, 1)))
    return 0


def policy_show(ctx: Context, args: argparse.Namespace) -> int:
    """Every rule with its value and what it means."""
    with ctx.uow() as uow:
        district = ctx.district(uow)
        assert district.id is not None
        values = stored_values(uow.session, district.id)
    width = max(len(rule.key) for rule in RULES)
    for rule in RULES:
        limits = bounds(rule)
        allowed = f" ({limits[0]}–{limits[1]})" if limits and rule.kind is not Kind.TEXT else ""
        print(
            f"{rule.key:<{width}} {values.get(rule.key, rule.default):<10} "
            f"{ctx.translator.gettext(rule.description)}{allowed}"
        )
    return 0


def policy_set(ctx: Context, args: argparse.Namespace) -> int:
    """Change one rule."""
    with ctx.uow() as uow:
        district = ctx.district(uow)
        assert district.id is not None
        old, new = set_rule(uow.session, district.id, args.key, args.value, actor=ctx.actor(), now=ctx.now())
        cut_off = stopped = 0
        if args.key == "platforms":
            cut_off = links_not_allowed(uow.session, district.id)
            stopped = stop_deliveries(uow.session, district.id, now=ctx.now())
        uow.commit()
    ctx.say("{key}: {old} → {new}", key=args.key, old=old, new=new)
    if cut_off:
        print(
            ctx.translator.render_plural(
                "{count} linked chat is on a platform the district no longer allows: it gets no more "
                "notifications, and its messages are answered with the platforms to use ({platforms}).",
                "{count} linked chats are on a platform the district no longer allows: they get no more "
                "notifications, and their messages are answered with the platforms to use ({platforms}).",
                cut_off,
                {"platforms": names(tuple(new.split(",")))},
            )
        )
    if stopped:
        print(
            ctx.translator.render_plural(
                "{count} message waiting for them is not sent.",
                "{count} messages waiting for them are not sent.",
                stopped,
            )
        )
    return 0


def invite_create(ctx: Context, args: argparse.Namespace) -> int:
    """Create a one-time invite code and print it with its Telegram link."""
    role = Role(args.role)
    with ctx.uow() as uow:
        district = ctx.district(uow)
        assert district.id is not None
        invite, code = create_invite(
            uow.session,
            district_id=district.id,
            role=role,
            for_id=args.for_id,
            actor=ctx.actor(),
            now=ctx.now(),
            name=args.name,
        )
        allowed = allowed_platforms(uow.session, district.id)
        uow.commit()
    _invite_line(ctx, ctx.translator.gettext(ROLE_LABELS[role]), code, allowed)
    ctx.say("Valid until {expires_at}; it works once.", expires_at=invite.expires_at)
    ctx.say("It works only on the platforms the district allows: {platforms}.", platforms=names(allowed))
    if "telegram" in allowed and not os.environ.get("TELEGRAM_BOT_USERNAME"):
        ctx.say("Set TELEGRAM_BOT_USERNAME to also get the Telegram link.")
    return 0


def report_billing(ctx: Context, args: argparse.Namespace) -> int:
    """The monthly billing for paying the interpreters, as CSV (to stdout or a file) or XLSX (to a file)."""
    from bot.billing_export import billing_csv, billing_xlsx
    from services.billing_report import monthly_billing, parse_month

    month = parse_month(args.month)
    with ctx.uow() as uow:
        district = ctx.district(uow)
        assert district.id is not None
        billing = monthly_billing(uow.session, district.id, month)
    if args.format == "csv" and not args.output:
        sys.stdout.write(billing_csv(ctx.translator, billing))
        return 0
    target = Path(args.output or f"billing-{month:%Y-%m}.{args.format}")
    if args.format == "csv":
        target.write_text(billing_csv(ctx.translator, billing), encoding="utf-8-sig")  # Excel reads the BOM
    else:
        target.write_bytes(billing_xlsx(ctx.translator, billing, month))
    ctx.say("Wrote {file}.", file=str(target))
    return 0


def report_evaluation(ctx: Context, args: argparse.Namespace) -> int:
    """The evaluation for a period as a PDF (to a file), CSV or JSON (to stdout or a file)."""
    from bot.evaluation_export import evaluation_csv, evaluation_pdf
    from services.evaluation import evaluate, make_period, parse_date

    period = make_period(parse_date(args.start), parse_date(args.end))
    with ctx.uow() as uow:
        district = ctx.district(uow)
        assert district.id is not None
        evaluation = evaluate(uow.session, district.id, period)
        name = district.name
    if args.format == "pdf":
        target = Path(args.output or f"evaluation-{period.start}-{period.end}.pdf")
        target.write_bytes(evaluation_pdf(ctx.translator, evaluation, name))
        ctx.say("Wrote {file}.", file=str(target))
        return 0
    if args.format == "json":
        text = json.dumps(evaluation.as_json(), indent=2, ensure_ascii=False) + "\n"
    else:
        text = evaluation_csv(ctx.translator, evaluation)
    if not args.output:
        sys.stdout.write(text)
        return 0
    Path(args.output).write_text(text, encoding="utf-8-sig" if args.format == "csv" else "utf-8")
    ctx.say("Wrote {file}.", file=args.output)
    return 0
