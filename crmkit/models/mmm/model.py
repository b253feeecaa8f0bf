"""Bayesian marketing-mix model: weekly outcome against spend per channel.

The model (fitted on a scaled outcome ``y / y_scale`` and spend ``x_c / x_scale_c``)::

    y_t = intercept + trend * years_t + sum_k fourier_k * f_k(t)
          + sum_e event_e * E_et + sum_j control_j * Z_jt
          + sum_c beta_c * saturation_c(adstock_c(x_c)_t) + noise_t,   noise ~ Normal(0, sigma)

* carry-over: geometric adstock ``A_t = sum_{l < l_max} decay_c^l x_{t-l}``
  (:func:`geometric_adstock`, not normalised, so ``A`` is in spend units);
* diminishing returns: logistic ``(1 - e^{-lam A}) / (1 + e^{-lam A})``
  (:func:`logistic_saturation`) or Hill ``A^s / (A^s + K^s)`` (:func:`hill_saturation`);
* yearly seasonality: Fourier terms of the day of the year; events are 0/1 columns, controls
  any numeric columns (scaled by their largest absolute value);
* lift tests (``lift_tests``): each measured incremental outcome of one channel over a period
  (a holdout or geo test) is one more observation, ``measured ~ Normal(sum of the channel's
  contribution over the test's weeks, sd)`` -- the calibration PyMC-Marketing adds with
  ``MMM.add_lift_test_measurements`` (there as the difference of the saturation curve between
  two spend levels, here as the contribution over the test's weeks, which is what a
  holdout of the whole channel measures).

The outcome can be weekly revenue, new-deal value or the number of new deals
(:func:`mmm_frame` builds any of them from the store). Derived quantities -- channel
contributions, ROAS, marginal ROAS, response curves -- are computed in numpy from the
posterior draws by the same functions the model uses, so they carry the posterior spread.
Scenarios, budget allocation and the forecast entry point are in
:mod:`crmkit.models.mmm.scenario` and :mod:`crmkit.models.mmm.budget`.

The class follows the one model contract (:class:`crmkit.models.base.ModelContract`):
settings stored unmodified, ``fit`` returning ``self``, ``idata_`` / ``params_`` /
``method_`` / ``diagnostics_``, one save/load and one not-fitted error.

This module holds the model class (settings, data checks, the PyMC model, ``fit``, saving);
the rest lives beside it and its public names are importable from here:

* :mod:`crmkit.models.mmm.transforms` -- adstock, saturation and Fourier terms (numpy);
* :mod:`crmkit.models.mmm.data` -- :func:`mmm_frame` (from the store) and
  :func:`simulate_mmm` (from known truth);
* :mod:`crmkit.models.mmm.fit` -- NUTS / MAP / ADVI fitting and its diagnostics;
* :mod:`crmkit.models.mmm.posterior` -- contributions, ROAS, response curves, fitted values.
"""

from __future__ import annotations

import json
import time
from typing import Any, ClassVar, Self

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from crmkit.errors import CrmkitError, RowError, ValidationError
from crmkit.models.base import ModelContract
from crmkit.models.inference.diagnostics import diagnostics
from crmkit.models.inference.pymc_fit import fit_model
from crmkit.models.mmm.data import mmm_frame, simulate_mmm, weekly_row_errors
from crmkit.models.mmm.fit import PARAM_DIMS, label_dims
from crmkit.models.mmm.posterior import MarketingPosterior
from crmkit.models.mmm.transforms import (
    YEAR_DAYS,
    fourier_terms,
    geometric_adstock,
    hill_saturation,
    logistic_saturation,
)

__all__ = [
    "EFFECT_PRIORS",
    "METHODS",
    "SATURATIONS",
    "YEAR_DAYS",
    "MarketingMixModel",
    "fourier_terms",
    "geometric_adstock",
    "hill_saturation",
    "logistic_saturation",
    "mmm_frame",
    "simulate_mmm",
]

SATURATIONS = ("logistic", "hill")
EFFECT_PRIORS = ("beta", "roas")
METHODS = ("nuts", "map", "advi")


class MarketingMixModel(MarketingPosterior, ModelContract):
    """Bayesian marketing-mix model with adstock, saturation, trend and seasonality.

    Parameters
    ----------
    channels
        Spend columns, one per channel.
    date_column, target
        Week column (any weekday; one row per week) and outcome column.
    controls, events
        Numeric control columns and 0/1 event columns.
    saturation
        ``"logistic"`` or ``"hill"``.
    l_max
        Weeks of carry-over.
    yearly_order
        Fourier order of the yearly seasonality (0: none).
    trend
        Include a linear trend.
    model_config
        Prior overrides, ``{name: {"dist": "Beta", "alpha": 1, "beta": 3}}`` (see
        :attr:`default_model_config`); a value may be a list with one entry per channel.
    effect_prior
        ``"beta"``: a prior on each channel's largest weekly effect (``beta``, scaled);
        ``"roas"``: a prior on each channel's ROAS over the fit weeks (outcome per unit of
        spend, ``model_config["roas"]``), from which ``beta`` follows -- the way to bring in
        lift tests or campaign attribution (:func:`crmkit.models.mmm.campaigns.roas_prior`), and
        what
        identifies always-on channels whose spend hardly varies. Without a ``"roas"`` entry
        the ROAS prior is LogNormal around a tenth of the outcome per unit of total spend,
        sigma 1.5 (weak).
    sampler_config
        Sampler overrides (draws, tune, chains, target_accept, sampler="nutpie"|"pymc").
    lift_tests
        Measured incremental outcomes, one record each: ``channel``, ``start`` and ``end``
        (ISO days, inclusive; the weeks whose date falls inside), ``delta`` (the outcome the
        channel brought in those weeks, e.g. incremental deals from a holdout test) and
        ``sd`` (its standard error, > 0). Each adds the likelihood term ``delta ~
        Normal(contribution of the channel over those weeks, sd)``, which calibrates channels
        whose weekly spend hardly varies. A DataFrame converts with ``df.to_dict("records")``.
    random_seed
        Seed of sampling and of every posterior computation.
    progressbar
        Show the sampler's progress.

    """

    default_model_config: ClassVar[dict[str, dict[str, Any]]] = {
        "intercept": {"dist": "Normal", "mu": 0.0, "sigma": 1.0},
        "trend": {"dist": "Normal", "mu": 0.0, "sigma": 0.5},
        "fourier": {"dist": "Normal", "mu": 0.0, "sigma": 0.3},
        "event": {"dist": "Normal", "mu": 0.0, "sigma": 0.5},
        "control": {"dist": "Normal", "mu": 0.0, "sigma": 0.5},
        "decay": {"dist": "Beta", "alpha": 1.0, "beta": 3.0},
        "beta": {"dist": "HalfNormal", "sigma": 1.0},
        "lam": {"dist": "Gamma", "alpha": 3.0, "beta": 1.0},
        "half": {"dist": "Gamma", "alpha": 3.0, "beta": 3.0},
        "slope": {"dist": "Gamma", "alpha": 6.0, "beta": 5.0},
        "sigma": {"dist": "HalfNormal", "sigma": 0.3},
        "roas": {"dist": "LogNormal", "mu": None, "sigma": 1.5},
    }
    default_sampler_config: ClassVar[dict[str, Any]] = {
        "draws": 1000,
        "tune": 1000,
        "chains": 2,
        "target_accept": 0.9,
        "sampler": None,
        "advi_iterations": 20000,
    }

    def __init__(
        self,
        channels: list[str],
        *,
        date_column: str = "date",
        target: str = "y",
        controls: list[str] | None = None,
        events: list[str] | None = None,
        saturation: str = "logistic",
        l_max: int = 12,
        yearly_order: int = 2,
        trend: bool = True,
        effect_prior: str = "beta",
        model_config: dict[str, dict[str, Any]] | None = None,
        sampler_config: dict[str, Any] | None = None,
        lift_tests: list[dict[str, Any]] | None = None,
        random_seed: int | None = 0,
        progressbar: bool = False,
    ) -> None:
        self.channels = channels
        self.date_column = date_column
        self.target = target
        self.controls = controls
        self.events = events
        self.saturation = saturation
        self.l_max = l_max
        self.yearly_order = yearly_order
        self.trend = trend
        self.effect_prior = effect_prior
        self.model_config = model_config
        self.sampler_config = sampler_config
        self.lift_tests = lift_tests
        self.random_seed = random_seed
        self.progressbar = progressbar

    # -- settings -----------------------------------------------------------------------
    @property
    def priors(self) -> dict[str, dict[str, Any]]:
        """Priors in effect: the defaults updated by ``model_config``."""
        out = {k: dict(v) for k, v in self.default_model_config.items()}
        for k, v in (self.model_config or {}).items():
            if k not in out:
                raise CrmkitError(f"unknown prior {k!r} in model_config; use {sorted(out)}")
            out[k] = dict(v)
        return out

    # -- data ----------------------------------------------------------------------------
    def _validate(self, df: pd.DataFrame, *, need_target: bool = True) -> list[RowError]:
        """Every problem of the input frame: missing columns, bad values, irregular weeks."""
        cols = [self.date_column, *self.channels, *(self.controls or []), *(self.events or [])]
        if need_target:
            cols.append(self.target)
        errors = [RowError(None, c, "missing column") for c in cols if c not in df.columns]
        if errors:
            return errors
        if self.saturation not in SATURATIONS:
            errors.append(
                RowError(None, "saturation", f"use one of {SATURATIONS}", self.saturation)
            )
        if self.effect_prior not in EFFECT_PRIORS:
            errors.append(
                RowError(None, "effect_prior", f"use one of {EFFECT_PRIORS}", self.effect_prior)
            )
        numeric = [*self.channels, *(self.controls or []), *(self.events or [])]
        numeric += [self.target] if need_target else []
        errors += weekly_row_errors(df, self.date_column, numeric, self.channels)
        if need_target and not errors:
            errors += self._lift_test_errors(df)
        return errors

    def _lift_test_errors(self, df: pd.DataFrame) -> list[RowError]:
        """Problems of the lift tests (row = the test's number, from 1): channel, days, numbers."""
        errors: list[RowError] = []
        dates = pd.to_datetime(df[self.date_column])
        for i, test in enumerate(self.lift_tests or []):
            if not isinstance(test, dict):
                errors.append(RowError(i + 1, "lift_tests", "must be a record (dict)", test))
                continue
            missing = [k for k in ("channel", "start", "end", "delta", "sd") if k not in test]
            if missing:
                errors.append(RowError(i + 1, "lift_tests", f"lacks {missing}"))
                continue
            if test["channel"] not in self.channels:
                errors.append(
                    RowError(
                        i + 1,
                        "lift_tests.channel",
                        f"{str(test['channel'])[:40]!r} is not one of {self.channels}",
                    )
                )
            try:
                start, end = pd.Timestamp(test["start"]), pd.Timestamp(test["end"])
            except (TypeError, ValueError):
                errors.append(
                    RowError(i + 1, "lift_tests.start", f"bad day {str(test['start'])[:40]!r} or "
                             f"{str(test['end'])[:40]!r}")
                )  # fmt: skip
            else:
                if end < start:
                    errors.append(
                        RowError(i + 1, "lift_tests.end", f"{end.date()} is before {start.date()}")
                    )
                elif not ((dates >= start) & (dates <= end)).any():
                    errors.append(
                        RowError(
                            i + 1,
                            "lift_tests.start",
                            f"no week of the data in {start.date()}..{end.date()}",
                        )
                    )
            for key, low in (("delta", None), ("sd", 0.0)):
                try:
                    value = float(test[key])
                except (TypeError, ValueError):
                    value = float("nan")
                if not np.isfinite(value) or (low is not None and value <= low):
                    need = "a finite number" + (" > 0" if low is not None else "")
                    errors.append(
                        RowError(
                            i + 1,
                            f"lift_tests.{key}",
                            f"must be {need}, not {str(test[key])[:40]!r}",
                        )
                    )
        return errors

    def _design(self, df: pd.DataFrame) -> dict[str, np.ndarray]:
        """Scaled design arrays of a validated frame (scales from the fit data)."""
        dates = pd.DatetimeIndex(pd.to_datetime(df[self.date_column])).rename(None)
        x = df[self.channels].to_numpy(float) / self.scales_["x"]
        years = (dates - self.scales_["t0"]).days.to_numpy(float) / YEAR_DAYS
        ctrl = (
            df[self.controls].to_numpy(float) / self.scales_["controls"]
            if self.controls
            else np.zeros((len(df), 0))
        )
        ev = df[self.events].to_numpy(float) if self.events else np.zeros((len(df), 0))
        return {
            "x": x,
            "years": years,
            "fourier": fourier_terms(dates, self.yearly_order),
            "controls": ctrl,
            "events": ev,
            "dates": dates,
        }

    def _set_scales(self, df: pd.DataFrame) -> None:
        """Scales of the outcome, spend and controls, and the time origin."""
        y = df[self.target].to_numpy(float)
        x_max = df[self.channels].to_numpy(float).max(axis=0)
        c_max = (
            np.abs(df[self.controls].to_numpy(float)).max(axis=0) if self.controls else np.zeros(0)
        )
        self.scales_ = {
            "y": float(np.abs(y).max()) or 1.0,
            "x": np.where(x_max > 0, x_max, 1.0),
            "controls": np.where(c_max > 0, c_max, 1.0),
            "t0": pd.Timestamp(pd.to_datetime(df[self.date_column]).iloc[0]),
        }

    # -- model ---------------------------------------------------------------------------
    def _prior(self, pm, name: str, **kw):
        """Create a PyMC random variable from the prior settings."""
        spec = dict(self.priors[name])
        return getattr(pm, spec.pop("dist"))(name, **spec, **kw)

    def build_model(self, df: pd.DataFrame):
        """Return the PyMC model for a (validated) frame; sets the scales from it.

        Parameters
        ----------
        df
            One row per week (see :meth:`fit`).

        Returns
        -------
        pymc.Model
            With the deterministic ``channel_contribution_scaled`` (date, channel).
        """
        return self._build(df, contributions=True)

    def _build(self, df: pd.DataFrame, *, contributions: bool):
        """The PyMC model; ``contributions=False`` leaves out the per-week contributions."""
        import pymc as pm
        import pytensor.tensor as pt

        errors = self._validate(df)
        if errors:
            raise ValidationError("marketing-mix data", errors)
        df = df.reset_index(drop=True)
        self._set_scales(df)
        d = self._design(df)
        y = df[self.target].to_numpy(float) / self.scales_["y"]
        n_t = len(df)
        lags = np.stack(
            [np.pad(d["x"], [(lag, 0), (0, 0)])[:n_t] for lag in range(self.l_max)], axis=-1
        )  # (time, channel, lag)
        coords = {
            "date": d["dates"],
            "channel": list(self.channels),
            "fourier_mode": [
                f"{f}{k}" for k in range(1, self.yearly_order + 1) for f in ("sin", "cos")
            ],
            "control_name": list(self.controls or []),
            "event_name": list(self.events or []),
        }
        with pm.Model(coords=coords) as model:
            mu = self._prior(pm, "intercept") + pt.zeros(n_t)
            if self.trend:
                mu = mu + self._prior(pm, "trend") * d["years"]
            if self.yearly_order:
                mu = mu + pt.dot(d["fourier"], self._prior(pm, "fourier", dims="fourier_mode"))
            if self.controls:
                mu = mu + pt.dot(d["controls"], self._prior(pm, "control", dims="control_name"))
            if self.events:
                mu = mu + pt.dot(d["events"], self._prior(pm, "event", dims="event_name"))
            decay = self._prior(pm, "decay", dims="channel")
            weights = decay[:, None] ** np.arange(self.l_max)[None, :]
            adstock = (lags * weights[None]).sum(axis=-1)  # (time, channel)
            if self.saturation == "logistic":
                sat = pt.tanh(self._prior(pm, "lam", dims="channel") * adstock / 2.0)
            else:
                half = self._prior(pm, "half", dims="channel")
                slope = self._prior(pm, "slope", dims="channel")
                a_s = pt.maximum(adstock, 1e-12) ** slope
                sat = a_s / (a_s + half**slope)
            if self.effect_prior == "roas":
                # beta such that the channel's contribution over the fit weeks is roas * spend
                spend = df[self.channels].to_numpy(float).sum(axis=0) / self.scales_["y"]
                beta = pm.Deterministic(
                    "beta",
                    self._roas_prior(pm, df) * spend / pt.maximum(sat.sum(axis=0), 1e-9),
                    dims="channel",
                )
            else:
                beta = self._prior(pm, "beta", dims="channel")
            contrib = sat * beta
            if self.lift_tests:
                self._add_lift_tests(pm, pt, contrib, d["dates"])
            if contributions:
                contrib = pm.Deterministic(
                    "channel_contribution_scaled", contrib, dims=("date", "channel")
                )
            mu = mu + contrib.sum(axis=1)
            pm.Normal("y", mu=mu, sigma=self._prior(pm, "sigma"), observed=y, dims="date")
        return model

    def _add_lift_tests(self, pm, pt, contrib, dates: pd.DatetimeIndex) -> None:
        """Lift-test likelihood: each measured delta ~ Normal(contribution in its weeks, sd)."""
        tests = list(self.lift_tests or [])
        mask = np.zeros((len(tests), len(dates), len(self.channels)))
        for i, test in enumerate(tests):
            inside = (dates >= pd.Timestamp(test["start"])) & (dates <= pd.Timestamp(test["end"]))
            mask[i, np.asarray(inside), self.channels.index(test["channel"])] = 1.0
        y_scale = self.scales_["y"]
        pm.Normal(
            "lift_test",
            mu=(pt.as_tensor_variable(mask) * contrib[None]).sum(axis=(1, 2)),
            sigma=np.array([float(t["sd"]) for t in tests]) / y_scale,
            observed=np.array([float(t["delta"]) for t in tests]) / y_scale,
        )

    def _roas_prior(self, pm, df: pd.DataFrame):
        """The ROAS random variable; a weak data-based centre when none is configured."""
        spec = dict(self.priors["roas"])
        if spec.get("mu") is None:
            y = float(df[self.target].to_numpy(float).sum())
            x = float(df[self.channels].to_numpy(float).sum())
            spec["mu"] = float(np.log(max(0.1 * y / max(x, 1e-12), 1e-12)))
        return getattr(pm, spec.pop("dist"))("roas", **spec, dims="channel")

    @property
    def param_names(self) -> list[str]:
        """Free parameters of the model as configured."""
        names = ["intercept"] + (["trend"] if self.trend else [])
        names += ["fourier"] if self.yearly_order else []
        names += ["control"] if self.controls else []
        names += ["event"] if self.events else []
        names += ["decay"] + (["lam"] if self.saturation == "logistic" else ["half", "slope"])
        names += ["roas"] if self.effect_prior == "roas" else []
        return [*names, "beta", "sigma"]

    @property
    def sampler_settings(self) -> dict[str, Any]:
        """Sampler settings in effect: the defaults updated by ``sampler_config``."""
        return {**self.default_sampler_config, **(self.sampler_config or {})}

    def _coords(self) -> dict[str, list[str]]:
        """Labels of the parameters' dimensions (see :data:`crmkit.models.mmm.fit.PARAM_DIMS`)."""
        return {
            "channel": list(self.channels),
            "fourier_mode": [
                f"{f}{k}" for k in range(1, self.yearly_order + 1) for f in ("sin", "cos")
            ],
            "control_name": list(self.controls or []),
            "event_name": list(self.events or []),
        }

    def fit(self, data: pd.DataFrame, method: str = "nuts", **kwargs: Any) -> Self:
        """Fit the model.

        Parameters
        ----------
        data
            One row per week: the date, channel spend, target, controls and events.
        method
            ``"nuts"`` (nutpie when importable, else ``pm.sample``), ``"map"`` (mode plus a
            Laplace approximation) or ``"advi"``.
        **kwargs
            Sampler overrides for this fit (``draws``, ``tune``, ``chains``, ...).

        Returns
        -------
        Self
            The fitted model, with ``idata_`` (``posterior``, ``observed_data``,
            ``log_likelihood`` and ``posterior_predictive`` of the weekly outcome ``y``),
            ``params_``, ``method_``, ``diagnostics_`` (the one schema of
            :mod:`crmkit.models.inference.diagnostics`), ``scales_``, ``data_`` and ``design_``.

        """
        if method not in METHODS:
            raise CrmkitError(f"method must be one of {METHODS}, not {method!r}")
        settings = {**self.sampler_settings, **kwargs}
        started = time.perf_counter()
        # no per-draw (date, channel) contributions: only the parameters are sampled and kept
        model = self._build(data, contributions=False)
        nuts = method == "nuts"
        idata, diag = fit_model(
            model,
            self.param_names,
            method,
            draws=settings["draws"],
            tune=settings["tune"],
            # the approximations draw ``draws`` in one chain
            chains=settings["chains"] if nuts else 1,
            seed=self.random_seed if nuts else (self.random_seed or 0),
            progress=self.progressbar if nuts else False,
            advi_iterations=settings["advi_iterations"],
            cores=min(settings["chains"], 2),
            target_accept=settings["target_accept"],
            sampler=settings.get("sampler"),
        )
        self._set_fit(data, label_dims(idata, self._coords()), method, diag)
        diag["seconds"] = round(time.perf_counter() - started, 2)
        return self

    def set_posterior(self, df: pd.DataFrame, posterior: dict[str, np.ndarray]) -> Self:
        """Use given draws instead of fitting (for tests, or draws saved elsewhere).

        Parameters
        ----------
        df
            The weekly data the draws belong to (sets the scales).
        posterior
            ``{name: array (chain, draw, ...)}`` for every name in :attr:`param_names`, on
            the model's scaled units.

        Returns
        -------
        Self
            The model, fitted with method ``"given"``.

        """
        errors = self._validate(df)
        if errors:
            raise ValidationError("marketing-mix data", errors)
        missing = sorted(set(self.param_names) - set(posterior))
        if missing:
            raise CrmkitError(f"posterior lacks {missing}")
        self._set_scales(df.reset_index(drop=True))
        idata = az.from_dict(
            posterior={k: np.asarray(posterior[k]) for k in self.param_names},
            coords=self._coords(),
            dims={k: v for k, v in PARAM_DIMS.items() if k in self.param_names},
        )
        self._set_fit(df, idata, "given", diagnostics("given", ok=True))
        return self

    def _set_fit(
        self, df: pd.DataFrame, idata: az.InferenceData, method: str, diag: dict[str, Any]
    ) -> None:
        """Keep a fit: data, design, draws with the observed outcome and its log-likelihood."""
        self.data_ = df.reset_index(drop=True).copy()
        self.design_ = self._design(self.data_)
        self.idata_ = idata
        self.method_ = method
        self.diagnostics_ = diag
        post = idata.posterior
        weeks = {"date": self.design_["dates"]}
        y = self.data_[self.target].to_numpy(float)
        loglik = self.pointwise_log_likelihood().reshape(
            post.sizes["chain"], post.sizes["draw"], len(y)
        )
        chain_draw = {"chain": post["chain"].values, "draw": post["draw"].values}
        rep = self.replicated_outcome().reshape(loglik.shape)
        idata.add_groups(
            observed_data=xr.Dataset({"y": ("date", y)}, coords=weeks),
            log_likelihood=xr.Dataset(
                {"y": (("chain", "draw", "date"), loglik)}, coords={**chain_draw, **weeks}
            ),
            posterior_predictive=xr.Dataset(
                {"y": (("chain", "draw", "date"), rep)}, coords={**chain_draw, **weeks}
            ),
        )
        self.params_ = self._point_estimates()

    def _point_estimates(self) -> dict[str, float]:
        """Posterior means by name; a vector parameter by ``name[label]`` (``decay[tv]``)."""
        post = self.idata_.posterior
        out: dict[str, float] = {}
        for name in self.param_names:
            mean = post[name].mean(("chain", "draw"))
            if mean.ndim == 0:
                out[name] = float(mean)
            else:
                labels = mean[mean.dims[0]].values
                out.update(
                    {f"{name}[{k}]": float(v) for k, v in zip(labels, mean.values, strict=True)}
                )
        return out

    # -- persistence (the contract's save / load; these keep the weekly data and scales) ----
    def _fit_frame(self) -> pd.DataFrame:
        """The weekly data of the fit, dates as datetimes."""
        data = self.data_.copy()
        data[self.date_column] = pd.to_datetime(data[self.date_column])
        return data

    def _save_attrs(self) -> dict[str, str]:
        """The contract's attributes plus the scales predictions need."""
        scales = {
            "y": self.scales_["y"],
            "x": np.asarray(self.scales_["x"], dtype=float).tolist(),
            "controls": np.asarray(self.scales_["controls"], dtype=float).tolist(),
            "t0": self.scales_["t0"].isoformat(),
        }
        dates = pd.to_datetime(self.data_[self.date_column])
        return {
            **super()._save_attrs(),
            "scales": json.dumps(scales),
            "date_dtype": str(dates.dtype),
        }

    def _restore(
        self, frame: pd.DataFrame, attrs: dict[str, str], tables: dict[str, pd.DataFrame]
    ) -> None:
        """Rebuild the weekly data, its scales and design after :meth:`load`."""
        # netCDF reads datetimes back in ns: the dates' own resolution, as fitted
        frame[self.date_column] = frame[self.date_column].astype(attrs["date_dtype"])
        self.data_ = frame
        scales = json.loads(attrs["scales"])
        self.scales_ = {
            "y": float(scales["y"]),
            "x": np.asarray(scales["x"], dtype=float),
            "controls": np.asarray(scales["controls"], dtype=float),
            "t0": pd.Timestamp(scales["t0"]),
        }
        self.design_ = self._design(self.data_)
