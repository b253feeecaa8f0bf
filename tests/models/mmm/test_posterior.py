"""Posterior computations of the marketing-mix model: contributions, ROAS, response curves."""

from __future__ import annotations

import numpy as np
import pytensor
import pytest

from crmkit.errors import CrmkitError
from crmkit.models.mmm.model import MarketingMixModel, simulate_mmm


def test_unfitted_model_raises():
    with pytest.raises(CrmkitError, match="not fitted"):
        MarketingMixModel(["x1"]).roas()


def test_numpy_contributions_match_the_pymc_model(fitted):
    mmm, df, _ = fitted
    model = mmm.build_model(df)
    rvs = [model[n] for n in mmm.param_names]
    fn = pytensor.function(rvs, model["channel_contribution_scaled"], on_unused_input="ignore")
    p = mmm.draws(3)
    for s in range(3):
        expected = fn(*[p[n][s] for n in mmm.param_names]) * mmm.scales_["y"]
        got = mmm.channel_response(
            df[["x1", "x2"]].to_numpy(float), {k: v[s : s + 1] for k, v in p.items()}
        )
        np.testing.assert_allclose(got[0], expected, rtol=1e-6, atol=1e-6)


def test_marginal_roas_below_average_roas_under_saturation(fitted):
    mmm, _, _ = fitted
    r = mmm.roas()
    assert (r["mroas"] < r["roas"]).all()  # concave response: the next dollar earns less
    assert (r["roas_lo"] <= r["roas"]).all() and (r["roas"] <= r["roas_hi"]).all()


def test_response_curves_monotone_from_zero(fitted):
    mmm, _, _ = fitted
    rc = mmm.response_curves(n_points=10)
    for _, g in rc.groupby("channel"):
        assert g["mean"].iloc[0] == 0.0
        assert g["mean"].is_monotonic_increasing
        assert (g["lo"] <= g["mean"]).all() and (g["mean"] <= g["hi"]).all()


def test_contribution_summary_filters(fitted):
    mmm, df, _ = fitted
    s = mmm.contribution_summary(
        channels=["x2"], start=df["date"].iloc[10], end=df["date"].iloc[19]
    )
    assert len(s) == 10 and set(s["channel"]) == {"x2"}
    assert np.allclose(s["spend"], df["x2"].iloc[10:20])
    with pytest.raises(CrmkitError, match="unknown channel"):
        mmm.contribution_summary(channels=["tv"])


def test_custom_column_names():
    df, _ = simulate_mmm(12, seed=5)
    df = df.rename(columns={"date": "date_week", "y": "sales"})
    post = {
        "intercept": np.full((1, 4), 0.5),
        "decay": np.full((1, 4, 2), 0.3),
        "lam": np.full((1, 4, 2), 2.0),
        "beta": np.full((1, 4, 2), 0.1),
        "sigma": np.full((1, 4), 0.05),
    }
    mmm = MarketingMixModel(
        ["x1", "x2"], date_column="date_week", target="sales", trend=False, yearly_order=0
    ).set_posterior(df, post)
    c = mmm.contributions()
    assert c.dims == ("sample", "date", "channel") and c.sizes["date"] == 12
    s = mmm.contribution_summary()
    assert s["date"].nunique() == 12 and s["spend"].notna().all()
    assert mmm.fitted()["actual"].tolist() == df["sales"].tolist()
