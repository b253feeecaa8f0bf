"""The company's settings kept in its database: reporting currency and fiscal calendar.

Settings live in the store's ``meta`` table under ``setting:<name>`` keys, so every program
that opens the database (the CLI, notebooks, the apps, a scheduled report) reads the same
values. :data:`SETTINGS` lists each one with its default and its check; ``crmkit config``
shows and sets them.

- ``reporting_currency``: the ISO 4217 code every amount is converted to before any sum,
  model, chart or report (default ``USD``).
- ``fiscal_year_start_month``: the month (1-12) the fiscal year starts in (default 1,
  the calendar year).
- ``fiscal_pattern``: ``"months"`` (calendar months, the default) or a 4-4-5, 4-5-4 or
  5-4-4 week pattern for each fiscal quarter.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from crmkit.errors import CrmkitError

__all__ = [
    "FISCAL_PATTERNS",
    "SETTINGS",
    "Setting",
    "all_settings",
    "check_setting",
    "get_setting",
    "set_setting",
]

#: Fiscal period patterns: calendar months, or weeks per period of each quarter.
FISCAL_PATTERNS = ("months", "4-4-5", "4-5-4", "5-4-4")
_PREFIX = "setting:"
_CURRENCY = re.compile(r"^[A-Z]{3}$")


def _currency(value: object) -> str:
    """An ISO 4217 code, upper-cased."""
    text = str(value).strip().upper()
    if not _CURRENCY.match(text):
        raise CrmkitError(f"reporting_currency: {str(value)[:40]!r} is not a 3-letter ISO code")
    return text


def _month(value: object) -> int:
    """A month number 1-12."""
    try:
        month = int(str(value).strip())
    except ValueError:
        month = 0
    if not 1 <= month <= 12:
        raise CrmkitError(f"fiscal_year_start_month: {str(value)[:40]!r} is not a month 1-12")
    return month


def _pattern(value: object) -> str:
    """One of :data:`FISCAL_PATTERNS`."""
    text = str(value).strip().lower()
    if text not in FISCAL_PATTERNS:
        raise CrmkitError(
            f"fiscal_pattern: {str(value)[:40]!r} is not one of {', '.join(FISCAL_PATTERNS)}"
        )
    return text


@dataclass(frozen=True)
class Setting:
    """One setting: its default, its check (returns the normalised value) and help."""

    default: object
    check: Callable[[object], object]
    help: str


#: Every setting crmkit knows.
SETTINGS: dict[str, Setting] = {
    "reporting_currency": Setting("USD", _currency, "currency of every sum, chart and report"),
    "fiscal_year_start_month": Setting(1, _month, "month (1-12) the fiscal year starts in"),
    "fiscal_pattern": Setting(
        "months", _pattern, "calendar months, or 4-4-5 / 4-5-4 / 5-4-4 weeks per quarter"
    ),
}


def _known(name: str) -> Setting:
    """The setting called ``name``, or a one-line error listing the known ones."""
    try:
        return SETTINGS[name]
    except KeyError:
        raise CrmkitError(f"unknown setting {name[:40]!r}; known: {', '.join(SETTINGS)}") from None


def check_setting(name: str, value: object) -> object:
    """Return ``value`` normalised by the check of setting ``name``.

    Raises
    ------
    CrmkitError
        An unknown setting or a value its check refuses.
    """
    return _known(name).check(value)


def get_setting(store: Any, name: str) -> object:
    """Return a setting's value (its default when never set).

    Parameters
    ----------
    store
        The database (a :class:`crmkit.store.Store`; this module imports nothing of the
        store's core, which reads settings while it validates).
    name
        One of :data:`SETTINGS`.

    Returns
    -------
    object
        The saved value, checked again (a value written by hand that no longer passes its
        check raises), or the default.
    """
    spec = _known(name)
    value = store.get_meta(_PREFIX + name)
    return spec.default if value is None else spec.check(value)


def set_setting(store: Any, name: str, value: object) -> object:
    """Check and save a setting; return the value saved.

    Parameters
    ----------
    store
        The database.
    name
        One of :data:`SETTINGS`.
    value
        The new value, in any spelling its check accepts (``"eur"`` for ``EUR``).

    Raises
    ------
    CrmkitError
        An unknown setting or a value its check refuses; nothing is saved.
    """
    clean = check_setting(name, value)
    store.set_meta(_PREFIX + name, clean)
    return clean


def all_settings(store: Any) -> dict[str, object]:
    """Return every setting's value, in :data:`SETTINGS` order."""
    return {name: get_setting(store, name) for name in SETTINGS}
