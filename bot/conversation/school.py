"""The school's dialogs: a new request step by step, its bookings, cancelling, and the closeout decision."""

from collections.abc import Callable
from datetime import datetime, timedelta

from bot.conversation.answers import Answer, parse_minutes, parse_when, whole_number
from bot.conversation.turn import STAY, Feature, Flow, Step, Turn
from bot.conversation.views import Section, page_number, request_line, show_page, status_line
from bot.messages import Choice
from db.models import Request, School
from services import changes, closeout, requests
from services.clock import BERLIN
from services.errors import InvalidInput
from services.languages import search_languages
from services.overview import most_requested, pool_languages, school_requests
from services.policy import load_policy
from services.requests import MAX_DURATION, MIN_DURATION, NOTE_MAX, RequestDraft, check_note
from services.text import N_
from services.vocabulary import (
    MODE_LABELS,
    TOPIC_LABELS,
    CloseoutState,
    Gender,
    Mode,
    RequestState,
    Role,
    Topic,
    UnmetReason,
)

LANGUAGE_CHOICES = 8
ORDER = ("language", "mode", "when", "duration", "place", "topic", "gender", "note", "summary")
CANCELLABLE = (
    RequestState.REQUESTED,
    RequestState.AWAITING_APPROVAL,
    RequestState.OFFERED,
    RequestState.BOOKED,
    RequestState.UNFILLED,
)


def _school(turn: Turn) -> School:
    school = turn.session.get(School, turn.member.school_id)
    assert school is not None
    return school


_FIELD_OF_STEP = {"when": "starts_at", "duration": "duration"}


def _needed(turn: Turn, step: str) -> bool:
    if step == "place" and turn.draft.get("mode") == Mode.WRITTEN.value:
        return False
    return _FIELD_OF_STEP.get(step, step) not in turn.draft


def _next(turn: Turn, current: str) -> str:
    """The next step still unanswered; once a single field was changed, straight back to the summary."""
    following = ORDER[ORDER.index(current) + 1 :] if not turn.draft.get("editing") else ORDER
    for step in following:
        if step == "summary" or _needed(turn, step):
            return step
    return "summary"


# --- language ---------------------------------------------------------------------------------


def ask_language(turn: Turn) -> None:
    school_id = turn.member.school_id or 0
    tags = most_requested(turn.session, school_id, LANGUAGE_CHOICES)
    for tag in pool_languages(turn.session, turn.district_id):
        if len(tags) >= LANGUAGE_CHOICES:
            break
        if tag not in tags:
            tags.append(tag)
    choices = [Choice(tag, turn.t.language(tag)) for tag in tags]
    turn.ask(N_("Which language? Choose one or type its name (e.g. Arabic, Tigrinya)."), choices)


def take_language(turn: Turn, answer: Answer) -> str:
    if answer.key is not None:
        turn.draft["language"] = answer.key
        return _next(turn, "language")
    found = search_languages(answer.text, turn.t.locale, turn.t.gettext)
    if not found:
        raise InvalidInput(
            N_("I know no language “{value}”. Try its name or code (e.g. ar, ti)."), value=answer.text
        )
    exact = [tag for tag in found if answer.text.strip().casefold() in (tag, turn.t.language(tag).casefold())]
    if len(exact) == 1 or len(found) == 1:
        turn.draft["language"] = (exact or found)[0]
        return _next(turn, "language")
    choices = [Choice(tag, turn.t.language(tag)) for tag in found[:LANGUAGE_CHOICES]]
    turn.ask(N_("Which of these do you mean?"), choices)
    return STAY


# --- mode, time, duration ---------------------------------------------------------------------


def ask_mode(turn: Turn) -> None:
    choices = [Choice(mode.value, turn.t.gettext(MODE_LABELS[mode])) for mode in Mode]
    turn.ask(N_("How should the interpreting happen?"), choices)


def take_mode(turn: Turn, answer: Answer) -> str:
    if answer.key not in {m.value for m in Mode}:
        raise InvalidInput(N_("Please choose one of the options."))
    if turn.draft.get("mode") not in (None, answer.key):
        # Another mode needs its own place and may not allow the topic chosen before.
        turn.draft.pop("place", None)
        if turn.draft.get("topic") not in {t.value for t in _topics(answer.key)}:
            turn.draft.pop("topic", None)
    turn.draft["mode"] = answer.key
    return _next(turn, "mode")


def _example(turn: Turn) -> str:
    soon = (turn.now + timedelta(days=3)).astimezone(BERLIN)
    return f"{soon.day}.{soon.month}. 10:00"


def ask_when(turn: Turn) -> None:
    soon = (turn.now + timedelta(days=3)).astimezone(BERLIN).date()
    turn.ask(
        N_("When does it start? Write the date and time, e.g. {example} or {weekday} 10:00."),
        example=_example(turn),
        weekday=turn.t.weekday(soon),
    )


def take_when(turn: Turn, answer: Answer) -> str:
    starts_at = parse_when(answer.text, turn.now)
    if starts_at <= turn.now:
        raise InvalidInput(N_("The start lies in the past."))
    mode = Mode(turn.draft["mode"])
    lead = load_policy(turn.session, turn.district_id).lead_time(mode)
    if starts_at - turn.now < lead:
        raise InvalidInput(
            N_("Requests {mode} need more notice; the earliest possible start is {earliest_at}."),
            mode=mode.value,
            earliest_at=turn.now + lead,
        )
    turn.draft["starts_at"] = starts_at.isoformat()
    return _next(turn, "when")


def ask_duration(turn: Turn) -> None:
    minutes = (30, 45, 60, 90, 120)
    choices = [Choice(str(m), turn._("{minutes} min", minutes=m)) for m in minutes]
    turn.ask_number(N_("How long will it take? Choose or type the minutes (e.g. 75 or 1:15)."), choices)


def take_duration(turn: Turn, answer: Answer) -> str:
    picked = whole_number(answer.key or "", most=MAX_DURATION)
    minutes = parse_minutes(answer.text) if picked is None else picked
    if not MIN_DURATION <= minutes <= MAX_DURATION:
        raise InvalidInput(N_("The duration must be between 15 minutes and 8 hours."))
    turn.draft["duration"] = minutes
    return _next(turn, "duration")


# --- place, topic, gender, note ---------------------------------------------------------------


def ask_place(turn: Turn) -> None:
    if turn.draft.get("mode") == Mode.IN_PERSON.value:
        choice = turn.choice("school", "At the school: {address}", address=_school(turn).address)
        turn.ask(N_("Where? Choose the school's address or type another one."), [choice])
    else:
        later = turn.choice("later", "I will send it later")
        turn.ask(
            N_(
                "The school's own phone number or the meeting link for the interpreter? "
                "Please not a parent's number: the interpreter calls the school or joins the meeting."
            ),
            [later],
        )


def take_place(turn: Turn, answer: Answer) -> str:
    if answer.key in ("school", "later"):
        turn.draft["place"] = ""
    else:
        place = answer.text.strip()
        if not 3 <= len(place) <= 300:
            raise InvalidInput(N_("Please write the address (or number, or link) in 3 to 300 characters."))
        turn.draft["place"] = place
    return _next(turn, "place")


def _topics(mode: str) -> list[Topic]:
    if mode == Mode.WRITTEN.value:
        return [Topic.PARENT_LETTER, Topic.OTHER]
    return [Topic.PARENT_TALK, Topic.PARENT_EVENING, Topic.OTHER]


def ask_topic(turn: Turn) -> None:
    topics = _topics(turn.draft["mode"])
    turn.ask(N_("What is it about?"), [Choice(t.value, turn.t.gettext(TOPIC_LABELS[t])) for t in topics])


def take_topic(turn: Turn, answer: Answer) -> str:
    if answer.key not in {t.value for t in _topics(turn.draft["mode"])}:
        raise InvalidInput(N_("Please choose one of the options."))
    turn.draft["topic"] = answer.key
    return _next(turn, "topic")


ANY_GENDER = "any"
GENDER_LABELS = {
    ANY_GENDER: N_("no preference"),
    Gender.FEMALE.value: N_("a woman"),
    Gender.MALE.value: N_("a man"),
}


def ask_gender(turn: Turn) -> None:
    choices = [Choice(key, turn.t.gettext(label)) for key, label in GENDER_LABELS.items()]
    turn.ask(N_("Should the interpreter be a woman or a man?"), choices)


def take_gender(turn: Turn, answer: Answer) -> str:
    if answer.key not in GENDER_LABELS:
        raise InvalidInput(N_("Please choose one of the options."))
    turn.draft["gender"] = None if answer.key == ANY_GENDER else answer.key
    return _next(turn, "gender")


def ask_note(turn: Turn) -> None:
    turn.ask(
        N_(
            "What should the interpreter know (at most {max} characters)? The topic in a few words, "
            "a dialect, special needs. Please do not write names of pupils or parents, and no phone "
            "numbers or e-mail addresses."
        ),
        [turn.choice("none", "No note")],
        max=NOTE_MAX,
    )


def take_note(turn: Turn, answer: Answer) -> str:
    note = "" if answer.key == "none" else answer.text.strip()
    check_note(note)
    turn.draft["note"] = note
    return _next(turn, "note")


# --- summary ------------------------------------------------------------------------------------


def _draft(turn: Turn) -> RequestDraft:
    d = turn.draft
    return RequestDraft(
        school_id=turn.member.school_id or 0,
        language=d["language"],
        mode=Mode(d["mode"]),
        starts_at=datetime.fromisoformat(d["starts_at"]),
        duration_minutes=int(d["duration"]),
        topic=Topic(d["topic"]),
        place=d.get("place", ""),
        gender_preference=Gender(d["gender"]) if d.get("gender") else None,
        note=d.get("note", ""),
    )


def ask_summary(turn: Turn) -> None:
    draft = _draft(turn)
    school = _school(turn)  # held: the quote reads it too and finds it in the session
    try:
        quote = requests.quote(turn.session, district_id=turn.district_id, draft=draft, now=turn.now)
    except InvalidInput as exc:
        # Time has passed or the mode changed since the start was given: ask for it again.
        turn.say_text(turn.t.error(exc))
        turn.draft.pop("starts_at", None)
        turn.dialog.step = "when"
        ask_when(turn)
        return
    lines = [
        turn._("Your request:"),
        turn._("Language: {language}", language=draft.language),
        turn._("Mode: {mode}", mode=draft.mode.value),
        turn._("Start: {starts_at}", starts_at=draft.starts_at),
        turn._("Duration: {minutes} min", minutes=draft.duration_minutes),
    ]
    if draft.mode is not Mode.WRITTEN:
        lines.append(turn._("Place: {place}", place=draft.place or school.address))
    lines.append(turn._("Topic: {topic}", topic=draft.topic.value))
    wish = turn.draft.get("gender") or ANY_GENDER
    lines.append(turn._("Interpreter: {gender}", gender=turn.t.gettext(GENDER_LABELS[wish])))
    if draft.note:
        lines.append(turn._("Note: {note}", note=draft.note))
    switches: list[Choice] = []
    if quote.covered:
        available, switches = _availability(turn, draft, quote)
        lines += available
    if not quote.covered:
        lines.append(
            turn._(
                "Nobody in the pool speaks {language}. "
                "If you send it, you get the contact of an external service.",
                language=draft.language,
            )
        )
    else:
        lines.append(turn._("Estimated cost: {estimate_cents}", estimate_cents=quote.estimate_cents))
        if quote.available_cents is None:
            lines.append(turn._("There is no budget for that year yet; the coordination office decides."))
        elif quote.fits_budget:
            lines.append(
                turn._(
                    "Budget left: {available_cents}, afterwards {after_cents}.",
                    available_cents=quote.available_cents,
                    after_cents=quote.available_cents - quote.estimate_cents,
                )
            )
        else:
            lines.append(
                turn._(
                    "That is more than the {available_cents} left in the budget; "
                    "the coordination office decides.",
                    available_cents=quote.available_cents,
                )
            )
    choices = [
        *switches,
        turn.choice("send", "Send"),
        turn.choice("change", "Change something"),
        turn.choice("drop", "Discard"),
    ]
    turn.say_text("\n".join(lines), choices)


SWITCH = "to-"  # a summary's choice to ask in another mode: `to-video`


def _availability(turn: Turn, draft: RequestDraft, quote: requests.Quote) -> tuple[list[str], list[Choice]]:
    """How many could take it; when nobody can, why not, and the modes that would work, to switch to."""
    if quote.eligible:
        count = quote.eligible
        could = turn.t.render_plural(
            "{count} interpreter in the pool could take it.",
            "{count} interpreters in the pool could take it.",
            count,
        )
        return [could], []
    if quote.reason is UnmetReason.NOT_IN_MODE:
        why = turn._(
            "Nobody in the pool who speaks {language} works {mode}.",
            language=draft.language,
            mode=draft.mode.value,
        )
    elif quote.reason is UnmetReason.NOT_GENDER:
        why = turn._(
            "Nobody in the pool who speaks {language} and works {mode} is of the gender wished; "
            "without that wish, someone could take it.",
            language=draft.language,
            mode=draft.mode.value,
        )
    else:
        why = turn._(
            "Everyone in the pool who could take it {mode} is busy or away at that time.",
            mode=draft.mode.value,
        )
    if not quote.other_modes:
        return [why, turn._("If you send it, the coordination office looks at it.")], []
    lines = [why] + [turn._("Someone could take it {mode}.", mode=m.value) for m in quote.other_modes]
    switches = [
        turn.choice(f"{SWITCH}{m.value}", "Ask for it {mode} instead", mode=m.value)
        for m in quote.other_modes
    ]
    return lines, switches


def take_summary(turn: Turn, answer: Answer) -> str | None:
    if answer.key is not None and answer.key.startswith(SWITCH):
        # As if the mode were changed by hand: a new place is asked for, then the summary again.
        turn.draft["editing"] = True
        return take_mode(turn, Answer(answer.key.removeprefix(SWITCH), answer.text))
    if answer.key == "send":
        requests.submit_request(
            turn.session,
            district_id=turn.district_id,
            draft=_draft(turn),
            actor=turn.actor,
            now=turn.now,
            member_id=turn.member_id,
        )
        turn.finish()
        return None
    if answer.key == "change":
        return "field"
    if answer.key == "drop":
        turn.finish()
        turn.say("The request was discarded.")
        return None
    raise InvalidInput(N_("Please choose one of the options."))


FIELD_LABELS = {
    "language": N_("Language"),
    "mode": N_("Mode"),
    "when": N_("Start"),
    "duration": N_("Duration"),
    "place": N_("Place"),
    "topic": N_("Topic"),
    "gender": N_("Interpreter"),
    "note": N_("Note"),
}


def ask_field(turn: Turn) -> None:
    fields = [f for f in FIELD_LABELS if not (f == "place" and turn.draft.get("mode") == Mode.WRITTEN.value)]
    turn.ask(
        N_("What would you like to change?"), [Choice(f, turn.t.gettext(FIELD_LABELS[f])) for f in fields]
    )


def take_field(turn: Turn, answer: Answer) -> str:
    if answer.key not in FIELD_LABELS:
        raise InvalidInput(N_("Please choose one of the options."))
    turn.draft["editing"] = True
    return answer.key


def start_request(turn: Turn, _arg: str) -> None:
    """Begin a new request."""
    turn.start("request", "language")
    ask_language(turn)


REQUEST = Flow(
    role=Role.SCHOOL,
    steps={
        "language": Step(ask_language, take_language),
        "mode": Step(ask_mode, take_mode),
        "when": Step(ask_when, take_when),
        "duration": Step(ask_duration, take_duration, numeric=True),
        "place": Step(ask_place, take_place),
        "topic": Step(ask_topic, take_topic),
        "gender": Step(ask_gender, take_gender),
        "note": Step(ask_note, take_note),
        "summary": Step(ask_summary, take_summary),
        "field": Step(ask_field, take_field),
    },
    unfinished=N_("Your request has not been sent yet."),
    resume="request",
)


# --- bookings, cancelling, closeout -------------------------------------------------------------


def show_bookings(turn: Turn, arg: str) -> None:
    """List the school's upcoming and past requests, with what can be done about them."""
    bookings_page(turn, page_number(arg))


def bookings_page(turn: Turn, number: int) -> None:
    """One page of /bookings: the open requests, soonest first, then all finished ones, newest first."""
    open_, finished = school_requests(turn.session, turn.member.school_id or 0, now=turn.now)
    open_ids = {r.id for r in open_}
    none = N_("No open requests. /request makes one.")
    section = Section(N_("Open:"), none if finished else N_("You have no requests yet. /request makes one."))
    done = Section(N_("Finished, newest first:"), none)
    for request in [*open_, *finished]:
        choices: list[Choice] = []
        state = RequestState(request.state)
        if state in CANCELLABLE and request.starts_at > turn.now:
            choices.append(turn.choice(f"rq:cx:{request.id}", "Cancel #{request_id}", request_id=request.id))
        if state is RequestState.BOOKED and request.starts_at > turn.now:
            choices.append(turn.choice(f"rq:cg:{request.id}", "Change #{request_id}", request_id=request.id))
        if state is RequestState.COMPLETED:
            outcome = closeout.closeout_of(turn.session, request.id or 0)
            if outcome is not None and outcome.state == CloseoutState.REPORTED.value:
                choices.append(
                    turn.choice(f"co:ok:{request.id}", "Confirm #{request_id}", request_id=request.id)
                )
                choices.append(
                    turn.choice(f"co:no:{request.id}", "Dispute #{request_id}", request_id=request.id)
                )
        (section if request.id in open_ids else done).entries.append((status_line(turn, request), choices))
    show_page(turn, "ls:bk", [section, done], number)


def cancel_booking(turn: Turn, request_id: int) -> None:
    """Show what cancelling would cost and ask to confirm."""
    turn.start("cancel", "confirm", request_id=request_id)
    ask_cancel(turn)


def _cancellable(turn: Turn, request_id: int) -> Request:
    """The school's own request, if it can still be cancelled (asked again after every answer)."""
    request = requests.get_request(turn.session, turn.district_id, request_id)
    if request.school_id != turn.member.school_id:
        raise InvalidInput(N_("Request {request_id} does not exist."), request_id=request_id)
    if RequestState(request.state) not in CANCELLABLE:
        raise InvalidInput(N_("Request #{request_id} can no longer be cancelled."), request_id=request_id)
    return request


def ask_cancel(turn: Turn) -> None:
    request = _cancellable(turn, int(turn.draft["request_id"]))
    fee = requests.cancellation_cost(request, load_policy(turn.session, turn.district_id), turn.now)
    if fee.total_cents:
        text = turn._(
            "Cancel {line}? This late, the policy charges {fee_cents}.",
            line=request_line(turn.t, request),
            fee_cents=fee.total_cents,
        )
    else:
        text = turn._("Cancel {line}? This is free of charge.", line=request_line(turn.t, request))
    turn.say_text(text, [turn.choice("yes", "Yes, cancel"), turn.choice("no", "No, keep it")])


def take_cancel(turn: Turn, answer: Answer) -> None:
    if answer.key == "yes":
        requests.cancel(
            turn.session,
            district_id=turn.district_id,
            request_id=int(turn.draft["request_id"]),
            actor=turn.actor,
            now=turn.now,
            school_id=turn.member.school_id,
        )
    elif answer.key == "no":
        turn.say("Nothing was changed.")
    else:
        raise InvalidInput(N_("Please choose one of the options."))
    turn.finish()


# --- changing a booking -------------------------------------------------------------------------

CHANGE_FIELDS = {
    "when": N_("Start"),
    "duration": N_("Duration"),
    "place": N_("Place"),
    "mode": N_("Mode"),
}


def change_booking(turn: Turn, request_id: int) -> None:
    """Begin changing a booked session: what should change?"""
    request = _changeable(turn, request_id)
    if changes.pending_change(turn.session, request, turn.now) is not None:
        raise InvalidInput(
            N_("A change of #{request_id} is already waiting for the interpreter's answer."),
            request_id=request_id,
        )
    turn.start(
        "change",
        "field",
        request_id=request_id,
        starts_at=request.starts_at.isoformat(),
        duration=request.duration_minutes,
        mode=request.mode,
        place=request.place,
        topic=request.topic,
    )
    ask_change_field(turn)


def _changeable(turn: Turn, request_id: int) -> Request:
    """The school's own booking, if it can still be changed (a stale Change button, or a booking
    cancelled or handed back during the dialog, ends it with the sentence why)."""
    request = requests.get_request(turn.session, turn.district_id, request_id)
    if request.school_id != turn.member.school_id:
        raise InvalidInput(N_("Request {request_id} does not exist."), request_id=request_id)
    changes.check_booked(request, turn.now)
    return request


def _booking(turn: Turn) -> Request:
    return _changeable(turn, int(turn.draft["request_id"]))


def _while_booked(ask: Callable[[Turn], None]) -> Callable[[Turn], None]:
    """A step of the request dialog, reused: asked only while the booking can still be changed."""

    def ask_while_booked(turn: Turn) -> None:
        _booking(turn)
        ask(turn)

    return ask_while_booked


def ask_change_field(turn: Turn) -> None:
    written = turn.draft["mode"] == Mode.WRITTEN.value
    fields = [f for f in CHANGE_FIELDS if not (written and f in ("place", "mode"))]
    turn.ask(
        N_("What should change in {line}?"),
        [Choice(f, turn.t.gettext(CHANGE_FIELDS[f])) for f in fields],
        line=request_line(turn.t, _booking(turn)),
    )


def take_change_field(turn: Turn, answer: Answer) -> str:
    if answer.key not in CHANGE_FIELDS:
        raise InvalidInput(N_("Please choose one of the options."))
    return answer.key


def ask_change_mode(turn: Turn) -> None:
    _booking(turn)
    # Written work stays written: a letter is no talk.
    modes = [m for m in Mode if m is not Mode.WRITTEN]
    turn.ask(
        N_("How should the interpreting happen?"),
        [Choice(m.value, turn.t.gettext(MODE_LABELS[m])) for m in modes],
    )


def take_change_mode(turn: Turn, answer: Answer) -> str:
    before = turn.draft["mode"]
    take_mode(turn, answer)
    # In person needs an address, phone and video a number or link: another mode asks for the place again.
    return "place" if turn.draft["mode"] != before else "summary"


def _then_summary(take: Callable[[Turn, Answer], object]) -> Callable[[Turn, Answer], str]:
    """A step of the request dialog, reused: it stores its answer in the draft, then the summary."""

    def take_then_summary(turn: Turn, answer: Answer) -> str:
        take(turn, answer)
        return "summary"

    return take_then_summary


def _change_draft(turn: Turn) -> changes.ChangeDraft:
    d = turn.draft
    return changes.ChangeDraft(
        starts_at=datetime.fromisoformat(d["starts_at"]),
        duration_minutes=int(d["duration"]),
        mode=Mode(d["mode"]),
        place=d.get("place", ""),
    )


def ask_change_summary(turn: Turn) -> None:
    request = _booking(turn)
    draft = _change_draft(turn)
    quote = changes.quote_change(
        turn.session,
        district_id=turn.district_id,
        request_id=request.id or 0,
        draft=draft,
        now=turn.now,
        school_id=turn.member.school_id,
    )
    after = turn._(
        "#{request_id} · {language} · {mode} · {starts_at} · {minutes} min",
        request_id=request.id,
        language=request.language,
        mode=draft.mode.value,
        starts_at=draft.starts_at,
        minutes=draft.duration_minutes,
    )
    lines = [
        turn._("Change of a booking:"),
        turn._("Before: {line}", line=request_line(turn.t, request)),
        turn._("After: {line}", line=after),
    ]
    place = draft.place.strip() or _school(turn).address
    if draft.mode is not Mode.WRITTEN and place != request.place:
        lines.append(turn._("Place: {place}", place=place))
    lines.append(
        turn._(
            "Reserved in the budget: {before_cents} now, {after_cents} with the change.",
            before_cents=quote.before_cents,
            after_cents=quote.after_cents,
        )
    )
    if quote.fee_cents:
        lines.append(
            turn._(
                "This is inside the cancellation window: if the interpreter cannot keep the change, "
                "it counts as a late cancellation and {fee_cents} is charged to the budget.",
                fee_cents=quote.fee_cents,
            )
        )
    lines.append(turn._("The interpreter is asked to confirm; until then the booking stays as it is."))
    choices = [
        turn.choice("send", "Send the change"),
        turn.choice("field", "Change something else"),
        turn.choice("drop", "Discard"),
    ]
    turn.say_text("\n".join(lines), choices)


def take_change_summary(turn: Turn, answer: Answer) -> str | None:
    if answer.key == "field":
        return "field"
    if answer.key == "drop":
        turn.finish()
        turn.say("Nothing was changed.")
        return None
    if answer.key != "send":
        raise InvalidInput(N_("Please choose one of the options."))
    changes.ask_change(
        turn.session,
        district_id=turn.district_id,
        request_id=int(turn.draft["request_id"]),
        draft=_change_draft(turn),
        actor=turn.actor,
        now=turn.now,
        school_id=turn.member.school_id,
    )
    turn.finish()
    turn.say("The change is sent. The interpreter is asked; you will hear the answer.")
    return None


CHANGE = Flow(
    Role.SCHOOL,
    {
        "field": Step(ask_change_field, take_change_field),
        "when": Step(_while_booked(ask_when), _then_summary(take_when)),
        "duration": Step(_while_booked(ask_duration), _then_summary(take_duration), numeric=True),
        "place": Step(_while_booked(ask_place), _then_summary(take_place)),
        "mode": Step(ask_change_mode, take_change_mode),
        "summary": Step(ask_change_summary, take_change_summary),
    },
    unfinished=N_("Your change has not been sent yet."),
)


def confirm_closeout(turn: Turn, request_id: int) -> None:
    """Confirm the interpreter's report; the amount is charged to the budget."""
    closeout.confirm(
        turn.session,
        district_id=turn.district_id,
        request_id=request_id,
        actor=turn.actor,
        now=turn.now,
        school_id=turn.member.school_id,
    )
    turn.say("Thank you, the report for #{request_id} is confirmed.", request_id=request_id)


def dispute_closeout(turn: Turn, request_id: int) -> None:
    """Ask why the report is wrong."""
    turn.start("dispute", "reason", request_id=request_id)
    ask_dispute(turn)


def ask_dispute(turn: Turn) -> None:
    turn.ask(N_("What is wrong with the report? One sentence for the coordination office, please."))


def take_dispute(turn: Turn, answer: Answer) -> None:
    closeout.dispute(
        turn.session,
        district_id=turn.district_id,
        request_id=int(turn.draft["request_id"]),
        reason=answer.text,
        actor=turn.actor,
        now=turn.now,
        school_id=turn.member.school_id,
    )
    turn.finish()
    turn.say("The coordination office will look at it.")


SCHOOL = Feature(
    role=Role.SCHOOL,
    commands={
        "request": (start_request, N_("ask for an interpreter")),
        "bookings": (show_bookings, N_("your requests and bookings")),
    },
    actions={
        "rq:cx": cancel_booking,
        "rq:cg": change_booking,
        "co:ok": confirm_closeout,
        "co:no": dispute_closeout,
        "ls:bk": bookings_page,
    },
    flows={
        "request": REQUEST,
        "change": CHANGE,
        "cancel": Flow(
            Role.SCHOOL,
            {"confirm": Step(ask_cancel, take_cancel)},
            unfinished=N_("You have not yet said whether to cancel."),
        ),
        "dispute": Flow(
            Role.SCHOOL,
            {"reason": Step(ask_dispute, take_dispute)},
            unfinished=N_("Your objection to the report has not been sent yet."),
        ),
    },
)
