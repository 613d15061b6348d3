"""What `doctor` asks the database about a district's set-up: people nobody can reach, rules gone wrong.

An interpreter is reachable when a member for them has a linked chat (they redeemed an invite);
matching does not know about chats, so an unreachable interpreter still takes a place in a wave
of offers that nobody reads. A school is reachable when one of its members has a linked chat.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlmodel import Session, col, exists, select

from db.models import ChatIdentity, Interpreter, Member, School
from services.errors import InvalidInput
from services.policy import RULES_BY_KEY, Policy, parse_input
from services.text import N_
from services.units import format_duration
from services.vocabulary import Role


def interpreters_without_chat(session: Session, district_id: int) -> list[Interpreter]:
    """The district's active interpreters with no member that has a linked chat, by id."""
    linked = (
        select(Member.id)
        .join(ChatIdentity, col(ChatIdentity.member_id) == col(Member.id))
        .where(Member.interpreter_id == Interpreter.id, Member.role == Role.INTERPRETER.value)
    )
    query = (
        select(Interpreter)
        .where(Interpreter.district_id == district_id, col(Interpreter.active).is_(True))
        .where(~exists(linked))
        .order_by(col(Interpreter.id))
    )
    return list(session.exec(query))


def schools_without_contact(session: Session, district_id: int) -> list[School]:
    """The district's active schools where no member has a linked chat (nobody can request), by id."""
    linked = (
        select(Member.id)
        .join(ChatIdentity, col(ChatIdentity.member_id) == col(Member.id))
        .where(Member.school_id == School.id, Member.role == Role.SCHOOL.value)
    )
    query = (
        select(School)
        .where(School.district_id == district_id, col(School.active).is_(True))
        .where(~exists(linked))
        .order_by(col(School.id))
    )
    return list(session.exec(query))


@dataclass(frozen=True)
class RuleProblem:
    """A stored rule that cannot be read, or lies outside its range (`error` says which, translatable)."""

    key: str
    value: str
    error: InvalidInput


def stored_rule_problems(values: Mapping[str, str]) -> list[RuleProblem]:
    """Stored rules that `policy set` would refuse today (rows written by hand, or by an older version).

    Stored values are read as they are, so a value outside its range works but may break the pool
    (a zero increment, an offer open for a year); one that cannot be read stops the policy loading.
    Keys no rule knows any more are ignored, as the policy ignores them.
    """
    problems = []
    for key, value in sorted(values.items()):
        if key not in RULES_BY_KEY:
            continue
        try:
            parse_input(key, value)
        except InvalidInput as exc:
            problems.append(RuleProblem(key, value, exc))
    return problems


@dataclass(frozen=True)
class Concern:
    """A combination of rules that works but probably is not what was meant (a message id and its params)."""

    message: str
    params: dict[str, object] = field(default_factory=dict)


def policy_concerns(policy: Policy) -> list[Concern]:
    """Rules that are each in range but fit badly together.

    An offer expires after `offer_timeout`, or earlier once `offer_timeout_share` of the time left
    before the session has passed. With the share at 100 % and a timeout as long as a mode's lead
    time, the first offers for a request at short notice may stay open until the session begins:
    no second wave, and the school hears that nobody accepted only when it is too late.
    """
    if policy.offer_timeout_share < 100:
        return []
    short_notice = (
        (
            policy.lead_time_in_person,
            N_(
                "Offers stay open for {timeout} and up to all the time left, but requests in person may "
                "come only {lead} ahead: their first offers may stay open until the session begins. "
                "Lower offer_timeout_share or offer_timeout."
            ),
        ),
        (
            policy.lead_time_remote,
            N_(
                "Offers stay open for {timeout} and up to all the time left, but requests by phone or "
                "video may come only {lead} ahead: their first offers may stay open until the session "
                "begins. Lower offer_timeout_share or offer_timeout."
            ),
        ),
        (
            policy.lead_time_written,
            N_(
                "Offers stay open for {timeout} and up to all the time left, but written requests may "
                "come only {lead} ahead: their first offers may stay open until the work is due. "
                "Lower offer_timeout_share or offer_timeout."
            ),
        ),
    )
    return [
        Concern(message, {"timeout": format_duration(policy.offer_timeout), "lead": format_duration(lead)})
        for lead, message in short_notice
        if policy.offer_timeout >= lead
    ]
