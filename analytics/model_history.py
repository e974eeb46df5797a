"""The metric of every model version over time, and the retrain candidates the gate refused.

Points come from the registry (each version's held-out metrics and creation time) and the
retrain history (``training.retrain.read_runs``): a refused candidate has no version, only
its score, and is drawn as a cross below the line of the versions that served.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from training.registry import Registry
from training.retrain import read_runs

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PointKind = Literal["version", "refused"]


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
        for m in run.get("models") or []:
            if m.get("decision") == "kept" and m.get("candidate_metric") is not None:
                points.append(Point(m["name"], datetime.fromisoformat(run["started_at"]),
                                    float(m["candidate_metric"]), "refused", None))
    return sorted(points, key=lambda p: (p.model, p.at))


def history_chart(points: list[Point], metric: str = "ndcg@10") -> Figure:
    """One line per model (its versions; the current one ringed), refused candidates as ×."""
    import matplotlib  # heavy: only charts need it

    matplotlib.use("Agg", force=False)
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
        refused = [p for p in points if p.model == name and p.kind == "refused"]
        if refused:
            ax.scatter([p.at for p in refused], [p.value for p in refused], marker="x", s=60,
                       color=color, label=f"{name}: refused candidate")
    if not points:
        ax.text(0.5, 0.5, f"no version has {metric} yet", ha="center", va="center",
                transform=ax.transAxes)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} of each model version (held-out), over time")
    ax.grid(alpha=0.3)
    if names:
        ax.legend(fontsize=8, loc="best")
    fig.autofmt_xdate()
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
