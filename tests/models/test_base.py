"""The one model contract, checked on every model.

To add a model: append ``(factory, data fixture)`` to :data:`CASES`. The factory builds an
unfitted model with fixed settings (seed, small sampler); the fixture returns the data to
fit, or a :class:`tests.models.conftest.FitInput` (data plus ``fit`` keyword arguments such
as a fast ``method``). Optionally add a prediction to :data:`PREDICT` (default: the
posterior draws).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from crmkit.errors import CrmkitError, NotFittedError
from crmkit.models.base import ModelContract
from crmkit.models.clv.calendar import CalendarEffect
from crmkit.models.clv.models import BetaGeo, GammaGamma, ParetoNBD
from crmkit.models.inference.diagnostics import EXTRA_KEYS, KEYS
from crmkit.models.mmm.model import MarketingMixModel
from crmkit.models.persist import load_idata, save_idata
from crmkit.models.pipeline.model import PipelineModel
from crmkit.models.pipeline.new_business import NewBusinessModel
from tests.models.conftest import FitInput

CASES: list[tuple[Callable[[], ModelContract], str]] = [
    (lambda: BetaGeo(random_seed=1), "clv_fit_input"),
    (lambda: ParetoNBD(random_seed=2, sampler_config={"approx_draws": 200}), "clv_fit_input"),
    (lambda: GammaGamma(model_config={"p": {"dist": "HalfNormal", "sigma": 5.0}}), "clv_fit_input"),
    (lambda: CalendarEffect(half_lives=(1.0, 4.0), grid_size=12), "calendar_fit_input"),
    (
        lambda: MarketingMixModel(["x1", "x2"], yearly_order=1, l_max=6, random_seed=2),
        "mmm_fit_input",
    ),
    (lambda: PipelineModel(draws=60, chains=1, seed=3), "pipeline_fit_input"),
    (lambda: NewBusinessModel(draws=60, chains=1, seed=3), "pipeline_fit_input"),
]

#: A prediction of a fitted model, by class name (default: the posterior draws).
PREDICT: dict[str, Callable[[Any], np.ndarray]] = {
    "BetaGeo": lambda m: m.expected_purchases(4.0, n_draws=50).to_numpy(),
    "ParetoNBD": lambda m: m.probability_alive(n_draws=50).to_numpy(),
    "GammaGamma": lambda m: m.expected_spend(n_draws=50).to_numpy(),
    "CalendarEffect": lambda m: m.multiplier_draws(np.array([0.0, 1.0, 3.0]), 50, seed=2),
    "MarketingMixModel": lambda m: m.fitted(n_draws=50)[["mean", "lo", "hi"]].to_numpy(),
    "PipelineModel": lambda m: m.stage_probabilities(n_draws=50)[
        ["learned_mean", "learned_p10", "learned_p90"]
    ].to_numpy(),
    "NewBusinessModel": lambda m: m.arrival_means(2024 * 12 + 4, 3, 50, seed=2)[0],
}

IDS = [f"{f().__class__.__name__}-{i}" for i, (f, _) in enumerate(CASES)]


def _fit_input(request: pytest.FixtureRequest, fixture: str) -> tuple[Any, dict[str, Any]]:
    """The data and keyword arguments of ``fit`` given by a fixture."""
    value = request.getfixturevalue(fixture)
    if isinstance(value, FitInput):
        return value.data, dict(value.kwargs)
    return value, {}


def _floats(params: Any) -> list[float]:
    """Every number in ``params_`` (floats, or dicts of them by label, nested)."""
    if isinstance(params, dict):
        return [x for v in params.values() for x in _floats(v)]
    return [float(params)]


def _predict(model: Any) -> np.ndarray:
    """The model's prediction of :data:`PREDICT`, or its posterior draws."""
    fn = PREDICT.get(type(model).__name__)
    if fn is not None:
        return np.asarray(fn(model))
    post = model.idata_.posterior
    return np.concatenate([post[v].to_numpy().ravel() for v in sorted(post.data_vars)])


@pytest.fixture(scope="module", params=range(len(CASES)), ids=IDS)
def contract_fit(request: pytest.FixtureRequest) -> tuple[Callable[[], Any], Any, dict[str, Any]]:
    """(factory, fitted model, fit keyword arguments) of each case, fitted once."""
    factory, fixture = CASES[request.param]
    data, kwargs = _fit_input(request, fixture)
    model = factory()
    out = model.fit(data, **kwargs)
    assert out is model  # fit returns self
    return factory, model, kwargs


@pytest.mark.parametrize(("factory", "fixture"), CASES, ids=IDS)
def test_get_params_round_trips(factory, fixture):
    m = factory()
    params = m.get_params()
    assert type(m)(**params).get_params() == params
    # settings are stored unmodified: an unset config stays None, a tuple stays a tuple
    for name, value in params.items():
        assert getattr(m, name) is value


@pytest.mark.parametrize(("factory", "fixture"), CASES, ids=IDS)
def test_results_before_fit_raise_not_fitted(factory, fixture, tmp_path):
    m = factory()
    assert not m.is_fitted
    with pytest.raises(NotFittedError, match="not fitted"):
        m.check_fitted()
    with pytest.raises(NotFittedError):
        m.save(tmp_path / "m.nc")
    with pytest.raises(NotFittedError):
        _predict(m)


def test_fit_sets_the_contract_results(contract_fit):
    _, m, kwargs = contract_fit
    assert m.is_fitted and m.method_ == kwargs.get("method", m.method_)
    post = m.idata_.posterior
    assert len(post.data_vars) > 0
    for var in post.data_vars:
        assert post[var].dims[:2] == ("chain", "draw")
    assert "observed_data" in m.idata_.groups() and len(m.idata_.observed_data.data_vars) > 0
    d = m.diagnostics_
    assert set(KEYS) <= set(d), f"missing {set(KEYS) - set(d)}"
    assert set(d) - set(KEYS) <= set(EXTRA_KEYS), f"unknown keys {set(d) - set(KEYS)}"
    assert d["method"] == m.method_ and isinstance(d["ok"], bool)
    assert (d["message"] is None) == d["ok"]
    json.dumps(d)  # every value can be saved
    assert m.params_ and all(np.isfinite(v) for v in _floats(m.params_))


def test_save_load_round_trips(contract_fit, tmp_path):
    _, m, _ = contract_fit
    path = m.save(tmp_path / "m.nc")
    back = type(m).load(path)
    assert back.get_params() == m.get_params()
    assert back.method_ == m.method_
    assert back.params_ == m.params_
    assert back.diagnostics_ == m.diagnostics_
    np.testing.assert_array_equal(_predict(back), _predict(m))
    assert "observed_data" in back.idata_.groups()


def test_load_refuses_another_model(contract_fit, tmp_path):
    _, m, _ = contract_fit

    class Other(ModelContract):
        def __init__(self, scale: float = 1.0) -> None:
            self.scale = scale

    path = m.save(tmp_path / "m.nc")
    with pytest.raises(CrmkitError, match="holds"):
        Other.load(path)


def test_load_refuses_another_format_version(contract_fit, tmp_path):
    _, m, _ = contract_fit
    idata, frame, attrs = load_idata(m.save(tmp_path / "m.nc"))
    attrs["crmkit_format"] = str(int(attrs["crmkit_format"]) + 1)
    path = save_idata(tmp_path / "newer.nc", idata, frame, attrs)
    with pytest.raises(CrmkitError, match="format"):
        type(m).load(path)
