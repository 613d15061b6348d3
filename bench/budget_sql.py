"""The /budget figures three ways over the same ledger, in the same run: from the running totals
kept with each entry (now, since migration 0013), summed from the ledger in SQL (before 0013), and
entry by entry (before that).

The demo district's budget gets `--rows` ledger rows (bench/big_world.py, which adds their running
totals too) up to 30 November, on SQLite and PostgreSQL. Timed: `services.budget_picture.budget_picture`,
`summed_in_sql` below (the implementation before 0013, kept here as a yardstick) and the
entry-by-entry algorithm tests/test_budget_figures_sql.py keeps; all three give the same figures
(checked before timing).

Run: `.venv/bin/python -m bench.budget_sql [--rows 100000] [--rounds 15] [--db both|sqlite|postgresql]`
"""

import argparse
import random
import time
from collections.abc import Callable
from datetime import date, datetime

from sqlalchemy import Date, Engine, String, case, cast, func, type_coerce
from sqlmodel import Session, col, select

from bench.big_world import DISTRICT, add_ledger, databases, figures
from db.models import Budget, LedgerEntry, Request
from db.uow import UnitOfWork
from services.budget_picture import (
    BudgetDay,
    Projection,
    _Ledger,
    _projection,
    budget_history,
    budget_picture,
)
from services.clock import BERLIN
from services.ledger import get_budget
from services.vocabulary import LedgerKind
from tests.test_budget_figures_sql import reference_picture

NOW = datetime.fromisoformat("2026-11-30T09:00:00+00:00")
Picture = tuple[list[BudgetDay], Projection]


def timed(action: Callable[[], object], rounds: int) -> list[float]:
    seconds = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - start)
    return seconds


def summed_in_sql(session: Session, budget: Budget, now: datetime) -> Picture:
    """The picture as /budget computed it before migration 0013: the whole ledger summed per Berlin
    day in SQL (SQLite: per UTC hour, put into its Berlin day in Python), and the reservations of
    begun requests summed from the ledger joined to the requests."""
    assert budget.id is not None
    kind, amount = col(LedgerEntry.kind), col(LedgerEntry.amount_cents)
    charges = kind.in_([LedgerKind.CHARGE, LedgerKind.ADJUST])
    charged = func.sum(case((charges, amount), else_=0))
    reserved = func.sum(case((charges, 0), (kind == LedgerKind.RESERVE, amount), else_=-amount))
    mine = LedgerEntry.budget_id == budget.id
    if session.get_bind().dialect.name == "postgresql":
        day = cast(func.timezone("Europe/Berlin", LedgerEntry.created_at), Date)
        rows = [
            (d, int(c), int(r))
            for d, c, r in session.exec(select(day, charged, reserved).where(mine).group_by(day))
        ]
    else:
        hour = func.substr(type_coerce(LedgerEntry.created_at, String), 1, 13)
        rows = [
            (datetime.fromisoformat(f"{h}:00+00:00").astimezone(BERLIN).date(), int(c), int(r))
            for h, c, r in session.exec(select(hour, charged, reserved).where(mine).group_by(hour))
        ]
    by_charged: dict[date, int] = {}
    by_reserved: dict[date, int] = {}
    for d, c, r in rows:
        by_charged[d] = by_charged.get(d, 0) + c
        by_reserved[d] = by_reserved.get(d, 0) + r
    signed = case((kind == LedgerKind.RESERVE, amount), else_=-amount)
    begun = session.exec(
        select(func.coalesce(func.sum(signed), 0))
        .select_from(LedgerEntry)
        .join(Request, col(Request.id) == LedgerEntry.request_id)
        .where(mine, kind.in_([LedgerKind.RESERVE, LedgerKind.RELEASE]), col(Request.starts_at) <= now)
    ).one()
    ledger = _Ledger(by_charged, by_reserved, int(begun))
    history = budget_history(ledger, budget.fiscal_year, now.astimezone(BERLIN).date())
    return history, _projection(budget, ledger.held_cents, now)


def picture(engine: Engine, how: Callable[..., Picture]) -> Picture:
    with UnitOfWork(engine) as uow:
        return how(uow.session, get_budget(uow.session, DISTRICT, NOW.year), NOW)


def run(label: str, engine: Engine, rows: int, rounds: int) -> None:
    with UnitOfWork(engine) as uow:
        budget_id = get_budget(uow.session, DISTRICT, NOW.year).id
    assert budget_id is not None
    add_ledger(engine, budget_id, rows, random.Random(16), now=NOW)  # noqa: S311 - test data
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE")
    now = picture(engine, budget_picture)  # also warms up
    assert now == picture(engine, summed_in_sql) == picture(engine, reference_picture)
    old = timed(lambda: picture(engine, reference_picture), max(3, rounds // 4))
    sql = timed(lambda: picture(engine, summed_in_sql), rounds)
    new = timed(lambda: picture(engine, budget_picture), rounds)
    print(figures(f"oldest: every entry through the ORM ({label})", old))
    print(figures(f"before 0013: the ledger summed in SQL ({label})", sql, old))
    print(figures(f"now: the running totals ({label})", new, sql))


def main(rows: int, rounds: int, which: str) -> None:
    with databases(which) as each:
        for label, engine in each:
            run(label, engine, rows, rounds)
            engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--db", choices=("both", "sqlite", "postgresql"), default="both")
    arguments = parser.parse_args()
    main(arguments.rows, arguments.rounds, arguments.db)
