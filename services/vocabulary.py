"""The domain's enumerations and their user-visible labels (catalog message ids)."""

from enum import StrEnum

from services.text import N_

# The languages of the privacy notice (services.privacy); here so the CLI parser needs no database.
PRIVACY_LANGUAGES = ("de", "en")


class Mode(StrEnum):
    IN_PERSON = "in_person"
    PHONE = "phone"
    VIDEO = "video"
    WRITTEN = "written"


class Topic(StrEnum):
    PARENT_TALK = "parent_talk"
    PARENT_EVENING = "parent_evening"
    PARENT_LETTER = "parent_letter"
    OTHER = "other"


class Gender(StrEnum):
    FEMALE = "female"
    MALE = "male"


class Role(StrEnum):
    SCHOOL = "school"
    INTERPRETER = "interpreter"
    COORDINATOR = "coordinator"


class RequestState(StrEnum):
    REQUESTED = "requested"
    AWAITING_APPROVAL = "awaiting_approval"
    OFFERED = "offered"
    BOOKED = "booked"
    COMPLETED = "completed"
    SETTLED = "settled"
    UNFILLED = "unfilled"
    REFERRED = "referred"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


class OfferState(StrEnum):
    OPEN = "open"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"
    CANCELLED = "cancelled"  # accepted, then given back by the interpreter


class LedgerKind(StrEnum):
    RESERVE = "reserve"
    RELEASE = "release"
    CHARGE = "charge"
    ADJUST = "adjust"


class CloseoutState(StrEnum):
    REPORTED = "reported"
    CONFIRMED = "confirmed"
    DISPUTED = "disputed"
    CORRECTED = "corrected"


class UnmetReason(StrEnum):
    NOT_COVERED = "not_covered"  # no active pool member speaks the language
    # Members speak it, but nobody could or would take it. As unmet demand the one category of all
    # three below; as a request's reason: those who could were asked, and none accepted.
    NOT_FILLED = "not_filled"
    NOT_IN_MODE = "not_in_mode"  # nobody who speaks it works in the mode
    NOT_GENDER = "not_gender"  # some who speak it work in the mode, but none of the gender wished
    NOT_FREE = "not_free"  # those who could are busy or away at that time


class Recipient(StrEnum):
    SCHOOL = "school"
    INTERPRETER = "interpreter"
    COORDINATORS = "coordinators"  # every coordinator of the district; recipient_id is the district
    MEMBER = "member"  # one person of the district, whatever their role (the operator contact)


MODE_LABELS: dict[Mode, str] = {
    Mode.IN_PERSON: N_("in person"),
    Mode.PHONE: N_("by phone"),
    Mode.VIDEO: N_("by video"),
    Mode.WRITTEN: N_("written"),
}

TOPIC_LABELS: dict[Topic, str] = {
    Topic.PARENT_TALK: N_("parent talk"),
    Topic.PARENT_EVENING: N_("parent evening"),
    Topic.PARENT_LETTER: N_("parent letter"),
    Topic.OTHER: N_("other"),
}

STATE_LABELS: dict[RequestState, str] = {
    RequestState.REQUESTED: N_("requested"),
    RequestState.AWAITING_APPROVAL: N_("awaiting approval"),
    RequestState.OFFERED: N_("offered to interpreters"),
    RequestState.BOOKED: N_("booked"),
    RequestState.COMPLETED: N_("completed"),
    RequestState.SETTLED: N_("settled"),
    RequestState.UNFILLED: N_("nobody found"),
    RequestState.REFERRED: N_("referred"),
    RequestState.REJECTED: N_("rejected"),
    RequestState.CANCELLED: N_("cancelled"),
}

REMOTE_MODES = frozenset({Mode.PHONE, Mode.VIDEO})
TALK_MODES = (Mode.IN_PERSON, Mode.PHONE, Mode.VIDEO)  # the modes a talk can switch between


def parse_modes(text: str) -> frozenset[Mode]:
    """Modes from their stored comma-separated form."""
    return frozenset(Mode(part) for part in text.split(",") if part)


def format_modes(modes: frozenset[Mode] | set[Mode]) -> str:
    """The stored comma-separated form, in a stable order."""
    return ",".join(m.value for m in Mode if m in modes)
