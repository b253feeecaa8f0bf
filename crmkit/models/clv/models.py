"""Customer-lifetime-value models: BG/NBD, Pareto/NBD (purchases) and Gamma-Gamma (spend).

Data: one row per customer with ``customer_id``, ``frequency`` (repeat purchases, x),
``recency`` (time of the last purchase since the first, t_x), ``T`` (time since the first
purchase) in a stated time unit (weeks for CDNOW), and ``monetary_value`` (mean spend
per repeat purchase) for Gamma-Gamma. The likelihoods depend on a customer only through
(x, t_x, T), resp. (x, mean spend), so identical rows are compressed into weighted
unique rows before fitting.

Predictions (expected purchases, probability alive, expected spend, CLV, repeat revenue
per period) are in :mod:`crmkit.models.clv.predictions` and exposed as methods here.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytensor.tensor as pt
import xarray as xr

from crmkit.errors import RowError, ValidationError
from crmkit.models.clv import predictions as pred
from crmkit.models.clv.estimator import BayesianEstimator
from crmkit.models.clv.likelihoods import (
    NP,
    PT,
    betageo_loglike,
    gammagamma_loglike,
    paretonbd_loglike,
)

PURCHASE_COLUMNS = ("customer_id", "frequency", "recency", "T")
_MAX_ERRORS = 100


def validate_summary(data: pd.DataFrame, *, monetary: bool = False) -> None:
    """Check a purchase summary; raise ValidationError naming each bad row and field.

    Parameters
    ----------
    data
        Columns ``customer_id``, ``frequency``, ``recency``, ``T`` (and
        ``monetary_value`` when ``monetary``).
    monetary
        Also require a positive ``monetary_value`` for customers with repeat purchases.

    Raises
    ------
    crmkit.errors.ValidationError
        Missing columns, non-numeric or non-finite values, negative or non-integer
        frequency, recency outside [0, T], recency > 0 without repeat purchases,
        monetary value <= 0 with repeat purchases.
    """
    need = list(PURCHASE_COLUMNS) + (["monetary_value"] if monetary else [])
    missing = [c for c in need if c not in data.columns]
    if missing:
        raise ValidationError(
            "purchase summary", [RowError(None, c, "column is missing") for c in missing]
        )
    errors: list[RowError] = []
    values = {}
    for c in need[1:]:
        col = pd.to_numeric(data[c], errors="coerce").to_numpy(dtype=float)
        values[c] = col
        for i in np.flatnonzero(~np.isfinite(col))[:_MAX_ERRORS]:
            errors.append(RowError(int(i), c, "must be a finite number", data[c].iloc[i]))
    if errors:
        raise ValidationError("purchase summary", errors)
    x, tx, T = values["frequency"], values["recency"], values["T"]
    checks = [
        ("frequency", (x < 0) | (x != np.round(x)), "must be a whole number >= 0", x),
        ("T", T < 0, "must be >= 0", T),
        ("recency", (tx < 0) | (tx > T + 1e-9), "must be between 0 and T", tx),
        ("recency", (x == 0) & (tx != 0), "must be 0 when frequency is 0", tx),
    ]
    if monetary:
        mv = values["monetary_value"]
        checks.append(("monetary_value", (x > 0) & (mv <= 0), "must be > 0 when frequency > 0", mv))
    for field, bad, reason, vals in checks:
        for i in np.flatnonzero(bad)[:_MAX_ERRORS]:
            errors.append(RowError(int(i), field, reason, float(vals[i])))
    if data["customer_id"].duplicated().any():
        for i in np.flatnonzero(data["customer_id"].duplicated().to_numpy())[:_MAX_ERRORS]:
            errors.append(RowError(int(i), "customer_id", "duplicate", data["customer_id"].iloc[i]))
    if errors:
        raise ValidationError("purchase summary", errors)


def compress_rows(*columns: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unique rows of the given columns with their counts.

    Parameters
    ----------
    *columns
        Equal-length 1-d arrays.

    Returns
    -------
    unique : numpy.ndarray
        Shape (n_unique, n_columns).
    weights : numpy.ndarray
        How many input rows each unique row stands for.
    inverse : numpy.ndarray
        Index of each input row's unique row.
    """
    stacked = np.column_stack([np.asarray(c, dtype=float) for c in columns])
    unique, inverse, counts = np.unique(stacked, axis=0, return_inverse=True, return_counts=True)
    return unique, counts.astype(float), inverse.ravel()


class _PurchaseModel(BayesianEstimator):
    """Shared code of the two purchase-process models."""

    _loglike_fn: ClassVar[Any]

    def _prepare(self, data: pd.DataFrame) -> dict[str, np.ndarray]:
        """Validate and compress to unique (x, t_x, T) rows."""
        validate_summary(data)
        u, w, _ = compress_rows(data["frequency"], data["recency"], data["T"])
        return {"x": u[:, 0], "t_x": u[:, 1], "T": u[:, 2], "w": w}

    def _loglike_np(self, params, arrays) -> float:
        """Weighted total log-likelihood, numpy."""
        ll = type(self)._loglike_fn(NP, *params, arrays["x"], arrays["t_x"], arrays["T"])
        return float(np.sum(arrays["w"] * ll))

    def _loglike_pt(self, params, arrays):
        """Weighted total log-likelihood, pytensor."""
        x, tx, T, w = (pt.as_tensor_variable(arrays[k]) for k in ("x", "t_x", "T", "w"))
        return pt.sum(w * type(self)._loglike_fn(PT, *params, x, tx, T))

    def _observed(self, data: pd.DataFrame) -> dict[str, np.ndarray]:
        """Each customer's (frequency, recency, T)."""
        return {c: data[c].to_numpy(float) for c in ("frequency", "recency", "T")}

    def _loglike_rows(self, values, observed) -> np.ndarray:
        """Each customer's log-likelihood at each parameter vector (rows of ``values``)."""
        u, _, inv = compress_rows(*(observed[c] for c in ("frequency", "recency", "T")))
        fn = type(self)._loglike_fn
        ll = np.array([fn(NP, *v, u[:, 0], u[:, 1], u[:, 2]) for v in values], dtype=float)
        return ll[:, inv]

    def _replicate(self, v: np.ndarray, T: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Repeat purchases in ``(0, T]`` of each customer ``(draw, customer)`` at draws ``v``."""
        raise NotImplementedError

    def _add_observations(self, data: pd.DataFrame) -> None:
        """The estimator's groups plus the posterior predictive of the repeat purchases."""
        super()._add_observations(data)
        _add_predictive(self, self._observed(data)["T"], "frequency", self._replicate)

    def _arrays(self, data: pd.DataFrame | None) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
        """The data to predict for (default: the fit data), validated."""
        self.check_fitted()
        df = self.fit_data_ if data is None else data
        validate_summary(df)
        return df, {
            "x": df["frequency"].to_numpy(float),
            "t_x": df["recency"].to_numpy(float),
            "T": df["T"].to_numpy(float),
        }

    def probability_alive(self, data: pd.DataFrame | None = None, n_draws: int | None = None):
        """Probability that each customer is still active at the end of the data.

        Parameters
        ----------
        data
            Purchase summary; default the fit data.
        n_draws
            Number of parameter draws (default all).

        Returns
        -------
        xarray.DataArray
            Dims ``("sample", "customer_id")``.
        """
        df, arr = self._arrays(data)
        draws = self.posterior_draws(n_draws)
        out = pred.probability_alive(self.kind, draws, arr["x"], arr["t_x"], arr["T"])
        return pred.label(out, df["customer_id"], "probability_alive", self)

    def expected_purchases(
        self, t: float, data: pd.DataFrame | None = None, n_draws: int | None = None
    ):
        """Expected number of purchases of each customer in the next ``t`` time units.

        Parameters
        ----------
        t
            Window length, in the model's time unit.
        data
            Purchase summary; default the fit data.
        n_draws
            Number of parameter draws (default all).

        Returns
        -------
        xarray.DataArray
            Dims ``("sample", "customer_id")``.
        """
        df, arr = self._arrays(data)
        draws = self.posterior_draws(n_draws)
        out = pred.expected_purchases(self.kind, draws, arr["x"], arr["t_x"], arr["T"], t)
        return pred.label(out, df["customer_id"], "expected_purchases", self)

    def expected_purchases_new_customer(self, t: float, n_draws: int | None = None):
        """Expected purchases in ``t`` time units of a customer just acquired.

        Parameters
        ----------
        t
            Window length.
        n_draws
            Number of parameter draws.

        Returns
        -------
        xarray.DataArray
            Dims ``("sample",)``.
        """
        draws = self.posterior_draws(n_draws)
        return pred.expected_purchases_new(self.kind, draws, t)


class BetaGeo(_PurchaseModel):
    """BG/NBD purchase model (Fader, Hardie & Lee 2005).

    Purchase rate ``lambda ~ Gamma(r, alpha)``; after each purchase a customer drops out
    with probability ``p ~ Beta(a, b)``.

    Parameters
    ----------
    model_config
        Priors overriding :attr:`default_model_config`, e.g.
        ``{"r": {"dist": "HalfNormal", "sigma": 2}}``.
    sampler_config
        Sampler settings overriding :attr:`default_sampler_config`.
    time_unit
        Unit of recency and T (``"W"`` weeks, ``"D"`` days, ``"M"`` months).
    random_seed
        Seed for sampling and approximations.
    progressbar
        Show the sampler's progress bar.
    """

    kind = "bgnbd"
    param_names = ("r", "alpha", "a", "b")
    default_model_config: ClassVar[dict[str, dict[str, Any]]] = {
        "r": {"dist": "HalfNormal", "sigma": 10.0},
        "alpha": {"dist": "HalfNormal", "sigma": 100.0},
        "a": {"dist": "HalfNormal", "sigma": 10.0},
        "b": {"dist": "HalfNormal", "sigma": 10.0},
    }
    _loglike_fn = staticmethod(betageo_loglike)

    def _numba_kernel(self, arrays):
        """Numba log-posterior for NUTS, or None for priors it does not support."""
        from crmkit.models.clv import kernels as clv_numba

        table = clv_numba.prior_table(self.priors, self.param_names)
        return None if table is None else clv_numba.betageo_kernel(arrays, table)

    def _replicate(self, v: np.ndarray, T: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Purchases in (0, T]: Poisson at rate lambda, stopping after a Geometric(p)-th one."""
        shape = (len(v), len(T))
        lam = rng.gamma(v[:, 0:1], 1.0 / v[:, 1:2], shape)
        p = np.clip(rng.beta(v[:, 2:3], v[:, 3:4], shape), 1e-12, 1.0)
        return np.minimum(rng.poisson(lam * T[None, :]), rng.geometric(p))

    def _start(self, arrays) -> np.ndarray:
        """Starting values: r = 1, alpha = mean T, a = 1, b = 1."""
        return np.array([0.5, max(1.0, float(np.average(arrays["T"], weights=arrays["w"]))), 1, 2])


class ParetoNBD(_PurchaseModel):
    """Pareto/NBD purchase model (Schmittlein, Morrison & Colombo 1987).

    Purchase rate ``lambda ~ Gamma(r, alpha)``, dropout rate ``mu ~ Gamma(s, beta)``.
    The likelihood uses an integral form without the hypergeometric function (see
    :mod:`crmkit.models.clv.likelihoods`), so NUTS gets exact, cheap gradients.

    Parameters
    ----------
    model_config
        Priors overriding :attr:`default_model_config`.
    sampler_config
        Sampler settings overriding :attr:`default_sampler_config`.
    time_unit
        Unit of recency and T.
    random_seed
        Seed for sampling and approximations.
    progressbar
        Show the sampler's progress bar.
    """

    kind = "paretonbd"
    param_names = ("r", "alpha", "s", "beta")
    #: A higher target acceptance than the default: the (s, beta) posterior is a curved
    #: ridge where NUTS diverges at 0.8 (36 of 4,000 draws on the CDNOW sample; 4 at 0.9).
    default_sampler_config: ClassVar[dict[str, Any]] = {
        **BayesianEstimator.default_sampler_config,
        "target_accept": 0.95,
    }
    default_model_config: ClassVar[dict[str, dict[str, Any]]] = {
        "r": {"dist": "HalfNormal", "sigma": 10.0},
        "alpha": {"dist": "HalfNormal", "sigma": 100.0},
        "s": {"dist": "HalfNormal", "sigma": 10.0},
        "beta": {"dist": "HalfNormal", "sigma": 100.0},
    }
    _loglike_fn = staticmethod(paretonbd_loglike)

    def _numba_kernel(self, arrays):
        """Numba log-posterior for NUTS, or None for priors it does not support."""
        from crmkit.models.clv import kernels as clv_numba

        table = clv_numba.prior_table(self.priors, self.param_names)
        return None if table is None else clv_numba.paretonbd_kernel(arrays, table)

    def _replicate(self, v: np.ndarray, T: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Purchases in (0, T]: Poisson at rate lambda until an Exponential(mu) lifetime."""
        shape = (len(v), len(T))
        lam = rng.gamma(v[:, 0:1], 1.0 / v[:, 1:2], shape)
        mu = rng.gamma(v[:, 2:3], 1.0 / v[:, 3:4], shape)
        life = rng.exponential(1.0, shape) / np.maximum(mu, 1e-300)
        return rng.poisson(lam * np.minimum(life, T[None, :]))

    def _start(self, arrays) -> np.ndarray:
        """Starting values: r = s = 1, alpha = beta = mean T."""
        m = max(1.0, float(np.average(arrays["T"], weights=arrays["w"])))
        return np.array([0.5, m, 0.5, m])


class GammaGamma(BayesianEstimator):
    """Gamma-Gamma model of spend per purchase (Fader, Hardie & Lee 2005).

    Each purchase's value ~ Gamma(p, nu) with ``nu ~ Gamma(q, gamma)`` per customer.
    Fitted on customers with at least one repeat purchase (``frequency > 0``), using
    ``monetary_value`` = their mean repeat-purchase value.

    The default prior of ``q`` is the half-normal of ``p`` restricted to ``q > 1``
    (``TruncatedNormal(0, 10, lower=1)``, as
    :func:`crmkit.models.clv.predictions.finite_mean_spend_prior`):
    the population mean spend per purchase ``p gamma / (q - 1)``, which a customer without
    repeat purchases gets, is finite only for ``q > 1``, so every Bayesian fit (MAP, ADVI,
    NUTS) keeps it finite. Data that want ``q <= 1`` (spend of two populations mixed, such as
    deal revenue with repeat orders) press ``q`` against 1; the notebooks' fit check
    (:func:`crmkit.apps.notebook_views.fit_problems`) says so. ``method="mle"`` has no prior and
    can return ``q <= 1``. NUTS samples ``log(q - 1)`` with the numba kernel (the transform
    PyMC gives this prior); ``model_config={"q": {"dist": "HalfNormal", "sigma": 10.0}}``
    gives the earlier unrestricted prior.

    Parameters
    ----------
    model_config
        Priors overriding :attr:`default_model_config`.
    sampler_config
        Sampler settings overriding :attr:`default_sampler_config`.
    time_unit
        Unit of recency and T (kept with the fit for reference).
    random_seed
        Seed for sampling and approximations.
    progressbar
        Show the sampler's progress bar.
    """

    param_names = ("p", "q", "gamma")
    default_model_config: ClassVar[dict[str, dict[str, Any]]] = {
        "p": {"dist": "HalfNormal", "sigma": 10.0},
        # q > 1: a finite mean spend for customers without repeat purchases (see above)
        "q": {"dist": "TruncatedNormal", "mu": 0.0, "sigma": 10.0, "lower": 1.0},
        "gamma": {"dist": "HalfNormal", "sigma": 100.0},
    }
    #: p and gamma are strongly correlated: NUTS mixes them only with nutpie's low-rank mass
    #: matrix (CDNOW through the PyMC graph, 500 + 500 draws: bulk ESS 79 without).
    default_sampler_config: ClassVar[dict[str, Any]] = {
        **BayesianEstimator.default_sampler_config,
        "low_rank_mass_matrix": True,
    }

    def _prepare(self, data: pd.DataFrame) -> dict[str, np.ndarray]:
        """Validate; keep repeat buyers; compress to unique (x, mean spend) rows."""
        validate_summary(data, monetary=True)
        rep = data["frequency"].to_numpy(float) > 0
        if not rep.any():
            raise ValidationError(
                "purchase summary", [RowError(None, "frequency", "no customer has frequency > 0")]
            )
        u, w, _ = compress_rows(
            data["frequency"].to_numpy(float)[rep], data["monetary_value"].to_numpy(float)[rep]
        )
        return {"x": u[:, 0], "m": u[:, 1], "w": w}

    def _start(self, arrays) -> np.ndarray:
        """Starting values: p = q = 2, gamma = mean spend."""
        return np.array([2.0, 2.0, float(np.average(arrays["m"], weights=arrays["w"]))])

    def _numba_kernel(self, arrays):
        """Numba log-posterior for NUTS, or None for priors it does not support."""
        from crmkit.models.clv import kernels as clv_numba

        table = clv_numba.prior_table(self.priors, self.param_names, shifted=True)
        return None if table is None else clv_numba.gammagamma_kernel(arrays, table)

    def _observed(self, data: pd.DataFrame) -> dict[str, np.ndarray]:
        """(frequency, monetary_value) of the repeat buyers, the likelihood's observations."""
        rep = data["frequency"].to_numpy(float) > 0
        return {c: data[c].to_numpy(float)[rep] for c in ("frequency", "monetary_value")}

    def _add_observations(self, data: pd.DataFrame) -> None:
        """The estimator's groups plus the posterior predictive of each mean spend."""
        super()._add_observations(data)

        def replicate(v: np.ndarray, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
            shape = (len(v), len(x))
            nu = rng.gamma(v[:, 1:2], 1.0 / v[:, 2:3], shape)
            return rng.gamma(v[:, 0:1] * x[None, :], 1.0 / (nu * x[None, :]))

        _add_predictive(self, self._observed(data)["frequency"], "monetary_value", replicate)

    def _loglike_rows(self, values, observed) -> np.ndarray:
        """Each repeat buyer's log-likelihood at each parameter vector (rows of ``values``)."""
        u, _, inv = compress_rows(observed["frequency"], observed["monetary_value"])
        ll = np.array([gammagamma_loglike(NP, *v, u[:, 0], u[:, 1]) for v in values], dtype=float)
        return ll[:, inv]

    def _loglike_np(self, params, arrays) -> float:
        """Weighted total log-likelihood, numpy."""
        ll = gammagamma_loglike(NP, *params, arrays["x"], arrays["m"])
        return float(np.sum(arrays["w"] * ll))

    def _loglike_pt(self, params, arrays):
        """Weighted total log-likelihood, pytensor."""
        x, m, w = (pt.as_tensor_variable(arrays[k]) for k in ("x", "m", "w"))
        return pt.sum(w * gammagamma_loglike(PT, *params, x, m))

    def expected_spend(self, data: pd.DataFrame | None = None, n_draws: int | None = None):
        """Expected value of each customer's future purchases (conditional mean spend).

        Customers without repeat purchases get the population mean ``p gamma / (q - 1)``.

        Parameters
        ----------
        data
            Summary with ``frequency`` and ``monetary_value``; default the fit data.
        n_draws
            Number of parameter draws.

        Returns
        -------
        xarray.DataArray
            Dims ``("sample", "customer_id")``.
        """
        self.check_fitted()
        df = self.fit_data_ if data is None else data
        validate_summary(df, monetary=True)
        draws = self.posterior_draws(n_draws)
        out = pred.expected_spend(
            draws, df["frequency"].to_numpy(float), df["monetary_value"].to_numpy(float)
        )
        return pred.label(out, df["customer_id"], "expected_spend", self)


def _add_predictive(model: BayesianEstimator, given: np.ndarray, name: str, replicate) -> None:
    """Add ``posterior_predictive`` to a fit: ``name`` per observation, and its mean or total.

    ``replicate(values, given, rng)`` draws ``(draws, observations)`` replicated values at
    parameter rows ``values``. Per observation (dims ``(chain, draw, obs)``, as
    ``observed_data``) only while observations x draws stay within
    :attr:`~crmkit.models.clv.estimator.BayesianEstimator.log_likelihood_max_values`;
    ``<name>_total`` (frequency: the sum over customers) or ``<name>_mean`` (spend: the
    mean over repeat buyers) on ``(chain, draw)`` always. Seed: the model's ``random_seed``.
    """
    post = model.idata_.posterior
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    values = np.stack([post[n].to_numpy().ravel() for n in model.param_names], axis=1)
    n_obs = len(given)
    if not n_obs:
        return
    rng = np.random.default_rng(model.random_seed)
    per_obs = n_obs * len(values) <= model.log_likelihood_max_values
    chunk = max(1, 1_000_000 // n_obs)
    kept, summary = [], []
    for i in range(0, len(values), chunk):
        rep = replicate(values[i : i + chunk], np.asarray(given, float), rng)
        summary.append(rep.sum(axis=1) if name == "frequency" else rep.mean(axis=1))
        if per_obs:
            kept.append(rep.astype(np.int32) if name == "frequency" else rep)
    cd = ("chain", "draw")
    tail = "_total" if name == "frequency" else "_mean"
    data = {name + tail: (cd, np.concatenate(summary).reshape(n_chain, n_draw))}
    if per_obs:
        data[name] = ((*cd, "obs"), np.concatenate(kept).reshape(n_chain, n_draw, n_obs))
    ds = xr.Dataset(data, coords={"chain": post["chain"], "draw": post["draw"]})
    if "posterior_predictive" in model.idata_.groups():
        delattr(model.idata_, "posterior_predictive")
    model.idata_.add_groups({"posterior_predictive": ds})


def _paired_draws(purchase_model, spend_model, n_draws: int | None, seed: int):
    """Equal numbers of draws from the purchase and the spend model."""
    n_p = purchase_model.posterior_draws().sizes["sample"]
    n_s = n_p if spend_model is None else spend_model.posterior_draws().sizes["sample"]
    n = min(n_p, n_s) if n_draws is None else min(n_draws, n_p, n_s)
    pdraws = purchase_model.posterior_draws(n, seed=seed)
    sdraws = None if spend_model is None else spend_model.posterior_draws(n, seed=seed + 1)
    return pdraws, sdraws


def _marks(*models) -> dict[str, Any]:
    """Attributes marking an output with each fit's method and diagnostics."""
    attrs: dict[str, Any] = {}
    ok = True
    for m in models:
        if m is None:
            continue
        a = pred.fit_attrs(m)
        ok = ok and bool(a["diagnostics_ok"])
        attrs[f"{type(m).__name__}_fit"] = a["diagnostics"]
    attrs["diagnostics_ok"] = int(ok)
    return attrs


def repeat_purchases(
    purchase_model: _PurchaseModel,
    data: pd.DataFrame | None = None,
    *,
    periods: int = 12,
    period_length: float | None = None,
    spend_model: GammaGamma | None = None,
    segment: str | None = None,
    n_draws: int | None = 1000,
    noise: bool = False,
    chunk_size: int | None = None,
    seed: int = 0,
):
    """Repeat purchases (or repeat revenue) of a customer base per future period, as draws.

    Totals are sums of draws: for each parameter draw, the sum over customers. With
    ``noise=True`` purchases (and spend) are simulated (posterior predictive), so the
    interval of a total can be compared with an observed total.

    Parameters
    ----------
    purchase_model
        A fitted :class:`BetaGeo` or :class:`ParetoNBD`.
    data
        Purchase summary (default: the purchase model's fit data); with ``monetary_value``
        when ``spend_model`` is given, and the ``segment`` column when named.
    periods
        Number of future periods.
    period_length
        Length of a period in the model's time unit (default one calendar month).
    spend_model
        A fitted :class:`GammaGamma`: totals become revenue.
    segment
        Column of ``data`` to break the totals down by.
    n_draws
        Parameter draws used (default 1,000; None for all).
    noise
        Add purchase (and spend) noise by simulation.
    chunk_size
        Customers per chunk (default 20,000 without noise, 2,000 with).
    seed
        Seed of the thinning and the simulation.

    Returns
    -------
    xarray.DataArray
        Dims ``("sample", "period")``, or ``("sample", "segment", "period")`` with a
        segment; ``period`` coordinates 1..periods and ``period_end`` (in time units).
    """
    purchase_model.check_fitted()
    df = purchase_model.fit_data_ if data is None else data
    validate_summary(df, monetary=spend_model is not None)
    length = pred.month_length(purchase_model.time_unit) if period_length is None else period_length
    edges = np.arange(periods + 1) * float(length)
    pdraws, sdraws = _paired_draws(purchase_model, spend_model, n_draws, seed)
    seg = None if segment is None else df[segment].to_numpy()
    args = (
        purchase_model.kind,
        pdraws,
        df["frequency"].to_numpy(float),
        df["recency"].to_numpy(float),
        df["T"].to_numpy(float),
        edges,
    )
    kw = {
        "spend_draws": sdraws,
        "mean_spend": None if spend_model is None else df["monetary_value"].to_numpy(float),
        "segment": seg,
    }
    if noise:
        tot, labels = pred.simulate_totals(*args, **kw, chunk_size=chunk_size or 2_000, seed=seed)
    else:
        tot, labels = pred.expected_totals(*args, **kw, chunk_size=chunk_size or 20_000)
    name = "repeat_revenue" if spend_model is not None else "repeat_purchases"
    da = xr.DataArray(
        tot,
        dims=("sample", "segment", "period"),
        coords={
            "sample": np.arange(tot.shape[0]),
            "segment": labels,
            "period": np.arange(1, periods + 1),
            "period_end": ("period", edges[1:]),
        },
        name=name,
    )
    if segment is None:
        da = da.isel(segment=0, drop=True)
    da.attrs.update(_marks(purchase_model, spend_model))
    da.attrs.update({"noise": int(noise), "time_unit": purchase_model.time_unit})
    return da


def customer_lifetime_value(
    purchase_model: _PurchaseModel,
    spend_model: GammaGamma,
    data: pd.DataFrame | None = None,
    *,
    periods: int = 12,
    period_length: float | None = None,
    discount_rate: float = 0.0,
    n_draws: int | None = 1000,
    seed: int = 0,
):
    """Discounted expected revenue of each customer over a horizon, as draws.

    CLV = sum over periods k of E[purchases in period k] x E[spend per purchase]
    / (1 + discount_rate)^k.

    Parameters
    ----------
    purchase_model
        A fitted :class:`BetaGeo` or :class:`ParetoNBD`.
    spend_model
        A fitted :class:`GammaGamma`.
    data
        Purchase summary with ``monetary_value`` (default: the purchase model's fit data).
    periods
        Horizon in periods.
    period_length
        Period length in the model's time unit (default one calendar month).
    discount_rate
        Discount rate per period (e.g. 0.01 a month).
    n_draws
        Parameter draws used.
    seed
        Seed of the thinning.

    Returns
    -------
    xarray.DataArray
        Dims ``("sample", "customer_id")``.
    """
    purchase_model.check_fitted()
    df = purchase_model.fit_data_ if data is None else data
    validate_summary(df, monetary=True)
    length = pred.month_length(purchase_model.time_unit) if period_length is None else period_length
    edges = np.arange(periods + 1) * float(length)
    disc = (1.0 + discount_rate) ** -np.arange(1, periods + 1)
    pdraws, sdraws = _paired_draws(purchase_model, spend_model, n_draws, seed)
    x, tx, T = (df[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    alive = pred.probability_alive(purchase_model.kind, pdraws, x, tx, T)
    pp = {k: v[:, :, None] for k, v in pred._params(purchase_model.kind, pdraws).items()}
    cum = np.zeros((*alive.shape, periods + 1))
    cum[:, :, 1:] = pred._expected_if_alive(
        purchase_model.kind, pp, x[None, :, None], T[None, :, None], edges[None, None, 1:]
    )
    purchases = np.diff(cum, axis=2) @ disc * alive
    spend = pred.expected_spend(sdraws, x, df["monetary_value"].to_numpy(float))
    da = pred.label(purchases * spend, df["customer_id"], "clv", purchase_model)
    da.attrs.update(_marks(purchase_model, spend_model))
    da.attrs.update({"periods": periods, "discount_rate": discount_rate})
    return da
