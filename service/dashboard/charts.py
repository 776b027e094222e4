"""Inline SVG for the dashboard: the time-to-agent histogram and a room's timeline. Pure functions of
plain data (no I/O, no JavaScript), so they are tested as text and drawn by any browser."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

# Upper bounds (seconds) of the histogram's buckets; the last bucket is open-ended.
BUCKETS: tuple[float, ...] = (2, 5, 10, 15, 30, 60, 120)


@dataclass(frozen=True)
class Bar:
    label: str
    count: int
    kind: str  # "ok", "late" (beyond the SLA) or "none" (no agent yet)


def histogram_bars(seconds: Sequence[float], still_waiting: int, sla: float) -> list[Bar]:
    """Count waits into `BUCKETS`; buckets past the SLA are "late"; rooms still waiting get their own bar."""
    counts = [0] * (len(BUCKETS) + 1)
    for value in seconds:
        counts[next((i for i, bound in enumerate(BUCKETS) if value < bound), len(BUCKETS))] += 1
    bars = []
    low = 0.0
    for i, count in enumerate(counts):
        high = BUCKETS[i] if i < len(BUCKETS) else None
        label = f"{_num(low)}-{_num(high)} s" if high is not None else f"≥ {_num(low)} s"
        bars.append(Bar(label, count, "late" if low >= sla else "ok"))
        low = high if high is not None else low
    bars.append(Bar("no agent yet", still_waiting, "none"))
    return bars


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile, or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def histogram_svg(bars: Sequence[Bar], *, width: int = 640, height: int = 180) -> Markup:
    """Vertical bars with their counts above and labels below; a `<title>` on each for hover."""
    top, bottom, gap = 18, 34, 6
    plot = height - top - bottom
    most = max((b.count for b in bars), default=0) or 1
    step = width / max(1, len(bars))
    parts = [
        f'<svg class="histogram" role="img" viewBox="0 0 {width} {height}" width="100%" '
        f'aria-label="time to agent histogram" xmlns="http://www.w3.org/2000/svg">'
    ]
    for i, bar in enumerate(bars):
        h = round(plot * bar.count / most, 1)
        x = round(i * step + gap / 2, 1)
        y = round(top + plot - h, 1)
        w = round(step - gap, 1)
        label = escape(bar.label)
        parts.append(
            f'<g class="bar {bar.kind}" data-label="{label}" data-count="{bar.count}">'
            f"<title>{label}: {bar.count} rooms</title>"
            f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="2"></rect>'
            f'<text class="count" x="{x + w / 2:.1f}" y="{y - 4:.1f}" text-anchor="middle">{bar.count}</text>'
            f'<text class="label" x="{x + w / 2:.1f}" y="{height - 12}" text-anchor="middle">{label}</text>'
            "</g>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


@dataclass(frozen=True)
class Mark:
    """A point on the timeline: `lane` is "livekit", "warden" or "action"."""

    at: float
    lane: str
    label: str


@dataclass(frozen=True)
class Span:
    """A stretch of time: who was present ("people" or "agent")."""

    start: float
    end: float
    lane: str


@dataclass(frozen=True)
class Deadline:
    at: float
    label: str


LABEL_ROWS = 3
LANES = ("people", "agent", "livekit", "warden", "action")
LANE_TITLES = {
    "people": "people present",
    "agent": "agent present",
    "livekit": "LiveKit webhooks",
    "warden": "Warden's checks",
    "action": "Warden's actions",
}


def timeline_svg(
    marks: Sequence[Mark],
    spans: Sequence[Span],
    deadlines: Sequence[Deadline],
    start: float,
    end: float,
    *,
    width: int = 960,
) -> Markup:
    """Lanes of presence bands and event dots over time, with each SLA deadline as a dashed line."""
    left, right, lane_h, top = 130, 20, 26, 10
    labels_top = top + lane_h * len(LANES) + 2
    height = labels_top + 12 * LABEL_ROWS + 16
    span = max(end - start, 1.0)

    def x(at: float) -> float:
        return round(left + (width - left - right) * (min(max(at, start), end) - start) / span, 1)

    def y(lane: str) -> int:
        return top + LANES.index(lane) * lane_h

    parts = [
        f'<svg class="timeline" role="img" viewBox="0 0 {width} {height}" width="100%" '
        f'aria-label="room timeline" xmlns="http://www.w3.org/2000/svg">'
    ]
    for lane in LANES:
        parts.append(
            f'<text class="lane" x="4" y="{y(lane) + 17}">{LANE_TITLES[lane]}</text>'
            f'<line class="lane-rule" x1="{left}" x2="{width - right}" y1="{y(lane) + 13}" '
            f'y2="{y(lane) + 13}"></line>'
        )
    for s in spans:
        parts.append(
            f'<rect class="span {s.lane}" x="{x(s.start)}" y="{y(s.lane) + 5}" '
            f'width="{max(2.0, x(s.end) - x(s.start)):.1f}" height="16" rx="3"></rect>'
        )
    row_ends = [float("-inf")] * LABEL_ROWS  # where each row of labels ends, so that none overlap
    for d in sorted(deadlines, key=lambda d: d.at):
        label = escape(d.label)
        at = x(d.at)
        row = next((i for i, end in enumerate(row_ends) if at > end), LABEL_ROWS - 1)
        row_ends[row] = at + 6 * len(d.label) + 6
        parts.append(
            f'<g class="deadline"><title>{label}</title><line x1="{at}" x2="{at}" y1="{top}" '
            f'y2="{labels_top + 12 * row}"></line><text x="{at + 3}" y="{labels_top + 10 + 12 * row}">'
            f"{label}</text></g>"
        )
    for m in marks:
        label = escape(m.label)
        parts.append(
            f'<circle class="mark {m.lane}" cx="{x(m.at)}" cy="{y(m.lane) + 13}" r="5">'
            f"<title>{label}</title></circle>"
        )
    parts.append(
        f'<text class="axis" x="{left}" y="{height - 2}">0 s</text>'
        f'<text class="axis" x="{width - right}" y="{height - 2}" text-anchor="end">{_num(span)} s</text>'
    )
    parts.append("</svg>")
    return Markup("".join(parts))


def _num(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.0f}" if value == int(value) or value >= 10 else f"{value:.1f}"
