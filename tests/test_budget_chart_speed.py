"""The budget chart keeps its figure between charts (issue 16): every chart is still the picture the
plain drawing makes (a new figure each time, bench/budget_chart_plain.py), pixel for pixel and
word for word, whatever was drawn before it, in which language, for which year."""

import io
import threading
from collections.abc import Iterator
from datetime import date, timedelta

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.image import imread
from numpy.typing import NDArray

from bench.budget_chart_plain import plain_chart_png
from bot import budget_chart
from bot.budget_chart import budget_chart_png
from bot.i18n import Translator
from services.budget_picture import BudgetDay, Projection, project

Case = tuple[int, list[BudgetDay], Projection]


def _year_with_runs() -> Case:
    """2026 in full: charges on weekdays only (weekends are runs of equal days), reservations changed
    once a month; the money lasts."""
    history = []
    charged = 0
    for n in range(365):
        day = date(2026, 1, 1) + timedelta(days=n)
        charged += 12_00 if day.weekday() < 5 else 0
        history.append(BudgetDay(day, charged, (day.month % 3) * 100_00))
    last = history[-1]
    return 2026, history, project(10_000_00, last.committed_cents, charged, 2026, last.day)


def _runs_out_in_july() -> Case:
    """120 days at 25 € a day: 3,000 € of 5,000 € held by 30 April, gone on 19 July."""
    history = [BudgetDay(date(2026, 1, 1) + timedelta(days=n), (n + 1) * 25_00, 0) for n in range(120)]
    return 2026, history, project(5000_00, 3000_00, 3000_00, 2026, date(2026, 4, 30))


CASES: dict[str, Case] = {
    # 2024 is a leap year: the months sit one day further right from March on.
    "empty leap year": (2024, [], project(100_00, 0, 0, 2024, date(2024, 1, 1))),
    "one day": (
        2025,
        [BudgetDay(date(2025, 1, 1), 5_00, 10_00)],
        project(50_00, 15_00, 5_00, 2025, date(2025, 1, 1)),
    ),
    "a year with runs of equal days": _year_with_runs(),
    "runs out in July": _runs_out_in_july(),
    "over budget": (
        2026,
        [BudgetDay(date(2026, 1, 1), 0, 900_00), BudgetDay(date(2026, 1, 2), 300_00, 900_00)],
        project(1000_00, 1200_00, 300_00, 2026, date(2026, 1, 2)),
    ),
}
LOCALES = ("de", "en")


def _pixels(png: bytes) -> NDArray[np.float32]:
    pixels: NDArray[np.float32] = imread(io.BytesIO(png))
    return pixels


def _words(figure: Figure) -> dict[str, list[str]]:
    """Every text a drawn chart shows, by where it stands."""
    axes = figure.axes[0]
    legend = axes.get_legend()
    return {
        "title": [axes.get_title()],
        "legend": [text.get_text() for text in legend.get_texts()] if legend else [],
        "months": [label.get_text() for label in axes.get_xticklabels()],
        "euros": [label.get_text() for label in axes.get_yticklabels()],
        "notes": [text.get_text() for text in axes.texts],
    }


@pytest.fixture
def drawn_words() -> Iterator[list[dict[str, list[str]]]]:
    """The words of each figure as it is saved, in the order of drawing."""
    found: list[dict[str, list[str]]] = []
    save = Figure.savefig

    def keep(figure: Figure, *args: object, **kwargs: object) -> None:
        found.append(_words(figure))
        save(figure, *args, **kwargs)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Figure, "savefig", keep)
        yield found


def _plain(name: str, locale: str) -> bytes:
    year, history, projection = CASES[name]
    return plain_chart_png(Translator(locale), year, history, projection)


def _chart(name: str, locale: str) -> bytes:
    year, history, projection = CASES[name]
    return budget_chart_png(Translator(locale), year, history, projection)


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("name", list(CASES))
def test_each_chart_is_the_plain_drawing(name: str, locale: str) -> None:
    plain = _pixels(_plain(name, locale))
    chart = _pixels(_chart(name, locale))
    assert chart.shape == (450, 800, 4)
    assert np.array_equal(chart, plain)


def test_the_charts_show_their_own_words(drawn_words: list[dict[str, list[str]]]) -> None:
    _chart("runs out in July", "de")
    _chart("empty leap year", "en")
    german, english = drawn_words
    assert german["title"] == ["Budget 2026"]
    assert german["notes"] == ["Aufgebraucht im Juli 2026"]
    assert german["months"][:3] == ["Jan", "Feb", "Mär"]
    assert german["euros"][-1] == "5.000\xa0€"
    assert set(german["legend"]) == {"Abgerechnet", "Reserviert", "Budget", "Im bisherigen Tempo"}
    assert english["title"] == ["Budget 2024"]
    assert english["notes"] == []  # the German chart's run-out note is gone
    assert english["months"][:3] == ["Jan", "Feb", "Mar"]
    assert english["euros"][-1] == "€100"
    assert set(english["legend"]) == {"Charged", "Reserved", "Budget"}  # no pace line without history


def test_a_chart_after_any_other_is_the_plain_drawing(drawn_words: list[dict[str, list[str]]]) -> None:
    """Every case in both languages after every other kind of chart (more or fewer euro ticks, a
    run-out note or none, another year, another language), each twice in a row too."""
    order = [(name, locale) for locale in LOCALES for name in CASES]
    order = [*order, *reversed(order), *order[::2], *order[::2]]
    keys = list(dict.fromkeys(order))
    plain = {key: _pixels(_plain(*key)) for key in keys}
    plain_words = dict(zip(keys, drawn_words, strict=True))
    drawn_words.clear()
    for name, locale in order:
        assert np.array_equal(_pixels(_chart(name, locale)), plain[name, locale]), (name, locale)
    assert drawn_words == [plain_words[key] for key in order]


class _FailsAtTheEuros(Translator):
    """Fails once the areas, the lines and the note are already drawn."""

    def whole_euros(self, euros: float) -> str:
        raise RuntimeError("no euros")


def test_a_chart_that_failed_half_way_leaves_nothing_to_the_next() -> None:
    _chart("a year with runs of equal days", "en")
    year, history, projection = CASES["runs out in July"]
    with pytest.raises(RuntimeError, match="no euros"):
        budget_chart_png(_FailsAtTheEuros("de"), year, history, projection)
    assert budget_chart._CHART is None  # thrown away: the next chart starts from a new figure
    assert np.array_equal(_pixels(_chart("one day", "en")), _pixels(_plain("one day", "en")))


def test_charts_asked_for_from_two_threads_at_once_are_each_their_own() -> None:
    work = {
        "de": ["runs out in July", "empty leap year", "over budget"],
        "en": ["one day", "runs out in July"],
    }
    plain = {
        (name, locale): _pixels(_plain(name, locale)) for locale, names in work.items() for name in names
    }
    got: dict[tuple[str, str], bytes] = {}
    start = threading.Barrier(len(work))

    def draw(locale: str) -> None:
        start.wait()
        for name in work[locale]:
            got[name, locale] = _chart(name, locale)

    threads = [threading.Thread(target=draw, args=(locale,)) for locale in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert got.keys() == plain.keys()
    assert all(np.array_equal(_pixels(got[key]), plain[key]) for key in plain)
