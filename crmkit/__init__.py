"""crmkit: CRM data, segments and Bayesian revenue forecasts in Jupyter."""

from __future__ import annotations

import warnings

from crmkit.errors import ConflictError, CrmkitError, NotFoundError, RowError, ValidationError
from crmkit.store import Store

__version__ = "0.1.0"

# PyTensor warns on its first C compile when pip's numpy gives it no BLAS to link. crmkit's
# samplers run on numba (its kernels, nutpie), so the note is noise on every CLI run and in
# every notebook; the message is matched exactly, nothing else is hidden.
warnings.filterwarnings(
    "ignore", message="PyTensor could not link to a BLAS installation", category=UserWarning
)
# ArviZ 0.23 prints a notice about its coming refactor on the first import of each day (a
# stamp in the user's cache): on a fresh machine every first CLI run of the day wrote it to
# stderr, where a user error must be the only line. Matched exactly, as above.
warnings.filterwarnings(
    "ignore", message=r"\nArviZ is undergoing a major refactor", category=FutureWarning
)

__all__ = [
    "ConflictError",
    "CrmkitError",
    "NotFoundError",
    "RowError",
    "Store",
    "ValidationError",
    "__version__",
]
