"""Named dimensions of a fitted marketing-mix model's parameters.

:class:`crmkit.models.mmm.model.MarketingMixModel` fits its PyMC model with the shared
:func:`crmkit.models.inference.pymc_fit.fit_model` (NUTS, MAP + Laplace or ADVI), keeping only
the free parameters (no per-draw contributions); :func:`label_dims` puts them on named
dimensions (``chain``, ``draw`` and ``channel`` / ``fourier_mode`` / ``control_name`` /
``event_name``, see :data:`PARAM_DIMS`).
"""

from __future__ import annotations

import arviz as az

__all__ = ["PARAM_DIMS", "label_dims"]

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
