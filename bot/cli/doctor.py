"""`python -m bot doctor`: checks the set-up and says in sentences what is wrong (exit 0, or 1).

Doctor only reads. It never migrates or creates a table or a file (a SQLite file that is missing
stays missing), and it never logs in to Matrix with the password, since every password login makes
a new device; it asks `whoami` with the access token the bot already has. Each check is a small
function returning findings (a status, a message id, its parameters); printing them is the last,
thin step. A problem (✗) stops the bot from doing its job and makes the exit status 1; a warning
(!) is worth knowing but the bot works.
"""

import argparse
import asyncio
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import make_url
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from bot.cli.context import Context
from bot.i18n import Translator
from db.engine import database_url, make_engine
from db.migrate import current_revision, head_revision, is_known_revision
from db.uow import UnitOfWork
from services.clock import BERLIN
from services.districts import all_districts, coordinator_counts
from services.errors import DomainError
from services.ledger import find_budget, fiscal_year
from services.policy import clashing_rules, policy_from, stored_values
from services.setup_check import (
    interpreters_without_chat,
    policy_concerns,
    schools_without_contact,
    stored_rule_problems,
)
from services.text import N_

NETWORK_TIMEOUT = 10.0  # seconds for each question to Telegram or the homeserver


class Status(StrEnum):
    OK = "ok"
    WARNING = "warning"
    PROBLEM = "problem"
    SKIPPED = "skipped"  # not configured: nothing to check


MARKS = {Status.OK: "✓", Status.WARNING: "!", Status.PROBLEM: "✗", Status.SKIPPED: "–"}


@dataclass(frozen=True)
class Finding:
    status: Status
    message: str  # a message id
    params: Mapping[str, object] = field(default_factory=dict)


def ok(message: str, **params: object) -> Finding:
    return Finding(Status.OK, message, params)


def warning(message: str, **params: object) -> Finding:
    return Finding(Status.WARNING, message, params)


def problem(message: str, **params: object) -> Finding:
    return Finding(Status.PROBLEM, message, params)


def skipped(message: str, **params: object) -> Finding:
    return Finding(Status.SKIPPED, message, params)


def from_error(status: Status, exc: DomainError) -> Finding:
    return Finding(status, exc.message, exc.params)


@dataclass(frozen=True)
class Section:
    title: str  # a message id
    findings: list[Finding]
    title_params: Mapping[str, object] = field(default_factory=dict)


# --- the database -------------------------------------------------------------------------------


def _redact(text: str, *secrets: str | None) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    lines = str(orig or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def open_database(url: str) -> tuple[list[Finding], Engine | None]:
    """Whether the database answers; its engine if so (the caller disposes of it)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return [
            problem(N_("DATABASE_URL is not a database URL (like postgresql+psycopg://user:pw@host/db)."))
        ], None
    shown = parsed.render_as_string(hide_password=True)
    database = parsed.database or ""
    is_file = parsed.get_backend_name() == "sqlite" and database not in ("", ":memory:")
    if is_file and not database.startswith("file:") and not Path(database).exists():
        return [
            problem(
                N_(
                    "The database file {file} does not exist. Create it with “python -m bot init --name …”, "
                    "or set DATABASE_URL to the right file."
                ),
                file=str(Path(database).resolve()),
            )
        ], None
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        # libpq waits for a host that drops packets as long as the system lets it; doctor should answer.
        parsed = parsed.update_query_dict({"connect_timeout": str(int(NETWORK_TIMEOUT))})
    engine = make_engine(parsed.render_as_string(hide_password=False))
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
    except SQLAlchemyError as exc:
        engine.dispose()
        reason = _redact(_first_line(exc), parsed.password if isinstance(parsed.password, str) else None)
        return [problem(N_("The database {url} cannot be reached: {reason}"), url=shown, reason=reason)], None
    return [ok(N_("The database answers: {url}"), url=shown)], engine


def schema_finding(current: str | None, head: str, *, known: bool, auto_migrate: bool) -> Finding:
    """What the database's revision means for `run`."""
    if current == head:
        return ok(N_("The database is up to date (revision {head})."), head=head)
    if current is None:
        return problem(
            N_(
                "The database was never migrated: it has none of the bot's tables. Run “python -m bot "
                "migrate” "
                "(or “python -m bot init --name …” for a new district)."
            )
        )
    if not known:
        return problem(
            N_(
                "The database is at revision {current}, newer than this version of the bot knows ({head}). "
                "Install the newer version."
            ),
            current=current,
            head=head,
        )
    if auto_migrate:
        return warning(
            N_(
                "The database is at revision {current}, the code needs {head}; AUTO_MIGRATE=1 migrates it "
                "when "
                "the bot starts. Back it up first."
            ),
            current=current,
            head=head,
        )
    return problem(
        N_(
            "The database is at revision {current}, the code needs {head}: back it up, then run "
            "“python -m bot migrate”."
        ),
        current=current,
        head=head,
    )


def check_database(url: str, env: Mapping[str, str]) -> tuple[Section, Engine | None]:
    """The database answers and is migrated; its engine when the district checks can read it."""
    findings, engine = open_database(url)
    if engine is None:
        return Section(N_("Database"), findings), None
    try:
        current = current_revision(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        findings.append(problem(N_("The database cannot be read: {reason}"), reason=_first_line(exc)))
        return Section(N_("Database"), findings), None
    head = head_revision()
    auto = env.get("AUTO_MIGRATE", "").strip().lower() in ("1", "true", "yes")
    findings.append(
        schema_finding(current, head, known=current is None or is_known_revision(current), auto_migrate=auto)
    )
    if current != head:
        engine.dispose()
        return Section(N_("Database"), findings), None
    return Section(N_("Database"), findings), engine


# --- Telegram -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TelegramFacts:
    """What getMe and getWebhookInfo said."""

    username: str
    webhook_url: str
    pending: int
    last_error: str | None = None
    last_error_at: datetime | None = None


async def ask_telegram(token: str, base_url: str) -> TelegramFacts:
    """getMe and getWebhookInfo, with TELEGRAM_BASE_URL as the bot's process uses it."""
    from telegram import Bot
    from telegram.request import HTTPXRequest

    request = HTTPXRequest(connect_timeout=NETWORK_TIMEOUT, read_timeout=NETWORK_TIMEOUT)
    bot = Bot(token, base_url=base_url, base_file_url=base_url.replace("/bot", "/file/bot"), request=request)
    async with bot:  # initialize() asks getMe
        me = bot.bot
        info = await bot.get_webhook_info()
    return TelegramFacts(
        username=me.username or "",
        webhook_url=info.url or "",
        pending=info.pending_update_count,
        last_error=info.last_error_message,
        last_error_at=info.last_error_date,
    )


def telegram_answer(env: Mapping[str, str], facts: TelegramFacts) -> list[Finding]:
    """The token worked: the username, and the webhook state against the configuration."""
    findings = [ok(N_("Telegram accepts the token: the bot is @{username}."), username=facts.username)]
    configured = env.get("TELEGRAM_BOT_USERNAME", "").strip().lstrip("@")
    if not configured:
        findings.append(
            warning(
                N_(
                    "TELEGRAM_BOT_USERNAME is unset, so invite codes come without a t.me link. "
                    "Set TELEGRAM_BOT_USERNAME={username}."
                ),
                username=facts.username,
            )
        )
    elif configured.casefold() != facts.username.casefold():
        findings.append(
            problem(
                N_(
                    "TELEGRAM_BOT_USERNAME is {configured}, but the token belongs to @{username}: invite "
                    "links "
                    "would lead to another bot. Set TELEGRAM_BOT_USERNAME={username}."
                ),
                configured=configured,
                username=facts.username,
            )
        )
    findings += webhook_findings(env.get("TELEGRAM_WEBHOOK_URL", "").strip(), facts)
    return findings


def webhook_findings(configured: str, facts: TelegramFacts) -> list[Finding]:
    """The webhook Telegram has against TELEGRAM_WEBHOOK_URL, what waits, and Telegram's last error."""
    current = facts.webhook_url
    findings: list[Finding] = []
    if not configured and not current:
        findings.append(ok(N_("No webhook is set: the bot fetches updates by long polling.")))
    elif not configured:
        findings.append(
            warning(
                N_(
                    "Telegram has a webhook set ({url}), but TELEGRAM_WEBHOOK_URL is unset: “run” will "
                    "delete "
                    "it and poll (updates waiting are kept)."
                ),
                url=current,
            )
        )
    elif not current:
        findings.append(
            ok(N_("No webhook is set yet: “run” sets it to {url} when it starts."), url=configured)
        )
    elif current != configured:
        findings.append(
            warning(
                N_(
                    "Telegram's webhook goes to {current}, but TELEGRAM_WEBHOOK_URL is {configured}: "
                    "“run” will "
                    "set it to {configured}."
                ),
                current=current,
                configured=configured,
            )
        )
    else:
        findings.append(ok(N_("The webhook is set to {url}."), url=current))
    if facts.pending:
        findings.append(
            warning(
                N_("Updates waiting at Telegram: {count}. The bot takes them once it runs."),
                count=facts.pending,
            )
        )
    if current and facts.last_error:
        findings.append(
            warning(
                N_("Telegram's last error delivering to the webhook (at {error_at}): {error}"),
                error_at=facts.last_error_at,
                error=facts.last_error,
            )
        )
    return findings


def telegram_failure(exc: Exception, token: str, base_url: str) -> Finding:
    """Why getMe failed, in a sentence that never holds the token."""
    from telegram.error import InvalidToken, NetworkError, TelegramError

    if isinstance(exc, InvalidToken):
        return problem(
            N_(
                "Telegram refused the token (TELEGRAM_TOKEN). Ask @BotFather for the bot's token (/token) "
                "and set it again."
            )
        )
    reason = _redact(str(exc) or type(exc).__name__, token)
    if isinstance(exc, NetworkError):
        return problem(
            N_("Telegram cannot be reached at {server}: {reason}. Check the network and TELEGRAM_BASE_URL."),
            server=base_url,
            reason=reason,
        )
    if isinstance(exc, TelegramError):
        return problem(N_("Telegram answered with an error: {reason}"), reason=reason)
    return problem(
        N_("Telegram cannot be reached at {server}: {reason}. Check the network and TELEGRAM_BASE_URL."),
        server=base_url,
        reason=reason,
    )


def check_telegram(env: Mapping[str, str], ask: Callable[[str, str], Any] = ask_telegram) -> Section:
    """The token (getMe), the username for invite links, and the webhook state."""
    from bot.telegram.app import OFFICIAL_API
    from bot.transports import telegram_webhook

    token = env.get("TELEGRAM_TOKEN", "").strip()
    if not token:
        return Section("Telegram", [skipped(N_("Telegram is not configured (TELEGRAM_TOKEN is unset)."))])
    findings: list[Finding] = []
    try:
        telegram_webhook(env)
    except DomainError as exc:
        findings.append(from_error(Status.PROBLEM, exc))
    base_url = env.get("TELEGRAM_BASE_URL", "").strip().rstrip("/") or OFFICIAL_API
    try:
        facts = asyncio.run(ask(token, base_url))
    except Exception as exc:  # every failure of the question becomes a sentence
        return Section("Telegram", [telegram_failure(exc, token, base_url), *findings])
    return Section("Telegram", telegram_answer(env, facts) + findings)


# --- Matrix -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Whoami:
    """The homeserver's answer to `whoami`: the account and device, or its error code."""

    user_id: str = ""
    device_id: str = ""
    error: str = ""


async def ask_homeserver(homeserver: str, token: str | None) -> Whoami | None:
    """GET /versions (raises when the homeserver does not answer), then `whoami` with `token` if any."""
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=NETWORK_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(f"{homeserver}/_matrix/client/versions") as response:
            body = await response.json(content_type=None)
            if response.status != 200 or not isinstance(body, dict) or "versions" not in body:
                raise ValueError(f"HTTP {response.status}")
        if token is None:
            return None
        headers = {"Authorization": f"Bearer {token}"}
        async with session.get(f"{homeserver}/_matrix/client/v3/account/whoami", headers=headers) as response:
            who = await response.json(content_type=None)
    if not isinstance(who, dict):
        return Whoami(error=f"HTTP {response.status}")
    if response.status == 200:
        return Whoami(user_id=str(who.get("user_id", "")), device_id=str(who.get("device_id") or ""))
    return Whoami(error=str(who.get("errcode") or f"HTTP {response.status}"))


def login_findings(
    user_id: str, who: Whoami | None, *, has_password: bool, token_from_store: bool
) -> list[Finding]:
    """What `whoami` (or its absence: no token yet) means for the bot's next start."""
    if who is None:
        if not has_password:
            return [problem(N_("Set MATRIX_PASSWORD or MATRIX_ACCESS_TOKEN together with MATRIX_USER_ID."))]
        return [
            ok(
                N_(
                    "The bot has not logged in yet: “run” logs in with MATRIX_PASSWORD on its first start "
                    "(doctor does not, as each password login makes a new device)."
                )
            )
        ]
    if who.error:
        if has_password and token_from_store:
            return [
                warning(
                    N_(
                        "The homeserver no longer knows the stored access token ({reason}): “run” logs in "
                        "again "
                        "with MATRIX_PASSWORD, as the same device."
                    ),
                    reason=who.error,
                )
            ]
        return [
            problem(
                N_(
                    "The homeserver refused the bot's access token ({reason}). Set a valid "
                    "MATRIX_ACCESS_TOKEN, or MATRIX_PASSWORD."
                ),
                reason=who.error,
            )
        ]
    if who.user_id != user_id:
        return [
            problem(
                N_("The access token belongs to {who}, not to MATRIX_USER_ID ({user_id})."),
                who=who.user_id,
                user_id=user_id,
            )
        ]
    return [
        ok(
            N_("The homeserver knows the bot's login: {user_id}, device {device}."),
            user_id=user_id,
            device=who.device_id or "?",
        )
    ]


def store_findings(store: Path, key: str, *, has_device: bool) -> list[Finding]:
    """The store directory: there or creatable, writable, private, and keyed."""
    from bot.matrix.session import MIN_STORE_KEY

    findings: list[Finding] = []
    if not store.exists():
        parent = store.parent
        while not parent.exists():
            parent = parent.parent
        if not os.access(parent, os.W_OK | os.X_OK):
            findings.append(
                problem(
                    N_("The Matrix store {path} does not exist, and {parent} is not writable for this user."),
                    path=str(store),
                    parent=str(parent),
                )
            )
        else:
            findings.append(
                ok(N_("The Matrix store {path} does not exist yet; “run” creates it."), path=str(store))
            )
    elif not store.is_dir():
        findings.append(problem(N_("The Matrix store {path} is not a directory."), path=str(store)))
    elif not os.access(store, os.W_OK | os.X_OK) or store.stat().st_uid != os.geteuid():
        findings.append(
            problem(
                N_("The Matrix store {path} is not writable for this user (or belongs to another one)."),
                path=str(store),
            )
        )
    else:
        exposed = [p for p in (store, *store.rglob("*")) if not p.is_symlink() and p.stat().st_mode & 0o077]
        if exposed:
            findings.append(
                warning(
                    N_(
                        "The Matrix store {path} is open to other users ({example} has mode {permissions}); "
                        "“run” makes it private on start, or run “chmod -R go= {path}”."
                    ),
                    path=str(store),
                    example=exposed[0].name,
                    permissions=oct(exposed[0].stat().st_mode & 0o777)[2:].rjust(4, "0"),
                )
            )
        else:
            findings.append(ok(N_("The Matrix store {path} is writable and private."), path=str(store)))
    if key and len(key) < MIN_STORE_KEY:
        findings.append(problem(N_("MATRIX_STORE_KEY must be at least 16 characters long.")))
    elif key:
        findings.append(ok(N_("The store's keys are encrypted with MATRIX_STORE_KEY.")))
    elif has_device:
        findings.append(
            warning(
                N_(
                    "The store is encrypted with nio's default key, as MATRIX_STORE_KEY is unset. For a "
                    "key of "
                    "its own: set MATRIX_STORE_KEY and start with an empty store (a new device)."
                )
            )
        )
    else:
        findings.append(
            problem(
                N_(
                    "Set MATRIX_STORE_KEY: the bot encrypts its Matrix keys in MATRIX_STORE_PATH with it. "
                    "Choose a random secret of at least 16 characters and keep it apart from the store's "
                    "backup."
                )
            )
        )
    return findings


def check_matrix(env: Mapping[str, str], ask: Callable[[str, str | None], Any] = ask_homeserver) -> Section:
    """The homeserver answers, the login works (whoami), and the store is writable, private and keyed."""
    from bot.matrix.session import BotState, load_state

    homeserver = env.get("MATRIX_HOMESERVER", "").strip().rstrip("/")
    user_id = env.get("MATRIX_USER_ID", "").strip()
    if not homeserver or not user_id:
        return Section(
            "Matrix",
            [skipped(N_("Matrix is not configured (MATRIX_HOMESERVER and MATRIX_USER_ID are unset)."))],
        )
    store = Path(env.get("MATRIX_STORE_PATH", "").strip() or "matrix-store").resolve()
    findings: list[Finding] = []
    state = BotState()
    try:
        if store.is_dir() and os.access(store, os.R_OK | os.X_OK):
            state = load_state(store)
    except (OSError, ValueError, TypeError):
        findings.append(problem(N_("The Matrix store's bot-state.json cannot be read.")))
    env_token = env.get("MATRIX_ACCESS_TOKEN") or None
    token = env_token or state.access_token or None
    try:
        who = asyncio.run(ask(homeserver, token))
    except Exception as exc:  # the homeserver is away or is no homeserver: say so, whatever the error
        reason = _redact(str(exc) or type(exc).__name__, token)
        findings.insert(
            0,
            problem(
                N_("The Matrix homeserver {url} does not answer: {reason}"), url=homeserver, reason=reason
            ),
        )
    else:
        findings.insert(0, ok(N_("The Matrix homeserver {url} answers."), url=homeserver))
        findings += login_findings(
            user_id,
            who,
            has_password=bool(env.get("MATRIX_PASSWORD")),
            token_from_store=env_token is None,
        )
    findings += store_findings(store, env.get("MATRIX_STORE_KEY", ""), has_device=bool(state.device_id))
    return Section("Matrix", findings)


def check_platforms(env: Mapping[str, str]) -> list[Finding]:
    from bot.transports import platforms_configured

    if platforms_configured(env):
        return []
    return [
        problem(
            N_(
                "No chat platform is configured: set TELEGRAM_TOKEN, or MATRIX_HOMESERVER and MATRIX_USER_ID "
                "(see the README)."
            )
        )
    ]


# --- this machine -------------------------------------------------------------------------------


def check_timezone(load: Callable[[str], object] = ZoneInfo.no_cache) -> Finding:
    """Europe/Berlin loads (from the system's zone files or the tzdata package)."""
    try:
        load("Europe/Berlin")
    except Exception:  # ZoneInfoNotFoundError, or a broken file: both mean no time zone
        return problem(
            N_(
                "The time zone Europe/Berlin cannot be loaded: install the time zone data "
                "(“pip install tzdata”, or the system's tzdata package)."
            )
        )
    return ok(N_("The time zone Europe/Berlin loads."))


# Characters the PDF and the charts set, beyond ASCII.
PDF_TEXT = "Fördermittel für Schüler: 5.000,00 € – „Übersetzung“, Straße, März"


def check_fonts() -> Finding:
    """matplotlib's font for the charts and the evaluation PDF is a TrueType file with our characters.

    The PDF embeds it as TrueType (Type 42, bot/drawing.py); without one matplotlib cannot draw.
    """
    import matplotlib
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    family = list(matplotlib.rcParams["font.family"])
    paths = []
    for weight in ("normal", "bold"):
        try:
            found = str(
                font_manager.findfont(
                    font_manager.FontProperties(family=family, weight=weight), fallback_to_default=False
                )
            )
        except ValueError:
            found = ""
        if not found or not Path(found).is_file() or Path(found).suffix.lower() != ".ttf":
            return problem(
                N_(
                    "matplotlib finds no TrueType font for “{family}” to draw the charts and the "
                    "evaluation PDF. "
                    "Install the DejaVu fonts (e.g. the package fonts-dejavu-core)."
                ),
                family=", ".join(family),
            )
        missing = sorted({c for c in PDF_TEXT if c != " " and ord(c) not in FT2Font(found).get_charmap()})
        if missing:
            return problem(
                N_(
                    "The font {font} lacks characters the PDF needs ({characters}). Install the DejaVu fonts."
                ),
                font=found,
                characters=" ".join(missing),
            )
        paths.append(Path(found).name)
    return ok(N_("The charts and the PDF have their fonts: {fonts}."), fonts=", ".join(paths))


# --- the districts ------------------------------------------------------------------------------


def invite_command(role: str, for_id: int, slug: str | None) -> str:
    district = f"--district {slug} " if slug else ""
    return f"python -m bot {district}invite create --role {role} --for {for_id}"


def check_districts(engine: Engine, now: datetime, slug: str | None = None) -> list[Section]:
    """Per district: this year's budget, its rules, a coordinator, and who cannot be reached."""
    with UnitOfWork(engine) as uow:
        session = uow.session
        districts = all_districts(session)
        if not districts:
            return [
                Section(
                    N_("Districts"),
                    [
                        problem(
                            N_(
                                "The database holds no district yet. Create one: python -m bot init "
                                "--name “Landkreis …”"
                            )
                        )
                    ],
                )
            ]
        several = len(districts) > 1
        coordinators = coordinator_counts(session)
        sections = []
        for district in districts:
            if slug and district.slug != slug:
                continue
            assert district.id is not None
            prefix = district.slug if several else None
            findings = budget_findings(session, district.id, now, prefix)
            findings += policy_findings(stored_values(session, district.id), prefix)
            if not coordinators.get(district.id):
                findings.append(
                    problem(
                        N_(
                            "The district has no coordinator: nobody approves requests or hears of problems. "
                            "Invite one: {command}"
                        ),
                        command=invite_command("coordinator", district.id, prefix),
                    )
                )
            findings += people_findings(session, district.id, prefix)
            sections.append(
                Section(
                    N_("{name} (--district {slug})"),
                    findings,
                    {"name": district.name, "slug": district.slug},
                )
            )
        if slug and not sections:
            sections.append(
                Section(N_("Districts"), [problem(N_("There is no district “{value}”."), value=slug)])
            )
        return sections


def budget_findings(session: Any, district_id: int, now: datetime, slug: str | None) -> list[Finding]:
    """This year's budget (the Berlin year), and next year's in December (requests for January need it)."""
    from services.ledger import balance_of

    year = fiscal_year(now)
    district = f"--district {slug} " if slug else ""
    findings = []
    budget = find_budget(session, district_id, year)
    if budget is None:
        findings.append(
            problem(
                N_(
                    "There is no budget for {year}: every request waits for a coordinator's approval. Set "
                    "it: "
                    "python -m bot {district}budget set --year {year} --amount …"
                ),
                year=year,
                district=district,
            )
        )
    else:
        balance = balance_of(budget)
        findings.append(
            ok(
                N_("The budget for {year} is set: {total_cents}, of which {available_cents} available."),
                year=year,
                total_cents=balance.total_cents,
                available_cents=balance.total_cents - balance.reserved_cents - balance.charged_cents,
            )
        )
    if now.astimezone(BERLIN).month == 12 and find_budget(session, district_id, year + 1) is None:
        findings.append(
            warning(
                N_(
                    "There is no budget for {year} yet; requests for January wait for approval until it "
                    "is set: "
                    "python -m bot {district}budget set --year {year} --amount …"
                ),
                year=year + 1,
                district=district,
            )
        )
    return findings


def policy_findings(values: Mapping[str, str], slug: str | None) -> list[Finding]:
    """Stored rules out of their range or unreadable, rules that contradict each other, and odd pairs."""
    district = f"--district {slug} " if slug else ""
    problems = stored_rule_problems(values)
    findings = [
        problem(
            N_(
                "The rule {key} holds “{value}”, which “policy set” would refuse. Set it again: python -m "
                "bot {district}policy set {key} …"
            ),
            key=p.key,
            value=p.value,
            district=district,
        )
        for p in problems
    ]
    if problems:
        return findings  # the policy may not even load: its combinations are judged once it does
    policy = policy_from(values)
    findings += [from_error(Status.PROBLEM, clash) for clash in clashing_rules(policy)]
    findings += [warning(c.message, **c.params) for c in policy_concerns(policy)]
    if not findings:
        findings.append(ok(N_("The rules are within their ranges and fit together.")))
    return findings


def people_findings(session: Any, district_id: int, slug: str | None) -> list[Finding]:
    """Interpreters and schools without a linked chat, each with the invite that fixes it."""
    findings = []
    interpreters = interpreters_without_chat(session, district_id)
    for interpreter in interpreters:
        assert interpreter.id is not None
        findings.append(
            warning(
                N_(
                    "{name} (interpreter {id}) has no linked chat, so offers to them reach nobody. "
                    "Invite them: {command}"
                ),
                name=interpreter.name,
                id=interpreter.id,
                command=invite_command("interpreter", interpreter.id, slug),
            )
        )
    for school in schools_without_contact(session, district_id):
        assert school.id is not None
        findings.append(
            warning(
                N_(
                    "{name} (school {id}) has no contact with a linked chat, so it cannot request "
                    "interpreters "
                    "in the chat. Invite one: {command}"
                ),
                name=school.name,
                id=school.id,
                command=invite_command("school", school.id, slug),
            )
        )
    from services.pool import list_pool

    active = [i for i in list_pool(session, district_id) if i.active]
    if active and len(interpreters) == len(active):
        findings.append(
            problem(N_("No interpreter of the pool has a linked chat: every offer reaches nobody."))
        )
    elif not interpreters and active:
        findings.append(ok(N_("Every interpreter has a linked chat ({count})."), count=len(active)))
    elif not active:
        findings.append(
            problem(N_("The pool has no interpreters yet. Import them: python -m bot pool import pool.csv"))
        )
    return findings


# --- all of it ----------------------------------------------------------------------------------


def run_checks(env: Mapping[str, str], now: datetime, slug: str | None = None) -> list[Section]:
    """Every check, in the order an operator fixes things."""
    database, engine = check_database(env.get("DATABASE_URL") or database_url(), env)
    sections = [database]
    platforms = check_platforms(env)
    if platforms:
        sections.append(Section(N_("Chat platforms"), platforms))
    else:
        sections += [check_telegram(env), check_matrix(env)]
    sections.append(Section(N_("This machine"), [check_timezone(), check_fonts()]))
    if engine is not None:
        try:
            sections += check_districts(engine, now, slug)
        finally:
            engine.dispose()
    return sections


def summary(sections: Sequence[Section], t: Translator) -> str:
    statuses = [f.status for s in sections for f in s.findings]
    problems, warnings = statuses.count(Status.PROBLEM), statuses.count(Status.WARNING)
    if problems:
        return t.render_plural(
            "Not ready: one problem stops the bot (✗).",
            "Not ready: {count} problems stop the bot (✗).",
            problems,
        )
    if warnings:
        return t.render_plural("Ready, with one warning (!).", "Ready, with {count} warnings (!).", warnings)
    return t.gettext("Ready: every check passed.")


def render(sections: Sequence[Section], t: Translator) -> list[str]:
    """The report's lines: a heading per topic, a line per finding, and the summary."""
    lines = []
    for section in sections:
        lines.append(t.render(section.title, section.title_params))
        lines += [f"  {MARKS[f.status]} {t.render(f.message, f.params)}" for f in section.findings]
    lines.append(summary(sections, t))
    return lines


def as_json(sections: Sequence[Section], t: Translator) -> str:
    problems = any(f.status is Status.PROBLEM for s in sections for f in s.findings)
    body = {
        "ready": not problems,
        "sections": [
            {
                "title": t.render(s.title, s.title_params),
                "checks": [
                    {"status": f.status.value, "text": t.render(f.message, f.params)} for f in s.findings
                ],
            }
            for s in sections
        ],
    }
    return json.dumps(body, ensure_ascii=False, indent=2)


def clock() -> datetime:
    """Now (the tests set another moment here: the budget's year is the Berlin year)."""
    return datetime.now(UTC)


def doctor(ctx: Context, args: argparse.Namespace) -> int:
    """Check the set-up and say what is wrong; exit 1 when something stops the bot."""
    sections = run_checks(os.environ, clock(), ctx.district_slug)
    if args.json:
        print(as_json(sections, ctx.translator))
    else:
        print("\n".join(render(sections, ctx.translator)))
    return 1 if any(f.status is Status.PROBLEM for s in sections for f in s.findings) else 0
