"""The /budget figures summed in SQL against the old entry-by-entry algorithm, in the same run.

The demo district's budget gets `--rows` ledger rows (bench/big_world.py) up to 30 November, on
SQLite and PostgreSQL. Timed: `services.budget_picture.budget_picture` (history and projection)
and the old algorithm, which tests/test_budget_figures_sql.py keeps as its yardstick; both give
the same figures (checked before timing).

Run: `.venv/bin/python -m bench.budget_sql [--rows 100000] [--rounds 15] [--db both|sqlite|postgresql]`
"""

import argparse
import random
import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Engine

from bench.big_world import DISTRICT, add_ledger, databases, figures
from db.uow import UnitOfWork
from services.budget_picture import BudgetDay, Projection, budget_picture
from services.ledger import get_budget
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
    assert picture(engine, budget_picture) == picture(engine, reference_picture)  # also warms up
    old = timed(lambda: picture(engine, reference_picture), max(3, rounds // 4))
    new = timed(lambda: picture(engine, budget_picture), rounds)
    print(figures(f"old: every entry through the ORM ({label})", old))
    print(figures(f"new: summed in SQL ({label})", new, old))


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
