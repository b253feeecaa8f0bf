"""Fitting a built marketing-mix model: NUTS, or a MAP / ADVI approximation.

:class:`crmkit.models.mmm.model.MarketingMixModel` builds the PyMC model and calls
:func:`fit_nuts` or :func:`fit_approx`, thin wrappers of the shared inference functions
(:func:`crmkit.models.inference.nuts.sample_nuts`, :func:`crmkit.models.inference.approx.fit_map`
and :func:`crmkit.models.inference.approx.fit_advi`). Both return an InferenceData holding
only the free parameters (no per-draw contributions) on named dimensions (``chain``,
``draw`` and ``channel`` / ``fourier_mode`` / ``control_name`` / ``event_name``, see
:data:`PARAM_DIMS`) and diagnostics in the one schema of
:mod:`crmkit.models.inference.diagnostics` (one set of thresholds for every model).
"""

from __future__ import annotations

from typing import Any

import arviz as az

from crmkit.models.inference.approx import fit_advi, fit_map
from crmkit.models.inference.nuts import sample_nuts

__all__ = ["PARAM_DIMS", "fit_approx", "fit_nuts", "label_dims"]

#: Dimensions of the parameters that have one (the rest are scalars).
PARAM_DIMS: dict[str, list[str]] = {
    "fourier": ["fourier_mode"],
    "decay": ["channel"],
    "lam": ["channel"],
    "half": ["channel"],
    "slope": ["channel"],
    "beta": ["channel"],
    "roas": ["channel"],
    "control": ["control_name"],
    "event": ["event_name"],
}


def label_dims(idata: az.InferenceData, coords: dict[str, list[str]]) -> az.InferenceData:
    """Put the parameters of ``idata.posterior`` on the named dimensions of :data:`PARAM_DIMS`.

    Parameters
    ----------
    idata
        InferenceData whose posterior has the variables on ``(chain, draw, ...)``, the
        extra dimension possibly unnamed (``decay_dim_0``).
    coords
        Labels of the named dimensions.

    Returns
    -------
    arviz.InferenceData
        The same groups and attributes, the posterior relabelled.
    """
    post = idata.posterior
    named = all(
        list(post[name].dims[2:]) == dims for name, dims in PARAM_DIMS.items() if name in post
    )
    if named:
        return idata
    relabelled = az.from_dict(
        posterior={k: post[k].values for k in post.data_vars},
        coords=coords,
        dims={k: v for k, v in PARAM_DIMS.items() if k in post},
    ).posterior
    relabelled.attrs.update(post.attrs)
    groups = {g: idata[g] for g in idata.groups() if g != "posterior"}
    out = az.InferenceData(posterior=relabelled, **groups)
    out.attrs.update(idata.attrs)
    return out


def fit_nuts(
    model,
    param_names: list[str],
    settings: dict[str, Any],
    *,
    seed: int | None,
    progressbar: bool = False,
) -> tuple[az.InferenceData, dict[str, Any]]:
    """Sample a PyMC model with NUTS (:func:`crmkit.models.inference.nuts.sample_nuts`).

    Parameters
    ----------
    model
        The PyMC model (built without per-draw contributions, so nothing else is stored).
    param_names
        Free parameters to keep in the posterior.
    settings
        ``draws``, ``tune``, ``chains``, ``target_accept`` and ``sampler`` (None or
        ``"nutpie"``: nutpie; ``"pymc"``: ``pm.sample``); chains run on at most two cores.
    seed
        Seed of the sampler.
    progressbar
        Show the sampler's progress.

    Returns
    -------
    idata : arviz.InferenceData
        ``posterior`` (the parameters) and ``sample_stats``.
    diagnostics : dict
        The one schema (judged by the one thresholds) plus ``sampler``, ``n_chains`` and
        ``n_draws``.
    """
    return sample_nuts(
        model,
        param_names,
        draws=settings["draws"],
        tune=settings["tune"],
        chains=settings["chains"],
        cores=min(settings["chains"], 2),
        target_accept=settings["target_accept"],
        seed=seed,
        progressbar=progressbar,
        sampler=settings.get("sampler"),
    )


def fit_approx(
    model,
    param_names: list[str],
    method: str,
    *,
    draws: int,
    seed: int,
    coords: dict[str, list[str]],
    advi_iterations: int = 20000,
) -> tuple[az.InferenceData, dict[str, Any]]:
    """Fit a PyMC model by MAP plus a Laplace approximation, or by ADVI, and draw from it.

    Parameters
    ----------
    model
        The PyMC model.
    param_names
        Free parameters to keep in the posterior.
    method
        ``"map"`` (:func:`crmkit.models.inference.approx.fit_map`) or ``"advi"``
        (:func:`crmkit.models.inference.approx.fit_advi`).
    draws
        Number of draws (one chain).
    seed
        Seed of the fit and the draws.
    coords
        Labels of the dimensions in :data:`PARAM_DIMS` (``channel``, ``fourier_mode``,
        ``control_name``, ``event_name``).
    advi_iterations
        ADVI optimisation steps.

    Returns
    -------
    idata : arviz.InferenceData
        ``posterior`` with one chain, on named dimensions.
    diagnostics : dict
        The one schema (MCMC figures None) plus ``converged`` and
        ``hessian_positive_definite`` (MAP) or ``loss_rel_sd`` (ADVI).
    """
    if method == "map":
        idata, diag = fit_map(model, param_names, n_draws=draws, seed=seed)
    else:
        idata, diag = fit_advi(
            model, param_names, n_draws=draws, seed=seed, iterations=advi_iterations
        )
    return label_dims(idata, coords), diag
