"""Steps shared by the interpreter's report and the coordinator's correction: kilometres and other costs."""

from bot.conversation.answers import Answer, parse_count, whole_number
from bot.conversation.turn import Step, Turn
from services.text import N_
from services.units import parse_money

MAX_KM = 1000


def km_step(question: str, then: str) -> Step:
    """Ask for the kilometres of the round trip (a button for 0), then go to `then`."""

    def ask(turn: Turn) -> None:
        turn.ask_number(question, [turn.choice("0", "0 km")])

    def take(turn: Turn, answer: Answer) -> str:
        picked = whole_number(answer.key or "", most=MAX_KM)
        turn.draft["km"] = parse_count(answer.text, most=MAX_KM) if picked is None else picked
        return then

    return Step(ask, take, numeric=True)


def expenses_step(then: str) -> Step:
    """Ask for tickets or other costs in euros (a button for none), then go to `then`."""

    def ask(turn: Turn) -> None:
        turn.ask_number(N_("Tickets or other costs in euros (e.g. 12.90)?"), [turn.choice("0", "None")])

    def take(turn: Turn, answer: Answer) -> str:
        turn.draft["expenses"] = 0 if answer.key == "0" else parse_money(answer.text)
        return then

    return Step(ask, take, numeric=True)
