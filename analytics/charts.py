"""Charts of KPI reports, rendered with matplotlib (Agg) to PNG files or inline SVG.

* :func:`variant_chart` — one metric per variant with its 95 % interval, and the daily value
  of that metric per variant.
* :func:`overview_chart` — daily impressions, CTR and conversion rate.

Fonts: a CJK-capable family is preferred when installed (Noto Sans CJK, WenQuanYi), so
Chinese labels render; DejaVu Sans is the fallback.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from analytics.reports import KpiReport
from analytics.statistics import METRIC_LABELS, RATE_METRICS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

ChartFormat = Literal["png", "svg"]
_FONTS = [
    "Noto Sans CJK SC",
    "Noto Sans CJK TC",
    "WenQuanYi Micro Hei",
    "Droid Sans Fallback",
    "DejaVu Sans",
]


def _figure(width: float, height: float) -> Figure:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    matplotlib.rcParams["font.sans-serif"] = _FONTS + list(matplotlib.rcParams["font.sans-serif"])
    matplotlib.rcParams["font.family"] = "sans-serif"
    matplotlib.rcParams["svg.fonttype"] = "none"  # keep text as text in SVG
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _fmt(metric: str, v: float) -> str:
    return f"{v:.2%}" if metric in RATE_METRICS else f"{v:,.2f}"


def variant_chart(report: KpiReport, metric: str | None = None) -> Figure:
    metric = metric or report.primary_metric
    fig = _figure(9, 3.6)
    ax1, ax2 = fig.subplots(1, 2, width_ratios=[1, 1.6])
    label = METRIC_LABELS.get(metric, metric)
    names, values, lows, highs, colors = [], [], [], [], []
    winner = report.winner()
    for row in report.by_variant:
        est = row.metrics[metric]
        names.append(row.label + (" (control)" if row.label == report.control else ""))
        v = est.value or 0.0
        values.append(v)
        lows.append(v - (est.low if est.low is not None else v))
        highs.append((est.high if est.high is not None else v) - v)
        colors.append(
            "#2e7d32"
            if row.label == winner
            else "#90a4ae"
            if row.label == report.control
            else "#1565c0"
        )
    ax1.bar(names, values, yerr=[lows, highs], capsize=6, color=colors)
    for x, v in enumerate(values):
        ax1.annotate(_fmt(metric, v), (x, v), textcoords="offset points", xytext=(8, 4), fontsize=9)
    ax1.set_title(f"{label} by variant (95% CI)")
    for name, rows in report.by_variant_day.items():
        xs = [r.label[5:] for r in rows]
        ys = [r.metrics[metric].value or 0.0 for r in rows]
        ax2.plot(xs, ys, marker="o", label=name)
    ax2.set_title(f"{label} per day")
    ax2.legend(loc="best", fontsize=8)
    ax2.tick_params(axis="x", labelrotation=45, labelsize=8)
    if metric in RATE_METRICS:
        from matplotlib.ticker import PercentFormatter

        ax1.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax2.yaxis.set_major_formatter(PercentFormatter(1.0))
    return fig


def overview_chart(report: KpiReport) -> Figure:
    fig = _figure(9, 3.2)
    ax1, ax2 = fig.subplots(1, 2)
    xs = [r.label[5:] for r in report.by_day]
    ax1.bar(xs, [r.impressions for r in report.by_day], color="#90a4ae")
    ax1.set_title("Impressions per day")
    for metric in ("ctr", "conversion_rate", "add_to_cart_rate"):
        ax2.plot(
            xs,
            [r.metrics[metric].value or 0.0 for r in report.by_day],
            marker="o",
            label=METRIC_LABELS[metric],
        )
    from matplotlib.ticker import PercentFormatter

    ax2.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax2.set_title("Rates per day")
    ax2.legend(fontsize=8)
    for ax in (ax1, ax2):
        ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    return fig


def render(fig: Figure, fmt: ChartFormat = "svg") -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt)
    return buf.getvalue()


def inline_svg(fig: Figure) -> str:
    """An ``<svg>`` element to embed in HTML (the XML prolog and doctype removed)."""
    text = render(fig, "svg").decode("utf-8")
    return text[text.index("<svg") :]


def save_charts(report: KpiReport, out_dir: Path) -> list[Path]:
    """Write the report's PNG charts to ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    p = out_dir / "kpi-overview.png"
    p.write_bytes(render(overview_chart(report), "png"))
    paths.append(p)
    if report.experiment is not None and report.by_variant:
        for metric in dict.fromkeys([report.primary_metric, "conversion_rate", "revenue_per_user"]):
            p = out_dir / f"{report.experiment}-{metric}.png"
            p.write_bytes(render(variant_chart(report, metric), "png"))
            paths.append(p)
    return paths
