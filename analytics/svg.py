"""Small inline SVG bar charts for the console (no plotting library, no files)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

WIDTH = 640
BAR_H = 18


def bars(
    title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[float], str]]
) -> str:
    """Horizontal grouped bars: one row per label, one bar per series ``(name, values,
    colour)``, scaled to the largest value; the value is written after each bar."""
    top = max((v for _, vals, _ in series for v in vals), default=0.0) or 1.0
    rows = len(labels)
    per = BAR_H * len(series) + 6
    height = 40 + rows * per + 20
    left = 170
    out = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{WIDTH}" height="{height}" '
            f'viewBox="0 0 {WIDTH} {height}" aria-label="{escape(title)}" class="chart">'
        ),
        f'<text x="4" y="16" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    x = left
    for name, _, colour in series:
        out.append(
            f'<rect x="{x}" y="24" width="10" height="10" fill="{colour}"/>'
            f'<text x="{x + 14}" y="33" font-size="11">{escape(name)}</text>'
        )
        x += 20 + 7 * len(name)
    for i, label in enumerate(labels):
        y0 = 40 + i * per
        out.append(
            f'<text x="{left - 6}" y="{y0 + BAR_H - 4}" font-size="12" text-anchor="end">'
            f"{escape(label[:24])}</text>"
        )
        for j, (_, vals, colour) in enumerate(series):
            v = float(vals[i]) if i < len(vals) else 0.0
            w = (WIDTH - left - 70) * v / top
            y = y0 + j * BAR_H
            shown = f"{v:.0f}" if v >= 10 or v == int(v) else f"{v:.2f}"
            out.append(
                f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{BAR_H - 3}" fill="{colour}"/>'
                f'<text x="{left + w + 4:.1f}" y="{y + BAR_H - 6}" font-size="11">{shown}</text>'
            )
    out.append("</svg>")
    return "".join(out)
