"""Common monthly shocks of the open pipeline's win and loss hazards.

Given its parameters, the pipeline model treats open deals as independent, so the spread of
a month's total wins is parameter uncertainty plus each deal's own win / lose noise. Real
companies have common shocks: a month where every deal closes faster or slower (a quarter
push, a holiday, a market change). This module measures them from the data and carries
them into the forecast:

1. :func:`monthly_residuals`: per training month, the wins and losses observed among the
   deals open at the month's start, against the fitted model's expected counts for those
   same deals and month.
2. :class:`MonthShock`: per outcome (won, lost) a local-level model of the log multiplier
   ``x_m`` of the month's hazard odds::

       y_m = log((obs_m + 0.5) / (exp_m + 0.5)) = x_m + e_m + n_m
       x_m = phi * x_{m-1} + N(0, sigma^2)          (the persistent part)
       e_m ~ N(0, tau^2)                             (this month only)
       n_m ~ N(0, 1 / (exp_m + 0.5))                 (Poisson noise of the count)

   with ``sigma ~ HalfNormal(0.1)``, ``tau ~ HalfNormal(0.15)`` and ``phi`` in
   :data:`PHIS` (equal prior), its posterior computed on a grid with the Kalman filter of
   :mod:`crmkit.models.inference.grid` (as :class:`crmkit.models.clv.calendar.CalendarEffect`
   does). :meth:`MonthShock.draws` starts the state at zero mean with the filtered
   variance, walks it on into the forecast months and adds the month noise.

The residuals tell the shocks' size, not their current level: the hazards were fitted to
the same months, so the last months' residuals are what the fit left over, and their
filtered level is not a forecast of the next month. Carrying it forward made the Maven and
demo backtests worse (Maven 3-month median error $219.6k without the level, $225.7k with
it; see ``benchmarks/RESULTS.md``), so the forecast's shocks are centred and only widen.

The Poisson noise is taken at the expected count, not the observed one: a variance from the
observed count is smaller exactly when the count is low, which would lean the fit towards
negative shocks. The expected count is the model's mean, not a second Poisson count, so it
adds no noise of its own; its parameter uncertainty is common to every month (a draw with a
higher win rate raises them all), so it moves the level, not the months' scatter, and the
forecast carries it already through the posterior draws.

:class:`~crmkit.models.pipeline.model.PipelineModel` fits a ``MonthShock`` after its
posterior and adds its draws to the logits of the forecast months
(:func:`crmkit.models.pipeline.kernels.time_effects`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from crmkit.models.inference.grid import half_normal_log_grid, kalman_filter, posterior_weights
from crmkit.models.pipeline.data import last_full_month
from crmkit.models.pipeline.kernels import hazard_paths
from crmkit.store.history import deals_as_of, month_end, month_index

#: Outcomes of the shock's first axis (the hazard model's outcome order).
OUTCOMES = ("won", "lost")
#: Prior scales of the half-normal priors of ``sigma`` (state step) and ``tau`` (month noise).
SIGMA_SCALE = 0.1
TAU_SCALE = 0.15
#: AR(1) coefficients of the state (1.0: a random walk), equal prior weight.
PHIS = (0.5, 0.8, 1.0)
#: Points per scale of the grid (log-spaced), and the scales' ranges.
GRID_POINTS = 16
SIGMA_RANGE = (1e-3, 0.6)
TAU_RANGE = (1e-3, 1.0)
#: Fewest training months with a close for a shock to be fitted.
MIN_MONTHS = 4
#: Months of the walk the random walk's initial level has the variance of.
WALK_START_MONTHS = 12


def training_months(pipe: Any, final: pd.DataFrame | None = None) -> list[int]:
    """Month indices of a fitted pipeline model's training window in which closes were seen.

    The months after each of the model's landmarks (its ``window_months`` month ends before
    the cut-off) up to the last full month, from the first month with a recorded close
    (before it, the data have no outcomes). ``final``: the deals as of the cut-off, when
    the caller has them already.
    """
    if final is None:
        final = deals_as_of(pipe.frame_, pipe.history_index, pipe.as_of_)
    m_end = last_full_month(pipe.as_of_)
    closed = month_index(final.loc[final["status"].isin(["won", "lost"]), "closed_at"])
    first_close = int(closed[closed >= 0].min()) if (closed >= 0).any() else m_end + 1
    start = max(m_end - pipe.window_months + 1, first_close)
    return list(range(start, m_end + 1))


def monthly_residuals(pipe: Any, n_draws: int = 200, seed: int = 0) -> pd.DataFrame:
    """Observed and expected wins and losses per training month of a fitted pipeline model.

    Parameters
    ----------
    pipe
        A fitted :class:`~crmkit.models.pipeline.model.PipelineModel`.
    n_draws
        Posterior draws the expected counts are averaged over.
    seed
        Random seed of the draws' choice.

    Returns
    -------
    pandas.DataFrame
        One row per training month (:func:`training_months`, also the months of
        :func:`crmkit.forecast.checks.check_months`): ``month`` (month index), ``won``,
        ``lost`` (deals open at the month's start won, resp. lost, in the month), ``exp_won``,
        ``exp_lost`` (the model's expected counts for those deals and month, mean over
        draws).
    """
    pipe.check_fitted()
    post = pipe.posterior_subset(n_draws, seed)
    post.pop("month_shock", None)  # past months carry no forecast shock anyway
    post.pop("month_shock_first", None)
    hindex = pipe.history_index  # parsed once for every month
    final = deals_as_of(pipe.frame_, hindex, pipe.as_of_)
    close_m = month_index(final["closed_at"])
    status = final["status"].to_numpy()
    ids = final["deal_id"].to_numpy()
    won_month = pd.Series(np.where(status == "won", close_m, -1), index=ids)
    lost_month = pd.Series(np.where(status == "lost", close_m, -1), index=ids)
    rows = []
    for m in training_months(pipe, final):
        state = deals_as_of(pipe.frame_, hindex, month_end(m - 1))
        state = state[state["status"].eq("open")]
        row = {"month": m, "won": 0.0, "lost": 0.0, "exp_won": 0.0, "exp_lost": 0.0}
        if len(state):
            open_ids = state["deal_id"].to_numpy()
            row["won"] = float((won_month.reindex(open_ids).to_numpy() == m).sum())
            row["lost"] = float((lost_month.reindex(open_ids).to_numpy() == m).sum())
            pw, pl = hazard_paths(post, pipe.deal_codes(state), first_month=m, months=1)
            row["exp_won"] = float(pw[:, :, 0].sum(axis=1).mean())
            row["exp_lost"] = float(pl[:, :, 0].sum(axis=1).mean())
        rows.append(row)
    cols = ["month", "won", "lost", "exp_won", "exp_lost"]
    out = pd.DataFrame(rows, columns=cols)
    out["month"] = out["month"].astype(np.int64)
    return out


def _start_var(sig2: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """The level's variance at the first month: stationary, or WALK_START_MONTHS of walk."""
    stationary = sig2 / np.maximum(1.0 - phi**2, 1e-12)
    return np.where(phi < 1.0, stationary, sig2 * WALK_START_MONTHS)


class MonthShock:
    """Common monthly log multipliers of the win and loss hazards (local level on a grid).

    Parameters
    ----------
    sigma_scale, tau_scale
        Half-normal prior scales of the state's monthly step and of the month noise.
    phis
        AR(1) coefficients of the state (1.0: a random walk), equal prior weight.
    grid_points
        Log-spaced points per scale.

    Attributes
    ----------
    grid_ : dict
        Per outcome (``"won"``, ``"lost"``): arrays ``sigma``, ``tau``, ``phi``, ``weight``
        (posterior), ``mean`` and ``var`` (the filtered state at the last training month);
        empty when the shock is zero.
    note_ : str
        Why the shock is zero, or ``""``.
    last_month_ : int
        Month index of the last training month (-1 when unknown).
    """

    def __init__(
        self,
        sigma_scale: float = SIGMA_SCALE,
        tau_scale: float = TAU_SCALE,
        phis: tuple[float, ...] = PHIS,
        grid_points: int = GRID_POINTS,
    ) -> None:
        self.sigma_scale = sigma_scale
        self.tau_scale = tau_scale
        self.phis = tuple(phis)
        self.grid_points = grid_points
        self.grid_: dict[str, dict[str, np.ndarray]] = {}
        self.note_ = "not fitted"
        self.last_month_ = -1

    @property
    def active(self) -> bool:
        """True when the shock was fitted (not zero)."""
        return bool(self.grid_)

    def fit(self, residuals: pd.DataFrame) -> MonthShock:
        """Fit to :func:`monthly_residuals`; returns self (a zero shock with a note when thin).

        Parameters
        ----------
        residuals
            Rows per training month: ``month``, ``won``, ``lost``, ``exp_won``, ``exp_lost``.

        Returns
        -------
        MonthShock
            ``self``.
        """
        res = residuals.sort_values("month")
        self.grid_ = {}
        self.last_month_ = int(res["month"].iloc[-1]) if len(res) else -1
        with_closes = int(((res["won"] + res["lost"]) > 0).sum()) if len(res) else 0
        if with_closes < MIN_MONTHS:
            self.note_ = (
                f"zero shock: {with_closes} training months with closes (needs {MIN_MONTHS})"
            )
            return self
        if not float(res["exp_won"].sum()) > 0.0:
            self.note_ = "zero shock: the model expects no wins in the training months"
            return self
        n = self.grid_points
        sig, lw_s = half_normal_log_grid(self.sigma_scale, *SIGMA_RANGE, n)
        tau, lw_t = half_normal_log_grid(self.tau_scale, *TAU_RANGE, n)
        phi = np.asarray(self.phis, float)
        s, t, f = (a.ravel() for a in np.meshgrid(sig, tau, phi, indexing="ij"))
        prior = (lw_s[:, None, None] + lw_t[None, :, None] + np.zeros(len(phi))).ravel()
        for name in OUTCOMES:
            obs = res[name].to_numpy(float)
            exp = res[f"exp_{name}"].to_numpy(float)
            y = np.log((obs + 0.5) / (exp + 0.5))
            obs_var = 1.0 / (exp + 0.5)
            kf = kalman_filter(y, obs_var, s**2, t**2, f, _start_var(s**2, f))
            self.grid_[name] = {
                "sigma": s,
                "tau": t,
                "phi": f,
                "weight": posterior_weights(kf.loglik + prior),
                "mean": kf.mean[:, 0],
                "var": kf.cov[:, 0, 0],
            }
        self.note_ = ""
        return self

    def summary(self) -> dict[str, Any]:
        """Posterior means of ``sigma``, ``tau`` and the current level per outcome, and the note."""
        out: dict[str, Any] = {"note": self.note_, "last_month": self.last_month_}
        for name in OUTCOMES:
            g = self.grid_.get(name)
            if g is None:
                out[name] = {"sigma": 0.0, "tau": 0.0, "level": 0.0, "level_sd": 0.0}
                continue
            w = g["weight"]
            level = float(w @ g["mean"])
            level_var = float(w @ (g["var"] + g["mean"] ** 2)) - level**2
            out[name] = {
                "sigma": float(w @ g["sigma"]),
                "tau": float(w @ g["tau"]),
                "level": level,
                "level_sd": float(np.sqrt(max(level_var, 0.0))),
            }
        return out

    def interval(self, name: str, outcome: str = "won", prob: float = 0.9) -> tuple[float, float]:
        """Central ``prob`` interval of ``sigma`` or ``tau`` under the grid posterior.

        Each grid point stands for its cell of the log-spaced grid (half a step either
        side), so the bounds are the outer edges of the cells holding the tail quantiles.
        """
        g = self.grid_.get(outcome)
        if g is None:
            return 0.0, 0.0
        lo_v, hi_v = SIGMA_RANGE if name == "sigma" else TAU_RANGE
        half_step = np.sqrt((hi_v / lo_v) ** (1.0 / max(self.grid_points - 1, 1)))
        order = np.argsort(g[name], kind="stable")
        v, c = g[name][order], np.cumsum(g["weight"][order])
        lo = v[min(np.searchsorted(c, (1 - prob) / 2), len(v) - 1)]
        hi = v[min(np.searchsorted(c, 1 - (1 - prob) / 2), len(v) - 1)]
        return float(lo / half_step), float(hi * half_step)

    def draws(self, months_ahead: int, n: int, seed: int = 0) -> np.ndarray:
        """Log multipliers ``(n, 2, months_ahead)`` of the months after the last training month.

        Each draw picks a grid point by its weight, draws the state at the last training
        month from a normal with mean zero and the filtered variance (centred: see the
        module docstring), walks it on with ``phi`` and ``sigma`` and adds the month noise
        ``tau`` to each month. Zero when the shock is zero.
        """
        out = np.zeros((n, len(OUTCOMES), months_ahead))
        if not self.active:
            return out
        rng = np.random.default_rng(seed)
        for j, name in enumerate(OUTCOMES):
            g = self.grid_[name]
            pick = rng.choice(len(g["weight"]), size=n, p=g["weight"])
            phi, sig, tau = g["phi"][pick], g["sigma"][pick], g["tau"][pick]
            x = rng.normal(0.0, np.sqrt(g["var"][pick]))  # centred: the level is not forecast
            for h in range(months_ahead):
                x = phi * x + sig * rng.standard_normal(n)
                out[:, j, h] = x + tau * rng.standard_normal(n)
        return out

    def state(self) -> dict[str, Any]:
        """Settings and fit, JSON-ready (see :meth:`from_state`); ``note`` says why it is zero."""
        return {
            "sigma_scale": self.sigma_scale,
            "tau_scale": self.tau_scale,
            "phis": list(self.phis),
            "grid_points": self.grid_points,
            "note": self.note_,
            "last_month": self.last_month_,
            "grid": {
                name: {k: [float(x) for x in v] for k, v in g.items()}
                for name, g in self.grid_.items()
            },
            "summary": self.summary(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> MonthShock:
        """The fitted shock :meth:`state` describes."""
        out = cls(
            state["sigma_scale"], state["tau_scale"], tuple(state["phis"]), state["grid_points"]
        )
        out.note_ = state["note"]
        out.last_month_ = int(state["last_month"])
        out.grid_ = {
            name: {k: np.asarray(v, float) for k, v in g.items()}
            for name, g in state["grid"].items()
        }
        return out


__all__ = ["OUTCOMES", "MonthShock", "monthly_residuals"]
