"""Small SVG line charts for the benchmark report (no plotting library: a few lines of SVG do)."""

from __future__ import annotations

import math
from html import escape

WIDTH, HEIGHT, PAD = 360, 220, 48
COLOURS = ("#2563eb", "#dc2626", "#16a34a", "#9333ea")


def chart(
    title: str, xs: list[int], series: dict[str, list[float]], unit: str, x: float = 0, y: float = 0
) -> str:
    """One chart at (x, y): `xs` on a log scale, each series a line with its points labelled."""
    top = max((v for values in series.values() for v in values), default=1.0) * 1.15 or 1.0
    lo, hi = math.log10(min(xs)), math.log10(max(xs))

    def px(value: int) -> float:
        return x + PAD + (math.log10(value) - lo) / ((hi - lo) or 1) * (WIDTH - 2 * PAD)

    def py(value: float) -> float:
        return y + HEIGHT - PAD + -value / top * (HEIGHT - 2 * PAD)

    out = [
        f'<text x="{x + WIDTH / 2}" y="{y + 18}" text-anchor="middle" font-weight="bold">',
        f"{escape(title)}</text>",
        f'<line x1="{x + PAD}" y1="{py(0)}" x2="{x + WIDTH - PAD}" y2="{py(0)}" stroke="#555"/>',
        f'<line x1="{x + PAD}" y1="{py(0)}" x2="{x + PAD}" y2="{py(top)}" stroke="#555"/>',
        f'<text x="{x + 6}" y="{py(top) - 6}" font-size="11">{escape(unit)}</text>',
    ]
    for value in xs:
        out.append(
            f'<text x="{px(value)}" y="{py(0) + 16}" text-anchor="middle" font-size="11">{value:,}</text>'
        )
    out.append(f'<text x="{x + WIDTH / 2}" y="{py(0) + 32}" text-anchor="middle" font-size="11">rooms</text>')
    for i, (name, values) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        points = " ".join(f"{px(a):.1f},{py(b):.1f}" for a, b in zip(xs, values, strict=True))
        out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for a, b in zip(xs, values, strict=True):
            out.append(f'<circle cx="{px(a):.1f}" cy="{py(b):.1f}" r="3" fill="{colour}"/>')
            out.append(f'<text x="{px(a) + 4:.1f}" y="{py(b) - 6:.1f}" font-size="10">{b:,.0f}</text>')
        legend_x = x + PAD + 110 * i  # one row under the title, above the highest point
        if len(series) > 1:
            out.append(
                f'<text x="{legend_x}" y="{y + 36}" font-size="11" fill="{colour}">{escape(name)}</text>'
            )
    return "\n".join(out)


def figure(charts: list[str], columns: int = 2) -> str:
    rows = math.ceil(len(charts) / columns)
    width, height = WIDTH * columns, HEIGHT * rows
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif">'
    )
    return "\n".join([head, f'<rect width="{width}" height="{height}" fill="white"/>', *charts, "</svg>\n"])


def over_time(
    title: str, seconds: list[float], series: dict[str, list[float]], unit: str, x: float = 0, y: float = 0
) -> str:
    """One chart at (x, y): time on a linear scale (minutes), each series a line, its last value labelled."""
    top = max((v for values in series.values() for v in values), default=1.0) * 1.15 or 1.0
    end = max(seconds, default=1.0) or 1.0

    def px(value: float) -> float:
        return x + PAD + value / end * (WIDTH - 2 * PAD)

    def py(value: float) -> float:
        return y + HEIGHT - PAD + -value / top * (HEIGHT - 2 * PAD)

    out = [
        f'<text x="{x + WIDTH / 2}" y="{y + 18}" text-anchor="middle" font-weight="bold">',
        f"{escape(title)}</text>",
        f'<line x1="{x + PAD}" y1="{py(0)}" x2="{x + WIDTH - PAD}" y2="{py(0)}" stroke="#555"/>',
        f'<line x1="{x + PAD}" y1="{py(0)}" x2="{x + PAD}" y2="{py(top)}" stroke="#555"/>',
        f'<text x="{x + 6}" y="{py(top) - 6}" font-size="11">{escape(unit)}</text>',
        f'<text x="{x + 8}" y="{py(0) + 4}" font-size="10">0</text>',
        f'<text x="{x + 8}" y="{py(top / 1.15) + 4}" font-size="10">{top / 1.15:,.0f}</text>',
    ]
    for minute in range(int(end // 60) + 1):
        tick = px(minute * 60)
        out.append(
            f'<text x="{tick:.1f}" y="{py(0) + 16}" text-anchor="middle" font-size="11">{minute}</text>'
        )
    out.append(
        f'<text x="{x + WIDTH / 2}" y="{py(0) + 32}" text-anchor="middle" font-size="11">minutes</text>'
    )
    for i, (name, values) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        points = " ".join(f"{px(a):.1f},{py(b):.1f}" for a, b in zip(seconds, values, strict=True))
        out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
        if len(series) > 1:
            legend_x = x + PAD + 100 * i
            out.append(
                f'<text x="{legend_x}" y="{y + 36}" font-size="11" fill="{colour}">{escape(name)}</text>'
            )
    return "\n".join(out)
