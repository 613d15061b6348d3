"""The evaluation as files: CSV (one table, a section per breakdown) and a PDF for a committee.

The PDF (A4, matplotlib) has an overview page (key figures, requests per month), a page on
languages (filled and unmet demand, hours and cost), one on schools, and one on modes and on how
the work spread over the interpreters. A table too long for its page goes on over further pages.
Fonts are embedded as TrueType (see `bot/drawing.py`), so the text can be searched and copied.
"""

import csv
import io
from collections.abc import Sequence
from datetime import date
from decimal import Decimal

from babel.numbers import format_decimal
from matplotlib.axes import Axes
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from bot.drawing import DRAWING
from bot.i18n import Translator
from bot.spreadsheet import as_text
from services.evaluation import Evaluation, Group, Worker
from services.text import N_
from services.vocabulary import MODE_LABELS, Mode

A4 = (8.27, 11.69)
ROWS_PER_PAGE = 34
FILLED, UNFILLED, UNCOVERED, OTHER = "#1f5f8b", "#e8a33d", "#b22222", "#c8c8c8"
GROUP_HEADERS = (
    N_("Requests"),
    N_("Filled"),
    N_("Not covered"),
    N_("Not filled"),
    N_("Fill rate"),
    N_("Sessions"),
    N_("Hours"),
    N_("Cost"),
)
CSV_HEADERS = (N_("Section"), N_("Key"), *GROUP_HEADERS, N_("Share of hours"))


def hours_text(t: Translator, minutes: int) -> str:
    return str(format_decimal(Decimal(minutes) / 60, format="0.00", locale=t.locale))


def _euros(t: Translator, cents: int) -> str:
    return str(format_decimal(Decimal(cents) / 100, format="0.00", locale=t.locale))


def _rate(t: Translator, group: Group) -> str:
    rate = group.fill_rate_percent
    return "" if rate is None else str(format_decimal(rate, format="0.0", locale=t.locale))


def _label(t: Translator, section: str, key: str) -> str:
    if section == "language":
        return t.language(key)
    if section == "mode":
        return t.gettext(MODE_LABELS[Mode(key)])
    if section == "total":
        return ""
    return key


def _group_cells(t: Translator, group: Group) -> list[str]:
    return [
        str(group.requests),
        str(group.filled),
        str(group.not_covered),
        str(group.not_filled),
        _rate(t, group),
        str(group.sessions),
        hours_text(t, group.minutes),
        _euros(t, group.cost_cents),
    ]


def _sections(evaluation: Evaluation) -> list[tuple[str, str, list[Group]]]:
    return [
        ("total", N_("Total"), [evaluation.total]),
        ("language", N_("Language"), evaluation.by_language),
        ("mode", N_("Mode"), evaluation.by_mode),
        ("school", N_("School"), evaluation.by_school),
        ("month", N_("Month"), evaluation.by_month),
    ]


def evaluation_csv(t: Translator, evaluation: Evaluation) -> str:
    """One table: a row per group (total, languages, modes, schools, months), then per interpreter."""
    out = io.StringIO()
    # CRLF, as RFC 4180 and Excel have it: with "\n" the csv module leaves a CR inside a name unquoted,
    # and spreadsheet programs break the row there.
    writer = csv.writer(out, delimiter=";" if t.locale == "de" else ",", lineterminator="\r\n")
    writer.writerow([t.gettext(h) for h in CSV_HEADERS])
    for section, title, groups in _sections(evaluation):
        for group in groups:
            label = as_text(_label(t, section, group.key))  # school names come from an import
            writer.writerow([t.gettext(title), label, *_group_cells(t, group), ""])
    for worker in evaluation.interpreters:
        share = str(format_decimal(worker.share_percent, format="0.0", locale=t.locale))
        cells = ["", "", "", "", "", str(worker.sessions), hours_text(t, worker.minutes)]
        name = as_text(worker.name)
        writer.writerow([t.gettext("Interpreter"), name, *cells, _euros(t, worker.cost_cents), share])
    return out.getvalue()


def _page(title: str, subtitle: str) -> Figure:
    figure = Figure(figsize=A4)
    figure.text(0.08, 0.95, title, fontsize=16, weight="bold")
    figure.text(0.08, 0.925, subtitle, fontsize=9, color="#555555")
    return figure


def _table(
    figure: Figure, rect: tuple[float, float, float, float], header: Sequence[str], rows: list[list[str]]
) -> None:
    axes = figure.add_axes(rect)
    axes.axis("off")
    if not rows:
        return
    labels = [label.replace(" ", "\n", 1) if len(label) > 9 else label for label in header]  # narrow columns
    table = axes.table(cellText=rows, colLabels=labels, loc="upper center", cellLoc="right")
    table.auto_set_font_size(False)
    table.set_fontsize(7.5)
    table.scale(1, 1.35)
    table.auto_set_column_width(list(range(len(labels))))
    for (row, column), cell in table.get_celld().items():
        cell.set_linewidth(0.3)
        if row == 0:
            cell.set_height(cell.get_height() * 1.8)
            cell.set_text_props(weight="bold")
            cell.set_facecolor("#e9eef3")
        if column == 0:
            cell.set_text_props(ha="left")
            cell._loc = "left"  # type: ignore[attr-defined]  # no public setter for one column


def _outcome_bars(
    t: Translator, axes: Axes, labels: list[str], groups: list[Group], *, horizontal: bool
) -> None:
    """Stacked bars: filled, not filled, not covered, and the rest (withdrawn, rejected, open)."""
    positions = list(range(len(groups)))
    bottom = [0] * len(groups)
    for name, values, colour in (
        (N_("Filled"), [g.filled for g in groups], FILLED),
        (N_("Not filled"), [g.not_filled for g in groups], UNFILLED),
        (N_("Not covered"), [g.not_covered for g in groups], UNCOVERED),
        (
            N_("Withdrawn or open"),
            [g.requests - g.filled - g.not_covered - g.not_filled for g in groups],
            OTHER,
        ),
    ):
        if horizontal:
            axes.barh(positions, values, left=bottom, color=colour, label=t.gettext(name))
        else:
            axes.bar(positions, values, bottom=bottom, color=colour, label=t.gettext(name))
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    if horizontal:
        axes.set_yticks(positions, labels)
        axes.invert_yaxis()
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        axes.set_xticks(positions, labels)
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    # Above the bars, in one row, so it never hides one.
    axes.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=4, fontsize="small", frameon=False)
    axes.grid(axis="x" if horizontal else "y", alpha=0.3)


def _group_rows(t: Translator, section: str, groups: list[Group]) -> list[list[str]]:
    return [[_label(t, section, g.key), *_group_cells(t, g)] for g in groups]


def _table_pages(
    t: Translator, title: str, subtitle: str, header: Sequence[str], rows: list[list[str]], first: Figure
) -> list[Figure]:
    """The first page's table (below its chart) and, for long tables, further pages with the rest."""
    pages = [first]
    _table(first, (0.08, 0.05, 0.84, 0.45), header, rows[: ROWS_PER_PAGE // 2])
    rest = rows[ROWS_PER_PAGE // 2 :]
    while rest:
        page = _page(title, subtitle + " " + t.gettext("(continued)"))
        _table(page, (0.08, 0.05, 0.84, 0.85), header, rest[:ROWS_PER_PAGE])
        rest = rest[ROWS_PER_PAGE:]
        pages.append(page)
    return pages


def _overview(t: Translator, evaluation: Evaluation, district: str, subtitle: str) -> Figure:
    page = _page(t.gettext("Interpreting: evaluation"), f"{district} · {subtitle}")
    total, outcomes = evaluation.total, evaluation.outcomes
    figures = [
        (N_("Requests"), str(total.requests)),
        (N_("Filled"), str(total.filled)),
        (N_("Fill rate"), "–" if total.fill_rate_percent is None else t.percent(total.fill_rate_percent)),
        (N_("Median time to fill"), duration_text(t, evaluation.median_fill_minutes)),
        (N_("Not covered (language missing in the pool)"), str(outcomes["not_covered"])),
        (N_("Not filled (nobody available)"), str(outcomes["not_filled"])),
        (N_("Rejected or withdrawn"), str(outcomes["rejected"] + outcomes["cancelled"])),
        (N_("Still open"), str(outcomes["open"])),
        (N_("Hours interpreted"), hours_text(t, total.minutes)),
        (N_("Cost"), t.money(total.cost_cents)),
    ]
    for row, (label, value) in enumerate(figures):
        y = 0.87 - row * 0.027
        page.text(0.1, y, t.gettext(label), fontsize=11)
        page.text(0.9, y, value, fontsize=11, ha="right", weight="bold")
    axes = page.add_axes((0.1, 0.1, 0.82, 0.45))
    months = evaluation.by_month
    labels = [f"{t.month_short(date.fromisoformat(m.key + '-01'))} {m.key[2:4]}" for m in months]
    _outcome_bars(t, axes, labels, months, horizontal=False)
    if len(months) > 12:
        axes.tick_params(axis="x", labelrotation=90)
    axes.set_title(t.gettext("Requests per month"), pad=22)
    return page


def duration_text(t: Translator, minutes: int | None) -> str:
    if minutes is None:
        return "–"
    return t.render("{hours} h {minutes} min", {"hours": minutes // 60, "minutes": minutes % 60})


def _ranked_page(t: Translator, title: str, subtitle: str, labels: list[str], groups: list[Group]) -> Figure:
    page = _page(title, subtitle)
    shown = groups[:15]
    axes = page.add_axes((0.3, 0.56, 0.62, 0.34))
    _outcome_bars(t, axes, labels[:15], shown, horizontal=True)
    axes.set_xlabel(t.gettext("Requests"))
    return page


def _interpreter_page(t: Translator, evaluation: Evaluation, subtitle: str) -> list[Figure]:
    title = t.gettext("Modes and interpreters")
    page = _page(title, subtitle)
    header = [t.gettext("Mode"), *[t.gettext(h) for h in GROUP_HEADERS]]
    _table(page, (0.08, 0.78, 0.84, 0.13), header, _group_rows(t, "mode", evaluation.by_mode))
    workers: list[Worker] = evaluation.interpreters
    axes = page.add_axes((0.3, 0.555, 0.62, 0.2))
    top = workers[:15]
    axes.barh(range(len(top)), [w.minutes / 60 for w in top], color=FILLED)
    axes.set_yticks(range(len(top)), [w.name for w in top], fontsize=7)
    axes.invert_yaxis()
    axes.set_xlabel(t.gettext("Hours"))
    axes.grid(axis="x", alpha=0.3)
    rows = [
        [
            w.name,
            str(w.sessions),
            hours_text(t, w.minutes),
            _euros(t, w.cost_cents),
            str(format_decimal(w.share_percent, format="0.0", locale=t.locale)),
        ]
        for w in workers
    ]
    header = [
        t.gettext(h)
        for h in (N_("Interpreter"), N_("Sessions"), N_("Hours"), N_("Cost"), N_("Share of hours"))
    ]
    return _table_pages(t, title, subtitle, header, rows, page)


def evaluation_pdf(t: Translator, evaluation: Evaluation, district: str) -> bytes:
    """The report for a committee: overview, languages, schools, modes and interpreters."""
    with DRAWING:
        return _evaluation_pdf(t, evaluation, district)


def _evaluation_pdf(t: Translator, evaluation: Evaluation, district: str) -> bytes:
    period = evaluation.period
    subtitle = t.period(period.start, period.end)
    pages = [_overview(t, evaluation, district, subtitle)]
    for section, title, groups in (
        ("language", N_("Languages"), evaluation.by_language),
        ("school", N_("Schools"), evaluation.by_school),
    ):
        labels = [_label(t, section, g.key) for g in groups]
        first = _ranked_page(t, t.gettext(title), subtitle, labels, groups)
        header = [t.gettext(N_("Language") if section == "language" else N_("School"))]
        header += [t.gettext(h) for h in GROUP_HEADERS]
        pages += _table_pages(t, t.gettext(title), subtitle, header, _group_rows(t, section, groups), first)
    pages += _interpreter_page(t, evaluation, subtitle)
    out = io.BytesIO()
    with PdfPages(out, metadata={"Title": t.gettext("Interpreting: evaluation")}) as pdf:
        for page in pages:
            pdf.savefig(page)
    return out.getvalue()
