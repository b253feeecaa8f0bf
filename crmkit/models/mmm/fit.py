"""Fitting a built marketing-mix model: NUTS, or a MAP / ADVI approximation, and its diagnostics.

:class:`crmkit.models.mmm.model.MarketingMixModel` builds the PyMC model and calls
:func:`fit_nuts` or :func:`fit_approx`; both return an InferenceData holding only the free
parameters (no per-draw contributions) and a dict of diagnostics with an ``ok`` flag.
"""

from __future__ import annotations

import time
from typing import Any

import arviz as az
import numpy as np

__all__ = ["PARAM_DIMS", "fit_approx", "fit_nuts", "nuts_diagnostics"]

#: Dimensions of the parameters that have one (the rest are scalars, or Fourier terms).
PARAM_DIMS: dict[str, list[str]] = {
    "decay": ["channel"],
    "lam": ["channel"],
    "half": ["channel"],
    "slope": ["channel"],
    "beta": ["channel"],
    "roas": ["channel"],
    "control": ["control_name"],
    "event": ["event_name"],
}


def fit_nuts(
    model,
    param_names: list[str],
    settings: dict[str, Any],
    *,
    seed: int | None,
    progressbar: bool = False,
) -> tuple[az.InferenceData, dict[str, Any]]:
    """Sample a PyMC model with NUTS: nutpie when importable, else PyMC's sampler.

    Parameters
    ----------
    model
        The PyMC model.
    param_names
        Free parameters to keep in the posterior.
    settings
        ``draws``, ``tune``, ``chains``, ``target_accept`` and ``sampler`` (None or
        ``"nutpie"``: nutpie when importable; anything else: ``pm.sample``).
    seed
        Seed of the sampler.
    progressbar
        Show the sampler's progress.

    Returns
    -------
    idata : arviz.InferenceData
        ``posterior`` (the parameters) and ``sample_stats``.
    diagnostics : dict
        :func:`nuts_diagnostics` plus ``sampler`` and ``compile_seconds``.
    """
    try:
        import nutpie
    except ImportError:  # pragma: no cover - nutpie is a dependency
        nutpie = None
    if settings.get("sampler") in (None, "nutpie") and nutpie is not None:
        t0 = time.perf_counter()
        # only the parameters are kept: no per-draw (date, channel) contributions
        compiled = nutpie.compile_pymc_model(model, var_names=param_names)
        compile_s = time.perf_counter() - t0
        idata = nutpie.sample(
            compiled,
            draws=settings["draws"],
            tune=settings["tune"],
            chains=settings["chains"],
            cores=min(settings["chains"], 2),
            seed=seed,
            progress_bar=progressbar,
            save_warmup=False,
            target_accept=settings["target_accept"],
        )
        used = "nutpie"
    else:
        compile_s = float("nan")
        import pymc as pm

        with model:
            idata = pm.sample(
                draws=settings["draws"],
                tune=settings["tune"],
                chains=settings["chains"],
                cores=min(settings["chains"], 2),
                target_accept=settings["target_accept"],
                random_seed=seed,
                progressbar=progressbar,
                compute_convergence_checks=False,
            )
        used = "pymc"
    keep = az.InferenceData(posterior=idata.posterior[param_names], sample_stats=idata.sample_stats)
    diag = nuts_diagnostics(keep)
    diag["sampler"] = used
    diag["compile_seconds"] = round(compile_s, 2)
    return keep, diag


def fit_approx(
    model,
    param_names: list[str],
    method: str,
    *,
    draws: int,
    seed: int,
    coords: dict[str, list[str]],
) -> tuple[az.InferenceData, dict[str, Any]]:
    """Fit a PyMC model by MAP plus a Laplace approximation, or by ADVI, and draw from it.

    Parameters
    ----------
    model
        The PyMC model.
    param_names
        Free parameters to keep in the posterior.
    method
        ``"map"`` or ``"advi"`` (see :func:`crmkit.models.inference.pymc_fit.fit_model`).
    draws
        Number of draws (one chain).
    seed
        Seed of the fit and the draws.
    coords
        Labels of the dimensions in :data:`PARAM_DIMS` (``channel``, ``control_name``,
        ``event_name``).

    Returns
    -------
    idata : arviz.InferenceData
        ``posterior`` with one chain.
    diagnostics : dict
        As returned by :func:`crmkit.models.inference.pymc_fit.fit_model`.
    """
    from crmkit.models.inference.pymc_fit import fit_model

    post, diag = fit_model(model, param_names, method, draws=draws, chains=1, seed=seed)
    idata = az.from_dict(
        posterior={k: v[None] for k, v in post.items()}, coords=coords, dims=PARAM_DIMS
    )
    return idata, diag


def nuts_diagnostics(
    idata: az.InferenceData, max_rhat: float = 1.01, min_ess: float = 100
) -> dict[str, Any]:
    """Largest R-hat, smallest bulk ESS, divergences and an ``ok`` flag over all parameters.

    Parameters
    ----------
    idata
        InferenceData with ``posterior`` and, optionally, ``sample_stats`` (``diverging``).
    max_rhat
        Largest acceptable R-hat (checked only with two or more chains).
    min_ess
        Smallest acceptable bulk effective sample size.

    Returns
    -------
    dict
        ``ok``, ``max_rhat`` (NaN with one chain), ``min_ess_bulk`` and ``divergences``.
    """
    post = idata.posterior
    ess = az.ess(post, method="bulk")
    e_min = float(min(float(ess[v].min()) for v in post.data_vars))
    r_max = float("nan")
    if post.sizes["chain"] > 1:
        rhat = az.rhat(post)
        r_max = float(max(float(rhat[v].max()) for v in post.data_vars))
    stats = idata.get("sample_stats")
    div = int(stats["diverging"].sum()) if stats is not None and "diverging" in stats else 0
    ok = (np.isnan(r_max) or r_max <= max_rhat) and e_min >= min_ess and div == 0
    return {"ok": bool(ok), "max_rhat": r_max, "min_ess_bulk": e_min, "divergences": div}
