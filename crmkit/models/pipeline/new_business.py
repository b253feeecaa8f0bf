"""New business: deals not created yet, their arrivals, win timing and amounts.

* Arrivals: deals created per month, a negative-binomial GLM with a log link::

      log mu_t = a + b * t_years + miq[month in quarter] + c * sin + d * cos (annual)

  priors ``a ~ N(log mean, 1)``, ``b ~ N(0, 0.5)``, ``miq ~ N(0, 0.5)`` (first month of
  the quarter the reference), ``c, d ~ N(0, 0.3)`` (``N(0, 0.01)``, i.e. off, with less than
  24 months of data), overdispersion ``alpha ~ HalfNormal(0.5)``. Leading months far below
  the usual level (under 20% of the median: the CRM being filled) are left out.
* Timing and win rate: per month since creation (lag 0, 1, ..., 12+) and month of the
  quarter of the close month, a Dirichlet posterior of (won, lost, open) hazards from every deal
  created in the window, censored at the cut-off (Dirichlet(1, 1, 8) prior: about 10% of
  deals close in a month before data say otherwise).
* Amounts and groups: a won new deal takes the amount, owner, team and segment of a
  deal won in the last 12 months, drawn at random (the empirical distribution).
"""

from __future__ import annotations

import json
import time
from typing import Self

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr
from scipy import optimize, special, stats

from crmkit.errors import CrmkitError
from crmkit.models.base import ModelContract, posterior_means
from crmkit.models.inference.diagnostics import fit_diagnostics
from crmkit.models.inference.laplace import laplace_draws, numeric_hessian
from crmkit.models.inference.pymc_fit import FIT_METHODS, fit_model, flat_draws
from crmkit.models.pipeline.data import last_full_month
from crmkit.store.history import deals_as_of, month_index

MAX_LAG = 12
DIRICHLET_PRIOR = (8.0, 1.0, 1.0)  # open, won, lost
#: Variables of the arrivals GLM's posterior.
ARRIVAL_PARAMS = ("a", "b", "miq_free", "fourier", "alpha")


def monthly_arrivals(deals: pd.DataFrame, as_of: object, window_months: int = 24) -> pd.Series:
    """Deals created per complete month before ``as_of`` (index: month index)."""
    m_end = last_full_month(as_of)
    cm = month_index(deals["created_at"])
    first = max(int(cm[cm >= 0].min()) if (cm >= 0).any() else m_end, m_end - window_months + 1)
    months = np.arange(first, m_end + 1)
    counts = pd.Series(cm).value_counts()
    out = pd.Series([int(counts.get(m, 0)) for m in months], index=months, dtype="int64")
    # the months while the CRM was being filled (far below the usual level) are not arrivals
    if len(out) >= 4:
        full = np.flatnonzero(out.to_numpy() >= 0.2 * float(out.median()))
        out = out.iloc[full[0] :] if len(full) else out
    return out


def lag_counts(
    deals: pd.DataFrame, history: pd.DataFrame | None, as_of: object, window_months: int = 24
) -> np.ndarray:
    """Counts ``(lag 0..MAX_LAG, month of quarter, outcome open/won/lost)`` of created deals."""
    now = deals_as_of(deals, history, as_of)
    m_end = last_full_month(as_of)
    cm = month_index(now["created_at"])
    clm = month_index(now["closed_at"])
    out = np.where(now["status"].eq("won"), 1, np.where(now["status"].eq("lost"), 2, 0))
    closed_months = clm[(out > 0) & (clm >= 0)]
    first_close = int(closed_months.min()) if len(closed_months) else m_end + 1
    keep = (cm >= m_end - window_months + 1) & (cm <= m_end)
    counts = np.zeros((MAX_LAG + 1, 3, 3))
    for c, cl, o in zip(cm[keep], clm[keep], out[keep], strict=True):
        last = m_end if o == 0 or cl < 0 else min(cl, m_end)
        for m in range(c, last + 1):
            if m < first_close:  # no close was ever recorded before: missing data, not "open"
                continue
            lag = min(m - c, MAX_LAG)
            res = o if (o > 0 and m == cl) else 0
            counts[lag, m % 3, res] += 1
    return counts


def _arrivals_design(months: np.ndarray) -> np.ndarray:
    """Columns: intercept, trend (years), month 2 and 3 of the quarter, sin, cos."""
    t = (months - months.max()) / 12.0
    ang = 2 * np.pi * (months % 12) / 12.0
    miq = months % 3
    return np.stack(
        [np.ones_like(t), t, (miq == 1) * 1.0, (miq == 2) * 1.0, np.sin(ang), np.cos(ang)], axis=1
    )


def _arrivals_map(counts: pd.Series, n_draws: int, seed: int) -> tuple[dict, dict]:
    """MAP + Laplace of the arrivals GLM (same priors as ``build_model``), in numpy."""
    months = counts.index.to_numpy()
    x = _arrivals_design(months)
    y = counts.to_numpy(float)
    prior_mu = np.array([np.log(max(y.mean(), 0.5)), 0, 0, 0, 0, 0])
    f_sd = 0.3 if len(y) >= 24 else 0.01  # an annual cycle needs two years of data
    prior_sd = np.array([1.0, 0.5, 0.5, 0.5, f_sd, f_sd])

    def neg(theta: np.ndarray) -> float:
        beta, log_alpha = theta[:6], theta[6]
        alpha = np.exp(log_alpha)
        mu = np.exp(np.clip(x @ beta, -30, 30))
        n = 1.0 / (alpha + 1e-3)  # NegativeBinomial(mu, alpha=n) as in build_model
        ll = (
            special.gammaln(y + n)
            - special.gammaln(n)
            - special.gammaln(y + 1)
            + n * np.log(n / (n + mu))
            + y * np.log(mu / (n + mu))
        ).sum()
        lp = -(((beta - prior_mu) / prior_sd) ** 2).sum() / 2 - alpha**2 / (2 * 0.25) + log_alpha
        return -float(ll + lp)

    def grad(theta: np.ndarray) -> np.ndarray:
        return optimize.approx_fprime(theta, neg, 1e-6)

    theta0 = np.concatenate([prior_mu, [np.log(0.1)]])
    res = optimize.minimize(neg, theta0, jac=grad, method="BFGS")
    th, _, ok = laplace_draws(res.x, numeric_hessian(grad, res.x), n_draws, seed)
    post = {
        "a": th[:, 0],
        "b": th[:, 1],
        "miq_free": th[:, 2:4],
        "fourier": th[:, 4:6],
        "alpha": np.exp(th[:, 6]),
    }
    # BFGS with a numerical gradient often stops on "precision loss" at the optimum: judge
    # convergence by the gradient itself
    converged = bool(res.success or np.max(np.abs(grad(res.x))) < 1e-2)
    return post, {
        "ok": bool(ok and converged),
        "converged": converged,
        "hessian_positive_definite": bool(ok),
    }


class NewBusinessModel(ModelContract):
    """Arrivals, win timing and amounts of deals created after the cut-off.

    Follows the model contract (:class:`~crmkit.models.base.ModelContract`): the settings
    are stored as given, ``fit`` returns ``self`` with ``idata_``, ``params_``, ``method_``
    and ``diagnostics_``, and :meth:`save` / :meth:`load` round-trip the fit with the
    arrivals, lag counts and amount templates its predictions need.

    Parameters
    ----------
    window_months
        Months of history used.
    method
        Default fit method of the arrivals GLM (``"map"``, ``"nuts"``, ``"advi"``);
        ``fit(..., method=...)`` overrides it for one fit.
    draws, tune, chains, seed, progress
        Sampler settings (MAP and ADVI make ``draws * chains`` draws in one chain).

    Attributes
    ----------
    idata_ : arviz.InferenceData
        ``posterior`` (``a``, ``b``, ``miq_free`` on ``month_of_quarter``, ``fourier`` on
        ``harmonic``, ``alpha``; absent with fewer than two months of arrivals),
        ``observed_data`` (``arrivals`` by ``month`` and ``lag_counts`` on ``(lag,
        close_month_of_quarter, outcome)``) and ``log_likelihood`` of each month's arrivals.
    params_ : dict
        Posterior means by name: floats, ``miq_free`` by month of the quarter (``"2"``,
        ``"3"``) and ``fourier`` by ``"sin"`` / ``"cos"`` (empty without a posterior).
    method_ : str
        The method used.
    diagnostics_ : dict
        The one schema of :mod:`crmkit.models.inference.diagnostics`.
    """

    def __init__(
        self,
        *,
        window_months: int = 24,
        method: str = "map",
        draws: int = 500,
        tune: int = 500,
        chains: int = 2,
        seed: int = 0,
        progress: bool = False,
    ) -> None:
        self.window_months = window_months
        self.method = method
        self.draws = draws
        self.tune = tune
        self.chains = chains
        self.seed = seed
        self.progress = progress

    def build_model(self, counts: pd.Series):
        """PyMC negative-binomial GLM of monthly arrivals."""
        import pymc as pm

        months = counts.index.to_numpy()
        t = (months - months.max()) / 12.0
        miq = months % 3
        ang = 2 * np.pi * (months % 12) / 12.0
        y = counts.to_numpy()
        with pm.Model() as model:
            a = pm.Normal("a", np.log(max(y.mean(), 0.5)), 1.0)
            b = pm.Normal("b", 0.0, 0.5)
            miq_free = pm.Normal("miq_free", 0.0, 0.5, shape=2)
            fourier = pm.Normal("fourier", 0.0, 0.3 if len(y) >= 24 else 0.01, shape=2)
            alpha = pm.HalfNormal("alpha", 0.5)
            miq_eff = pm.math.concatenate([[0.0], miq_free])
            mu = pm.math.exp(
                a + b * t + miq_eff[miq] + fourier[0] * np.sin(ang) + fourier[1] * np.cos(ang)
            )
            pm.NegativeBinomial("y", mu=mu, alpha=1.0 / (alpha + 1e-3), observed=y)
        return model

    def fit(
        self,
        deals: pd.DataFrame,
        history: pd.DataFrame | None = None,
        *,
        as_of: object,
        method: str | None = None,
    ) -> Self:
        """Fit arrivals, lag hazards and the amount templates on what was known on ``as_of``.

        Parameters
        ----------
        deals
            Deals (``store.read("deals")``).
        history
            ``deal_history`` rows.
        as_of
            Cut-off day.
        method
            ``"map"``, ``"nuts"`` or ``"advi"`` for this fit (default: the ``method`` setting).

        Returns
        -------
        NewBusinessModel
            ``self`` with ``idata_``, ``params_``, ``method_``, ``diagnostics_``,
            ``arrivals_``, ``lag_counts_``, ``templates_`` and ``data_``.
        """
        method = self.method if method is None else method
        if method not in FIT_METHODS:
            raise CrmkitError(f"method must be one of {FIT_METHODS}, not {method!r}")
        self.arrivals_ = monthly_arrivals(deals, as_of, self.window_months)
        self.as_of_ = pd.Timestamp(as_of)
        self.lag_counts_ = lag_counts(deals, history, as_of, self.window_months)
        t0 = time.perf_counter()
        flat, n_chains = None, 1
        if len(self.arrivals_) >= 2 and method == "map":
            flat, raw = _arrivals_map(self.arrivals_, self.draws * self.chains, self.seed)
        elif len(self.arrivals_) >= 2:
            idata, raw = fit_model(
                self.build_model(self.arrivals_),
                ARRIVAL_PARAMS,
                method,
                draws=self.draws,
                tune=self.tune,
                chains=self.chains,
                seed=self.seed,
                progress=self.progress,
            )
            flat = flat_draws(idata, ARRIVAL_PARAMS)
            n_chains = int(idata.posterior.sizes["chain"])
        else:
            raw = {"ok": False}
        seconds = round(time.perf_counter() - t0, 2)
        message = (
            "fewer than 2 months of arrivals: no new business"
            if flat is None
            else None
            if raw.get("ok")
            else "the arrivals fit did not converge"
        )
        self.idata_ = _new_business_idata(flat, n_chains, self.arrivals_, self.lag_counts_)
        self.method_ = method
        self.diagnostics_ = fit_diagnostics(method, raw, seconds, message)
        self.params_ = (
            posterior_means(self.idata_.posterior) if "posterior" in self.idata_.groups() else {}
        )
        now = deals_as_of(deals, history, as_of)
        recent = now["closed_at"] > self.as_of_ - pd.DateOffset(months=12)
        self.templates_ = now[now["status"].eq("won") & recent & now["amount"].gt(0)]
        self.data_ = {
            "months": len(self.arrivals_),
            "arrivals": int(self.arrivals_.sum()),
            "templates": len(self.templates_),
        }
        return self

    # ------------------------------------------------------------------ persistence
    def _tables(self) -> dict[str, pd.DataFrame]:
        """The amount templates, kept with a saved fit."""
        return {"templates": self.templates_}

    def _save_attrs(self) -> dict[str, str]:
        """The contract's attributes plus the cut-off and data counts."""
        state = {"as_of": self.as_of_.isoformat(), "data": self.data_}
        return {**super()._save_attrs(), "new_business_state": json.dumps(state)}

    def _restore(
        self, frame: pd.DataFrame, attrs: dict[str, str], tables: dict[str, pd.DataFrame]
    ) -> None:
        """Rebuild the prediction state from the file's groups and attributes."""
        state = json.loads(attrs["new_business_state"])
        obs = self.idata_.observed_data
        months = pd.Index(obs["month"].to_numpy().astype(np.int64))
        self.arrivals_ = pd.Series(obs["arrivals"].to_numpy().astype(np.int64), index=months)
        self.lag_counts_ = obs["lag_counts"].to_numpy().astype(float)
        self.templates_ = tables["templates"]
        self.as_of_ = pd.Timestamp(state["as_of"])
        self.data_ = state["data"]

    # ------------------------------------------------------------------ predictions
    @property
    def has_arrivals(self) -> bool:
        """Whether the arrivals GLM was fitted (two or more months of arrivals)."""
        self.check_fitted()
        return "posterior" in self.idata_.groups()

    @property
    def posterior_(self) -> dict[str, np.ndarray] | None:
        """Arrival draws with chains stacked, ``{name: array(draw, ...)}``; None without any."""
        if not self.has_arrivals:
            return None
        return flat_draws(self.idata_, ARRIVAL_PARAMS)

    def arrival_means(self, first_month: int, months: int, n: int, seed: int = 0):
        """Negative-binomial mean ``(n, months)`` and overdispersion ``(n,)`` draws."""
        flat = self.posterior_
        if flat is None:
            return np.zeros((n, months)), np.ones(n)
        total = flat["a"].shape[0]
        pick = np.random.default_rng(seed).choice(total, size=n, replace=n > total)
        post = {k: np.asarray(v)[pick] for k, v in flat.items()}
        m = first_month + np.arange(months)
        t = (m - self.arrivals_.index.max()) / 12.0
        ang = 2 * np.pi * (m % 12) / 12.0
        miq = np.concatenate([np.zeros((n, 1)), post["miq_free"]], axis=1)[:, m % 3]
        log_mu = (
            post["a"][:, None]
            + post["b"][:, None] * t[None, :]
            + miq
            + post["fourier"][:, :1] * np.sin(ang)
            + post["fourier"][:, 1:] * np.cos(ang)
        )
        return np.exp(log_mu), post["alpha"]

    def win_cdf(self, first_month: int, months: int, n: int, seed: int = 0) -> np.ndarray:
        """``(n, months, months)`` P(a deal created in month j is won by month k)."""
        self.check_fitted()
        rng = np.random.default_rng(seed)
        conc = self.lag_counts_ + np.array(DIRICHLET_PRIOR)  # (lag, qe, 3)
        g = rng.gamma(conc[None], 1.0, size=(n, *conc.shape))
        h = g / g.sum(-1, keepdims=True)  # (n, lag, qe, 3)
        m = first_month + np.arange(months)
        qe = m % 3
        cdf = np.zeros((n, months, months))
        for j in range(months):
            surv = np.ones(n)
            cum = np.zeros(n)
            for k in range(j, months):
                lag = min(k - j, MAX_LAG)
                hw, hl = h[:, lag, qe[k], 1], h[:, lag, qe[k], 2]
                cum = cum + surv * hw
                surv = surv * (1 - hw - hl)
                cdf[:, j, k] = cum
        return cdf


def _arrivals_log_likelihood(flat: dict[str, np.ndarray], counts: pd.Series) -> np.ndarray:
    """Negative-binomial log-likelihood of each month's arrivals per draw, ``(draw, month)``."""
    x = _arrivals_design(counts.index.to_numpy())
    beta = np.column_stack([flat["a"], flat["b"], flat["miq_free"], flat["fourier"]])
    mu = np.exp(beta @ x.T)
    n = 1.0 / (flat["alpha"][:, None] + 1e-3)
    return stats.nbinom.logpmf(counts.to_numpy()[None, :], n, n / (n + mu))


def _new_business_idata(
    flat: dict[str, np.ndarray] | None, n_chains: int, arrivals: pd.Series, lags: np.ndarray
) -> az.InferenceData:
    """InferenceData of the new-business model (no posterior when ``flat`` is None)."""
    obs = xr.Dataset(
        {
            "arrivals": ("month", arrivals.to_numpy(np.int64)),
            "lag_counts": (("lag", "close_month_of_quarter", "outcome"), lags),
        },
        coords={
            "month": arrivals.index.to_numpy(np.int64),
            "lag": np.arange(MAX_LAG + 1),
            "close_month_of_quarter": [1, 2, 3],
            "outcome": ["open", "won", "lost"],
        },
    )
    if flat is None:
        return az.InferenceData(observed_data=obs)
    n_draw = flat["a"].shape[0] // n_chains
    extra = {"miq_free": ("month_of_quarter",), "fourier": ("harmonic",)}
    chain_draw = {"chain": np.arange(n_chains), "draw": np.arange(n_draw)}
    post = xr.Dataset(
        {
            k: (("chain", "draw", *extra.get(k, ())), v.reshape(n_chains, n_draw, *v.shape[1:]))
            for k, v in flat.items()
        },
        coords={**chain_draw, "month_of_quarter": [2, 3], "harmonic": ["sin", "cos"]},
    )
    ll = _arrivals_log_likelihood(flat, arrivals).reshape(n_chains, n_draw, -1)
    log_lik = xr.Dataset(
        {"arrivals": (("chain", "draw", "month"), ll)},
        coords={**chain_draw, "month": arrivals.index.to_numpy(np.int64)},
    )
    return az.InferenceData(posterior=post, observed_data=obs, log_likelihood=log_lik)
