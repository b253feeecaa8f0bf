r"""Numba kernels of the BG/NBD totals in :func:`crmkit.models.clv.predictions.expected_totals`.

One parameter draw at a time (threads over draws), nothing of size draws x customers is
built. For a draw:

1. Sum ``P(alive | x, t_x, T) * weight`` per (segment, x, T) group over the unique
   (segment, x, t_x, T) rows; the logs of ``alpha + T`` and ``alpha + t_x`` come from
   tables over the distinct T and t_x values, so a row costs one ``exp``.
2. For each group and period edge, ``E[X(t) | alive, x, T]`` by the Euler-transformed
   hypergeometric series. With ``c = a + b + x - 1``, ``z = t / (alpha + T + t)`` and
   ``L = log(1 - z)``,

   .. math::

       E = \frac{c}{a-1}\Big(1 - (1-z)^{r+x}\,{}_2F_1(r+x, b+x; c; z)\Big)
         = c\Big(\frac{-\operatorname{expm1}((a-1)L)}{a-1} - e^{(a-1)L}\,G\Big),

   where :math:`G = \sum_{n\ge1} (A)_n (a)_{n-1} z^n / ((c)_n\, n!)` and
   :math:`A = a + b - 1 - r` (Euler's transformation turns the second parameter into
   ``a - 1``). The form has no ``1 / (a - 1)`` singularity, and the term ratio is shared by
   all period edges of a group, so the edges are summed together.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_EPS = 1e-16
_MAX_TERMS = 200_000


@njit(cache=True)
def _series(big_a, a, c, z, term, g):
    """G_k of the module text for each edge's z[k] (k >= 1) into g; term is work space."""
    K = z.shape[0]
    zmax = 0.0
    for k in range(1, K):
        term[k] = 1.0
        g[k] = 0.0
        if z[k] > zmax:
            zmax = z[k]
    n = 0
    while n < _MAX_TERMS:
        # term_1 = A z / c; term_{n+1} / term_n = (A+n)(a+n-1) z / ((c+n)(n+1)) for n >= 1
        if n == 0:
            ratio = big_a / c
        else:
            ratio = (big_a + n) * (a + n - 1.0) / ((c + n) * (n + 1.0))
        last = 0.0
        total = 0.0
        for k in range(1, K):
            term[k] *= ratio * z[k]
            g[k] += term[k]
            last = max(last, abs(term[k]))
            total += abs(g[k])
        n += 1
        if last == 0.0:
            break
        rho = abs(ratio) * zmax
        if rho < 1.0 and n > 1 and last / (1.0 - max(rho, zmax)) <= _EPS * total:
            break


def _cum_expected(r, alpha, a, b, x, T, edges):
    """E[X(edges[k]) | alive, x, T] for k >= 0 (plain numpy reference of the kernel's steps)."""
    K = len(edges)
    c = a + b + x - 1.0
    z = np.asarray(edges, dtype=float) / (alpha + T + np.asarray(edges, dtype=float))
    g = np.zeros(K)
    _series(a + b - 1.0 - r, a, c, z, np.zeros(K), g)
    L = np.log(alpha + T) - np.log(alpha + T + np.asarray(edges, dtype=float))
    am1 = a - 1.0
    first = -L if abs(am1) < 1e-12 else -np.expm1(am1 * L) / am1
    out = c * (first - np.exp(am1 * L) * g)
    out[0] = 0.0
    return out


@njit(cache=True, parallel=True)
def bgnbd_totals(
    r,
    alpha,
    a,
    b,
    p,
    q,
    gamma,
    with_spend,
    row_x,
    row_tx,
    row_T,
    row_group,
    row_cnt,
    row_zsum,
    tx_values,
    T_values,
    group_x,
    group_T,
    group_seg,
    n_seg,
    max_x,
    edges,
):
    """Expected purchases (or revenue) per draw, segment and period; see the module text."""
    S = r.shape[0]
    U = row_x.shape[0]
    G = group_x.shape[0]
    K = edges.shape[0]
    out = np.zeros((S, n_seg, K - 1))
    for s in prange(S):
        rs, als, as_, bs = r[s], alpha[s], a[s], b[s]
        log_a = np.log(as_)
        log_T = np.log(als + T_values)
        log_tx = np.log(als + tx_values)
        log_bx = np.zeros(max_x + 1)
        inv_den = np.zeros(max_x + 1)
        for xv in range(1, max_x + 1):
            log_bx[xv] = np.log(bs + xv - 1.0)
        acc = np.zeros(G)
        fallback = 0.0
        if with_spend:
            ps, qs, gs = p[s], q[s], gamma[s]
            for xv in range(max_x + 1):
                d = ps * xv + qs - 1.0
                inv_den[xv] = 1.0 / d if d > 0 else np.nan
            # mean expected spend of repeat buyers: stands in where p x + q - 1 <= 0
            num = 0.0
            den = 0.0
            for j in range(U):
                xj = row_x[j]
                if xj > 0:
                    num += (ps * gs * row_cnt[j] + ps * xj * row_zsum[j]) * inv_den[xj]
                    den += row_cnt[j]
            fallback = num / den if den > 0 else np.nan
        for j in range(U):
            xj = row_x[j]
            if xj > 0:
                lo = log_a - log_bx[xj] + (rs + xj) * (log_T[row_T[j]] - log_tx[row_tx[j]])
                alive = 1.0 / (1.0 + np.exp(lo))
            else:
                alive = 1.0
            if with_spend:
                if ps * xj + qs - 1.0 > 0:
                    w = (ps * gs * row_cnt[j] + ps * xj * row_zsum[j]) * inv_den[xj]
                else:
                    w = fallback * row_cnt[j]
            else:
                w = row_cnt[j]
            acc[row_group[j]] += alive * w
        # Per distinct T and edge: z, -expm1((a-1)L)/(a-1) and exp((a-1)L), L = log(1-z).
        nT = T_values.shape[0]
        zt = np.zeros((nT, K))
        ft = np.zeros((nT, K))
        wt = np.ones((nT, K))
        am1 = as_ - 1.0
        for i in range(nT):
            for k in range(1, K):
                L = log_T[i] - np.log(als + T_values[i] + edges[k])
                zt[i, k] = edges[k] / (als + T_values[i] + edges[k])
                ft[i, k] = -L if abs(am1) < 1e-12 else -np.expm1(am1 * L) / am1
                wt[i, k] = np.exp(am1 * L)
        big_a = as_ + bs - 1.0 - rs
        term = np.empty(K)
        gk = np.zeros(K)
        for g in range(G):
            if acc[g] == 0.0:
                continue
            ti = group_T[g]
            c = as_ + bs + group_x[g] - 1.0
            _series(big_a, as_, c, zt[ti], term, gk)
            sg = group_seg[g]
            prev = 0.0
            for k in range(1, K):
                cur = c * (ft[ti, k] - wt[ti, k] * gk[k])
                out[s, sg, k - 1] += acc[g] * (cur - prev)
                prev = cur
    return out
