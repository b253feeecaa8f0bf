"""MAP + Laplace fit of the pipeline model in plain numpy (no graph compilation).

The same posterior as :meth:`crmkit.models.pipeline.model.PipelineModel.build_model` (same priors,
the group scales on the log scale with their Jacobian), with an analytic gradient, so a
fit takes well under a second and backtests over many origins stay fast. Draws come from
the normal approximation at the mode (inverse Hessian by differences of the gradient).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy import optimize

from crmkit.models.inference.laplace import laplace_draws, numeric_hessian
from crmkit.models.pipeline.data import DUE_LEVELS, MONTH_EDGES, Levels


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


def log_posterior(
    cells: pd.DataFrame, levels: Levels, priors: dict[str, float]
) -> tuple[_Layout, Callable[[np.ndarray], tuple[float, np.ndarray]]]:
    """The pipeline model's log-posterior and its gradient over the flat parameter vector.

    Parameters
    ----------
    cells, levels
        Training cells and levels (:func:`crmkit.models.pipeline.data.landmark_cells`).
    priors
        The priors in effect (``stage_mu``, ``stage_sigma``, ``effect_sigma``, ``group_sigma``).

    Returns
    -------
    (_Layout, callable)
        The layout of the vector (blocks ``stage``, ``ahead``, ``age``, ``due``, ``miq``,
        ``log_sigma_<group>``, ``z_<group>``) and ``theta -> (log-posterior, gradient)``, up
        to a constant, with the Jacobian of the log scales.
    """
    lay = _Layout(levels)
    idx = {c: cells[c].to_numpy(np.int64) for c in cells.columns if not c.startswith("n_")}
    n_win = cells["n_win"].to_numpy(float)
    n_lose = cells["n_lose"].to_numpy(float)
    n_tot = n_win + n_lose + cells["n_stay"].to_numpy(float)
    obs = np.stack([n_win, n_lose])
    mu0, s0 = priors["stage_mu"], priors["stage_sigma"]
    se, sg = priors["effect_sigma"], priors["group_sigma"]
    sizes = {
        "stage": len(levels.stage) + 1,
        "ahead": len(MONTH_EDGES),
        "age": len(MONTH_EDGES),
        "due": len(DUE_LEVELS),
    }

    def eta_of(theta: np.ndarray) -> np.ndarray:
        eta = lay.get(theta, "stage")[:, idx["stage"]]
        eta = eta + _full(lay.get(theta, "ahead"))[:, idx["ahead"]]
        eta = eta + _full(lay.get(theta, "age"))[:, idx["age"]]
        eta = eta + _full(lay.get(theta, "due"))[:, idx["due"]]
        eta = eta + _full(lay.get(theta, "miq"))[:, idx["miq"]]
        for g in levels.groups:
            sig = np.exp(lay.get(theta, f"log_sigma_{g}"))
            eta = eta + (sig[:, None] * lay.get(theta, f"z_{g}"))[:, idx[g]]
        return eta

    def logp(theta: np.ndarray) -> tuple[float, np.ndarray]:
        eta = eta_of(theta)
        m = np.maximum(eta.max(axis=0), 0.0)
        lse = m + np.log(np.exp(-m) + np.exp(eta - m).sum(axis=0))
        ll = float((obs * eta).sum() - (n_tot * lse).sum())
        p = np.exp(eta - lse)
        r = obs - n_tot * p  # d ll / d eta, (2, cells)
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


def fit_map_numpy(
    cells: pd.DataFrame,
    levels: Levels,
    priors: dict[str, float],
    *,
    n_draws: int = 1000,
    seed: int = 0,
) -> tuple[dict[str, np.ndarray], dict]:
    """Mode and Laplace draws of the pipeline model; returns (flat draws, fit figures).

    The draws are ``{name: array(draw, ...)}`` of the forecast's variables and the group
    scales ``sigma_<group>``; the figures are ``ok``, ``converged``,
    ``hessian_positive_definite``, ``n_params`` and ``neg_log_posterior``.
    """
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
    post = {
        "stage": lay.get(th, "stage"),
        "ahead": _full(lay.get(th, "ahead")),
        "age": _full(lay.get(th, "age")),
        "due": _full(lay.get(th, "due")),
        "miq": _full(lay.get(th, "miq")),
    }
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
    }
    return post, diag
