"""The budget as a picture (PNG): charged and reserved money over the fiscal year, the budget line,
and the projection at the current pace with the month the money would run out.

Drawn with matplotlib's object API (no pyplot state), one drawing at a time (`bot/drawing.py`).
"""

import io
from datetime import date, timedelta

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from bot.drawing import DRAWING
from bot.i18n import Translator
from services.budget_picture import BudgetDay, Projection

CHARGED, RESERVED, LIMIT, PACE = "#1f5f8b", "#8fbcd9", "#b22222", "#555555"


def _x(day: date) -> float:
    """matplotlib's date number (days since its epoch, 1970-01-01)."""
    return float((day - date(1970, 1, 1)).days)


_CHART: tuple[Figure, Axes] | None = None
"""The figure and axes every chart is drawn on, built at the first chart (only under DRAWING)."""


def budget_chart_png(t: Translator, year: int, history: list[BudgetDay], projection: Projection) -> bytes:
    """The chart for one fiscal year; amounts on the axis in euros, months in the reader's language."""
    global _CHART
    with DRAWING:
        try:
            return _budget_chart_png(t, year, history, projection)
        except BaseException:
            _CHART = None  # a drawing that failed half-way is not drawn on again
            raise


def _blank_chart() -> tuple[Figure, Axes]:
    """The chart's figure and axes with nothing of the last chart left on them.

    Building them (the axes, their spines and tick objects) was a quarter of a chart's time (36 of
    129 ms, 1 December 2026, load 0.6: 10 ms now), so they are built once and kept, and a
    chart draws in 83 ms. Everything that differs between charts is set again at every drawing:
    the stacked areas, the lines and the annotation are removed here; the legend, the ticks, their
    labels, the limits and the title are replaced by every drawing. tests/test_budget_chart_speed.py
    holds every chart, after any other, to the plain drawing (bench/budget_chart_plain.py).
    """
    global _CHART
    if _CHART is None:
        # A fixed layout (no layout engine measuring every text before the real drawing): the margins
        # fit euro labels of up to 12 characters (ticks below 100 million €) and one line of title.
        figure = Figure(figsize=(8, 4.5), dpi=100)
        # A canvas of its own, kept: savefig would make a new one, and a new renderer, per chart.
        # matplotlib keeps the sizes of texts per renderer, so the month and euro labels, the legend
        # and the title are measured once, not at every chart (drawing the two axes and the legend,
        # with the label places below: 64 ms before, 47 now).
        FigureCanvasAgg(figure)
        figure.subplots_adjust(left=0.135, right=0.98, bottom=0.075, top=0.925)
        axes = figure.add_subplot()
        axes.grid(axis="y", alpha=0.3)
        # The axis labels are empty: given a place, they are not placed below every tick label's box
        # at each drawing (which measured all twelve month labels again).
        axes.xaxis.set_label_coords(0.5, 0)
        axes.yaxis.set_label_coords(0, 0.5)
        _CHART = figure, axes
    figure, axes = _CHART
    for artist in [*axes.collections, *axes.lines, *axes.patches, *axes.texts]:
        artist.remove()
    return figure, axes


def _budget_chart_png(t: Translator, year: int, history: list[BudgetDay], projection: Projection) -> bytes:
    figure, axes = _blank_chart()
    days = [_x(point.day) for point in history]
    charged = [point.charged_cents / 100 for point in history]
    reserved = [point.reserved_cents / 100 for point in history]
    axes.stackplot(
        days,
        charged,
        reserved,
        labels=[t.gettext("Charged"), t.gettext("Reserved")],
        colors=[CHARGED, RESERVED],
        step="post",
    )
    first, last = date(year, 1, 1), date(year, 12, 31)
    axes.axhline(projection.total_cents / 100, color=LIMIT, linewidth=1.5, label=t.gettext("Budget"))
    end = max(projection.today, min(projection.runs_out_on or last, last))  # where the projection stops
    if history:
        axes.plot(
            [_x(projection.today), _x(end)],
            [projection.committed_cents / 100, projection.committed_on(end) / 100],
            color=PACE,
            linestyle="--",
            label=t.gettext("At the current pace"),
        )
    if projection.runs_out_on is not None:
        axes.axvline(_x(projection.runs_out_on), color=LIMIT, linestyle=(0, (4, 2)), linewidth=1.5)
        axes.annotate(
            t.render("Runs out in {runs_out_month}", {"runs_out_month": projection.runs_out_on}),
            xy=(_x(projection.runs_out_on), projection.total_cents / 100),
            xytext=(-6, 6),
            textcoords="offset points",
            ha="right",
            color=LIMIT,
        )
    months = [date(year, month, 1) for month in range(1, 13)]
    axes.set_xticks([_x(month) for month in months], [t.month_short(month) for month in months])
    axes.set_xlim(_x(first), _x(last + timedelta(days=1)))
    # Up to where the projection stops, not to the year's end figure of a line that stops earlier.
    top = max(projection.total_cents, projection.committed_cents, projection.committed_on(end)) / 100
    height = top * 1.08 or 1
    axes.set_ylim(0, height)
    # The euro ticks matplotlib would choose, worked out and written once instead of at every drawing pass.
    locator = MaxNLocator(nbins=9, steps=[1, 2, 2.5, 5, 10])  # what matplotlib picks for this axis
    ticks = [tick for tick in locator.tick_values(0, height) if 0 <= tick <= height]
    axes.set_yticks(ticks, [t.whole_euros(tick) for tick in ticks])
    # y=1.0 is where matplotlib puts the title anyway (no ticks above the axes to make room for):
    # given, it is not worked out from every tick label's box at each drawing.
    axes.set_title(t.render("Budget {year}", {"year": year}), y=1.0)
    axes.legend(loc="upper left", fontsize="small")
    out = io.BytesIO()
    # Little compression: a chart of flat colours shrinks almost as well, in a fraction of the time.
    figure.savefig(out, format="png", pil_kwargs={"compress_level": 2})
    return out.getvalue()
