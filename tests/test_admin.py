"""CSV imports (all or nothing), invite codes, policy values, and the migrated schema."""

from collections.abc import Callable
from datetime import timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel, select

from bot.i18n import Translator
from db.models import Interpreter, Invite, School
from db.uow import UnitOfWork
from services.errors import ImportRowError, InvalidInput, InvalidInvite
from services.invites import create_invite, hash_code, redeem_invite
from services.policy import load_policy, set_rule
from services.pool import import_pool, languages_of
from services.schools import import_schools
from services.units import format_duration, parse_duration, parse_money
from services.vocabulary import Role
from tests.builders import ACTOR, NOW, build_world

MakeUow = Callable[[], UnitOfWork]
HEADER = "name,languages,municipality,latitude,longitude,modes,phone,email\n"


def test_pool_import_reads_every_row(uow: MakeUow) -> None:
    world = build_world(uow)
    text = HEADER + (
        "Amira Haddad,ar;fr,Soltau,52.98,9.84,in_person;phone,+49 1,a@x.de\n"
        "Ahmad Noori,prs;ps,Walsrode,52.86,9.59,video,,\n"
    )
    with uow() as u:
        assert (
            import_pool(
                u.session, district_id=world.district_id, text=text, file="pool.csv", actor=ACTOR, now=NOW
            )
            == 2
        )
        u.commit()
    with uow() as u:
        pool = {i.name: i for i in u.session.exec(select(Interpreter))}
        assert pool["Amira Haddad"].modes == "in_person,phone"
        assert languages_of(u.session, pool["Ahmad Noori"].id or 0) == ["prs", "ps"]


@pytest.mark.parametrize(
    ("row", "line", "column"),
    [
        ("Bad,xx,Soltau,52.9,9.8,phone,,", 3, "languages"),
        ("Bad,ar,Soltau,152.9,9.8,phone,,", 3, "latitude"),
        ("Bad,ar,Soltau,52.9,9.8,teleport,,", 3, "modes"),
        (",ar,Soltau,52.9,9.8,phone,,", 3, "name"),
    ],
)
def test_a_bad_row_imports_nothing_and_says_where(uow: MakeUow, row: str, line: int, column: str) -> None:
    world = build_world(uow)
    text = HEADER + "Good,ar,Soltau,52.9,9.8,phone,,\n" + row + "\n"
    with uow() as u, pytest.raises(ImportRowError) as caught:
        import_pool(
            u.session, district_id=world.district_id, text=text, file="pool.csv", actor=ACTOR, now=NOW
        )
    assert (caught.value.params["file"], caught.value.params["line"], caught.value.params["column"]) == (
        "pool.csv",
        line,
        column,
    )
    message = Translator("en").error(caught.value)
    assert message.startswith(f"pool.csv, line {line}, column “{column}”: ")
    with uow() as u:
        assert u.session.exec(select(Interpreter)).all() == []


def test_school_import_needs_its_columns(uow: MakeUow) -> None:
    world = build_world(uow)
    with uow() as u, pytest.raises(ImportRowError) as caught:
        import_schools(
            u.session,
            district_id=world.district_id,
            text="name,address\nX,Y\n",
            file="s.csv",
            actor=ACTOR,
            now=NOW,
        )
    assert caught.value.params["column"] == "municipality"
    with uow() as u:
        assert len(u.session.exec(select(School)).all()) == 1  # only the world's own school


def test_invite_codes_work_once_and_expire(uow: MakeUow) -> None:
    world = build_world(uow)
    with uow() as u:
        invite, code = create_invite(
            u.session,
            district_id=world.district_id,
            role=Role.SCHOOL,
            for_id=world.school_id,
            actor=ACTOR,
            now=NOW,
        )
        _, old_code = create_invite(
            u.session,
            district_id=world.district_id,
            role=Role.COORDINATOR,
            for_id=world.district_id,
            actor=ACTOR,
            now=NOW,
        )
        u.commit()
    assert len(code) >= 32  # 24 random bytes
    with uow() as u:
        stored = u.session.exec(select(Invite)).all()
        assert code not in {i.code_hash for i in stored}
        assert hash_code(code) in {i.code_hash for i in stored}
        member = redeem_invite(u.session, code=code, now=NOW)
        u.commit()
    assert (member.role, member.school_id) == ("school", world.school_id)
    with uow() as u, pytest.raises(InvalidInvite, match="already been used"):
        redeem_invite(u.session, code=code, now=NOW)
    with uow() as u, pytest.raises(InvalidInvite, match="expired"):
        redeem_invite(u.session, code=old_code, now=invite.expires_at + timedelta(seconds=1))
    with uow() as u, pytest.raises(InvalidInvite, match="not valid"):
        redeem_invite(u.session, code="wrong", now=NOW)
    with uow() as u, pytest.raises(InvalidInput):
        create_invite(
            u.session, district_id=world.district_id, role=Role.SCHOOL, for_id=999, actor=ACTOR, now=NOW
        )


def test_policy_values_are_stored_per_district_and_checked(uow: MakeUow) -> None:
    world = build_world(uow)
    other = build_world(uow, slug="zweiter-kreis")
    with uow() as u:
        assert set_rule(u.session, world.district_id, "offer_timeout", "90m", actor=ACTOR, now=NOW) == (
            "4h",
            "90m",
        )
        assert set_rule(u.session, world.district_id, "hourly_rate", "25,50", actor=ACTOR, now=NOW) == (
            "24.00",
            "25.50",
        )
        u.commit()
    with uow() as u:
        assert load_policy(u.session, world.district_id).offer_timeout == timedelta(minutes=90)
        assert load_policy(u.session, world.district_id).hourly_rate == 2550
        assert load_policy(u.session, other.district_id).hourly_rate == 2400
    bad = [("offer_timeout", "soon"), ("hourly_rate", "-1"), ("nonsense", "1"), ("offer_wave_size", "0")]
    bad += [("budget_alert_first", "96%"), ("in_person_increment", "90s")]
    for key, value in bad:
        with uow() as u, pytest.raises(InvalidInput):
            set_rule(u.session, world.district_id, key, value, actor=ACTOR, now=NOW)


@pytest.mark.parametrize(
    ("text", "seconds", "canonical"),
    [
        ("90s", 90, "90s"),
        ("15m", 900, "15m"),
        ("4h", 14400, "4h"),
        ("2d", 172800, "2d"),
        ("1h30m", 5400, "90m"),
    ],
)
def test_durations(text: str, seconds: int, canonical: str) -> None:
    assert parse_duration(text).total_seconds() == seconds
    assert format_duration(parse_duration(text)) == canonical


@pytest.mark.parametrize(("text", "cents"), [("24.00", 2400), ("24,5", 2450), ("5000", 500000), ("0.30", 30)])
def test_money(text: str, cents: int) -> None:
    assert parse_money(text) == cents


@pytest.mark.parametrize("text", ["24.001", "-3", "abc", "", "1e3"])
def test_bad_money(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_money(text)


def test_the_migrations_build_exactly_the_tables(engine: Engine) -> None:
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert diff == []
