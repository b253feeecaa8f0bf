"""Forecast figures: the fan chart by period and source, and its two companions.

Every function takes the plain tables of :mod:`crmkit.dashboard`. Two renderings:

* ``fan_chart``, ``stage_rates_figure``, ``segment_figure`` return a new
  :class:`matplotlib.figure.Figure` without touching pyplot's global state (the report);
* ``fan_chart_svg``, ``stage_rates_svg``, ``segment_svg`` return SVG text written by hand
  (the manager app): no matplotlib import and a few milliseconds per figure, so a page
  and every filter change draw their figures at once.

Matplotlib is imported only when a matplotlib figure is drawn.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: Colour of each revenue source.
SOURCE_COLORS = {
    "total": "#1f4e79",
    "pipeline": "#2a7f62",
    "new_business": "#b5651d",
    "repeat": "#6a3d9a",
}
_NAMES = {
    "pipeline": "Open pipeline",
    "new_business": "New business",
    "repeat": "Repeat customers",
    "total": "Total",
}
_ACTUAL_COLOR = "#222222"
_TARGET_COLOR = "#c0392b"


def short_amount(x: float, _pos: object = None) -> str:
    """Format an amount briefly for an axis: 950, 12k, 4.5M."""
    a = abs(x)
    if a >= 1e9:
        return f"{x / 1e9:.1f}B"
    if a >= 1e6:
        return f"{x / 1e6:.1f}M"
    if a >= 1e3:
        return f"{x / 1e3:.0f}k"
    return f"{x:.0f}"


def figure_png(fig: Figure, *, dpi: int = 100) -> bytes:
    """Render a figure to PNG bytes.

    Parameters
    ----------
    fig
        The figure.
    dpi
        Resolution in dots per inch.

    Returns
    -------
    bytes

    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _fan(ax: Axes, data: pd.DataFrame, source: str, x: dict[str, int], *, target: bool) -> None:
    """Draw one source's bands, median, actuals and target on an axis."""
    from matplotlib.ticker import FuncFormatter

    color = SOURCE_COLORS.get(source, "#444444")
    d = data[data["source"] == source]
    fc = d[d["kind"] == "forecast"]
    past = d[d["kind"] == "actual"]
    if not past.empty:
        ax.plot(
            [x[p] for p in past["period"]],
            past["actual"],
            color=_ACTUAL_COLOR,
            marker="o",
            ms=3,
            lw=1.4,
            label=str(past["actual_label"].iloc[0]) if "actual_label" in past else "actual",
        )
    if not fc.empty:
        xs = np.array([x[p] for p in fc["period"]])
        ax.fill_between(xs, fc["p10"], fc["p90"], color=color, alpha=0.18, lw=0, label="P10–P90")
        ax.fill_between(xs, fc["p25"], fc["p75"], color=color, alpha=0.32, lw=0, label="P25–P75")
        ax.plot(xs, fc["p50"], color=color, lw=2, marker="o", ms=3, label="P50")
        closed = fc["closed_to_date"].to_numpy(dtype=float)
        if np.nansum(closed) > 0:
            ax.scatter(
                xs[closed > 0], closed[closed > 0], marker="_", s=160, color=_ACTUAL_COLOR,
                label="won so far", zorder=3,
            )  # fmt: skip
        if target and fc["target"].notna().any():
            t = fc[fc["target"].notna()]
            tx = np.array([x[p] for p in t["period"]])
            ax.hlines(
                t["target"], tx - 0.4, tx + 0.4, colors=_TARGET_COLOR, linestyles="--", lw=1.5,
                label="target (% = P(reach))",
            )  # fmt: skip
            for xi, (tv, pt) in zip(tx, zip(t["target"], t["p_target"], strict=True), strict=True):
                if np.isfinite(pt):
                    ax.annotate(
                        f"{100 * pt:.0f}%", (xi, tv), xytext=(0, 4),
                        textcoords="offset points", ha="center", fontsize=8, color=_TARGET_COLOR,
                    )  # fmt: skip
    ax.set_title(_NAMES.get(source, source), fontsize=10 if not target else 12)
    ax.yaxis.set_major_formatter(FuncFormatter(short_amount))
    ax.set_ylim(bottom=0)
    ax.grid(axis="y", alpha=0.3)


def fan_chart(
    data: pd.DataFrame,
    *,
    title: str | None = None,
    sources: tuple[str, ...] = ("pipeline", "new_business", "repeat"),
    figsize: tuple[float, float] = (11.0, 5.2),
) -> Figure:
    """Draw the forecast as a fan chart: total on the left, one small chart per source.

    Parameters
    ----------
    data
        Output of :func:`crmkit.dashboard.fan_data`: per (period, source) the actuals of past
        periods and P10 / P25 / P50 / P75 / P90 of forecast periods, with target and
        P(target).
    title
        Figure title.
    sources
        The sources drawn beside the total (those absent from ``data`` are skipped).
    figsize
        Size in inches.

    Returns
    -------
    matplotlib.figure.Figure

    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    present = [s for s in sources if s in set(data["source"])]
    periods = list(dict.fromkeys(data.sort_values("period", kind="stable")["period"]))
    x = {p: i for i, p in enumerate(periods)}
    n_rows = max(len(present), 1)
    grid = fig.add_gridspec(n_rows, 2, width_ratios=[2.2, 1.0])
    main = fig.add_subplot(grid[:, 0])
    _fan(main, data, "total", x, target=True)
    main.set_xticks(range(len(periods)), periods, rotation=45, ha="right")
    main.legend(loc="upper left", fontsize=8, ncols=2, frameon=False)
    # the small panels share the periods they have data for (often the forecast only)
    own = sorted(set(data.loc[data["source"].isin(present), "period"]))
    for i, s in enumerate(present):
        ax = fig.add_subplot(grid[i, 1])
        _fan(ax, data, s, {p: j for j, p in enumerate(own)}, target=False)
        ax.set_xticks(range(len(own)), own, rotation=45, ha="right", fontsize=8)
        ax.tick_params(labelbottom=i == len(present) - 1)
    if title:
        fig.suptitle(title)
    return fig


def stage_rates_figure(
    stages: pd.DataFrame, *, figsize: tuple[float, float] = (7.0, 3.6)
) -> Figure:
    """Compare configured and learned win rates by stage (learned with its P10–P90 range).

    Parameters
    ----------
    stages
        Output of :func:`crmkit.dashboard.pipeline_by_stage`.
    figsize
        Size in inches.

    Returns
    -------
    matplotlib.figure.Figure

    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.add_subplot()
    labels = [str(s) for s in stages["stage"]] if "stage" in stages else []
    y = np.arange(len(labels))
    if len(labels):
        ax.barh(y + 0.2, stages["configured"], height=0.4, color="#b0b7c3", label="configured")
        if "learned_mean" in stages:
            lo = stages["learned_mean"] - stages.get("learned_p10", stages["learned_mean"])
            hi = stages.get("learned_p90", stages["learned_mean"]) - stages["learned_mean"]
            ax.barh(
                y - 0.2, stages["learned_mean"], height=0.4, color=SOURCE_COLORS["pipeline"],
                xerr=np.vstack([lo, hi]), capsize=3, label="learned (P10–P90)",
            )  # fmt: skip
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_title("Win rate by stage")
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    return fig


def segment_figure(segments: pd.DataFrame, *, figsize: tuple[float, float] = (7.0, 3.2)) -> Figure:
    """Draw each segment's revenue over the horizon: P50 bars with P10–P90 ranges.

    Parameters
    ----------
    segments
        Output of :func:`crmkit.dashboard.segment_contributions`.
    figsize
        Size in inches.

    Returns
    -------
    matplotlib.figure.Figure

    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(segments))
    if len(segments):
        err = np.vstack([segments["p50"] - segments["p10"], segments["p90"] - segments["p50"]])
        ax.barh(y, segments["p50"], xerr=err, capsize=3, color=SOURCE_COLORS["total"], alpha=0.8)
    ax.set_yticks(y, [str(s) for s in segments.get("segment", [])])
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(FuncFormatter(short_amount))
    ax.set_title("Revenue by segment over the horizon (P50, P10–P90)")
    return fig


# ------------------------------------------------------------------ hand-written SVG (the app)
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


def _pts(xs, ys) -> str:
    """SVG points attribute."""
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))


def _nums(values) -> str:
    """Values for a ``data-values`` attribute (what tests read back)."""
    return " ".join(f"{float(v):.2f}" for v in values)


def _fan_panel(
    data: pd.DataFrame,
    source: str,
    periods: list[str],
    box: tuple[float, float, float, float],
    *,
    main: bool,
) -> list[str]:
    """SVG elements of one source's panel: axes, bands, P50, actuals, won so far, target."""
    x0, y0, w, h = box
    color = SOURCE_COLORS.get(source, "#444444")
    d = data[data["source"] == source]
    fc = d[d["kind"] == "forecast"]
    past = d[d["kind"] == "actual"]
    fc = fc[fc["period"].isin(periods)]
    past = past[past["period"].isin(periods)]
    cols = [fc[c] for c in ("p90", "closed_to_date") if c in fc] + [past.get("actual")]
    if main and "target" in fc:
        cols.append(fc["target"])
    vals = np.concatenate(
        [pd.to_numeric(c, errors="coerce").to_numpy(float) for c in cols if c is not None]
    )
    vals = vals[np.isfinite(vals)]
    ticks = _nice_ticks(float(vals.max()) if vals.size else 1.0, 5 if main else 3)
    top = ticks[-1] or 1.0
    pad_l, pad_b, pad_t = (58, 46, 22) if main else (46, 34, 18)
    px0, pw, py0, ph = x0 + pad_l, w - pad_l - 8, y0 + pad_t, h - pad_t - pad_b
    step = pw / max(len(periods), 1)
    xi = {p: px0 + step * (i + 0.5) for i, p in enumerate(periods)}

    def y(v):
        return py0 + ph - ph * (np.asarray(v, dtype=float) / top)

    fs = 11 if main else 9
    out = [
        f'<g class="crmkit-fan-panel" data-source="{source}">',
        f'<text x="{x0 + w / 2:.1f}" y="{y0 + 13:.1f}" text-anchor="middle" '
        f'font-size="{13 if main else 11}" font-weight="bold">'
        f"{_esc(_NAMES.get(source, source))}</text>",
    ]
    for t in ticks:
        ty = float(y(t))
        out.append(
            f'<line x1="{px0:.1f}" x2="{px0 + pw:.1f}" y1="{ty:.1f}" y2="{ty:.1f}" '
            'stroke="#e3e3e3"/>'
            f'<text x="{px0 - 4:.1f}" y="{ty + 3:.1f}" text-anchor="end" font-size="{fs}">'
            f"{short_amount(t)}</text>"
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
    if not fc.empty:
        xs = [xi[p] for p in fc["period"]]
        for lo, hi, alpha, name in (
            ("p10", "p90", 0.18, "p10-p90"),
            ("p25", "p75", 0.32, "p25-p75"),
        ):
            poly = _pts(xs + xs[::-1], list(y(fc[hi])) + list(y(fc[lo]))[::-1])
            out.append(
                f'<polygon class="crmkit-fan-band" data-band="{name}" points="{poly}" '
                f'fill="{color}" fill-opacity="{alpha}" stroke="none" '
                f'data-lo="{_nums(fc[lo])}" data-hi="{_nums(fc[hi])}"/>'
            )
        out.append(
            f'<polyline class="crmkit-fan-p50" points="{_pts(xs, y(fc["p50"]))}" fill="none" '
            f'stroke="{color}" stroke-width="2" data-values="{_nums(fc["p50"])}"/>'
        )
        for p, r in zip(fc["period"], fc.itertuples(index=False), strict=True):
            out.append(
                f'<circle cx="{xi[p]:.1f}" cy="{float(y(r.p50)):.1f}" r="2.5" fill="{color}">'
                f"<title>{_esc(p)}: P50 {r.p50:,.0f} (P10 {r.p10:,.0f} – P90 {r.p90:,.0f})"
                "</title></circle>"
            )
        closed = fc["closed_to_date"].to_numpy(float)
        for p, c in zip(fc["period"], closed, strict=True):
            if np.isfinite(c) and c > 0:
                cy = float(y(c))
                out.append(
                    f'<line class="crmkit-fan-won" x1="{xi[p] - 8:.1f}" x2="{xi[p] + 8:.1f}" '
                    f'y1="{cy:.1f}" y2="{cy:.1f}" stroke="{_ACTUAL_COLOR}" stroke-width="2" '
                    f'data-value="{c:.2f}"><title>{_esc(p)}: won so far {c:,.0f}</title></line>'
                )
        if main and "target" in fc and fc["target"].notna().any():
            t = fc[fc["target"].notna()]
            for p, tv, pt in zip(t["period"], t["target"], t["p_target"], strict=True):
                ty = float(y(tv))
                label = f"{100 * pt:.0f}%" if np.isfinite(pt) else ""
                out.append(
                    f'<line class="crmkit-fan-target" x1="{xi[p] - step * 0.4:.1f}" '
                    f'x2="{xi[p] + step * 0.4:.1f}" y1="{ty:.1f}" y2="{ty:.1f}" '
                    f'stroke="{_TARGET_COLOR}" stroke-width="1.5" stroke-dasharray="5 3" '
                    f'data-value="{tv:.2f}" data-p="{pt:.4f}"><title>{_esc(p)}: target '
                    f"{tv:,.0f}, P(reach) {label}</title></line>"
                    f'<text x="{xi[p]:.1f}" y="{ty - 4:.1f}" text-anchor="middle" font-size="10" '
                    f'fill="{_TARGET_COLOR}">{label}</text>'
                )
    if not past.empty:
        xs = [xi[p] for p in past["period"]]
        label = str(past["actual_label"].iloc[0]) if "actual_label" in past else "actual"
        out.append(
            f'<polyline class="crmkit-fan-actual" points="{_pts(xs, y(past["actual"]))}" '
            f'fill="none" stroke="{_ACTUAL_COLOR}" stroke-width="1.5" '
            f'data-label="{_esc(label)}" data-values="{_nums(past["actual"])}"/>'
        )
        for p, a in zip(past["period"], past["actual"], strict=True):
            out.append(
                f'<circle cx="{xi[p]:.1f}" cy="{float(y(a)):.1f}" r="2.2" '
                f'fill="{_ACTUAL_COLOR}"><title>{_esc(p)}: {_esc(label)} {a:,.0f}</title></circle>'
            )
    out.append("</g>")
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
    sources: tuple[str, ...] = ("pipeline", "new_business", "repeat"),
    width: int = 1100,
    height: int = 520,
) -> str:
    """Draw the fan chart as SVG text: total on the left, one small chart per source.

    The same picture as :func:`fan_chart`: per period the P10–P90 and P25–P75 bands and
    the P50 line (closed revenue included), actual revenue of past periods, revenue won so
    far in the current period, and on the total the target with the probability of
    reaching it. The numbers drawn are also in ``data-`` attributes.

    Parameters
    ----------
    data
        Output of :func:`crmkit.dashboard.fan_data`.
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
    present = [s for s in sources if s in set(data["source"])]
    periods = sorted(set(data["period"].astype(str)))
    top = 30 if title else 6
    main_w = width * 0.66
    parts = [
        f'<svg class="crmkit-fan-svg" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {width} {height}" width="100%" style="max-width:{width}px" {_FONT}>'
        f'<rect width="{width}" height="{height}" fill="white"/>'
    ]
    if title:
        parts.append(f'<text x="{width / 2:.0f}" y="20" text-anchor="middle" font-size="15">'
                     f"{_esc(title)}</text>")  # fmt: skip
    parts += _fan_panel(data, "total", periods, (0, top, main_w, height - top - 24), main=True)
    own = sorted(set(data.loc[data["source"].isin(present), "period"].astype(str)))
    n = max(len(present), 1)
    ph = (height - top) / n
    for i, s in enumerate(present):
        parts += _fan_panel(data, s, own, (main_w, top + i * ph, width - main_w, ph), main=False)
    color = SOURCE_COLORS["total"]
    parts += _legend(
        [
            (f'<rect x="0" y="-5" width="18" height="10" fill="{color}" fill-opacity="0.25"/>',
             "P10–P90"),
            (f'<rect x="0" y="-5" width="18" height="10" fill="{color}" fill-opacity="0.5"/>',
             "P25–P75"),
            (f'<line x1="0" x2="18" stroke="{color}" stroke-width="2"/>', "P50"),
            (f'<line x1="0" x2="18" stroke="{_ACTUAL_COLOR}" stroke-width="1.5"/>',
             _legend_actual_label(data)),
            (f'<line x1="4" x2="14" stroke="{_ACTUAL_COLOR}" stroke-width="2"/>', "won so far"),
            (f'<line x1="0" x2="18" stroke="{_TARGET_COLOR}" stroke-dasharray="5 3"/>',
             "target (% = P(reach))"),
        ],
        10,
        height - 10,
    )  # fmt: skip
    parts.append("</svg>")
    return "".join(parts)


def _legend_actual_label(data: pd.DataFrame) -> str:
    """Legend text of the actuals line."""
    past = data[(data["kind"] == "actual") & (data["source"] == "total")]
    if "actual_label" in past and not past.empty:
        return str(past["actual_label"].iloc[0])
    return "actual"


def _hbars_svg(
    labels: list[str],
    bars: list[dict],
    *,
    title: str,
    xmax: float,
    fmt,
    css: str,
    width: int = 640,
) -> str:
    """Draw horizontal bars (``name``, ``color``, ``values``, optional ``lo`` / ``hi``)."""
    row_h = 16 * max(len(bars), 1) + 10
    height = 48 + row_h * max(len(labels), 1) + 22
    left, right = 120, 24
    pw = width - left - right
    ticks = _nice_ticks(xmax, 4) if xmax > 1.0 else [0, 0.25, 0.5, 0.75, 1.0]
    top = ticks[-1] or 1.0

    def x(v):
        return left + pw * max(float(v), 0.0) / top

    out = [
        f'<svg class="crmkit-bars-svg {css}" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {width} {height}" width="100%" style="max-width:{width}px" {_FONT}>'
        f'<rect width="{width}" height="{height}" fill="white"/>'
        f'<text x="{width / 2:.0f}" y="16" text-anchor="middle" font-size="13">{_esc(title)}</text>'
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
            v = b["values"][i]
            if v is None or not np.isfinite(v):
                continue
            by = ry + j * 16
            out.append(
                f'<rect class="crmkit-bar" data-series="{_esc(b["name"])}" data-label="{_esc(lab)}"'
                f' data-value="{float(v):.4f}" x="{left}" y="{by:.1f}" width="{x(v) - left:.1f}" '
                f'height="13" fill="{b["color"]}"><title>{_esc(lab)} – {_esc(b["name"])}: '
                f"{fmt(v)}</title></rect>"
            )
            lo, hi = b.get("lo"), b.get("hi")
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
            f'<rect x="{lx}" y="{height - 12}" width="12" height="9" fill="{b["color"]}"/>'
            f'<text x="{lx + 16}" y="{height - 4}" font-size="10">{_esc(b["name"])}</text>'
        )
        lx += 30 + 6.2 * len(b["name"])
    out.append("</svg>")
    return "".join(out)


def _col(df: pd.DataFrame, name: str, default: pd.Series | None = None) -> list[float]:
    """A numeric column as a list (``default`` when absent)."""
    if name in df:
        return pd.to_numeric(df[name], errors="coerce").astype(float).tolist()
    return [] if default is None else default.tolist()


def stage_rates_svg(stages: pd.DataFrame, *, width: int = 640) -> str:
    """Compare configured and learned win rates by stage as SVG (learned with P10–P90).

    Parameters
    ----------
    stages
        Output of :func:`crmkit.dashboard.pipeline_by_stage`.
    width
        Width in pixels.

    Returns
    -------
    str
        An ``<svg>`` element.

    """
    labels = [str(s) for s in stages["stage"]] if "stage" in stages else []
    bars = []
    if labels and "configured" in stages:
        bars.append({"name": "configured", "color": "#b0b7c3",
                     "values": _col(stages, "configured")})  # fmt: skip
    if labels and "learned_mean" in stages:
        mean = _col(stages, "learned_mean")
        bars.append({"name": "learned (P10–P90)", "color": SOURCE_COLORS["pipeline"],
                     "values": mean, "lo": _col(stages, "learned_p10") or mean,
                     "hi": _col(stages, "learned_p90") or mean})  # fmt: skip
    return _hbars_svg(
        labels, bars, title="Win rate by stage", xmax=1.0, css="crmkit-stage-svg",
        fmt=lambda v: f"{100 * v:.0f}%", width=width,
    )  # fmt: skip


def segment_svg(segments: pd.DataFrame, *, width: int = 640) -> str:
    """Draw each segment's revenue over the horizon as SVG: P50 bars with P10–P90 ranges.

    Parameters
    ----------
    segments
        Output of :func:`crmkit.dashboard.segment_contributions`.
    width
        Width in pixels.

    Returns
    -------
    str
        An ``<svg>`` element.

    """
    labels = [str(s) for s in segments.get("segment", [])]
    p90 = _col(segments, "p90")
    bars = [{"name": "P50 (P10–P90)", "color": SOURCE_COLORS["total"],
             "values": _col(segments, "p50"), "lo": _col(segments, "p10"), "hi": p90}]  # fmt: skip
    finite = [v for v in p90 if np.isfinite(v)]
    return _hbars_svg(
        labels, bars if labels else [], title="Revenue by segment over the horizon",
        xmax=max(finite) if finite else 1.0, css="crmkit-segment-svg",
        fmt=lambda v: short_amount(v), width=width,
    )  # fmt: skip
