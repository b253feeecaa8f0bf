"""Budget allocation on a short NUTS fit (``fitted``, tests/models/conftest.py)."""

from __future__ import annotations

import pytest

from crmkit.errors import CrmkitError, ValidationError
from crmkit.models.mmm.budget import optimize_budget


def test_optimize_budget_sanity(fitted):
    mmm, _, _ = fitted
    budget = 3000.0
    out = optimize_budget(mmm, budget, n_draws=200)
    alloc = out["allocation"]
    assert alloc["optimal"].sum() == pytest.approx(budget, rel=1e-4)
    assert out["optimal_draws"].mean() >= out["current_draws"].mean() - 1e-6
    assert out["gain"]["lo"] <= out["gain"]["mean"] <= out["gain"]["hi"]
    capped = optimize_budget(mmm, budget, bounds={"x1": (0.0, 500.0)}, n_draws=200)
    assert capped["allocation"].set_index("channel").loc["x1", "optimal"] <= 500.0 + 1e-6
    with pytest.raises(ValidationError):
        optimize_budget(mmm, -1.0)
    with pytest.raises(CrmkitError, match="cannot add up"):
        optimize_budget(mmm, budget, bounds={"x1": (0, 10), "x2": (0, 10)})
