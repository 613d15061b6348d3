"""The coordinator's /deactivate: pick a school contact or an interpreter (or name any member by id),
read what follows, confirm. The rules are services/access.py's."""

from dataclasses import replace

from bot.conversation.answers import MAX_ID, Answer, whole_number
from bot.conversation.turn import Flow, Step, Turn
from bot.conversation.views import Section, request_line, show_page
from bot.i18n import Translator
from db.models import Member, Request, School
from services import access
from services.errors import InvalidInput
from services.text import N_
from services.vocabulary import Role

ROLE_LABELS = {
    Role.SCHOOL: N_("school contact"),
    Role.INTERPRETER: N_("interpreter"),
    Role.COORDINATOR: N_("coordinator"),
}
HAND_BACK_REASON = N_("The coordination office has ended this interpreter's access.")


def show_deactivate(turn: Turn, arg: str) -> None:
    """List who may be deactivated, or ask to confirm for the member whose id follows (/deactivate 12)."""
    if not arg.strip():
        deactivate_page(turn, 1)
        return
    member_id = whole_number(arg.strip(), most=MAX_ID)
    if member_id is None:
        raise InvalidInput(N_("“{value}” is not a whole number."), value=arg.strip())
    pick(turn, member_id)


def deactivate_page(turn: Turn, number: int) -> None:
    """One page of /deactivate: interpreters, then school contacts, each with a button."""
    interpreters = Section(N_("Interpreters:"), N_("Nobody here can be deactivated."))
    contacts = Section(N_("School contacts:"), N_("Nobody here can be deactivated."))
    for member in access.deactivatable(turn.session, turn.district_id):
        name = access.display_name(turn.session, member)
        line = _who(turn, member, name)
        button = turn.choice(f"dc:pk:{member.id}", "Deactivate {name}", name=name)
        (interpreters if member.role == Role.INTERPRETER else contacts).entries.append((line, [button]))
    if not interpreters.entries:
        interpreters, contacts = contacts, interpreters
    show_page(turn, "ls:dc", [interpreters, contacts], number)
    hint = turn._("A coordinator is deactivated by member id: /deactivate ID.")
    turn.replies[-1] = replace(turn.replies[-1], text=f"{hint}\n\n{turn.replies[-1].text}")


def _who(turn: Turn, member: Member, name: str) -> str:
    role = turn.t.gettext(ROLE_LABELS[Role(member.role)])
    school = turn.session.get(School, member.school_id) if member.school_id is not None else None
    where = f", {school.name}" if school is not None else ""
    return turn._(
        "{name} ({role}{school}, member {member_id})", name=name, role=role, school=where, member_id=member.id
    )


def pick(turn: Turn, member_id: int) -> None:
    """Begin the confirmation for one member."""
    access.member_in(turn.session, district_id=turn.district_id, member_id=member_id)
    turn.start("deactivate", "confirm", member_id=member_id)
    ask_confirm(turn)


def _ahead(turn: Turn, member: Member) -> list[Request]:
    if member.role != Role.INTERPRETER or member.interpreter_id is None:
        return []
    return access.bookings_ahead(turn.session, member.interpreter_id, turn.now)


def ask_confirm(turn: Turn) -> None:
    member = access.member_in(
        turn.session, district_id=turn.district_id, member_id=int(turn.draft["member_id"])
    )
    name = access.display_name(turn.session, member)
    if member.deactivated_at is not None:
        turn.finish()
        turn.say("{name} is already deactivated. Nothing was changed.", name=name)
        return
    ahead = _ahead(turn, member)
    turn.draft["ahead"] = [r.id for r in ahead]
    lines = [turn._("Deactivate {who}?", who=_who(turn, member, name))]
    lines.append(
        turn._("Their access ends at once: the bot answers them with one sentence only. They are told once.")
    )
    if member.role == Role.INTERPRETER:
        lines.append(turn._("They get no more job offers; their open offers go to others."))
        if ahead:
            lines.append(
                turn._("Their sessions ahead are handed back and offered to others; the schools are told:")
            )
            lines += [request_line(turn.t, r) for r in ahead]
    elif member.role == Role.SCHOOL:
        lines.append(turn._("The school and its requests stay; its other contacts keep their access."))
    lines.append(
        turn._(
            "Their chat links are removed after 30 days. "
            "“python -m bot person activate --member {member_id}” gives the access back.",
            member_id=member.id,
        )
    )
    label = N_("Hand back and deactivate") if ahead else N_("Deactivate")
    turn.say_text(
        "\n".join(lines), [turn.choice("deactivate", label), turn.choice("keep", "Keep their access")]
    )


def take_confirm(turn: Turn, answer: Answer) -> str | None:
    if answer.key == "keep":
        turn.finish()
        turn.say("Nothing was changed.")
        return None
    if answer.key != "deactivate":
        raise InvalidInput(N_("Please choose one of the options."))
    member_id = int(turn.draft["member_id"])
    member = access.member_in(turn.session, district_id=turn.district_id, member_id=member_id)
    if [r.id for r in _ahead(turn, member)] != turn.draft.get("ahead", []):
        turn.say("Their bookings changed meanwhile. Please read again.")
        ask_confirm(turn)
        return None
    done = access.deactivate_member(
        turn.session,
        district_id=turn.district_id,
        member_id=member_id,
        actor=turn.actor,
        now=turn.now,
        hand_back_reason=turn.t.gettext(HAND_BACK_REASON) if turn.draft.get("ahead") else None,
    )
    turn.finish()
    turn.say_text("\n".join(outcome_lines(turn.t, done)))
    return None


def outcome_lines(t: Translator, done: access.Deactivation) -> list[str]:
    """What a deactivation did, as the coordinator reads it (in chat and on the command line)."""
    if done.already:
        return [t.render(N_("{name} is already deactivated. Nothing was changed."), {"name": done.name})]
    lines = [
        t.render(N_("{name} is deactivated: their access has ended, and they are told."), {"name": done.name})
    ]
    if done.role is Role.INTERPRETER:
        handed = ", ".join(f"#{i}" for i in done.handed_back_request_ids)
        lines.append(
            t.render(
                N_("Open offers withdrawn: {offers}. Sessions handed back: {requests}."),
                {"offers": len(done.withdrawn_offer_ids), "requests": handed or "0"},
            )
        )
    if done.unreported_request_ids:
        unreported = ", ".join(f"#{i}" for i in done.unreported_request_ids)
        lines.append(
            t.render(
                N_("Not reported yet: {requests}. They can no longer report these sessions."),
                {"requests": unreported},
            )
        )
    if done.contacts_left == 0:
        lines.append(
            t.gettext(N_("The school has no other active contact now: send someone there an invite code."))
        )
    return lines


DEACTIVATE_FLOW = Flow(
    Role.COORDINATOR,
    {"confirm": Step(ask_confirm, take_confirm)},
    unfinished=N_("Nobody has been deactivated yet."),
)
