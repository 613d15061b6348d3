"""Retention on the real database: what the inventory keeps only for a while is gone after it, the money
figures stay, the nightly due row re-arms itself, and on SQLite the purged text leaves the file."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, func, select

from bot.scheduling import rearm, run_due
from db.engine import make_engine
from db.models import (
    AuditEvent,
    Budget,
    ChatIdentity,
    Closeout,
    Delivery,
    DialogState,
    DueTask,
    Invite,
    LedgerEntry,
    Offer,
    OutboxMessage,
    Request,
)
from db.uow import UnitOfWork
from services import closeout as closeouts
from services import deliveries, ledger
from services.billing_report import monthly_billing
from services.clock import BERLIN
from services.dialogs import Dialog, save_dialog
from services.due import Kind, next_night
from services.evaluation import evaluate, make_period
from services.invites import create_invite, redeem_invite
from services.policy import load_policy, set_rule
from services.requests import RequestDraft, submit_request
from services.retention import PurgeCounts, accounts_boundary, purge, requests_due
from services.vocabulary import Mode, Role, Topic
from tests.builders import (
    ACTOR,
    NOW,
    ROOT,
    SOON,
    World,
    book,
    build_world,
    cells_holding,
    dispute_for,
    report_for,
)

MARKER = "Mueller-Geheim"
NOTE = f"Familie {MARKER} Sohn Ali 3b"
PLACE = f"Raum 3b, bei Frau {MARKER}"
SCHOOL_ADDRESS = "Schulstraße 4, 29614 Soltau"
KEPT_NOTE = "Thema Förderplan, Dialekt Levantinisch"
KEPT_PLACE = "Raum 12"
LATE = SOON + timedelta(days=2, hours=12)  # after the cutoff of the purge at SOON + 3 days


@pytest.fixture
def world(uow: Callable[[], UnitOfWork]) -> World:
    w = build_world(uow)
    w.interpreter("Amira")
    with uow() as u:
        set_rule(u.session, w.district_id, "retention_free_text", "1d", actor=ACTOR, now=NOW)
        u.commit()
    return w


def request_with(world: World, *, note: str, place: str, starts_at: datetime = SOON) -> int:
    with world.make_uow() as u:
        request = submit_request(
            u.session,
            district_id=world.district_id,
            draft=RequestDraft(
                school_id=world.school_id,
                language="ar",
                mode=Mode.IN_PERSON,
                starts_at=starts_at,
                duration_minutes=60,
                topic=Topic.PARENT_TALK,
                place=place,
                note=note,
            ),
            actor=ACTOR,
            now=NOW,
        )
        u.commit()
        assert request.id is not None
        return request.id


def correct(world: World, request_id: int, minutes: int, reason: str, at: datetime) -> None:
    with world.make_uow() as u:
        closeouts.correct(
            u.session,
            district_id=world.district_id,
            request_id=request_id,
            minutes=minutes,
            km=0,
            expenses_cents=0,
            reason=reason,
            actor=ACTOR,
            now=at,
        )
        u.commit()


def figures(world: World) -> tuple[Any, ...]:
    """The evaluation, the month's billing and the year's ledger sums, as the reports compute them."""
    with world.make_uow() as u:
        evaluation = evaluate(u.session, world.district_id, make_period(date(2026, 3, 1), date(2026, 3, 31)))
        billing = monthly_billing(u.session, world.district_id, date(2026, 3, 1))
        budget = ledger.get_budget(u.session, world.district_id, 2026)
        assert budget.id is not None
        return (
            evaluation.as_json(),
            billing,
            ledger.ledger_sums(u.session, budget.id),
            ledger.balance_of(budget),
        )


def run_purge(world: World, at: datetime) -> PurgeCounts:
    with world.make_uow() as u:
        counts = purge(u.session, world.district_id, now=at, policy=load_policy(u.session, world.district_id))
        u.commit()
        return counts


def deliver_all(world: World, at: datetime) -> None:
    """What the bot does with every new notification: hand it out to the chats and send it."""
    with world.make_uow() as u:
        deliveries.expand(u.session, now=at)
        waiting = select(Delivery.id).where(
            col(Delivery.sent_at).is_(None), col(Delivery.failed_at).is_(None)
        )
        for delivery_id in u.session.exec(waiting).all():
            deliveries.mark_sent(u.session, delivery_id or 0, message_id=None, now=at)
        u.commit()


def count(world: World, query: Any) -> int:
    with world.make_uow() as u:
        return int(u.session.exec(query).one())


def test_after_the_period_a_note_is_in_no_table_and_the_figures_are_unchanged(
    world: World, engine: Engine
) -> None:
    purged = request_with(world, note=NOTE, place=PLACE)
    kept = request_with(world, note=KEPT_NOTE, place=KEPT_PLACE, starts_at=SOON + timedelta(days=20))
    book(world, purged, "Amira")
    report_for(world, purged, "Amira", 60, SOON + timedelta(hours=2))
    dispute_for(world, purged, f"Es waren 30 Minuten, sagt {MARKER}", SOON + timedelta(hours=3))
    correct(world, purged, 30, f"Laut Schule ({MARKER}) nur 30 Minuten", SOON + timedelta(hours=4))
    correct(
        world, purged, 90, f"Nachtrag {MARKER}: doch 90 Minuten", SOON + timedelta(hours=5)
    )  # settled: a ledger adjust
    with world.make_uow() as u:
        _, code = create_invite(
            u.session,
            district_id=world.district_id,
            role=Role.SCHOOL,
            for_id=world.school_id,
            actor="cli:anna",
            now=NOW,
            name="Frau Schulz",
        )
        member = redeem_invite(u.session, code=code, now=NOW)
        assert member.id is not None
        save_dialog(u.session, member.id, Dialog("request", "note", {"note": NOTE}), now=NOW)  # abandoned
        # Rows as older versions wrote them: a delivered notice with the note in its params, and a
        # direct answer given up with its text kept; both finished within the period, so the rows stay.
        u.session.add(
            OutboxMessage(
                district_id=world.district_id,
                recipient_type="school",
                recipient_id=world.school_id,
                template="request.booked",
                params=json.dumps({"note": NOTE}),
                created_at=NOW,
                sent_at=LATE,
                expanded_at=NOW,
            )
        )
        identity = ChatIdentity(
            member_id=member.id,
            platform="terminal",
            user_id="u1",
            chat_id="c1",
            created_at=NOW,
            last_seen_at=NOW,
        )
        u.session.add(identity)
        u.session.flush()
        assert identity.id is not None
        u.session.add(
            Delivery(identity_id=identity.id, body=f"Ihr Hinweis: {NOTE}", due_at=NOW, failed_at=LATE)
        )
        create_invite(
            u.session,
            district_id=world.district_id,
            role=Role.SCHOOL,
            for_id=world.school_id,
            actor="cli:anna",
            now=SOON,
            name="Herr Kurz",
        )
        u.commit()
    at = SOON + timedelta(days=3)  # 1d after everything above, but before the kept request
    deliver_all(world, at)
    assert {
        "closeout.correction_reason",
        "closeout.dispute_reason",
        "dialog_state.draft",
        "ledger_entry.reason",
        "request.note",
        "request.place",
    } <= set(cells_holding(engine, MARKER))
    before = figures(world)
    assert len(before[1]) == 1  # there is something to compare
    assert before[1][0].amount_cents > 0
    details = count(world, select(func.count()).select_from(AuditEvent).where(col(AuditEvent.detail) != "{}"))
    assert details > 5

    counts = run_purge(world, at)

    assert counts == PurgeCounts(
        notes=1,
        places=1,
        closeout_reasons=1,
        ledger_reasons=1,
        audit_details=details,  # every event was written before the cutoff
        outbox_params=1,  # the old delivered one; the params of the others went when they were delivered
        delivery_contents=1,
        invites=1,  # the redeemed one; the other is still valid
        drafts=1,
    )
    assert cells_holding(engine, MARKER) == []
    assert figures(world) == before
    with world.make_uow() as u:
        rows = {r.id: r for r in u.session.exec(select(Request)).all()}
        assert (rows[purged].note, rows[purged].place) == ("", SCHOOL_ADDRESS)
        assert (rows[kept].note, rows[kept].place) == (KEPT_NOTE, KEPT_PLACE)  # within its period
        closeout = u.session.exec(select(Closeout).where(Closeout.request_id == purged)).one()
        assert (closeout.dispute_reason, closeout.correction_reason, closeout.actual_minutes) == (
            None,
            None,
            90,
        )
        invites = u.session.exec(select(Invite).order_by(col(Invite.id))).all()
        assert [(i.name, i.created_by) for i in invites] == [("", ""), ("Herr Kurz", "cli:anna")]
        assert u.session.exec(select(DialogState)).all() == []
    assert run_purge(world, at) == PurgeCounts()  # nothing left to do: the second night changes nothing


def test_whole_fiscal_years_older_than_retention_accounts_go_and_the_newer_stay(world: World) -> None:
    old = request_with(world, note="", place="")
    book(world, old, "Amira")
    report_for(world, old, "Amira", 60, SOON + timedelta(hours=2))
    with world.make_uow() as u:
        closeouts.confirm(
            u.session,
            district_id=world.district_id,
            request_id=old,
            actor=ACTOR,
            now=SOON + timedelta(hours=3),
        )
        ledger.set_total(
            u.session, district_id=world.district_id, year=2027, total_cents=1000_00, actor=ACTOR, now=NOW
        )
        u.commit()
    later = datetime(2037, 1, 10, tzinfo=UTC)  # 3650 days back is 12 January 2027: the year 2026 ended before
    assert accounts_boundary(later, timedelta(days=3650)) == (2027, datetime(2027, 1, 1, tzinfo=BERLIN))
    entries = count(world, select(func.count()).select_from(LedgerEntry))
    offers = count(world, select(func.count()).select_from(Offer))
    events = count(world, select(func.count()).select_from(AuditEvent))
    details = count(world, select(func.count()).select_from(AuditEvent).where(col(AuditEvent.detail) != "{}"))
    assert (entries, offers) == (3, 1)  # reserve, release and charge; one offer to the one interpreter

    counts = run_purge(world, later)

    assert counts == PurgeCounts(
        audit_details=details,
        old_requests=1,
        old_offers=1,
        old_closeouts=1,
        old_ledger_entries=3,
        old_budgets=1,
        old_audit_events=events,
    )
    with world.make_uow() as u:
        assert u.session.exec(select(Request)).all() == []
        assert [b.fiscal_year for b in u.session.exec(select(Budget)).all()] == [2027]
        request_rows = select(DueTask).where(
            col(DueTask.subject_id) == old,
            col(DueTask.kind).in_(["reminder", "closeout_prompt", "offer_expiry"]),
        )
        assert u.session.exec(request_rows).all() == []
    assert run_purge(world, later) == PurgeCounts()


def test_messages_sent_or_given_up_before_the_period_go_as_rows_and_then_their_notifications(
    world: World,
) -> None:
    with world.make_uow() as u:
        _, code = create_invite(
            u.session,
            district_id=world.district_id,
            role=Role.SCHOOL,
            for_id=world.school_id,
            actor=ACTOR,
            now=NOW,
        )
        member = redeem_invite(u.session, code=code, now=NOW)
        assert member.id is not None
        identity = ChatIdentity(
            member_id=member.id,
            platform="telegram",
            user_id="u",
            chat_id="c",
            created_at=NOW,
            last_seen_at=NOW,
        )
        u.session.add(identity)
        u.session.flush()
        assert identity.id is not None
        messages = {}
        # (sent, failed) of one delivery each: sent long ago, given up long ago, sent lately, still waiting
        for name, sent, failed in (
            ("old", NOW, None),
            ("gave_up", None, NOW),
            ("late", LATE, None),
            ("waiting", None, None),
        ):
            message = OutboxMessage(
                district_id=world.district_id,
                recipient_type="school",
                recipient_id=world.school_id,
                template="request.booked",
                params="{}",
                created_at=NOW,
                sent_at=sent,
                expanded_at=NOW,
            )
            u.session.add(message)
            u.session.flush()
            assert message.id is not None
            u.session.add(
                Delivery(
                    outbox_id=message.id, identity_id=identity.id, due_at=NOW, sent_at=sent, failed_at=failed
                )
            )
            messages[name] = message.id
        u.commit()

    counts = run_purge(world, SOON + timedelta(days=3))

    assert (counts.deliveries, counts.notifications) == (2, 2)
    with world.make_uow() as u:
        left = sorted(d.outbox_id or 0 for d in u.session.exec(select(Delivery)))
        assert left == sorted([messages["late"], messages["waiting"]])
        kept = sorted(
            m.id or 0
            for m in u.session.exec(select(OutboxMessage).where(col(OutboxMessage.id).in_(messages.values())))
        )
        assert kept == left


def test_chat_links_of_members_deactivated_30_days_ago_go_with_their_messages(world: World) -> None:
    with world.make_uow() as u:
        people = []
        for deactivated_at in (NOW, NOW + timedelta(days=2), None):
            _, code = create_invite(
                u.session,
                district_id=world.district_id,
                role=Role.SCHOOL,
                for_id=world.school_id,
                actor=ACTOR,
                now=NOW,
            )
            member = redeem_invite(u.session, code=code, now=NOW)
            member.deactivated_at = deactivated_at
            u.session.add(member)
            u.session.flush()
            assert member.id is not None
            identity = ChatIdentity(
                member_id=member.id,
                platform="telegram",
                user_id=f"u{member.id}",
                chat_id=f"c{member.id}",
                created_at=NOW,
                last_seen_at=NOW,
            )
            u.session.add(identity)
            u.session.flush()
            assert identity.id is not None
            u.session.add(Delivery(identity_id=identity.id, body="Hallo", due_at=NOW))
            people.append(member.id)
        u.commit()

    counts = run_purge(world, NOW + timedelta(days=31))  # the first 31 days ago, the second 29

    assert counts.chat_links == 1
    with world.make_uow() as u:
        linked = [
            (i.member_id, i.chat_id)
            for i in u.session.exec(select(ChatIdentity).order_by(col(ChatIdentity.id)))
        ]
        assert linked == [(people[1], f"c{people[1]}"), (people[2], f"c{people[2]}")]
        assert len(u.session.exec(select(Delivery)).all()) == 2  # the first one's message went with its chat
    assert run_purge(world, NOW + timedelta(days=31)).chat_links == 0


def test_the_nightly_row_purges_and_arms_the_next_night(world: World, engine: Engine) -> None:
    rearm(engine, NOW)  # Monday 09:00 Berlin
    first = datetime(2026, 3, 3, 2, 15, tzinfo=UTC)  # 03:15 CET
    with world.make_uow() as u:
        rows = u.session.exec(select(DueTask).where(DueTask.kind == Kind.RETENTION.value)).all()
        assert [(t.subject_id, t.variant, t.due_at) for t in rows] == [
            (world.district_id, "2026-03-03", first)
        ]
        _, code = create_invite(
            u.session,
            district_id=world.district_id,
            role=Role.SCHOOL,
            for_id=world.school_id,
            actor=ACTOR,
            now=NOW,
        )
        member = redeem_invite(u.session, code=code, now=NOW)
        assert member.id is not None
        save_dialog(
            u.session, member.id, Dialog("request", "note", {"note": NOTE}), now=NOW - timedelta(days=8)
        )
        u.commit()
    assert run_due(engine, lambda: first + timedelta(minutes=1)) == 1
    with world.make_uow() as u:
        rows = u.session.exec(
            select(DueTask).where(DueTask.kind == Kind.RETENTION.value).order_by(col(DueTask.id))
        ).all()
        assert [(t.variant, t.due_at, t.outcome) for t in rows] == [
            ("2026-03-03", first, "done"),  # the draft of 8 days ago went
            ("2026-03-04", first + timedelta(days=1), ""),
        ]
        assert u.session.exec(select(DialogState)).all() == []
    # The next night the audit details and the invite of Monday 09:00 are a day old; the night after,
    # nothing is left: the row is dropped, and the next night armed all the same.
    assert run_due(engine, lambda: first + timedelta(days=1)) == 1
    assert run_due(engine, lambda: first + timedelta(days=2)) == 1
    with world.make_uow() as u:
        rows = u.session.exec(
            select(DueTask).where(DueTask.kind == Kind.RETENTION.value).order_by(col(DueTask.id))
        ).all()
        assert [(t.variant, t.outcome) for t in rows] == [
            ("2026-03-03", "done"),
            ("2026-03-04", "done"),
            ("2026-03-05", "dropped"),
            ("2026-03-06", ""),
        ]


def test_the_night_is_a_quarter_past_three_in_berlin_across_the_clock_changes() -> None:
    assert next_night(datetime(2026, 3, 28, 3, 0, tzinfo=UTC)) == datetime(
        2026, 3, 29, 1, 15, tzinfo=UTC
    )  # CEST
    assert next_night(datetime(2026, 10, 24, 3, 0, tzinfo=UTC)) == datetime(
        2026, 10, 25, 2, 15, tzinfo=UTC
    )  # CET
    assert next_night(datetime(2026, 3, 3, 2, 15, tzinfo=UTC)) == datetime(
        2026, 3, 4, 2, 15, tzinfo=UTC
    )  # not the same


def test_a_request_counts_from_its_end_or_its_last_change() -> None:
    end = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)
    rows = [
        (1, end, 60, end),  # ended at 11:00
        (2, end, 120, end),  # ends at 12:00
        (3, end, 30, end + timedelta(hours=3)),  # changed (settled) at 13:00
    ]
    assert requests_due(rows, end + timedelta(hours=1)) == [1]
    assert requests_due(rows, end + timedelta(hours=2)) == [1, 2]
    assert requests_due(rows, end + timedelta(hours=3)) == [1, 2, 3]


def test_on_sqlite_the_purged_note_leaves_the_database_file_and_its_wal(
    tmp_path: Path, sqlite_template: Path
) -> None:
    path = tmp_path / "pool.sqlite3"
    shutil.copy(sqlite_template, path)
    engine = make_engine(f"sqlite:///{path}")
    try:
        world = build_world(lambda: UnitOfWork(engine))
        world.interpreter("Amira")
        with world.make_uow() as u:
            set_rule(u.session, world.district_id, "retention_free_text", "1d", actor=ACTOR, now=NOW)
            u.commit()
        request_with(world, note=NOTE, place=PLACE)
        with world.make_uow() as u:  # a draft left behind: its row is deleted, not overwritten
            _, code = create_invite(
                u.session,
                district_id=world.district_id,
                role=Role.SCHOOL,
                for_id=world.school_id,
                actor=ACTOR,
                now=NOW,
            )
            member = redeem_invite(u.session, code=code, now=NOW)
            assert member.id is not None
            save_dialog(u.session, member.id, Dialog("request", "note", {"note": NOTE}), now=NOW)
            u.commit()

        def on_disk() -> bool:
            """Whether the marker is in the database file or its -wal, byte for byte."""
            wal = path.with_name(path.name + "-wal")
            return MARKER.encode() in path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")

        assert on_disk()
        at = SOON + timedelta(days=3)
        rearm(engine, at)  # the bot starts: the offers' expiry fires, so the request changed at `at`
        run_due(engine, lambda: at)
        deliver_all(world, at)
        assert on_disk()
        # The bot sleeps through the first night and wakes a day later: the missed night runs once, then.
        night = next_night(at) + timedelta(days=1)
        assert run_due(engine, lambda: night) == 1
        with world.make_uow() as u:
            nights = u.session.exec(
                select(DueTask).where(DueTask.kind == Kind.RETENTION.value).order_by(col(DueTask.id))
            ).all()
            assert [(t.due_at, t.done_at, t.outcome) for t in nights] == [
                (next_night(at), night, "done"),
                (night + timedelta(days=1), None, ""),
            ]
        assert cells_holding(engine, MARKER) == []
        assert not on_disk()  # fails without secure_delete (the draft) or the checkpoint
        assert path.with_name(path.name + "-wal").stat().st_size == 0  # truncated by the checkpoint
    finally:
        engine.dispose()


def test_retention_run_on_the_command_line_purges_now_and_prints_the_counts(
    world: World, engine: Engine
) -> None:
    purged = request_with(world, note=NOTE, place=PLACE)  # in March 2026: long past on the wall clock
    url = engine.url.render_as_string(hide_password=False)
    done = subprocess.run(
        [sys.executable, "-m", "bot", "retention", "run", "--district", "testkreis"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url, "BOT_LOCALE": "en", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    lines = done.stdout.splitlines()
    assert lines[0].startswith(
        "Free text removed in Landkreis testkreis: 1 notes, 1 typed places (0 in changes), "
    )
    assert lines[1:] == [
        "Deleted: 0 dialog drafts untouched for 7 days, 0 chat links of people deactivated 30 days ago, "
        "0 messages and 0 notifications sent or given up before the period.",
        "Fiscal years past retention_accounts: 0 requests, 0 offers, 0 changes, 0 reports, 0 unmet requests, "
        "0 ledger entries, 0 budgets and 0 audit events deleted.",
        "People deactivated 30 days ago and erased now, as on their request: —.",
    ]
    assert cells_holding(engine, MARKER) == []
    with world.make_uow() as u:
        request = u.session.get(Request, purged)
        assert request is not None
        assert (request.note, request.place) == ("", SCHOOL_ADDRESS)
        [event] = u.session.exec(select(AuditEvent).where(AuditEvent.action == "retention.run")).all()
        assert event.actor.startswith("cli")
        assert json.loads(event.detail)["notes"] == 1


def test_policy_refuses_free_text_kept_longer_than_the_accounts(world: World) -> None:
    from services.errors import InvalidInput

    with world.make_uow() as u:
        set_rule(u.session, world.district_id, "retention_free_text", "400d", actor=ACTOR, now=NOW)
        with pytest.raises(InvalidInput, match="before the accounts"):
            set_rule(u.session, world.district_id, "retention_accounts", "365d", actor=ACTOR, now=NOW)
        assert load_policy(u.session, world.district_id).retention_accounts == timedelta(days=3650)
        with pytest.raises(InvalidInput):
            set_rule(
                u.session, world.district_id, "retention_free_text", "12h", actor=ACTOR, now=NOW
            )  # below 1d


def test_counts_are_numbers_only_for_the_log() -> None:
    counts = dataclasses.replace(PurgeCounts(), notes=2, drafts=1)
    assert counts.total == 3
    assert counts.log_text().startswith("notes=2 places=0 change_places=0 ")
    assert "drafts=1" in counts.log_text()
