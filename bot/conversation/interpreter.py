"""The interpreter's side: answering offers, the jobs ahead, the report after a job, absences."""

from datetime import date, timedelta

from bot.calendar_file import calendar_attachment
from bot.conversation.answers import (
    MAX_ID,
    Answer,
    end_of_day,
    parse_day,
    parse_minutes,
    start_of_day,
    whole_number,
)
from bot.conversation.figures import expenses_step, km_step
from bot.conversation.plausibility import unusual_text
from bot.conversation.turn import Feature, Flow, Step, Turn
from bot.conversation.views import PAGE_SIZE, Section, page_number, request_line, show_page
from bot.messages import Choice
from db.models import Absence, Request
from db.uow import hold
from services import billing, changes, closeout, ledger, offers
from services.billing_report import paid_in_year
from services.clock import BERLIN
from services.errors import AlreadyTaken, InvalidInput, NotFound
from services.overview import interpreter_jobs, reportable
from services.policy import load_policy
from services.pool import absences_ahead, add_absence, booked_between, remove_absence
from services.text import N_
from services.vocabulary import Mode, RequestState, Role

MAX_MINUTES = 12 * 60


def _interpreter_id(turn: Turn) -> int:
    assert turn.member.interpreter_id is not None
    return turn.member.interpreter_id


def accept(turn: Turn, offer_id: int) -> None:
    """Take the job; the offer message is updated by the notification that follows."""
    interpreter_id = _interpreter_id(turn)
    try:
        booked = offers.accept_offer(
            turn.session, offer_id=offer_id, interpreter_id=interpreter_id, actor=turn.actor, now=turn.now
        )
        hold(turn.session, booked)  # the confirmation rendered in this transaction reads it
    except AlreadyTaken:
        # Nothing was written. The notice on its way edits this very offer message: it alone tells them.
        if not offers.taken_notice_pending(turn.session, offer_id=offer_id, interpreter_id=interpreter_id):
            raise


def decline(turn: Turn, offer_id: int) -> None:
    """Decline the job; the next interpreter gets it."""
    offers.decline_offer(
        turn.session, offer_id=offer_id, interpreter_id=_interpreter_id(turn), actor=turn.actor, now=turn.now
    )
    turn.say("Declined. Thank you for answering quickly.")


def give_back(turn: Turn, request_id: int) -> None:
    """Ask whether to hand a booked job back, and why; nothing changes before that."""
    offers.booked_job(turn.session, request_id=request_id, interpreter_id=_interpreter_id(turn), now=turn.now)
    turn.start("give_back", "confirm", request_id=request_id)
    ask_give_back(turn)


def _booked(turn: Turn) -> Request:
    return offers.booked_job(
        turn.session,
        request_id=int(turn.draft["request_id"]),
        interpreter_id=_interpreter_id(turn),
        now=turn.now,
    )


def ask_give_back(turn: Turn) -> None:
    text = turn._(
        "Hand back {line}? It goes to other interpreters at once, and the school is told.",
        line=request_line(turn.t, _booked(turn)),
    )
    turn.say_text(text, [turn.choice("yes", "Yes, hand it back"), turn.choice("no", "No, keep it")])


def take_give_back(turn: Turn, answer: Answer) -> str | None:
    if answer.key == "yes":
        return "reason"
    if answer.key == "no":
        turn.finish()
        turn.say("Nothing was changed. The job stays yours.")
        return None
    raise InvalidInput(N_("Please choose one of the options."))


def ask_give_back_reason(turn: Turn) -> None:
    _booked(turn)  # asked again after every answer: cancelled or handed back meanwhile, the dialog ends
    turn.ask(
        N_("Why can you not take it? One short sentence for the coordination office (3 to 300 characters).")
    )


def take_give_back_reason(turn: Turn, answer: Answer) -> None:
    request = offers.give_back(
        turn.session,
        request_id=int(turn.draft["request_id"]),
        interpreter_id=_interpreter_id(turn),
        reason=answer.text,
        actor=turn.actor,
        now=turn.now,
    )
    turn.finish()
    turn.say("You have handed back #{request_id}. The school is told.", request_id=request.id)
    sequence = request.calendar_sequence
    turn.attach(calendar_attachment(turn.t, request, sequence=sequence, cancelled=True, now=turn.now))


def confirm_change(turn: Turn, change_id: int) -> None:
    """Keep the changed session; the change's message is updated by the notification that follows."""
    changes.confirm_change(
        turn.session,
        change_id=change_id,
        interpreter_id=_interpreter_id(turn),
        actor=turn.actor,
        now=turn.now,
    )


def decline_change(turn: Turn, change_id: int) -> None:
    """Ask whether to decline the changed session, and why; nothing changes before that."""
    changes.answerable(turn.session, change_id=change_id, interpreter_id=_interpreter_id(turn), now=turn.now)
    turn.start("decline_change", "confirm", change_id=change_id)
    ask_decline_change(turn)


def _change_asked(turn: Turn) -> Request:
    """The booking whose change waits for this interpreter (raises once it no longer does)."""
    _change, request = changes.answerable(
        turn.session,
        change_id=int(turn.draft["change_id"]),
        interpreter_id=_interpreter_id(turn),
        now=turn.now,
    )
    return request


def ask_decline_change(turn: Turn) -> None:
    text = turn._(
        "Decline the change of {line}? Then the job is no longer yours, and the school is told.",
        line=request_line(turn.t, _change_asked(turn)),
    )
    turn.say_text(text, [turn.choice("yes", "Yes, decline it"), turn.choice("no", "No, back")])


def take_decline_change(turn: Turn, answer: Answer) -> str | None:
    if answer.key == "yes":
        return "reason"
    if answer.key == "no":
        turn.finish()
        turn.say("Nothing was changed. The change still waits for your answer.")
        return None
    raise InvalidInput(N_("Please choose one of the options."))


def ask_decline_change_reason(turn: Turn) -> None:
    _change_asked(turn)
    turn.ask(
        N_(
            "Why can you not keep the changed session? One short sentence; the school reads it "
            "(3 to 300 characters)."
        )
    )


def take_decline_change_reason(turn: Turn, answer: Answer) -> None:
    """The declined change's notice (with the calendar file) follows and tells the interpreter."""
    changes.decline_change(
        turn.session,
        change_id=int(turn.draft["change_id"]),
        interpreter_id=_interpreter_id(turn),
        reason=answer.text,
        actor=turn.actor,
        now=turn.now,
    )
    turn.finish()


def show_jobs(turn: Turn, arg: str) -> None:
    """List the jobs ahead and those waiting for a report."""
    jobs_page(turn, page_number(arg))


def jobs_page(turn: Turn, number: int) -> None:
    """One page of /jobs, soonest first."""
    section = Section(N_("Your jobs:"), N_("No jobs at the moment."))
    for job in interpreter_jobs(turn.session, _interpreter_id(turn)):
        line = request_line(turn.t, job)
        if job.mode != Mode.WRITTEN.value:  # theirs alone: an offer shows no place details
            line += "\n   " + job.place
        if job.note:
            line += "\n   " + turn._("Note: {note}", note=job.note)
        choices = []
        if job.state == RequestState.BOOKED.value and job.starts_at > turn.now:
            choices.append(turn.choice(f"bk:gb:{job.id}", "Hand back #{request_id}", request_id=job.id))
        elif job.starts_at <= turn.now:
            choices.append(turn.choice(f"rp:go:{job.id}", "Report #{request_id}", request_id=job.id))
        section.entries.append((line, choices))
    show_page(turn, "ls:jb", [section], number)


# --- the report after a job ---------------------------------------------------------------------


def _job(turn: Turn) -> Request:
    request = turn.session.get(Request, int(turn.draft["request_id"]))
    if request is None or request.interpreter_id != _interpreter_id(turn):
        raise NotFound(N_("This booking does not exist."))
    return request


def start_report(turn: Turn, _arg: str) -> None:
    """Begin the report for a finished job (asking which one if there are several)."""
    jobs = reportable(turn.session, _interpreter_id(turn), turn.now)
    if not jobs:
        turn.say("There is no job to report yet; a job can be reported once it has begun.")
        return
    if len(jobs) == 1:
        report_job(turn, jobs[0].id or 0)
        return
    turn.start("report", "job")
    ask_job(turn)


def report_job(turn: Turn, request_id: int) -> None:
    """Report the given job."""
    turn.start("report", "minutes", request_id=request_id)
    _job(turn)
    ask_minutes(turn)


def ask_job(turn: Turn) -> None:
    jobs = reportable(turn.session, _interpreter_id(turn), turn.now)
    text = turn._(N_("Which job do you report?"))
    if len(jobs) > PAGE_SIZE:  # the rest stay reachable through /jobs, a page at a time
        more = len(jobs) - PAGE_SIZE
        text += "\n" + turn.t.render_plural(
            "{count} more is listed under /jobs.", "{count} more are listed under /jobs.", more
        )
    turn.say_text(text, [Choice(str(j.id), request_line(turn.t, j)) for j in jobs[:PAGE_SIZE]])


def take_job(turn: Turn, answer: Answer) -> str:
    request_id = whole_number(answer.key or "", most=MAX_ID)
    if request_id is None:
        raise InvalidInput(N_("Please choose one of the options."))
    turn.draft["request_id"] = request_id
    _job(turn)
    return "minutes"


def ask_minutes(turn: Turn) -> None:
    job = _job(turn)
    planned = turn.choice(str(job.duration_minutes), "{minutes} min as planned", minutes=job.duration_minutes)
    if job.mode == Mode.WRITTEN.value:
        turn.ask_number(N_("How many minutes did the translation take?"), [planned])
    else:
        turn.ask_number(
            N_("How many minutes did {line} actually take?"), [planned], line=request_line(turn.t, job)
        )


def take_minutes(turn: Turn, answer: Answer) -> str:
    planned = whole_number(answer.key or "", most=MAX_MINUTES)
    minutes = parse_minutes(answer.text) if planned is None else planned
    if not 1 <= minutes <= MAX_MINUTES:
        raise InvalidInput(N_("The minutes must be between 1 and {most}."), most=MAX_MINUTES)
    turn.draft["minutes"] = minutes
    if _job(turn).mode != Mode.IN_PERSON.value:
        turn.draft["km"], turn.draft["expenses"] = 0, 0
        return "check"
    return "km"


def ask_check(turn: Turn) -> None:
    job = _job(turn)
    minutes, km, expenses = (int(turn.draft[k]) for k in ("minutes", "km", "expenses"))
    billing.validate_report(Mode(job.mode), minutes, km, expenses)
    policy = load_policy(turn.session, turn.district_id)
    cost = billing.actual(Mode(job.mode), minutes, km, expenses, policy)
    flags = closeout.unusual(job, minutes, km, policy, turn.now)
    figures = {
        "line": request_line(turn.t, job),
        "minutes": minutes,
        "km": km,
        "expenses_cents": expenses,
        "amount_cents": cost.total_cents,
    }
    if not flags:
        text = turn._(
            "{line}\n{minutes} min, {km} km, other costs {expenses_cents}: "
            "you will be paid {amount_cents}. Send?",
            **figures,
        )
        turn.say_text(text, [turn.choice("send", "Send"), turn.choice("again", "Start again")])
        return
    what = unusual_text(turn.t, job, flags, minutes=minutes, km=km, km_max=policy.report_km_max)
    text = turn._(
        "{line}\n{minutes} min, {km} km, other costs {expenses_cents}: you would be paid {amount_cents}.\n"
        "That is unusual: {what}.\nIf it is right, send it; the coordination office is told. Send anyway?",
        what=what,
        **figures,
    )
    turn.say_text(text, [turn.choice("send", "Send anyway"), turn.choice("again", "Start again")])


def take_check(turn: Turn, answer: Answer) -> str | None:
    if answer.key == "again":
        turn.restart_draft(request_id=turn.draft["request_id"])
        return "minutes"
    if answer.key != "send":
        raise InvalidInput(N_("Please choose one of the options."))
    done = closeout.report(
        turn.session,
        request_id=int(turn.draft["request_id"]),
        interpreter_id=_interpreter_id(turn),
        minutes=int(turn.draft["minutes"]),
        km=int(turn.draft["km"]),
        expenses_cents=int(turn.draft["expenses"]),
        actor=turn.actor,
        now=turn.now,
    )
    turn.finish()
    turn.say(
        "Report sent: {amount_cents}. The school confirms it; then it is paid.",
        amount_cents=done.amount_cents,
    )
    return None


# --- absences -----------------------------------------------------------------------------------


MAX_ABSENCE = timedelta(days=366)


def start_away(turn: Turn, _arg: str) -> None:
    """Show the absences ahead (each can be removed) or begin entering one."""
    if absences_ahead(turn.session, _interpreter_id(turn), turn.now):
        turn.start("away", "list")
        ask_list(turn)
    else:
        turn.start("away", "from")
        ask_from(turn)


def _days(absence: Absence) -> tuple[date, date]:
    """The first and last day away, as they were typed (the stored end is the midnight after)."""
    first = absence.starts_at.astimezone(BERLIN).date()
    return first, (absence.ends_at.astimezone(BERLIN) - timedelta(days=1)).date()


REMOVE, PAGE = "rm-", "page-"  # the list step's own choices: `rm-7` (asks first), `page-2`


def ask_list(turn: Turn) -> None:
    absences = absences_ahead(turn.session, _interpreter_id(turn), turn.now)
    pages = max(1, -(-len(absences) // PAGE_SIZE))
    number = min(int(turn.draft.get("page", 1)), pages)
    lines = [turn._("You are away:")]
    choices = []
    for absence in absences[(number - 1) * PAGE_SIZE : number * PAGE_SIZE]:
        first, last = _days(absence)
        lines.append(turn._("{from_on} – {until_on}", from_on=first, until_on=last))
        label = turn._("Remove {from_on} – {until_on}", from_on=first, until_on=last)
        choices.append(Choice(f"{REMOVE}{absence.id}", label))
    if pages > 1:
        lines.append(turn._(N_("Page {page} of {pages}"), page=number, pages=pages))
        if number > 1:
            choices.append(turn.choice(f"{PAGE}{number - 1}", "‹ Back"))
        if number < pages:
            choices.append(turn.choice(f"{PAGE}{number + 1}", "Next ›"))
    choices.append(turn.choice("new", "New absence"))
    turn.say_text("\n".join(lines), choices)


def take_list(turn: Turn, answer: Answer) -> str:
    key = answer.key or ""
    if key == "new":
        return "from"
    if key.startswith(PAGE):
        turn.draft["page"] = whole_number(key.removeprefix(PAGE), most=MAX_ID) or 1
        return "list"
    if key.startswith(REMOVE):
        turn.draft["absence_id"] = whole_number(key.removeprefix(REMOVE), most=MAX_ID) or 0
        return "remove"
    if answer.key is None and answer.text.strip():
        return take_from(turn, answer)  # the first day, typed straight away
    raise InvalidInput(N_("Please choose one of the options."))


def remove_away(turn: Turn, absence_id: int) -> None:
    """Ask before removing an absence (a button of an earlier list)."""
    turn.start("away", "remove", absence_id=absence_id)
    ask_remove(turn)


def _absence(turn: Turn) -> Absence:
    absence = turn.session.get(Absence, int(turn.draft["absence_id"]))
    if absence is None or absence.interpreter_id != _interpreter_id(turn):
        raise NotFound(N_("This absence does not exist (any more)."))
    return absence


def ask_remove(turn: Turn) -> None:
    first, last = _days(_absence(turn))
    text = turn._(
        "Remove your absence {from_on} – {until_on}? Offers reach you again for those days.",
        from_on=first,
        until_on=last,
    )
    turn.say_text(text, [turn.choice("yes", "Yes, remove it"), turn.choice("no", "No, keep it")])


def take_remove(turn: Turn, answer: Answer) -> None:
    if answer.key == "no":
        turn.finish()
        turn.say("Nothing was changed.")
        return
    if answer.key != "yes":
        raise InvalidInput(N_("Please choose one of the options."))
    absence_id = int(turn.draft["absence_id"])
    turn.finish()  # done: nothing of the away dialog is left to remind of
    absence = remove_absence(
        turn.session,
        district_id=turn.district_id,
        interpreter_id=_interpreter_id(turn),
        absence_id=absence_id,
        actor=turn.actor,
        now=turn.now,
    )
    first, last = _days(absence)
    turn.say("Removed: offers reach you again for {from_on} – {until_on}.", from_on=first, until_on=last)


def ask_from(turn: Turn) -> None:
    turn.ask(N_("From which day are you away? (e.g. 12.3. or Monday)"))


def take_from(turn: Turn, answer: Answer) -> str:
    first = parse_day(answer.text, turn.now)
    if first < turn.now.astimezone(BERLIN).date():
        raise InvalidInput(
            N_("{from_on} lies in the past; an absence can start today at the earliest."), from_on=first
        )
    turn.draft["from"] = first.isoformat()
    return "until"


def ask_until(turn: Turn) -> None:
    turn.ask(N_("Until which day, inclusive?"))


def take_until(turn: Turn, answer: Answer) -> None:
    first = date.fromisoformat(turn.draft["from"])
    last = parse_day(answer.text, turn.now, on_or_after=first)
    if last < first:
        raise InvalidInput(N_("An absence must end after it starts."))
    starts_at, ends_at = start_of_day(first), end_of_day(last)
    if ends_at - starts_at > MAX_ABSENCE:
        raise InvalidInput(N_("An absence can last a year at most."))
    add_absence(
        turn.session,
        district_id=turn.district_id,
        interpreter_id=_interpreter_id(turn),
        starts_at=starts_at,
        ends_at=ends_at,
        actor=turn.actor,
        now=turn.now,
    )
    turn.finish()
    text = turn._("Noted: no offers from {from_on} until {until_on}.", from_on=first, until_on=last)
    jobs = booked_between(turn.session, _interpreter_id(turn), starts_at, ends_at)[:PAGE_SIZE]
    if not jobs:
        turn.say_text(text)
        return
    lines = [text, turn._("You are booked in that time; hand a job back if you cannot do it:")]
    lines += [request_line(turn.t, job) for job in jobs]
    choices = [turn.choice(f"bk:gb:{j.id}", "Hand back #{request_id}", request_id=j.id) for j in jobs]
    turn.say_text("\n".join(lines), choices)


def show_earnings(turn: Turn, _arg: str) -> None:
    """This year's pay against the tax-free volunteer allowance."""
    assert turn.member.interpreter_id is not None
    year = ledger.fiscal_year(turn.now)
    paid = paid_in_year(turn.session, turn.district_id, turn.member.interpreter_id, year)
    allowance = load_policy(turn.session, turn.district_id).volunteer_allowance
    turn.say(
        "Paid for sessions in {year}: {paid_cents}. The tax-free volunteer allowance is "
        "{allowance_cents}; {left_cents} of it is left.",
        year=year,
        paid_cents=paid,
        allowance_cents=allowance,
        left_cents=max(allowance - paid, 0),
    )


INTERPRETER = Feature(
    role=Role.INTERPRETER,
    commands={
        "jobs": (show_jobs, N_("your jobs ahead")),
        "report": (start_report, N_("report a finished job")),
        "away": (start_away, N_("tell us when you are away")),
        "earnings": (show_earnings, N_("what you were paid this year")),
    },
    actions={
        "of:a": accept,
        "of:d": decline,
        "bk:gb": give_back,
        "cg:ok": confirm_change,
        "cg:no": decline_change,
        "rp:go": report_job,
        "aw:rm": remove_away,
        "ls:jb": jobs_page,
    },
    flows={
        "report": Flow(
            Role.INTERPRETER,
            {
                "job": Step(ask_job, take_job),
                "minutes": Step(ask_minutes, take_minutes, numeric=True),
                "km": km_step(
                    N_("How many kilometres did you drive, there and back? (0 if you took public transport)"),
                    then="expenses",
                ),
                "expenses": expenses_step(then="check"),
                "check": Step(ask_check, take_check),
            },
            unfinished=N_("Your report has not been sent yet."),
            resume="report",
        ),
        "give_back": Flow(
            Role.INTERPRETER,
            {
                "confirm": Step(ask_give_back, take_give_back),
                "reason": Step(ask_give_back_reason, take_give_back_reason),
            },
            unfinished=N_("The job has not been handed back yet."),
        ),
        "decline_change": Flow(
            Role.INTERPRETER,
            {
                "confirm": Step(ask_decline_change, take_decline_change),
                "reason": Step(ask_decline_change_reason, take_decline_change_reason),
            },
            unfinished=N_("The change has not been declined yet; it still waits for your answer."),
        ),
        "away": Flow(
            Role.INTERPRETER,
            {
                "list": Step(ask_list, take_list),
                "remove": Step(ask_remove, take_remove),
                "from": Step(ask_from, take_from),
                "until": Step(ask_until, take_until),
            },
            unfinished=N_("Your absence has not been saved yet."),
            resume="away",
        ),
    },
)
