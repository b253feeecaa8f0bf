"""MAP + Laplace fit of the pipeline model in plain numpy (no graph compilation).

The same posterior as :meth:`crmkit.models.pipeline.model.PipelineModel.build_model` (same priors,
the group scales on the log scale with their Jacobian), with analytic derivatives, so a
fit takes a second or two and backtests over many origins stay fast.

Two ways to place the group scales ``sigma_<group>`` (``fit_map_numpy(scales=...)``):

- ``"marginal"`` (the default): the scales from their Laplace-approximate *marginal*
  posterior, the other parameters integrated out (INLA / lme4-glmer style). For fixed log
  scales ``s`` the rest ``x`` (stage, time effects and the group effects in the centred
  form ``u ~ Normal(0, sigma)``) has a concave log-posterior, solved by Newton's method
  with the analytic Hessian ``X'WX`` (:class:`CentredPosterior`); then
  ``log p(s | y) ~= log p(y, x_hat(s), s) - 1/2 log det H(s)`` is maximised over the few
  ``s`` (L-BFGS with its analytic gradient). Draws: ``s`` from the normal approximation of
  that marginal at its mode (Hessian by differences of the gradient, its curvature floored
  at :data:`SCALE_CURVATURE_FLOOR`, figure ``scale_curvature_floored``), each principal
  direction split at the mode with its own sd on either side (INLA's skewness correction:
  a long tail towards small scales); ``x`` from the conditional normal ``N(x_hat(a),
  H(a)^-1)`` at the nearest of :data:`N_ANCHORS` anchor points ``a`` of the scales,
  shifted linearly to each drawn ``s`` (``dx_hat/ds`` by the implicit function theorem);
  the effects of levels without data (the unseen owner, team, ...) exactly
  ``Normal(0, sigma)`` with the drawn ``sigma``. SBC: calibrated scales
  (benchmarks/results/sbc.md, "After the marginal scales"); it agrees with NUTS deal by
  deal, so the MAP forecast of a large company and the NUTS forecast of a small one are
  the same model's (benchmarks/RESULTS.md, "Issue #17, fourth part").
- ``"joint"``: the mode of the joint posterior in the non-centred form
  ``u = sigma * z`` and one normal approximation there (inverse Hessian by differences of
  the gradient). It overstates the scales: the joint mode solves
  ``sum(u^2) / sigma^2 + 1 = sigma^2 / group_sigma^2``, far above the effects' spread
  (benchmarks/results/sbc.md). Kept for comparison.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy import linalg, optimize, sparse
from threadpoolctl import threadpool_limits  # a dependency of pymc

from crmkit.errors import CrmkitError
from crmkit.models.inference.laplace import laplace_draws, numeric_hessian
from crmkit.models.pipeline.data import (
    DUE_LEVELS,
    MONTH_EDGES,
    STAGE_AHEAD_SIGMA,
    Levels,
    require_stage_ahead,
    stage_ahead_levels,
    stage_ahead_matrix,
)

#: Ways of placing the group scales (see the module docstring).
SCALES = ("marginal", "joint")
#: Floor of the curvature (per unit log scale) of the scales' marginal: a scale the data and
#: its prior barely inform is drawn with a log-scale sd of at most 1, not an infinite one.
SCALE_CURVATURE_FLOOR = 1.0
#: Points of the scales' marginal at which the others' conditional normal is taken.
N_ANCHORS = 16
#: Bounds of a log scale in the marginal's search (scales 1e-4 .. 20 x ``group_sigma``).
LOG_SCALE_MIN = np.log(1e-4)
LOG_SCALE_ABOVE_PRIOR = np.log(20.0)


class _Layout:
    """Positions of each parameter block in the flat vector."""

    def __init__(self, levels: Levels) -> None:
        self.blocks: dict[str, tuple[int, tuple[int, ...]]] = {}
        self.size = 0
        n_age = len(MONTH_EDGES)
        self._add("stage", (2, len(levels.stage) + 1))
        self._add("ahead", (2, n_age - 1))
        self._add("age", (2, n_age - 1))
        self._add("due", (2, len(DUE_LEVELS) - 1))
        self._add("miq", (2, 2))
        self._add("stage_ahead", (2, stage_ahead_levels(len(levels.stage) + 1) - 1))
        for g in levels.groups:
            self._add(f"log_sigma_{g}", (2,))
            self._add(f"z_{g}", (2, len(levels.groups[g]) + 1))

    def _add(self, name: str, shape: tuple[int, ...]) -> None:
        self.blocks[name] = (self.size, shape)
        self.size += int(np.prod(shape))

    def get(self, theta: np.ndarray, name: str) -> np.ndarray:
        """View of one block."""
        start, shape = self.blocks[name]
        return theta[..., start : start + int(np.prod(shape))].reshape(theta.shape[:-1] + shape)


def _full(free: np.ndarray) -> np.ndarray:
    """Prepend the zero reference level."""
    return np.concatenate([np.zeros((*free.shape[:-1], 1)), free], axis=-1)


def _cell_terms(
    eta: np.ndarray, obs: np.ndarray, n_tot: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """Multinomial log-likelihood of the cells, residuals ``obs - n p`` and probabilities ``p``."""
    m = np.maximum(eta.max(axis=0, initial=0.0), 0.0)
    lse = m + np.log(np.exp(-m) + np.exp(eta - m).sum(axis=0))
    ll = float((obs * eta).sum() - (n_tot * lse).sum())
    p = np.exp(eta - lse)
    return ll, obs - n_tot * p, p


def _fixed_blocks(get: Callable[[str], np.ndarray], n_stage: int) -> dict[str, np.ndarray]:
    """The stage and time-effect draws, reference levels prepended, from a block getter.

    ``stage_ahead`` comes as ``(..., 2, n_stage, n_ahead)`` (months-ahead level 0 zero).
    """
    out = {"stage": get("stage")}
    for name in ("ahead", "age", "due", "miq"):
        out[name] = _full(get(name))
    out["stage_ahead"] = stage_ahead_matrix(_full(get("stage_ahead")), n_stage)
    return out


def stage_ahead_sigma(priors: dict[str, float]) -> float:
    """Prior sd of the stage x months-ahead interaction (``stage_ahead_sigma``)."""
    return float(priors.get("stage_ahead_sigma", STAGE_AHEAD_SIGMA))


def log_posterior(
    cells: pd.DataFrame, levels: Levels, priors: dict[str, float]
) -> tuple[_Layout, Callable[[np.ndarray], tuple[float, np.ndarray]]]:
    """The pipeline model's log-posterior and its gradient over the flat parameter vector.

    Parameters
    ----------
    cells, levels
        Training cells and levels (:func:`crmkit.models.pipeline.data.landmark_cells`).
    priors
        The priors in effect (``stage_mu``, ``stage_sigma``, ``effect_sigma``, ``group_sigma``,
        optionally ``stage_ahead_sigma``).

    Returns
    -------
    (_Layout, callable)
        The layout of the vector (blocks ``stage``, ``ahead``, ``age``, ``due``, ``miq``,
        ``stage_ahead``, ``log_sigma_<group>``, ``z_<group>``) and
        ``theta -> (log-posterior, gradient)``, up to a constant, with the Jacobian of the
        log scales.
    """
    lay = _Layout(levels)
    require_stage_ahead(cells, levels)  # set by the builders of cells, not here
    idx = {c: cells[c].to_numpy(np.int64) for c in cells.columns if not c.startswith("n_")}
    n_win = cells["n_win"].to_numpy(float)
    n_lose = cells["n_lose"].to_numpy(float)
    n_tot = n_win + n_lose + cells["n_stay"].to_numpy(float)
    obs = np.stack([n_win, n_lose])
    mu0, s0 = priors["stage_mu"], priors["stage_sigma"]
    se, sg = priors["effect_sigma"], priors["group_sigma"]
    sa = stage_ahead_sigma(priors)
    sizes = {
        "stage": len(levels.stage) + 1,
        "ahead": len(MONTH_EDGES),
        "age": len(MONTH_EDGES),
        "due": len(DUE_LEVELS),
        "stage_ahead": stage_ahead_levels(len(levels.stage) + 1),
    }

    def eta_of(theta: np.ndarray) -> np.ndarray:
        eta = lay.get(theta, "stage")[:, idx["stage"]]
        eta = eta + _full(lay.get(theta, "ahead"))[:, idx["ahead"]]
        eta = eta + _full(lay.get(theta, "age"))[:, idx["age"]]
        eta = eta + _full(lay.get(theta, "due"))[:, idx["due"]]
        eta = eta + _full(lay.get(theta, "miq"))[:, idx["miq"]]
        eta = eta + _full(lay.get(theta, "stage_ahead"))[:, idx["stage_ahead"]]
        for g in levels.groups:
            sig = np.exp(lay.get(theta, f"log_sigma_{g}"))
            eta = eta + (sig[:, None] * lay.get(theta, f"z_{g}"))[:, idx[g]]
        return eta

    def logp(theta: np.ndarray) -> tuple[float, np.ndarray]:
        ll, r, _ = _cell_terms(eta_of(theta), obs, n_tot)  # r: d ll / d eta, (2, cells)
        grad = np.zeros_like(theta)

        def put(name: str, value: np.ndarray) -> None:
            start, shape = lay.blocks[name]
            grad[start : start + int(np.prod(shape))] = value.ravel()

        def by(code: np.ndarray, n: int) -> np.ndarray:
            return np.stack([np.bincount(code, weights=r[j], minlength=n) for j in (0, 1)])

        st = lay.get(theta, "stage")
        ll += float(-((st - mu0) ** 2).sum() / (2 * s0**2))
        put("stage", by(idx["stage"], sizes["stage"]) - (st - mu0) / s0**2)
        for name in ("ahead", "age", "due"):
            free = lay.get(theta, name)
            ll += float(-(free**2).sum() / (2 * se**2))
            put(name, by(idx[name], sizes[name])[:, 1:] - free / se**2)
        miq = lay.get(theta, "miq")
        ll += float(-(miq**2).sum() / (2 * se**2))
        put("miq", by(idx["miq"], 3)[:, 1:] - miq / se**2)
        inter = lay.get(theta, "stage_ahead")
        ll += float(-(inter**2).sum() / (2 * sa**2))
        put("stage_ahead", by(idx["stage_ahead"], sizes["stage_ahead"])[:, 1:] - inter / sa**2)
        for g in levels.groups:
            ls = lay.get(theta, f"log_sigma_{g}")
            sig = np.exp(ls)
            z = lay.get(theta, f"z_{g}")
            du = by(idx[g], z.shape[1])
            ll += float(-(z**2).sum() / 2 - (sig**2).sum() / (2 * sg**2) + ls.sum())
            put(f"z_{g}", sig[:, None] * du - z)
            put(f"log_sigma_{g}", sig * (z * du).sum(axis=1) - sig**2 / sg**2 + 1.0)
        return ll, grad

    return lay, logp


class CentredPosterior:
    """The pipeline model's posterior in the centred form, for fixed group scales.

    The parameters ``x`` are the blocks ``stage``, ``ahead``, ``age``, ``due``, ``miq``,
    ``stage_ahead`` (reference levels left out, as in :func:`log_posterior`) and
    ``u_<group>`` (every level, the unseen one included, ``u ~ Normal(0, sigma)``); the log
    scales ``s`` are one per group and outcome, ``s[2 * i + j]`` for the ``i``-th group of
    ``levels.groups`` and outcome ``j`` (0 won, 1 lost). For fixed ``s`` the log-posterior
    in ``x`` is concave (multinomial logit plus Gaussian priors): its Hessian is
    ``X'WX + diag(precision)`` with the cells' one-hot design ``X`` and
    ``W = n_tot * (diag p - p p^T)`` per cell.

    Parameters
    ----------
    cells, levels
        Training cells and levels (:func:`crmkit.models.pipeline.data.landmark_cells`).
    priors
        The priors in effect (``stage_mu``, ``stage_sigma``, ``effect_sigma``, ``group_sigma``).
    """

    def __init__(self, cells: pd.DataFrame, levels: Levels, priors: dict[str, float]) -> None:
        self.levels = levels
        require_stage_ahead(cells, levels)  # set by the builders of cells, not here
        self.groups = list(levels.groups)
        self.group_sigma = float(priors["group_sigma"])
        n_time = len(MONTH_EDGES)
        se2 = float(priors["effect_sigma"]) ** 2
        spec = [
            ("stage", "stage", len(levels.stage) + 1, 0, float(priors["stage_sigma"]) ** 2),
            ("ahead", "ahead", n_time, 1, se2),
            ("age", "age", n_time, 1, se2),
            ("due", "due", len(DUE_LEVELS), 1, se2),
            ("miq", "miq", 3, 1, se2),
            (
                "stage_ahead",
                "stage_ahead",
                stage_ahead_levels(len(levels.stage) + 1),
                1,
                stage_ahead_sigma(priors) ** 2,
            ),
            *[(f"u_{g}", g, len(levels.groups[g]) + 1, 0, 0.0) for g in self.groups],
        ]
        n_cells = len(cells)
        rows: list[np.ndarray] = []
        cols: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])
        self.blocks: dict[str, tuple[int, tuple[int, int]]] = {}
        prec, mean, scale_of = [], [], []
        base, full = [], ([], [])  # per factor: base codes (-1: reference); base -> x index
        start = 0
        for name, column, n, ref, var in spec:
            k = n - ref
            self.blocks[name] = (start, (2, k))
            code = cells[column].to_numpy(np.int64) - ref
            keep = code >= 0
            rows.append(np.flatnonzero(keep))
            base.append(np.where(keep, len(full[0]) + code, -1))
            full[0].extend(range(start, start + k))
            full[1].extend(range(start + k, start + 2 * k))
            for j in (0, 1):
                cols[j].append(start + j * k + code[keep])
                if name.startswith("u_"):
                    prec.append(np.zeros(k))
                    scale_of.append(np.full(k, 2 * self.groups.index(column) + j))
                else:
                    prec.append(np.full(k, 1.0 / var))
                    scale_of.append(np.full(k, -1))
                mean.append(np.full(k, float(priors["stage_mu"]) if name == "stage" else 0.0))
            start += 2 * k
        self.size = start
        self.n_scales = 2 * len(self.groups)
        r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        self.design = tuple(
            sparse.csr_matrix(
                (np.ones(len(r)), (r, np.concatenate(cols[j]))), shape=(n_cells, self.size)
            )
            for j in (0, 1)
        )
        self.prec_fixed = np.concatenate(prec)
        self.mean = np.concatenate(mean)
        self.scale_of = np.concatenate(scale_of)
        self.n_per_scale = np.bincount(self.scale_of[self.scale_of >= 0], minlength=self.n_scales)
        n_win = cells["n_win"].to_numpy(float)
        n_lose = cells["n_lose"].to_numpy(float)
        self.obs = np.stack([n_win, n_lose])
        self.n_tot = n_win + n_lose + cells["n_stay"].to_numpy(float)
        weight = self.design[0].T @ self.n_tot + self.design[1].T @ self.n_tot
        # X'WX by pairs of base levels a <= b sharing a cell: vec(X'diag(w)X) = K w
        q = len(full[0])
        codes = np.stack(base, axis=1) if base else np.zeros((n_cells, 0), np.int64)
        pair_rows, pair_cells = [], []
        for f1 in range(codes.shape[1]):
            for f2 in range(f1, codes.shape[1]):
                both = np.flatnonzero((codes[:, f1] >= 0) & (codes[:, f2] >= 0))
                pair_rows.append(codes[both, f1] * q + codes[both, f2])
                pair_cells.append(both)
        pr = np.concatenate(pair_rows) if pair_rows else np.zeros(0, np.int64)
        pc = np.concatenate(pair_cells) if pair_cells else np.zeros(0, np.int64)
        self._pairs = sparse.csr_matrix((np.ones(len(pr)), (pr, pc)), shape=(q * q, n_cells))
        self._pairs_t = self._pairs.T.tocsr()
        self._base = q
        self._perm = np.array(full[0] + full[1], dtype=np.int64)
        self._unperm = np.argsort(self._perm)
        #: Parameters no cell informs (levels without data): their prior is their posterior.
        self.no_data = weight <= 0

    def initial(self) -> np.ndarray:
        """The prior mean of ``x``: a starting point."""
        return self.mean.copy()

    def precision(self, s: np.ndarray) -> np.ndarray:
        """Prior precision of each entry of ``x`` given the log scales ``s``."""
        padded = np.append(np.asarray(s, dtype=float), 0.0)  # scale_of -1: the pad
        return np.where(self.scale_of >= 0, np.exp(-2.0 * padded[self.scale_of]), self.prec_fixed)

    def _cells(self, x: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """Log-likelihood, residuals ``obs - n p`` and probabilities ``p`` of the cells."""
        eta = np.stack([self.design[0] @ x, self.design[1] @ x])
        return _cell_terms(eta, self.obs, self.n_tot)

    def log_joint(self, x: np.ndarray, s: np.ndarray) -> float:
        """``log p(y, x, s)`` up to a constant, with the Jacobian of the log scales.

        Parameters
        ----------
        x
            The centred parameters, shape (``size``,).
        s
            The log scales, shape (``n_scales``,).

        Returns
        -------
        float
        """
        s = np.asarray(s, dtype=float)
        ll = self._cells(x)[0]
        ll -= 0.5 * float((self.precision(s) * (x - self.mean) ** 2).sum())
        ll -= float((self.n_per_scale * s).sum())
        ll += float((-np.exp(2.0 * s) / (2.0 * self.group_sigma**2) + s).sum())
        return ll

    def gradient(self, x: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Gradient of :meth:`log_joint` in ``x``."""
        _, r, _ = self._cells(x)
        grad = self.design[0].T @ r[0] + self.design[1].T @ r[1]
        return grad - self.precision(s) * (x - self.mean)

    def hessian(self, x: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Negative Hessian of :meth:`log_joint` in ``x``: ``X'WX + diag(precision)``."""
        _, _, p = self._cells(x)
        n = self.n_tot
        w = np.stack([n * p[0] * (1 - p[0]), -n * p[0] * p[1], n * p[1] * (1 - p[1])], axis=1)
        q = self._base
        up = np.asarray(self._pairs @ w).reshape(q, q, 3)
        sym = up + up.transpose(1, 0, 2)
        d = np.arange(q)
        sym[d, d] = up[d, d]
        h = np.block([[sym[..., 0], sym[..., 1]], [sym[..., 1], sym[..., 2]]])
        h = h[np.ix_(self._unperm, self._unperm)]
        h[np.diag_indices_from(h)] += self.precision(s)
        return h

    def _cell_blocks(self, mat: np.ndarray) -> np.ndarray:
        """``X_j,c M X_j',c^T`` of a symmetric ``M`` per cell, columns (00, 01, 11)."""
        q = self._base
        mp = mat[np.ix_(self._perm, self._perm)]
        d = np.arange(q)
        out = []
        for a in (mp[:q, :q], mp[:q, q:], mp[q:, q:]):
            both = a + a.T
            both[d, d] = a[d, d]
            out.append(np.triu(both).ravel())
        return np.asarray(self._pairs_t @ np.stack(out, axis=1))

    def inner_mode(
        self, s: np.ndarray, x0: np.ndarray | None = None, *, max_iter: int = 100
    ) -> tuple[np.ndarray, np.ndarray, int, bool]:
        """Newton's method for ``x_hat(s)``, the mode of ``x`` given the log scales.

        The Laplace log determinant moves to first order with ``x``, so the solve runs to
        a Newton decrement of 1e-18 (or until a step no longer helps).

        Parameters
        ----------
        s
            The log scales.
        x0
            Starting point (default: :meth:`initial`); a nearby ``x_hat`` makes it fast.
        max_iter
            Most Newton steps.

        Returns
        -------
        (x_hat, hessian, steps, converged)
            The mode, :meth:`hessian` there, the Newton steps taken and whether the Newton
            decrement fell below 1e-8.
        """
        x = self.initial() if x0 is None else np.array(x0, dtype=float)
        f = self.log_joint(x, s)
        h = self.hessian(x, s)
        decrement = np.inf
        steps = 0
        while steps < max_iter:
            g = self.gradient(x, s)
            step = linalg.cho_solve(linalg.cho_factor(h), g)
            decrement = float(g @ step)
            if not decrement >= 1e-18:
                break
            t = 1.0
            while True:
                x_new = x + t * step
                f_new = self.log_joint(x_new, s)
                if f_new >= f or t < 1e-6:
                    break
                t /= 2
            if not f_new >= f:
                break
            x, f = x_new, f_new
            steps += 1
            h = self.hessian(x, s)
        return x, h, steps, bool(decrement < 1e-8)

    def log_marginal(
        self, s: np.ndarray, x0: np.ndarray | None = None
    ) -> tuple[float, np.ndarray, np.ndarray, int, bool]:
        """Laplace approximation of ``log p(s | y)`` up to a constant.

        ``log p(y, x_hat(s), s) - 1/2 log det H(s)``, the prior of the log scales and their
        Jacobian included.

        Parameters
        ----------
        s
            The log scales.
        x0
            Starting point of the inner Newton solve.

        Returns
        -------
        (value, x_hat, hessian, steps, converged)
            The approximate log marginal, and :meth:`inner_mode`'s results.
        """
        x, h, steps, ok = self.inner_mode(s, x0)
        chol = linalg.cho_factor(h)
        logdet = 2.0 * float(np.log(np.diag(chol[0])).sum())
        return self.log_joint(x, s) - 0.5 * logdet, x, h, steps, ok

    def mode_slope(self, x: np.ndarray, s: np.ndarray, hess: np.ndarray) -> np.ndarray:
        """``d x_hat / d s`` (implicit function theorem), shape (``size``, ``n_scales``)."""
        return linalg.cho_solve(linalg.cho_factor(hess), self._slope_rhs(x, s))

    def _slope_rhs(self, x: np.ndarray, s: np.ndarray) -> np.ndarray:
        """``d gradient / d s`` at fixed ``x``, shape (``size``, ``n_scales``)."""
        g_s = np.zeros((self.size, self.n_scales))
        mine = np.flatnonzero(self.scale_of >= 0)
        g_s[mine, self.scale_of[mine]] = 2.0 * x[mine] * self.precision(s)[mine]
        return g_s

    def log_marginal_gradient(self, x: np.ndarray, s: np.ndarray, hess: np.ndarray) -> np.ndarray:
        """Gradient of :meth:`log_marginal` in ``s`` at ``x = x_hat(s)`` (analytic).

        ``d/ds log p(y, x_hat, s)`` (``x_hat`` drops out at the mode) minus
        ``1/2 tr(H^-1 dH/ds)``, where ``H`` moves with ``s`` through the prior precision and
        through ``W`` at ``x_hat(s)`` (third derivatives of the log-sum-exp, along
        :meth:`mode_slope`).

        Parameters
        ----------
        x
            ``x_hat(s)``, from :meth:`inner_mode`.
        s
            The log scales.
        hess
            :meth:`hessian` at ``(x, s)``.

        Returns
        -------
        numpy.ndarray
            Shape (``n_scales``,).
        """
        s = np.asarray(s, dtype=float)
        prec = self.precision(s)
        mine = np.flatnonzero(self.scale_of >= 0)
        sc = self.scale_of[mine]
        k = self.n_scales
        sq = np.bincount(sc, weights=x[mine] ** 2 * prec[mine], minlength=k)
        grad = sq - self.n_per_scale - np.exp(2.0 * s) / self.group_sigma**2 + 1.0
        h_inv = _inverse(hess)
        # direct part: d prec / ds = -2 prec on the scale's own entries
        grad -= 0.5 * np.bincount(sc, weights=-2.0 * prec[mine] * np.diag(h_inv)[mine], minlength=k)
        # through x_hat: sum over cells of tr(M_c dW_c), M_c = X_c H^-1 X_c^T (2 x 2)
        x0, x1 = self.design
        m = self._cell_blocks(h_inv)
        m00, m01, m11 = m[:, 0], m[:, 1], m[:, 2]
        _, _, p = self._cells(x)
        n = self.n_tot
        slope = h_inv @ self._slope_rhs(x, s)
        d0, d1 = np.asarray(x0 @ slope), np.asarray(x1 @ slope)  # (cells, k)
        q = p[0][:, None] * d0 + p[1][:, None] * d1
        dp0 = p[0][:, None] * (d0 - q)
        dp1 = p[1][:, None] * (d1 - q)
        dw00 = n[:, None] * dp0 * (1 - 2 * p[0][:, None])
        dw11 = n[:, None] * dp1 * (1 - 2 * p[1][:, None])
        dw01 = -n[:, None] * (dp0 * p[1][:, None] + p[0][:, None] * dp1)
        trace = m00 @ dw00 + 2 * (m01 @ dw01) + m11 @ dw11
        return grad - 0.5 * trace

    def block(self, x: np.ndarray, name: str) -> np.ndarray:
        """One block of ``x`` (or of draws ``(n, size)``), shape ``(..., 2, k)``."""
        start, shape = self.blocks[name]
        return x[..., start : start + shape[0] * shape[1]].reshape(x.shape[:-1] + shape)

    def theta(self, x: np.ndarray, s: np.ndarray) -> np.ndarray:
        """The same point in :func:`log_posterior`'s non-centred vector (``z = u / sigma``)."""
        lay = _Layout(self.levels)
        theta = np.zeros(lay.size)
        for name in ("stage", "ahead", "age", "due", "miq", "stage_ahead"):
            lay.get(theta, name)[...] = self.block(x, name)
        for i, g in enumerate(self.groups):
            ls = np.asarray(s, dtype=float)[2 * i : 2 * i + 2]
            lay.get(theta, f"log_sigma_{g}")[...] = ls
            lay.get(theta, f"z_{g}")[...] = self.block(x, f"u_{g}") / np.exp(ls)[:, None]
        return theta


def _inverse(hess: np.ndarray) -> np.ndarray:
    """Inverse of a positive definite matrix from its Cholesky factor."""
    c, info = linalg.lapack.dpotrf(hess, lower=True)
    if info != 0:
        raise np.linalg.LinAlgError("matrix is not positive definite")
    inv, info = linalg.lapack.dpotri(c, lower=True)
    return np.tril(inv) + np.tril(inv, -1).T


def _fit_marginal(
    cells: pd.DataFrame, levels: Levels, priors: dict[str, float], n_draws: int, seed: int
) -> tuple[dict[str, np.ndarray], dict]:
    """The scales from their Laplace-approximate marginal, then draws (see the module)."""
    post = CentredPosterior(cells, levels, priors)
    k = post.n_scales
    sg = post.group_sigma
    state = {"x": post.initial(), "steps": 0, "evals": 0, "inner_ok": True}

    def fun(s: np.ndarray) -> tuple[float, np.ndarray]:
        val, x, hess, steps, ok = post.log_marginal(s, state["x"])
        state["x"] = x  # warm start of the next solve
        state["steps"] += steps
        state["evals"] += 1
        state["inner_ok"] &= ok
        return -val, -post.log_marginal_gradient(x, s, hess)

    s0 = np.full(k, np.log(sg / 2))
    hi = np.log(sg) + LOG_SCALE_ABOVE_PRIOR
    res = None
    if k:
        res = optimize.minimize(
            fun,
            s0,
            jac=True,
            method="L-BFGS-B",
            bounds=[(LOG_SCALE_MIN, hi)] * k,
            options={"maxiter": 500, "gtol": 1e-6},
        )
        s0 = res.x
    s_hat = s0
    value, x_hat, hess, _, ok = post.log_marginal(s_hat, state["x"])
    slope = post.mode_slope(x_hat, s_hat, hess)
    converged = bool(state["inner_ok"] and ok and (res is None or res.success))
    if k:
        h_s = numeric_hessian(lambda s: fun(s)[1], s_hat, eps=1e-4)
        w, v = np.linalg.eigh(h_s)
        pd_s = bool(np.all(np.isfinite(w)) and np.all(w > 0))
        floored = int(np.sum(~(w >= SCALE_CURVATURE_FLOOR)))
        w = np.where(np.isfinite(w), np.maximum(w, SCALE_CURVATURE_FLOOR), SCALE_CURVATURE_FLOOR)
        sd = 1.0 / np.sqrt(w)
        # split normal along each principal direction (INLA's skewness correction): each
        # side's sd from the marginal's drop 2 sd away, so a long tail towards small
        # scales is drawn as such
        side_sd = np.empty((2, k))
        for i in range(k):
            for side, sign in enumerate((1.0, -1.0)):
                s_try = np.clip(s_hat + sign * 2.0 * sd[i] * v[:, i], LOG_SCALE_MIN, hi)
                t = float(np.linalg.norm(s_try - s_hat)) / sd[i]
                val = post.log_marginal(s_try, x_hat + slope @ (s_try - s_hat))[0]
                drop = max(value - val, 1e-12)
                side_sd[side, i] = sd[i] * np.clip(t / np.sqrt(2.0 * drop), 1 / 3, 3.0)
        rng = np.random.default_rng(None if seed is None else seed + 1)
        z = rng.standard_normal((n_draws, k))
        s_draws = s_hat + (z * np.where(z > 0, side_sd[0], side_sd[1])) @ v.T
        s_draws = np.clip(s_draws, LOG_SCALE_MIN, hi)
        # anchors: the mode and the first draws; each draw takes its nearest anchor's
        # conditional normal (INLA's integration points), so x's spread moves with s too
        anchors = np.vstack([s_hat, s_draws[: min(n_draws, N_ANCHORS) - 1]])
        metric = v * np.sqrt(w)
        dist = (((s_draws[:, None, :] - anchors[None]) @ metric) ** 2).sum(axis=2)
        nearest = dist.argmin(axis=1)
    else:
        pd_s, floored, s_draws = True, 0, np.zeros((n_draws, 0))
        anchors, nearest = s_hat[None], np.zeros(n_draws, np.int64)
    x_draws = np.empty((n_draws, post.size))
    pd_x = True
    free = np.flatnonzero(post.no_data & (post.scale_of >= 0))
    seeds = np.random.SeedSequence(seed).generate_state(len(anchors))
    for a, s_a in enumerate(anchors):
        mine = np.flatnonzero(nearest == a)
        if not len(mine):
            continue
        if a == 0:
            x_a, hess_a, slope_a = x_hat, hess, slope
        else:
            x_a, hess_a, _, _ = post.inner_mode(s_a, x_hat + slope @ (s_a - s_hat))
            slope_a = post.mode_slope(x_a, s_a, hess_a)
        draws, _, ok_a = laplace_draws(x_a, hess_a, len(mine), int(seeds[a]))
        pd_x &= ok_a
        ds = s_draws[mine] - s_a
        draws += ds @ slope_a.T
        if len(free):  # no data: exactly Normal(0, sigma) with the drawn sigma
            draws[:, free] *= np.exp(ds[:, post.scale_of[free]])
        x_draws[mine] = draws
    out = _fixed_blocks(lambda name: post.block(x_draws, name), len(levels.stage) + 1)
    for i, g in enumerate(post.groups):
        out[f"u_{g}"] = post.block(x_draws, f"u_{g}")
        out[f"sigma_{g}"] = np.exp(s_draws[:, 2 * i : 2 * i + 2])
    lay, logp = log_posterior(cells, levels, priors)
    diag = {
        "ok": bool(converged and pd_x and pd_s),
        "converged": converged,
        "hessian_positive_definite": bool(pd_x and pd_s),
        "n_params": lay.size,
        "neg_log_posterior": -logp(post.theta(x_hat, s_hat))[0],
        "scales": "marginal",
        "neg_log_marginal": -value,
        "scale_curvature_floored": floored,
        "scales_at_bound": int(np.sum((s_hat <= LOG_SCALE_MIN + 1e-6) | (s_hat >= hi - 1e-6))),
        "marginal_evaluations": state["evals"],
        "newton_steps": state["steps"],
    }
    return out, diag


def _fit_joint(
    cells: pd.DataFrame, levels: Levels, priors: dict[str, float], n_draws: int, seed: int
) -> tuple[dict[str, np.ndarray], dict]:
    """The joint mode in the non-centred form and one normal approximation there."""
    lay, logp = log_posterior(cells, levels, priors)
    mu0, sg = priors["stage_mu"], priors["group_sigma"]

    def neg(theta: np.ndarray) -> tuple[float, np.ndarray]:
        ll, grad = logp(theta)
        return -ll, -grad

    theta0 = np.zeros(lay.size)
    lay.get(theta0, "stage")[...] = mu0
    for g in levels.groups:
        lay.get(theta0, f"log_sigma_{g}")[...] = np.log(sg / 2)
    res = optimize.minimize(
        neg, theta0, jac=True, method="L-BFGS-B", options={"maxiter": 10000, "gtol": 1e-7}
    )
    hess = numeric_hessian(lambda t: neg(t)[1], res.x)
    th, _, pd_ok = laplace_draws(res.x, hess, n_draws, seed)
    post = _fixed_blocks(lambda name: lay.get(th, name), len(levels.stage) + 1)
    for g in levels.groups:
        sig = np.exp(lay.get(th, f"log_sigma_{g}"))
        post[f"u_{g}"] = sig[:, :, None] * lay.get(th, f"z_{g}")
        post[f"sigma_{g}"] = sig
    diag = {
        "ok": bool(res.success and pd_ok),
        "converged": bool(res.success),
        "hessian_positive_definite": pd_ok,
        "n_params": lay.size,
        "neg_log_posterior": float(res.fun),
        "scales": "joint",
    }
    return post, diag


def fit_map_numpy(
    cells: pd.DataFrame,
    levels: Levels,
    priors: dict[str, float],
    *,
    n_draws: int = 1000,
    seed: int = 0,
    scales: str = "marginal",
) -> tuple[dict[str, np.ndarray], dict]:
    """Mode and Laplace draws of the pipeline model; returns (flat draws, fit figures).

    Parameters
    ----------
    cells, levels
        Training cells and levels (:func:`crmkit.models.pipeline.data.landmark_cells`).
    priors
        The priors in effect (``stage_mu``, ``stage_sigma``, ``effect_sigma``, ``group_sigma``).
    n_draws
        Number of draws.
    seed
        Seed of the draws.
    scales
        ``"marginal"`` (the default): the group scales from their Laplace-approximate
        marginal posterior (calibrated in simulation-based calibration, close to NUTS);
        ``"joint"``: from the joint mode, which overstates them (kept for comparison). See
        the module docstring.

    Returns
    -------
    (dict, dict)
        The draws ``{name: array(draw, ...)}`` of the forecast's variables (``stage``,
        ``ahead``, ``age``, ``due``, ``miq``, ``stage_ahead`` ``(draw, 2, stage, ahead)``,
        ``u_<group>``) and the group scales
        ``sigma_<group>``; the figures ``ok``, ``converged``, ``hessian_positive_definite``,
        ``n_params``, ``neg_log_posterior`` (at the point returned) and ``scales``, and for
        ``"marginal"`` also ``neg_log_marginal``, ``scale_curvature_floored`` (how many
        directions of the scales' marginal were flatter than
        :data:`SCALE_CURVATURE_FLOOR` and drawn with that curvature instead),
        ``scales_at_bound``, ``marginal_evaluations`` and ``newton_steps``.
    """
    if scales not in SCALES:
        raise CrmkitError(f"scales must be one of {SCALES}, not {scales!r}")
    if scales == "marginal":
        # ~100 x 100 matrices: BLAS threads only cost (30-100x on a busy 2-core machine)
        with threadpool_limits(limits=1, user_api="blas"):
            return _fit_marginal(cells, levels, priors, n_draws, seed)
    return _fit_joint(cells, levels, priors, n_draws, seed)
