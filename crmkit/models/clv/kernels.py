r"""Hand-written numba log-posteriors and gradients of the CLV models, for NUTS.

Each kernel returns the weighted total log-posterior of the unconstrained (log)
parameters ``z = log(theta)`` -- likelihood, priors and the log-Jacobian ``sum(z)`` -- and
its exact gradient in ``z``, for the same model that :meth:`BayesianEstimator._build`
writes in PyMC. The data enter as arguments, so numba compiles each kernel once per
installation (``cache=True``), not once per fit; ``nogil=True`` lets nutpie's chains run
in parallel threads.

Work per evaluation is cut by grouping: terms that depend on a customer only through x
(``lgamma``, ``digamma``) are evaluated per unique x with summed weights, and
``log(alpha + T)``, ``log(alpha + t_x)`` per unique T and t_x (data on a day grid have a
few hundred of each). Per unique (x, t_x, T) row the BG/NBD needs one ``log1p`` and one
division (``exp`` of its mixing term factorises over unique (x, T) and (x, t_x) pairs); the
Pareto/NBD integrates its integral term (see :mod:`crmkit.models.clv.likelihoods`) with
Gauss-Legendre nodes, the gradient by the same nodes applied to the integrand's
derivatives; the Gamma-Gamma's per-row sums of ``log(gamma + x m)`` are Taylor series in
gamma around its mode (exact to rounding within half the radius of convergence, per-row
sums outside it).

Supported priors (each on one positive parameter, log transform): ``HalfNormal(sigma)``,
``Exponential(lam)``, ``Gamma(alpha, beta)``, ``LogNormal(mu, sigma)``; for the Gamma-Gamma
kernel also ``TruncatedNormal(mu, sigma, lower)`` (no upper bound), sampled as
``theta = lower + exp(z)``, the transform PyMC gives that prior, so the default ``q > 1``
prior keeps the fast kernel. Other priors make :func:`prior_table` return None and the caller
falls back to the PyMC graph.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit
from scipy import optimize

from crmkit.models.clv.likelihoods import GL_NODES, GL_WEIGHTS

#: Prior codes of the kernels.
_PRIOR_CODES = {"HalfNormal": 0, "Exponential": 1, "Gamma": 2, "LogNormal": 3, "TruncatedNormal": 4}
_PRIOR_ARGS = {
    "HalfNormal": ("sigma",),
    "Exponential": ("lam",),
    "Gamma": ("alpha", "beta"),
    "LogNormal": ("mu", "sigma"),
    "TruncatedNormal": ("mu", "sigma", "lower"),
}
#: Priors on a shifted parameter ``theta = lower + exp(z)`` (only kernels that read the
#: shift column of the prior table take them).
_SHIFTED = ("TruncatedNormal",)
#: Gauss-Legendre nodes of the Pareto/NBD kernel (the PyMC graph uses the 48 of
#: ``clv_likelihoods``; 48 here too keeps the two equal to rounding).
PARETO_NODES = 24
#: Terms of the Gamma-Gamma series around the mode (truncation error < 2^-48).
GG_SERIES_TERMS = 48


@dataclass(frozen=True)
class Kernel:
    """A compiled log-posterior: ``fn(z, *args) -> (logp, grad)``.

    ``shift`` holds each parameter's lower bound: ``theta = shift + exp(z)`` (zeros: plain
    log-parameters).
    """

    fn: Any
    args: tuple
    shift: tuple[float, ...] | None = None

    def __call__(self, z: np.ndarray) -> tuple[float, np.ndarray]:
        """Log-posterior and gradient at unconstrained values ``z``."""
        return self.fn(np.asarray(z, dtype=np.float64), *self.args)

    def to_natural(self, z: np.ndarray) -> np.ndarray:
        """Parameters ``theta`` at unconstrained values ``z``."""
        z = np.asarray(z, dtype=np.float64)
        return np.exp(z) + (0.0 if self.shift is None else np.asarray(self.shift))

    def to_unconstrained(self, theta: np.ndarray) -> np.ndarray:
        """Unconstrained values ``z`` of parameters ``theta`` (each above its shift)."""
        theta = np.asarray(theta, dtype=np.float64)
        return np.log(theta - (0.0 if self.shift is None else np.asarray(self.shift)))


def prior_table(
    priors: dict[str, dict[str, Any]], names: tuple[str, ...], *, shifted: bool = False
) -> np.ndarray | None:
    """Priors as rows (code, p1, p2, shift), or None when one is not supported by the kernels.

    Parameters
    ----------
    priors
        name -> {"dist": PyMC distribution name, **keyword arguments}.
    names
        Parameter order.
    shifted
        Accept priors with a lower bound (``TruncatedNormal`` with ``lower``), sampled as
        ``lower + exp(z)``: only for kernels that read the shift column (Gamma-Gamma).

    Returns
    -------
    numpy.ndarray or None
        Shape (len(names), 4); the last column is the parameter's lower bound (0 for the
        log-transformed priors).
    """
    out = np.zeros((len(names), 4))
    for i, n in enumerate(names):
        spec = dict(priors[n])
        dist = spec.pop("dist")
        want = _PRIOR_ARGS.get(dist)
        if want is None or set(spec) != set(want) or (dist in _SHIFTED and not shifted):
            return None
        values = [float(spec[k]) for k in want]
        if dist in _SHIFTED:
            if not (values[1] > 0 and np.isfinite(values[2])):
                return None
            out[i] = [_PRIOR_CODES[dist], *values]
        else:
            out[i] = [_PRIOR_CODES[dist], *values, *([0.0] * (2 - len(want))), 0.0]
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def digamma(x: float) -> float:
    """Digamma function for x > 0 (recurrence to x >= 6, then the asymptotic series)."""
    res = 0.0
    while x < 6.0:
        res -= 1.0 / x
        x += 1.0
    f = 1.0 / (x * x)
    t = f * (
        -1.0 / 12
        + f
        * (
            1.0 / 120
            + f * (-1.0 / 252 + f * (1.0 / 240 + f * (-1.0 / 132 + f * (691.0 / 32760 - f / 12))))
        )
    )
    return res + math.log(x) - 0.5 / x + t


@njit(cache=True, nogil=True, error_model="numpy")
def _prior(z, table, grad):
    """Log-prior plus log-Jacobian of log-transformed parameters; adds to grad."""
    lp = 0.0
    for i in range(z.shape[0]):
        code = table[i, 0]
        p1 = table[i, 1]
        p2 = table[i, 2]
        th = math.exp(z[i])
        if code == 4:  # TruncatedNormal(mu, sigma, lower): theta = lower + exp(z)
            d = (table[i, 3] + th - p1) / p2
            a = (table[i, 3] - p1) / p2
            log_sf = math.log(0.5 * math.erfc(a / math.sqrt(2.0)))
            lp += -0.5 * math.log(2.0 * math.pi) - math.log(p2) - 0.5 * d * d - log_sf + z[i]
            grad[i] += 1.0 - d / p2 * th
        elif code == 0:  # HalfNormal(sigma)
            lp += 0.5 * math.log(2.0 / math.pi) - math.log(p1) - 0.5 * (th / p1) ** 2 + z[i]
            grad[i] += 1.0 - (th / p1) ** 2
        elif code == 1:  # Exponential(lam)
            lp += math.log(p1) - p1 * th + z[i]
            grad[i] += 1.0 - p1 * th
        elif code == 2:  # Gamma(alpha, beta)
            lp += p1 * math.log(p2) - math.lgamma(p1) + p1 * z[i] - p2 * th
            grad[i] += p1 - p2 * th
        else:  # LogNormal(mu, sigma)
            d = (z[i] - p1) / p2
            lp += -0.5 * math.log(2.0 * math.pi) - math.log(p2) - 0.5 * d * d
            grad[i] += -d / p2
    return lp


@njit(cache=True, nogil=True, error_model="numpy")
def _softplus(d):
    """log(1 + exp(d)) and the logistic sigmoid of d."""
    if d > 0.0:
        e = math.exp(-d)
        return d + math.log1p(e), 1.0 / (1.0 + e)
    e = math.exp(d)
    return math.log1p(e), e / (1.0 + e)


@njit(cache=True, nogil=True, error_model="numpy")
def betageo_logp(
    z, table, ux, wx, uT, wT, wxT, utx, pair_a_x, pair_a_T, pair_b_x, pair_b_t, row_a, row_b, row_w
):
    """BG/NBD log-posterior and gradient in z = log(r, alpha, a, b).

    ``ux, wx``: unique x and summed weights; ``uT, wT, wxT``: unique T with the sums of
    w and w * x; ``utx``: unique t_x; ``pair_a_*``: unique (x, T) pairs of the rows with
    x > 0 (indices into ``ux``, ``uT``), ``pair_b_*``: their unique (x, t_x) pairs;
    ``row_a, row_b, row_w``: per unique (x, t_x, T) row with x > 0, its two pairs and weight.
    """
    r = math.exp(z[0])
    al = math.exp(z[1])
    a = math.exp(z[2])
    b = math.exp(z[3])
    g = np.zeros(4)  # gradient on the natural scale
    lp = 0.0
    # Terms per unique x: lgamma/digamma parts of A1 and A2.
    lg_r = math.lgamma(r)
    dg_r = digamma(r)
    lg_ab = math.lgamma(a + b)
    dg_ab = digamma(a + b)
    lg_b = math.lgamma(b)
    dg_b = digamma(b)
    log_al = math.log(al)
    for j in range(ux.shape[0]):
        x = ux[j]
        w = wx[j]
        lp += w * (r * log_al)
        g[0] += w * log_al
        g[1] += w * r / al
        if x > 0.0:
            lp += w * (math.lgamma(r + x) - lg_r)
            g[0] += w * (digamma(r + x) - dg_r)
            dg_abx = digamma(a + b + x)
            lp += w * (lg_ab + math.lgamma(b + x) - lg_b - math.lgamma(a + b + x))
            g[2] += w * (dg_ab - dg_abx)
            g[3] += w * (dg_ab + digamma(b + x) - dg_b - dg_abx)
    # A3 = -(r + x) log(alpha + T) for every row, per unique T.
    nT = uT.shape[0]
    lT = np.empty(nT)
    iT = np.empty(nT)
    for j in range(nT):
        lT[j] = math.log(al + uT[j])
        iT[j] = 1.0 / (al + uT[j])
        lp -= (r * wT[j] + wxT[j]) * lT[j]
        g[0] -= wT[j] * lT[j]
        g[1] -= (r * wT[j] + wxT[j]) * iT[j]
    ntx = utx.shape[0]
    ltx = np.empty(ntx)
    itx = np.empty(ntx)
    for j in range(ntx):
        ltx[j] = math.log(al + utx[j])
        itx[j] = 1.0 / (al + utx[j])
    # c_x = log a - log(b + x - 1) per unique x.
    nx = ux.shape[0]
    cx = np.empty(nx)
    for j in range(nx):
        cx[j] = math.log(a) - math.log(b + ux[j] - 1.0) if ux[j] > 0.0 else 0.0
    # Rows with x > 0: log(exp(A3) + exp(A4)) = A3 + softplus(d), d = A4 - A3
    # = c_x + (r + x) (log(alpha + T) - log(alpha + t_x)). exp(d) is the product of a
    # factor per unique (x, T) pair and one per unique (x, t_x) pair, so a row needs one
    # log1p and one division. Both factors are centred on c0 to stay in range.
    c0 = lT[nT // 2]
    na = pair_a_x.shape[0]
    fa = np.empty(na)
    for j in range(na):
        fa[j] = math.exp(cx[pair_a_x[j]] + (r + ux[pair_a_x[j]]) * (lT[pair_a_T[j]] - c0))
    nb = pair_b_x.shape[0]
    fb = np.empty(nb)
    for j in range(nb):
        fb[j] = math.exp(-(r + ux[pair_b_x[j]]) * (ltx[pair_b_t[j]] - c0))
    sa = np.zeros(na)  # sums of w * sigmoid(d) per pair
    sb = np.zeros(nb)
    for i in range(row_w.shape[0]):
        ja = row_a[i]
        jb = row_b[i]
        e = fa[ja] * fb[jb]
        if e > 0.0 and e < 1e300:
            sp = math.log1p(e)
            sg = e / (1.0 + e)
        else:  # a factor under- or overflowed: from logs
            jx = pair_a_x[ja]
            d = cx[jx] + (r + ux[jx]) * (lT[pair_a_T[ja]] - ltx[pair_b_t[jb]])
            sp, sg = _softplus(d)
        lp += row_w[i] * sp
        ws = row_w[i] * sg
        sa[ja] += ws
        sb[jb] += ws
    sig_x = np.zeros(nx)  # sum of w * sigmoid per unique x
    for j in range(na):
        jx = pair_a_x[j]
        sig_x[jx] += sa[j]
        g[0] += sa[j] * lT[pair_a_T[j]]
        g[1] += sa[j] * (r + ux[jx]) * iT[pair_a_T[j]]
    for j in range(nb):
        g[0] -= sb[j] * ltx[pair_b_t[j]]
        g[1] -= sb[j] * (r + ux[pair_b_x[j]]) * itx[pair_b_t[j]]
    for j in range(nx):
        if ux[j] > 0.0:
            g[2] += sig_x[j] / a
            g[3] -= sig_x[j] / (b + ux[j] - 1.0)
    grad = np.empty(4)
    grad[0] = g[0] * r
    grad[1] = g[1] * al
    grad[2] = g[2] * a
    grad[3] = g[3] * b
    lp += _prior(z, table, grad)
    return lp, grad


@njit(cache=True, nogil=True, error_model="numpy")
def gammagamma_logp(z, table, ux, wx, slm, row_x, row_c, row_w, g0, radius, moments):
    """Gamma-Gamma log-posterior and gradient in z = log(theta - shift), theta = (p, q, gamma).

    The shift is the prior table's last column (0, or a lower bound such as ``q > 1``).

    ``ux, wx``: unique x and summed weights; ``slm``: per unique x, the sum of
    w * log(mean spend); per unique (x, mean spend) row: index into ``ux``,
    ``c = x * mean spend`` and weight. Near ``g0`` (|gamma - g0| <= radius / 2, where
    radius = g0 + min c) the per-x sums of w log(gamma + c) and w / (gamma + c) come from
    their Taylor series in gamma - g0 with the precomputed ``moments`` (per x: the sum of
    w log(g0 + c), then of w (g0 + c)^-n for n = 1, 2, ...): the truncation error is
    below 2^-n_terms; elsewhere from every row.
    """
    e0 = math.exp(z[0])
    e1 = math.exp(z[1])
    e2 = math.exp(z[2])
    p = table[0, 3] + e0
    q = table[1, 3] + e1
    gm = table[2, 3] + e2
    nx = ux.shape[0]
    s_log = np.zeros(nx)  # sum of w * log(gamma + c) per unique x
    s_inv = np.zeros(nx)  # sum of w / (gamma + c) per unique x
    delta = gm - g0
    if abs(delta) <= 0.5 * radius:
        nt = moments.shape[1]
        for j in range(nx):
            acc_log = 0.0
            acc_inv = 0.0
            dn = 1.0  # (-delta)^(n - 1)
            for n in range(1, nt):
                acc_inv += dn * moments[j, n]
                acc_log += dn * moments[j, n] / n
                dn *= -delta
            s_log[j] = moments[j, 0] + delta * acc_log
            s_inv[j] = acc_inv
    else:
        for i in range(row_w.shape[0]):
            d = gm + row_c[i]
            s_log[row_x[i]] += row_w[i] * math.log(d)
            s_inv[row_x[i]] += row_w[i] / d
    lg_q = math.lgamma(q)
    dg_q = digamma(q)
    log_g = math.log(gm)
    lp = 0.0
    gp = 0.0
    gq = 0.0
    gg = 0.0
    for j in range(nx):
        x = ux[j]
        w = wx[j]
        px = p * x
        lx = math.log(x)
        dg_pxq = digamma(px + q)
        lp += w * (math.lgamma(px + q) - math.lgamma(px) - lg_q + q * log_g + px * lx)
        lp += (px - 1.0) * slm[j] - (px + q) * s_log[j]
        gp += x * (w * (dg_pxq - digamma(px) + lx) + slm[j] - s_log[j])
        gq += w * (dg_pxq - dg_q + log_g) - s_log[j]
        gg += w * q / gm - (px + q) * s_inv[j]
    grad = np.empty(3)
    grad[0] = gp * e0
    grad[1] = gq * e1
    grad[2] = gg * e2
    lp += _prior(z, table, grad)
    return lp, grad


@njit(cache=True, nogil=True, error_model="numpy")
def paretonbd_logp(z, table, ux, wx, uT, wT, wxT, utx, row_x, row_T, row_tx, row_w, nodes, wts):
    """Pareto/NBD log-posterior and gradient in z = log(r, alpha, s, beta).

    Arguments as in :func:`betageo_logp`, but the rows are those with t_x < T (where the
    integral term is non-empty); ``nodes, wts``: Gauss-Legendre on [0, 1].
    """
    r = math.exp(z[0])
    al = math.exp(z[1])
    s = math.exp(z[2])
    be = math.exp(z[3])
    g = np.zeros(4)
    lp = 0.0
    lg_r = math.lgamma(r)
    dg_r = digamma(r)
    log_al = math.log(al)
    log_be = math.log(be)
    for j in range(ux.shape[0]):
        x = ux[j]
        w = wx[j]
        lp += w * (math.lgamma(r + x) - lg_r + r * log_al + s * log_be)
        g[0] += w * (digamma(r + x) - dg_r + log_al)
        g[1] += w * r / al
        g[2] += w * log_be
        g[3] += w * s / be
    # term1 = -(r + x) log(alpha + T) - s log(beta + T), for every row, per unique T.
    nT = uT.shape[0]
    laT = np.empty(nT)
    lbT = np.empty(nT)
    for j in range(nT):
        laT[j] = math.log(al + uT[j])
        lbT[j] = math.log(be + uT[j])
        lp -= (r * wT[j] + wxT[j]) * laT[j] + s * wT[j] * lbT[j]
        g[0] -= wT[j] * laT[j]
        g[1] -= (r * wT[j] + wxT[j]) / (al + uT[j])
        g[2] -= wT[j] * lbT[j]
        g[3] -= s * wT[j] / (be + uT[j])
    ntx = utx.shape[0]
    latx = np.empty(ntx)
    for j in range(ntx):
        latx[j] = math.log(al + utx[j])
    s1 = s + 1.0
    gap = be - al
    nn = nodes.shape[0]
    log_s = math.log(s)
    # Rows with t_x < T: log(exp(term1) + s * J), J = int_{t_x}^T f(tau) dtau,
    # f = (alpha + tau)^-(r + x) (beta + tau)^-(s + 1); substitution as in clv_likelihoods.
    for i in range(row_w.shape[0]):
        x = ux[row_x[i]]
        jT = row_T[i]
        rx = r + x
        m = rx + s
        k = m if m < 1.0 else 1.0
        la = latx[row_tx[i]]  # log(alpha + t_x)
        vT = math.exp(k * (la - laT[jT]))
        width = 1.0 - vT
        e = m / k - 1.0
        big_a = math.exp(la)
        tot = 0.0
        t_lv = 0.0  # sums of f * log(v), f / (alpha + tau), f * log1p(gap / (alpha + tau)),
        t_ia = 0.0  # f / (beta + tau); log(alpha + tau) = la - log(v) / k
        t_l1 = 0.0
        t_ib = 0.0
        for j in range(nn):
            v = vT + width * nodes[j]
            lv = math.log(v)
            apt = big_a / v if k == 1.0 else big_a * math.exp(-lv / k)
            l1 = math.log1p(gap / apt)  # log(beta + tau) - log(alpha + tau)
            arg = e * lv - s1 * l1
            if arg < -700.0:  # negligible; skipping also avoids slow subnormal arithmetic
                continue
            f = wts[j] * math.exp(arg)
            tot += f
            t_lv += f * lv
            t_ia += f / apt
            t_l1 += f * l1
            t_ib += f / (apt + gap)
        t_la = la * tot - t_lv / k  # sum of f * log(alpha + tau)
        t_lb = t_la + t_l1  # sum of f * log(beta + tau)
        # log J = -m log(alpha + t_x) + log(width / k) + log(tot)
        term2 = log_s - m * la + math.log(width / k) + math.log(tot)
        term1 = -rx * laT[jT] - s * lbT[jT]
        sp, sg = _softplus(term2 - term1)
        w = row_w[i]
        lp += w * sp
        ws = w * sg
        # d term2 - d term1, per parameter.
        g[0] += ws * (-t_la / tot + laT[jT])
        g[1] += ws * (-rx * t_ia / tot + rx / (al + uT[jT]))
        g[2] += ws * (1.0 / s - t_lb / tot + lbT[jT])
        g[3] += ws * (-s1 * t_ib / tot + s / (be + uT[jT]))
    grad = np.empty(4)
    grad[0] = g[0] * r
    grad[1] = g[1] * al
    grad[2] = g[2] * s
    grad[3] = g[3] * be
    lp += _prior(z, table, grad)
    return lp, grad


def _index(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique values and each value's index into them."""
    u, inv = np.unique(values, return_inverse=True)
    return u, inv.ravel().astype(np.int64)


def _purchase_args(arrays: dict[str, np.ndarray], rows: np.ndarray) -> tuple:
    """Grouped arrays shared by the BG/NBD and Pareto/NBD kernels."""
    x, tx, T, w = (np.asarray(arrays[k], dtype=np.float64) for k in ("x", "t_x", "T", "w"))
    ux, ix = _index(x)
    wx = np.bincount(ix, weights=w, minlength=len(ux))
    uT, iT = _index(T)
    wT = np.bincount(iT, weights=w, minlength=len(uT))
    wxT = np.bincount(iT, weights=w * x, minlength=len(uT))
    utx, itx = _index(tx[rows])
    return (ux, wx, uT, wT, wxT, utx, ix[rows], iT[rows], itx, np.ascontiguousarray(w[rows]))


def betageo_kernel(arrays: dict[str, np.ndarray], table: np.ndarray) -> Kernel:
    """BG/NBD kernel for compressed arrays ``x, t_x, T, w``.

    Parameters
    ----------
    arrays
        Unique (x, t_x, T) rows and their weights.
    table
        Priors from :func:`prior_table`.

    Returns
    -------
    Kernel
        Callable ``z -> (logp, grad)``.
    """
    rows = np.flatnonzero(np.asarray(arrays["x"]) > 0)
    ux, wx, uT, wT, wxT, utx, rx, rT, rt, rw = _purchase_args(arrays, rows)
    a_pairs, row_a = np.unique(np.column_stack([rx, rT]), axis=0, return_inverse=True)
    b_pairs, row_b = np.unique(np.column_stack([rx, rt]), axis=0, return_inverse=True)
    args = (ux, wx, uT, wT, wxT, utx)
    args += tuple(np.ascontiguousarray(c, dtype=np.int64) for c in (*a_pairs.T, *b_pairs.T))
    args += (row_a.ravel().astype(np.int64), row_b.ravel().astype(np.int64), rw)
    return Kernel(betageo_logp, (np.asarray(table, float), *args))


def paretonbd_kernel(
    arrays: dict[str, np.ndarray], table: np.ndarray, n_nodes: int = PARETO_NODES
) -> Kernel:
    """Pareto/NBD kernel for compressed arrays ``x, t_x, T, w``.

    Parameters
    ----------
    arrays
        Unique (x, t_x, T) rows and their weights.
    table
        Priors from :func:`prior_table`.
    n_nodes
        Gauss-Legendre nodes of the integral term.

    Returns
    -------
    Kernel
        Callable ``z -> (logp, grad)``.
    """
    rows = np.flatnonzero(np.asarray(arrays["t_x"]) < np.asarray(arrays["T"]))
    if n_nodes == len(GL_NODES):
        nodes, wts = GL_NODES, GL_WEIGHTS
    else:
        u, v = np.polynomial.legendre.leggauss(n_nodes)
        nodes, wts = (u + 1.0) / 2.0, v / 2.0
    args = (*_purchase_args(arrays, rows), np.ascontiguousarray(nodes), np.ascontiguousarray(wts))
    return Kernel(paretonbd_logp, (np.asarray(table, float), *args))


def gammagamma_kernel(
    arrays: dict[str, np.ndarray], table: np.ndarray, n_terms: int = GG_SERIES_TERMS
) -> Kernel:
    """Gamma-Gamma kernel for compressed arrays ``x, m, w`` (x >= 1).

    Parameters
    ----------
    arrays
        Unique (x, mean spend) rows and their weights.
    table
        Priors from :func:`prior_table`.
    n_terms
        Terms of the series in gamma around the posterior mode (0: always sum every row).

    Returns
    -------
    Kernel
        Callable ``z -> (logp, grad)``.
    """
    x, m, w = (np.asarray(arrays[k], dtype=np.float64) for k in ("x", "m", "w"))
    table = np.asarray(table, float)
    shift = tuple(float(v) for v in table[:, 3])
    ux, ix = _index(x)
    wx = np.bincount(ix, weights=w, minlength=len(ux))
    slm = np.bincount(ix, weights=w * np.log(m), minlength=len(ux))
    c = x * m
    args = (table, ux, wx, slm, ix, c, w)
    no_series = (0.0, -1.0, np.zeros((len(ux), 1)))
    if n_terms <= 0:
        return Kernel(gammagamma_logp, (*args, *no_series), shift)
    # Centre the series on the posterior mode of gamma, found with the exact kernel.
    exact = Kernel(gammagamma_logp, (*args, *no_series), shift)
    start = np.array([2.0, 2.0, float(np.average(m, weights=w))])
    z0 = exact.to_unconstrained(np.maximum(start, np.asarray(shift) + 1.0))
    res = optimize.minimize(lambda z: tuple(-v for v in exact(z)), z0, jac=True, method="L-BFGS-B")
    best = res.x if np.all(np.isfinite(res.x)) else z0
    g0 = float(exact.to_natural(best)[2])
    inv = 1.0 / (g0 + c)
    moments = np.empty((len(ux), n_terms + 1))
    moments[:, 0] = np.bincount(ix, weights=w * np.log(g0 + c), minlength=len(ux))
    power = w.copy()
    for n in range(1, n_terms + 1):
        power *= inv
        moments[:, n] = np.bincount(ix, weights=power, minlength=len(ux))
    return Kernel(gammagamma_logp, (*args, g0, g0 + float(c.min()), moments), shift)
