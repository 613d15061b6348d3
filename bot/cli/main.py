"""The admin command line: `python -m bot COMMAND ...` (also installed as `dolmetscherpool`).

Output and errors are in the locale of `BOT_LOCALE` (German by default); errors go to stderr
with exit status 2, and nothing is changed when a command fails.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeAlias

from bot.cli.argparse_texts import translated_argparse
from bot.i18n import Translator, env_locale
from services.errors import DomainError
from services.vocabulary import PRIVACY_LANGUAGES, Role

if TYPE_CHECKING:
    from bot.cli.context import Context

# The parser is built without the database layer, the services or the chat libraries: `--help` and
# a mistyped command answer at once, and a command imports only what it runs (tests/test_lazy_imports.py).
Handler: TypeAlias = "Callable[[Context, argparse.Namespace], int]"
# argparse's class is not subscriptable at run time: the aliases are strings for mypy.
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
AddCommand: TypeAlias = "Callable[[str, str, Handler, Subcommands], argparse.ArgumentParser]"


class _Lazy:
    """A command's handler named as `module.function` under bot/cli/, imported when the command runs."""

    def __init__(self, target: str) -> None:
        self.module, _, self.function = target.rpartition(".")

    def resolve(self) -> Handler:
        handler: Handler = getattr(importlib.import_module(f"bot.cli.{self.module}"), self.function)
        return handler

    def __call__(self, context: Context, args: argparse.Namespace) -> int:
        return self.resolve()(context, args)


def _whole_number(t: Translator) -> Callable[[str], int]:
    """argparse's `type` for ids and years: its error is our sentence, not "invalid int value"."""

    def parse(text: str) -> int:
        if not (text.isascii() and text.isdigit() and len(text) <= 9):
            raise argparse.ArgumentTypeError(t.render("“{value}” is not a whole number.", {"value": text}))
        return int(text)

    return parse


def _version_line() -> str:
    """The installed version and the schema it needs: what an operator quotes in a report."""
    from importlib.metadata import PackageNotFoundError, version

    from db.migrate import head_revision

    try:
        installed = version("dolmetscherpool")
    except PackageNotFoundError:  # run from a source tree that was never installed
        installed = "source"
    return f"dolmetscherpool {installed} (schema {head_revision()})"


class _Version(argparse.Action):
    """`--version`, worked out only when asked (reading the migrations takes a moment)."""

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        print(_version_line())
        parser.exit()


def build_parser(t: Translator) -> argparse.ArgumentParser:
    """The parser; build and use it inside `translated_argparse(t)` for argparse's own texts."""
    _ = t.gettext
    whole_number = _whole_number(t)
    parser = argparse.ArgumentParser(
        prog="python -m bot", description=_("Dolmetscherpool: book community interpreters for schools.")
    )
    parser.add_argument("--version", action=_Version, nargs=0, help=_("show the version and exit"))
    parser.add_argument(
        "--district", metavar="SLUG", help=_("the district to act on (default: the only one)")
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar=_("COMMAND"))

    def command(
        name: str,
        help_text: str,
        handler: Handler,
        parent: argparse._SubParsersAction[argparse.ArgumentParser] = sub,
    ) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        return p

    init = command("init", _("create or update the database and create a district"), _Lazy("commands.init"))
    init.add_argument("--name", help=_("the district's name, e.g. “Landkreis Heidekreis”"))
    init.add_argument("--slug", help=_("a short name for --district (default: made from the name)"))
    init.add_argument(
        "--demo", action="store_true", help=_("create the demo district with pool, schools and budget")
    )

    migrate = command(
        "migrate",
        _("bring the database to this version's schema (back it up first)"),
        _Lazy("commands.migrate"),
    )
    migrate.add_argument(
        "--check",
        action="store_true",
        help=_("change nothing; exit 1 if the database needs migrating"),
    )

    backup_command = command(
        "backup",
        _("write the database and the Matrix store into one archive (0600), while the bot runs"),
        _Lazy("backup.run_backup"),
    )
    backup_command.add_argument("--output", required=True, metavar=_("FILE"), help=_("the archive to write"))
    backup_command.add_argument(
        "--logical",
        action="store_true",
        help=_("rows as JSON instead of a database file or pg_dump: restores into SQLite or PostgreSQL"),
    )
    restore_command = command(
        "restore",
        _("restore a backup into an empty database (and the Matrix store where there is none)"),
        _Lazy("backup.run_restore"),
    )
    restore_command.add_argument("file", metavar=_("FILE"), help=_("the archive written by backup"))

    doctor_command = command(
        "doctor",
        _("check the set-up (database, Telegram, Matrix, fonts, budgets, rules, people) without changing it"),
        _Lazy("doctor.doctor"),
    )
    doctor_command.add_argument("--json", action="store_true", help=_("print the findings as JSON"))

    run = command(
        "run",
        _("run the bot on Telegram and/or Matrix as configured (with --demo and neither: the terminal chat)"),
        _Lazy("serve.run"),
    )
    run.add_argument(
        "--demo",
        action="store_true",
        help=_(
            "with no chat platform configured, open the terminal chat on demo data "
            "(in demo.sqlite3 unless DATABASE_URL is set)"
        ),
    )
    command(
        "chat",
        _("the terminal chat on demo data (/as NAME switches; demo.sqlite3 unless DATABASE_URL is set)"),
        _Lazy("commands.chat"),
    )
    command(
        "timers",
        _("run only the timers (offer expiry, reminders, closeout, digests), no chat"),
        _Lazy("serve.timers"),
    )

    district = sub.add_parser("district", help=_("the districts")).add_subparsers(
        dest="district_command", required=True
    )
    command(
        "list",
        _("list the districts: id, name, --district name, coordinators"),
        _Lazy("commands.district_list"),
        district,
    )

    pool = sub.add_parser("pool", help=_("the interpreter pool")).add_subparsers(
        dest="pool_command", required=True
    )
    pool_import = command(
        "import", _("import interpreters from a CSV file"), _Lazy("commands.pool_import"), pool
    )
    pool_import.add_argument(
        "file", metavar=_("FILE"), help="name,languages,municipality,latitude,longitude,modes,phone,email"
    )
    command("list", _("list the interpreters"), _Lazy("commands.pool_list"), pool)

    schools = sub.add_parser("schools", help=_("the schools")).add_subparsers(
        dest="schools_command", required=True
    )
    schools_import = command(
        "import", _("import schools from a CSV file"), _Lazy("commands.schools_import"), schools
    )
    schools_import.add_argument(
        "file", metavar=_("FILE"), help="name,address,municipality,latitude,longitude"
    )
    command("list", _("list the schools"), _Lazy("commands.schools_list"), schools)

    budget = sub.add_parser("budget", help=_("the budget")).add_subparsers(
        dest="budget_command", required=True
    )
    budget_set = command("set", _("set a year's budget"), _Lazy("commands.budget_set"), budget)
    budget_set.add_argument("--year", type=whole_number, required=True, help=_("the fiscal year"))
    budget_set.add_argument("--amount", required=True, help=_("the amount in euros, e.g. 5000.00"))
    budget_show = command("show", _("show a year's budget"), _Lazy("commands.budget_show"), budget)
    budget_show.add_argument("--year", type=whole_number, help=_("the fiscal year (default: this year)"))
    budget_show.add_argument("--json", action="store_true", help=_("print JSON with amounts in cents"))

    policy = sub.add_parser("policy", help=_("the district's rules")).add_subparsers(
        dest="policy_command", required=True
    )
    command("show", _("show every rule and its value"), _Lazy("commands.policy_show"), policy)
    policy_set = command(
        "set", _("change a rule, e.g. “policy set offer_timeout 2h”"), _Lazy("commands.policy_set"), policy
    )
    policy_set.add_argument("key", metavar=_("RULE"), help=_("the rule"))
    policy_set.add_argument(
        "value", metavar=_("VALUE"), help=_("durations like 90s, 15m, 4h, 2d; money like 24.00")
    )

    report = sub.add_parser("report", help=_("reports")).add_subparsers(dest="report_command", required=True)
    billing = command(
        "billing",
        _("the monthly billing for paying the interpreters"),
        _Lazy("commands.report_billing"),
        report,
    )
    billing.add_argument("--month", required=True, help=_("the month, e.g. 2026-05"))
    billing.add_argument("--format", choices=["csv", "xlsx"], default="csv", help=_("csv (default) or xlsx"))
    billing.add_argument("--output", help=_("the file to write (csv: default standard output)"))
    evaluation = command(
        "evaluation",
        _("the evaluation for a period: demand, fill rate, unmet languages, hours and cost"),
        _Lazy("commands.report_evaluation"),
        report,
    )
    evaluation.add_argument("--from", dest="start", required=True, help=_("the first day, e.g. 2026-01-01"))
    evaluation.add_argument("--to", dest="end", required=True, help=_("the last day, e.g. 2026-06-30"))
    evaluation.add_argument(
        "--format", choices=["pdf", "csv", "json"], default="pdf", help=_("pdf (default), csv or json")
    )
    evaluation.add_argument("--output", help=_("the file to write (csv and json: default standard output)"))

    operator_commands = sub.add_parser(
        "operator", help=_("the person technical alerts go to (failed timers, platform outages)")
    ).add_subparsers(dest="operator_command", required=True)
    operator_set = command(
        "set",
        _("make a member the district's operator contact"),
        _Lazy("operator.operator_set"),
        operator_commands,
    )
    operator_set.add_argument(
        "--member", type=whole_number, required=True, help=_("the member's id (see “operator show”)")
    )
    command(
        "show",
        _("show the operator contact and the coordinators who could be one"),
        _Lazy("operator.operator_show"),
        operator_commands,
    )
    command(
        "clear",
        _("remove the operator contact: alerts go to the coordinators"),
        _Lazy("operator.operator_clear"),
        operator_commands,
    )

    privacy_commands = sub.add_parser(
        "privacy", help=_("the privacy notice people read at /start and /privacy (Art. 13 DSGVO)")
    ).add_subparsers(dest="privacy_command", required=True)
    privacy_set = command(
        "set",
        _("set the county's notice from a UTF-8 text file"),
        _Lazy("privacy.privacy_set"),
        privacy_commands,
    )
    privacy_set.add_argument("file", metavar=_("FILE"), help=_("the notice, e.g. the template filled in"))
    privacy_show = command(
        "show", _("show the notice as the chat shows it"), _Lazy("privacy.privacy_show"), privacy_commands
    )
    privacy_show.add_argument(
        "--raw", action="store_true", help=_("as stored, with its {…} fields and [[…]] placeholders, to edit")
    )
    privacy_reset = command(
        "reset",
        _("go back to the template that comes with the bot"),
        _Lazy("privacy.privacy_reset"),
        privacy_commands,
    )
    for privacy_command in (privacy_set, privacy_show, privacy_reset):
        privacy_command.add_argument(
            "--language",
            choices=list(PRIVACY_LANGUAGES),
            default="de",
            help=_("the notice's language (default: de)"),
        )
        privacy_command.add_argument(  # also after the command; SUPPRESS keeps one given before it
            "--district", metavar="SLUG", default=argparse.SUPPRESS, help=_("the district to act on")
        )

    person_command(t, sub, command, whole_number)

    retention_commands = sub.add_parser(
        "retention", help=_("what is kept for how long (policy retention_free_text, retention_accounts)")
    ).add_subparsers(dest="retention_command", required=True)
    retention_run = command(
        "run",
        _("purge now what the nightly run (03:15) would, and print the counts"),
        _Lazy("retention.retention_run"),
        retention_commands,
    )
    retention_run.add_argument(  # also after the command; SUPPRESS keeps one given before it
        "--district", metavar="SLUG", default=argparse.SUPPRESS, help=_("the district to act on")
    )

    invite = sub.add_parser("invite", help=_("invite codes")).add_subparsers(
        dest="invite_command", required=True
    )
    invite_create = command(
        "create", _("create a one-time invite code"), _Lazy("commands.invite_create"), invite
    )
    invite_create.add_argument(
        "--role", required=True, choices=[r.value for r in Role], help=_("the invitee's role")
    )
    invite_create.add_argument(
        "--for",
        dest="for_id",
        type=whole_number,
        required=True,
        help=_("the school's or interpreter's id; for a coordinator the district's id"),
    )
    invite_create.add_argument("--name", default="", help=_("the invitee's name (optional)"))
    return parser


def person_command(
    t: Translator, sub: Subcommands, command: AddCommand, whole_number: Callable[[str], int]
) -> Subcommands:
    """`person ...`: what concerns one person (their access, their data); returns the group to add to."""
    _ = t.gettext
    group = sub.add_parser("person", help=_("one person: their access and their data")).add_subparsers(
        dest="person_command", required=True
    )
    member_help = _("the member's id")
    deactivate = command(
        "deactivate",
        _("end a member's access at once; they are told once (an interpreter: out of the pool)"),
        _Lazy("person.person_deactivate"),
        group,
    )
    deactivate.add_argument("--member", type=whole_number, required=True, help=member_help)
    deactivate.add_argument(
        "--hand-back",
        action="store_true",
        help=_(
            "an interpreter's sessions ahead go back to matching (without it, they refuse the deactivation)"
        ),
    )
    activate = command(
        "activate", _("give a deactivated member their access back"), _Lazy("person.person_activate"), group
    )
    activate.add_argument("--member", type=whole_number, required=True, help=member_help)
    command(
        "list",
        _("list the members: id, role, name, linked chats, deactivated"),
        _Lazy("person.person_list"),
        group,
    )
    export = command(
        "export",
        _("everything stored about a member, as JSON (Art. 15 GDPR)"),
        _Lazy("person_data.person_export"),
        group,
    )
    export.add_argument("--member", type=whole_number, required=True, help=member_help)
    export.add_argument(
        "--output",
        metavar="FILE",
        default=None,
        help=_("write to this file (mode 0600) instead of the screen"),
    )
    erase = command(
        "erase",
        _("erase a member's data, keeping what budget law requires (Art. 17 GDPR); asks first"),
        _Lazy("person_data.person_erase"),
        group,
    )
    erase.add_argument("--member", type=whole_number, required=True, help=member_help)
    erase.add_argument("--yes", action="store_true", help=_("do not ask for confirmation"))
    erase.add_argument(
        "--hand-back",
        action="store_true",
        help=_(
            "an interpreter's sessions ahead go back to matching (without it, they refuse the deactivation)"
        ),
    )
    return group


def main(argv: Sequence[str] | None = None) -> int:
    t = Translator(env_locale())
    with translated_argparse(t):
        args = build_parser(t).parse_args(argv)
    from bot.cli.context import Context

    context = Context(translator=t, district_slug=args.district)
    try:
        handler: Handler = args.handler
        return handler(context, args)
    except DomainError as exc:
        print(t.error(exc), file=sys.stderr)
        return 2
    except OSError as exc:
        print(
            t.render("Cannot read “{file}”: {reason}", {"file": exc.filename, "reason": exc.strerror}),
            file=sys.stderr,
        )
        return 2
    finally:
        context.close()


if __name__ == "__main__":
    raise SystemExit(main())
