"""Long lists page: /requests, /bookings, /jobs and /pool show 8 items a page, with ‹ Back and Next ›.

No reply may exceed Telegram's limits: 100 buttons, 10 KB of keyboard, 4,096 characters of text.
"""

import json
import re
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.conversation.router import Conversation
from bot.conversation.views import PAGE_SIZE
from bot.i18n import Translator
from bot.messages import Incoming, Reply
from db.models import Interpreter, InterpreterLanguage, Request, School
from db.uow import UnitOfWork
from services.overview import pool_languages
from services.vocabulary import RequestState
from tests.chat_world import NOW, START, Clock, make_demo
from tests.test_telegram import OFFICE, Telegram, telegram  # noqa: F401

DE = Translator("de")
NEXT, BACK = DE.gettext("Next ›"), DE.gettext("‹ Back")
MAX_BUTTONS, MAX_MARKUP_BYTES, MAX_TEXT = 100, 10 * 1024, 4096


def _join(engine: Engine, clock: Clock | None = None) -> Conversation:
    codes = make_demo(engine, NOW)
    talk = Conversation(engine, clock or Clock(NOW))
    for user, code in (("school", codes.school), ("amira", codes.amira), ("office", codes.coordinator)):
        talk.handle(Incoming("test", user, user, text=f"/start {code}"))
    return talk


def _one(talk: Conversation, user: str, text: str = "", choice: str | None = None) -> Reply:
    replies = talk.handle(Incoming("test", user, user, text=text, choice=choice))
    assert len(replies) == 1
    return replies[0]


def markup_bytes(reply: Reply) -> int:
    """The inline keyboard as the Telegram sender sends it: one button a row."""
    rows = [[{"text": c.label, "callback_data": c.key}] for c in reply.choices]
    return len(json.dumps({"inline_keyboard": rows}, ensure_ascii=False).encode())


def within_limits(reply: Reply) -> bool:
    return (
        len(reply.choices) <= MAX_BUTTONS
        and markup_bytes(reply) <= MAX_MARKUP_BYTES
        and len(reply.text) <= MAX_TEXT
    )


def _requests(
    engine: Engine, count: int, state: RequestState, *, interpreter: bool = False, later: int = 0
) -> list[int]:
    """`count` requests of the demo's first school an hour apart from START (`later` minutes after),
    in `state`; their ids."""
    with UnitOfWork(engine) as uow:
        school = uow.session.exec(select(School).order_by(col(School.id))).first()
        amira = uow.session.exec(select(Interpreter).where(col(Interpreter.name).startswith("Amira"))).one()
        assert school is not None
        assert school.id is not None
        rows = [
            Request(
                district_id=school.district_id,
                school_id=school.id,
                language="ar",
                mode="in_person",
                topic="parent_talk",
                starts_at=START + timedelta(hours=n, minutes=later),
                duration_minutes=60,
                place=school.address,
                place_latitude=school.latitude,
                place_longitude=school.longitude,
                state=state.value,
                state_reason="over_budget" if state is RequestState.AWAITING_APPROVAL else None,
                interpreter_id=amira.id if interpreter else None,
                created_at=NOW,
                updated_at=NOW,
            )
            for n in range(count)
        ]
        uow.session.add_all(rows)
        uow.commit()
        return [r.id or 0 for r in rows]


@dataclass(frozen=True)
class Page:
    reply: Reply
    ids: list[int]  # the requests the page's buttons are for, in order
    lines: list[str]  # the listed lines that name a request (`#12 · …`)


def _page(reply: Reply, button: str) -> Page:
    ids = [int(c.key.rsplit(":", 1)[1]) for c in reply.choices if re.fullmatch(button + r":\d+", c.key)]
    return Page(reply, ids, [line for line in reply.text.splitlines() if line.startswith("#")])


def _walk(talk: Conversation, user: str, command: str, button: str) -> list[Page]:
    """Page forwards to the end, then back to the first; every page as it was shown."""
    pages = [_page(_one(talk, user, command), button)]
    while (ahead := [c for c in pages[-1].reply.choices if c.label == NEXT]) != []:
        pages.append(_page(_one(talk, user, choice=ahead[0].key), button))
    back = [pages[-1]]
    while (behind := [c for c in back[-1].reply.choices if c.label == BACK]) != []:
        back.append(_page(_one(talk, user, choice=behind[0].key), button))
    return pages + back[1:]


def _check_paging(pages: list[Page], count: int, expected: list[int]) -> None:
    forward, backward = pages[:count], pages[count - 1 :]
    assert len(pages) == 2 * count - 1
    assert all(within_limits(p.reply) for p in pages)
    assert [i for p in forward for i in p.ids] == expected  # each once, in order
    assert [p.ids for p in backward] == [p.ids for p in reversed(forward)]
    assert [p.reply.text for p in backward] == [p.reply.text for p in reversed(forward)]
    for number, page in enumerate(forward, start=1):
        assert (
            DE.render("Page {page} of {pages}", {"page": number, "pages": count})
            in page.reply.text.splitlines()
        )
        paging = [c.label for c in page.reply.choices if c.label in (BACK, NEXT)]
        assert paging == [BACK] * (number > 1) + [NEXT] * (number < count)


def test_200_waiting_requests_page_forwards_and_back(engine: Engine) -> None:
    talk = _join(engine)
    held = _requests(engine, 100, RequestState.AWAITING_APPROVAL)
    unfilled = _requests(engine, 100, RequestState.UNFILLED, later=30)
    running = _requests(engine, 10, RequestState.OFFERED, later=45)
    waiting = [i for pair in zip(held, unfilled, strict=True) for i in pair]  # by start
    pages = _walk(talk, "office", "/requests", "rq:ap")
    _check_paging(pages, 27, waiting)  # 210 lines, 8 a page
    assert [len(p.lines) for p in pages[:27]] == [8] * 26 + [2]
    first = pages[0].reply
    assert first.text.startswith(DE.gettext("Waiting for your decision:") + "\n#")
    assert [c.key for c in first.choices][:4] == [
        f"rq:ap:{held[0]}",
        f"rq:rj:{held[0]}",
        f"rq:ap:{unfilled[0]}",
        f"rq:rf:{unfilled[0]}",
    ]
    assert len(first.choices) == 2 * PAGE_SIZE + 1  # approve and reject/refer each, and Next
    last = pages[26].reply
    assert DE.gettext("Looking for an interpreter:") in last.text
    assert [line.split(" · ")[0] for line in pages[26].lines] == [f"#{i}" for i in running[-2:]]
    # A typed number picks Next as well as its button, and a forged page beyond the last shows the last.
    assert _one(talk, "office", "/requests").text == first.text
    assert _one(talk, "office", str(len(first.choices))).text == pages[1].reply.text
    assert _one(talk, "office", choice="ls:rq:9999").text == last.text
    assert _one(talk, "office", "/requests 2").text == pages[1].reply.text


def test_200_bookings_of_a_school_page_forwards_and_back(engine: Engine) -> None:
    talk = _join(engine)
    open_ = _requests(engine, 200, RequestState.REQUESTED)
    pages = _walk(talk, "school", "/bookings", "rq:cx")
    _check_paging(pages, 25, open_)
    assert pages[0].reply.text.startswith(DE.gettext("Open:") + "\n#")
    # Cancelling from page 3 works as from the first.
    asked = _one(talk, "school", choice=f"rq:cx:{pages[2].ids[0]}")
    assert f"#{pages[2].ids[0]} · " in asked.text
    assert [c.key for c in asked.choices] == ["yes", "no"]


def test_120_jobs_of_an_interpreter_page_forwards_and_back(engine: Engine) -> None:
    talk = _join(engine)
    booked = _requests(engine, 120, RequestState.BOOKED, interpreter=True)
    pages = _walk(talk, "amira", "/jobs", "bk:gb")
    _check_paging(pages, 15, booked)
    assert all(len(p.ids) == PAGE_SIZE for p in pages)


def test_the_report_offers_8_past_jobs_and_points_to_jobs_for_the_rest(engine: Engine) -> None:
    clock = Clock(NOW)
    talk = _join(engine, clock)
    done = _requests(engine, 120, RequestState.BOOKED, interpreter=True)
    clock.now = START + timedelta(hours=121)  # all 120 have begun: each may be reported
    asked = _one(talk, "amira", "/report")
    assert [c.key for c in asked.choices] == [str(i) for i in done[:PAGE_SIZE]]
    assert asked.text.splitlines()[:2] == [
        DE.gettext("Which job do you report?"),
        DE.render_plural("{count} more is listed under /jobs.", "{count} more are listed under /jobs.", 112),
    ]
    assert within_limits(asked)
    _one(talk, "amira", "/cancel")  # else each page of /jobs would add the report's reminder
    pages = _walk(talk, "amira", "/jobs", "rp:go")
    _check_paging(pages, 15, done)


def test_the_pool_pages_by_language(engine: Engine) -> None:
    talk = _join(engine)
    with UnitOfWork(engine) as uow:
        interpreter = uow.session.exec(select(Interpreter).order_by(col(Interpreter.id))).first()
        assert interpreter is not None
        assert interpreter.id is not None
        for tag in ("cy", "eu", "fo", "ga", "gd", "is", "lb", "mt", "sq", "yo"):
            uow.session.add(InterpreterLanguage(interpreter_id=interpreter.id, language=tag))
        uow.commit()
        covered = [DE.language(tag) for tag in pool_languages(uow.session, interpreter.district_id)]
    count = -(-len(covered) // PAGE_SIZE)
    pages = [_one(talk, "office", "/pool")]
    while ahead := [c for c in pages[-1].choices if c.label == NEXT]:
        pages.append(_one(talk, "office", choice=ahead[0].key))
    assert count >= 3
    assert len(pages) == count
    assert all(within_limits(p) for p in pages)
    assert all(p.text.startswith(DE.gettext("Languages in the pool:") + "\n") for p in pages)
    listed = [line.split(": ")[0] for p in pages for line in p.text.splitlines()[1:] if ": " in line]
    assert listed == covered
    back = [c for c in pages[1].choices if c.label == BACK]
    assert _one(talk, "office", choice=back[0].key).text == pages[0].text


async def test_a_long_requests_list_arrives_over_telegram_and_pages(
    telegram: Telegram,  # noqa: F811  (the fixture of tests/test_telegram.py)
) -> None:
    tg = telegram
    await tg.join(OFFICE, tg.codes.coordinator)
    held = _requests(tg.engine, 200, RequestState.AWAITING_APPROVAL)
    first = await tg.say(OFFICE, "/requests")  # the fake refuses a keyboard over Telegram's limits
    assert first.text.startswith(DE.gettext("Waiting for your decision:") + "\n#")
    assert [data for _, data in first.buttons] == [
        *(key for i in held[:PAGE_SIZE] for key in (f"rq:ap:{i}", f"rq:rj:{i}")),
        "ls:rq:2",
    ]
    second = await tg.choose(OFFICE, first, "ls:rq:2")
    assert [data for _, data in second.buttons][::2][:PAGE_SIZE] == [f"rq:ap:{i}" for i in held[8:16]]
    assert [label for label, _ in second.buttons][-2:] == [BACK, NEXT]
    again = await tg.choose(OFFICE, second, "ls:rq:1")
    assert again.text == first.text
