"""Fitting any PyMC model by NUTS, MAP + Laplace or ADVI: one call, one diagnostics schema.

:func:`fit_model` returns an ``arviz.InferenceData`` (``posterior`` on ``(chain, draw,
...)``) and diagnostics; :func:`flat_draws` merges chains and draws for code that wants flat
arrays. It uses
:func:`crmkit.models.inference.nuts.sample_nuts`, :func:`crmkit.models.inference.approx.fit_map`
and :func:`crmkit.models.inference.approx.fit_advi`, and judge NUTS draws by the one
thresholds of :mod:`crmkit.models.inference.diagnostics`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from crmkit.errors import CrmkitError
from crmkit.models.inference.approx import fit_advi, fit_map
from crmkit.models.inference.nuts import sample_nuts

__all__ = ["FIT_METHODS", "fit_model", "flat_draws"]

FIT_METHODS = ("nuts", "map", "advi")


def fit_model(
    model: Any,
    names: Sequence[str],
    method: str = "map",
    *,
    draws: int = 500,
    tune: int = 500,
    chains: int = 2,
    seed: int | None = 0,
    progress: bool = False,
    advi_iterations: int = 20000,
    **nuts_options: Any,
) -> tuple[Any, dict[str, Any]]:
    """Fit a PyMC model; return an InferenceData of ``names`` and diagnostics.

    Parameters
    ----------
    model
        A ``pm.Model``.
    names
        Variables kept in the posterior.
    method
        ``"nuts"``, ``"map"`` (mode + Laplace) or ``"advi"``.
    draws, tune, chains
        Sampler settings: ``draws`` per chain for NUTS; ``draws * chains`` draws (one
        chain) for MAP and ADVI.
    seed
        Random seed.
    progress
        Show the sampler's progress bar.
    advi_iterations
        ADVI optimisation steps.
    **nuts_options
        More keywords of :func:`crmkit.models.inference.nuts.sample_nuts` (``sampler``,
        ``target_accept``, ``cores``, ``low_rank_mass_matrix``).

    Returns
    -------
    (arviz.InferenceData, dict)
        ``posterior`` (plus ``sample_stats`` for NUTS) and diagnostics in the one schema
        (``ok``, ``method``, ``r_hat_max``, ``ess_bulk_min``, ``ess_tail_min``,
        ``divergences``, ``seconds``, ``message``, and the method's extra figures).
    """
    names = list(names)
    t0 = time.perf_counter()
    n_approx = draws * (chains if chains else 1)
    if method == "nuts":
        idata, diag = sample_nuts(
            model,
            names,
            draws=draws,
            tune=tune,
            chains=chains,
            seed=seed,
            progressbar=progress,
            **nuts_options,
        )
    elif method == "map":
        idata, diag = fit_map(model, names, n_draws=n_approx, seed=seed)
    elif method == "advi":
        idata, diag = fit_advi(
            model,
            names,
            n_draws=n_approx,
            seed=seed,
            iterations=advi_iterations,
            progressbar=progress,
        )
    else:
        raise CrmkitError(f"unknown fit method {method!r}; use one of {', '.join(FIT_METHODS)}")
    diag["seconds"] = round(time.perf_counter() - t0, 2)
    return idata, diag


def flat_draws(idata: Any, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Posterior draws with chains and draws merged into the first axis.

    Parameters
    ----------
    idata
        InferenceData with a ``posterior`` on ``(chain, draw, ...)``.
    names
        Variables to return.

    Returns
    -------
    dict
        ``{name: array(chain * draw, ...)}``.
    """
    post = idata.posterior
    return {n: post[n].values.reshape((-1, *post[n].shape[2:])) for n in names}
