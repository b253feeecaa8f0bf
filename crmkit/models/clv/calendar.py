r"""Calendar-time effects on the purchase rate and on the spend per purchase.

The standard BG/NBD and Pareto/NBD models assume each customer's purchase rate is
constant in calendar time, and Gamma-Gamma that the spend per purchase is too. Real bases
have busy and quiet months, promotions, a drift in the market, and year-end baskets that
are larger. Multiply every customer's rate at calendar time ``w`` by a common
``m_w = exp(eta_w)`` (:class:`CalendarEffect`) and the mean spend per purchase by a common
``s_w = exp(zeta_w)`` (:class:`~crmkit.models.clv.spend.SpendEffect`, in
:mod:`crmkit.models.clv.spend` with the revenue helpers). For BG/NBD the rate effect is
exact as a change of clock: dropout happens after purchases, so the model in *operational time* (the
integral of ``m``) is the standard one. For Pareto/NBD (dropout in time) it is an
approximation.

Estimation, in two stages:

1. The fitted standard model gives the expected repeat purchases of the whole base in
   each past calendar period (each customer's unconditional expectation from their first
   purchase, which is ``T`` before the cut-off). Compare with the observed counts:
   ``y_w = log((obs_w + 0.5) / (exp_w + 0.5))``. For spend, the observed revenue of the
   period's repeat purchases against the sum of their customers' Gamma-Gamma expected
   spend: ``y_w = log(revenue_w / expected_w)``, observed with variance ``cv^2 / n_w``
   (``n_w`` purchases, ``cv`` the pooled coefficient of variation of a purchase's amount
   around its customer's expectation).
2. A state-space model: ``eta_w = phi eta_{w-1} + N(0, sigma^2)`` plus,
   once 12 months of history exist, yearly seasonality ``h_w . beta`` (``beta``: one log
   effect per calendar month, prior ``N(0, season_sd^2)``, ``h_w`` the share of the
   period's days in each month), and ``y_w ~ N(eta_w + h_w . beta, v_w + tau^2)`` (Poisson
   or spend noise ``v_w`` plus extra period-level noise ``tau``, e.g. promotions).
   ``phi = 1`` is a random walk (the level wanders off for good); ``phi < 1``
   alternatives (the rate's default) pull it back to the fitted model's level with a
   half-life. The Kalman
   filter (state: the level and the 12 monthly effects) gives the likelihood of
   (sigma, tau, phi) and the joint normal of the state at the cut-off; the posterior of
   (sigma, tau, phi) is computed on a grid (half-normal priors on sigma and tau; prior
   1/2 on the random walk and 1/2 shared by the half-lives), so the uncertainty about how
   fast and how durably the level moves, and about the seasonal pattern, is carried into
   the forecast. A model "no effect" (multiplier 1) can be weighed in by its grid
   marginal likelihood (``none_prior``; the spend effect's default is 1/2).

Forecast: for each draw, ``(sigma, tau, phi)`` from the grid posterior, the current level
and the monthly effects from their filtered normal, then the process forward, plus each
future day's month effect. The multiplier of a forecast period is the mean of ``exp(eta)``
over the period (with ``exp(N(0, tau^2))`` period shocks when noise is asked for). Its
spread grows with the horizon (like ``sigma sqrt(h)`` for the random walk). Revenue draws
are the standard model's draws times the rate multiplier times the spend multiplier,
draw by draw (:func:`crmkit.models.clv.spend.adjust_revenue`).

What it does not do: tell calendar time from cohort age when all customers joined at about
the same time (CDNOW: weeks 1-12 of 1997; a residual trend may be either, and the random
walk treats it as calendar time), or learn seasonality from less than a year of history
(the random walk only widens the interval for it then).
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
from crmkit.models.inference.grid import half_normal_log_grid, kalman_filter, posterior_weights

#: Months of history from which the yearly seasonal terms are fitted (``seasonality="auto"``).
SEASON_MIN_MONTHS = 12.0
#: Values of the ``seasonality`` setting.
SEASONALITY = ("auto", "monthly", "none")
#: Default half-lives (months) of the rate effect's mean-reverting AR(1) alternatives.
HALF_LIVES = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)


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


def month_weights(
    cutoff: object, starts: np.ndarray, length: float, days_per_unit: float
) -> np.ndarray:
    """Share of each period's days in each calendar month.

    Parameters
    ----------
    cutoff
        Last day of the data (inclusive), or that day as a number of days since 1970-01-01
        (as kept in a fitted effect's ``params_``); time 0 is the end of that day.
    starts
        Period starts in the model's time unit from time 0 (negative before the cut-off).
    length
        Period length in the model's time unit.
    days_per_unit
        Days per time unit.

    Returns
    -------
    numpy.ndarray
        Shape ``(len(starts), 12)``, rows summing to 1; column 0 is January.
    """
    starts = np.asarray(starts, dtype=float)
    k = max(1, round(float(length) * days_per_unit))
    offs = starts[:, None] + (np.arange(k) + 0.5)[None, :] / k * float(length)
    if isinstance(cutoff, (int, float, np.number)):
        cutoff = pd.Timestamp("1970-01-01") + pd.Timedelta(days=float(cutoff))
    base = np.datetime64(pd.Timestamp(cutoff).normalize().date(), "D") + np.timedelta64(1, "D")
    days = base + np.floor(offs * days_per_unit).astype(np.int64).astype("timedelta64[D]")
    month = days.astype("datetime64[M]").astype(np.int64) % 12
    w = np.zeros((len(starts), 12))
    np.add.at(w, (np.repeat(np.arange(len(starts)), k), month.ravel()), 1.0 / k)
    return w


def _log_normalize(logw: np.ndarray) -> np.ndarray:
    """Log weights shifted to sum to one."""
    top = logw.max()
    return logw - (top + np.log(np.exp(logw - top).sum()))


def _phi_log_prior(n_half_lives: int, walk_prior: float | None) -> np.ndarray:
    """Log prior of the AR(1) half-lives and the random walk (last)."""
    k = n_half_lives + 1
    if walk_prior is None or n_half_lives == 0:
        return np.full(k, -np.log(k))
    return np.append(np.full(n_half_lives, np.log((1.0 - walk_prior) / n_half_lives)),
                     np.log(walk_prior))  # fmt: skip


class CalendarEffect(ModelContract):
    """Common calendar-time multiplier of the purchase rate (random walk + yearly seasonality).

    Follows the model contract (:class:`~crmkit.models.base.ModelContract`): after
    :meth:`fit`, ``idata_`` holds ``posterior`` draws (one chain, drawn from the grid
    posterior) of ``sigma`` (per period), ``tau``, ``phi``, ``level`` (the current log
    multiplier) and, when seasonal, ``season`` (the 12 monthly log effects, centred) and
    ``observed_data`` (``observed`` and ``expected`` per past period); ``params_`` the
    posterior means (and ``period_length``, ``seasonal`` (1 or 0), ``cutoff`` (days since
    1970-01-01, when given), ``days_per_unit``);
    ``grid_`` the grid posterior itself (with the filtered state's mean and covariance per
    grid point), which the forecasts draw from.

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
        random walk (always included) by their posterior (default :data:`HALF_LIVES`, a
        week to 16 months; ``()``: the random walk only, the default before issue 17).
    grid_size
        Grid points of sigma and of tau.
    seasonality
        ``"auto"``: 12 monthly effects when the history spans at least
        :data:`SEASON_MIN_MONTHS` months and the fit is given its ``cutoff``;
        ``"monthly"``: always (with a ``cutoff``); ``"none"``: never.
    season_sd
        Prior sd of each month's log effect (shrinks the seasonal pattern towards none).
    walk_prior
        Prior probability of the random walk against the mean-reverting alternatives taken
        together (each half-life gets an equal share of the rest), so the data choose
        between "the level moves for good" and "it comes back" whatever the number of
        half-lives. ``None``: equal weights on every half-life and the walk (the walk then
        has ``1 / (len(half_lives) + 1)``, the AR(1) option before issue 17).
    season_full
        Seasons of a month from which its effect gets the full prior sd ``season_sd``; a
        month seen fewer times in the data gets ``season_sd`` times seasons / season_full
        (with one year of history a month's effect is confounded with the trend, e.g. a
        cohort's age curve). 0 (default): ``season_sd`` for every month.
    none_prior
        Prior probability of "no effect": the multiplier is 1 (no level, walk or season;
        the period noise ``tau`` remains). Weighed against the process by the grid marginal
        likelihoods (each model's prior normalized on its grid), so the effect moves the
        forecast only when the data prefer it. 0 (default for the rate): the process only.
    """

    #: Fit methods: the posterior on a grid of (sigma, tau, phi), Kalman-filtered.
    METHODS = ("grid",)
    #: Draws from the grid posterior kept in ``idata_``.
    N_DRAWS = 1000
    #: Columns of ``grid_`` (seasonal fits add ``mean_k`` and ``cov_i_j`` of the state).
    GRID_COLUMNS = ("sigma", "tau", "phi", "weight", "level_mean", "level_var")
    #: What the effect multiplies (in the text :meth:`describe` gives).
    WHAT = "rate"
    #: Attribute :meth:`adjust` sets on its output.
    ATTR = "calendar_effect"

    def __init__(
        self,
        sigma_scale: float = 0.1,
        tau_scale: float = 0.5,
        level_sd: float = 0.25,
        half_lives: tuple[float, ...] = HALF_LIVES,
        grid_size: int = 40,
        seasonality: str = "auto",
        season_sd: float = 0.25,
        walk_prior: float | None = 0.5,
        season_full: float = 0.0,
        none_prior: float = 0.0,
    ) -> None:
        self.sigma_scale = sigma_scale
        self.tau_scale = tau_scale
        self.level_sd = level_sd
        self.half_lives = half_lives
        self.grid_size = grid_size
        self.seasonality = seasonality
        self.season_sd = season_sd
        self.walk_prior = walk_prior
        self.season_full = season_full
        self.none_prior = none_prior

    def fit(
        self,
        data: np.ndarray,
        method: str = "grid",
        *,
        purchase_model: Any,
        summary: pd.DataFrame | None = None,
        period_length: float | None = None,
        cutoff: object | None = None,
    ) -> Self:
        """Estimate the multiplier's path, seasonality and hyperparameters from past periods.

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
        cutoff
            The last day of the data: places the periods in the calendar, for the yearly
            seasonality (without it, no seasonality).

        Returns
        -------
        Self
            The fitted effect.
        """
        started = time.perf_counter()
        self._check_method(method)
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
        self._fit_state(y, obs_var, keep, L, unit, cutoff)
        self.method_ = method
        self.idata_ = self._draws(obs, exp_)
        self._diagnose(method, started)
        return self

    def _check_method(self, method: str) -> None:
        """Raise for an unknown fit method or seasonality setting."""
        if method not in self.METHODS:
            raise CrmkitError(f"method must be one of {self.METHODS}, not {method!r}")
        if self.seasonality not in SEASONALITY:
            raise CrmkitError(f"seasonality must be one of {SEASONALITY}, not {self.seasonality!r}")
        wp = self.walk_prior
        if wp is not None and not (isinstance(wp, (int, float)) and 0.0 < wp < 1.0):
            raise CrmkitError(f"walk_prior must be in (0, 1) or None, not {wp!r}")
        p0 = self.none_prior
        if not (isinstance(p0, (int, float)) and 0.0 <= p0 < 1.0):
            raise CrmkitError(f"none_prior must be in [0, 1), not {p0!r}")

    def _season_var(self, H: np.ndarray | None, period_days: float) -> np.ndarray | float:
        """Prior variance of each month's log effect, smaller for months seen fewer times."""
        if H is None or not self.season_full:
            return self.season_sd**2
        seasons = H.sum(axis=0) * period_days / (365.25 / 12)  # times each month was seen
        return (self.season_sd * np.minimum(1.0, seasons / float(self.season_full))) ** 2

    def _fit_state(
        self,
        y: np.ndarray,
        obs_var: np.ndarray,
        keep: np.ndarray,
        L: float,
        unit: str,
        cutoff: object | None,
    ) -> None:
        """Grid posterior of (sigma, tau, phi) and the filtered state; sets grid_, params_."""
        n_all = len(keep)
        months = L / pred.month_length(unit)  # months per period
        seasonal = cutoff is not None and (
            self.seasonality == "monthly"
            or (self.seasonality == "auto" and n_all * months >= SEASON_MIN_MONTHS - 1e-9)
        )
        dpu = pred.TIME_UNITS[unit]
        H = None
        if seasonal:
            starts = (np.arange(n_all) - n_all) * L
            H = month_weights(cutoff, starts, L, dpu)[keep]
        step = np.sqrt(months)  # sd per period = sigma_month * step
        n = self.grid_size
        sig, lw_s = half_normal_log_grid(self.sigma_scale * step, 1e-3 * step, 1.0 * step, n)
        tau, lw_t = half_normal_log_grid(self.tau_scale, 1e-3, 1.5, n)
        phis = np.array([0.5 ** (months / h) for h in self.half_lives] + [1.0])
        lw_p = _phi_log_prior(len(self.half_lives), self.walk_prior)
        S2, T2, PH = np.meshgrid(sig**2, tau**2, phis, indexing="ij")
        season_var = self._season_var(H, L * dpu)
        ll, m, P, _, _ = kalman_filter(y, obs_var, S2, T2, PH, self.level_sd**2, H, season_var)
        prior = (lw_s[:, None, None] + lw_t[None, :, None] + lw_p[None, None, :]).ravel()
        sig_all, tau_all, phi_all = S2.ravel() ** 0.5, T2.ravel() ** 0.5, PH.ravel()
        p_none = float(self.none_prior)
        if p_none > 0.0:  # "no effect": multiplier 1 (level and season 0), only the noise tau
            ll0, m0, P0, _, _ = kalman_filter(y, obs_var, 0.0 * tau, tau**2, 1.0, 0.0, H, 0.0)
            prior = np.concatenate(
                [_log_normalize(prior) + np.log1p(-p_none), _log_normalize(lw_t) + np.log(p_none)]
            )
            ll, m, P = np.concatenate([ll, ll0]), np.concatenate([m, m0]), np.concatenate([P, P0])
            sig_all = np.concatenate([sig_all, np.zeros_like(tau)])
            tau_all = np.concatenate([tau_all, tau])
            phi_all = np.concatenate([phi_all, np.ones_like(tau)])
        w = posterior_weights(ll + prior)
        cols = {
            "sigma": sig_all,
            "tau": tau_all,
            "phi": phi_all,
            "weight": w,
            "level_mean": m[:, 0],
            "level_var": P[:, 0, 0],
        }
        if seasonal:
            d = m.shape[1]
            cols.update({f"mean_{i}": m[:, i] for i in range(1, d)})
            cols.update({f"cov_{i}_{j}": P[:, i, j] for i in range(d) for j in range(i + 1)})
        self.grid_ = pd.DataFrame(cols)
        self.params_ = {"period_length": L, "seasonal": float(seasonal), "days_per_unit": dpu}
        if cutoff is not None:  # numbers only in params_: days since 1970-01-01
            self.params_["cutoff"] = float(
                (pd.Timestamp(cutoff).normalize() - pd.Timestamp("1970-01-01")).days
            )
        self.params_ = {**self.summary(), **self.params_}

    def _diagnose(self, method: str, started: float) -> None:
        """The one diagnostics schema: ok when the grid posterior is finite."""
        ok = bool(np.all(np.isfinite(self.grid_["weight"].to_numpy())))
        self.diagnostics_ = diagnostics(
            method,
            ok=ok,
            message="the grid posterior is not finite",
            seconds=time.perf_counter() - started,
        )

    def _draws(self, observed: np.ndarray, expected: np.ndarray) -> az.InferenceData:
        """Posterior draws from the grid (seed 0) and the observed data, as InferenceData."""
        r = self._r()
        rng = np.random.default_rng(0)
        pick = rng.choice(len(r["weight"]), size=self.N_DRAWS, p=r["weight"])
        state = self._state_draws(r, pick, rng)
        post = {k: r[k][pick][None, :] for k in ("sigma", "tau", "phi")}
        post["level"] = state[:, 0][None, :]
        dims = {"observed": ["period"], "expected": ["period"]}
        if state.shape[1] > 1:
            beta = state[:, 1:]
            post["season"] = (beta - beta.mean(axis=1, keepdims=True))[None, :, :]
            dims["season"] = ["month"]
        return az.from_dict(
            posterior=post,
            observed_data={"observed": observed, "expected": expected},
            dims=dims,
            coords={"month": np.arange(1, 13)},
        )

    def _fit_frame(self) -> pd.DataFrame:
        """The grid posterior, kept with a saved fit."""
        return self.grid_

    def _restore(
        self, frame: pd.DataFrame, attrs: dict[str, str], tables: dict[str, pd.DataFrame]
    ) -> None:
        """Take the grid posterior back from a saved fit."""
        extra = [c for c in frame.columns if c.startswith(("mean_", "cov_"))]
        self.grid_ = frame[list(self.GRID_COLUMNS) + extra].astype(float)

    def summary(self) -> dict[str, float]:
        """Posterior means of sigma (per period), tau, phi, P(random walk), P(no effect), level."""
        r = self._r()
        w = r["weight"]
        phi = r["phi"]
        none = (r["sigma"] == 0.0) & (r["level_var"] == 0.0)  # the "no effect" points
        return {
            "sigma_per_period": float(w @ r["sigma"]),
            "tau": float(w @ r["tau"]),
            "phi": float(w @ phi),
            "p_random_walk": float(w @ ((phi == 1.0) & ~none)),
            "p_none": float(w @ none),
            "level": float(w @ r["level_mean"]),
            "level_sd": float(
                np.sqrt(w @ (r["level_var"] + r["level_mean"] ** 2) - (w @ r["level_mean"]) ** 2)
            ),
        }

    def _r(self) -> dict[str, np.ndarray]:
        """The grid posterior's columns (and the state's mean and cov); raise if not fitted."""
        if getattr(self, "grid_", None) is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit(...) first")
        g = self.grid_
        r = {k: g[k].to_numpy() for k in self.GRID_COLUMNS}
        d = 1 + sum(1 for c in g.columns if c.startswith("mean_"))
        mean = np.empty((len(g), d))
        cov = np.empty((len(g), d, d))
        mean[:, 0] = r["level_mean"]
        if d == 1:
            cov[:, 0, 0] = r["level_var"]
        else:
            for i in range(1, d):
                mean[:, i] = g[f"mean_{i}"].to_numpy()
            for i in range(d):
                for j in range(i + 1):
                    cov[:, i, j] = cov[:, j, i] = g[f"cov_{i}_{j}"].to_numpy()
        r["state_mean"], r["state_cov"] = mean, cov
        return r

    @staticmethod
    def _state_draws(r: dict, pick: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Draws of the state at the cut-off (level, monthly effects) at grid points ``pick``."""
        mean, cov = r["state_mean"][pick], r["state_cov"][pick]
        if mean.shape[1] == 1:
            return rng.normal(mean, np.sqrt(np.maximum(cov[:, :, 0], 0.0)))
        jitter = 1e-12 * np.eye(mean.shape[1])
        chol = np.linalg.cholesky(cov + jitter)
        z = rng.normal(0.0, 1.0, mean.shape)
        return mean + np.einsum("nij,nj->ni", chol, z)

    def seasonal_multipliers(self, n_draws: int = 1000, *, seed: int = 0) -> np.ndarray:
        """Draws of each calendar month's multiplier relative to the year's mean month.

        Parameters
        ----------
        n_draws
            Number of draws.
        seed
            Random seed.

        Returns
        -------
        numpy.ndarray
            Shape ``(n_draws, 12)``, January first: ``exp(beta_k - mean(beta))``; all ones
            when the fit has no seasonality.
        """
        r = self._r()
        if r["state_mean"].shape[1] == 1:
            return np.ones((n_draws, 12))
        rng = np.random.default_rng(seed)
        pick = rng.choice(len(r["weight"]), size=n_draws, p=r["weight"])
        beta = self._state_draws(r, pick, rng)[:, 1:]
        return np.exp(beta - beta.mean(axis=1, keepdims=True))

    def multiplier_draws(
        self, edges: np.ndarray, n_draws: int, *, noise: bool = False, seed: int = 0
    ) -> np.ndarray:
        """Draws of the mean multiplier in each forecast period.

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
        state = self._state_draws(r, pick, rng)
        steps = rng.normal(0.0, 1.0, (n_draws, n_steps)) * sig[:, None]
        eta = np.empty((n_draws, n_steps))
        cur = state[:, 0]
        for k in range(n_steps):
            cur = phi * cur + steps[:, k]
            eta[:, k] = cur
        lo_g = np.arange(n_steps) * L
        hi_g = lo_g + L
        if state.shape[1] > 1:
            H = month_weights(self.params_["cutoff"], lo_g, L, float(self.params_["days_per_unit"]))
            eta = eta + state[:, 1:] @ H.T
        if noise:
            eta = eta + rng.normal(0.0, 1.0, (n_draws, n_steps)) * tau[:, None]
        mult = np.exp(eta)  # grid period k covers [k L, (k+1) L)
        ov = np.clip(
            np.minimum(hi_g[None, :], edges[1:, None])
            - np.maximum(lo_g[None, :], edges[:-1, None]),
            0.0,
            None,
        )  # (periods, steps) overlap lengths
        tot = ov.sum(axis=1, keepdims=True)
        out = mult @ (ov / np.where(tot > 0, tot, 1.0)).T
        return np.where(tot.T > 0, out, 1.0)  # an empty period: nothing to multiply

    def describe(self) -> str:
        """One line naming the fitted process, for the ``calendar_effect`` attribute."""
        s = self.summary()
        season = "" if not self.params_.get("seasonal") else ", 12 monthly seasonal effects"
        none = f", P(no {self.WHAT} effect) {s['p_none']:.2f}" if self.none_prior else ""
        return (
            f"log-{self.WHAT} AR(1)/random walk{season}: sigma {s['sigma_per_period']:.3g} per "
            f"period of {self.params_['period_length']:.3g}, tau {s['tau']:.3g}, phi "
            f"{s['phi']:.3f} (P(random walk) {s['p_random_walk']:.2f}), level "
            f"{s['level']:+.3f} (sd {s['level_sd']:.3f}){none}"
        )

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
            The totals times the multiplier, same dims, attribute ``calendar_effect``
            (``spend_effect`` for a :class:`~crmkit.models.clv.spend.SpendEffect`).
        """
        edges = np.concatenate([[0.0], np.asarray(totals["period_end"], dtype=float)])
        use_noise = bool(totals.attrs.get("noise", 0)) if noise is None else noise
        m = self.multiplier_draws(edges, totals.sizes["sample"], noise=use_noise, seed=seed)
        mult = xr.DataArray(m, dims=("sample", "period"), coords={"sample": totals["sample"]})
        out = totals * mult.assign_coords(period=totals["period"])
        out.attrs.update(totals.attrs)
        out.attrs[self.ATTR] = self.describe()
        out.name = totals.name
        return out

    # -- model checks (log-likelihood and posterior predictive per past period) ------------
    def one_step_predictions(self) -> dict[str, np.ndarray]:
        """One-step-ahead predictive of each past period's log ratio, per posterior draw.

        The Kalman filter of :meth:`fit` run at each draw's ``(sigma, tau, phi)`` (the
        posterior draws of ``idata_``), without the grid: period ``t`` is predicted from
        periods before it only, so its log density is the prequential log-likelihood
        (they sum to the filter's log-likelihood). Periods whose expected count is 0 are
        left out, as in the fit. Written for the purchase-rate effect (observation
        variance ``1 / (expected + 0.5)``).

        Returns
        -------
        dict
            ``period`` (indices kept), ``y`` (observed log ratios), ``mean`` and ``var``
            ``(draw, period)`` of the predictive normal, ``loglik`` ``(draw, period)``,
            ``expected`` (the purchase model's expected counts of the kept periods).
        """
        self.check_fitted()
        obs = self.idata_.observed_data
        observed = obs["observed"].to_numpy().astype(float)
        expected = obs["expected"].to_numpy().astype(float)
        keep = expected > 0
        y = np.log((observed[keep] + 0.5) / (expected[keep] + 0.5))
        obs_var = 1.0 / (expected[keep] + 0.5)
        post = self.idata_.posterior
        sig2 = post["sigma"].to_numpy().ravel() ** 2
        tau2 = post["tau"].to_numpy().ravel() ** 2
        phi = post["phi"].to_numpy().ravel()
        H = None
        if self.params_.get("seasonal"):
            L = float(self.params_["period_length"])
            starts = (np.arange(len(keep)) - len(keep)) * L
            H = month_weights(
                self.params_["cutoff"], starts, L, float(self.params_["days_per_unit"])
            )[keep]
        none = sig2 == 0.0  # draws of "no effect" (none_prior): multiplier 1, nothing to learn
        L_days = float(self.params_["period_length"]) * float(self.params_["days_per_unit"])
        season_var = np.where(none[:, None], 0.0, self._season_var(H, L_days))
        start_var = np.where(none, 0.0, self.level_sd**2)
        kf = kalman_filter(y, obs_var, sig2, tau2, phi, start_var, H, season_var, predictions=True)
        mean, var = kf.pred_mean, kf.pred_var
        loglik = -0.5 * (np.log(2 * np.pi * var) + (y[None, :] - mean) ** 2 / var)
        return {
            "period": np.flatnonzero(keep),
            "y": y,
            "mean": mean,
            "var": var,
            "loglik": loglik,
            "expected": expected[keep],
        }

    def add_log_likelihood(self) -> Self:
        """Add ``log_likelihood`` ``observed`` on ``(chain, draw, period)`` to ``idata_``.

        Each past period's prequential log density of its log ratio ``log((observed + 0.5)
        / (expected + 0.5))`` (:meth:`one_step_predictions`), for LOO. Saved by :meth:`save`.

        Returns
        -------
        Self
            The effect.
        """
        one = self.one_step_predictions()
        self._set_check_group("log_likelihood", one["loglik"], one["period"])
        return self

    def add_posterior_predictive(self, seed: int = 0) -> Self:
        """Add ``posterior_predictive`` ``observed``: replicated repeat purchases per period.

        Each draw's one-step-ahead predictive log ratio, turned back into a count
        (``(expected + 0.5) exp(y) - 0.5``, floored at 0), for each past period kept by
        the fit. Saved by :meth:`save`.

        Parameters
        ----------
        seed
            Random seed.

        Returns
        -------
        Self
            The effect.
        """
        one = self.one_step_predictions()
        rng = np.random.default_rng(seed)
        y_rep = one["mean"] + np.sqrt(one["var"]) * rng.standard_normal(one["mean"].shape)
        rep = np.maximum((one["expected"][None, :] + 0.5) * np.exp(y_rep) - 0.5, 0.0)
        self._set_check_group("posterior_predictive", rep, one["period"])
        return self

    def _set_check_group(self, name: str, values: np.ndarray, period: np.ndarray) -> None:
        """Set group ``name`` of ``idata_`` to ``observed`` ``(chain, draw, period)``."""
        post = self.idata_.posterior
        shape = (post.sizes["chain"], post.sizes["draw"], len(period))
        ds = xr.Dataset(
            {"observed": (("chain", "draw", "period"), values.reshape(shape))},
            coords={"chain": post["chain"], "draw": post["draw"], "period": period},
        )
        groups = {g: self.idata_[g] for g in self.idata_.groups() if g != name}
        idata = az.InferenceData(**groups, **{name: ds})
        idata.attrs.update(self.idata_.attrs)
        self.idata_ = idata


def calendar_repeat_purchases(
    purchase_model: Any,
    observed: np.ndarray,
    data: pd.DataFrame | None = None,
    *,
    effect: CalendarEffect | None = None,
    observed_period_length: float | None = None,
    cutoff: object | None = None,
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
    cutoff
        Last day of the data (for the yearly seasonality; see :meth:`CalendarEffect.fit`).
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
        observed,
        purchase_model=purchase_model,
        summary=data,
        period_length=observed_period_length,
        cutoff=cutoff,
    )
    tot = repeat_purchases(purchase_model, data, seed=seed, **kwargs)
    return eff.adjust(tot, seed=seed + 1)
