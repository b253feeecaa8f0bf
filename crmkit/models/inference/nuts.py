"""NUTS for every model: nutpie (a numba kernel, or a compiled PyMC model) or PyMC's sampler.

:func:`sample_nuts` runs the sampler and returns an ``arviz.InferenceData`` (``posterior`` of
the asked variables on ``(chain, draw, ...)`` and ``sample_stats``) together with diagnostics
in the one schema (:func:`crmkit.models.inference.diagnostics.mcmc_diagnostics`), plus
``sampler``: the route taken.

Routes (``sampler``)
--------------------
``None``
    ``"nutpie-numba"`` when a kernel is given, else ``"nutpie"``.
``"nutpie-numba"``
    nutpie calling a numba log-posterior ``z -> (logp, grad)`` over log-parameters.
``"nutpie"``
    nutpie compiling the PyMC graph (numba backend).
``"nutpie-pyfunc"``
    nutpie calling PyMC's C-compiled logp and gradient (cached on disk by pytensor).
``"pymc"``
    ``pm.sample``.

:func:`sample_logp` samples a hand-written log-density over a flat vector (a model's own
parametrisation, e.g. the pipeline model's identified one) with nutpie, the same way.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import optimize

from crmkit.errors import CrmkitError, CrmkitWarning
from crmkit.models.inference.diagnostics import mcmc_diagnostics
from crmkit.models.inference.laplace import numeric_hessian

__all__ = [
    "SAMPLERS",
    "natural_params_fn",
    "nutpie_numba",
    "nutpie_pyfunc",
    "sample_logp",
    "sample_nuts",
]

#: Accepted values of ``sampler``.
SAMPLERS = (None, "nutpie-numba", "nutpie", "nutpie-pyfunc", "pymc")

Kernel = Callable[[np.ndarray], tuple[float, np.ndarray]]


def natural_params_fn(model: Any, names: Sequence[str]) -> Any:
    """Compiled map from unconstrained values (a point dict) to the named variables.

    Parameters
    ----------
    model
        A ``pm.Model``.
    names
        Free variables (or deterministics) to return, in order.

    Returns
    -------
    callable
        ``point -> list of arrays``.
    """
    outs = model.replace_rvs_by_values([model[n] for n in names])
    return model.compile_fn(outs, inputs=model.value_vars, on_unused_input="ignore")


def nutpie_numba(kernel: Kernel, param_names: Sequence[str], start: np.ndarray) -> Any:
    """Nutpie model calling a numba log-posterior ``z -> (logp, grad)`` over log-parameters.

    ``z = log(theta)``, or ``log(theta - shift)`` for a kernel with lower bounds
    (:class:`crmkit.models.clv.kernels.Kernel`).

    Chains start near the posterior mode (found with the kernel's own gradient), jittered
    by up to two approximate posterior sd (from a numerical Hessian) in each direction.

    Parameters
    ----------
    kernel
        Log-posterior and its gradient in the log-parameters.
    param_names
        Names of the (positive) parameters, in the kernel's order.
    start
        Starting values on the natural scale.

    Returns
    -------
    nutpie compiled model
        For ``nutpie.sample``; draws are on the natural scale.
    """
    from nutpie.compiled_pyfunc import from_pyfunc

    ndim = len(param_names)

    def neg(z: np.ndarray) -> tuple[float, np.ndarray]:
        lp, g = kernel(z)
        return (-lp, -g) if np.isfinite(lp) else (1e300, np.zeros(ndim))

    to_z = getattr(kernel, "to_unconstrained", np.log)
    to_theta = getattr(kernel, "to_natural", np.exp)
    z0 = to_z(np.asarray(start, dtype=float))
    res = optimize.minimize(neg, z0, jac=True, method="L-BFGS-B")
    mode = res.x if np.all(np.isfinite(res.x)) else z0
    hess = numeric_hessian(lambda z: neg(z)[1], mode, 1e-5)
    try:
        sd = np.sqrt(np.clip(np.diag(np.linalg.inv(hess)), 1e-12, 1.0))
    except np.linalg.LinAlgError:
        sd = np.full(ndim, 0.1)
    sd = np.where(np.isfinite(sd), sd, 0.1)

    def make_logp():
        return kernel

    def make_expand(seed1, seed2, chain):
        def expand(x):
            theta = to_theta(x)
            return {n: np.asarray(theta[i]) for i, n in enumerate(param_names)}

        return expand

    def initial_point(chain_seed: int) -> np.ndarray:
        rng = np.random.default_rng(chain_seed)
        return mode + rng.uniform(-2.0, 2.0, ndim) * sd

    return from_pyfunc(
        ndim,
        make_logp,
        make_expand,
        [np.dtype("float64")] * ndim,
        [()] * ndim,
        list(param_names),
        make_initial_point_fn=initial_point,
    )


def nutpie_pyfunc(model: Any, param_names: Sequence[str], seed: int | None = None) -> Any:
    """Nutpie model calling PyMC's C-compiled logp and gradient (cached on disk by pytensor).

    nutpie's own PyMC route compiles the graph with numba on every fit (tens of seconds);
    the C backend's compiled modules are reused across fits, and data entered as shared
    values need no new compilation. Only scalar parameters are supported.

    Parameters
    ----------
    model
        A ``pm.Model``.
    param_names
        Scalar variables to return.
    seed
        Unused (kept for the call signature).

    Returns
    -------
    nutpie compiled model
        For ``nutpie.sample``.
    """
    from nutpie.compiled_pyfunc import from_pyfunc

    vgf = model.logp_dlogp_function(ravel_inputs=True)
    vgf.set_extra_values({})
    names = [v.name for v in vgf._grad_vars]
    ip = model.initial_point()
    sizes = [int(np.prod(ip[n].shape)) for n in names]
    ndim = int(sum(sizes))
    to_nat = natural_params_fn(model, param_names)
    start = np.concatenate([np.ravel(ip[n]) for n in names])

    def make_logp():
        fn = vgf._pytensor_function.copy()

        def logp(x):
            val, grad = fn(x)
            return float(val), np.asarray(grad, dtype="float64", order="C")

        return logp

    def make_expand(seed1, seed2, chain):
        fn = to_nat.f.copy() if hasattr(to_nat, "f") else None

        def expand(x):
            point = {}
            i = 0
            for n, k in zip(names, sizes, strict=True):
                point[n] = x[i : i + k].reshape(ip[n].shape)
                i += k
            vals = fn(**point) if fn is not None else to_nat(point)
            return {
                n: np.asarray(v, dtype="float64") for n, v in zip(param_names, vals, strict=True)
            }

        return expand

    def initial_point(chain_seed: int) -> np.ndarray:
        rng = np.random.default_rng(chain_seed)
        return start + rng.uniform(-0.5, 0.5, ndim)

    return from_pyfunc(
        ndim,
        make_logp,
        make_expand,
        [np.dtype("float64")] * len(param_names),
        [()] * len(param_names),
        list(param_names),
        make_initial_point_fn=initial_point,
    )


def sample_nuts(
    model: Any,
    names: Sequence[str],
    *,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 2,
    cores: int | None = None,
    target_accept: float | None = None,
    seed: int | None = None,
    progressbar: bool = False,
    sampler: str | None = None,
    kernel: Kernel | None = None,
    start: np.ndarray | None = None,
    low_rank_mass_matrix: bool | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Sample a model with NUTS and judge the draws by the one thresholds.

    Parameters
    ----------
    model
        A ``pm.Model``; may be None when ``kernel`` is given and used.
    names
        Variables kept in the returned posterior.
    draws, tune, chains
        Draws and tuning steps per chain, and the number of chains.
    cores
        Chains run in parallel (default ``chains``).
    target_accept
        NUTS target acceptance rate (default: the sampler's own, 0.8).
    seed
        Random seed.
    progressbar
        Show the sampler's progress bar.
    sampler
        Route, one of :data:`SAMPLERS` (see the module docstring).
    kernel
        Numba log-posterior ``z -> (logp, grad)`` over the log of ``names`` (the
        ``"nutpie-numba"`` route); ``start`` then gives natural-scale starting values.
    start
        Starting values for the kernel route (default ones).
    low_rank_mass_matrix
        nutpie's low-rank modified mass matrix; None = on with a kernel, off otherwise.

    Returns
    -------
    idata : arviz.InferenceData
        ``posterior`` (``names``) and ``sample_stats``.
    diagnostics : dict
        The one schema (method ``"nuts"``) plus ``sampler``, ``n_chains`` and ``n_draws``.
    """
    import arviz as az

    if sampler not in SAMPLERS:
        raise CrmkitError(
            f"sampler must be None, 'nutpie-numba', 'nutpie', 'nutpie-pyfunc' or 'pymc', "
            f"not {sampler!r}"
        )
    started = time.perf_counter()
    try:
        import nutpie
    except ImportError:  # pragma: no cover - nutpie is a dependency
        nutpie = None
    cores = chains if cores is None else min(chains, cores)
    use_kernel = kernel is not None and sampler in (None, "nutpie-numba") and nutpie is not None
    if kernel is None and sampler == "nutpie-numba":
        warnings.warn(
            "no numba kernel for this model; sampling the PyMC graph with nutpie instead",
            CrmkitWarning,
            stacklevel=3,
        )
    accept = {} if target_accept is None else {"target_accept": target_accept}
    if model is None and not use_kernel:
        raise CrmkitError("sample_nuts needs a PyMC model unless a numba kernel is used")
    if use_kernel or (sampler != "pymc" and nutpie is not None):
        low_rank = use_kernel if low_rank_mass_matrix is None else low_rank_mass_matrix
        compile_started = time.perf_counter()
        if use_kernel:
            x0 = np.ones(len(names)) if start is None else start
            compiled = nutpie_numba(kernel, names, x0)
        elif sampler == "nutpie-pyfunc":
            compiled = nutpie_pyfunc(model, names, seed)
        else:
            compiled = nutpie.compile_pymc_model(model)
        compile_seconds: float | None = round(time.perf_counter() - compile_started, 2)
        idata = nutpie.sample(
            compiled,
            draws=draws,
            tune=tune,
            chains=chains,
            cores=cores,
            seed=seed,
            progress_bar=progressbar,
            save_warmup=False,
            **accept,
            low_rank_modified_mass_matrix=bool(low_rank),
        )
        used = "nutpie-numba" if use_kernel else sampler or "nutpie"
    else:
        import pymc as pm

        with model:
            idata = pm.sample(
                draws=draws,
                tune=tune,
                chains=chains,
                cores=cores,
                random_seed=seed,
                progressbar=progressbar,
                compute_convergence_checks=False,
                **accept,
            )
        used = "pymc"
        compile_seconds = None  # pm.sample compiles inside its own call
    keep = az.InferenceData(posterior=idata.posterior[list(names)], sample_stats=idata.sample_stats)
    diag = mcmc_diagnostics(keep, method="nuts", seconds=time.perf_counter() - started)
    diag["sampler"] = used
    diag["compile_seconds"] = compile_seconds
    return keep, diag


def sample_logp(
    logp: Kernel,
    ndim: int,
    expand: Callable[[np.ndarray, np.random.Generator], dict[str, np.ndarray]],
    shapes: dict[str, tuple[int, ...]],
    initial: Callable[[int], np.ndarray],
    *,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 2,
    cores: int | None = None,
    seed: int | None = None,
    progressbar: bool = False,
    target_accept: float | None = None,
    low_rank_mass_matrix: bool = False,
) -> tuple[Any, dict[str, Any]]:
    """Sample a log-density over a flat unconstrained vector with nutpie's NUTS.

    Parameters
    ----------
    logp
        ``x -> (log-density, gradient)`` of a vector of length ``ndim``.
    ndim
        Length of the vector.
    expand
        ``(x, rng) -> {name: array}``: the model's variables of one draw (``rng`` a
        generator seeded per chain, for variables drawn from their prior).
    shapes
        Shape of each variable ``expand`` returns, by name (the posterior's variables).
    initial
        ``chain seed -> x``: a chain's starting point.
    draws, tune, chains
        Draws and tuning steps per chain, and the number of chains.
    cores
        Chains run in parallel (default ``chains``).
    seed
        Random seed.
    progressbar
        Show nutpie's progress bar.
    target_accept
        NUTS target acceptance rate (default: nutpie's, 0.8).
    low_rank_mass_matrix
        nutpie's low-rank modified mass matrix.

    Returns
    -------
    idata : arviz.InferenceData
        ``posterior`` (the ``shapes`` variables) and ``sample_stats``.
    diagnostics : dict
        The one schema (method ``"nuts"``) plus ``sampler`` (``"nutpie-logp"``),
        ``n_chains`` and ``n_draws``.
    """
    import arviz as az
    import nutpie
    from nutpie.compiled_pyfunc import from_pyfunc

    started = time.perf_counter()
    names = list(shapes)

    def make_logp():
        return logp

    def make_expand(seed1, seed2, chain):
        rng = np.random.default_rng([int(seed1), int(seed2), int(chain)])

        def expand_one(x):
            vals = expand(np.asarray(x, dtype=np.float64), rng)
            return {n: np.asarray(vals[n], dtype=np.float64) for n in names}

        return expand_one

    compiled = from_pyfunc(
        ndim,
        make_logp,
        make_expand,
        [np.dtype("float64")] * len(names),
        [tuple(shapes[n]) for n in names],
        names,
        make_initial_point_fn=initial,
    )
    accept = {} if target_accept is None else {"target_accept": target_accept}
    idata = nutpie.sample(
        compiled,
        draws=draws,
        tune=tune,
        chains=chains,
        cores=chains if cores is None else min(chains, cores),
        seed=seed,
        progress_bar=progressbar,
        save_warmup=False,
        low_rank_modified_mass_matrix=low_rank_mass_matrix,
        **accept,
    )
    keep = az.InferenceData(posterior=idata.posterior[names], sample_stats=idata.sample_stats)
    diag = mcmc_diagnostics(keep, method="nuts", seconds=time.perf_counter() - started)
    diag["sampler"] = "nutpie-logp"
    return keep, diag
