"""The coordinator's /budget over 100,000 ledger rows: the figures and the chart, on SQLite and PostgreSQL.

The demo district's budget gets `--rows` ledger rows (bulk-inserted, bench/big_world.py) spread
over the year up to 30 November. Timed separately, each in its own transaction as the handler
(bot/conversation/coordinator.py) does it:
- the figures: the budget row, its balance and `services.budget_picture.budget_picture` (history
  and projection), and the pace sentence;
- the chart: `bot.budget_chart.budget_chart_png` from those figures.
Baselines in the same run: a SELECT count and sum over the budget's ledger rows (for the figures),
an empty 800x450 PNG from matplotlib (for the chart). The chart also against the plain drawing it
replaced (`bench.budget_chart_plain`: a new figure per chart, the same PNG, checked), and its first
drawing in the process (which builds the figure it keeps) is printed. The figures also against the
way they were computed before migration 0013 (`bench.budget_sql.summed_in_sql`: the ledger summed
in SQL), the same figures (checked).

Run: `.venv/bin/python -m bench.budget_figures [--rows 100000] [--rounds 20] [--db both|sqlite|postgresql]`
"""

import argparse
import io
import random
import time
from collections.abc import Callable
from datetime import datetime

from matplotlib.figure import Figure
from sqlalchemy import Engine, func, select

from bench.big_world import DISTRICT, add_ledger, databases, figures, table
from bench.budget_chart_plain import plain_chart_png
from bench.budget_sql import Picture, summed_in_sql
from bot.budget_chart import budget_chart_png
from bot.conversation.views import pace_text
from bot.heap import set_aside_start_up
from bot.i18n import Translator
from db.models import LedgerEntry
from db.uow import UnitOfWork
from services.budget_picture import budget_picture
from services.ledger import balance_of, fiscal_year, get_budget

NOW = datetime.fromisoformat("2026-11-30T09:00:00+00:00")  # late in the year: a long history
T = Translator("de")


def timed(action: Callable[[], object], rounds: int) -> list[float]:
    seconds = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - start)
    return seconds


def budget_figures(engine: Engine, how: Callable[..., Picture] = budget_picture) -> Picture:
    with UnitOfWork(engine) as uow:
        budget = get_budget(uow.session, DISTRICT, fiscal_year(NOW))
        balance_of(budget)
        history, projection = how(uow.session, budget, NOW)
        pace_text(T, projection.runs_out_on, projection.year_end_cents)
    return history, projection


def ledger_sums(engine: Engine, budget_id: int) -> int:
    ledger = table(LedgerEntry)
    with UnitOfWork(engine) as uow:
        count, _total = uow.session.execute(
            select(func.count(), func.sum(ledger.c.amount_cents)).where(ledger.c.budget_id == budget_id)
        ).one()
    return int(count)


def empty_png() -> bytes:
    figure = Figure(figsize=(8, 4.5), dpi=100)
    figure.add_subplot()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


def run(label: str, engine: Engine, rows: int, rounds: int) -> None:
    with UnitOfWork(engine) as uow:
        budget_id = get_budget(uow.session, DISTRICT, fiscal_year(NOW)).id
    assert budget_id is not None
    start = time.perf_counter()
    add_ledger(engine, budget_id, rows, random.Random(16), now=NOW)  # noqa: S311 - test data
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE")
    took = time.perf_counter() - start
    print(f"{label}: {ledger_sums(engine, budget_id)} ledger rows inserted in {took:.1f} s")
    history, projection = budget_figures(engine)  # warm up, as a running bot is
    assert budget_figures(engine, summed_in_sql) == (history, projection)
    (first,) = timed(lambda: budget_chart_png(T, NOW.year, history, projection), 1)
    png = budget_chart_png(T, NOW.year, history, projection)
    assert png == plain_chart_png(T, NOW.year, history, projection)  # the same picture
    print(f"{label}: {len(history)} days of history, {len(png)} bytes of PNG")
    print(f"{label}: the first chart in this process (builds the figure) took {first * 1000:.1f} ms")
    set_aside_start_up()  # as `python -m bot run` does once started (bot/heap.py)
    base = timed(lambda: ledger_sums(engine, budget_id), rounds)
    before = timed(lambda: budget_figures(engine, summed_in_sql), rounds)
    picture = timed(lambda: budget_figures(engine), rounds)
    empty = timed(empty_png, rounds)
    plain = timed(lambda: plain_chart_png(T, NOW.year, history, projection), rounds)
    chart = timed(lambda: budget_chart_png(T, NOW.year, history, projection), rounds)
    print(figures(f"baseline: SELECT count, sum of the ledger ({label})", base))
    print(figures(f"before 0013: the ledger summed in SQL ({label})", before, base))
    print(figures(f"/budget figures, chart apart ({label})", picture, base))
    print(figures(f"  against before 0013 ({label})", picture, before))
    print(figures(f"baseline: empty PNG 800x450 ({label})", empty))
    print(figures(f"before: the chart drawn plain ({label})", plain, empty))
    print(figures(f"/budget chart (PNG) ({label})", chart, empty))
    print(figures(f"  against the plain drawing ({label})", chart, plain))


def main(rows: int, rounds: int, which: str) -> None:
    with databases(which) as each:
        for label, engine in each:
            run(label, engine, rows, rounds)
            engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--db", choices=("both", "sqlite", "postgresql"), default="both")
    arguments = parser.parse_args()
    main(arguments.rows, arguments.rounds, arguments.db)
