"""The coordinator's side: budget (with chart), requests that need a decision, the pool, corrections,
and the reports (billing, evaluation) as files."""

from datetime import timedelta

from bot.conversation.answers import Answer, parse_minutes
from bot.conversation.deactivation import DEACTIVATE_FLOW, deactivate_page, pick, show_deactivate
from bot.conversation.figures import expenses_step, km_step
from bot.conversation.turn import Feature, Flow, Step, Turn
from bot.conversation.views import (
    Section,
    budget_command,
    pace_text,
    page_number,
    request_line,
    show_page,
    status_line,
)
from bot.i18n import echo
from db.models import District
from services import closeout, ledger, requests
from services.billing_report import monthly_billing, parse_month
from services.budget_picture import budget_picture
from services.clock import BERLIN
from services.errors import BudgetExceeded, InvalidInput
from services.evaluation import evaluate, period_from_text
from services.lifecycle import check_transition
from services.overview import disputed, in_progress, pool_languages, uncovered_demand, waiting_for_coordinator
from services.reasons import clean_reason
from services.text import N_
from services.vocabulary import RequestState, Role

REASONS = {
    "over_budget": N_("over budget"),
    "no_budget": N_("no budget for the year"),
    "not_filled": N_("nobody accepted"),
    "not_free": N_("nobody free at that time"),
    "not_in_mode": N_("nobody works in this mode"),
    "not_gender": N_("nobody of the gender wished"),
    "not_covered": N_("nobody in the pool speaks the language"),
}


def show_budget(turn: Turn, _arg: str) -> None:
    """Show this year's budget: total, reserved, charged, available and the share used."""
    year = ledger.fiscal_year(turn.now)
    budget = ledger.find_budget(turn.session, turn.district_id, year)
    if budget is None:
        turn.say(
            "There is no budget for {year} yet. Set it on the command line, e.g. {command}.",
            year=year,
            command=_budget_command(turn, year),
        )
        return
    balance = ledger.balance_of(budget)
    text = turn._(
        "Budget {year}\nTotal: {total_cents}\nReserved: {reserved_cents}\n"
        "Charged in {year}: {charged_cents}\n"
        "Available: {available_cents}\nUsed: {used_percent}",
        year=year,
        total_cents=balance.total_cents,
        reserved_cents=balance.reserved_cents,
        charged_cents=balance.charged_cents,
        available_cents=balance.available_cents,
        used_percent=balance.used_percent,
    )
    history, projection = budget_picture(turn.session, budget, turn.now)
    pace = pace_text(turn.t, projection.runs_out_on, projection.year_end_cents)
    turn.say_text(f"{text}\n\n{pace}")
    t = turn.t
    from bot.budget_chart import budget_chart_png  # matplotlib: loaded when a chart is first drawn

    turn.attach_rendered(
        f"budget-{year}.png", "image/png", lambda: budget_chart_png(t, year, history, projection)
    )


def show_requests(turn: Turn, arg: str) -> None:
    """List requests that wait for a decision (with the reason) and those still looking for someone."""
    requests_page(turn, page_number(arg))


def requests_page(turn: Turn, number: int) -> None:
    """One page of /requests: those waiting for a decision first, then those being offered."""
    waiting = Section(N_("Waiting for your decision:"), N_("No request waits for a decision."))
    for request in waiting_for_coordinator(turn.session, turn.district_id):
        reason = turn.t.gettext(REASONS.get(request.state_reason or "", REASONS["not_filled"]))
        buttons = [turn.choice(f"rq:ap:{request.id}", "Approve #{request_id}", request_id=request.id)]
        if request.state == RequestState.UNFILLED.value:
            buttons.append(turn.choice(f"rq:rf:{request.id}", "Refer #{request_id}", request_id=request.id))
        else:
            buttons.append(turn.choice(f"rq:rj:{request.id}", "Reject #{request_id}", request_id=request.id))
        waiting.entries.append((f"{status_line(turn, request)}: {reason}", buttons))
    running = Section(N_("Looking for an interpreter:"), N_("Nothing here yet."))
    for request in in_progress(turn.session, turn.district_id, turn.now):
        running.entries.append((status_line(turn, request), ()))
    show_page(turn, "ls:rq", [waiting, running], number)


def approve(turn: Turn, request_id: int) -> None:
    """Let a held or unfilled request go out to interpreters."""
    try:
        request = requests.approve(
            turn.session, district_id=turn.district_id, request_id=request_id, actor=turn.actor, now=turn.now
        )
    except BudgetExceeded:
        held = requests.get_request(turn.session, turn.district_id, request_id)
        year = ledger.fiscal_year(held.starts_at)
        if ledger.find_budget(turn.session, turn.district_id, year) is not None:
            raise
        raise BudgetExceeded(
            N_(
                "There is no budget for {year} yet, so the request cannot go out. "
                "Set the budget on the command line, e.g. {command}, then approve."
            ),
            year=year,
            command=_budget_command(turn, year),
        ) from None
    turn.say("#{request_id} is now {state}.", request_id=request_id, state=request.state)


def _budget_command(turn: Turn, year: int) -> str:
    district = turn.session.get(District, turn.district_id)
    return budget_command(district.slug if district else "SLUG", year)


def reject(turn: Turn, request_id: int) -> None:
    """Ask why a held request is turned down; the school reads the reason."""
    turn.start("reject", "reason", request_id=request_id)
    ask_reject_reason(turn)


def ask_reject_reason(turn: Turn) -> None:
    # Asked again after every answer: another coordinator may have decided meanwhile (the dialog ends).
    request = requests.get_request(turn.session, turn.district_id, int(turn.draft["request_id"]))
    check_transition(RequestState(request.state), RequestState.REJECTED)
    turn.ask(
        N_("Why can #{request_id} not be approved? The school reads your reason (3 to 300 characters)."),
        request_id=turn.draft["request_id"],
    )


def take_reject_reason(turn: Turn, answer: Answer) -> None:
    request_id = int(turn.draft["request_id"])
    requests.reject(
        turn.session,
        district_id=turn.district_id,
        request_id=request_id,
        reason=answer.text,
        actor=turn.actor,
        now=turn.now,
    )
    turn.finish()
    turn.say("#{request_id} is rejected; the school is told.", request_id=request_id)


def refer(turn: Turn, request_id: int) -> None:
    """Send an unfilled request to the external service; the school gets its contact."""
    requests.refer_unfilled(
        turn.session, district_id=turn.district_id, request_id=request_id, actor=turn.actor, now=turn.now
    )
    turn.say("#{request_id} is referred; the school is told.", request_id=request_id)


def show_pool(turn: Turn, arg: str) -> None:
    """Show the languages the pool covers, by whom, and the languages asked for that nobody speaks."""
    pool_page(turn, page_number(arg))


def pool_page(turn: Turn, number: int) -> None:
    """One page of /pool: the languages covered, most widely first, then those nobody speaks."""
    covered = Section(N_("Languages in the pool:"), N_("The pool is empty."))
    for tag, people in pool_languages(turn.session, turn.district_id).items():
        covered.entries.append((f"{turn.t.language(tag)}: {', '.join(i.name for i in people)}", ()))
    missing = Section(N_("Asked for, but nobody in the pool speaks it:"), N_("Nothing here yet."))
    for tag, n in uncovered_demand(turn.session, turn.district_id):
        asked = turn.t.render_plural(
            "{language}: asked once", "{language}: asked {count} times", n, {"language": tag}
        )
        missing.entries.append((asked, ()))
    show_page(turn, "ls:pl", [covered, missing], number)


def show_closeouts(turn: Turn, arg: str) -> None:
    """List the disputed reports, each with a button to correct it."""
    closeouts_page(turn, page_number(arg))


def closeouts_page(turn: Turn, number: int) -> None:
    """One page of /closeouts."""
    found = Section(N_("Disputed reports:"), N_("No report is disputed."))
    for r, c in disputed(turn.session, turn.district_id):
        line = turn._(
            "{line}: {minutes} min, {km} km — “{reason}”",
            line=request_line(turn.t, r),
            minutes=c.actual_minutes,
            km=c.km,
            reason=c.dispute_reason or "",
        )
        found.entries.append((line, [turn.choice(f"co:fx:{r.id}", "Correct #{request_id}", request_id=r.id)]))
    show_page(turn, "ls:co", [found], number)


def start_correction(turn: Turn, request_id: int) -> None:
    """Begin correcting a report."""
    requests.get_request(turn.session, turn.district_id, request_id)
    turn.start("correct", "minutes", request_id=request_id)
    ask_minutes(turn)


def ask_minutes(turn: Turn) -> None:
    turn.ask(N_("The correct minutes for #{request_id}?"), request_id=turn.draft["request_id"])


def take_minutes(turn: Turn, answer: Answer) -> str:
    turn.draft["minutes"] = parse_minutes(answer.text)
    return "km"


def ask_reason(turn: Turn) -> None:
    turn.ask(N_("The reason for the correction (it is kept with the ledger entry)?"))


def take_reason(turn: Turn, answer: Answer) -> str:
    turn.draft["reason"] = clean_reason(answer.text)  # checked now: the confirm step quotes it
    return "confirm"


def _figures(turn: Turn, figures: closeout.Figures) -> str:
    return turn._(
        "{minutes} min, {km} km, other costs {expenses_cents}: {amount_cents}",
        minutes=figures.minutes,
        km=figures.km,
        expenses_cents=figures.expenses_cents,
        amount_cents=figures.amount_cents,
    )


def charge_change(turn: Turn, change_cents: int) -> str:
    """`The charge rises by 18,00 €`, `falls by`, or `stays the same`: never a negative amount."""
    if change_cents > 0:
        return turn._("The charge rises by {change_cents}.", change_cents=change_cents)
    if change_cents < 0:
        return turn._("The charge falls by {change_cents}.", change_cents=-change_cents)
    return turn._("The charge stays the same.")


def ask_confirm(turn: Turn) -> None:
    request_id = int(turn.draft["request_id"])
    correction = closeout.preview_correction(
        turn.session,
        district_id=turn.district_id,
        request_id=request_id,
        minutes=int(turn.draft["minutes"]),
        km=int(turn.draft["km"]),
        expenses_cents=int(turn.draft["expenses"]),
    )
    request = requests.get_request(turn.session, turn.district_id, request_id)
    lines = [
        turn._("Correction of {line}", line=request_line(turn.t, request)),
        turn._("Before: {figures}", figures=_figures(turn, correction.before)),
        turn._("After: {figures}", figures=_figures(turn, correction.after)),
        turn._("Reason: “{reason}”", reason=echo(turn.draft["reason"])),
        charge_change(turn, correction.change_cents),
        turn._("School and interpreter are told. Apply the correction?"),
    ]
    choices = [turn.choice("apply", "Apply the correction"), turn.choice("again", "Start again")]
    turn.say_text("\n".join(lines), choices)


def take_confirm(turn: Turn, answer: Answer) -> str | None:
    if answer.key == "again":
        turn.restart_draft(request_id=turn.draft["request_id"])
        return "minutes"
    if answer.key != "apply":
        raise InvalidInput(N_("Please choose one of the options."))
    correction = closeout.correct(
        turn.session,
        district_id=turn.district_id,
        request_id=int(turn.draft["request_id"]),
        minutes=int(turn.draft["minutes"]),
        km=int(turn.draft["km"]),
        expenses_cents=int(turn.draft["expenses"]),
        reason=turn.draft["reason"],
        actor=turn.actor,
        now=turn.now,
    )
    turn.finish()
    turn.say_text(turn._("Corrected.") + " " + charge_change(turn, correction.change_cents))
    return None


def show_evaluation(turn: Turn, arg: str) -> None:
    """Send the evaluation for a period (this year so far unless a year or two dates follow) as a PDF."""
    from bot.evaluation_export import duration_text, evaluation_pdf, hours_text  # matplotlib, on demand

    period = period_from_text(arg, turn.now.astimezone(BERLIN).date())
    evaluation = evaluate(turn.session, turn.district_id, period)
    total, outcomes = evaluation.total, evaluation.outcomes
    unserved = [g for g in evaluation.by_language if g.not_covered + g.not_filled]
    missing = sorted(unserved, key=lambda g: -(g.not_covered + g.not_filled))  # most unmet first
    unmet = ", ".join(
        turn._("{language} ({count})", language=g.key, count=g.not_covered + g.not_filled)
        for g in missing[:5]
    )
    turn.say(
        "Evaluation {period}\n"
        "Requests: {requests}, filled: {filled} (fill rate {fill_rate})\n"
        "Median time to fill: {wait}\n"
        "Not covered: {not_covered}; not filled: {not_filled}; missing most: {unmet}\n"
        "Hours interpreted: {hours}; cost: {cost_cents}\n\n"
        "The whole report with charts and tables is in the PDF.",
        period=turn.t.period(period.start, period.end),
        requests=total.requests,
        filled=total.filled,
        fill_rate="–" if total.fill_rate_percent is None else turn.t.percent(total.fill_rate_percent),
        wait=duration_text(turn.t, evaluation.median_fill_minutes),
        not_covered=outcomes["not_covered"],
        not_filled=outcomes["not_filled"],
        unmet=unmet or turn.t.gettext("none"),
        hours=hours_text(turn.t, total.minutes),
        cost_cents=total.cost_cents,
    )
    district = turn.session.get(District, turn.district_id)
    name, t = (district.name if district else ""), turn.t
    filename = f"evaluation-{period.start}-{period.end}.pdf"
    turn.attach_rendered(filename, "application/pdf", lambda: evaluation_pdf(t, evaluation, name))


def show_billing(turn: Turn, arg: str) -> None:
    """Send the monthly billing (last month unless one is named, e.g. 2026-05) as a spreadsheet."""
    if arg.strip():
        month = parse_month(arg, turn.now.astimezone(BERLIN).date())
    else:
        this_month = turn.now.astimezone(BERLIN).date().replace(day=1)
        month = (this_month - timedelta(days=1)).replace(day=1)
    billing = monthly_billing(turn.session, turn.district_id, month)
    lines = [
        turn._(
            "{name}: {amount_cents} (sessions: {sessions})",
            name=b.name,
            sessions=len(b.lines),
            amount_cents=b.amount_cents,
        )
        for b in billing
    ]
    title = turn._(
        "Billing {billing_month}: {amount_cents} in all.",
        billing_month=month,
        amount_cents=sum(b.amount_cents for b in billing),
    )
    turn.say_text(title + "\n" + ("\n".join(lines) or turn.t.gettext("Nobody is to be paid for this month.")))
    t = turn.t
    from bot.billing_export import XLSX, billing_xlsx  # openpyxl: loaded when a billing is first sent

    turn.attach_rendered(f"billing-{month:%Y-%m}.xlsx", XLSX, lambda: billing_xlsx(t, billing, month))


COORDINATOR = Feature(
    role=Role.COORDINATOR,
    commands={
        "budget": (show_budget, N_("the budget at a glance")),
        "requests": (show_requests, N_("requests that need a decision")),
        "pool": (show_pool, N_("languages and who covers them")),
        "closeouts": (show_closeouts, N_("disputed reports to correct")),
        "billing": (show_billing, N_("the monthly billing as a spreadsheet, e.g. /billing 2026-05")),
        "evaluation": (show_evaluation, N_("the evaluation as a PDF, e.g. /evaluation 2026")),
        "deactivate": (show_deactivate, N_("end a school contact's or an interpreter's access")),
    },
    actions={
        "rq:ap": approve,
        "rq:rj": reject,
        "rq:rf": refer,
        "co:fx": start_correction,
        "ls:rq": requests_page,
        "ls:pl": pool_page,
        "ls:co": closeouts_page,
        "dc:pk": pick,
        "ls:dc": deactivate_page,
    },
    flows={
        "reject": Flow(Role.COORDINATOR, {"reason": Step(ask_reject_reason, take_reject_reason)}),
        "correct": Flow(
            Role.COORDINATOR,
            {
                "minutes": Step(ask_minutes, take_minutes, numeric=True),
                "km": km_step(N_("The correct kilometres (there and back)?"), then="expenses"),
                "expenses": expenses_step(then="reason"),
                "reason": Step(ask_reason, take_reason),
                "confirm": Step(ask_confirm, take_confirm),
            },
            unfinished=N_("The correction has not been saved yet."),
        ),
        "deactivate": DEACTIVATE_FLOW,
    },
)
