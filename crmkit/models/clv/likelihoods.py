r"""Log-likelihoods of the buy-till-you-die models, written once for numpy and for pytensor.

Each function takes an array namespace (:data:`NP` or :data:`PT`) so that the same
formula serves maximum likelihood (numpy + scipy) and NUTS (pytensor, exact gradients
by automatic differentiation). Inputs are per unique row; callers weight and sum.

The Pareto/NBD likelihood avoids the Gauss hypergeometric function 2F1 (whose
gradients in the shape parameters are what makes NUTS slow elsewhere). It uses

.. math::

    L = \frac{\Gamma(r+x)\alpha^r\beta^s}{\Gamma(r)}\Big[
        \frac{1}{(\alpha+T)^{r+x}(\beta+T)^s}
        + s\int_{t_x}^{T}(\alpha+\tau)^{-(r+x)}(\beta+\tau)^{-(s+1)}\,d\tau\Big],

which follows from integrating ``lambda^x mu exp(-(lambda+mu) tau)`` over the death
time ``tau`` and the gamma mixing distributions (Fader & Hardie 2005, "A note on
deriving the Pareto/NBD model"). After the substitution
``w = (alpha+t_x)/(alpha+tau)`` the integrand is a smooth ratio times a power of
``w``, so fixed Gauss-Legendre nodes integrate it to about 1e-8 relative error and
every operation is elementary (exact gradients in pytensor).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytensor.tensor as pt
from scipy import special

#: Gauss-Legendre nodes and weights on [0, 1] for the Pareto/NBD integral.
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(48)
GL_NODES = (_GL_NODES + 1.0) / 2.0
GL_WEIGHTS = _GL_WEIGHTS / 2.0


@dataclass(frozen=True)
class Ops:
    """The few array functions a likelihood needs, for one backend."""

    gammaln: Any
    log: Any
    log1p: Any
    exp: Any
    logaddexp: Any
    where: Any
    sum: Any
    asarray: Any


NP = Ops(
    gammaln=special.gammaln,
    log=np.log,
    log1p=np.log1p,
    exp=np.exp,
    logaddexp=np.logaddexp,
    where=np.where,
    sum=np.sum,
    asarray=np.asarray,
)
PT = Ops(
    gammaln=pt.gammaln,
    log=pt.log,
    log1p=pt.log1p,
    exp=pt.exp,
    logaddexp=pt.logaddexp,
    where=pt.switch,
    sum=pt.sum,
    asarray=pt.as_tensor_variable,
)


def betageo_loglike(ops: Ops, r, alpha, a, b, x, t_x, T):
    """BG/NBD log-likelihood per row (Fader, Hardie & Lee 2005, eq. 6)."""
    a1 = ops.gammaln(r + x) - ops.gammaln(r) + r * ops.log(alpha)
    a2 = ops.gammaln(a + b) + ops.gammaln(b + x) - ops.gammaln(b) - ops.gammaln(a + b + x)
    a3 = -(r + x) * ops.log(alpha + T)
    # For x = 0 the second term is absent; b + x - 1 may be <= 0 there, so guard the log.
    safe = ops.where(x > 0, b + x - 1.0, 1.0)
    a4 = ops.log(a) - ops.log(safe) - (r + x) * ops.log(alpha + t_x)
    both = ops.logaddexp(a3, a4)
    return a1 + a2 + ops.where(x > 0, both, a3)


def paretonbd_loglike(ops: Ops, r, alpha, s, beta, x, t_x, T):
    """Pareto/NBD log-likelihood per row, by 48-node quadrature of its integral form."""
    m = r + s + x
    log_head = ops.gammaln(r + x) - ops.gammaln(r) + r * ops.log(alpha) + s * ops.log(beta)
    term1 = -(r + x) * ops.log(alpha + T) - s * ops.log(beta + T)
    # w = (alpha + t_x) / (alpha + tau) runs from w_T (tau = T) to 1 (tau = t_x), and the
    # integral is (alpha + t_x)^(-m) / m * int h(w) d(w^m) with the smooth, bounded ratio
    # h = ((alpha + tau) / (beta + tau))^(s + 1). Integrate over v = w^k, k = min(m, 1):
    # d(w^m) = (m / k) v^(m/k - 1) dv has no singularity at 0 for either m < 1 or m >= 1.
    k = ops.where(m < 1.0, m, 1.0)
    log_wT = ops.log(alpha + t_x) - ops.log(alpha + T)  # <= 0
    v_T = ops.exp(k * log_wT)
    width = 1.0 - v_T
    open_ = width > 0
    width = ops.where(open_, width, 1.0)  # t_x == T: empty integral, handled below
    v_T = ops.where(open_, v_T, 0.0)
    u = ops.asarray(GL_NODES)
    wts = ops.asarray(GL_WEIGHTS)
    v = v_T[:, None] + width[:, None] * u[None, :]
    log_v = ops.log(v)
    log_w = log_v / k[:, None]
    # alpha + tau = (alpha + t_x) / w, beta + tau = (alpha + t_x) / w - alpha + beta
    log_apt = ops.log(alpha + t_x)[:, None] - log_w
    # Parameters may be scalars or per-row arrays: make them per-row columns.
    s1 = (s + 1.0 + 0.0 * t_x)[:, None]
    gap = (beta - alpha + 0.0 * t_x)[:, None]
    log_h = s1 * (log_apt - ops.log(ops.exp(log_apt) + gap))
    log_f = log_h + ops.log(m / k)[:, None] + (m / k - 1.0)[:, None] * log_v
    integral = ops.sum(wts[None, :] * ops.exp(log_f), axis=1) * width
    term2 = ops.log(s) - ops.log(m) - m * ops.log(alpha + t_x) + ops.log(integral)
    term2 = ops.where(open_, term2, term1 - 800.0)
    return log_head + ops.logaddexp(term1, term2)


def gammagamma_loglike(ops: Ops, p, q, gamma, x, mean_spend):
    """Gamma-Gamma log-likelihood of the mean spend of x >= 1 repeat purchases."""
    px = p * x
    return (
        ops.gammaln(px + q)
        - ops.gammaln(px)
        - ops.gammaln(q)
        + q * ops.log(gamma)
        + (px - 1.0) * ops.log(mean_spend)
        + px * ops.log(x)
        - (px + q) * ops.log(gamma + x * mean_spend)
    )


def paretonbd_loglike_hyp2f1(r, alpha, s, beta, x, t_x, T):
    """Pareto/NBD log-likelihood by the 2F1 closed form (numpy; an independent check)."""
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    m = r + s + x
    log_head = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha) + s * np.log(beta)
    term1 = -(r + x) * np.log(alpha + T) - s * np.log(beta + T)
    if alpha >= beta:
        c, b2 = alpha, s + 1.0
    else:
        c, b2 = beta, r + x
    z1 = abs(alpha - beta) / (c + t_x)
    z2 = abs(alpha - beta) / (c + T)
    f1 = special.hyp2f1(m, b2, m + 1.0, z1) * np.exp(-m * np.log(c + t_x))
    f2 = special.hyp2f1(m, b2, m + 1.0, z2) * np.exp(-m * np.log(c + T))
    a0 = f1 - f2
    return log_head + np.log(np.exp(term1) + s / m * a0)
