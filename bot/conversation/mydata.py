"""/mydata for every role: what is stored about the person (Art. 15 DSGVO) as a readable summary and a
JSON file, and their erasure (Art. 17) behind a button and a confirmation that says what goes, what
stays and why (Art. 17(3)(b)). The button names the member it is for; the member acting is read from
the database, so it only ever erases its presser's own data.
"""

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from bot.conversation.answers import Answer
from bot.conversation.privacy import duration
from bot.conversation.turn import STAY, Flow, Step, Turn
from bot.i18n import Translator
from bot.messages import Attachment
from db.models import Request
from services import access, personal_data
from services.personal_data import KEEPS, KEPT, REMOVED, REMOVES, ErasureReport
from services.policy import load_policy
from services.text import N_
from services.vocabulary import Role

FLOW = "mydata"
ERASE = "my:er"  # the button under the summary: `my:er:<member id>`
YES, NO = "my-erase-yes", "my-erase-no"

# Per table of the export, what the summary calls its rows.
TABLES: dict[str, str] = {
    "chat_identity": N_("Linked chats"),
    "interpreter_language": N_("Languages"),
    "absence": N_("Absences"),
    "offer": N_("Offers to you"),
    "request": N_("Requests (made by you or booked for you)"),
    "booking_change": N_("Changes of bookings"),
    "closeout": N_("Reports after sessions"),
    "ledger_entry": N_("Entries in the budget's books"),
    "invite": N_("Invite codes"),
    "dialog_state": N_("Unfinished dialog"),
    "outbox_message": N_("Notifications"),
    "delivery": N_("Messages to your chats"),
    "audit_event": N_("Recorded actions"),
}


def summary(turn: Turn, exported: dict[str, Any]) -> str:
    """The export in a few lines: the profile, then how many rows of each kind."""
    tables = exported["tables"]
    member = tables["member"][0]
    lines = [
        turn._("What Dolmetscherpool stores about you (member {member_id}):", member_id=turn.member_id),
        turn._("Name: {name}", name=member["name"] or "—"),
    ]
    for person in tables.get("interpreter", []):
        lines.append(
            turn._(
                "Interpreter {interpreter_id}: {name}, {municipality}; phone {phone}, e-mail {email}",
                interpreter_id=person["id"],
                name=person["name"],
                municipality=person["municipality"] or "—",
                phone=person["phone"] or "—",
                email=person["email"] or "—",
            )
        )
    for school in tables.get("school", []):
        lines.append(turn._("School: {school}", school=school["name"]))
    for key, label in TABLES.items():
        if key in tables:
            lines.append(f"{turn.t.gettext(label)}: {len(tables[key])}")
    for year in exported.get("earnings", []):
        lines.append(
            turn._(
                "Paid for sessions in {year}: {paid_cents}", year=year["year"], paid_cents=year["paid_cents"]
            )
        )
    lines += ["", turn.t.gettext("The attached file holds every stored field (JSON).")]
    return "\n".join(lines)


def show_my_data(turn: Turn, _arg: str) -> None:
    """Send the summary and the JSON file of everything stored about the person, with the erase button."""
    exported = personal_data.export(turn.session, turn.member_id)
    data = personal_data.to_json(exported)
    erase = turn.choice(f"{ERASE}:{turn.member_id}", N_("Erase my data …"))
    turn.say_text(summary(turn, exported), [erase])
    turn.attach(Attachment(f"mydata-{turn.member_id}.json", "application/json", data))


def offer_erasure(turn: Turn, member_id: int) -> None:
    """The erase button: begin the confirmation (only for the presser's own data)."""
    if member_id != turn.member_id:
        turn.say("This button is not meant for you.")
        return
    turn.start(FLOW, "confirm")
    ask_confirmation(turn)


def _listed(t: Translator, labels: dict[str, str], keys: Iterable[str]) -> str:
    return "\n".join(f"• {t.gettext(labels[key])}" for key in keys)


def preview_text(t: Translator, role: Role, retention: timedelta) -> str:
    """What an erasure of a person of this role removes, what it keeps, why and for how long."""
    return t.render(
        N_(
            "Erasing removes at once:\n{removed}\n\nKept, because budget law requires it (Art. 17(3)(b) "
            "GDPR), and referred to by number only:\n{kept}\nThese are deleted {retention} after the end "
            "of their fiscal year."
        ),
        {
            "removed": _listed(t, REMOVED, REMOVES[role]),
            "kept": _listed(t, KEPT, KEEPS[role]),
            "retention": duration(t, retention),
        },
    )


def outcome_text(t: Translator, report: ErasureReport) -> str:
    """What an erasure removed (rows) and kept until when; a repeated one says it found nothing more."""
    removed = "\n".join(f"• {t.gettext(REMOVED[key])}: {count}" for key, count in report.removed)
    kept = "\n".join(
        t.render(
            N_("• {what}: {count}, at the latest until {until_on}"),
            {"what": t.gettext(KEPT[k.what]), "count": k.count, "until_on": k.until},
        )
        for k in report.kept
    )
    if report.already and not report.removed:
        head = t.render(
            N_("The data of member {member_id} had been erased already."), {"member_id": report.member_id}
        )
    else:
        head = t.render(N_("Removed:\n{removed}"), {"removed": removed})
    return head + "\n\n" + t.render(N_("Kept for budget law, by number only:\n{kept}"), {"kept": kept})


def ask_confirmation(turn: Turn) -> None:
    """Say what erasure removes, what it keeps and why, and for how long; ask yes or no."""
    retention = load_policy(turn.session, turn.district_id).retention_accounts
    text = (
        preview_text(turn.t, turn.role, retention)
        + "\n\n"
        + turn._(
            "Afterwards this bot no longer knows you: this chat is unlinked, and to use the bot again you "
            "would need a new invite code. Erase your data now?"
        )
    )
    choices = [turn.choice(YES, N_("Yes, erase my data")), turn.choice(NO, N_("No, keep everything"))]
    turn.say_text(text, choices)


def take_confirmation(turn: Turn, answer: Answer) -> str | None:
    if answer.key == NO:
        turn.finish()
        turn.say("Nothing was erased.")
        return None
    if answer.key != YES:
        ask_confirmation(turn)
        return STAY
    ahead = _sessions_ahead(turn)
    if ahead:
        turn.finish()
        turn.say(
            N_(
                "Nothing was erased: you still have sessions ahead ({requests}). So that no school is "
                "left without its interpreter, please give them back first (/jobs) or ask the "
                "coordination office; then erase your data."
            ),
            requests=", ".join(f"#{r.id}" for r in ahead),
        )
        return None
    report = personal_data.erase(turn.session, member_id=turn.member_id, actor=turn.actor, now=turn.now)
    turn.erased = True
    turn.finish()
    turn.say_text(
        turn._("Your data was erased.")
        + "\n\n"
        + outcome_text(turn.t, report)
        + "\n\n"
        + turn._("The coordination office has been told. This chat is no longer linked. Goodbye!")
    )
    return None


def _sessions_ahead(turn: Turn) -> list[Request]:
    """An interpreter's own bookings not yet begun: the erasure would hand them back behind the
    school's back, so the person gives them back themselves first (a coordinator may force it)."""
    interpreter_id = turn.member.interpreter_id
    if turn.role != Role.INTERPRETER or interpreter_id is None:
        return []
    return access.bookings_ahead(turn.session, interpreter_id, turn.now)


MYDATA = Flow(role=None, steps={"confirm": Step(ask_confirmation, take_confirmation)}, resume="mydata")
FLOWS = {FLOW: MYDATA}
ACTIONS = {ERASE: offer_erasure}
