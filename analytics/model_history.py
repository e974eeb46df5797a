"""The metric of every model version over time, and the retrain candidates the gate refused.

Points come from the registry (each version's held-out metrics and creation time) and the
retrain history (``training.retrain.read_runs``): the serving version's score at each retrain,
and the score of each candidate the gate refused (which has no version, only its score).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from models.registry import Registry
from training.retrain import read_runs

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PointKind = Literal["version", "serving", "refused"]


@dataclass(frozen=True)
class Point:
    model: str
    at: datetime
    value: float
    kind: PointKind
    version: str | None
    current: bool = False


def history_points(models_dir: Path, metric: str = "ndcg@10") -> list[Point]:
    """Versions with ``metric`` in their manifest, and refused candidates, oldest first."""
    points = []
    for row in Registry(models_dir).list():
        value = (row.get("metrics") or {}).get(metric)
        if value is None or not row.get("created_at"):
            continue
        points.append(Point(row["name"], datetime.fromisoformat(row["created_at"]), float(value),
                            "version", row["version"], bool(row["current"])))
    for run in read_runs(models_dir):
        if run.get("metric") != metric:
            continue
        at = datetime.fromisoformat(run["started_at"])
        for m in run.get("models") or []:
            if m.get("serving_metric") is not None:
                points.append(Point(m["name"], at, float(m["serving_metric"]), "serving",
                                    m.get("serving_version")))
            if m.get("decision") == "kept" and m.get("candidate_metric") is not None:
                points.append(Point(m["name"], at, float(m["candidate_metric"]), "refused", None))
    return sorted(points, key=lambda p: (p.model, p.at))


def history_chart(points: list[Point], metric: str = "ndcg@10") -> Figure:
    """One line per model (its versions; the current one ringed), the serving version's score at
    each retrain as a square, refused candidates as ×."""
    import matplotlib  # heavy: only charts need it

    matplotlib.use("Agg", force=False)
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.4), dpi=100, layout="constrained")
    ax = fig.subplots()
    names = sorted({p.model for p in points})
    for k, name in enumerate(names):
        color = f"C{k % 10}"
        vs = [p for p in points if p.model == name and p.kind == "version"]
        if vs:
            ax.plot([p.at for p in vs], [p.value for p in vs], marker="o", color=color, label=name)
        cur = [p for p in vs if p.current]
        if cur:
            ax.scatter([p.at for p in cur], [p.value for p in cur], s=160, facecolors="none",
                       edgecolors=color)
        serving = [p for p in points if p.model == name and p.kind == "serving"]
        if serving:
            ax.scatter([p.at for p in serving], [p.value for p in serving], marker="s", s=30,
                       color=color, alpha=0.5, label=f"{name}: serving version at a retrain")
        refused = [p for p in points if p.model == name and p.kind == "refused"]
        if refused:
            ax.scatter([p.at for p in refused], [p.value for p in refused], marker="x", s=60,
                       color=color, label=f"{name}: refused candidate")
    if not points:
        ax.text(0.5, 0.5, f"no version has {metric} yet", ha="center", va="center",
                transform=ax.transAxes)
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} of each model version (held-out), over time")
    ax.grid(alpha=0.3)
    if names:
        ax.legend(fontsize=8, loc="best")
    return fig


def render(fig: Figure, fmt: Literal["png", "svg"] = "png") -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt)
    return buf.getvalue()


def inline_svg(fig: Figure) -> str:
    """An ``<svg>`` element to embed in HTML."""
    text = render(fig, "svg").decode("utf-8")
    return text[text.index("<svg"):]


def console_view(models_dir: Path, metric: str = "ndcg@10",
                 runs: int = 10) -> tuple[str, list[dict[str, object]]]:
    """What the console's models page shows: the chart (inline SVG, empty when there is
    nothing to draw) and the latest retrain runs."""
    points = history_points(models_dir, metric)
    svg = inline_svg(history_chart(points, metric)) if points else ""
    return svg, read_runs(models_dir, limit=runs)
