"""Small server-rendered SVG charts for the operator dashboard (no JavaScript, no CDN)."""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 640, 220
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 56, 12, 12, 40
COLOURS = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2")


def _format(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 1:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _frame(title: str, maximum: float, labels: Sequence[str], body: list[str]) -> SafeString:
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {WIDTH} '
        f'{HEIGHT}" width="100%" preserveAspectRatio="xMidYMid meet" '
        'xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for step in range(5):
        value = maximum * step / 4
        y = PAD_TOP + plot_h - plot_h * step / 4
        parts.append(
            f'<line x1="{PAD_LEFT}" x2="{WIDTH - PAD_RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            'stroke="#e5e7eb"/>'
            f'<text x="{PAD_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#6b7280">{_format(value)}</text>'
        )
    # Label at most ~10 ticks so long ranges stay readable.
    every = max(len(labels) // 10, 1)
    slot = (WIDTH - PAD_LEFT - PAD_RIGHT) / max(len(labels), 1)
    for index, label in enumerate(labels):
        if index % every:
            continue
        x = PAD_LEFT + slot * (index + 0.5)
        parts.append(
            f'<text x="{x:.1f}" y="{HEIGHT - PAD_BOTTOM + 16}" text-anchor="middle" '
            f'font-size="11" fill="#6b7280">{escape(label)}</text>'
        )
    parts.extend(body)
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every label and title is escaped above


def bar_chart(*, title: str, points: Sequence[tuple[str, float]]) -> SafeString:
    """One bar per (label, value)."""
    maximum = max((value for _, value in points), default=0) or 1
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    slot = (WIDTH - PAD_LEFT - PAD_RIGHT) / max(len(points), 1)
    bars = []
    for index, (label, value) in enumerate(points):
        height = plot_h * value / maximum
        x = PAD_LEFT + slot * index + slot * 0.15
        bars.append(
            f'<rect class="bar" data-value="{value}" x="{x:.1f}" '
            f'y="{PAD_TOP + plot_h - height:.1f}" width="{slot * 0.7:.1f}" height="{height:.1f}" '
            f'fill="{COLOURS[0]}"><title>{escape(label)}: {_format(value)}</title></rect>'
        )
    return _frame(title, maximum, [label for label, _ in points], bars)


def line_chart(
    *, title: str, labels: Sequence[str], series: dict[str, Sequence[float | None]]
) -> SafeString:
    """One polyline per series; None values leave a gap."""
    values = [value for points in series.values() for value in points if value is not None]
    maximum = max(values, default=0) or 1
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    slot = (WIDTH - PAD_LEFT - PAD_RIGHT) / max(len(labels), 1)
    body = []
    for colour, (name, points) in zip(COLOURS, series.items(), strict=False):
        segment: list[str] = []
        segments: list[list[str]] = []
        for index, value in enumerate(points):
            if value is None:
                if segment:
                    segments.append(segment)
                segment = []
                continue
            x = PAD_LEFT + slot * (index + 0.5)
            y = PAD_TOP + plot_h - plot_h * value / maximum
            segment.append(f"{x:.1f},{y:.1f}")
            body.append(
                f'<circle class="point" data-series="{escape(name)}" data-value="{value}" '
                f'cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"><title>{escape(name)} '
                f"{escape(labels[index])}: {_format(value)}</title></circle>"
            )
        if segment:
            segments.append(segment)
        body.extend(
            f'<polyline class="line" fill="none" stroke="{colour}" stroke-width="2" '
            f'points="{" ".join(points_)}"/>'
            for points_ in segments
        )
    legend_x = PAD_LEFT
    for colour, name in zip(COLOURS, series, strict=False):
        body.append(
            f'<rect x="{legend_x}" y="{HEIGHT - 14}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{legend_x + 14}" y="{HEIGHT - 5}" font-size="11">{escape(name)}</text>'
        )
        legend_x += 90
    return _frame(title, maximum, labels, body)
