"""Fitting a PyMC model by NUTS (nutpie or PyMC), MAP with a Laplace approximation, or ADVI.

Returns flat posterior draws (``{name: array(draw, ...)}``) and ArviZ diagnostics with an
``ok`` flag, so the forecast code never depends on which method produced the draws.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from scipy import optimize

from crmkit.errors import CrmkitError
from crmkit.models.inference.laplace import laplace_draws, numeric_hessian

FIT_METHODS = ("nuts", "map", "advi")


def _fit_map(model, names: list[str], n_draws: int, seed: int) -> tuple[dict, dict]:
    """Posterior mode in the unconstrained space plus a Laplace (normal) approximation."""
    ip = model.initial_point()
    vvars = model.value_vars
    shapes = [np.shape(ip[v.name]) for v in vvars]
    sizes = [int(np.prod(s)) for s in shapes]
    logp = model.compile_logp(jacobian=True)
    dlogp = model.compile_dlogp(jacobian=True)

    def point(z: np.ndarray) -> dict:
        out, i = {}, 0
        for v, s, n in zip(vvars, shapes, sizes, strict=True):
            out[v.name] = z[i : i + n].reshape(s)
            i += n
        return out

    def grad(z: np.ndarray) -> np.ndarray:
        return -np.asarray(dlogp(point(z)), dtype=float)

    z0 = np.concatenate([np.ravel(ip[v.name]) for v in vvars]).astype(float)
    res = optimize.minimize(
        lambda z: -float(logp(point(z))),
        z0,
        jac=grad,
        method="L-BFGS-B",
        options={"maxiter": 5000},
    )
    z, _, pd_ok = laplace_draws(res.x, numeric_hessian(grad, res.x), n_draws, seed)
    outs = model.replace_rvs_by_values([model[n] for n in names])
    to_nat = model.compile_fn(outs, inputs=vvars, on_unused_input="ignore")
    nat = [to_nat(point(zi)) for zi in z]
    post = {n: np.stack([np.asarray(d[i]) for d in nat]) for i, n in enumerate(names)}
    diag = {
        "ok": bool(res.success and pd_ok),
        "converged": bool(res.success),
        "hessian_positive_definite": pd_ok,
        "r_hat_max": None,
        "ess_bulk_min": None,
        "divergences": 0,
    }
    return post, diag


def _fit_advi(model, names, n_draws, seed, iterations, progress) -> tuple[dict, dict]:
    """Mean-field ADVI."""
    import pymc as pm

    with model:
        approx = pm.fit(n=iterations, method="advi", random_seed=seed, progressbar=progress)
        idata = approx.sample(n_draws, random_seed=seed)
    post = {
        n: idata.posterior[n].values.reshape((-1, *idata.posterior[n].shape[2:])) for n in names
    }
    hist = np.asarray(approx.hist)
    tail = hist[-max(10, len(hist) // 10) :]
    rel = float(np.std(tail) / max(1.0, abs(np.mean(tail))))
    return post, {
        "ok": bool(np.isfinite(rel) and rel < 0.01),
        "loss_rel_sd": rel,
        "r_hat_max": None,
        "ess_bulk_min": None,
        "divergences": 0,
    }


def _fit_nuts(model, names, draws, tune, chains, seed, progress) -> tuple[dict, dict]:
    """NUTS via nutpie when importable, PyMC's sampler otherwise; ArviZ diagnostics."""
    import arviz as az

    try:
        import nutpie
    except ImportError:  # pragma: no cover - nutpie is a dependency
        nutpie = None
    if nutpie is not None:
        compiled = nutpie.compile_pymc_model(model)
        idata = nutpie.sample(
            compiled,
            draws=draws,
            tune=tune,
            chains=chains,
            cores=chains,
            seed=seed,
            progress_bar=progress,
            save_warmup=False,
        )
        sampler = "nutpie"
    else:  # pragma: no cover
        import pymc as pm

        with model:
            idata = pm.sample(
                draws=draws,
                tune=tune,
                chains=chains,
                cores=chains,
                random_seed=seed,
                progressbar=progress,
                compute_convergence_checks=False,
            )
        sampler = "pymc"
    post_ds = idata.posterior[names]
    rhat = az.rhat(post_ds) if chains > 1 else None
    ess = az.ess(post_ds, method="bulk")
    r_max = float(max(float(rhat[n].max()) for n in names)) if rhat is not None else None
    e_min = float(min(float(ess[n].min()) for n in names))
    div = 0
    stats = idata.get("sample_stats")
    if stats is not None and "diverging" in stats:
        div = int(stats["diverging"].sum())
    post = {n: post_ds[n].values.reshape((-1, *post_ds[n].shape[2:])) for n in names}
    ok = (r_max is None or r_max <= 1.01) and e_min >= 100 and div == 0
    return post, {
        "ok": bool(ok),
        "r_hat_max": r_max,
        "ess_bulk_min": e_min,
        "divergences": div,
        "sampler": sampler,
    }


def fit_model(
    model,
    names: list[str],
    method: str = "map",
    *,
    draws: int = 500,
    tune: int = 500,
    chains: int = 2,
    seed: int = 0,
    progress: bool = False,
    advi_iterations: int = 20000,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Fit a PyMC model and return flat posterior draws of ``names`` and diagnostics.

    Parameters
    ----------
    model
        A ``pm.Model``.
    names
        Variables to return (draws first axis).
    method
        ``"nuts"``, ``"map"`` (mode + Laplace) or ``"advi"``.
    draws, tune, chains
        Sampler settings (``draws`` per chain for NUTS; total draws otherwise).
    seed
        Random seed.
    progress
        Show the sampler's progress bar.
    advi_iterations
        ADVI optimisation steps.

    Returns
    -------
    (dict, dict)
        Posterior draws and diagnostics (``ok``, ``method``, ``r_hat_max``, ``ess_bulk_min``,
        ``divergences``, ``seconds``).
    """
    t0 = time.perf_counter()
    if method == "nuts":
        post, diag = _fit_nuts(model, names, draws, tune, chains, seed, progress)
    elif method == "map":
        post, diag = _fit_map(model, names, draws * (chains if chains else 1), seed)
    elif method == "advi":
        post, diag = _fit_advi(model, names, draws * chains, seed, advi_iterations, progress)
    else:
        raise CrmkitError(f"unknown fit method {method!r}; use one of {', '.join(FIT_METHODS)}")
    diag["method"] = method
    diag["seconds"] = round(time.perf_counter() - t0, 2)
    return post, diag
