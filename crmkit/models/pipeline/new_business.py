"""New business: deals not created yet, their arrivals, win timing and amounts.

* Arrivals: deals created per month, negative binomial with a log link around a local
  level with drift (a random walk of the log level, so growth and shifts are learned from
  the recent months, and the forecast's uncertainty grows with the horizon)::

      log mu_t = a + b * t_years + r_t + miq[month in quarter] + c * sin + d * cos (annual)
      r_T = 0 (the last month), r_{t-1} = r_t - sigma_level * z_t,  z_t ~ N(0, 1)

  so ``a`` is the log level of the last month and ``b`` the drift per year; ahead of the
  last month the level keeps walking (``sigma_level`` per month). Priors ``a ~ N(log
  mean, 1)``, ``b ~ N(0, 0.2)`` (:data:`DRIFT_SD`), ``sigma_level ~ HalfNormal(0.1)``,
  ``miq ~ N(0, 0.5)``
  (first month of the quarter the reference), ``c, d ~ N(0, 0.3)`` (``N(0, 0.01)``, i.e.
  off, with less than 24 months of data). Overdispersion (variance ``mu + alpha mu^2``):
  ``sqrt(alpha) ~ Exponential(9.2)``, a penalised-complexity prior shrinking toward
  Poisson (``sqrt(alpha)`` is the extra-Poisson coefficient of variation; P(> 0.5) = 1%),
  so steady growth is learned as a moving level, not as noise.
  Leading months far below the usual level (under 20% of the median: the CRM being
  filled) are left out.
* Timing and win rate: per month since creation (lag 0, 1, ..., 12+) and month of the
  quarter of the close month, a Dirichlet posterior of (won, lost, open) hazards from every deal
  created in the window, censored at the cut-off (Dirichlet(1, 1, 8) prior: about 10% of
  deals close in a month before data say otherwise).
* Amounts and groups: a won new deal takes the amount, owner, team and segment of a
  deal won in the last 12 months, drawn at random from those won after about as many
  months as it took (the empirical joint distribution of time to win and amount: quick
  wins are often the small deals); each lag draws from at least
  :data:`MIN_LAG_TEMPLATES` templates of the nearest lags.
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
from crmkit.store.history import HistoryIndex, deals_as_of, month_index

MAX_LAG = 12
DIRICHLET_PRIOR = (8.0, 1.0, 1.0)  # open, won, lost
#: Variables of the arrivals model's posterior.
ARRIVAL_PARAMS = ("a", "b", "miq_free", "fourier", "alpha", "sigma_level", "z_level")
#: Prior scale (HalfNormal) of the monthly change of the log arrival level.
LEVEL_SIGMA = 0.1
#: Prior sd of the drift ``b`` (log growth per year). The forecast extrapolates the drift at
#: full strength, so its prior is about growth that lasts: 95% of it within x0.67-x1.48 a
#: year. A short climb (a CRM being filled, Maven's first months) is the walking level's to
#: explain; with sd 0.5 it became a forecast of 50-65% growth a year (issue #17).
DRIFT_SD = 0.2
#: Log level scales at which the MAP fit integrates ``sigma_level`` (0.002 to 0.74).
LEVEL_GRID = np.log(LEVEL_SIGMA) + np.arange(-4.0, 2.01, 0.5)
#: Rate of the exponential prior on ``sqrt(alpha)`` (P(sqrt(alpha) > 0.5) = 1%).
OVERDISPERSION_RATE = float(np.log(100.0) / 0.5)
#: NUTS target acceptance of the arrivals model (the walk's scale makes a funnel).
NUTS_TARGET_ACCEPT = 0.995
#: Fewest won deals an amount is drawn from for a given time to win.
MIN_LAG_TEMPLATES = 20


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
    deals: pd.DataFrame,
    history: pd.DataFrame | HistoryIndex | None,
    as_of: object,
    window_months: int = 24,
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


def _level_offsets(sigma: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Log-level offsets ``r`` ``(draw, month)`` of the fitted months (0 at the last one)."""
    cz = np.concatenate([np.zeros((*z.shape[:-1], 1)), np.cumsum(z, axis=-1)], axis=-1)
    return -np.asarray(sigma)[..., None] * (cz[..., -1:] - cz)


def _fitted_log_mu(flat: dict[str, np.ndarray], months: np.ndarray) -> np.ndarray:
    """Log arrival means ``(draw, month)`` of the fitted months."""
    beta = np.column_stack([flat["a"], flat["b"], flat["miq_free"], flat["fourier"]])
    log_mu = beta @ _arrivals_design(months).T
    if "z_level" in flat:  # fits saved before the local level have none
        log_mu = log_mu + _level_offsets(flat["sigma_level"], flat["z_level"])
    return log_mu


def _arrivals_map(counts: pd.Series, n_draws: int, seed: int) -> tuple[dict, dict]:
    """Posterior draws of the arrivals model (same priors as ``build_model``), in numpy.

    The level's scale is integrated on a grid (as INLA does): at each ``sigma_level`` of
    :data:`LEVEL_GRID` the other parameters' mode and Laplace approximation give the
    marginal posterior of that scale (mode minus half the log-determinant of the Hessian);
    draws pick a scale by those weights, then the rest from its normal approximation. A
    joint mode would put the scale at its prior's whatever the data (the innovations are
    zero there), so it would not learn that arrivals move smoothly, or that they jump.
    """
    months = counts.index.to_numpy()
    x = _arrivals_design(months)
    y = counts.to_numpy(float)
    n_z = len(y) - 1
    prior_mu = np.array([np.log(max(y.mean(), 0.5)), 0, 0, 0, 0, 0])
    f_sd = 0.3 if len(y) >= 24 else 0.01  # an annual cycle needs two years of data
    prior_sd = np.array([1.0, DRIFT_SD, 0.5, 0.5, f_sd, f_sd])
    eps = 1e-3

    def neg(theta: np.ndarray, log_sigma: float) -> tuple[float, np.ndarray]:
        """Negative log-posterior of (beta, log alpha, z) at a level scale, and its gradient."""
        beta, log_alpha, z = theta[:6], theta[6], theta[7:]
        alpha, sigma = np.exp(log_alpha), np.exp(log_sigma)
        r = _level_offsets(sigma, z)
        mu = np.exp(np.clip(x @ beta + r, -30, 30))
        n = 1.0 / (alpha + eps)  # NegativeBinomial(mu, alpha=n) as in build_model
        ll = (
            special.gammaln(y + n)
            - special.gammaln(n)
            - special.gammaln(y + 1)
            + n * np.log(n / (n + mu))
            + y * np.log(mu / (n + mu))
        ).sum()
        lp = (
            -(((beta - prior_mu) / prior_sd) ** 2).sum() / 2
            - OVERDISPERSION_RATE * np.sqrt(alpha)
            + 0.5 * log_alpha
            - (z**2).sum() / 2
            - sigma**2 / (2 * LEVEL_SIGMA**2)
            + log_sigma
        )
        s_mu = n * (y - mu) / (n + mu)  # d ll / d log mu
        d_n = (
            special.digamma(y + n) - special.digamma(n) + np.log(n / (n + mu)) + (mu - y) / (n + mu)
        ).sum()
        grad = np.empty_like(theta)
        grad[:6] = x.T @ s_mu - (beta - prior_mu) / prior_sd**2
        d_prior = 0.5 - OVERDISPERSION_RATE * np.sqrt(alpha) / 2
        grad[6] = d_n * (-alpha / (alpha + eps) ** 2) + d_prior
        grad[7:] = -sigma * np.cumsum(s_mu)[:n_z] - z
        return -float(ll + lp), -grad

    theta = np.concatenate([prior_mu, [np.log(0.1)], np.zeros(n_z)])
    fits = []
    for log_sigma in LEVEL_GRID[::-1]:  # from wide to narrow, each fit starting at the last
        res = optimize.minimize(
            neg, theta, args=(log_sigma,), jac=True, method="BFGS", options={"gtol": 1e-6}
        )
        theta = res.x
        hess = numeric_hessian(lambda t, ls=log_sigma: neg(t, ls)[1], res.x)
        sign, logdet = np.linalg.slogdet(hess)
        # BFGS often stops on "precision loss" at the optimum: judge it by the gradient
        converged = bool(res.success or np.max(np.abs(neg(res.x, log_sigma)[1])) < 1e-2)
        fits.append((log_sigma, res.x, hess, -res.fun - 0.5 * logdet, sign > 0, converged))
    log_w = np.array([f[3] for f in fits])
    w = np.exp(log_w - log_w.max())
    w /= w.sum()
    rng = np.random.default_rng(seed)
    which = rng.choice(len(fits), size=n_draws, p=w)
    th = np.zeros((n_draws, 7 + n_z))
    log_sig = np.zeros(n_draws)
    ok = converged = True
    for i, (log_sigma, mode, hess, _, pd_ok, conv) in enumerate(fits):
        sel = which == i
        if w[i] > 1e-3:  # the scales that matter must have a proper approximation
            ok, converged = ok and pd_ok and conv, converged and conv
        if sel.any():
            th[sel] = laplace_draws(mode, hess, int(sel.sum()), seed + 1 + i)[0]
            log_sig[sel] = log_sigma
    post = {
        "a": th[:, 0],
        "b": th[:, 1],
        "miq_free": th[:, 2:4],
        "fourier": th[:, 4:6],
        "alpha": np.exp(th[:, 6]),
        "sigma_level": np.exp(log_sig),
        "z_level": th[:, 7:],
    }
    return post, {"ok": bool(ok), "converged": bool(converged), "hessian_positive_definite": ok}


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
        ``harmonic``, ``alpha``, ``sigma_level`` and the walk's innovations ``z_level`` on
        ``step`` (the fitted months but the first); absent with fewer than two months of
        arrivals),
        ``observed_data`` (``arrivals`` by ``month`` and ``lag_counts`` on ``(lag,
        close_month_of_quarter, outcome)``), ``log_likelihood`` of each month's arrivals and
        ``posterior_predictive`` ``arrivals`` (each draw's replicated arrivals per month).
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
        """PyMC negative-binomial model of monthly arrivals (local level with drift)."""
        import pymc as pm
        import pytensor.tensor as pt

        months = counts.index.to_numpy()
        t = (months - months.max()) / 12.0
        miq = months % 3
        ang = 2 * np.pi * (months % 12) / 12.0
        y = counts.to_numpy()
        with pm.Model() as model:
            # sampled: the mean log level over the months (far less correlated with the
            # walk and the drift than the last month's); a, the last month's, is derived
            # and keeps its N(log mean, 1) prior
            level_mean = pm.Flat("level_mean", initval=np.log(max(y.mean(), 0.5)))
            b = pm.Normal("b", 0.0, DRIFT_SD)
            miq_free = pm.Normal("miq_free", 0.0, 0.5, shape=2)
            fourier = pm.Normal("fourier", 0.0, 0.3 if len(y) >= 24 else 0.01, shape=2)
            sqrt_alpha = pm.Exponential("sqrt_alpha", OVERDISPERSION_RATE)
            alpha = pm.Deterministic("alpha", sqrt_alpha**2)
            sigma_level = pm.HalfNormal("sigma_level", LEVEL_SIGMA)
            z_level = pm.Normal("z_level", 0.0, 1.0, shape=len(y) - 1)
            cz = pt.concatenate([pt.zeros(1), pt.cumsum(z_level)])
            r = -sigma_level * (cz[-1] - cz)
            a = pm.Deterministic("a", level_mean - b * t.mean() - r.mean())
            pm.Potential("a_prior", pm.logp(pm.Normal.dist(np.log(max(y.mean(), 0.5)), 1.0), a))
            miq_eff = pm.math.concatenate([[0.0], miq_free])
            mu = pm.math.exp(
                a + b * t + r + miq_eff[miq] + fourier[0] * np.sin(ang) + fourier[1] * np.cos(ang)
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
        index = HistoryIndex(deals, history)  # parsed once for both as-of look-ups
        self.lag_counts_ = lag_counts(deals, index, as_of, self.window_months)
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
                **({"target_accept": NUTS_TARGET_ACCEPT} if method == "nuts" else {}),
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
        now = deals_as_of(deals, index, as_of)
        recent = now["closed_at"] > self.as_of_ - pd.DateOffset(months=12)
        templates = now[now["status"].eq("won") & recent & now["amount"].gt(0)].copy()
        lag = month_index(templates["closed_at"]) - month_index(templates["created_at"])
        templates["win_lag"] = np.clip(lag, 0, MAX_LAG).astype(np.int64)
        self.templates_ = templates.sort_values("win_lag", kind="stable")
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
        names = [n for n in ARRIVAL_PARAMS if n in self.idata_.posterior]  # older fits: no walk
        return flat_draws(self.idata_, names)

    def arrival_means(self, first_month: int, months: int, n: int, seed: int = 0):
        """Negative-binomial mean ``(n, months)`` and overdispersion ``(n,)`` draws.

        Ahead of the last fitted month the log level walks on (``sigma_level`` a month), so
        the means of later months spread more.
        """
        flat = self.posterior_
        if flat is None:
            return np.zeros((n, months)), np.ones(n)
        total = flat["a"].shape[0]
        rng = np.random.default_rng(seed)
        pick = rng.choice(total, size=n, replace=n > total)
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
        steps = (m - self.arrivals_.index.max()).astype(np.int64)
        if "sigma_level" in post and steps.max() > 0:
            walk = np.cumsum(rng.standard_normal((n, int(steps.max()))), axis=1)
            ahead = np.where(steps > 0, steps - 1, 0)
            log_mu = log_mu + post["sigma_level"][:, None] * walk[:, ahead] * (steps > 0)
        return np.exp(log_mu), post["alpha"]

    def template_lag_bounds(self) -> np.ndarray | None:
        """Template index ranges ``(MAX_LAG + 1, 2)`` a deal won after each lag draws from.

        The templates are sorted by ``win_lag``; the range of lag ``L`` holds the templates
        won after ``L`` months, widened to the nearest lags until it holds at least
        :data:`MIN_LAG_TEMPLATES` (or all). None when the templates have no ``win_lag``
        (a fit saved before it existed): every won deal then draws from all of them.
        """
        self.check_fitted()
        if "win_lag" not in self.templates_.columns or not len(self.templates_):
            return None
        lags = self.templates_["win_lag"].to_numpy(np.int64)
        need = min(MIN_LAG_TEMPLATES, len(lags))
        out = np.zeros((MAX_LAG + 1, 2), np.int64)
        for lag in range(MAX_LAG + 1):
            for w in range(MAX_LAG + 1):
                lo = np.searchsorted(lags, lag - w, "left")
                hi = np.searchsorted(lags, lag + w, "right")
                if hi - lo >= need:
                    break
            out[lag] = lo, hi
        return out

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
    mu = np.exp(np.clip(_fitted_log_mu(flat, counts.index.to_numpy()), -30, 30))
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
    extra = {"miq_free": ("month_of_quarter",), "fourier": ("harmonic",), "z_level": ("step",)}
    chain_draw = {"chain": np.arange(n_chains), "draw": np.arange(n_draw)}
    post = xr.Dataset(
        {
            k: (("chain", "draw", *extra.get(k, ())), v.reshape(n_chains, n_draw, *v.shape[1:]))
            for k, v in flat.items()
        },
        coords={
            **chain_draw,
            "month_of_quarter": [2, 3],
            "harmonic": ["sin", "cos"],
            "step": arrivals.index.to_numpy(np.int64)[1:],
        },
    )
    ll = _arrivals_log_likelihood(flat, arrivals).reshape(n_chains, n_draw, -1)
    log_lik = xr.Dataset(
        {"arrivals": (("chain", "draw", "month"), ll)},
        coords={**chain_draw, "month": arrivals.index.to_numpy(np.int64)},
    )
    # posterior predictive: each draw's negative-binomial arrivals in each fitted month
    mu = np.exp(np.clip(_fitted_log_mu(flat, arrivals.index.to_numpy()), -30, 30))
    n = 1.0 / (flat["alpha"][:, None] + 1e-3)
    rep = np.random.default_rng(0).negative_binomial(n, n / (n + mu))
    ppc = xr.Dataset(
        {"arrivals": (("chain", "draw", "month"), rep.reshape(n_chains, n_draw, -1))},
        coords={**chain_draw, "month": arrivals.index.to_numpy(np.int64)},
    )
    return az.InferenceData(
        posterior=post, observed_data=obs, log_likelihood=log_lik, posterior_predictive=ppc
    )
