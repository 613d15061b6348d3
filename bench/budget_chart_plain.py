"""The budget chart drawn the plain way, as `bot.budget_chart` drew it before it kept its figure: a new
figure, axes and canvas for every chart, the title and the axis labels placed by matplotlib at every
drawing. Kept as the yardstick: bench/budget_figures.py times it beside the chart, and
tests/test_budget_chart_speed.py holds the chart to it pixel for pixel.
"""

import io
from datetime import date, timedelta

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from bot.budget_chart import CHARGED, LIMIT, PACE, RESERVED, _x
from bot.drawing import DRAWING
from bot.i18n import Translator
from services.budget_picture import BudgetDay, Projection


def plain_chart_png(t: Translator, year: int, history: list[BudgetDay], projection: Projection) -> bytes:
    """The chart as it was drawn at 5854fc4."""
    with DRAWING:
        return _plain_chart_png(t, year, history, projection)


def _plain_chart_png(t: Translator, year: int, history: list[BudgetDay], projection: Projection) -> bytes:
    figure = Figure(figsize=(8, 4.5), dpi=100)
    figure.subplots_adjust(left=0.135, right=0.98, bottom=0.075, top=0.925)
    axes = figure.add_subplot()
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
    end = max(projection.today, min(projection.runs_out_on or last, last))
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
    top = max(projection.total_cents, projection.committed_cents, projection.committed_on(end)) / 100
    height = top * 1.08 or 1
    axes.set_ylim(0, height)
    locator = MaxNLocator(nbins=9, steps=[1, 2, 2.5, 5, 10])
    ticks = [tick for tick in locator.tick_values(0, height) if 0 <= tick <= height]
    axes.set_yticks(ticks, [t.whole_euros(tick) for tick in ticks])
    axes.grid(axis="y", alpha=0.3)
    axes.set_title(t.render("Budget {year}", {"year": year}))
    axes.legend(loc="upper left", fontsize="small")
    out = io.BytesIO()
    figure.savefig(out, format="png", pil_kwargs={"compress_level": 2})
    return out.getvalue()
