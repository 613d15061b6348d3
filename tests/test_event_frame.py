"""What every event costs around its own work since issue 16 (session 10): the frame's statements,
each run once and built once, and what they must still do.

The frame is the same for every event: who wrote (chat link and member, one read), the event
recorded once (one INSERT ... ON CONFLICT), the policy, the chat touched, the dialog read and
written (one statement each), the answer stored and checked for an earlier one waiting. These are
behaviours (which statements run, what they write), not timings; bench/chat_latency.py times them.
"""

import asyncio
import gc
import re
import threading
from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.conversation.router import Conversation
from bot.delivery import Deliverer
from bot.messages import Incoming
from bot.rate_limit import RateLimiter
from db.models import (
    ChatIdentity,
    Delivery,
    DialogState,
    Member,
    OutboxMessage,
    ProcessedEvent,
    Request,
    School,
)
from db.uow import UnitOfWork, hold
from services import deliveries, identities
from services.dialogs import Dialog, first_time, load_dialog, save_dialog
from services.identities import reachable_members
from services.matching import candidates, eligible_count, wave_and_count
from services.notices import OfferTaken, RequestCancelled
from services.outbox import notify
from services.policy import load_policy, set_rule
from services.vocabulary import Mode, Recipient, RequestState, Topic
from tests.chat_world import NOW, Clock, make_demo
from tests.test_one_press import REQUEST, Phone, statements


def _shape(sql: str) -> str:
    """`select chat_identity`, `insert into delivery`: what a statement does to which table."""
    verb = sql.split()[0]
    if verb == "select":
        table = re.search(r"\bfrom \"?([a-z_]+)", sql)
        return f"select {table.group(1) if table else '?'}"
    target = re.search(r"^(?:insert into|update|delete from) \"?([a-z_]+)", sql)
    return f"{verb} {target.group(1) if target else '?'}"


def _school_at_summary(engine: Engine) -> Conversation:
    codes = make_demo(engine, NOW)
    clock = Clock(NOW)
    talk = Conversation(engine, clock)
    talk.handle(Incoming("test", "school", "school", text=f"/start {codes.school}"))
    for line in REQUEST:
        talk.handle(Incoming("test", "school", "school", text=line))
    return talk


def test_a_dialog_step_runs_the_frame_in_eight_statements(engine: Engine) -> None:
    talk = _school_at_summary(engine)
    with statements(engine) as seen:
        handled = talk.handle_stored(Incoming("test", "school", "school", choice="change", event_key="u:1"))
    assert len(handled.answers) == 1
    assert handled.answers[0][1].choices[0].key == "language"  # "what do you want to change?"
    shapes = [_shape(sql) for sql in seen if not sql.startswith(("begin", "commit"))]
    assert shapes == [
        "select chat_identity",  # with the member, joined
        "insert processed_event",  # ON CONFLICT DO NOTHING RETURNING id
        "select policy_setting",
        "update chat_identity",  # last seen, the chat
        "select dialog_state",
        "insert dialog_state",  # ON CONFLICT (member_id) DO UPDATE
        "insert delivery",  # the answer, RETURNING id
        "select delivery",  # an earlier message to the chat still waiting?
    ]


def test_an_event_outside_any_dialog_writes_no_dialog_and_one_that_ends_a_dialog_removes_it(
    engine: Engine,
) -> None:
    talk = _school_at_summary(engine)
    with statements(engine) as seen:
        talk.handle_stored(Incoming("test", "school", "school", text="/cancel", event_key="u:1"))
    assert "delete dialog_state" in [_shape(sql) for sql in seen]
    with UnitOfWork(engine) as uow:
        assert uow.session.exec(select(DialogState)).all() == []
    with statements(engine) as seen:
        talk.handle_stored(Incoming("test", "school", "school", text="/bookings", event_key="u:2"))
    shapes = [_shape(sql) for sql in seen]
    assert "insert delivery" in shapes  # answered (after the first answer, which still waits)
    assert [shape for shape in shapes if shape.endswith(" dialog_state")] == ["select dialog_state"]


def test_the_same_event_is_handled_once_also_when_two_copies_arrive_at_the_same_moment(
    engine: Engine,
) -> None:
    make_demo(engine, NOW)
    with UnitOfWork(engine) as uow:
        assert first_time(uow.session, platform="test", event_key="update:7", now=NOW)
        uow.commit()
    with UnitOfWork(engine) as uow:
        assert not first_time(uow.session, platform="test", event_key="update:7", now=NOW)
        assert first_time(uow.session, platform="other", event_key="update:7", now=NOW)  # per platform
        uow.commit()
    # One transaction has recorded a copy and not yet committed; the other waits for it on the
    # key (or the write lock) and then finds the copy recorded.
    recorded, answers = threading.Event(), []

    def first() -> None:
        with UnitOfWork(engine) as uow:
            answers.append(("first", first_time(uow.session, platform="test", event_key="update:8", now=NOW)))
            recorded.set()
            threading.Event().wait(0.3)
            uow.commit()

    def second() -> None:
        recorded.wait()
        with UnitOfWork(engine) as uow:
            answers.append(
                ("second", first_time(uow.session, platform="test", event_key="update:8", now=NOW))
            )
            uow.commit()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [("first", True), ("second", False)]
    with UnitOfWork(engine) as uow:
        keys = uow.session.exec(select(ProcessedEvent.platform, ProcessedEvent.event_key)).all()
    assert sorted(keys) == [("other", "update:7"), ("test", "update:7"), ("test", "update:8")]


def test_a_dialog_is_written_with_one_statement_and_an_empty_one_removed_with_one(engine: Engine) -> None:
    _school_at_summary(engine)
    with UnitOfWork(engine) as uow:
        school = select(ChatIdentity.member_id).where(ChatIdentity.user_id == "school")
        member_id = uow.session.exec(school).one()
    dialog = Dialog("request", "duration", {"language": "ar", "minutes": 60}, {"30": "30 min", "60": "60"})
    with UnitOfWork(engine) as uow, statements(engine) as written:
        save_dialog(uow.session, member_id, dialog, now=NOW)
        uow.commit()
    with UnitOfWork(engine) as uow:
        first_id = uow.session.exec(select(DialogState.id).where(DialogState.member_id == member_id)).one()
        assert load_dialog(uow.session, member_id) == dialog
    later = Dialog("request", "summary", {"language": "ar", "minutes": 30}, {"send": "Senden"})
    with UnitOfWork(engine) as uow, statements(engine) as rewritten:
        save_dialog(uow.session, member_id, later, now=NOW + timedelta(minutes=1))
        uow.commit()
    with UnitOfWork(engine) as uow:
        row = uow.session.exec(select(DialogState).where(DialogState.member_id == member_id)).one()
        assert (row.id, row.updated_at) == (first_id, NOW + timedelta(minutes=1))  # the same row
        assert load_dialog(uow.session, member_id) == later
        assert list(load_dialog(uow.session, member_id).choices) == ["send"]
    with UnitOfWork(engine) as uow, statements(engine) as removed:
        save_dialog(uow.session, member_id, Dialog(), now=NOW)
        uow.commit()
    with UnitOfWork(engine) as uow:
        assert uow.session.exec(select(DialogState).where(DialogState.member_id == member_id)).all() == []
        assert load_dialog(uow.session, member_id) == Dialog()
    for seen, shape in (
        (written, "insert dialog_state"),
        (rewritten, "insert dialog_state"),
        (removed, "delete dialog_state"),
    ):
        assert [_shape(sql) for sql in seen if not sql.startswith(("begin", "commit"))] == [shape]


def test_touch_writes_the_chat_and_leaves_the_loaded_link_current_and_clean(engine: Engine) -> None:
    _school_at_summary(engine)
    later = NOW + timedelta(hours=2)
    with UnitOfWork(engine) as uow, statements(engine) as seen:
        found = identities.identity_and_member(uow.session, "test", "school")
        assert found is not None
        identity, member = found
        assert identity.member_id == member.id
        identities.touch(uow.session, identity, chat_id="school-2", now=later)
        assert (identity.chat_id, identity.last_seen_at) == ("school-2", later)
        assert not uow.session.dirty  # nothing left for a flush to write again
        uow.commit()
    assert [_shape(sql) for sql in seen if not sql.startswith(("begin", "commit"))] == [
        "select chat_identity",
        "update chat_identity",
    ]
    with UnitOfWork(engine) as uow:
        row = uow.session.exec(select(ChatIdentity).where(ChatIdentity.user_id == "school")).one()
        assert (row.chat_id, row.last_seen_at) == ("school-2", later)
        assert identities.identity_and_member(uow.session, "test", "nobody") is None


def test_a_sent_answer_is_recorded_with_one_statement_and_a_notice_still_closes_its_message(
    engine: Engine,
) -> None:
    talk = _school_at_summary(engine)
    handled = talk.handle_stored(Incoming("test", "school", "school", choice="change", event_key="u:2"))
    (answer_id, _reply), *_ = handled.answers
    with UnitOfWork(engine) as uow, statements(engine) as seen:
        assert deliveries.mark_sent(uow.session, answer_id, message_id="m-9", now=NOW, parts_sent=1)
        uow.commit()
    assert [_shape(sql) for sql in seen if not sql.startswith(("begin", "commit"))] == ["update delivery"]
    with UnitOfWork(engine) as uow:
        row = uow.session.get(Delivery, answer_id)
        assert row is not None
        assert (row.sent_at, row.attempts, row.parts_sent, row.platform_message_id) == (NOW, 1, 1, "m-9")
        assert (row.body, row.attachment, row.claimed_until) == (None, None, None)
        # A second record (a retry's) keeps the first message's id and the part count.
        assert deliveries.mark_sent(uow.session, answer_id, message_id="m-10", now=NOW)
        uow.commit()
    with UnitOfWork(engine) as uow:
        row = uow.session.get(Delivery, answer_id)
        assert row is not None
        assert (row.attempts, row.parts_sent, row.platform_message_id) == (2, 1, "m-9")
        assert not deliveries.mark_sent(uow.session, 999_999, message_id=None, now=NOW)  # its row is gone
        notify(
            uow.session,
            district_id=1,
            recipient=Recipient.SCHOOL,
            recipient_id=1,
            notice=RequestCancelled(request_id=7, fee_cents=0, calendar_sequence=None),
            now=NOW,
        )
        uow.commit()
    phone = Phone()
    deliverer = Deliverer(engine, {"test": phone}, limiter=RateLimiter(per_chat_gap=0), clock=Clock(NOW))
    assert asyncio.run(deliverer.run_once()) == 1  # the notice: the answer was recorded sent
    assert len(phone.inbox["school"]) == 1
    with UnitOfWork(engine) as uow:
        message = uow.session.exec(
            select(OutboxMessage).where(OutboxMessage.template == "request.cancelled")
        ).one()
        assert message.sent_at is not None
        assert message.params == "{}"  # nobody waits for it: what it said is not kept


def test_notices_to_several_chats_are_expanded_with_one_insert_in_order(engine: Engine) -> None:
    codes = make_demo(engine, NOW)
    talk = Conversation(engine, Clock(NOW))
    for user, code in (("school", codes.school), ("amira", codes.amira)):
        talk.handle(Incoming("test", user, user, text=f"/start {code}"))
    with UnitOfWork(engine) as uow:
        for recipient, notice in (
            (Recipient.SCHOOL, RequestCancelled(request_id=7, fee_cents=0, calendar_sequence=None)),
            (Recipient.INTERPRETER, OfferTaken(request_id=7, offer_id=70)),
            (Recipient.SCHOOL, RequestCancelled(request_id=8, fee_cents=0, calendar_sequence=None)),
        ):
            notify(uow.session, district_id=1, recipient=recipient, recipient_id=1, notice=notice, now=NOW)
        uow.commit()
    with UnitOfWork(engine) as uow, statements(engine) as seen:
        assert deliveries.expand(uow.session, now=NOW) == 3
        uow.commit()
    assert [_shape(sql) for sql in seen].count("insert delivery") == 1
    # Each message's members read with their chats in one statement, not one more per member.
    assert [_shape(sql) for sql in seen].count("select member") == 3
    assert "select chat_identity" not in [_shape(sql) for sql in seen]
    with UnitOfWork(engine) as uow:
        links = dict(uow.session.exec(select(ChatIdentity.user_id, ChatIdentity.id)).all())
        rows = uow.session.exec(select(Delivery).order_by(col(Delivery.id))).all()
        templates = dict(uow.session.exec(select(OutboxMessage.id, OutboxMessage.template)).all())
        written = [(templates[r.outbox_id or 0], r.identity_id, r.ref, r.due_at, r.give_up_at) for r in rows]
        assert written == [
            ("request.cancelled", links["school"], None, NOW, NOW + timedelta(hours=24)),
            ("offer.taken", links["amira"], "offer:70", NOW, NOW + timedelta(hours=24)),
            ("request.cancelled", links["school"], None, NOW, NOW + timedelta(hours=24)),
        ]
        expanded = uow.session.exec(select(OutboxMessage.expanded_at)).all()
        assert expanded == [NOW, NOW, NOW]


def test_the_summary_quote_reads_the_eligible_once_and_counts_as_before(engine: Engine) -> None:
    make_demo(engine, NOW)
    start = NOW + timedelta(days=8)
    for mode, language in (
        (Mode.IN_PERSON, "ar"),
        (Mode.PHONE, "ar"),
        (Mode.IN_PERSON, "fr"),
        (Mode.VIDEO, "xx"),
    ):
        with UnitOfWork(engine) as uow, statements(engine) as seen:
            session = uow.session
            policy = load_policy(session, 1)
            school = session.get(School, 1)
            assert school is not None
            probe = Request(
                district_id=1, school_id=1, language=language, mode=mode.value,
                topic=Topic.PARENT_TALK.value, starts_at=start, duration_minutes=60, place=school.address,
                place_latitude=school.latitude, place_longitude=school.longitude,
                state=RequestState.REQUESTED.value, created_at=NOW, updated_at=NOW,
            )  # fmt: skip
            wave, eligible = wave_and_count(session, probe, policy, policy.offer_wave_size)
        if mode is Mode.IN_PERSON and wave:  # the wave and the count from one read of the eligible
            flat = [" ".join(sql.split()) for sql in seen]
            assert sum(" from absence " in sql for sql in flat) == 1
            assert sum(" join interpreter_language " in sql for sql in flat) == 1
        with UnitOfWork(engine) as uow:
            session = uow.session
            expected = candidates(session, probe, policy, limit=policy.offer_wave_size)
            count = eligible_count(session, probe, policy) if expected else 0
        assert (wave, eligible) == (expected, count), (mode, language)
        assert bool(wave) == (language != "xx")


def test_an_object_held_for_the_transaction_is_read_again_without_a_statement(engine: Engine) -> None:
    talk = _school_at_summary(engine)
    talk.handle(Incoming("test", "school", "school", choice="send"))  # request 1 submitted

    def read_again(held: bool) -> list[str]:
        with UnitOfWork(engine) as uow:
            loaded = uow.session.exec(select(Request).where(col(Request.id) == 1)).one()
            if held:
                hold(uow.session, loaded)
            del loaded
            gc.collect()  # the identity map is weak: an unheld object is gone now
            with statements(engine) as seen:
                again = uow.session.get(Request, 1)
            assert again is not None
            assert again.id == 1
            return seen

    assert [_shape(sql) for sql in read_again(held=False)] == ["select request"]
    assert read_again(held=True) == []


def test_a_notice_reaches_each_member_in_the_chats_identities_of_lists(engine: Engine) -> None:
    make_demo(engine, NOW)
    with UnitOfWork(engine) as uow:
        session = uow.session
        set_rule(session, 1, "platforms", "telegram", actor="t", now=NOW)  # Matrix not allowed
        contacts = [Member(district_id=1, role="school", school_id=1, created_at=NOW) for _ in range(3)]
        contacts[1].deactivated_at = NOW
        session.add_all(contacts)
        session.flush()
        first, gone, bare = (m.id or 0 for m in contacts)
        for member_id, platform, user, seen in (
            (first, "telegram", "old", NOW - timedelta(days=2)),
            (first, "telegram", "new", NOW - timedelta(days=1)),
            (first, "matrix", "@newest:x", NOW),  # the district does not allow it
            (gone, "telegram", "gone", NOW),
        ):
            session.add(
                ChatIdentity(
                    member_id=member_id,
                    platform=platform,
                    user_id=user,
                    chat_id=user,
                    created_at=NOW,
                    last_seen_at=seen,
                )
            )
        uow.commit()
    with UnitOfWork(engine) as uow:
        session = uow.session

        def reached(deactivated_too: bool) -> list[tuple[int, list[str]]]:
            found = reachable_members(session, Recipient.SCHOOL, 1, 1, deactivated_too=deactivated_too)
            return [(member.id or 0, [link.user_id for link in links]) for member, links in found]

        assert reached(False) == [(first, ["new", "old"]), (bare, [])]
        assert reached(True) == [(first, ["new", "old"]), (gone, ["gone"]), (bare, [])]
        # The same members, and each one's chats, as reading them one by one gives.
        for member_id, links in reached(True):
            assert links == [link.user_id for link in identities.identities_of(session, member_id)]
