"""Exceptions crmkit raises for user mistakes; the CLI shows them as one line."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


class CrmkitError(Exception):
    """Base class of errors caused by input, shown to users without a traceback."""


@dataclass(frozen=True)
class RowError:
    """One problem with one value: where it is and why it is rejected."""

    row: int | None
    field: str | None
    reason: str
    value: object = None

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.field is not None:
            where.append(f"field {self.field!r}")
        prefix = ", ".join(where)
        return f"{prefix}: {self.reason}" if prefix else self.reason


class ValidationError(CrmkitError, ValueError):
    """Input rejected; ``errors`` lists every bad row, field and reason."""

    def __init__(self, entity: str, errors: list[RowError], *, shown: int = 10) -> None:
        self.entity = entity
        self.errors = list(errors)
        head = "; ".join(str(e) for e in self.errors[:shown])
        more = len(self.errors) - shown
        tail = f"; and {more} more" if more > 0 else ""
        super().__init__(f"{entity}: {len(self.errors)} problem(s): {head}{tail}")

    def report(self) -> pd.DataFrame:
        """Return the problems as a DataFrame with columns row, field, reason, value."""
        return pd.DataFrame(
            [
                {"row": e.row, "field": e.field, "reason": e.reason, "value": e.value}
                for e in self.errors
            ],
            columns=["row", "field", "reason", "value"],
        )


class ConflictError(CrmkitError):
    """A row changed in the store since it was read; the edit was not saved."""


class BusyError(CrmkitError):
    """The database stayed locked by another writer past the busy timeout; nothing was written.

    The same operation can be retried once the other writer has finished.
    """


class NotFoundError(CrmkitError, KeyError):
    """A row, snapshot or entity that was asked for does not exist."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


class CrmkitWarning(UserWarning):
    """A warning from crmkit about data or a fit; tests turn it into an error."""


class NotFittedError(CrmkitError, AttributeError):
    """A model was asked for results before ``fit`` (scikit-learn's ``NotFittedError``)."""
