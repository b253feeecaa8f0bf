"""crmkit: CRM data, segments and Bayesian revenue forecasts in Jupyter."""

from __future__ import annotations

from crmkit.errors import ConflictError, CrmkitError, NotFoundError, RowError, ValidationError
from crmkit.store import Store

__version__ = "0.1.0"

__all__ = [
    "ConflictError",
    "CrmkitError",
    "NotFoundError",
    "RowError",
    "Store",
    "ValidationError",
    "__version__",
]
