"""How charts, tables and reports write numbers, and how a figure becomes a PNG.

One amount formatter serves every picture and table: :func:`format_amount` writes whole
currency units with thousands separators (``1,234,567``) for tables and tooltips, and
with ``compact=True`` three significant digits with a k/M/B suffix (``950``, ``1.5k``,
``12k``, ``1.25M``) for labels. Numbers shown *together* (a column, a value and its
interval, the ticks of an axis) are written by :func:`format_numbers`,
:func:`format_estimates` and :func:`tick_labels`, which pick the precision from the spread
of the set: two different numbers never read the same, and a number that is not zero
never reads ``0``. :func:`amount_formatter` and :func:`number_formatter` put
:func:`tick_labels` on a matplotlib axis or colour bar (decimals from the tick step,
never two equal labels); :func:`rate_scale` picks a readable unit for tiny rates (new
deals per 1k spent); :func:`figure_png` renders a figure for HTML reports and notebooks.

Nothing heavy is imported at module level (the app page that writes SVG stays light);
matplotlib is imported when a formatter is made.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Sequence
from functools import cache
from itertools import pairwise
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from matplotlib.ticker import Formatter

#: Text of a missing or non-finite amount.
MISSING = "–"
#: Significant digits of a compact amount.
COMPACT_DIGITS = 3
#: Most decimals (or significant digits) :func:`format_numbers` and :func:`tick_labels` use.
MAX_DECIMALS = 12
#: Separator of an interval's ends (an en dash, so ``-0.5–1.5`` reads unambiguously).
DASH = "–"
_UNITS = ((1e9, "B"), (1e6, "M"), (1e3, "k"))
#: Kinds of number :func:`format_numbers` writes.
Kind = Literal["number", "amount", "count", "percent"]


def format_amount(x: float | None, *, compact: bool = False, digits: int = COMPACT_DIGITS) -> str:
    """Write an amount for people: ``1,234,567``, or compactly ``1.23M``.

    Parameters
    ----------
    x
        The amount (``None`` and non-finite values are written as ``–``).
    compact
        ``False`` (tables, tooltips): whole currency units with thousands separators.
        ``True`` (labels on bars and cells): ``digits`` significant digits and a
        k (thousand), M (million) or B (billion) suffix, trailing zeros dropped:
        ``950``, ``1.5k``, ``12k``, ``12.3k``, ``1.25M``, ``2B``; ``2.5`` below one.
    digits
        Significant digits of the compact form.

    Returns
    -------
    str
        The text.

    Examples
    --------
    >>> format_amount(1234567.4), format_amount(1500, compact=True)
    ('1,234,567', '1.5k')
    >>> format_amount(1234567.4, compact=True, digits=5)
    '1.2346M'
    """
    if x is None or not math.isfinite(float(x)):
        return MISSING
    if not compact:
        return f"{round(float(x)):,}"
    r = float(f"{float(x):.{digits}g}")  # round first: 999,999 is 1M, not 1000k
    if r == 0:
        return "0"
    for scale, suffix in _UNITS:
        if abs(r) >= scale:
            v = r / scale
            text = f"{v:,.0f}" if abs(v) >= 10**digits else f"{v:.{digits}g}"
            return text + suffix
    return f"{r:.{digits}g}"


def _floats(values: Iterable[float | None]) -> list[float]:
    """The values as floats, NaN for missing ones."""
    return [math.nan if v is None else float(v) for v in values]


def _snap(values: Sequence[float], tol: float) -> list[float]:
    """Values within ``tol`` of zero become zero (float noise must not read ``-0.00``)."""
    return [0.0 if math.isfinite(v) and abs(v) <= tol else v for v in values]


def _distinct(values: Sequence[float], labels: Sequence[str]) -> bool:
    """Tell whether different finite values got different labels and nonzero ones no zero."""
    seen: dict[str, float] = {}
    for v, text in zip(values, labels, strict=True):
        if not math.isfinite(v):
            continue
        if v != 0 and text.lstrip("+-").strip("0.,%") == "":
            return False  # a number that is not zero must not read 0
        if seen.setdefault(text, v) != v:
            return False
    return True


def _fixed(x: float, decimals: int, *, signed: bool = False) -> str:
    """A number with thousands separators and ``decimals`` decimals (``-0`` read as ``0``)."""
    if not math.isfinite(x):
        return MISSING
    text = f"{x:{'+' if signed else ''},.{decimals}f}"
    if text.lstrip("+-").strip("0.,") == "":
        return text.lstrip("+-")
    return text


def _first_decimals(values: Sequence[float], min_significant: int) -> int:
    """Decimals that give the smallest nonzero value ``min_significant`` significant digits."""
    nonzero = [abs(v) for v in values if math.isfinite(v) and v != 0]
    if not nonzero:
        return 0
    return max(0, min(MAX_DECIMALS, min_significant - 1 - math.floor(math.log10(min(nonzero)))))


def number_decimals(
    values: Iterable[float | None], *, min_significant: int = 2, min_decimals: int = 0
) -> int:
    """The decimals :func:`format_numbers` writes a set of plain numbers with.

    For a grid that formats its numbers itself (``ipydatagrid``'s ``TextRenderer`` takes a
    d3 format such as ``",.2f"``): the fewest decimals that give the smallest nonzero value
    ``min_significant`` significant digits and tell every two different values apart.

    Parameters
    ----------
    values
        The numbers shown together (a column).
    min_significant, min_decimals
        As in :func:`format_numbers`.

    Returns
    -------
    int

    Examples
    --------
    >>> number_decimals([263352.94, 1520.5]), number_decimals([0.5, 0.74])
    (0, 2)
    """
    raw = _floats(values)
    top = max((abs(v) for v in raw if math.isfinite(v)), default=0.0)
    vals = _snap(raw, top * 1e-12)
    start = max(_first_decimals(vals, min_significant), min_decimals)
    for decimals in range(start, MAX_DECIMALS + 1):
        if _distinct(vals, [_fixed(v, decimals) for v in vals]):
            return decimals
    return MAX_DECIMALS


def format_numbers(
    values: Iterable[float | None],
    *,
    kind: Kind = "number",
    signed: bool = False,
    min_significant: int = 2,
    min_decimals: int = 0,
) -> list[str]:
    """Write numbers shown together at one precision that tells them apart.

    The precision is picked from the set: the smallest nonzero value gets at least
    ``min_significant`` significant digits, and more decimals (or digits) are added until
    two different values never read the same and no nonzero value reads ``0``. Equal
    values read the same. Missing and non-finite values are written as ``–``.

    Parameters
    ----------
    values
        The numbers (a table column, or values and their interval ends together).
    kind
        ``"number"``: fixed decimals with thousands separators (``0.043``, ``1,234.5``).
        ``"amount"``: money in compact form with k/M/B suffixes and as many significant
        digits as the set needs (three at least: ``761k``, ``760.8k``, ``1.14M``).
        ``"count"``: like ``"number"``, but whole numbers when every value is whole
        (``12``, ``1,210``; ``0.74`` extra deals keep their decimals).
        ``"percent"``: a share or probability (``0.123`` is ``12.3%``).
    signed
        Write ``+`` before positive values (differences).
    min_significant
        Significant digits of the smallest nonzero value.
    min_decimals
        Decimals at least (``"number"``, ``"count"``, ``"percent"``).

    Returns
    -------
    list of str
        One text per value, in order.

    Examples
    --------
    >>> format_numbers([0.021, 0.034, 0.0475])
    ['0.021', '0.034', '0.048']
    >>> format_numbers([760837.1, 760662.6, 1141063.0], kind="amount")
    ['760.8k', '760.7k', '1.141M']
    >>> format_numbers([0.1, 0.333, 0.5], kind="percent", min_significant=1)
    ['10%', '33%', '50%']
    """
    raw = _floats(values)
    finite = [abs(v) for v in raw if math.isfinite(v)]
    top = max(finite, default=0.0)
    vals = _snap(raw, top * 1e-12)
    if kind == "amount":
        labels: list[str] = []
        for digits in range(max(COMPACT_DIGITS, min_significant), MAX_DECIMALS + 4):
            labels = [format_amount(v, compact=True, digits=digits) for v in vals]
            if signed:
                labels = [f"+{t}" if v > 0 else t for v, t in zip(vals, labels, strict=True)]
            if _distinct(vals, labels):
                break
        return labels
    scale, suffix = (100.0, "%") if kind == "percent" else (1.0, "")
    shown = [v * scale for v in vals]
    if kind == "count" and all(v == round(v) for v in shown if math.isfinite(v)):
        start = 0
    else:
        start = _first_decimals(shown, min_significant)
    labels = []
    for decimals in range(max(start, min_decimals), MAX_DECIMALS + 1):
        labels = [_fixed(v, decimals, signed=signed) for v in shown]
        if _distinct(shown, labels):
            break
    return [t if t == MISSING else t + suffix for t in labels]


def format_estimates(
    mean: Iterable[float | None],
    lo: Iterable[float | None],
    hi: Iterable[float | None],
    *,
    kind: Kind = "number",
    signed: bool = False,
    min_significant: int = 2,
) -> list[str]:
    """Write estimates with their intervals, ``0.043 [0.021–0.070]``, at one precision.

    The values and both interval ends of every row are written together by
    :func:`format_numbers`, so no two different numbers in the set read the same.

    Parameters
    ----------
    mean, lo, hi
        The estimates and their interval ends (same length).
    kind, signed, min_significant
        As in :func:`format_numbers`.

    Returns
    -------
    list of str
        ``"<mean> [<lo>–<hi>]"`` per row.

    Examples
    --------
    >>> format_estimates([0.0412], [0.0213], [0.0702])
    ['0.041 [0.021–0.070]']
    """
    m, a, b = _floats(mean), _floats(lo), _floats(hi)
    if not len(m) == len(a) == len(b):
        raise ValueError("mean, lo and hi need the same length")
    text = format_numbers([*m, *a, *b], kind=kind, signed=signed, min_significant=min_significant)
    n = len(m)
    return [f"{text[i]} [{text[n + i]}{DASH}{text[2 * n + i]}]" for i in range(n)]


def rate_scale(values: Iterable[float | None]) -> tuple[float, str]:
    """A factor and its name that make tiny rates readable: per 1, per 1k or per 1M.

    A rate per unit of spend far below one (``0.0012`` new deals per 1 spent) reads
    better per thousand (``1.2`` per 1k spent).

    Parameters
    ----------
    values
        The rates (and their interval ends).

    Returns
    -------
    (float, str)
        ``(1.0, "1")``, ``(1000.0, "1k")`` or ``(1e6, "1M")``: multiply the rates by the
        factor and write "per <name> spent".

    Examples
    --------
    >>> rate_scale([0.0012, 0.0029])
    (1000.0, '1k')
    """
    finite = [abs(v) for v in _floats(values) if math.isfinite(v)]
    top = max(finite, default=0.0)
    for factor, name in ((1.0, "1"), (1e3, "1k")):
        if top == 0 or top * factor >= 0.01:
            return factor, name
    return 1e6, "1M"


def _step(values: Sequence[float]) -> float:
    """Smallest gap between different finite values (the magnitude for a single one)."""
    u = sorted({v for v in values if math.isfinite(v)})
    gaps = [b - a for a, b in pairwise(u) if b > a]
    if gaps:
        return min(gaps)
    return abs(u[0]) if u and u[0] else 1.0


def _exact(values: Sequence[float], digits: int, tol: float, *, significant: bool) -> bool:
    """Tell whether rounding to ``digits`` (significant digits or decimals) keeps every value."""
    for v in values:
        if not math.isfinite(v) or v == 0:
            continue
        r = float(f"{v:.{digits}g}") if significant else round(v, digits)
        if abs(r - v) > tol:
            return False
    return True


def _tick_scheme(values: Sequence[float], compact: bool) -> tuple[str, int, float]:
    """How to write a set of ticks: ``("compact", digits, tol)`` or ``("fixed", decimals, tol)``."""
    vals = [v for v in values if math.isfinite(v)]
    step = _step(vals)
    tol = step * 1e-6
    vals = _snap(vals, tol)
    if compact and max((abs(v) for v in vals), default=0.0) >= 1000:
        for digits in (COMPACT_DIGITS, COMPACT_DIGITS + 1):
            labels = [format_amount(v, compact=True, digits=digits) for v in vals]
            if _exact(vals, digits, tol, significant=True) and _distinct(vals, labels):
                return "compact", digits, tol
    for decimals in range(MAX_DECIMALS + 1):
        if _exact(vals, decimals, tol, significant=False) and _distinct(
            vals, [_fixed(v, decimals) for v in vals]
        ):
            return "fixed", decimals, tol
    return "fixed", MAX_DECIMALS, tol


def _tick_text(x: float, scheme: tuple[str, int, float]) -> str:
    """One tick written with a scheme of :func:`_tick_scheme`."""
    how, n, tol = scheme
    if not math.isfinite(x):
        return MISSING
    x = 0.0 if abs(x) <= tol else x
    return format_amount(x, compact=True, digits=n) if how == "compact" else _fixed(x, n)


def tick_labels(values: Iterable[float], *, compact: bool = True) -> list[str]:
    """Labels of an axis's ticks: never two alike, each exact, decimals from the tick step.

    Parameters
    ----------
    values
        Tick positions.
    compact
        Write amounts of a thousand and more with a k/M/B suffix when three or four
        significant digits write every tick exactly (``1.5k``, ``1.25M``); otherwise, and
        below a thousand, fixed decimals from the tick step with thousands separators
        (``0.0005``, ``123,458``).

    Returns
    -------
    list of str

    Examples
    --------
    >>> tick_labels([1000, 1002.5, 1005])
    ['1,000.0', '1,002.5', '1,005.0']
    >>> tick_labels([0, 500, 1000, 1500])
    ['0', '500', '1k', '1.5k']
    """
    vals = _floats(values)
    scheme = _tick_scheme(vals, compact)
    return [_tick_text(v, scheme) for v in vals]


@cache
def _formatter_class() -> type:
    """The matplotlib Formatter that writes :func:`tick_labels` (made once, on demand)."""
    from matplotlib.ticker import Formatter

    class TickLabels(Formatter):
        """Unique, exact tick labels with the precision of the tick step."""

        def __init__(self, compact: bool) -> None:
            self.compact = compact
            self.scheme: tuple[str, int, float] | None = None

        def set_locs(self, locs: Sequence[float]) -> None:
            """Pick the precision from the ticks about to be drawn."""
            super().set_locs(locs)
            self.scheme = _tick_scheme(_floats(locs), self.compact) if len(locs) else None

        def __call__(self, x: float, pos: int | None = None) -> str:
            """One tick (a lone value, before any ticks are set, like a table cell)."""
            if self.scheme is None:
                return format_amount(x, compact=True) if self.compact else format_numbers([x])[0]
            return _tick_text(float(x), self.scheme)

    return TickLabels


def amount_formatter() -> Formatter:
    """A matplotlib tick formatter for amounts: ``1.5k``, ``1.25M``, never two alike.

    The precision comes from the ticks drawn (:func:`tick_labels`): ticks 1,000 to 1,010
    read ``1,000``, ``1,002``, ... instead of five times ``1k``.

    Returns
    -------
    matplotlib.ticker.Formatter
        For ``axis.set_major_formatter`` or ``fig.colorbar(format=...)``.
    """
    return _formatter_class()(compact=True)


def number_formatter() -> Formatter:
    """A matplotlib tick formatter for plain numbers (rates, counts): decimals from the step.

    Returns
    -------
    matplotlib.ticker.Formatter
        Like :func:`amount_formatter`, without k/M/B suffixes.
    """
    return _formatter_class()(compact=False)


def figure_png(fig: Figure, *, dpi: int = 100) -> bytes:
    """Render a figure to PNG bytes, cropped to what it draws.

    Parameters
    ----------
    fig
        The figure.
    dpi
        Resolution in dots per inch.

    Returns
    -------
    bytes
        The PNG image.
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()
