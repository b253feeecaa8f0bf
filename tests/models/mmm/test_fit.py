"""Fitting the marketing-mix model: parameter recovery with NUTS, MAP draws, diagnostics."""

from __future__ import annotations

import arviz as az
import numpy as np
import pytest

from crmkit.errors import CrmkitError
from crmkit.models.mmm.fit import nuts_diagnostics
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


def _idata(chain_means: list[float], n: int = 500, diverging: int = 0) -> az.InferenceData:
    """Independent normal draws per chain around the given means, with some divergences."""
    rng = np.random.default_rng(0)
    x = np.stack([rng.normal(m, 1.0, n) for m in chain_means])
    div = np.zeros(x.shape, dtype=bool)
    div.flat[:diverging] = True
    return az.from_dict(posterior={"a": x, "b": x[:, ::-1] * 2}, sample_stats={"diverging": div})


def test_nuts_diagnostics_pass_well_mixed_chains():
    d = nuts_diagnostics(_idata([0.0, 0.0]))
    assert d["ok"] and d["divergences"] == 0
    assert d["max_rhat"] < 1.01 and d["min_ess_bulk"] > 100


def test_nuts_diagnostics_fail_on_disagreeing_chains_divergences_or_few_draws():
    apart = nuts_diagnostics(_idata([0.0, 3.0]))
    assert not apart["ok"] and apart["max_rhat"] > 1.5
    div = nuts_diagnostics(_idata([0.0, 0.0], diverging=3))
    assert not div["ok"] and div["divergences"] == 3
    short = nuts_diagnostics(_idata([0.0], n=50))
    assert not short["ok"] and np.isnan(short["max_rhat"]) and short["min_ess_bulk"] < 100


def test_map_fit_gives_labelled_draws_of_one_chain():
    df, _ = simulate_mmm(40, seed=6)
    mmm = MarketingMixModel(["x1", "x2"], yearly_order=1, l_max=6, random_seed=2)
    mmm.fit(df, method="map", draws=50)
    post = mmm.idata_.posterior
    assert post.sizes["chain"] == 1 and post.sizes["draw"] == 50
    assert post["decay"].dims == ("chain", "draw", "channel")
    assert list(post["beta"]["channel"].values) == ["x1", "x2"]
    assert set(post.data_vars) == set(mmm.param_names)
    assert mmm.diagnostics_["method"] == "map" and "fit_seconds" in mmm.diagnostics_
    assert ((post["decay"] > 0) & (post["decay"] < 1)).all()
    with pytest.raises(CrmkitError, match="method must be"):
        mmm.fit(df, method="mle")
