"""How charts, tables and reports write amounts, and how a figure becomes a PNG.

One amount formatter serves every picture and table: :func:`format_amount` writes whole
currency units with thousands separators (``1,234,567``) for tables and tooltips, and
with ``compact=True`` three significant digits with a k/M/B suffix (``950``, ``1.5k``,
``12k``, ``1.25M``) for axis ticks and labels, so that neighbouring ticks (1k, 1.5k, 2k)
never read the same. :func:`amount_formatter` puts the compact form on a matplotlib axis
or colour bar; :func:`figure_png` renders a figure for HTML reports and notebooks.

Nothing heavy is imported at module level (the app page that writes SVG stays light);
matplotlib is imported when a formatter is made.
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

#: Text of a missing or non-finite amount.
MISSING = "–"
#: Significant digits of a compact amount.
COMPACT_DIGITS = 3
_UNITS = ((1e9, "B"), (1e6, "M"), (1e3, "k"))


def format_amount(x: float | None, *, compact: bool = False) -> str:
    """Write an amount for people: ``1,234,567``, or compactly ``1.23M``.

    Parameters
    ----------
    x
        The amount (``None`` and non-finite values are written as ``–``).
    compact
        ``False`` (tables, tooltips): whole currency units with thousands separators.
        ``True`` (axis ticks, labels on bars and cells): three significant digits and a
        k (thousand), M (million) or B (billion) suffix, trailing zeros dropped:
        ``950``, ``1.5k``, ``12k``, ``12.3k``, ``1.25M``, ``2B``; ``2.5`` below one.

    Returns
    -------
    str
        The text.

    Examples
    --------
    >>> format_amount(1234567.4), format_amount(1500, compact=True)
    ('1,234,567', '1.5k')
    """
    if x is None or not math.isfinite(float(x)):
        return MISSING
    if not compact:
        return f"{round(float(x)):,}"
    r = float(f"{float(x):.{COMPACT_DIGITS}g}")  # round first: 999,999 is 1M, not 1000k
    if r == 0:
        return "0"
    for scale, suffix in _UNITS:
        if abs(r) >= scale:
            v = r / scale
            text = f"{v:,.0f}" if abs(v) >= 10**COMPACT_DIGITS else f"{v:.{COMPACT_DIGITS}g}"
            return text + suffix
    return f"{r:.{COMPACT_DIGITS}g}"


def amount_formatter() -> FuncFormatter:
    """A matplotlib tick formatter writing compact amounts (``1.5k``, ``1.25M``).

    Returns
    -------
    matplotlib.ticker.FuncFormatter
        For ``axis.set_major_formatter`` or ``fig.colorbar(format=...)``.
    """
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda x, _pos: format_amount(x, compact=True))


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
