"""NUTS fit of the pipeline model: an identified parametrisation and a numba log-density.

The MAP fit's parametrisation (:mod:`crmkit.models.pipeline.map_fit`) has free stage
intercepts and free group effects ``u_{g,j} = sigma_{g,j} * z_{g,j}`` on every level, so
the likelihood only sees sums like ``stage + mean(u_team) + mean(u_owner) + ...`` and,
with owners nested in teams, ``u_team[t] + mean of its owners' u``. The priors alone split
those sums, which leaves curved ridges between each group's scale and its levels' mean
(NUTS on the default demo: tree depth 10 on every draw, 11+ divergences, R-hat 1.02+).

NUTS samples the same likelihood with identified group effects instead:

* each group's effects sum to zero over its levels (PyMC's ``ZeroSumNormal``:
  ``u = sigma * B zeta`` with ``B`` an orthonormal basis of the zero-sum vectors and
  ``zeta ~ Normal(0, 1)``, non-centred), so the company level lives in the stage effects;
* a group whose every level lies within one level of a coarser group (owners within
  teams) sums to zero within each of those levels, so the team carries the team's level
  and owners only their differences;
* the extra "unseen" level of each group (deals of an owner not seen in training) is the
  prior draw ``sigma * Normal(0, 1)``, made per draw after sampling; so are the stage x
  months-ahead interaction's levels no cell has (the unseen stage, months never followed).

Priors are otherwise those of the MAP fit (stage ``Normal(stage_mu, stage_sigma)``, other
effects ``Normal(0, effect_sigma)`` with a reference level, ``sigma ~
HalfNormal(group_sigma)`` sampled on the log scale with its Jacobian). The log-density of
the aggregated cells and its gradient are a numba loop over the cells (``nogil``, cached),
the rest a few small numpy operations per evaluation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from numba import njit
from scipy import optimize

from crmkit.models.inference.laplace import numeric_hessian
from crmkit.models.inference.nuts import sample_logp
from crmkit.models.pipeline.data import (
    DUE_LEVELS,
    GROUPS,
    MONTH_EDGES,
    Levels,
    require_stage_ahead,
    stage_ahead_levels,
    stage_ahead_matrix,
)
from crmkit.models.pipeline.map_fit import stage_ahead_sigma

#: nutpie's low-rank modified mass matrix (learns the correlations the whitening misses).
LOW_RANK = True
#: Effects with a reference level (first level fixed at zero), in the cells' column order
#: (``stage_ahead``: the stage x months-ahead interaction, by its derived cell code).
FIXED = ("ahead", "age", "due", "miq", "stage_ahead")


@njit(cache=True, nogil=True)
def cells_log_likelihood(beta, codes, n_win, n_lose, n_tot, grad):
    """Multinomial log-likelihood of the cells and its gradient in ``beta`` (written to grad).

    ``beta`` is ``(2, P)``: every level's effect for won and lost; ``codes`` ``(cells,
    factors)`` are column indices into ``beta`` whose sum is a cell's linear predictor.
    """
    n_cells, n_f = codes.shape
    grad[:] = 0.0
    ll = 0.0
    for c in range(n_cells):
        e0 = 0.0
        e1 = 0.0
        for f in range(n_f):
            k = codes[c, f]
            e0 += beta[0, k]
            e1 += beta[1, k]
        m = max(e0, e1, 0.0)
        a0 = np.exp(e0 - m)
        a1 = np.exp(e1 - m)
        s = a0 + a1 + (1.0 if m == 0.0 else np.exp(-m))
        ll += n_win[c] * e0 + n_lose[c] * e1 - n_tot[c] * (m + np.log(s))
        r0 = n_win[c] - n_tot[c] * a0 / s
        r1 = n_lose[c] - n_tot[c] * a1 / s
        for f in range(n_f):
            k = codes[c, f]
            grad[0, k] += r0
            grad[1, k] += r1
    return ll


def nesting(cells: pd.DataFrame, levels: Levels) -> dict[str, str | None]:
    """The coarser group each group's levels lie within (None when not nested).

    Group ``g`` lies within ``h`` when every level of ``g`` seen in the cells meets exactly
    one level of ``h`` and ``h`` has two or more levels but fewer than ``g`` (or as many
    and comes first in :data:`GROUPS`); the coarsest such ``h`` is given.
    """
    groups = tuple(levels.groups)  # the model's groups (a subset of GROUPS, in its order)
    out: dict[str, str | None] = {}
    for g in groups:
        best = None
        for h in groups:
            if h == g or not len(cells):
                continue
            per = cells.groupby(g)[h].nunique()
            n_g, n_h = cells[g].nunique(), cells[h].nunique()
            coarser = n_h >= 2 and (n_h < n_g or (n_h == n_g and GROUPS.index(h) < GROUPS.index(g)))
            if coarser and (per <= 1).all() and (best is None or n_h < cells[best].nunique()):
                best = h
        out[g] = best
    return out


def zero_sum_basis(n_levels: int, parent: np.ndarray | None) -> np.ndarray:
    """Orthonormal basis ``(n_levels, k)`` of effects summing to zero (within each parent).

    ``parent`` gives each level's parent level (None: one sum over all levels); a level
    without a parent (-1) is its own block.
    """
    if parent is None:
        parent = np.zeros(n_levels, np.int64)
    keys = np.where(parent < 0, -1 - np.arange(n_levels), parent)
    blocks = np.unique(keys)
    cons = (keys[None, :] == blocks[:, None]).astype(float)  # (constraints, levels)
    _, sv, vt = np.linalg.svd(cons, full_matrices=True)
    rank = int((sv > 1e-9).sum())
    return np.ascontiguousarray(vt[rank:].T)


class PipelinePosterior:
    """The pipeline model's posterior in the NUTS parametrisation (see the module docstring).

    Parameters
    ----------
    cells, levels
        Training cells and levels (:func:`crmkit.models.pipeline.data.landmark_cells`).
    priors
        The priors in effect.

    Attributes
    ----------
    size : int
        Length of the parameter vector.
    blocks : dict
        ``name -> (start, shape)`` of ``stage``, the :data:`FIXED` effects' free levels
        (``free``; of the stage x months-ahead interaction only the codes some cell has,
        the others drawn from their prior by :meth:`natural`), ``log_sigma_<group>`` and
        ``zeta_<group>``.
    bases : dict
        Group -> zero-sum basis ``(levels, k)`` (the unseen level is not in it).
    groups : tuple
        The model's groups: those ``levels`` has (all of :data:`GROUPS` by default; a
        subset leaves the others' effects out).
    """

    def __init__(
        self,
        cells: pd.DataFrame,
        levels: Levels,
        priors: dict[str, float],
        centred: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.priors = dict(priors)
        self.n_stage = len(levels.stage) + 1
        self.fixed_sigma = {n: float(priors["effect_sigma"]) for n in FIXED}
        self.fixed_sigma["stage_ahead"] = stage_ahead_sigma(priors)
        require_stage_ahead(cells, levels)  # set by the builders of cells, not here
        self.groups = tuple(levels.groups)
        self.centred = {
            g: np.zeros(2, bool) if centred is None else np.asarray(centred[g], bool)
            for g in self.groups
        }
        n_fixed = {
            "ahead": len(MONTH_EDGES),
            "age": len(MONTH_EDGES),
            "due": len(DUE_LEVELS),
            "miq": 3,
            "stage_ahead": stage_ahead_levels(self.n_stage),
        }
        nest = nesting(cells, levels)
        self.bases: dict[str, np.ndarray] = {}
        for g in self.groups:
            n = len(levels.groups[g])
            parent = None
            if nest[g] is not None:
                h = nest[g]
                first = cells.groupby(g)[h].first()
                parent = np.full(n, -1, np.int64)
                known = first.index.to_numpy(np.int64) < n
                parent[first.index.to_numpy(np.int64)[known]] = first.to_numpy(np.int64)[known]
            self.bases[g] = zero_sum_basis(n, parent)
        self.nested = nest
        self.blocks: dict[str, tuple[int, tuple[int, ...]]] = {}
        self.size = 0
        self._add("stage", (2, len(levels.stage) + 1))
        # free levels of each effect (the reference, level 0, is zero); of the interaction
        # only the codes some cell has: the others are their prior, drawn in natural()
        self.free = {name: np.arange(1, n) for name, n in n_fixed.items()}
        sa_codes = cells["stage_ahead"].to_numpy(np.int64)
        self.free["stage_ahead"] = np.unique(sa_codes[sa_codes > 0])
        self.n_fixed = n_fixed
        for name in n_fixed:
            self._add(name, (2, len(self.free[name])))
        for g in self.groups:
            self._add(f"log_sigma_{g}", (2,))
            self._add(f"zeta_{g}", (2, self.bases[g].shape[1]))
        # columns of the full effect vector beta (2, P): stage, fixed effects, group levels
        self.cols: dict[str, slice] = {}
        p = 0
        widths = {"stage": len(levels.stage) + 1, **n_fixed}
        widths.update({g: len(levels.groups[g]) + 1 for g in self.groups})
        for name, w in widths.items():
            self.cols[name] = slice(p, p + w)
            p += w
        self.n_beta = p
        keys = ["stage", *FIXED, *self.groups]
        self.codes = np.ascontiguousarray(
            np.stack([cells[k].to_numpy(np.int64) + self.cols[k].start for k in keys], axis=1)
            if len(cells)
            else np.zeros((0, len(keys)), np.int64)
        )
        self.n_win = cells["n_win"].to_numpy(float)
        self.n_lose = cells["n_lose"].to_numpy(float)
        self.n_tot = self.n_win + self.n_lose + cells["n_stay"].to_numpy(float)

    def _add(self, name: str, shape: tuple[int, ...]) -> None:
        """Append a block to the layout."""
        self.blocks[name] = (self.size, shape)
        self.size += int(np.prod(shape))

    def get(self, theta: np.ndarray, name: str) -> np.ndarray:
        """View of one block of ``theta`` (leading axes kept)."""
        start, shape = self.blocks[name]
        return theta[..., start : start + int(np.prod(shape))].reshape(theta.shape[:-1] + shape)

    def effects(self, theta: np.ndarray) -> np.ndarray:
        """The full effect matrix ``beta`` ``(2, P)`` of one parameter vector (unseen: 0)."""
        beta = np.zeros((2, self.n_beta))
        beta[:, self.cols["stage"]] = self.get(theta, "stage")
        for name in FIXED:
            c = self.cols[name]
            beta[:, c.start + self.free[name]] = self.get(theta, name)
        for g in self.groups:
            c = self.cols[g]
            sig = np.exp(self.get(theta, f"log_sigma_{g}"))
            beta[:, c.start : c.stop - 1] = self._group(theta, g, sig)
        return beta

    def _group(self, theta: np.ndarray, g: str, sig: np.ndarray) -> np.ndarray:
        """Effects ``(2, levels)`` of group ``g``'s seen levels."""
        v = self.get(theta, f"zeta_{g}") @ self.bases[g].T
        return np.where(self.centred[g][:, None], v, sig[:, None] * v)

    def logp(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Log-posterior (up to a constant) and its gradient at ``theta``."""
        p = self.priors
        mu0, s0 = p["stage_mu"], p["stage_sigma"]
        sg = p["group_sigma"]
        beta = self.effects(theta)
        gb = np.empty((2, self.n_beta))  # per call: chains evaluate in parallel threads
        ll = float(cells_log_likelihood(beta, self.codes, self.n_win, self.n_lose, self.n_tot, gb))
        grad = np.empty(self.size)

        def put(name: str, value: np.ndarray) -> None:
            start, shape = self.blocks[name]
            grad[start : start + int(np.prod(shape))] = value.ravel()

        st = self.get(theta, "stage")
        ll -= float(((st - mu0) ** 2).sum()) / (2 * s0**2)
        put("stage", gb[:, self.cols["stage"]] - (st - mu0) / s0**2)
        for name in FIXED:
            free = self.get(theta, name)
            c = self.cols[name]
            sd = self.fixed_sigma[name]
            ll -= float((free**2).sum()) / (2 * sd**2)
            put(name, gb[:, c.start + self.free[name]] - free / sd**2)
        for g in self.groups:
            c = self.cols[g]
            ls = self.get(theta, f"log_sigma_{g}")
            sig = np.exp(ls)
            v = self.get(theta, f"zeta_{g}")
            cen = self.centred[g]
            k = v.shape[1]
            dv = gb[:, c.start : c.stop - 1] @ self.bases[g]  # d ll / d (B v), projected
            ss = (v**2).sum(axis=1)
            # non-centred rows: u = sigma B zeta, zeta ~ N(0, 1); centred: u = B w, w ~ N(0, sigma)
            ll += float(np.where(cen, -ss / (2 * sig**2) - k * ls, -ss / 2).sum())
            ll += float(-(sig**2).sum() / (2 * sg**2) + ls.sum())
            put(
                f"zeta_{g}",
                np.where(cen[:, None], dv - v / sig[:, None] ** 2, sig[:, None] * dv - v),
            )
            d_ls = np.where(cen, ss / sig**2 - k, sig * (v * dv).sum(axis=1))
            put(f"log_sigma_{g}", d_ls - sig**2 / sg**2 + 1.0)
        return ll, grad

    def natural(self, theta: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """The model's variables at ``theta``; unseen group levels drawn from their prior."""
        out: dict[str, np.ndarray] = {"stage": self.get(theta, "stage").copy()}
        for name in FIXED:
            out[name] = np.zeros((2, self.n_fixed[name]))
            out[name][:, self.free[name]] = self.get(theta, name)
        for g in self.groups:
            sig = np.exp(self.get(theta, f"log_sigma_{g}"))
            seen = self._group(theta, g, sig)
            unseen = sig * rng.standard_normal(2)
            out[f"u_{g}"] = np.concatenate([seen, unseen[:, None]], axis=1)
            out[f"sigma_{g}"] = sig
        inter = out["stage_ahead"]  # codes no cell has: their prior
        prior = np.ones(inter.shape[1], bool)
        prior[0] = False
        prior[self.free["stage_ahead"]] = False
        sd = self.fixed_sigma["stage_ahead"]
        inter[:, prior] = sd * rng.standard_normal((2, int(prior.sum())))
        out["stage_ahead"] = stage_ahead_matrix(inter, self.n_stage)
        return out

    def mode(self) -> tuple[np.ndarray, bool]:
        """The posterior mode in this parametrisation (L-BFGS) and whether it converged."""
        theta0 = np.zeros(self.size)
        self.get(theta0, "stage")[...] = self.priors["stage_mu"]
        for g in self.groups:
            self.get(theta0, f"log_sigma_{g}")[...] = np.log(self.priors["group_sigma"] / 2)

        def neg(t: np.ndarray) -> tuple[float, np.ndarray]:
            lp, g = self.logp(t)
            return -lp, -g

        res = optimize.minimize(
            neg, theta0, jac=True, method="L-BFGS-B", options={"maxiter": 10000, "gtol": 1e-6}
        )
        return res.x, bool(res.success)


#: NUTS' target acceptance: above nutpie's 0.8, as the owner scale's neck gave a rare
#: divergence at 0.8 on the demo (benchmarks/results/forecast.md).
TARGET_ACCEPT = 0.9


def _whitening(hess: np.ndarray) -> np.ndarray:
    """``S`` with ``S S'`` the inverse of a Hessian (eigenvalues floored, so S is finite)."""
    w, v = np.linalg.eigh((hess + hess.T) / 2)
    w = np.where(np.isfinite(w), w, 1.0)
    return v / np.sqrt(np.maximum(w, 1e-3 * max(float(w.max()), 1.0) * 1e-6))


def fit_nuts(
    cells: pd.DataFrame,
    levels: Levels,
    priors: dict[str, float],
    *,
    draws: int = 500,
    tune: int = 500,
    chains: int = 2,
    seed: int = 0,
    progress: bool = False,
) -> tuple[dict[str, np.ndarray], dict[str, Any], Any]:
    """NUTS draws of the pipeline model (nutpie on the numba log-density).

    NUTS runs in the coordinates that whiten the normal approximation at the posterior
    mode (``theta = mode + S x`` with ``S S'`` the inverse Hessian there, an exact linear
    change of variables), which removes the linear ridges that remain, e.g. between the
    stage effects and a factor whose reference level has few data (due status
    "unknown"); chains start at the mode jittered by up to one approximate sd.

    Parameters
    ----------
    cells, levels
        Training cells and levels.
    priors
        The priors in effect.
    draws, tune, chains
        Draws and tuning steps per chain, and the number of chains.
    seed
        Random seed.
    progress
        Show nutpie's progress bar.

    Returns
    -------
    (dict, dict, xarray.Dataset)
        Flat (chain-major) draws ``{name: array(chain * draw, ...)}`` of ``stage``, the
        fixed effects, ``u_<group>`` and ``sigma_<group>``; the diagnostics in the one
        schema (method ``"nuts"``); and nutpie's ``sample_stats``.
    """
    post = PipelinePosterior(cells, levels, priors)
    mode, _ = post.mode()
    scale = _whitening(numeric_hessian(lambda t: -post.logp(t)[1], mode))

    def logp(x: np.ndarray) -> tuple[float, np.ndarray]:
        lp, g = post.logp(mode + scale @ x)
        return lp, scale.T @ g

    def natural(x: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return post.natural(mode + scale @ x, rng)

    def initial(chain_seed: int) -> np.ndarray:
        return np.random.default_rng(chain_seed).uniform(-1.0, 1.0, post.size)

    shapes = {
        "stage": (2, len(levels.stage) + 1),
        **{n: (2, post.n_fixed[n]) for n in FIXED},
        "stage_ahead": (2, post.n_stage, len(MONTH_EDGES)),
        **{f"u_{g}": (2, len(levels.groups[g]) + 1) for g in post.groups},
        **{f"sigma_{g}": (2,) for g in post.groups},
    }
    idata, diag = sample_logp(
        logp,
        post.size,
        natural,
        shapes,
        initial,
        draws=draws,
        tune=tune,
        chains=chains,
        seed=seed,
        progressbar=progress,
        low_rank_mass_matrix=LOW_RANK,
        target_accept=TARGET_ACCEPT,
    )
    p = idata.posterior
    flat = {n: p[n].to_numpy().reshape((-1, *p[n].shape[2:])) for n in shapes}
    return flat, diag, idata.sample_stats
