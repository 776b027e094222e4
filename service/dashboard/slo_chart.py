"""Inline SVG of an agent's service levels over the window (`/slo/{agent}`): `on_time` and `served` as
two lines, one point per stretch of the window that counted rooms, the objective as a dashed line. A pure
function of plain data, like `service.dashboard.charts`."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup

LINES = (("on_time", "on time"), ("served", "served"))


@dataclass(frozen=True)
class Point:
    """One stretch of the window: when it starts, and its rooms counted, on time and served."""

    at: float
    total: int
    on_time: int
    served: int


def ratio_chart_svg(
    points: Sequence[Point],
    start: float,
    end: float,
    objective: float,
    *,
    width: int = 960,
    height: int = 220,
) -> Markup:
    """Both ratios over time; the y axis from a tenth below the lowest ratio (or the objective) to 1."""
    left, right, top, bottom = 48, 16, 26, 28
    shares = [p.on_time / p.total for p in points] + [p.served / p.total for p in points] + [objective]
    low = max(0.0, math.floor(min(shares) * 10 - 1e-9) / 10)
    span_x, span_y = max(end - start, 1.0), max(1.0 - low, 0.1)

    def x(at: float) -> float:
        return round(left + (width - left - right) * (min(max(at, start), end) - start) / span_x, 1)

    def y(share: float) -> float:
        return round(top + (height - top - bottom) * (1.0 - share) / span_y, 1)

    parts = [
        f'<svg class="slo-chart" role="img" viewBox="0 0 {width} {height}" width="100%" '
        f'aria-label="service levels over time" xmlns="http://www.w3.org/2000/svg">'
    ]
    for share in sorted({low, (1 + low) / 2, 1.0}):
        parts.append(
            f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y(share)}" y2="{y(share)}"></line>'
            f'<text class="axis" x="{left - 4}" y="{y(share) + 4}" text-anchor="end">{share * 100:g} %</text>'
        )
    parts.append(
        f'<g class="objective"><title>objective {objective * 100:g} %</title><line x1="{left}" '
        f'x2="{width - right}" y1="{y(objective)}" y2="{y(objective)}"></line></g>'
    )
    for key, title in LINES:
        dots = [(x(p.at), y(getattr(p, key) / p.total), p) for p in points if p.total]
        path = " ".join(f"{px},{py}" for px, py, _ in dots)
        parts.append(f'<g class="line {key}" data-sli="{key}"><polyline points="{path}"></polyline>')
        for px, py, p in dots:
            good = getattr(p, key)
            parts.append(
                f'<circle cx="{px}" cy="{py}" r="3"><title>{title}: {good}/{p.total}</title></circle>'
            )
        parts.append("</g>")
    right_edge = width - right
    parts.append(
        f'<text class="axis" x="{left}" y="{height - 8}">{_stamp(start)}</text>'
        f'<text class="axis" x="{right_edge}" y="{height - 8}" text-anchor="end">{_stamp(end)}</text>'
        f'<text class="legend on_time" x="{right_edge - 230}" y="14">— on time</text>'
        f'<text class="legend served" x="{right_edge - 155}" y="14">— served</text>'
        f'<text class="legend objective" x="{right_edge - 85}" y="14">- - objective</text>'
    )
    parts.append("</svg>")
    return Markup("".join(parts))


def _stamp(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(at))
