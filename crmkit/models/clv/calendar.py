r"""Calendar-time effect on the purchase rate: a log-rate random walk learnt from residuals.

The standard BG/NBD and Pareto/NBD models assume each customer's purchase rate is
constant in calendar time. Real bases have busy and quiet months, promotions, a drift
in the market. Multiply every customer's rate at calendar time ``w`` by a common
``m_w = exp(eta_w)``. For BG/NBD this is exact as a change of clock: dropout happens after
purchases, so the model in *operational time* (the integral of ``m``) is the standard one.
For Pareto/NBD (dropout in time) it is an approximation.

Estimation, in two stages:

1. The fitted standard model gives the expected repeat purchases of the whole base in
   each past calendar period (each customer's unconditional expectation from their first
   purchase, which is ``T`` before the cut-off). Compare with the observed counts:
   ``y_w = log((obs_w + 0.5) / (exp_w + 0.5))``.
2. A state-space model: ``eta_w = phi eta_{w-1} + N(0, sigma^2)`` (default ``phi = 1``) and
   ``y_w ~ N(eta_w, 1 / (exp_w + 0.5) + tau^2)`` (Poisson noise plus extra period-level
   noise ``tau``, e.g. promotions). ``phi = 1`` is a random walk (the rate wanders off for
   good); optional ``phi < 1`` alternatives pull it back to the fitted model's level with a
   half-life. The Kalman filter gives the likelihood of (sigma, tau, phi); their posterior
   is computed on a grid (half-normal priors on sigma and tau, equal weights on the
   half-lives and the random walk), so the uncertainty about how fast and how durably the
   rate moves is carried into the forecast.

Forecast: for each draw, ``(sigma, tau, phi)`` from the grid posterior, the current level
from its filtered normal, then the process forward. The multiplier of a forecast period is
the mean of ``exp(eta)`` over the period (with ``exp(N(0, tau^2))`` period shocks when
purchase noise is asked for). Its spread grows with the horizon (like ``sigma sqrt(h)``
for the random walk).
The totals of :func:`crmkit.models.clv.models.repeat_purchases` are multiplied by it, draw by draw.

What it does not do: learn seasonality (a year of history per season is needed; the
random walk only widens the interval for it), or tell calendar time from cohort age when
all customers joined at about the same time (CDNOW: weeks 1-12 of 1997). Then a
residual trend may be either, and the random walk treats it as calendar time.
"""

from __future__ import annotations

import time
from typing import Any, Self

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from crmkit.errors import CrmkitError, NotFittedError
from crmkit.models.base import ModelContract
from crmkit.models.clv import predictions as pred
from crmkit.models.inference.diagnostics import diagnostics


def expected_by_period(
    kind: str, params: dict[str, float], T: np.ndarray, n_periods: int, period_length: float
) -> np.ndarray:
    """Expected repeat purchases of a base in each past period, oldest first.

    Parameters
    ----------
    kind
        ``"bgnbd"`` or ``"paretonbd"``.
    params
        Point values of the purchase model's parameters.
    T
        Each customer's time since the first purchase at the cut-off.
    n_periods
        Number of periods before the cut-off.
    period_length
        Period length in the model's time unit.

    Returns
    -------
    numpy.ndarray
        Length ``n_periods``; element ``-1`` is the period ending at the cut-off.
    """
    Tv, cnt = np.unique(np.asarray(T, dtype=float), return_counts=True)
    back = np.arange(n_periods + 1)[::-1] * float(period_length)  # cut-off - period start
    age = np.maximum(Tv[:, None] - back[None, :], 0.0)
    p = {k: np.asarray(float(v)) for k, v in params.items()}
    cum = np.where(age > 0, pred._expected_if_alive(kind, p, 0.0, 0.0, age), 0.0)
    return cnt.astype(float) @ np.diff(cum, axis=1)


def repeat_counts_by_period(
    transactions: pd.DataFrame,
    customer_ids: Any,
    cutoff: object,
    n_periods: int,
    period_days: float = 7.0,
) -> np.ndarray:
    """Observed repeat purchase days per period before a cut-off, oldest first.

    Parameters
    ----------
    transactions
        ``customer_id`` and ``date`` (or ``ordered_at``); same-day purchases count once.
    customer_ids
        The customers of the purchase summary.
    cutoff
        Last day of the calibration data (inclusive).
    n_periods
        Number of periods.
    period_days
        Period length in days.

    Returns
    -------
    numpy.ndarray
        Length ``n_periods``; period ``j`` from the end covers days
        ``(cutoff - (j+1) d, cutoff - j d]``.
    """
    col = "date" if "date" in transactions else "ordered_at"
    tx = pd.DataFrame(
        {
            "customer_id": transactions["customer_id"].to_numpy(),
            "day": pd.to_datetime(transactions[col]).dt.normalize().to_numpy(),
        }
    ).drop_duplicates()
    tx = tx[tx["customer_id"].isin(pd.Series(customer_ids))]
    cut = pd.Timestamp(cutoff).normalize()
    tx = tx[tx["day"] <= cut]
    first = tx.groupby("customer_id")["day"].transform("min")
    rep = tx[tx["day"] > first]
    back = (cut - rep["day"]).dt.days.to_numpy() / float(period_days)
    j = np.floor(back + 1e-9).astype(np.int64)  # days (cut - d, cut] -> period 0
    counts = np.bincount(j[(j >= 0) & (j < n_periods)], minlength=n_periods)
    return counts[::-1].astype(float)


def _half_normal_log_grid(scale: float, lo: float, hi: float, n: int) -> tuple:
    """Grid on log scale and log prior weights of a half-normal (with the Jacobian)."""
    v = np.exp(np.linspace(np.log(lo), np.log(hi), n))
    logw = -0.5 * (v / scale) ** 2 + np.log(v)
    return v, logw


def _kalman(y: np.ndarray, obs_var: np.ndarray, sig2, tau2, phi, v0: float):
    """AR(1)/random-walk filter over a grid of (sigma^2, tau^2, phi): log-lik, last mean, var."""
    m = np.zeros_like(sig2)
    P = np.full_like(sig2, v0)
    ll = np.zeros_like(sig2)
    for t in range(len(y)):
        if t > 0:
            m = phi * m
            P = phi * phi * P + sig2
        F = P + obs_var[t] + tau2
        e = y[t] - m
        ll += -0.5 * (np.log(2 * np.pi * F) + e * e / F)
        K = P / F
        m = m + K * e
        P = P * (1 - K)
    return ll, m, P


class CalendarEffect(ModelContract):
    """Common calendar-time multiplier of the purchase rate (log-rate AR(1) or random walk).

    Follows the model contract (:class:`~crmkit.models.base.ModelContract`): after
    :meth:`fit`, ``idata_`` holds ``posterior`` draws (one chain, drawn from the grid
    posterior) of ``sigma`` (per period), ``tau``, ``phi`` and ``level`` (the current log
    multiplier) and ``observed_data`` (``observed`` and ``expected`` repeat purchases per
    past period); ``params_`` the posterior means (and ``period_length``); ``grid_`` the
    grid posterior itself, which the forecasts draw from.

    Parameters
    ----------
    sigma_scale
        Scale of the half-normal prior of the random walk's step, in log-rate per square
        root of a month (0.1: the rate typically drifts by about 10% in a month).
    tau_scale
        Scale of the half-normal prior of the extra period-level noise (log scale).
    level_sd
        Prior sd of the log multiplier in the first period.
    half_lives
        Half-lives (in months) of mean-reverting AR(1) alternatives, weighed against the
        random walk (always included) by their posterior. Default none: random walk only,
        which covered the CDNOW holdouts at about the nominal rate where the mean-reverting
        mix (e.g. ``(0.25, 0.5, 1, 2, 4, 8, 16)``) was too narrow; see
        ``benchmarks/results/clv_holdout.md``.
    grid_size
        Grid points of sigma and of tau.
    """

    #: Fit methods: the posterior on a grid of (sigma, tau, phi), Kalman-filtered.
    METHODS = ("grid",)
    #: Draws from the grid posterior kept in ``idata_``.
    N_DRAWS = 1000
    #: Columns of ``grid_``.
    GRID_COLUMNS = ("sigma", "tau", "phi", "weight", "level_mean", "level_var")

    def __init__(
        self,
        sigma_scale: float = 0.1,
        tau_scale: float = 0.5,
        level_sd: float = 0.25,
        half_lives: tuple[float, ...] = (),
        grid_size: int = 40,
    ) -> None:
        self.sigma_scale = sigma_scale
        self.tau_scale = tau_scale
        self.level_sd = level_sd
        self.half_lives = half_lives
        self.grid_size = grid_size

    def fit(
        self,
        data: np.ndarray,
        method: str = "grid",
        *,
        purchase_model: Any,
        summary: pd.DataFrame | None = None,
        period_length: float | None = None,
    ) -> Self:
        """Estimate the multiplier's path and hyperparameters from past periods.

        Parameters
        ----------
        data
            Observed repeat purchases of the customers in ``summary`` per period before the
            cut-off, oldest first, the last ending at the cut-off (see
            :func:`repeat_counts_by_period`).
        method
            ``"grid"`` (the only one).
        purchase_model
            A fitted :class:`~crmkit.models.clv.models.BetaGeo` or
            :class:`~crmkit.models.clv.models.ParetoNBD`.
        summary
            The purchase summary at the cut-off (default: the model's fit data).
        period_length
            Length of a period in the model's time unit (default one week in weeks,
            i.e. ``7 / days per unit``).

        Returns
        -------
        Self
            The fitted effect.
        """
        if method not in self.METHODS:
            raise CrmkitError(f"method must be one of {self.METHODS}, not {method!r}")
        started = time.perf_counter()
        purchase_model.check_fitted()
        df = purchase_model.fit_data_ if summary is None else summary
        unit = purchase_model.time_unit
        L = 7.0 / pred.TIME_UNITS[unit] if period_length is None else float(period_length)
        obs = np.asarray(data, dtype=float)
        if obs.ndim != 1 or len(obs) < 4 or not np.all(np.isfinite(obs)) or (obs < 0).any():
            raise CrmkitError("observed must be at least 4 non-negative counts per period")
        exp_ = expected_by_period(
            purchase_model.kind, purchase_model.params_, df["T"].to_numpy(float), len(obs), L
        )
        keep = exp_ > 0
        y = np.log((obs[keep] + 0.5) / (exp_[keep] + 0.5))
        obs_var = 1.0 / (exp_[keep] + 0.5)
        step = np.sqrt(L / pred.month_length(unit))  # sd per period = sigma_month * step
        n = self.grid_size
        sig, lw_s = _half_normal_log_grid(self.sigma_scale * step, 1e-3 * step, 1.0 * step, n)
        tau, lw_t = _half_normal_log_grid(self.tau_scale, 1e-3, 1.5, n)
        months = L / pred.month_length(unit)  # months per period
        phis = np.array([0.5 ** (months / h) for h in self.half_lives] + [1.0])
        S2, T2, PH = np.meshgrid(sig**2, tau**2, phis, indexing="ij")
        ll, m, P = _kalman(y, obs_var, S2, T2, PH, self.level_sd**2)
        lp = ll + lw_s[:, None, None] + lw_t[None, :, None] - np.log(len(phis))
        w = np.exp(lp - lp.max())
        w /= w.sum()
        self.grid_ = pd.DataFrame(
            {
                "sigma": S2.ravel() ** 0.5,
                "tau": T2.ravel() ** 0.5,
                "phi": PH.ravel(),
                "weight": w.ravel(),
                "level_mean": m.ravel(),
                "level_var": P.ravel(),
            }
        )
        self.method_ = method
        self.params_ = {**self.summary(), "period_length": L}
        self.idata_ = self._draws(obs, exp_)
        ok = bool(np.all(np.isfinite(w)))
        self.diagnostics_ = diagnostics(
            method,
            ok=ok,
            message="the grid posterior is not finite",
            seconds=time.perf_counter() - started,
        )
        return self

    def _draws(self, observed: np.ndarray, expected: np.ndarray) -> az.InferenceData:
        """Posterior draws from the grid (seed 0) and the observed counts, as InferenceData."""
        g = self.grid_
        rng = np.random.default_rng(0)
        pick = rng.choice(len(g), size=self.N_DRAWS, p=g["weight"].to_numpy())
        level = rng.normal(
            g["level_mean"].to_numpy()[pick], np.sqrt(g["level_var"].to_numpy()[pick])
        )
        post = {k: g[k].to_numpy()[pick][None, :] for k in ("sigma", "tau", "phi")}
        post["level"] = level[None, :]
        return az.from_dict(
            posterior=post,
            observed_data={"observed": observed, "expected": expected},
            dims={"observed": ["period"], "expected": ["period"]},
        )

    def _fit_frame(self) -> pd.DataFrame:
        """The grid posterior, kept with a saved fit."""
        return self.grid_

    def _restore(
        self, frame: pd.DataFrame, attrs: dict[str, str], tables: dict[str, pd.DataFrame]
    ) -> None:
        """Take the grid posterior back from a saved fit."""
        self.grid_ = frame[list(self.GRID_COLUMNS)].astype(float)

    def summary(self) -> dict[str, float]:
        """Posterior means of sigma (per period), tau, phi, P(random walk), the log level."""
        r = self._r()
        w = r["weight"]
        phi = r["phi"]
        return {
            "sigma_per_period": float(w @ r["sigma"]),
            "tau": float(w @ r["tau"]),
            "phi": float(w @ phi),
            "p_random_walk": float(w @ (phi == 1.0)),
            "level": float(w @ r["level_mean"]),
            "level_sd": float(
                np.sqrt(w @ (r["level_var"] + r["level_mean"] ** 2) - (w @ r["level_mean"]) ** 2)
            ),
        }

    def _r(self) -> dict[str, np.ndarray]:
        """The grid posterior's columns; raise if not fitted."""
        if getattr(self, "grid_", None) is None:
            raise NotFittedError("CalendarEffect is not fitted; call fit(...) first")
        return {k: self.grid_[k].to_numpy() for k in self.GRID_COLUMNS}

    def multiplier_draws(
        self, edges: np.ndarray, n_draws: int, *, noise: bool = False, seed: int = 0
    ) -> np.ndarray:
        """Draws of the mean rate multiplier in each forecast period.

        Parameters
        ----------
        edges
            Forecast period boundaries after the cut-off (model time unit), from 0.
        n_draws
            Number of draws.
        noise
            Include the period-level shocks ``exp(N(0, tau^2))``.
        seed
            Random seed.

        Returns
        -------
        numpy.ndarray
            Shape ``(n_draws, len(edges) - 1)``.
        """
        r = self._r()
        rng = np.random.default_rng(seed)
        L = float(self.params_["period_length"])
        edges = np.asarray(edges, dtype=float)
        n_steps = max(1, int(np.ceil(edges[-1] / L - 1e-9)))
        pick = rng.choice(len(r["weight"]), size=n_draws, p=r["weight"])
        sig, tau = r["sigma"][pick], r["tau"][pick]
        phi = r["phi"][pick]
        level = rng.normal(r["level_mean"][pick], np.sqrt(r["level_var"][pick]))
        steps = rng.normal(0.0, 1.0, (n_draws, n_steps)) * sig[:, None]
        eta = np.empty((n_draws, n_steps))
        cur = level
        for k in range(n_steps):
            cur = phi * cur + steps[:, k]
            eta[:, k] = cur
        if noise:
            eta = eta + rng.normal(0.0, 1.0, (n_draws, n_steps)) * tau[:, None]
        mult = np.exp(eta)  # grid period k covers [k L, (k+1) L)
        lo_g = np.arange(n_steps) * L
        hi_g = lo_g + L
        ov = np.clip(
            np.minimum(hi_g[None, :], edges[1:, None])
            - np.maximum(lo_g[None, :], edges[:-1, None]),
            0.0,
            None,
        )  # (periods, steps) overlap lengths
        return mult @ (ov / ov.sum(axis=1, keepdims=True)).T

    def adjust(self, totals: xr.DataArray, *, noise: bool | None = None, seed: int = 0):
        """Multiply repeat-purchase (or revenue) totals by multiplier draws.

        Parameters
        ----------
        totals
            Output of :func:`crmkit.models.clv.models.repeat_purchases`: dims ``sample`` and
            ``period`` (and optionally ``segment``), coordinate ``period_end``.
        noise
            Add the period shocks; default: as the totals (their ``noise`` attribute).
        seed
            Random seed.

        Returns
        -------
        xarray.DataArray
            The totals times the multiplier, same dims, attribute ``calendar_effect``.
        """
        edges = np.concatenate([[0.0], np.asarray(totals["period_end"], dtype=float)])
        use_noise = bool(totals.attrs.get("noise", 0)) if noise is None else noise
        m = self.multiplier_draws(edges, totals.sizes["sample"], noise=use_noise, seed=seed)
        mult = xr.DataArray(m, dims=("sample", "period"), coords={"sample": totals["sample"]})
        out = totals * mult.assign_coords(period=totals["period"])
        out.attrs.update(totals.attrs)
        s = self.summary()
        out.attrs["calendar_effect"] = (
            f"log-rate AR(1)/random walk: sigma {s['sigma_per_period']:.3g} per period of "
            f"{self.params_['period_length']:.3g}, tau {s['tau']:.3g}, phi {s['phi']:.3f} "
            f"(P(random walk) {s['p_random_walk']:.2f}), level {s['level']:+.3f} "
            f"(sd {s['level_sd']:.3f})"
        )
        out.name = totals.name
        return out


def calendar_repeat_purchases(
    purchase_model: Any,
    observed: np.ndarray,
    data: pd.DataFrame | None = None,
    *,
    effect: CalendarEffect | None = None,
    observed_period_length: float | None = None,
    seed: int = 0,
    **kwargs: Any,
) -> xr.DataArray:
    """Repeat purchases (or revenue) per future period with a calendar-time rate effect.

    :func:`crmkit.models.clv.models.repeat_purchases` times the draws of a
    :class:`CalendarEffect` fitted to the observed past counts.

    Parameters
    ----------
    purchase_model
        A fitted BG/NBD or Pareto/NBD model.
    observed
        Past repeat purchases per period of the customers in ``data``, oldest first.
    data
        Purchase summary (default: the model's fit data).
    effect
        Settings of the calendar effect (default :class:`CalendarEffect`).
    observed_period_length
        Length of the periods of ``observed`` in the model's time unit (default a week).
    seed
        Seed of the draws.
    **kwargs
        Passed to :func:`crmkit.models.clv.models.repeat_purchases` (``periods``,
        ``period_length``, ``spend_model``, ``segment``, ``n_draws``, ``noise``, ...).

    Returns
    -------
    xarray.DataArray
        As :func:`crmkit.models.clv.models.repeat_purchases`, with ``calendar_effect`` in attrs.
    """
    from crmkit.models.clv.models import repeat_purchases

    eff = (effect or CalendarEffect()).fit(
        observed, purchase_model=purchase_model, summary=data, period_length=observed_period_length
    )
    tot = repeat_purchases(purchase_model, data, seed=seed, **kwargs)
    return eff.adjust(tot, seed=seed + 1)
