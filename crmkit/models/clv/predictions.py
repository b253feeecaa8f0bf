"""Predictions of the CLV models from parameter draws: per customer and summed over a base.

Per-customer outputs are ``(sample, customer_id)`` arrays. Totals over a base or a
segment are sums of draws (for each parameter draw, the sum over customers), computed
in chunks so that a million customers, 12 periods and 1,000 draws fit in a few hundred
MB. BG/NBD expected purchases factor into P(alive | x, t_x, T) times E[X(t) | alive, x, T];
the second factor does not depend on t_x, so a total needs it only once per (x, T).
BG/NBD totals run in numba kernels (:mod:`crmkit.models.clv.prediction_kernels`), one draw
at a time; Pareto/NBD totals and the per-customer outputs use numpy and scipy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import sparse, special

from crmkit.models.clv.likelihoods import NP, paretonbd_loglike
from crmkit.models.inference.diagnostics import summary_line
from crmkit.store.aggregates import TIME_UNITS

try:  # numba is a dependency; without it the numpy path below is used
    from crmkit.models.clv.prediction_kernels import bgnbd_totals

    _HAVE_KERNEL = True
except ImportError:  # pragma: no cover
    _HAVE_KERNEL = False


def month_length(time_unit: str) -> float:
    """Length of an average calendar month in ``time_unit`` (e.g. 4.35 weeks)."""
    return (365.25 / 12) / TIME_UNITS[time_unit]


def _p(draws: xr.Dataset, name: str) -> np.ndarray:
    """Parameter draws as a column vector (n_draws, 1)."""
    return draws[name].to_numpy()[:, None]


def probability_alive(kind: str, draws: xr.Dataset, x, t_x, T) -> np.ndarray:
    """P(alive) per draw and customer, shape (n_draws, n)."""
    x, t_x, T = (np.asarray(v, dtype=float)[None, :] for v in (x, t_x, T))
    if kind == "bgnbd":
        r, alpha, a, b = (_p(draws, n) for n in ("r", "alpha", "a", "b"))
        bx = np.where(x > 0, b + x - 1.0, 1.0)
        log_odds = np.log(a) - np.log(bx) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
        return np.where(x > 0, special.expit(-log_odds), 1.0)
    r, alpha, s, beta = (_p(draws, n) for n in ("r", "alpha", "s", "beta"))
    shape = np.broadcast_shapes(r.shape, x.shape)
    out = np.empty(shape)
    # The quadrature works on flat arrays; go through blocks of at most ~2e5 cells.
    step = max(1, 200_000 // shape[1])
    xs, txs, Ts = x[0], t_x[0], T[0]
    for i in range(0, shape[0], step):
        sl = slice(i, i + step)
        rr, aa, ss, bb = (
            np.broadcast_to(v[sl], (len(v[sl]), shape[1])) for v in (r, alpha, s, beta)
        )
        xb, txb, Tb = (np.broadcast_to(v, rr.shape) for v in (xs, txs, Ts))
        args = [v.ravel() for v in (rr, aa, ss, bb, xb, txb, Tb)]
        ll = paretonbd_loglike(NP, *args).reshape(rr.shape)
        log_alive = (
            special.gammaln(rr + xb)
            - special.gammaln(rr)
            + rr * np.log(aa)
            + ss * np.log(bb)
            - (rr + xb) * np.log(aa + Tb)
            - ss * np.log(bb + Tb)
        )
        out[sl] = np.exp(np.minimum(log_alive - ll, 0.0))
    return out


def _expected_if_alive(kind: str, params: dict[str, np.ndarray], x, T, t) -> np.ndarray:
    """E[purchases in (T, T+t] | alive, x, T], broadcasting params against x, T, t."""
    if kind == "bgnbd":
        r, alpha, a, b = (params[n] for n in ("r", "alpha", "a", "b"))
        c = a + b + x - 1.0
        z = t / (alpha + T + t)
        head = np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + t)))
        return c / (a - 1.0) * (1.0 - head * special.hyp2f1(r + x, b + x, c, z))
    r, alpha, s, beta = (params[n] for n in ("r", "alpha", "s", "beta"))
    L = np.log(beta + T + t) - np.log(beta + T)
    sm1 = s - 1.0
    safe = np.where(np.abs(sm1) < 1e-9, 1.0, sm1)
    frac = np.where(np.abs(sm1) < 1e-9, L, -np.expm1(-sm1 * L) / safe)
    return (r + x) * (beta + T) / (alpha + T) * frac


def _params(kind: str, draws: xr.Dataset) -> dict[str, np.ndarray]:
    """Parameter draws as column vectors."""
    names = ("r", "alpha", "a", "b") if kind == "bgnbd" else ("r", "alpha", "s", "beta")
    return {n: _p(draws, n) for n in names}


def expected_purchases(kind: str, draws: xr.Dataset, x, t_x, T, t: float) -> np.ndarray:
    """E[purchases in the next t | x, t_x, T] per draw and customer, (n_draws, n)."""
    alive = probability_alive(kind, draws, x, t_x, T)
    x, T = (np.asarray(v, dtype=float)[None, :] for v in (x, T))
    return alive * _expected_if_alive(kind, _params(kind, draws), x, T, float(t))


def expected_purchases_new(kind: str, draws: xr.Dataset, t: float) -> xr.DataArray:
    """E[purchases in (0, t]] of a customer just acquired (no repeat purchase yet)."""
    p = {k: v[:, 0] for k, v in _params(kind, draws).items()}
    if kind == "bgnbd":
        r, alpha, a, b = p["r"], p["alpha"], p["a"], p["b"]
        head = (alpha / (alpha + t)) ** r
        val = (a + b - 1) / (a - 1) * (1 - head * special.hyp2f1(r, b, a + b - 1, t / (alpha + t)))
    else:
        val = _expected_if_alive(kind, p, 0.0, 0.0, float(t))
    return xr.DataArray(val, dims=("sample",), name="expected_purchases")


def finite_mean_spend_prior(sigma: float = 10.0) -> dict[str, dict[str, Any]]:
    """Gamma-Gamma ``model_config`` that keeps q > 1, where expected spend is finite.

    The population mean spend per purchase is ``p gamma / (q - 1)``: infinite for q <= 1,
    and a customer without repeat purchases then has no finite expected spend. The prior
    is the default ``HalfNormal(sigma)`` of q restricted to q > 1 (a normal truncated at 1),
    so every posterior draw has a finite mean spend.

    Parameters
    ----------
    sigma
        Scale of the half-normal the prior restricts (the default prior's 10).

    Returns
    -------
    dict
        ``{"q": {...}}``, to pass as ``GammaGamma(model_config=...)``.
    """
    return {"q": {"dist": "TruncatedNormal", "mu": 0.0, "sigma": float(sigma), "lower": 1.0}}


def expected_spend(draws: xr.Dataset, x, mean_spend) -> np.ndarray:
    """Gamma-Gamma conditional expected spend per purchase, (n_draws, n).

    Where ``p x + q - 1 <= 0`` (only customers without repeat purchases, when q <= 1) the
    model's mean spend is infinite; such entries take the draw's mean over the repeat
    buyers instead (NaN if there are none), never a negative amount.
    """
    p, q, gamma = (_p(draws, n) for n in ("p", "q", "gamma"))
    x = np.asarray(x, dtype=float)[None, :]
    m = np.where(x > 0, np.asarray(mean_spend, dtype=float)[None, :], 0.0)
    denom = p * x + q - 1.0
    undefined = denom <= 0
    if not undefined.any():
        return p * (gamma + x * m) / denom
    out = p * (gamma + x * m) / np.where(undefined, 1.0, denom)
    buyers = np.broadcast_to(x > 0, out.shape) & ~undefined
    with np.errstate(invalid="ignore"):
        fallback = np.where(buyers, out, 0.0).sum(axis=1, keepdims=True) / buyers.sum(
            axis=1, keepdims=True
        )
    return np.where(undefined, fallback, out)


def label(values: np.ndarray, customer_id: pd.Series, name: str, model: Any) -> xr.DataArray:
    """Wrap (n_draws, n) values with dims and the fit's method and diagnostics."""
    da = xr.DataArray(
        values,
        dims=("sample", "customer_id"),
        coords={"sample": np.arange(values.shape[0]), "customer_id": customer_id.to_numpy()},
        name=name,
    )
    da.attrs.update(fit_attrs(model))
    return da


def fit_attrs(model: Any) -> dict[str, Any]:
    """Attributes that mark an output with the fit's method and diagnostics."""
    d = model.diagnostics_
    return {
        "method": model.method_,
        "diagnostics_ok": int(bool(d["ok"])),
        "diagnostics": summary_line(d),
        "time_unit": model.time_unit,
    }


def _segment_codes(segment: pd.Series | np.ndarray | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes and labels of a segment column (one segment "all" when None)."""
    if segment is None:
        return np.zeros(n, dtype=np.int64), np.array(["all"], dtype=object)
    codes, labels = pd.factorize(pd.Series(np.asarray(segment)), sort=True)
    if (codes < 0).any():
        raise ValueError("segment has missing values")
    return codes.astype(np.int64), np.asarray(labels, dtype=object)


def expected_totals(
    kind: str,
    draws: xr.Dataset,
    x: np.ndarray,
    t_x: np.ndarray,
    T: np.ndarray,
    edges: np.ndarray,
    *,
    spend_draws: xr.Dataset | None = None,
    mean_spend: np.ndarray | None = None,
    segment: pd.Series | np.ndarray | None = None,
    chunk_size: int = 20_000,
) -> tuple[np.ndarray, np.ndarray]:
    """Expected purchases (or revenue) per draw, segment and period, summed over customers.

    For each draw: sum over customers of P(alive | x, t_x, T) times E[X(period) | alive, x, T]
    (times the Gamma-Gamma expected spend when ``spend_draws`` is given). Exact, not an
    approximation: the alive factors (and spend, which is linear in the mean spend) are
    summed per (segment, x, T) group, and the conditional expectation is evaluated once
    per group.

    Parameters
    ----------
    kind
        ``"bgnbd"`` or ``"paretonbd"``.
    draws
        Purchase-model draws, dim ``sample``.
    x, t_x, T
        Per-customer summary.
    edges
        Period boundaries measured from the end of the data, starting with 0.
    spend_draws, mean_spend
        Gamma-Gamma draws (same number of samples) and per-customer mean spend.
    segment
        Optional per-customer segment labels.
    chunk_size
        Customers (unique rows) per chunk; memory is about ``n_draws * chunk_size * 8`` bytes
        times a few.

    Returns
    -------
    totals : numpy.ndarray
        Shape (n_draws, n_segments, n_periods).
    labels : numpy.ndarray
        Segment labels.
    """
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    n = len(x)
    seg, labels = _segment_codes(segment, n)
    z = np.zeros(n) if mean_spend is None else np.asarray(mean_spend, dtype=float)
    z = np.where(x > 0, z, 0.0)
    # Unique (segment, x, t_x, T) rows with their count and summed mean spend.
    (x_vals, tx_vals, T_vals), codes = _column_codes(x, t_x, T)
    row_key, inv = _unique_rows(np.column_stack([seg, *codes]))
    inv = inv.ravel()
    cnt = np.bincount(inv, minlength=len(row_key)).astype(float)
    zsum = np.bincount(inv, weights=z, minlength=len(row_key))
    # Groups (segment, x, T): the conditional expectation given alive is shared.
    groups_c, ginv = _unique_rows(row_key[:, [0, 1, 3]])
    ginv = ginv.ravel()
    edges = np.asarray(edges, dtype=float)
    if kind == "bgnbd" and _HAVE_KERNEL and np.all(x_vals == np.round(x_vals)):
        return _bgnbd_totals_numba(
            draws,
            spend_draws,
            row_key,
            ginv,
            cnt,
            zsum,
            groups_c,
            x_vals,
            tx_vals,
            T_vals,
            len(labels),
            edges,
        ), labels
    uniq = np.column_stack(
        [row_key[:, 0], x_vals[row_key[:, 1]], tx_vals[row_key[:, 2]], T_vals[row_key[:, 3]]]
    )
    groups = np.column_stack([groups_c[:, 0], x_vals[groups_c[:, 1]], T_vals[groups_c[:, 2]]])
    S = draws.sizes["sample"]
    G = len(groups)
    A = np.zeros((S, G))
    if spend_draws is not None:
        p, q, gamma = (_p(spend_draws, nm) for nm in ("p", "q", "gamma"))
        fallback = _buyers_mean_spend(p, q, gamma, uniq[:, 1], cnt, zsum, chunk_size)
    for lo in range(0, len(uniq), chunk_size):
        hi = min(lo + chunk_size, len(uniq))
        u = uniq[lo:hi]
        alive = probability_alive(kind, draws, u[:, 1], u[:, 2], u[:, 3])
        if spend_draws is None:
            weight = alive * cnt[lo:hi][None, :]
        else:
            xu = u[:, 1][None, :]
            denom = p * xu + q - 1.0
            spend = (p * gamma * cnt[lo:hi][None, :] + p * xu * zsum[lo:hi][None, :]) / np.where(
                denom > 0, denom, 1.0
            )
            spend = np.where(denom > 0, spend, fallback * cnt[lo:hi][None, :])
            weight = alive * spend
        ind = sparse.csr_matrix(
            (np.ones(hi - lo), (np.arange(hi - lo), ginv[lo:hi])), shape=(hi - lo, G)
        )
        A += np.asarray((ind.T @ weight.T).T)
        del alive, weight
    params = _params(kind, draws)
    K = len(edges) - 1
    out = np.zeros((S, len(labels), K))
    gstep = max(1, chunk_size // max(1, len(edges)))
    for lo in range(0, G, gstep):
        g = groups[lo : lo + gstep]
        gx, gT = g[:, 1][None, :, None], g[:, 2][None, :, None]
        pp = {k: v[:, :, None] for k, v in params.items()}
        cum = np.zeros((S, len(g), len(edges)))
        cum[:, :, 1:] = _expected_if_alive(kind, pp, gx, gT, np.asarray(edges[1:])[None, None, :])
        per = np.diff(cum, axis=2) * A[:, lo : lo + gstep, None]
        segs = g[:, 0].astype(np.int64)
        for sidx in np.unique(segs):
            out[:, sidx, :] += per[:, segs == sidx, :].sum(axis=1)
    return out, labels


def _buyers_mean_spend(p, q, gamma, x, cnt, zsum, chunk_size: int) -> np.ndarray:
    """Per draw, the repeat buyers' mean expected spend (expected_spend's fallback), (S, 1)."""
    num = np.zeros_like(p)
    buyers = np.flatnonzero(x > 0)
    for lo in range(0, len(buyers), chunk_size):
        b = buyers[lo : lo + chunk_size]
        xb = x[b][None, :]
        denom = p * xb + q - 1.0
        val = (p * gamma * cnt[b][None, :] + p * xb * zsum[b][None, :]) / np.where(
            denom > 0, denom, np.nan
        )
        num += val.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / cnt[buyers].sum()


def _column_codes(*columns: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Distinct values and integer codes of each column."""
    vals, codes = [], []
    for c in columns:
        v, i = np.unique(c, return_inverse=True)
        vals.append(v)
        codes.append(i.ravel().astype(np.int64))
    return vals, codes


def _unique_rows(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique rows of non-negative integer codes (lexicographic order) and the inverse.

    The columns are packed into one int64 key when their ranges allow it (a 1-d sort,
    much faster than ``np.unique(axis=0)``).
    """
    codes = np.asarray(codes, dtype=np.int64)
    if codes.shape[0] == 0:
        return codes, np.zeros(0, dtype=np.int64)
    span = codes.max(axis=0) + 1
    if float(np.prod(span.astype(float))) >= 2.0**62:
        uniq, inv = np.unique(codes, axis=0, return_inverse=True)
        return uniq, inv.ravel()
    key = np.zeros(codes.shape[0], dtype=np.int64)
    for j in range(codes.shape[1]):
        key = key * span[j] + codes[:, j]
    ukey, inv = np.unique(key, return_inverse=True)
    uniq = np.empty((len(ukey), codes.shape[1]), dtype=np.int64)
    for j in range(codes.shape[1] - 1, -1, -1):
        uniq[:, j] = ukey % span[j]
        ukey = ukey // span[j]
    return uniq, inv.ravel()


def _bgnbd_totals_numba(
    draws, spend_draws, row_key, ginv, cnt, zsum, groups_c, x_vals, tx_vals, T_vals, n_seg, edges
) -> np.ndarray:
    """BG/NBD totals by the numba kernel (see :mod:`crmkit.models.clv.prediction_kernels`)."""
    prm = {k: v[:, 0].astype(float) for k, v in _params("bgnbd", draws).items()}
    S = len(prm["r"])
    if spend_draws is None:
        p = q = gamma = np.ones(S)
    else:
        p, q, gamma = (spend_draws[nm].to_numpy().astype(float) for nm in ("p", "q", "gamma"))
    x_int = np.round(x_vals).astype(np.int64)
    return bgnbd_totals(
        prm["r"],
        prm["alpha"],
        prm["a"],
        prm["b"],
        p,
        q,
        gamma,
        spend_draws is not None,
        x_int[row_key[:, 1]],
        row_key[:, 2].copy(),
        row_key[:, 3].copy(),
        ginv.astype(np.int64),
        cnt,
        zsum,
        tx_vals,
        T_vals,
        x_int[groups_c[:, 1]],
        groups_c[:, 2].copy(),
        groups_c[:, 0].copy(),
        int(n_seg),
        int(x_int.max(initial=0)),
        edges,
    )


def simulate_totals(
    kind: str,
    draws: xr.Dataset,
    x: np.ndarray,
    t_x: np.ndarray,
    T: np.ndarray,
    edges: np.ndarray,
    *,
    spend_draws: xr.Dataset | None = None,
    mean_spend: np.ndarray | None = None,
    segment: pd.Series | np.ndarray | None = None,
    chunk_size: int = 2_000,
    seed: int | None = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior-predictive totals: simulated purchases (and spend) per draw, segment, period.

    For each parameter draw and customer: alive at T with P(alive); the customer's rates
    drawn from their posterior given alive (BG/NBD: lambda ~ Gamma(r+x, alpha+T),
    p ~ Beta(a, b+x); Pareto/NBD: lambda ~ Gamma(r+x, alpha+T), mu ~ Gamma(s, beta+T));
    then purchases simulated period by period. Spend per purchase: Gamma(p, nu) with
    nu ~ Gamma(p x + q, gamma + x mean_spend).

    Parameters
    ----------
    kind, draws, x, t_x, T, edges, spend_draws, mean_spend, segment
        As in :func:`expected_totals`.
    chunk_size
        Customers per chunk.
    seed
        Random seed.

    Returns
    -------
    totals : numpy.ndarray
        Shape (n_draws, n_segments, n_periods).
    labels : numpy.ndarray
        Segment labels.
    """
    rng = np.random.default_rng(seed)
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    n = len(x)
    seg, labels = _segment_codes(segment, n)
    z = np.zeros(n) if mean_spend is None else np.asarray(mean_spend, dtype=float)
    S = draws.sizes["sample"]
    K = len(edges) - 1
    widths = np.diff(np.asarray(edges, dtype=float))
    out = np.zeros((S, len(labels), K))
    prm = _params(kind, draws)
    if spend_draws is not None:
        p, q, gamma = (_p(spend_draws, nm) for nm in ("p", "q", "gamma"))
    for lo in range(0, n, chunk_size):
        sl = slice(lo, min(lo + chunk_size, n))
        xc, Tc = x[sl][None, :], T[sl][None, :]
        shape = (S, xc.shape[1])
        alive = rng.random(shape) < probability_alive(kind, draws, x[sl], t_x[sl], T[sl])
        lam = rng.gamma(prm["r"] + xc, 1.0 / (prm["alpha"] + Tc), size=shape)
        counts = np.zeros((K, *shape))
        if kind == "bgnbd":
            pdrop = rng.beta(prm["a"], prm["b"] + xc, size=shape)
            left = rng.geometric(np.clip(pdrop, 1e-12, 1.0))  # purchases until dropout
            cum = np.zeros(shape)
            for k in range(K):
                new = rng.poisson(lam * widths[k])
                take = np.minimum(new, left)
                counts[k] = take
                left = left - take
                cum += take
        else:
            mu = rng.gamma(prm["s"], 1.0 / (prm["beta"] + Tc), size=shape)
            death = rng.exponential(1.0 / mu)
            for k in range(K):
                active = np.clip(death - edges[k], 0.0, widths[k])
                counts[k] = rng.poisson(lam * active)
        counts *= alive[None]
        if spend_draws is not None:
            zc = np.where(xc > 0, z[sl][None, :], 0.0)
            nu = rng.gamma(p * xc + q, 1.0 / (gamma + xc * zc), size=shape)
            for k in range(K):
                c = counts[k]
                spent = np.where(c > 0, rng.gamma(np.maximum(c * p, 1e-300), 1.0) / nu, 0.0)
                counts[k] = spent
        segc = seg[sl]
        for sidx in np.unique(segc):
            out[:, sidx, :] += counts[:, :, segc == sidx].sum(axis=2).T
    return out, labels
