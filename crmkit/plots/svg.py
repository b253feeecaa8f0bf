"""Forecast figures as hand-written SVG: the fan chart by period and source, and its companions.

The manager app's pictures. Every function takes the plain tables of :mod:`crmkit.apps.dashboard`,
gets the numbers to draw from :mod:`crmkit.plots.chart_data` (the same as the matplotlib figures of
:mod:`crmkit.plots.fanchart`) and returns SVG text: no matplotlib import and a few milliseconds per
figure, so a page and every filter change draw their figures at once. The numbers drawn are
also in ``data-`` attributes, for tests to read back.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from crmkit.plots import chart_data as cd
from crmkit.plots.format import format_amount

_FONT = 'font-family="DejaVu Sans, Arial, sans-serif"'


def _esc(text: object) -> str:
    """Escape text for SVG."""
    return (
        str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        .replace('"', "&quot;")
    )  # fmt: skip


def _nice_ticks(top: float, n: int = 5) -> list[float]:
    """Round axis ticks from 0 to at least ``top``: steps of 1, 2, 2.5 or 5 times a power of 10."""
    if not np.isfinite(top) or top <= 0:
        return [0.0, 1.0]
    raw = top / n
    mag = 10 ** np.floor(np.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    k = int(np.ceil(top / step - 1e-9))
    return [i * step for i in range(k + 1)]


def _pts(xs: Iterable[float], ys: Iterable[float]) -> str:
    """SVG points attribute."""
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))


def _nums(values: Iterable[float]) -> str:
    """Values for a ``data-values`` attribute (what tests read back)."""
    return " ".join(f"{float(v):.2f}" for v in values)


def _svg_open(css: str, width: int, height: int) -> str:
    """The ``<svg>`` start tag scaled to its container, with a white background."""
    return (
        f'<svg class="{css}" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {width} {height}" width="100%" style="max-width:{width}px" {_FONT}>'
        f'<rect width="{width}" height="{height}" fill="white"/>'
    )


def _fan_panel(
    panel: cd.FanPanel, box: tuple[float, float, float, float], *, main: bool
) -> list[str]:
    """SVG elements of one source's panel: axes, bands, P50, actuals, won so far, target."""
    x0, y0, w, h = box
    periods = panel.periods
    ymax = panel.ymax
    ticks = _nice_ticks(ymax if np.isfinite(ymax) else 1.0, 5 if main else 3)
    top = ticks[-1] or 1.0
    pad_l, pad_b, pad_t = (58, 46, 22) if main else (46, 34, 18)
    px0, pw, py0, ph = x0 + pad_l, w - pad_l - 8, y0 + pad_t, h - pad_t - pad_b
    step = pw / max(len(periods), 1)
    xi = {p: px0 + step * (i + 0.5) for i, p in enumerate(periods)}

    def y(v):
        return py0 + ph - ph * (np.asarray(v, dtype=float) / top)

    fs = 11 if main else 9
    out = [
        f'<g class="crmkit-fan-panel" data-source="{panel.source}">',
        f'<text x="{x0 + w / 2:.1f}" y="{y0 + 13:.1f}" text-anchor="middle" '
        f'font-size="{13 if main else 11}" font-weight="bold">{_esc(panel.title)}</text>',
    ]
    for t in ticks:
        ty = float(y(t))
        out.append(
            f'<line x1="{px0:.1f}" x2="{px0 + pw:.1f}" y1="{ty:.1f}" y2="{ty:.1f}" '
            'stroke="#e3e3e3"/>'
            f'<text x="{px0 - 4:.1f}" y="{ty + 3:.1f}" text-anchor="end" font-size="{fs}">'
            f"{format_amount(t, compact=True)}</text>"
        )
    show_every = max(1, int(np.ceil(len(periods) / (14 if main else 6))))
    for i, p in enumerate(periods):
        if i % show_every == 0 or i == len(periods) - 1:
            tx, ty = xi[p], py0 + ph + 12
            out.append(
                f'<text x="{tx:.1f}" y="{ty:.1f}" font-size="{fs - 1}" text-anchor="end" '
                f'transform="rotate(-40 {tx:.1f} {ty:.1f})">{_esc(p)}</text>'
            )
    out.append(
        f'<line x1="{px0:.1f}" x2="{px0 + pw:.1f}" y1="{py0 + ph:.1f}" y2="{py0 + ph:.1f}" '
        'stroke="#888"/>'
    )
    if panel.forecast_periods:
        out += _forecast_marks(panel, xi, y, step)
    if panel.actual_periods:
        xs = [xi[p] for p in panel.actual_periods]
        label = panel.actual_label
        out.append(
            f'<polyline class="crmkit-fan-actual" points="{_pts(xs, y(panel.actual))}" '
            f'fill="none" stroke="{cd.ACTUAL_COLOR}" stroke-width="1.5" '
            f'data-label="{_esc(label)}" data-values="{_nums(panel.actual)}"/>'
        )
        for p, a in zip(panel.actual_periods, panel.actual, strict=True):
            out.append(
                f'<circle cx="{xi[p]:.1f}" cy="{float(y(a)):.1f}" r="2.2" '
                f'fill="{cd.ACTUAL_COLOR}"><title>{_esc(p)}: {_esc(label)} '
                f"{format_amount(a)}</title>"
                "</circle>"
            )
    out.append("</g>")
    return out


def _forecast_marks(panel: cd.FanPanel, xi: dict[str, float], y, step: float) -> list[str]:
    """SVG elements of a panel's forecast: bands, P50 line and points, won so far, target."""
    color, q = panel.color, panel.quantiles
    xs = [xi[p] for p in panel.forecast_periods]
    out = []
    for band in cd.BANDS:
        poly = _pts(xs + xs[::-1], list(y(q[band.hi])) + list(y(q[band.lo]))[::-1])
        out.append(
            f'<polygon class="crmkit-fan-band" data-band="{band.name}" points="{poly}" '
            f'fill="{color}" fill-opacity="{band.alpha}" stroke="none" '
            f'data-lo="{_nums(q[band.lo])}" data-hi="{_nums(q[band.hi])}"/>'
        )
    out.append(
        f'<polyline class="crmkit-fan-p50" points="{_pts(xs, y(q["p50"]))}" fill="none" '
        f'stroke="{color}" stroke-width="2" data-values="{_nums(q["p50"])}"/>'
    )
    for p, p10, p50, p90 in zip(panel.forecast_periods, q["p10"], q["p50"], q["p90"], strict=True):
        out.append(
            f'<circle cx="{xi[p]:.1f}" cy="{float(y(p50)):.1f}" r="2.5" fill="{color}">'
            f"<title>{_esc(p)}: P50 {format_amount(p50)} "
            f"(P10 {format_amount(p10)} – P90 {format_amount(p90)})"
            "</title></circle>"
        )
    for p, c, won in zip(panel.forecast_periods, panel.closed, panel.won, strict=True):
        if won:
            cy = float(y(c))
            out.append(
                f'<line class="crmkit-fan-won" x1="{xi[p] - 8:.1f}" x2="{xi[p] + 8:.1f}" '
                f'y1="{cy:.1f}" y2="{cy:.1f}" stroke="{cd.ACTUAL_COLOR}" stroke-width="2" '
                f'data-value="{c:.2f}"><title>{_esc(p)}: {cd.WON_LABEL} '
                f"{format_amount(c)}</title></line>"
            )
    targets = zip(
        panel.target_periods, panel.target, panel.p_target, panel.target_labels, strict=True
    )
    for p, tv, pt, label in targets:
        ty = float(y(tv))
        out.append(
            f'<line class="crmkit-fan-target" x1="{xi[p] - step * 0.4:.1f}" '
            f'x2="{xi[p] + step * 0.4:.1f}" y1="{ty:.1f}" y2="{ty:.1f}" '
            f'stroke="{cd.TARGET_COLOR}" stroke-width="1.5" stroke-dasharray="5 3" '
            f'data-value="{tv:.2f}" data-p="{pt:.4f}"><title>{_esc(p)}: target '
            f"{format_amount(tv)}, P(reach) {label}</title></line>"
            f'<text x="{xi[p]:.1f}" y="{ty - 4:.1f}" text-anchor="middle" font-size="10" '
            f'fill="{cd.TARGET_COLOR}">{label}</text>'
        )
    return out


def _legend(items: list[tuple[str, str]], x: float, y: float) -> list[str]:
    """A one-line legend: (svg swatch, label) pairs."""
    out, cx = [], x
    for swatch, label in items:
        out.append(f'<g transform="translate({cx:.1f},{y:.1f})">{swatch}'
                   f'<text x="22" y="4" font-size="10">{_esc(label)}</text></g>')  # fmt: skip
        cx += 30 + 6.2 * len(label)
    return out


def fan_chart_svg(
    data: pd.DataFrame,
    *,
    title: str | None = None,
    sources: tuple[str, ...] = cd.PANEL_SOURCES,
    width: int = 1100,
    height: int = 520,
) -> str:
    """Draw the fan chart as SVG text: total on the left, one small chart per source.

    The same picture as :func:`crmkit.plots.fanchart.fan_chart`: per period the P10–P90 and
    P25–P75 bands and the P50 line (closed revenue included), actual revenue of past
    periods, revenue won so far in the current period, and on the total the target with
    the probability of reaching it. The numbers drawn are also in ``data-`` attributes.

    Parameters
    ----------
    data
        Output of :func:`crmkit.apps.dashboard.fan_data`.
    title
        Title above the chart.
    sources
        The sources drawn beside the total (those absent from ``data`` are skipped).
    width, height
        Size in pixels (the SVG scales to its container's width).

    Returns
    -------
    str
        An ``<svg>`` element.

    """
    chart = cd.fan_chart_data(data, sources)
    top = 30 if title else 6
    main_w = width * 0.66
    parts = [_svg_open("crmkit-fan-svg", width, height)]
    if title:
        parts.append(f'<text x="{width / 2:.0f}" y="20" text-anchor="middle" font-size="15">'
                     f"{_esc(title)}</text>")  # fmt: skip
    parts += _fan_panel(chart.total, (0, top, main_w, height - top - 24), main=True)
    ph = (height - top) / max(len(chart.panels), 1)
    for i, panel in enumerate(chart.panels):
        parts += _fan_panel(panel, (main_w, top + i * ph, width - main_w, ph), main=False)
    color = chart.total.color
    outer, inner = cd.BANDS
    parts += _legend(
        [
            (f'<rect x="0" y="-5" width="18" height="10" fill="{color}" fill-opacity="0.25"/>',
             outer.label),
            (f'<rect x="0" y="-5" width="18" height="10" fill="{color}" fill-opacity="0.5"/>',
             inner.label),
            (f'<line x1="0" x2="18" stroke="{color}" stroke-width="2"/>', cd.P50_LABEL),
            (f'<line x1="0" x2="18" stroke="{cd.ACTUAL_COLOR}" stroke-width="1.5"/>',
             chart.total.actual_label),
            (f'<line x1="4" x2="14" stroke="{cd.ACTUAL_COLOR}" stroke-width="2"/>',
             cd.WON_LABEL),
            (f'<line x1="0" x2="18" stroke="{cd.TARGET_COLOR}" stroke-dasharray="5 3"/>',
             cd.TARGET_LABEL),
        ],
        10,
        height - 10,
    )  # fmt: skip
    parts.append("</svg>")
    return "".join(parts)


def _hbars_svg(chart: cd.BarChart, *, css: str, width: int = 640) -> str:
    """Draw a bar chart's series as horizontal bars per label, with their ranges."""
    labels, bars, fmt = chart.labels, chart.series, chart.tick_label
    row_h = 16 * max(len(bars), 1) + 10
    height = 48 + row_h * max(len(labels), 1) + 22
    left, right = 120, 24
    pw = width - left - right
    ticks = _nice_ticks(chart.xmax, 4) if chart.xmax > 1.0 else [0, 0.25, 0.5, 0.75, 1.0]
    top = ticks[-1] or 1.0

    def x(v):
        return left + pw * max(float(v), 0.0) / top

    out = [
        _svg_open(f"crmkit-bars-svg {css}", width, height),
        f'<text x="{width / 2:.0f}" y="16" text-anchor="middle" font-size="13">'
        f"{_esc(chart.title)}</text>",
    ]
    base = 30
    for t in ticks:
        out.append(
            f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{base:.1f}" y2="{height - 34:.1f}" '
            f'stroke="#e3e3e3"/><text x="{x(t):.1f}" y="{height - 22:.1f}" font-size="10" '
            f'text-anchor="middle">{fmt(t)}</text>'
        )
    for i, lab in enumerate(labels):
        ry = base + 6 + i * row_h
        out.append(f'<text x="{left - 6}" y="{ry + row_h / 2:.1f}" text-anchor="end" '
                   f'font-size="11">{_esc(lab)}</text>')  # fmt: skip
        for j, b in enumerate(bars):
            v = b.values[i]
            if not np.isfinite(v):
                continue
            by = ry + j * 16
            out.append(
                f'<rect class="crmkit-bar" data-series="{_esc(b.name)}" data-label="{_esc(lab)}"'
                f' data-value="{float(v):.4f}" x="{left}" y="{by:.1f}" width="{x(v) - left:.1f}" '
                f'height="13" fill="{b.color}"><title>{_esc(lab)} – {_esc(b.name)}: '
                f"{fmt(v)}</title></rect>"
            )
            lo, hi = b.lo, b.hi
            if lo is not None and hi is not None and np.isfinite(lo[i]) and np.isfinite(hi[i]):
                cy = by + 6.5
                out.append(
                    f'<path d="M{x(lo[i]):.1f},{cy:.1f}H{x(hi[i]):.1f}M{x(lo[i]):.1f},{cy - 4:.1f}'
                    f'V{cy + 4:.1f}M{x(hi[i]):.1f},{cy - 4:.1f}V{cy + 4:.1f}" '
                    'stroke="#222" stroke-width="1.2" fill="none"/>'
                )
    lx = left
    for b in bars:
        out.append(
            f'<rect x="{lx}" y="{height - 12}" width="12" height="9" fill="{b.color}"/>'
            f'<text x="{lx + 16}" y="{height - 4}" font-size="10">{_esc(b.name)}</text>'
        )
        lx += 30 + 6.2 * len(b.name)
    out.append("</svg>")
    return "".join(out)


def stage_rates_svg(stages: pd.DataFrame, *, width: int = 640) -> str:
    """Compare configured and learned win rates by stage as SVG (learned with P10–P90).

    Parameters
    ----------
    stages
        Output of :func:`crmkit.apps.dashboard.pipeline_by_stage`.
    width
        Width in pixels.

    Returns
    -------
    str
        An ``<svg>`` element.

    """
    return _hbars_svg(cd.stage_rates_data(stages), css="crmkit-stage-svg", width=width)


def segment_svg(segments: pd.DataFrame, *, width: int = 640) -> str:
    """Draw each segment's revenue over the horizon as SVG: P50 bars with P10–P90 ranges.

    Parameters
    ----------
    segments
        Output of :func:`crmkit.apps.dashboard.segment_contributions`.
    width
        Width in pixels.

    Returns
    -------
    str
        An ``<svg>`` element.

    """
    return _hbars_svg(cd.segment_data(segments), css="crmkit-segment-svg", width=width)
