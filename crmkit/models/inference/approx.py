"""Approximate posteriors for every model: MAP + Laplace, ADVI and MLE + normal draws.

Each function returns an ``arviz.InferenceData`` whose ``posterior`` holds draws on
``(chain, draw, ...)`` (one chain) and diagnostics in the one schema of
:mod:`crmkit.models.inference.diagnostics` (method ``"map"``, ``"advi"`` or ``"mle"``; the
MCMC figures None), so consumers never depend on the method that produced the draws.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import optimize

from crmkit.models.inference.diagnostics import diagnostics
from crmkit.models.inference.laplace import laplace_draws, numeric_hessian

__all__ = ["fit_advi", "fit_map", "fit_mle", "optimise_log_likelihood"]


def _posterior(post: dict[str, np.ndarray]) -> Any:
    """InferenceData of one chain from flat draws ``{name: array(draw, ...)}``."""
    import arviz as az

    return az.from_dict(posterior={k: np.asarray(v)[None] for k, v in post.items()})


def fit_map(
    model: Any,
    names: Sequence[str],
    *,
    n_draws: int = 1000,
    seed: int | None = None,
    start: dict[str, float] | None = None,
    optimizer: str = "L-BFGS-B",
    options: dict[str, Any] | None = None,
    hessian_eps: float = 1e-4,
    converged_by: str = "optimizer",
) -> tuple[Any, dict[str, Any]]:
    """Posterior mode in the unconstrained space plus a Laplace (normal) approximation.

    Parameters
    ----------
    model
        A ``pm.Model``.
    names
        Variables kept in the posterior (free variables or deterministics).
    n_draws
        Draws from the normal approximation.
    seed
        Seed of the draws.
    start
        Starting values of some value variables (by their unconstrained names, e.g.
        ``"r_log__"``); the model's initial point for the others.
    optimizer
        ``scipy.optimize.minimize`` method (``"L-BFGS-B"``, ``"BFGS"``).
    options
        Its options (default ``{"maxiter": 5000}`` for L-BFGS-B, ``{"gtol": 1e-6}`` else).
    hessian_eps
        Relative step of the numerical Hessian.
    converged_by
        ``"optimizer"`` (the optimiser's success flag) or ``"newton"`` (a Newton step at
        the mode smaller than 1e-3 in every coordinate).

    Returns
    -------
    idata : arviz.InferenceData
        ``posterior`` of ``names``; ``attrs["map"]`` the mode of scalar variables (JSON).
    diagnostics : dict
        The one schema plus ``converged`` and ``hessian_positive_definite``.
    """
    started = time.perf_counter()
    ip = model.initial_point()
    vvars = model.value_vars
    shapes = [np.shape(ip[v.name]) for v in vvars]
    sizes = [int(np.prod(s)) for s in shapes]
    logp = model.compile_logp(jacobian=True)
    dlogp = model.compile_dlogp(jacobian=True)

    def point(z: np.ndarray) -> dict:
        out, i = {}, 0
        for v, s, n in zip(vvars, shapes, sizes, strict=True):
            out[v.name] = np.asarray(z[i : i + n]).reshape(s)
            i += n
        return out

    def grad(z: np.ndarray) -> np.ndarray:
        return -np.asarray(dlogp(point(z)), dtype=float)

    given = start or {}
    z0 = np.concatenate([np.ravel(given.get(v.name, ip[v.name])) for v in vvars]).astype(float)
    if options is None:
        options = {"maxiter": 5000} if optimizer == "L-BFGS-B" else {"gtol": 1e-6}
    res = optimize.minimize(
        lambda z: -float(logp(point(z))), z0, jac=grad, method=optimizer, options=options
    )
    hess = numeric_hessian(grad, res.x, hessian_eps)
    labels = []  # each coordinate's variable, for a failed approximation's error
    for v, n in zip(vvars, sizes, strict=True):
        rv = model.values_to_rvs[v].name
        labels += [rv] if n == 1 else [f"{rv}[{i}]" for i in range(n)]
    z, _, pd_ok = laplace_draws(res.x, hess, n_draws, seed, names=labels)
    if converged_by == "newton":
        step = np.linalg.solve(hess, grad(res.x)) if pd_ok else 1
        converged = bool(np.all(np.abs(step) < 1e-3))
    else:
        converged = bool(res.success)
    from crmkit.models.inference.nuts import natural_params_fn

    to_nat = natural_params_fn(model, names)
    nat = [to_nat(point(zi)) for zi in z]
    post = {n: np.stack([np.asarray(d[i], dtype=float) for d in nat]) for i, n in enumerate(names)}
    idata = _posterior(post)
    mode = to_nat(point(res.x))
    scalars = {n: float(v) for n, v in zip(names, mode, strict=True) if np.ndim(v) == 0}
    idata.attrs["map"] = json.dumps(scalars)
    reasons = [] if converged else ["the optimiser did not converge"]
    if not pd_ok:
        reasons.append("the Hessian at the mode is not positive definite")
    diag = diagnostics(
        "map",
        ok=converged and pd_ok,
        message="; ".join(reasons) or None,
        seconds=time.perf_counter() - started,
        converged=converged,
        hessian_positive_definite=pd_ok,
    )
    return idata, diag


def fit_advi(
    model: Any,
    names: Sequence[str],
    *,
    n_draws: int = 1000,
    seed: int | None = None,
    iterations: int = 20000,
    progressbar: bool = False,
) -> tuple[Any, dict[str, Any]]:
    """Mean-field ADVI.

    Parameters
    ----------
    model
        A ``pm.Model``.
    names
        Variables kept in the posterior.
    n_draws
        Draws from the fitted approximation.
    seed
        Random seed.
    iterations
        Optimisation steps.
    progressbar
        Show PyMC's progress bar.

    Returns
    -------
    idata : arviz.InferenceData
        ``posterior`` of ``names`` (one chain).
    diagnostics : dict
        The one schema plus ``loss_rel_sd`` (sd of the last tenth of the loss trace over
        its level; ok below 0.01).
    """
    import arviz as az
    import pymc as pm

    started = time.perf_counter()
    with model:
        approx = pm.fit(n=iterations, method="advi", random_seed=seed, progressbar=progressbar)
        idata = approx.sample(n_draws, random_seed=seed)
    hist = np.asarray(approx.hist)
    tail = hist[-max(10, len(hist) // 10) :]
    # Converged when the last tenth of the loss trace is flat relative to its level.
    rel = float(np.std(tail) / max(1.0, abs(np.mean(tail))))
    ok = bool(np.isfinite(rel) and rel < 0.01)
    keep = az.InferenceData(posterior=idata.posterior[list(names)])
    diag = diagnostics(
        "advi",
        ok=ok,
        message=f"the ADVI loss has not settled (relative sd {rel:.3g} >= 0.01)",
        seconds=time.perf_counter() - started,
        loss_rel_sd=rel,
    )
    return keep, diag


def optimise_log_likelihood(
    nll: Callable[[np.ndarray], float], x0: np.ndarray
) -> optimize.OptimizeResult:
    """Minimise a negative log-likelihood: Nelder-Mead, then BFGS from its end.

    Parameters
    ----------
    nll
        Negative log-likelihood of the unconstrained (e.g. log) parameters.
    x0
        Starting point.

    Returns
    -------
    scipy.optimize.OptimizeResult
        BFGS's result.
    """
    res = optimize.minimize(nll, x0, method="Nelder-Mead", options={"maxiter": 4000})
    return optimize.minimize(nll, res.x, method="BFGS", options={"gtol": 1e-7})


def fit_mle(
    loglike: Callable[[np.ndarray], float],
    start: np.ndarray,
    names: Sequence[str],
    *,
    n_draws: int = 1000,
    seed: int | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Maximum likelihood over log-parameters, draws from the asymptotic normal.

    Parameters
    ----------
    loglike
        Log-likelihood of the positive parameters (natural scale, in ``names`` order).
    start
        Starting values, natural scale.
    names
        Parameter names.
    n_draws
        Draws from the normal approximation (inverse Hessian of the log-parameters).
    seed
        Seed of the draws.

    Returns
    -------
    idata : arviz.InferenceData
        ``posterior`` of ``names`` (one chain); ``attrs["mle"]`` the estimate (JSON).
    diagnostics : dict
        The one schema plus ``converged``, ``loglike`` and ``hessian_positive_definite``.
    """
    started = time.perf_counter()

    def nll(lp: np.ndarray) -> float:
        val = -loglike(np.exp(lp))
        return val if np.isfinite(val) else 1e300

    res = optimise_log_likelihood(nll, np.log(np.asarray(start, dtype=float)))
    hess = numeric_hessian(lambda z: optimize.approx_fprime(z, nll, 1e-6), res.x, 1e-4)
    draws, _, pd_ok = laplace_draws(res.x, hess, n_draws, seed, names=names)
    # Converged: the gradient is tiny relative to the curvature (Newton step < 1e-3).
    step = np.linalg.solve(hess, optimize.approx_fprime(res.x, nll, 1e-7)) if pd_ok else 1
    converged = bool(np.all(np.abs(step) < 1e-3))
    idata = _posterior({n: np.exp(draws[:, i]) for i, n in enumerate(names)})
    idata.attrs["mle"] = json.dumps(dict(zip(names, np.exp(res.x).tolist(), strict=True)))
    finite = bool(np.isfinite(res.fun))
    reasons = [] if converged else ["the optimiser did not converge"]
    if not pd_ok:
        reasons.append("the Hessian at the estimate is not positive definite")
    if not finite:
        reasons.append("the log-likelihood is not finite")
    diag = diagnostics(
        "mle",
        ok=converged and pd_ok and finite,
        message="; ".join(reasons) or None,
        seconds=time.perf_counter() - started,
        converged=converged,
        loglike=float(-res.fun),
        hessian_positive_definite=pd_ok,
    )
    return idata, diag
