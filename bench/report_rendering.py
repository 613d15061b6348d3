"""The coordinator's files for a busy year, vs. the bare libraries drawing empty ones.

Builds the demo district with a year of sessions through the services (SQLite), then measures in
one process and one run:
- the budget chart (ledger history, projection, PNG) against matplotlib saving an empty figure of
  the same size;
- the evaluation for the year (queries and figures alone, then with the PDF) against matplotlib
  saving four empty A4 pages, and four pages with a line of text in embedded TrueType fonts (what
  makes our PDF searchable, and half its cost);
- a month's billing as XLSX against openpyxl saving an empty workbook.
Prints the median and p95 in milliseconds and the ratio to the baseline.

Run: `.venv/bin/python -m bench.report_rendering [--sessions N] [--rounds N]`
"""

import argparse
import io
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from openpyxl import Workbook
from sqlmodel import col, select

from bot.billing_export import billing_xlsx
from bot.budget_chart import budget_chart_png
from bot.evaluation_export import A4, evaluation_pdf
from bot.i18n import Translator
from db.engine import make_engine
from db.migrate import upgrade
from db.models import Offer, School
from db.uow import UnitOfWork
from services.billing_report import monthly_billing
from services.budget_picture import budget_picture
from services.closeout import confirm, report
from services.demo import create_demo
from services.evaluation import Period, evaluate
from services.ledger import get_budget, set_total
from services.offers import accept_offer
from services.requests import RequestDraft, submit_request
from services.vocabulary import Mode, Topic

T = Translator("de")
TODAY = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
LANGUAGES = ("ar", "fa", "ku", "ru", "uk", "tr", "so", "ti", "ps", "ro")


def summary(label: str, samples: list[float], baseline: list[float] | None) -> str:
    ms = sorted(s * 1000 for s in samples)
    median, p95 = statistics.median(ms), ms[max(0, round(0.95 * len(ms)) - 1)]
    line = f"{label:<38} n={len(ms):<4} median {median:8.2f} ms   p95 {p95:8.2f} ms"
    if baseline:
        line += f"   ratio {median / (statistics.median(baseline) * 1000):6.2f}x"
    return line


def timed(action: Callable[[], object], rounds: int) -> list[float]:
    action()  # warm caches (fonts, catalogs, queries) before measuring
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return samples


def build_year(database: Path, sessions: int) -> int:
    """The demo district with `sessions` requests spread over 2026; most settled. Returns its id."""
    os.environ["DATABASE_URL"] = f"sqlite:///{database}"
    engine = make_engine()
    upgrade(engine)
    with UnitOfWork(engine) as uow:
        demo = create_demo(uow.session, now=datetime(2026, 1, 2, tzinfo=UTC), actor="bench")
        assert demo.district.id is not None
        district_id = demo.district.id
        set_total(
            uow.session, district_id=district_id, year=2026, total_cents=50_000_00, actor="b", now=TODAY
        )
        uow.commit()
    with UnitOfWork(engine) as uow:
        schools = [s.id for s in uow.session.exec(select(School).order_by(col(School.id)))]
    for n in range(sessions):
        starts = datetime(2026, 1, 12, 9, 0, tzinfo=UTC) + timedelta(days=n * 320 // sessions, hours=n % 5)
        created = starts - timedelta(days=7)
        with UnitOfWork(engine) as uow:
            s = uow.session
            school = schools[n % len(schools)]
            assert school is not None
            mode = (Mode.IN_PERSON, Mode.PHONE, Mode.VIDEO)[n % 3]
            language = LANGUAGES[n % len(LANGUAGES)]
            draft = RequestDraft(school, language, mode, starts, 60, Topic.PARENT_TALK)
            request = submit_request(s, district_id=district_id, draft=draft, actor="bench", now=created)
            offer = s.exec(select(Offer).where(Offer.request_id == request.id, Offer.state == "open")).first()
            if offer is not None and n % 9 != 0 and request.id is not None:
                taker = offer.interpreter_id
                accept_offer(s, offer_id=offer.id or 0, interpreter_id=taker, actor="b", now=created)
                after = starts + timedelta(minutes=90)
                if starts < TODAY:
                    minutes, km = 45 + n % 60, (n % 4) * 9 if mode == Mode.IN_PERSON else 0
                    report(s, request_id=request.id, interpreter_id=taker, minutes=minutes,
                           km=km, expenses_cents=0, actor="b", now=after)  # fmt: skip
                    confirm(s, district_id=district_id, request_id=request.id, actor="b", now=after)
            uow.commit()
    engine.dispose()
    return district_id


def main(sessions: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        district_id = build_year(Path(folder) / "bench.sqlite3", sessions)
        print(f"built {sessions} requests in {time.perf_counter() - started:.1f} s")
        engine = make_engine()

        def empty_png() -> bytes:
            figure = Figure(figsize=(8, 4.5), dpi=100)
            figure.add_subplot()
            out = io.BytesIO()
            figure.savefig(out, format="png")
            return out.getvalue()

        def chart() -> bytes:
            with UnitOfWork(engine) as uow:
                budget = get_budget(uow.session, district_id, 2026)
                history, projection = budget_picture(uow.session, budget, TODAY)
            return budget_chart_png(T, 2026, history, projection)

        def empty_pdf() -> bytes:
            out = io.BytesIO()
            with PdfPages(out) as pdf:
                for _ in range(4):
                    page = Figure(figsize=A4)
                    page.add_subplot()
                    pdf.savefig(page)
            return out.getvalue()

        def text_pdf() -> bytes:
            """Four pages with a title in regular and bold type, fonts embedded as TrueType (as ours)."""
            out = io.BytesIO()
            with PdfPages(out) as pdf:  # bot.drawing embeds fonts as TrueType for every PDF
                for number in range(4):
                    page = Figure(figsize=A4)
                    page.add_subplot()
                    page.text(0.1, 0.95, f"Seite {number}: Übersicht 0123456789", weight="bold")
                    page.text(0.1, 0.92, "Anfragen, Sprachen, Schulen, Dolmetscher/innen")
                    pdf.savefig(page)
            return out.getvalue()

        year = Period(date(2026, 1, 1), date(2026, 12, 31))

        def figures() -> object:
            with UnitOfWork(engine) as uow:
                return evaluate(uow.session, district_id, year)

        def evaluation() -> bytes:
            with UnitOfWork(engine) as uow:
                found = evaluate(uow.session, district_id, year)
            return evaluation_pdf(T, found, "Landkreis Heidekreis")

        def empty_xlsx() -> bytes:
            out = io.BytesIO()
            Workbook().save(out)
            return out.getvalue()

        def billing() -> bytes:
            with UnitOfWork(engine) as uow:
                found = monthly_billing(uow.session, district_id, date(2026, 5, 1))
            return billing_xlsx(T, found, date(2026, 5, 1))

        png = timed(empty_png, rounds)
        pdf = timed(empty_pdf, rounds)
        searchable = timed(text_pdf, rounds)
        xlsx = timed(empty_xlsx, rounds)
        print(summary("baseline: empty PNG 800x450", png, None))
        print(summary("budget chart (ledger, projection, PNG)", timed(chart, rounds), png))
        print(summary("baseline: four empty A4 PDF pages", pdf, None))
        print(summary("evaluation figures only (queries)", timed(figures, rounds), pdf))
        print(summary("baseline: same with TrueType text", searchable, None))
        drawn = timed(evaluation, rounds)
        print(summary("evaluation PDF (figures and drawing)", drawn, pdf))
        print(summary("  the same against TrueType pages", drawn, searchable))
        print(summary("baseline: empty XLSX", xlsx, None))
        print(summary("billing of May as XLSX", timed(billing, rounds), xlsx))
        engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=600, help="requests in the year (default 600)")
    parser.add_argument("--rounds", type=int, default=10, help="measured runs of each (default 10)")
    arguments = parser.parse_args()
    main(arguments.sessions, arguments.rounds)
