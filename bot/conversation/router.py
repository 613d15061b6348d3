"""The conversation's entry point: one incoming event, handled in one transaction, gives the replies.

The member and their role are read from the database on every event; a button only names what
was chosen, never who may choose it. Commands start with `/` (Telegram, terminal) or `!` (Matrix).
A domain error rolls the whole event back and is answered with its sentence, and the step is
asked again, so bad input never changes anything.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from bot.conversation.answers import MAX_ID, resolve, whole_number
from bot.conversation.coordinator import COORDINATOR
from bot.conversation.interpreter import INTERPRETER
from bot.conversation.mydata import ACTIONS as MYDATA_ACTIONS
from bot.conversation.mydata import FLOWS as MYDATA_FLOWS
from bot.conversation.mydata import show_my_data
from bot.conversation.privacy import for_stranger, notice_text, pointer, refused_chat, short_notice
from bot.conversation.school import SCHOOL
from bot.conversation.turn import OUTER, STAY, Feature, Flow, Turn
from bot.i18n import LOCALES, Translator, echo, pick_locale
from bot.messages import Choice, Incoming, Reply, reply_to_body
from bot.notifications import render
from db.models import ChatIdentity, District, Member
from db.uow import UnitOfWork
from services import deliveries, identities, outbox, platforms, strangers
from services.dialogs import Dialog, first_time, load_dialog, save_dialog
from services.due import armed_any
from services.errors import DomainError, InvalidInvite
from services.invites import create_link_code
from services.text import N_
from services.vocabulary import Role

log = logging.getLogger(__name__)

CLASH_ATTEMPTS = 3  # an event that meets a unique-row clash is handled again from the start
MAX_BENEATH = 5  # unfinished dialogs kept beneath the current one; a sixth drops the oldest

FEATURES: dict[Role, Feature] = {
    Role.SCHOOL: SCHOOL,
    Role.INTERPRETER: INTERPRETER,
    Role.COORDINATOR: COORDINATOR,
}
COMMON_HELP = {
    "help": N_("what you can do here"),
    "language": N_("Sprache / language"),
    "connect": N_("use this bot on another messenger too"),
    "notify": N_("where notifications reach you"),
    "privacy": N_("the privacy notice: what is stored, for how long, your rights"),
    "mydata": N_("what is stored about you, as a file; erase it"),
    "continue": N_("go on with an unfinished dialog"),
    "cancel": N_("leave the current dialog"),
}
# German words people type instead of the commands.
ALIASES = {
    "hilfe": "help",
    "sprache": "language",
    "verbinden": "connect",
    "benachrichtigungen": "notify",
    "abbrechen": "cancel",
    "meinedaten": "mydata",
    "datenschutz": "privacy",
    "weiter": "continue",
    "anfrage": "request",
    "buchungen": "bookings",
    "einsaetze": "jobs",
    "einsätze": "jobs",
    "bericht": "report",
    "abwesend": "away",
    "verdienst": "earnings",
    "haushalt": "budget",
    "anfragen": "requests",
    "deaktivieren": "deactivate",
}
CANCEL_WORDS = {"abbrechen", "cancel", "stop"}
LANGUAGE_NAMES = {"de": "Deutsch", "en": "English"}
PLATFORM_NAMES = {"telegram": "Telegram", "matrix": "Matrix"}
ROLE_NAMES = {  # said as `as {role}`: English needs the article
    Role.SCHOOL: N_("a school"),
    Role.INTERPRETER: N_("an interpreter"),
    Role.COORDINATOR: N_("a coordinator"),
}


def split_command(text: str) -> tuple[str, str] | None:
    """`/start CODE` or `!start CODE` -> (`start`, `CODE`); `/request@bot` -> (`request`, ``)."""
    stripped = text.strip()
    if len(stripped) < 2 or stripped[0] not in "/!" or not stripped[1].isalpha():
        return None
    head, _, arg = stripped[1:].partition(" ")
    name = head.split("@")[0].lower()
    return ALIASES.get(name, name), arg.strip()


def command_list(role: Role | None) -> list[tuple[str, str]]:
    """(command, help message id) for a role, as the help text and the platform's command menu show them."""
    listed = list(FEATURES[role].commands.items()) if role else []
    own = [(name, text) for name, (_, text) in listed]
    return own + list(COMMON_HELP.items())


def _turn_of(session: Session, member: Member, now: datetime) -> Turn:
    """A turn for a known member: their language and their stored dialog."""
    assert member.id is not None
    return Turn(session, member, Translator(pick_locale(member.locale)), now, load_dialog(session, member.id))


@dataclass(frozen=True)
class Handled:
    """What one event gave: replies to send as they are (a stranger's, stored nowhere), and the
    answers stored as deliveries, as (delivery id, reply), that may go out at once."""

    direct: list[Reply] = field(default_factory=list)
    answers: list[tuple[int, Reply]] = field(default_factory=list)
    # The event's own notifications to the same chat (delivery, rendered reply, message it edits),
    # to go out right after the answers: the interpreter's confirmation of the job they accepted.
    notices: list[tuple[deliveries.Due, Reply, str | None]] = field(default_factory=list)
    # It wrote no notification, armed no due row and left no answer for the outbox: the sender and
    # the timers need not look again (the answers go out pushed).
    quiet: bool = False


def _store_replies(
    session: Session,
    replies: list[Reply],
    identity_id: int | None,
    *,
    now: datetime,
    pending: frozenset[int] = frozenset(),
) -> list[int]:
    """The replies as deliveries to the chat the event came from; returns their ids in order."""
    assert identity_id is not None
    return [
        deliveries.add_answer(
            session,
            identity_id=identity_id,
            body=reply_to_body(reply),
            attachment=reply.attachment.data if reply.attachment is not None else None,
            now=now,
            file_pending=index in pending,
        )
        for index, reply in enumerate(replies)
    ]


def _ready(session: Session, identity_id: int | None, stored: list[int], replies: list[Reply]) -> Handled:
    """The stored answers, to go out at once unless earlier messages to the chat still wait (a retry):
    then they wait their turn in the outbox, so the chat's order holds."""
    assert identity_id is not None
    if not stored or deliveries.waiting_before(session, identity_id, stored[0]):
        return Handled()
    return Handled(answers=list(zip(stored, replies, strict=True)))


def _own_notices(
    session: Session, member: Member, identity: ChatIdentity, now: datetime, *, after_answers: bool
) -> list[tuple[deliveries.Due, Reply, str | None]]:
    """The event's notifications to its own chat, expanded and rendered in its transaction, to go out
    at once (`Handled.notices`) instead of waiting for the sender to read the outbox: the actor's
    own reply first. None if an earlier message to the chat still waits (its order holds), or
    one cannot be rendered (the sender then finds it, and records the failure, as it would)."""
    assert identity.id is not None
    own = deliveries.expand_own(session, member=member, identity=identity, now=now)
    if not own or (not after_answers and deliveries.waiting_before(session, identity.id, own[0].delivery_id)):
        return []
    ready = []
    for due in own:
        assert due.template is not None
        try:
            reply = render(session, Translator(due.locale or "de"), due.template, due.params, Role(due.role))
        except Exception:
            log.exception("delivery %s cannot be rendered", due.delivery_id)
            break  # it and those after it go through the outbox, in order
        edit_id = (
            deliveries.first_message_id(session, due.delivery_id, identity_id=identity.id, ref=due.ref)
            if due.ref
            else None
        )
        ready.append((due, reply, edit_id))
    return ready


def _beneath(dialog: Dialog, depth: int = 1) -> dict[str, Any]:
    """A dialog as stored beneath a new one, with those beneath it, at most MAX_BENEATH deep."""
    draft = dict(dialog.draft)
    outer = draft.pop(OUTER, None)
    if isinstance(outer, dict) and depth < MAX_BENEATH:
        beneath = Dialog(outer["flow"], outer["step"], outer["draft"], dict(outer.get("choices", {})))
        draft[OUTER] = _beneath(beneath, depth + 1)
    return {"flow": dialog.flow, "step": dialog.step, "draft": draft, "choices": dialog.choices}


class Conversation:
    """Turns incoming events into replies; every platform talks to this one object."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime] | None = None) -> None:
        self.engine = engine
        self.clock = clock or (lambda: datetime.now(UTC))

    def locale_of(self, platform: str, user_id: str, hint: str | None = None) -> str:
        """The language to address a platform account in: its member's, else the platform's hint."""
        with UnitOfWork(self.engine) as uow:
            member = identities.member_of(uow.session, platform, user_id)
        return pick_locale(member.locale if member and member.locale else hint)

    def handle(self, event: Incoming) -> list[Reply]:
        """Handle one event; returns the replies for the same chat (notifications go through the outbox)."""
        return self._run(event, store=False).direct

    def handle_stored(self, event: Incoming) -> Handled:
        """Handle one event, storing a member's replies as deliveries in the event's own transaction.

        The answer then survives a crash between the commit and the send, and goes out through
        the one paced sender. Files drawn after the commit are given to their deliveries before
        this returns. Only a stranger's replies come back as `direct`.
        """
        return self._run(event, store=True)

    def _run(self, event: Incoming, *, store: bool) -> Handled:
        for attempt in range(1, CLASH_ATTEMPTS + 1):
            now = self.clock()
            try:
                return self._handle(event, now, store)
            except DomainError as exc:
                return self._handle_error(event, exc, now, store)
            except IntegrityError:
                # Another transaction wrote the same row first: the same event delivered twice at
                # once (then the retry finds it recorded and does nothing), or the sender storing a
                # notification's buttons as the dialog's choices while this press was handled.
                log.info("event %s on %s clashed (attempt %s)", event.event_key, event.platform, attempt)
        return Handled()

    def _handle(self, event: Incoming, now: datetime, store: bool) -> Handled:
        with UnitOfWork(self.engine) as uow:
            session = uow.session
            known = identities.identity_and_member(session, event.platform, event.user_id)
            if known is None:
                # Before first_time: a stranger's message must not write a row (services/strangers.py).
                replies = self._stranger(uow, event, now)
                linked = identities.find_identity(session, event.platform, event.user_id) if store else None
                if linked is None:
                    uow.commit()
                    return Handled(direct=replies)
                # The code linked the chat: its welcome is an answer like any other.
                handled = _ready(
                    session, linked.id, _store_replies(session, replies, linked.id, now=now), replies
                )
                uow.commit()
                return handled
            if event.event_key and not first_time(
                session, platform=event.platform, event_key=event.event_key, now=now
            ):
                return Handled()
            identity, member = known
            if member.deactivated_at is not None:
                handled = self._access_ended(session, member, identity, event, now=now, store=store)
                uow.commit()
                return handled
            refusal = self._refused_platform(session, member, event, now)
            if refusal is not None:
                uow.commit()  # the event as handled; the chat is not touched, so nothing is sent there
                return Handled(direct=[refusal])
            identities.touch(session, identity, chat_id=event.chat_id, now=now)
            turn = _turn_of(session, member, now)
            had_row = turn.dialog.kept
            self._dispatch(turn, event)
            if turn.erased:
                uow.commit()  # the person erased their data (/mydata), this chat's link with it
                return Handled(direct=turn.replies)
            save_dialog(session, turn.member_id, turn.dialog, now=now, had_row=had_row)
            if not store:
                uow.commit()
                return Handled(direct=turn.render_files())
            pending = frozenset(index for index, *_ in turn.pending_files)
            stored = _store_replies(session, turn.replies, identity.id, now=now, pending=pending)
            ready = _ready(session, identity.id, stored, turn.replies)
            blocked = bool(stored) and not ready.answers  # earlier messages to the chat wait: all wait
            told = outbox.wrote_any(session)  # no notification written: none of its own to expand
            mine = told and not blocked
            own = _own_notices(session, member, identity, now, after_answers=bool(stored)) if mine else []
            quiet = not told and not blocked and not armed_any(session)
            uow.commit()
        if pending:
            self._attach_files(turn, stored)
            # Now with their files: the same answers, if they may go at once.
            if ready.answers:
                return Handled(answers=list(zip(stored, turn.replies, strict=True)), notices=own, quiet=quiet)
            return ready
        return Handled(direct=ready.direct, answers=ready.answers, notices=own, quiet=quiet)

    @staticmethod
    def _access_ended(
        session: Session,
        member: Member,
        identity: ChatIdentity,
        event: Incoming,
        *,
        now: datetime,
        store: bool,
    ) -> Handled:
        """A deactivated member: one sentence, whatever they sent; no dialog, no command, no button.

        Nothing else is written: not when they were last seen, not their dialog. Only the chat the
        answer goes to follows theirs (a new direct room on Matrix), so the sentence reaches them.
        """
        district = session.get(District, member.district_id)
        t = Translator(pick_locale(member.locale))
        reply = Reply(
            t.render(
                N_(
                    "Your access to Dolmetscherpool has ended. For questions, a copy of your data or its "
                    "erasure, please contact the coordination office of {district}."
                ),
                {"district": district.name if district is not None else "—"},
            )
        )
        if not store:
            return Handled(direct=[reply])
        if identity.chat_id != event.chat_id:
            identities.move_chat(session, identity, event.chat_id)
        return _ready(session, identity.id, _store_replies(session, [reply], identity.id, now=now), [reply])

    def _attach_files(self, turn: Turn, stored: list[int]) -> None:
        """Draw the files of stored answers (after the commit) and give them to their deliveries."""
        waiting = sorted({index for index, *_ in turn.pending_files})
        replies = turn.render_files()
        with UnitOfWork(self.engine) as uow:
            for index in waiting:
                reply = replies[index]
                data = reply.attachment.data if reply.attachment is not None else None
                deliveries.attach_file(
                    uow.session, stored[index], body=reply_to_body(reply), data=data, now=self.clock()
                )
            uow.commit()

    def _handle_error(self, event: Incoming, exc: DomainError, now: datetime, store: bool) -> Handled:
        """Answer a domain error with its sentence; nothing of the failed event was kept."""
        with UnitOfWork(self.engine) as uow:
            session = uow.session
            if event.event_key:
                first_time(session, platform=event.platform, event_key=event.event_key, now=now)
            member = identities.member_of(session, event.platform, event.user_id)
            if member is None:
                translator = Translator(pick_locale(event.language_hint))
                uow.commit()
                return Handled(direct=[Reply(translator.error(exc))])
            turn = _turn_of(session, member, now)
            had_row = turn.dialog.kept
            turn.say_text(turn.t.error(exc))
            flow = self._flow(turn)
            if flow is not None and turn.dialog.step in flow.steps:
                outer = turn.dialog.draft.get(OUTER)
                try:
                    flow.steps[turn.dialog.step].ask(turn)
                except DomainError:
                    turn.finish()  # the dialog's subject is gone (cancelled, taken): start afresh
                    self._give_back(turn, outer)
            save_dialog(session, turn.member_id, turn.dialog, now=now, had_row=had_row)
            identity = identities.find_identity(session, event.platform, event.user_id) if store else None
            if identity is None:
                uow.commit()
                return Handled(direct=turn.replies)
            identities.touch(session, identity, chat_id=event.chat_id, now=now)
            stored = _store_replies(session, turn.replies, identity.id, now=now)
            handled = _ready(session, identity.id, stored, turn.replies)
            uow.commit()
            return handled

    # --- strangers ------------------------------------------------------------------------------

    def _stranger(self, uow: UnitOfWork, event: Incoming, now: datetime) -> list[Reply]:
        """Onboarding only: a valid code links the chat; anything else gets the explanation.

        Writes nothing but the attempt counter, unless the code links the chat: then the event is
        recorded as handled, so its redelivery is not taken for the new member's `/start`.
        """
        t = Translator(pick_locale(event.language_hint))
        command = split_command(event.text)
        if command is not None and command[0] == "privacy":
            return [Reply(for_stranger(t, uow.session, command[1]))]
        if command is None or command[0] != "start" or not command[1]:
            return [
                Reply(
                    t.gettext(
                        "Welcome to Dolmetscherpool. This bot is for the schools, interpreters and "
                        "coordination office of a county's interpreter pool. To take part you need an "
                        "invite code from your "
                        "coordination office; then send: /start CODE"
                    )
                    + "\n\n"
                    + short_notice(t, uow.session)
                )
            ]
        try:
            member = strangers.redeem(
                uow.session,
                platform=event.platform,
                user_id=event.user_id,
                chat_id=event.chat_id,
                code=command[1],
                now=now,
                locale=t.locale,
            )
        except (strangers.TooManyAttempts, InvalidInvite) as exc:
            return [Reply(t.error(exc))]  # answered here, so the attempt's count is committed
        if event.event_key:
            first_time(uow.session, platform=event.platform, event_key=event.event_key, now=now)
        turn = _turn_of(uow.session, member, now)  # a linked chat keeps the person's language and dialog
        role = turn.t.gettext(ROLE_NAMES[turn.role])
        if len(identities.identities_of(uow.session, turn.member_id, refused_too=True)) > 1:
            welcome = turn._("This chat is linked now: here too you act as {role}.", role=role)
        else:
            welcome = turn._("Welcome! You are registered as {role}.", role=role) + "\n\n" + pointer(turn.t)
        turn.say_text(welcome + "\n\n" + self._help_text(turn))
        return turn.replies

    @staticmethod
    def _refused_platform(session: Session, member: Member, event: Incoming, now: datetime) -> Reply | None:
        """The answer to a chat on a platform the member's county no longer allows, or None."""
        if platforms.allows(platforms.allowed_platforms(session, member.district_id), event.platform):
            return None
        command = split_command(event.text) if event.choice is None else None
        t = Translator(pick_locale(member.locale or event.language_hint))
        name = command[0] if command else ""
        return Reply(refused_chat(t, session, member, platform=event.platform, command=name, now=now))

    # --- members --------------------------------------------------------------------------------

    def _flow(self, turn: Turn) -> Flow | None:
        return FEATURES[turn.role].flows.get(turn.dialog.flow) or MYDATA_FLOWS.get(turn.dialog.flow)

    def _dispatch(self, turn: Turn, event: Incoming) -> None:
        outer = turn.dialog.draft.get(OUTER) if turn.dialog.active else None
        self._dispatch_event(turn, event)
        if not turn.dialog.active:
            self._give_back(turn, outer)

    def _give_back(self, turn: Turn, outer: object) -> None:
        """The dialog begun on top of another has ended: the one beneath is offered again."""
        if isinstance(outer, dict):
            choices = turn.dialog.choices or dict(outer.get("choices", {}))
            turn.dialog = Dialog(outer["flow"], outer["step"], outer["draft"], choices)
            self._remind(turn)

    def _dispatch_event(self, turn: Turn, event: Incoming) -> None:
        feature = FEATURES[turn.role]
        command = split_command(event.text) if event.choice is None else None
        if command is not None:
            self._command(turn, feature, *command)
            return
        if event.choice is None and event.text.strip().casefold() in CANCEL_WORDS:
            self._cancel(turn)
            return
        flow = self._flow(turn)
        step = flow.steps.get(turn.dialog.step) if flow else None
        answer = resolve(event.text, event.choice, turn.dialog.choices, positions=not (step and step.numeric))
        if answer.key is not None and ":" in answer.key:
            self._action(turn, feature, answer.key)
            return
        if event.choice is not None and answer.key is None:
            turn.say("This button belongs to an earlier question. Please use the latest one.")
            return
        if self._language_choice(turn, answer.key) or self._notify_choice(turn, answer.key):
            if turn.dialog.active:
                self._remind(turn)
            return
        if step is None:
            self._not_understood(turn)
            return
        following = step.take(turn, answer)
        if following is None or following == STAY:
            return
        turn.dialog.step = following
        turn.dialog.choices = {}
        flow_now = self._flow(turn)
        assert flow_now is not None
        flow_now.steps[following].ask(turn)

    def _command(self, turn: Turn, feature: Feature, name: str, arg: str) -> None:
        flow = self._flow(turn) if turn.dialog.active else None
        if name == "cancel":
            self._cancel(turn)
        elif name == "start":
            turn.say("You are already registered as {role}.", role=turn.t.gettext(ROLE_NAMES[turn.role]))
        elif name == "continue" or (flow is not None and name == flow.resume):
            self._resume(turn, flow)
        elif name in COMMON_HELP or name in feature.commands:
            self._aside(turn, lambda: self._run_command(turn, feature, name, arg))
        else:
            turn.say("I do not know the command /{name}. /help lists what you can do.", name=echo(name))

    def _run_command(self, turn: Turn, feature: Feature, name: str, arg: str) -> None:
        if name == "help":
            self._help(turn)
        elif name == "language":
            choices = [Choice(f"lang-{code}", LANGUAGE_NAMES[code]) for code in LOCALES]
            turn.ask(N_("Which language should I use?"), choices)
        elif name == "connect":
            self._connect(turn)
        elif name == "notify":
            self._ask_notify(turn)
        elif name == "mydata":
            show_my_data(turn, arg)
        elif name == "privacy":
            turn.say_text(notice_text(turn.t, turn.session, turn.district_id))
        else:
            feature.commands[name][0](turn, arg)

    def _action(self, turn: Turn, feature: Feature, key: str) -> None:
        prefix, _, raw_id = key.rpartition(":")
        action = feature.actions.get(prefix) or MYDATA_ACTIONS.get(prefix)
        number = whole_number(raw_id, most=MAX_ID)
        if action is None or number is None:
            turn.say("This button is not meant for you.")
            return
        self._aside(turn, lambda: action(turn, number))

    def _aside(self, turn: Turn, run: Callable[[], None]) -> None:
        """Answer a command or a button without losing the unfinished dialog (DESIGN §7).

        What does not begin a dialog of its own leaves the unfinished one where it was, and says
        so. What begins one keeps the unfinished one beneath it (MAX_BENEATH deep), offered again
        when the new one ends.
        """
        kept = Dialog(turn.dialog.flow, turn.dialog.step, dict(turn.dialog.draft), dict(turn.dialog.choices))
        turn.finish()
        run()
        if not kept.active:
            return
        if turn.dialog.active:
            turn.dialog.draft[OUTER] = _beneath(kept)
            return
        # A typed number now picks from what was shown last; with nothing shown, still the step's options.
        turn.dialog = Dialog(kept.flow, kept.step, kept.draft, turn.dialog.choices or kept.choices)
        self._remind(turn)

    def _remind(self, turn: Turn) -> None:
        """Say that a dialog is unfinished, and how to go on with it or drop it."""
        flow = self._flow(turn)
        if flow is None or turn.dialog.step not in flow.steps:
            turn.finish()
            return
        turn.say(
            "{unfinished} Continue with /{command}, or drop it with /cancel.",
            unfinished=turn.t.gettext(flow.unfinished),
            command=flow.resume,
        )

    def _resume(self, turn: Turn, flow: Flow | None) -> None:
        """Ask the unfinished dialog's current question again."""
        if flow is None or turn.dialog.step not in flow.steps:
            turn.finish()
            turn.say("There is nothing to continue. /help lists what you can do.")
            return
        turn.dialog.choices = {}
        flow.steps[turn.dialog.step].ask(turn)

    def _cancel(self, turn: Turn) -> None:
        was_active = turn.dialog.active
        turn.finish()
        if was_active:
            turn.say("Cancelled. Nothing was saved.")
        else:
            turn.say("There was nothing to cancel.")

    def _help(self, turn: Turn) -> None:
        turn.say_text(self._help_text(turn))

    @staticmethod
    def _help_text(turn: Turn) -> str:
        lines = [turn._("What you can do as {role}:", role=turn.t.gettext(ROLE_NAMES[turn.role]))]
        lines += [f"/{name} – {turn.t.gettext(text)}" for name, text in command_list(turn.role)]
        return "\n".join(lines)

    def _language_choice(self, turn: Turn, key: str | None) -> bool:
        if key is None or not key.startswith("lang-") or key[5:] not in LOCALES:
            return False
        turn.member.locale = key[5:]
        turn.session.add(turn.member)
        turn.t = Translator(key[5:])
        turn.dialog.choices = {}
        turn.say("From now on I write in English.")  # each catalog names its own language
        return True

    @staticmethod
    def _connect(turn: Turn) -> None:
        _, code = create_link_code(turn.session, member=turn.member, now=turn.now)
        allowed = platforms.allowed_platforms(turn.session, turn.district_id)
        if len(allowed) == 1:
            turn.say(
                "Your county uses this bot only on {platforms}. To use it with a further account there, "
                "send it this message from that account within an hour:\n\n{command}start {code}\n\n"
                "The code works once.",
                platforms=platforms.names(allowed),
                command="!" if allowed == ("matrix",) else "/",
                code=code,
            )
            return
        turn.say(
            "To use this bot on another messenger too (Telegram or Matrix), send it this message "
            "there within an hour:\n\n/start {code}\n\nThe code works once. Notifications reach you "
            "in the chat you last wrote from; /notify changes that.",
            code=code,
        )

    @staticmethod
    def _ask_notify(turn: Turn) -> None:
        linked = identities.identities_of(turn.session, turn.member_id)
        names = sorted({PLATFORM_NAMES.get(i.platform, i.platform) for i in linked})
        choices = [
            turn.choice("notify-last", N_("Only in the chat I last wrote from")),
            turn.choice("notify-all", N_("In every linked chat")),
        ]
        turn.ask(
            N_("Where should notifications reach you? Linked: {platforms}."),
            choices,
            platforms=", ".join(names),
        )

    @staticmethod
    def _notify_choice(turn: Turn, key: str | None) -> bool:
        if key not in ("notify-last", "notify-all"):
            return False
        everywhere = key == "notify-all"
        identities.set_notify_everywhere(turn.session, turn.member, everywhere, now=turn.now)
        turn.dialog.choices = {}
        if everywhere:
            turn.say("Done: notifications now reach you in every linked chat.")
        else:
            turn.say("Done: notifications now reach you in the chat you last wrote from.")
        return True

    def _not_understood(self, turn: Turn) -> None:
        turn.say("I did not understand that. /help lists what you can do.")
