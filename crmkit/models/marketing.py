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
  any numeric columns (scaled by their largest absolute value).

The outcome can be weekly revenue, new-deal value or the number of new deals
(:func:`mmm_frame` builds any of them from the store). Derived quantities -- channel
contributions, ROAS, marginal ROAS, response curves -- are computed in numpy from the
posterior draws by the same functions the model uses, so they carry the posterior spread.
Scenarios, budget allocation and the forecast entry point are in
:mod:`crmkit.models.marketing_plan`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, ClassVar, Self

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from crmkit.errors import CrmkitError, RowError, ValidationError

SATURATIONS = ("logistic", "hill")
EFFECT_PRIORS = ("beta", "roas")
METHODS = ("nuts", "map", "advi")
#: Days per year used for trend and Fourier terms.
YEAR_DAYS = 365.25


# ---------------------------------------------------------------------- transforms
def geometric_adstock(x: np.ndarray, decay: np.ndarray | float, l_max: int = 12) -> np.ndarray:
    """Geometric carry-over along the time axis (the first axis of ``x``).

    ``A_t = sum_{l=0}^{l_max-1} decay^l * x_{t-l}``: this week's spend counts fully, last
    week's ``decay`` times, and so on; truncated after ``l_max`` weeks.

    Parameters
    ----------
    x
        Spend, shape ``(time,)`` or ``(time, channel)``.
    decay
        Carry-over rate in [0, 1): a scalar, one per channel ``(channel,)`` or posterior
        draws ``(sample, channel)``.
    l_max
        Number of weeks an effect lasts at most.

    Returns
    -------
    numpy.ndarray
        Adstocked spend: shape of ``x`` for a scalar decay, else
        ``decay.shape[:-1] + (time, channel)``.

    """
    x = np.asarray(x, dtype=float)
    x2 = x[:, None] if x.ndim == 1 else x
    n_t = x2.shape[0]
    lags = np.stack([np.pad(x2, [(lag, 0), (0, 0)])[:n_t] for lag in range(l_max)], axis=-1)
    d = np.asarray(decay, dtype=float)
    weights = d[..., None] ** np.arange(l_max)
    if d.ndim == 0:
        out = lags @ weights
        return out[:, 0] if x.ndim == 1 else out
    return np.einsum("tcl,...cl->...tc", lags, weights)


def logistic_saturation(a: np.ndarray, lam: np.ndarray | float) -> np.ndarray:
    """Logistic saturation ``(1 - exp(-lam a)) / (1 + exp(-lam a))``: 0 at 0, tends to 1.

    Parameters
    ----------
    a
        Adstocked spend (non-negative).
    lam
        Steepness: the curve reaches ``tanh(lam * a / 2)``.

    Returns
    -------
    numpy.ndarray

    """
    z = np.asarray(lam, dtype=float) * np.asarray(a, dtype=float)
    return np.tanh(z / 2.0)


def hill_saturation(
    a: np.ndarray, half: np.ndarray | float, slope: np.ndarray | float
) -> np.ndarray:
    """Hill curve ``a^slope / (a^slope + half^slope)``: 0 at 0, 1/2 at ``half``, tends to 1.

    Parameters
    ----------
    a
        Adstocked spend (non-negative).
    half
        Half-saturation point, in the units of ``a``.
    slope
        Steepness (1: Michaelis-Menten).

    Returns
    -------
    numpy.ndarray

    """
    a = np.maximum(np.asarray(a, dtype=float), 0.0)
    half = np.asarray(half, dtype=float)
    slope = np.asarray(slope, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(a > 0, (half / np.where(a > 0, a, 1.0)) ** slope, np.inf)
    return 1.0 / (1.0 + r)


def fourier_terms(dates: pd.DatetimeIndex | pd.Series, order: int) -> np.ndarray:
    """Yearly Fourier features ``sin, cos(2 pi k doy / 365.25)``, k = 1..order: (n, 2 order)."""
    d = pd.DatetimeIndex(dates)
    doy = d.day_of_year.to_numpy(float)
    cols = []
    for k in range(1, order + 1):
        ang = 2 * np.pi * k * doy / YEAR_DAYS
        cols += [np.sin(ang), np.cos(ang)]
    return np.stack(cols, axis=1) if cols else np.zeros((len(d), 0))


# ---------------------------------------------------------------------- data from the store
def mmm_frame(
    channel_spend: pd.DataFrame,
    deals: pd.DataFrame | None = None,
    orders: pd.DataFrame | None = None,
    *,
    target: str = "new_deals",
) -> pd.DataFrame:
    """Weekly frame for the marketing-mix model: spend per channel and an outcome.

    Parameters
    ----------
    channel_spend
        The store's ``channel_spend`` (channel, week_start, spend).
    deals
        The store's ``deals`` (for ``target`` ``"new_deals"`` or ``"new_deal_value"``).
    orders
        The store's ``orders`` (for ``target="revenue"``).
    target
        ``"new_deals"`` (deals created per week), ``"new_deal_value"`` (their listed amount)
        or ``"revenue"`` (order amount per week).

    Returns
    -------
    pandas.DataFrame
        ``date`` (Monday of the week), one column per channel, and ``y``; the weeks of
        ``channel_spend`` only.

    """
    spend = channel_spend.assign(week_start=pd.to_datetime(channel_spend["week_start"]))
    wide = spend.pivot_table(
        index="week_start", columns="channel", values="spend", aggfunc="sum", fill_value=0.0
    )
    wide.columns = [str(c) for c in wide.columns]
    weeks = wide.index
    if target in ("new_deals", "new_deal_value"):
        if deals is None:
            raise CrmkitError(f"target {target!r} needs the deals table")
        when = pd.to_datetime(deals["created_at"]).dt.normalize()
        wk = when - pd.to_timedelta(when.dt.day_of_week, unit="D")
        val = (
            pd.Series(1.0, index=deals.index)
            if target == "new_deals"
            else deals["amount"].astype(float).fillna(0.0)
        )
    elif target == "revenue":
        if orders is None:
            raise CrmkitError("target 'revenue' needs the orders table")
        when = pd.to_datetime(orders["ordered_at"]).dt.normalize()
        wk = when - pd.to_timedelta(when.dt.day_of_week, unit="D")
        val = orders["amount"].astype(float)
    else:
        raise CrmkitError(f"target must be new_deals, new_deal_value or revenue, not {target!r}")
    y = val.groupby(wk.to_numpy()).sum().reindex(weeks, fill_value=0.0)
    out = wide.reset_index(names="date")
    out["y"] = y.to_numpy(float)
    return out


# ---------------------------------------------------------------------- the model
class MarketingMixModel:
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
        lift tests or campaign attribution (:func:`crmkit.campaigns.roas_prior`), and what
        identifies always-on channels whose spend hardly varies. Without a ``"roas"`` entry
        the ROAS prior is LogNormal around a tenth of the outcome per unit of total spend,
        sigma 1.5 (weak).
    sampler_config
        Sampler overrides (draws, tune, chains, target_accept, sampler="nutpie"|"pymc").
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
        if len(df) < 2:
            errors.append(RowError(None, None, "need at least two weeks of data", len(df)))
        dates = pd.to_datetime(df[self.date_column], errors="coerce")
        for i in np.flatnonzero(dates.isna().to_numpy()):
            errors.append(
                RowError(int(i) + 1, self.date_column, "not a date", df[self.date_column].iloc[i])
            )
        gaps = dates.diff().dt.days.to_numpy()[1:]
        for i in np.flatnonzero(np.isfinite(gaps) & (gaps != 7)):
            errors.append(
                RowError(
                    int(i) + 2,
                    self.date_column,
                    "weeks must be consecutive (7 days apart, sorted)",
                    df[self.date_column].iloc[i + 1],
                )
            )
        numeric = [*self.channels, *(self.controls or []), *(self.events or [])]
        numeric += [self.target] if need_target else []
        for c in numeric:
            v = pd.to_numeric(df[c], errors="coerce").to_numpy(float)
            for i in np.flatnonzero(~np.isfinite(v)):
                errors.append(RowError(int(i) + 1, c, "missing or not a number", df[c].iloc[i]))
            if c in self.channels:
                for i in np.flatnonzero(v < 0):
                    errors.append(RowError(int(i) + 1, c, "spend must be >= 0", v[i]))
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
        """Return the PyMC model for a (validated) frame; sets the scales from it."""
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
            contrib = pm.Deterministic(
                "channel_contribution_scaled", sat * beta, dims=("date", "channel")
            )
            mu = mu + contrib.sum(axis=1)
            pm.Normal("y", mu=mu, sigma=self._prior(pm, "sigma"), observed=y, dims="date")
        return model

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

    def fit(self, df: pd.DataFrame, method: str = "nuts", **kwargs: Any) -> Self:
        """Fit the model.

        Parameters
        ----------
        df
            One row per week: the date, channel spend, target, controls and events.
        method
            ``"nuts"`` (nutpie when importable, else ``pm.sample``), ``"map"`` (mode plus a
            Laplace approximation) or ``"advi"``.
        **kwargs
            Sampler overrides for this fit (``draws``, ``tune``, ``chains``, ...).

        Returns
        -------
        Self
            The fitted model, with ``idata_``, ``diagnostics_``, ``scales_``, ``data_``.

        """
        if method not in METHODS:
            raise CrmkitError(f"method must be one of {METHODS}, not {method!r}")
        settings = {**self.default_sampler_config, **(self.sampler_config or {}), **kwargs}
        started = time.perf_counter()
        model = self.build_model(df)
        if method == "nuts":
            idata, diag = self._fit_nuts(model, settings)
        else:
            from crmkit.models.pipeline_fit import fit_model

            post, diag = fit_model(
                model,
                self.param_names,
                method,
                draws=settings["draws"],
                chains=1,
                seed=self.random_seed or 0,
            )
            idata = az.from_dict(
                posterior={k: v[None] for k, v in post.items()},
                coords={
                    "channel": list(self.channels),
                    "control_name": list(self.controls or []),
                    "event_name": list(self.events or []),
                },
                dims={
                    "decay": ["channel"],
                    "lam": ["channel"],
                    "half": ["channel"],
                    "slope": ["channel"],
                    "beta": ["channel"],
                    "roas": ["channel"],
                    "control": ["control_name"],
                    "event": ["event_name"],
                },
            )
        diag["fit_seconds"] = round(time.perf_counter() - started, 2)
        diag["method"] = method
        self.idata_ = idata
        self.idata_.attrs["crmkit_model"] = type(self).__name__
        self.idata_.attrs["diagnostics"] = json.dumps(diag, default=str)
        self.diagnostics_ = diag
        self.data_ = df.reset_index(drop=True).copy()
        self.design_ = self._design(self.data_)
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

        """
        errors = self._validate(df)
        if errors:
            raise ValidationError("marketing-mix data", errors)
        missing = sorted(set(self.param_names) - set(posterior))
        if missing:
            raise CrmkitError(f"posterior lacks {missing}")
        self.data_ = df.reset_index(drop=True).copy()
        self._set_scales(self.data_)
        self.design_ = self._design(self.data_)
        self.idata_ = az.from_dict(
            posterior={k: np.asarray(posterior[k]) for k in self.param_names}
        )
        self.diagnostics_ = {"ok": True, "method": "given"}
        return self

    def _settings(self) -> dict[str, Any]:
        """Constructor arguments, JSON-ready."""
        keys = (
            "channels",
            "date_column",
            "target",
            "controls",
            "events",
            "saturation",
            "l_max",
            "yearly_order",
            "trend",
            "effect_prior",
            "model_config",
            "sampler_config",
            "random_seed",
        )
        return {k: getattr(self, k) for k in keys}

    def save(self, path: str | Path) -> Path:
        """Save the fit (draws, settings, diagnostics and the weekly data) to netCDF.

        Parameters
        ----------
        path
            File to write.

        Returns
        -------
        pathlib.Path

        """
        self._check_fitted()
        path = Path(path)
        idata = az.InferenceData(**{g: self.idata_[g] for g in self.idata_.groups()})
        data = self.data_.copy()
        data[self.date_column] = pd.to_datetime(data[self.date_column])
        ds = xr.Dataset({c: ("week", data[c].to_numpy()) for c in data.columns})
        idata.add_groups(constant_data=ds)
        idata.attrs.update(
            {
                "crmkit_model": type(self).__name__,
                "settings": json.dumps(self._settings()),
                "diagnostics": json.dumps(self.diagnostics_, default=str),
            }
        )
        idata.to_netcdf(str(path))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Load a model saved with :meth:`save` (no sampling).

        Parameters
        ----------
        path
            A netCDF file written by :meth:`save`.

        Returns
        -------
        Self

        """
        idata = az.from_netcdf(str(path))
        if idata.attrs.get("crmkit_model") != cls.__name__:
            raise CrmkitError(f"{path} does not hold a {cls.__name__} fit")
        mmm = cls(**json.loads(idata.attrs["settings"]))
        cd = idata.constant_data
        mmm.data_ = pd.DataFrame({v: cd[v].to_numpy() for v in cd.data_vars})
        mmm._set_scales(mmm.data_)
        mmm.design_ = mmm._design(mmm.data_)
        groups = [g for g in idata.groups() if g != "constant_data"]
        mmm.idata_ = az.InferenceData(**{g: idata[g] for g in groups})
        mmm.diagnostics_ = json.loads(idata.attrs["diagnostics"])
        return mmm

    def _fit_nuts(self, model, s: dict) -> tuple[az.InferenceData, dict]:
        """NUTS with nutpie when importable, else PyMC's sampler."""
        try:
            import nutpie
        except ImportError:  # pragma: no cover - nutpie is a dependency
            nutpie = None
        if s.get("sampler") in (None, "nutpie") and nutpie is not None:
            t0 = time.perf_counter()
            # only the parameters are kept: no per-draw (date, channel) contributions
            compiled = nutpie.compile_pymc_model(model, var_names=self.param_names)
            compile_s = time.perf_counter() - t0
            idata = nutpie.sample(
                compiled,
                draws=s["draws"],
                tune=s["tune"],
                chains=s["chains"],
                cores=min(s["chains"], 2),
                seed=self.random_seed,
                progress_bar=self.progressbar,
                save_warmup=False,
                target_accept=s["target_accept"],
            )
            used = "nutpie"
        else:
            compile_s = float("nan")
            import pymc as pm

            with model:
                idata = pm.sample(
                    draws=s["draws"],
                    tune=s["tune"],
                    chains=s["chains"],
                    cores=min(s["chains"], 2),
                    target_accept=s["target_accept"],
                    random_seed=self.random_seed,
                    progressbar=self.progressbar,
                    compute_convergence_checks=False,
                )
            used = "pymc"
        keep = az.InferenceData(
            posterior=idata.posterior[self.param_names], sample_stats=idata.sample_stats
        )
        diag = _diagnostics(keep)
        diag["sampler"] = used
        diag["compile_seconds"] = round(compile_s, 2)
        return keep, diag

    # -- posterior computations ----------------------------------------------------------
    def _check_fitted(self) -> None:
        """Raise if the model has not been fitted."""
        if not hasattr(self, "idata_"):
            raise CrmkitError("MarketingMixModel is not fitted; call fit(df) first")

    def draws(self, n_draws: int | None = None) -> dict[str, np.ndarray]:
        """Parameter draws stacked over chains, ``{name: (sample, ...)}``, thinned with the seed."""
        self._check_fitted()
        post = self.idata_.posterior
        n = post.sizes["chain"] * post.sizes["draw"]
        idx = np.arange(n)
        if n_draws is not None and n_draws < n:
            rng = np.random.default_rng(self.random_seed)
            idx = np.sort(rng.choice(n, n_draws, replace=False))
        return {k: post[k].values.reshape((n, *post[k].shape[2:]))[idx] for k in self.param_names}

    def saturate(self, adstock: np.ndarray, p: dict[str, np.ndarray]) -> np.ndarray:
        """Saturation of scaled adstock ``(sample, time, channel)`` under draws ``p``."""
        if self.saturation == "logistic":
            return logistic_saturation(adstock, p["lam"][:, None, :])
        return hill_saturation(adstock, p["half"][:, None, :], p["slope"][:, None, :])

    def channel_response(
        self, spend: np.ndarray, p: dict[str, np.ndarray], history: np.ndarray | None = None
    ) -> np.ndarray:
        """Contribution (outcome units) of spend ``(time, channel)``: (sample, time, channel).

        ``history`` (earlier weeks' spend, original units) carries over into the first weeks.
        """
        x = np.asarray(spend, dtype=float) / self.scales_["x"]
        n_hist = 0
        if history is not None and len(history):
            h = np.asarray(history, dtype=float)[-self.l_max :] / self.scales_["x"]
            n_hist = len(h)
            x = np.concatenate([h, x])
        a = geometric_adstock(x, p["decay"], self.l_max)  # (sample, time, channel)
        return (self.saturate(a, p) * p["beta"][:, None, :])[:, n_hist:] * self.scales_["y"]

    def baseline(self, design: dict[str, np.ndarray], p: dict[str, np.ndarray]) -> np.ndarray:
        """Non-media part of the mean (outcome units), shape (sample, time)."""
        mu = np.repeat(p["intercept"][:, None], len(design["years"]), axis=1)
        if self.trend:
            mu = mu + p["trend"][:, None] * design["years"][None]
        if self.yearly_order:
            mu = mu + p["fourier"] @ design["fourier"].T
        if self.controls:
            mu = mu + p["control"] @ design["controls"].T
        if self.events:
            mu = mu + p["event"] @ design["events"].T
        return mu * self.scales_["y"]

    def contributions(self, n_draws: int | None = 500) -> xr.DataArray:
        """Channel contributions over the fit weeks, dims ``(sample, date, channel)``.

        Parameters
        ----------
        n_draws
            Posterior draws used (None: all).

        Returns
        -------
        xarray.DataArray
            Outcome units (e.g. revenue) each channel adds each week.

        """
        p = self.draws(n_draws)
        c = self.channel_response(self.data_[self.channels].to_numpy(float), p)
        return xr.DataArray(
            c,
            dims=("sample", "date", "channel"),
            coords={"date": self.design_["dates"], "channel": self.channels},
        )

    def _period_mask(self, start: object = None, end: object = None) -> np.ndarray:
        """Weeks of the fit data between ``start`` and ``end`` (inclusive)."""
        d = self.design_["dates"]
        m = np.ones(len(d), dtype=bool)
        if start is not None:
            m &= d >= pd.Timestamp(start)
        if end is not None:
            m &= d <= pd.Timestamp(end)
        if not m.any():
            raise CrmkitError(f"no fitted weeks between {start} and {end}")
        return m

    def roas(
        self,
        start: object = None,
        end: object = None,
        *,
        n_draws: int | None = 500,
        ci: float = 0.9,
        eps: float = 0.01,
    ) -> pd.DataFrame:
        """Return on ad spend and marginal ROAS per channel over a period, with intervals.

        ROAS = contribution / spend over the period. Marginal ROAS = extra contribution per
        extra unit of spend when every week's spend of that channel in the period grows by
        ``eps`` (carry-over into later weeks of the fit included).

        Parameters
        ----------
        start, end
            Period (inclusive) of the fit data; all weeks by default.
        n_draws
            Posterior draws used.
        ci
            Credible-interval mass (0.9: 5% and 95% quantiles).
        eps
            Relative spend increase for the marginal ROAS.

        Returns
        -------
        pandas.DataFrame
            channel, spend, contribution (mean, lo, hi), roas (mean, lo, hi), mroas (mean, lo, hi).

        """
        p = self.draws(n_draws)
        m = self._period_mask(start, end)
        x = self.data_[self.channels].to_numpy(float)
        base = self.channel_response(x, p)
        contrib = base[:, m].sum(axis=1)  # (sample, channel)
        spend = x[m].sum(axis=0)
        bumped = x.copy()
        bumped[m] *= 1.0 + eps
        extra = (self.channel_response(bumped, p) - base).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            roas = contrib / spend
            mroas = extra / (eps * spend)
        lo, hi = (1 - ci) / 2, 1 - (1 - ci) / 2
        rows = []
        for j, ch in enumerate(self.channels):
            row: dict[str, Any] = {"channel": ch, "spend": spend[j]}
            for name, arr in (("contribution", contrib), ("roas", roas), ("mroas", mroas)):
                row[name] = float(np.mean(arr[:, j]))
                row[f"{name}_lo"] = float(np.quantile(arr[:, j], lo))
                row[f"{name}_hi"] = float(np.quantile(arr[:, j], hi))
            rows.append(row)
        return pd.DataFrame(rows)

    def response_curves(
        self,
        n_points: int = 40,
        max_multiple: float = 2.0,
        *,
        n_draws: int | None = 500,
        ci: float = 0.9,
    ) -> pd.DataFrame:
        """Steady-state weekly contribution against constant weekly spend, per channel.

        Spend runs from 0 to ``max_multiple`` times the largest weekly spend seen.

        Returns
        -------
        pandas.DataFrame
            channel, spend, mean, lo, hi (outcome per week once carry-over has built up).

        """
        p = self.draws(n_draws)
        lo, hi = (1 - ci) / 2, 1 - (1 - ci) / 2
        frames = []
        grid = np.linspace(0.0, max_multiple, n_points)  # in units of x_scale
        carry = (p["decay"][:, None, :] ** np.arange(self.l_max)[None, :, None]).sum(axis=1)
        a = grid[None, :, None] * carry[:, None, :]  # (sample, point, channel)
        resp = self.saturate(a, p) * p["beta"][:, None, :] * self.scales_["y"]
        for j, ch in enumerate(self.channels):
            r = resp[:, :, j]
            frames.append(
                pd.DataFrame(
                    {
                        "channel": ch,
                        "spend": grid * self.scales_["x"][j],
                        "mean": r.mean(axis=0),
                        "lo": np.quantile(r, lo, axis=0),
                        "hi": np.quantile(r, hi, axis=0),
                    }
                )
            )
        return pd.concat(frames, ignore_index=True)

    def contribution_summary(
        self,
        *,
        channels: list[str] | None = None,
        start: object = None,
        end: object = None,
        n_draws: int | None = 500,
        ci: float = 0.9,
    ) -> pd.DataFrame:
        """Weekly contribution per channel with intervals, long format.

        Returns
        -------
        pandas.DataFrame
            date, channel, spend, mean, lo, hi.

        """
        c = self.contributions(n_draws)
        m = self._period_mask(start, end)
        chans = list(channels or self.channels)
        unknown = sorted(set(chans) - set(self.channels))
        if unknown:
            raise CrmkitError(f"unknown channel(s) {unknown}; fitted: {self.channels}")
        c = c.isel(date=np.flatnonzero(m)).sel(channel=chans)
        lo, hi = (1 - ci) / 2, 1 - (1 - ci) / 2
        out = c.mean("sample").to_dataframe("mean").reset_index()
        out["lo"] = c.quantile(lo, "sample").drop_vars("quantile").to_dataframe("v")["v"].values
        out["hi"] = c.quantile(hi, "sample").drop_vars("quantile").to_dataframe("v")["v"].values
        sp = self.data_.loc[m, [self.date_column, *chans]].melt(
            id_vars=self.date_column, var_name="channel", value_name="spend"
        )
        sp = sp.rename(columns={self.date_column: "date"})
        sp["date"] = pd.to_datetime(sp["date"])
        out = out.merge(sp, on=["date", "channel"], how="left")
        return out[["date", "channel", "spend", "mean", "lo", "hi"]]

    def fitted(self, n_draws: int | None = 500, ci: float = 0.9) -> pd.DataFrame:
        """Posterior mean of the outcome per fit week (baseline plus media), with intervals."""
        p = self.draws(n_draws)
        mu = self.baseline(self.design_, p) + self.channel_response(
            self.data_[self.channels].to_numpy(float), p
        ).sum(axis=2)
        lo, hi = (1 - ci) / 2, 1 - (1 - ci) / 2
        return pd.DataFrame(
            {
                "date": self.design_["dates"],
                "actual": self.data_[self.target].to_numpy(float),
                "mean": mu.mean(axis=0),
                "lo": np.quantile(mu, lo, axis=0),
                "hi": np.quantile(mu, hi, axis=0),
            }
        )


def _diagnostics(idata: az.InferenceData, max_rhat: float = 1.01, min_ess: float = 100) -> dict:
    """Largest R-hat, smallest bulk ESS, divergences and an ``ok`` flag over all parameters."""
    post = idata.posterior
    ess = az.ess(post, method="bulk")
    e_min = float(min(float(ess[v].min()) for v in post.data_vars))
    r_max = float("nan")
    if post.sizes["chain"] > 1:
        rhat = az.rhat(post)
        r_max = float(max(float(rhat[v].max()) for v in post.data_vars))
    stats = idata.get("sample_stats")
    div = int(stats["diverging"].sum()) if stats is not None and "diverging" in stats else 0
    ok = (np.isnan(r_max) or r_max <= max_rhat) and e_min >= min_ess and div == 0
    return {"ok": bool(ok), "max_rhat": r_max, "min_ess_bulk": e_min, "divergences": div}


# ---------------------------------------------------------------------- simulation
def simulate_mmm(
    n_weeks: int = 156,
    *,
    decay: list[float] | None = None,
    lam: list[float] | None = None,
    beta: list[float] | None = None,
    mean_spend: list[float] | None = None,
    intercept: float = 1000.0,
    trend_per_year: float = 50.0,
    season_amplitude: float = 100.0,
    noise: float = 40.0,
    l_max: int = 12,
    start: str = "2022-01-03",
    seed: int = 0,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Weekly data from known adstock, logistic saturation and effects, for recovery checks.

    Spend of channel ``c`` is on-off flighted lognormal noise around ``mean_spend[c]``;
    ``lam`` is the saturation steepness per unit of spend divided by the channel's largest
    weekly spend (the model's scale), ``beta`` the most a channel adds per week.

    Returns
    -------
    (pandas.DataFrame, dict)
        ``date``, ``x1..xC``, ``y``; and the truth: parameters, contributions ``(time,
        channel)`` and ROAS per channel.

    """
    rng = np.random.default_rng(seed)
    decay = decay or [0.3, 0.6]
    lam = lam or [2.0, 3.0]
    beta = beta or [300.0, 200.0]
    n_c = len(decay)
    mean_spend = mean_spend or [1000.0 * (c + 1) for c in range(n_c)]
    on = rng.random((n_weeks, n_c)) < 0.7
    x = on * rng.lognormal(0.0, 0.5, (n_weeks, n_c)) * np.asarray(mean_spend)
    x = np.round(x, 2)
    scale = x.max(axis=0)
    a = geometric_adstock(x / scale, np.asarray(decay), l_max)
    contrib = logistic_saturation(a, np.asarray(lam)) * np.asarray(beta)
    dates = pd.date_range(start, periods=n_weeks, freq="7D")
    years = np.arange(n_weeks) * 7 / YEAR_DAYS
    season = season_amplitude * np.sin(2 * np.pi * dates.day_of_year.to_numpy() / YEAR_DAYS)
    y = intercept + trend_per_year * years + season + contrib.sum(axis=1)
    y = y + rng.normal(0.0, noise, n_weeks)
    names = [f"x{c + 1}" for c in range(n_c)]
    df = pd.DataFrame(x, columns=names)
    df.insert(0, "date", dates)
    df["y"] = y
    truth = {
        "channels": names,
        "decay": list(decay),
        "lam": list(lam),
        "beta": list(beta),
        "contributions": contrib,
        "roas": dict(zip(names, contrib.sum(axis=0) / x.sum(axis=0), strict=True)),
        "x_scale": scale,
    }
    return df, truth
