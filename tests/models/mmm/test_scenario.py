"""Spend scenarios on a short NUTS fit (``fitted``, tests/models/conftest.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmkit.errors import ValidationError
from crmkit.models.mmm.scenario import baseline_plan, marketing_arrivals, scenario


def test_scenario_sanity(fitted):
    mmm, _, _ = fitted
    base = baseline_plan(mmm, 8)
    same = scenario(mmm, base, base, n_draws=100)
    assert np.allclose(same["difference"].values, 0.0)
    more = base.copy()
    more["x1"] *= 2
    sc = scenario(mmm, more, base, n_draws=100)
    assert (sc["difference"].values >= -1e-9).all()  # more spend never lowers the mean
    assert sc["total"]["difference_lo"].iloc[0] > 0
    none = base.assign(x1=0.0, x2=0.0)
    assert scenario(mmm, none, base, n_draws=100)["total"]["difference_hi"].iloc[0] < 0
    w = sc["weekly"]
    assert (w["plan_lo"] <= w["plan_mean"]).all() and (w["plan_mean"] <= w["plan_hi"]).all()
    bad = base.assign(x1=-1.0)
    with pytest.raises(ValidationError, match="x1"):
        scenario(mmm, bad)


def test_marketing_arrivals_sum_weeks_by_month(fitted):
    mmm, _, _ = fitted
    base = baseline_plan(mmm, 9)
    more = base.assign(x2=base["x2"] * 1.5)
    extra = marketing_arrivals(mmm, more, base, n_draws=50)
    diff = scenario(mmm, more, base, n_draws=50)["difference"]
    assert extra.dims == ("sample", "period")
    np.testing.assert_allclose(extra.sum("period").values, diff.sum("date").values)
    months = pd.DatetimeIndex(base["date"]).to_period("M").astype(str).unique().tolist()
    assert list(extra["period"].values) == sorted(months)
