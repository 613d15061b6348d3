"""Large worlds for the benchmarks: the demo district on SQLite and PostgreSQL, grown by bulk inserts.

Rows go in past the ORM (COPY on PostgreSQL, executemany on SQLite), so 200,000 bookings take
seconds. The PostgreSQL cluster is the test suite's (tests/pg_cluster.py): a throw-away server
under /tmp, started once per bench run.
"""

import random
import statistics
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.schema import Table

from db.engine import make_engine
from db.migrate import upgrade
from db.models import (
    BudgetDayTotal,
    Interpreter,
    InterpreterLanguage,
    LedgerEntry,
    OpenReservation,
    Request,
    School,
)
from db.uow import UnitOfWork
from services.clock import BERLIN
from services.demo import create_demo
from services.vocabulary import LedgerKind, Mode, RequestState, Topic
from tests.pg_cluster import PostgresCluster

NOW = datetime.fromisoformat("2026-03-02T08:00:00+00:00")  # Monday 09:00 in Berlin (as tests/chat_world.py)
DISTRICT = 1
# One to three draws each: the most common language is spoken by about 27 % of the pool (issue 16:
# about 1,340 of 5,000).
LANGUAGES = ("ar", "tr", "ru", "uk", "fa", "ps", "ku", "pl", "ro", "bg", "sq", "ti", "so", "fr", "vi")
WEIGHTS = (15, 12, 10, 10, 9, 8, 7, 6, 5, 4, 4, 3, 3, 2, 2)
MODES = ("in_person,phone,video", "phone,video", "in_person,phone", "in_person")


def table(model: Any) -> Table:
    found: Table = model.__table__
    return found


def bulk(engine: Engine, model: Any, rows: Sequence[dict[str, Any]]) -> None:
    """Insert the rows in one transaction, past the ORM: COPY on PostgreSQL, executemany on SQLite.

    Times go in as the column type stores them (db/types.py): aware on PostgreSQL, naive UTC text
    on SQLite.
    """
    if not rows:
        return
    columns = list(rows[0])
    name = table(model).name
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        if engine.dialect.name == "postgresql":
            with cursor.copy(f"COPY {name} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row([row[c] for c in columns])
            connection.commit()
        else:
            cursor.execute("BEGIN IMMEDIATE")
            marks = ", ".join("?" for _ in columns)
            cursor.executemany(
                f"INSERT INTO {name} ({', '.join(columns)}) VALUES ({marks})",  # noqa: S608 - our own names
                [[_sqlite(row[c]) for c in columns] for row in rows],
            )
            cursor.execute("COMMIT")
    finally:
        connection.close()


def _sqlite(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


@contextmanager
def databases(which: str) -> Iterator[Iterator[tuple[str, Engine]]]:
    """Fresh, migrated databases with the demo district: SQLite, PostgreSQL or both (`which`)."""
    with tempfile.TemporaryDirectory() as folder:
        cluster = PostgresCluster() if which in ("both", "postgresql") else None
        if cluster is not None:
            cluster.start()
        try:

            def each() -> Iterator[tuple[str, Engine]]:
                if which in ("both", "sqlite"):
                    yield "SQLite", fresh(make_engine(f"sqlite:///{Path(folder) / 'bench.sqlite3'}"))
                if cluster is not None:
                    yield "PostgreSQL", fresh(make_engine(cluster.create_database("bench")))

            yield each()
        finally:
            if cluster is not None:
                cluster.stop()


def fresh(engine: Engine) -> Engine:
    upgrade(engine)
    with UnitOfWork(engine) as uow:
        create_demo(uow.session, now=NOW, actor="bench")
        uow.commit()
    return engine


def add_interpreters(engine: Engine, count: int, rng: random.Random) -> list[int]:
    """`count` interpreters around Celle, each with one to three languages; their ids."""
    rows = [
        {
            "district_id": DISTRICT,
            "name": f"Bench {n}",
            "municipality": "Celle",
            "latitude": 52.62 + rng.uniform(-0.3, 0.3),
            "longitude": 10.08 + rng.uniform(-0.4, 0.4),
            "modes": rng.choice(MODES),
            "phone": "",
            "email": "",
            "gender": rng.choice(("female", "male", None)),
            "active": True,
            "created_at": NOW - timedelta(days=400),
        }
        for n in range(count)
    ]
    with engine.connect() as connection:
        before = set(connection.execute(select(table(Interpreter).c.id)).scalars())
    bulk(engine, Interpreter, rows)
    with engine.connect() as connection:
        ids = sorted(set(connection.execute(select(table(Interpreter).c.id)).scalars()) - before)
    languages = []
    for interpreter_id in ids:
        spoken = {rng.choices(LANGUAGES, WEIGHTS)[0] for _ in range(rng.randint(1, 3))}
        languages += [
            {"interpreter_id": i, "language": lang} for i, lang in [(interpreter_id, s) for s in spoken]
        ]
    bulk(engine, InterpreterLanguage, languages)
    return ids


def school_ids(engine: Engine) -> list[int]:
    with engine.connect() as connection:
        return list(connection.execute(select(table(School).c.id)).scalars())


def request_row(
    school_id: int,
    starts_at: datetime,
    state: RequestState,
    interpreter_id: int | None,
    language: str,
    mode: str,
) -> dict[str, Any]:
    return {
        "district_id": DISTRICT,
        "school_id": school_id,
        "language": language,
        "mode": mode,
        "topic": Topic.PARENT_TALK.value,
        "starts_at": starts_at,
        "duration_minutes": 60,
        "place": "Bench school",
        "place_latitude": 52.62,
        "place_longitude": 10.08,
        "gender_preference": None,
        "note": "",
        "state": state.value,
        "estimate_cents": 4500,
        "wave": 1,
        "calendar_sequence": 0,
        "interpreter_id": interpreter_id,
        "booked_at": None if interpreter_id is None else starts_at - timedelta(days=3),
        "created_at": starts_at - timedelta(days=7),
        "updated_at": starts_at - timedelta(days=3),
    }


def add_bookings(engine: Engine, count: int, interpreters: Sequence[int], rng: random.Random) -> None:
    """`count` booked or completed requests over the two years before and the month after NOW."""
    schools = school_ids(engine)
    rows = []
    for _ in range(count):
        starts_at = NOW + timedelta(hours=rng.randint(-2 * 365 * 24, 30 * 24))
        state = RequestState.BOOKED if starts_at > NOW else RequestState.SETTLED
        language = rng.choices(LANGUAGES, WEIGHTS)[0]
        mode = rng.choice((Mode.IN_PERSON, Mode.PHONE, Mode.VIDEO)).value
        rows.append(
            request_row(rng.choice(schools), starts_at, state, rng.choice(interpreters), language, mode)
        )
    bulk(engine, Request, rows)


def add_ledger(engine: Engine, budget_id: int, count: int, rng: random.Random, now: datetime = NOW) -> None:
    """`count` ledger rows in the fiscal year of `now`, posted up to `now`: per request a reserve,
    and for the past ones a release and a charge (for the others now and then an adjustment)."""
    schools = school_ids(engine)
    year_start = datetime(now.year, 1, 1, tzinfo=now.tzinfo)
    span = int((now - year_start).total_seconds() // 3600) + 30 * 24
    requests = []
    for _ in range(count // 2 + 1):
        starts_at = year_start + timedelta(hours=rng.randint(7 * 24, span))
        state = RequestState.BOOKED if starts_at > now else RequestState.SETTLED
        requests.append(request_row(rng.choice(schools), starts_at, state, None, "ar", Mode.PHONE.value))
    with engine.connect() as connection:
        first = connection.execute(select(table(Request).c.id).order_by(table(Request).c.id.desc())).first()
    offset = 0 if first is None else int(first[0])
    bulk(engine, Request, requests)
    rows: list[dict[str, Any]] = []
    for n, request in enumerate(requests, start=offset + 1):
        booked = request["created_at"] + timedelta(minutes=rng.randint(1, 600))
        amount = rng.randint(2000, 9000)
        rows.append(ledger_row(budget_id, n, LedgerKind.RESERVE, amount, min(booked, now)))
        if request["starts_at"] < now:
            settled = min(request["starts_at"] + timedelta(days=2), now)
            rows.append(ledger_row(budget_id, n, LedgerKind.RELEASE, amount, settled))
            rows.append(ledger_row(budget_id, n, LedgerKind.CHARGE, amount - rng.randint(0, 1500), settled))
        elif rng.random() < 0.5:
            rows.append(ledger_row(budget_id, n, LedgerKind.ADJUST, rng.randint(-500, 500), min(booked, now)))
        if len(rows) >= count:
            break
    bulk(engine, LedgerEntry, rows[:count])
    starts = {n: request["starts_at"] for n, request in enumerate(requests, start=offset + 1)}
    add_running_totals(engine, rows[:count], starts)


def add_running_totals(
    engine: Engine, entries: Sequence[dict[str, Any]], starts: dict[int, datetime]
) -> None:
    """Add bulk-inserted ledger rows to the running totals the postings keep (services/ledger.py):
    the change per budget and Berlin day, and each request's open reservation (0 ones deleted) with
    its start time (`starts`, by request id)."""
    days: dict[tuple[int, date], list[int]] = {}
    held: dict[tuple[int, int], int] = {}
    for entry in entries:
        kind, amount = LedgerKind(entry["kind"]), entry["amount_cents"]
        signed = -amount if kind is LedgerKind.RELEASE else amount
        day = days.setdefault((entry["budget_id"], entry["created_at"].astimezone(BERLIN).date()), [0, 0])
        day[0 if kind in (LedgerKind.CHARGE, LedgerKind.ADJUST) else 1] += signed
        if kind in (LedgerKind.RESERVE, LedgerKind.RELEASE) and entry["request_id"] is not None:
            key = (entry["request_id"], entry["budget_id"])
            held[key] = held.get(key, 0) + signed
    day_rows = [
        {"budget_id": b, "day": d, "charged_cents": c, "reserved_cents": r} for (b, d), (c, r) in days.items()
    ]
    open_rows = [
        {"request_id": r, "budget_id": b, "starts_at": starts[r], "amount_cents": a}
        for (r, b), a in held.items()
    ]
    with engine.begin() as connection:
        for model, keys, rows in (
            (BudgetDayTotal, ["budget_id", "day"], day_rows),
            (OpenReservation, ["request_id", "budget_id"], open_rows),
        ):
            if rows:
                connection.execute(_adding_upsert(engine, table(model), keys), rows)
        connection.execute(delete(table(OpenReservation)).where(table(OpenReservation).c.amount_cents == 0))


def _adding_upsert(engine: Engine, into: Table, keys: list[str]) -> Any:
    """INSERT, or add the amounts to the row with the same keys (PostgreSQL's and SQLite's own)."""
    insert = (postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert)(into)
    amounts = [c.name for c in into.columns if c.name.endswith("_cents")]
    return insert.on_conflict_do_update(
        index_elements=keys, set_={name: into.c[name] + insert.excluded[name] for name in amounts}
    )


def ledger_row(
    budget_id: int, request_id: int, kind: LedgerKind, amount: int, at: datetime
) -> dict[str, Any]:
    return {
        "budget_id": budget_id,
        "request_id": request_id,
        "kind": kind.value,
        "amount_cents": amount,
        "reason": "bench" if kind is LedgerKind.ADJUST else None,
        "actor": "bench",
        "created_at": at,
    }


def figures(label: str, seconds: Sequence[float], baseline: Sequence[float] | None = None) -> str:
    """One line: n, median, p95 and max in milliseconds, and the ratio of the medians to the baseline."""
    ms = sorted(s * 1000 for s in seconds)
    median, p95 = statistics.median(ms), ms[max(0, round(0.95 * len(ms)) - 1)]
    line = f"{label:<50} n={len(ms):<4} median {median:8.2f} ms   p95 {p95:8.2f} ms   max {ms[-1]:8.2f} ms"
    if baseline:
        line += f"   ratio {median / (statistics.median(baseline) * 1000):6.2f}x"
    return line
