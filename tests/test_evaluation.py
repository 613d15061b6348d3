"""The evaluation report: a known term of requests, its exact figures, and its JSON, CSV and PDF."""

import io
import json
import subprocess
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from pypdf import PdfReader
from sqlalchemy.engine import Engine

from bot.evaluation_export import evaluation_csv, evaluation_pdf
from bot.i18n import Translator
from db.models import Request
from db.uow import UnitOfWork
from services.clock import BERLIN
from services.closeout import confirm
from services.errors import InvalidInput
from services.evaluation import Evaluation, Group, Period, Worker, evaluate, make_period, parse_date
from services.offers import mark_unfilled
from services.requests import cancel, submit_request
from services.schools import SchoolData, save_school
from services.vocabulary import Mode
from tests.builders import ACTOR, NOW, World, book, build_world, draft, report_for, run_report, submit

ROOT = Path(__file__).resolve().parent.parent
MakeUow = Callable[[], UnitOfWork]
TERM = Period(date(2026, 4, 1), date(2026, 6, 30))


def at(month: int, day: int, hour: int = 10) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=BERLIN)


def settle(
    world: World, request_id: int, name: str, minutes: int, km: int = 0, expenses_cents: int = 0
) -> None:
    report_for(world, request_id, name, minutes, at(7, 2), km=km, expenses_cents=expenses_cents)
    with world.make_uow() as u:
        confirm(u.session, district_id=world.district_id, request_id=request_id, actor=ACTOR, now=at(7, 3))
        u.commit()


@pytest.fixture
def term(uow: MakeUow) -> World:
    """April to June 2026 at two schools: three sessions filled (one cancelled late), Tigrinya that
    nobody speaks, Somali that nobody took, one withdrawn, one still open; and a session in July."""
    world = build_world(uow)
    world.interpreter("Amira Haddad", km_north=1)
    world.interpreter("Samir Nasser", km_north=2)
    world.interpreter("Hodan Ali", ["so"], km_north=3)
    with world.make_uow() as u:
        munster = save_school(
            u.session,
            district_id=world.district_id,
            data=SchoolData("Oberschule Munster", "Am Markt 1, 29633 Munster", "Munster", 52.99, 10.08),
            actor=ACTOR,
            now=NOW,
        )
        u.commit()
        assert munster.id is not None
        munster_id = munster.id

    def at_munster(**kwargs: object) -> int:
        with world.make_uow() as u:
            request = submit_request(
                u.session,
                district_id=world.district_id,
                draft=draft(munster_id, **kwargs),  # type: ignore[arg-type]
                actor=ACTOR,
                now=NOW,
            )
            u.commit()
            assert request.id is not None
            return request.id

    visit = submit(world, starts_at=at(4, 14), minutes=60)
    book(world, visit, "Amira Haddad", NOW + timedelta(hours=2))
    settle(world, visit, "Amira Haddad", 75, km=18, expenses_cents=350)  # 36.00 + 5.40 + 3.50
    call = at_munster(mode=Mode.PHONE, starts_at=at(5, 5), minutes=40)
    book(world, call, "Samir Nasser", NOW + timedelta(minutes=30))
    settle(world, call, "Samir Nasser", 40)  # 45 billed minutes: 18.00
    at_munster(language="ti", mode=Mode.VIDEO, starts_at=at(5, 6))  # nobody speaks Tigrinya
    somali = submit(world, language="so", mode=Mode.VIDEO, starts_at=at(6, 2))
    with world.make_uow() as u:
        request = u.session.get(Request, somali)
        assert request is not None
        mark_unfilled(u.session, request, actor=ACTOR, now=NOW + timedelta(hours=4))
        u.commit()
    late = submit(world, starts_at=at(6, 10))
    book(world, late, "Samir Nasser", NOW + timedelta(hours=3))
    withdrawn = submit(world, mode=Mode.PHONE, starts_at=at(6, 20))
    for request_id, when in ((late, at(6, 10, 8)), (withdrawn, at(6, 1))):  # late: the 24.00 minimum
        with world.make_uow() as u:
            cancel(u.session, district_id=world.district_id, request_id=request_id, actor=ACTOR, now=when)
            u.commit()
    submit(world, starts_at=at(6, 25))  # still offered
    july = submit(world, mode=Mode.PHONE, starts_at=at(7, 1), minutes=30)
    book(world, july, "Amira Haddad")
    settle(world, july, "Amira Haddad", 30)
    return world


def _evaluate(world: World) -> Evaluation:
    with world.make_uow() as u:
        return evaluate(u.session, world.district_id, TERM)


def _group(key: str, *figures: int | float | None) -> dict[str, object]:
    names = ("requests", "filled", "not_covered", "not_filled", "fill_rate_percent", "sessions", "minutes")
    return {"key": key, **dict(zip(names, figures, strict=False)), "cost_cents": figures[-1]}


def test_the_figures_of_the_term_are_exact(term: World) -> None:
    report = _evaluate(term).as_json()
    assert report["period"] == {"from": "2026-04-01", "to": "2026-06-30"}
    assert report["outcomes"] == {
        "filled": 3, "not_covered": 1, "not_filled": 1, "rejected": 0, "cancelled": 1, "open": 1,
    }  # fmt: skip
    # fill rate 3 of 5; minutes 75 + 40 + 0; cost 44.90 + 18.00 + 24.00
    assert report["total"] == _group("total", 7, 3, 1, 1, 60.0, 2, 115, 8690)  # the late cancellation: paid
    assert report["time_to_fill_minutes"] == {"median": 120, "mean": 110}  # 120, 30 and 180 minutes
    assert report["by_language"] == [
        _group("ar", 5, 3, 0, 0, 100.0, 2, 115, 8690),
        _group("so", 1, 0, 0, 1, 0.0, 0, 0, 0),
        _group("ti", 1, 0, 1, 0, 0.0, 0, 0, 0),
    ]
    assert report["by_mode"] == [
        _group("in_person", 3, 2, 0, 0, 100.0, 1, 75, 6890),
        _group("phone", 2, 1, 0, 0, 100.0, 1, 40, 1800),
        _group("video", 2, 0, 1, 1, 0.0, 0, 0, 0),
    ]
    assert report["by_school"] == [
        _group("Grundschule Soltau", 5, 2, 0, 1, 66.7, 1, 75, 6890),
        _group("Oberschule Munster", 2, 1, 1, 0, 50.0, 1, 40, 1800),
    ]
    assert [(g["key"], g["requests"], g["cost_cents"]) for g in report["by_month"]] == [  # type: ignore[attr-defined]
        ("2026-04", 1, 4490),
        ("2026-05", 2, 1800),
        ("2026-06", 4, 2400),
    ]
    assert report["interpreters"] == [
        {"name": "Amira Haddad", "sessions": 1, "minutes": 75, "cost_cents": 4490, "share_percent": 65.2},
        {"name": "Samir Nasser", "sessions": 1, "minutes": 40, "cost_cents": 4200, "share_percent": 34.8},
        {"name": "Hodan Ali", "sessions": 0, "minutes": 0, "cost_cents": 0, "share_percent": 0.0},
    ]


def test_every_month_of_the_period_is_listed(term: World) -> None:
    with term.make_uow() as u:
        months = evaluate(u.session, term.district_id, Period(date(2026, 2, 15), date(2026, 7, 1))).by_month
    assert [(m.key, m.requests, m.sessions, m.cost_cents) for m in months] == [
        ("2026-02", 0, 0, 0),
        ("2026-03", 0, 0, 0),
        ("2026-04", 1, 1, 4490),
        ("2026-05", 2, 1, 1800),
        ("2026-06", 4, 0, 2400),
        ("2026-07", 1, 1, 1200),  # 1 July: the last day counts
    ]


def test_the_csv_in_german(term: World) -> None:
    assert evaluation_csv(Translator("de"), _evaluate(term)).splitlines() == [
        "Bereich;Schlüssel;Anfragen;Besetzt;Nicht abgedeckt;Nicht besetzt;Besetzungsquote;Einsätze;"
        "Stunden;Kosten;Anteil an den Stunden",
        "Summe;;7;3;1;1;60,0;2;1,92;86,90;",
        "Sprache;Arabisch;5;3;0;0;100,0;2;1,92;86,90;",
        "Sprache;Somali;1;0;0;1;0,0;0;0,00;0,00;",
        "Sprache;Tigrinya;1;0;1;0;0,0;0;0,00;0,00;",
        "Einsatzart;vor Ort;3;2;0;0;100,0;1;1,25;68,90;",
        "Einsatzart;telefonisch;2;1;0;0;100,0;1;0,67;18,00;",
        "Einsatzart;per Video;2;0;1;1;0,0;0;0,00;0,00;",
        "Schule;Grundschule Soltau;5;2;0;1;66,7;1;1,25;68,90;",
        "Schule;Oberschule Munster;2;1;1;0;50,0;1;0,67;18,00;",
        "Monat;2026-04;1;1;0;0;100,0;1;1,25;44,90;",
        "Monat;2026-05;2;1;1;0;50,0;1;0,67;18,00;",
        "Monat;2026-06;4;1;0;1;50,0;0;0,00;24,00;",
        "Dolmetscher/in;Amira Haddad;;;;;;1;1,25;44,90;65,2",
        "Dolmetscher/in;Samir Nasser;;;;;;1;0,67;42,00;34,8",
        "Dolmetscher/in;Hodan Ali;;;;;;0;0,00;0,00;0,0",
    ]


def _pages(data: bytes) -> list[str]:
    assert data.startswith(b"%PDF-")
    # Babel puts no-break spaces between a number and its unit; read them as spaces.
    return [page.extract_text().replace("\xa0", " ") for page in PdfReader(io.BytesIO(data)).pages]


def _title(page: str, titles: list[str]) -> str:
    """The one title among `titles` that stands on the page as a line of its own."""
    found = [title for title in titles if title in page.splitlines()]
    assert len(found) == 1, (found, page)
    return found[0]


def test_the_pdf_has_an_overview_and_a_page_per_breakdown(term: World) -> None:
    pages = _pages(evaluation_pdf(Translator("de"), _evaluate(term), "Landkreis Heidekreis"))
    assert len(pages) == 4
    titles = ["Dolmetschen: Auswertung", "Sprachen", "Schulen", "Einsatzarten und Dolmetscher/innen"]
    assert [_title(page, titles) for page in pages] == titles
    assert "Landkreis Heidekreis · 01.04.2026 – 30.06.2026" in pages[0]
    for figure in ("Besetzungsquote 60 %", "Mittlere Zeit bis zur Besetzung 2 Std. 0 Min.", "Kosten 86,90 €"):
        assert figure in pages[0]
    assert "Arabisch 5 3 0 0 100,0 2 1,92 86,90" in pages[1]
    assert "Oberschule Munster 2 1 1 0 50,0 1 0,67 18,00" in pages[2]
    assert "Samir Nasser 1 0,67 42,00 34,8" in pages[3]


def test_a_long_table_goes_on_over_another_page() -> None:
    schools = [Group(f"Schule {n:02d}", requests=1) for n in range(40)]
    outcomes = dict.fromkeys(("filled", "not_covered", "not_filled", "rejected", "cancelled", "open"), 0)
    many = Evaluation(
        TERM, outcomes, Group("total", requests=40), None, None, [], [], schools, [], [Worker("A")]
    )
    pages = _pages(evaluation_pdf(Translator("en"), many, "Test"))
    titles = ["Interpreting: evaluation", "Languages", "Schools", "Modes and interpreters"]
    assert [_title(page, titles) for page in pages] == [*titles[:3], "Schools", titles[3]]
    assert "(continued)" in pages[3]
    assert "Schule 16" in pages[2]
    assert "Schule 17" in pages[3]
    assert "Schule 39" in pages[3]


def test_periods_are_read_and_checked() -> None:
    assert parse_date(" 2026-06-30 ") == parse_date("30.6.2026") == date(2026, 6, 30)
    for wrong in ("30.6.", "2026-02-30", "Juni", "9999-12-31", "0001-01-01", "1.1.1999"):
        with pytest.raises(InvalidInput):
            parse_date(wrong)
    with pytest.raises(InvalidInput):
        make_period(date(2026, 6, 30), date(2026, 4, 1))
    with pytest.raises(InvalidInput):
        make_period(date(2020, 1, 1), date(2026, 1, 1))


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_the_command_line_writes_json_csv_and_pdf(term: World, engine: Engine, tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return run_report(engine, tmp_path, "evaluation", *args)

    shown = run("--from", "2026-04-01", "--to", "2026-06-30", "--format", "json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == _evaluate(term).as_json()
    listed = run("--from", "2026-04-01", "--to", "2026-06-30", "--format", "csv")
    assert listed.stdout.splitlines()[1] == "Total,,7,3,1,1,60.0,2,1.92,86.90,"
    written = run("--from", "2026-04-01", "--to", "2026-06-30")
    assert written.stdout == "Wrote evaluation-2026-04-01-2026-06-30.pdf.\n"
    assert len(_pages((tmp_path / "evaluation-2026-04-01-2026-06-30.pdf").read_bytes())) == 4
    wrong = run("--from", "2026-06-30", "--to", "2026-04-01")
    assert (wrong.returncode, wrong.stderr) == (2, "The period ends before it begins.\n")
