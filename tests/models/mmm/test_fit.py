"""Fitting the marketing-mix model: parameter recovery with NUTS, MAP draws, diagnostics."""

from __future__ import annotations

import pytest

from crmkit.errors import CrmkitError
from crmkit.models.inference.diagnostics import KEYS, R_HAT_MAX
from crmkit.models.mmm.model import MarketingMixModel, simulate_mmm


def test_recovers_roas_and_decay(fitted):
    mmm, _, truth = fitted
    roas = mmm.roas(ci=0.98).set_index("channel")  # one data set: 98% should hold the truth
    for ch in ("x1", "x2"):
        assert roas.loc[ch, "roas_lo"] <= truth["roas"][ch] <= roas.loc[ch, "roas_hi"], ch
    decay = mmm.idata_.posterior["decay"].quantile([0.01, 0.99], ("chain", "draw")).values
    for j, d in enumerate(truth["decay"]):
        assert decay[0, j] <= d <= decay[1, j]
    # total media contribution close to the truth
    contrib = mmm.contributions(200).sum(("date", "channel"))
    assert (
        float(contrib.quantile(0.02))
        <= truth["contributions"].sum()
        <= float(contrib.quantile(0.98))
    )
    assert mmm.diagnostics_["divergences"] < 10


def test_nuts_diagnostics_in_the_one_schema(fitted):
    mmm, _, _ = fitted
    d = mmm.diagnostics_
    assert set(KEYS) <= set(d) and d["method"] == "nuts" and mmm.method_ == "nuts"
    assert d["sampler"] in ("nutpie", "pymc") and d["n_chains"] == 2 and d["n_draws"] == 300
    assert 1.0 <= d["r_hat_max"] < 1.1 and d["ess_bulk_min"] > 0 and d["ess_tail_min"] > 0
    # judged by the one thresholds
    assert d["ok"] == (
        d["r_hat_max"] <= R_HAT_MAX
        and min(d["ess_bulk_min"], d["ess_tail_min"]) >= 400
        and d["divergences"] == 0
    )
    assert (d["message"] is None) == d["ok"]
    # only the parameters are kept: no per-draw contributions
    assert set(mmm.idata_.posterior.data_vars) == set(mmm.param_names)


def test_map_fit_gives_labelled_draws_of_one_chain():
    df, _ = simulate_mmm(40, seed=6)
    mmm = MarketingMixModel(["x1", "x2"], yearly_order=1, l_max=6, random_seed=2)
    mmm.fit(df, method="map", draws=50)
    post = mmm.idata_.posterior
    assert post.sizes["chain"] == 1 and post.sizes["draw"] == 50
    assert post["decay"].dims == ("chain", "draw", "channel")
    assert list(post["beta"]["channel"].values) == ["x1", "x2"]
    assert set(post.data_vars) == set(mmm.param_names)
    assert mmm.diagnostics_["method"] == "map" and mmm.diagnostics_["seconds"] > 0
    assert ((post["decay"] > 0) & (post["decay"] < 1)).all()
    with pytest.raises(CrmkitError, match="method must be"):
        mmm.fit(df, method="mle")
