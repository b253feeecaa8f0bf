"""One diagnostics schema and one set of thresholds for every model and every method.

Every fitted crmkit model has ``diagnostics_``, a dict with the keys of :data:`KEYS`:

``ok``
    True when the fit passes its checks: for MCMC, R-hat ≤ :data:`R_HAT_MAX` (with two or
    more chains), bulk and tail ESS ≥ :data:`ESS_BULK_MIN` and no divergences; for an
    approximation (MAP + Laplace, ADVI, MLE), a converged optimiser and a positive definite
    Hessian (or a finite ELBO).
``method``
    ``"nuts"``, ``"map"``, ``"advi"``, ``"mle"`` (or a model's own closed-form method).
``r_hat_max``, ``ess_bulk_min``, ``ess_tail_min``, ``divergences``
    MCMC figures; None for approximations.
``seconds``
    Wall time of the fit.
``message``
    Why a fit is not ok (None when it is).

A method may add figures of its own, named in :data:`EXTRA_KEYS` (e.g. ``sampler``,
``loglike``); every value is JSON-serialisable, so a saved fit gives its diagnostics back.
Apps, reports and the snapshot read the :data:`KEYS` and nothing else.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

#: Largest acceptable R-hat.
R_HAT_MAX = 1.01
#: Smallest acceptable bulk (and tail) effective sample size.
ESS_BULK_MIN = 400
#: Acceptable number of divergent transitions.
DIVERGENCES_MAX = 0
#: The keys every ``diagnostics_`` holds.
KEYS = (
    "ok",
    "method",
    "r_hat_max",
    "ess_bulk_min",
    "ess_tail_min",
    "divergences",
    "seconds",
    "message",
)

#: Extra figures a method may add to :data:`KEYS` (and nothing else).
EXTRA_KEYS = (
    "sampler",
    "n_chains",
    "n_draws",
    "converged",
    "hessian_positive_definite",
    "loglike",
    "loss_rel_sd",
    "compile_seconds",
)


def diagnostics(method: str, *, ok: bool, message: str | None = None, **figures: Any) -> dict:
    """A diagnostics dict in the one schema.

    Parameters
    ----------
    method
        The fit method.
    ok
        Whether the fit passes its checks.
    message
        Why it does not (kept None when ``ok``).
    **figures
        Values of the other :data:`KEYS` and any extra figures of the method (e.g.
        ``loglike``, ``converged``).

    Returns
    -------
    dict
        Every key of :data:`KEYS` (missing figures None) plus the extra figures.
    """
    out: dict[str, Any] = dict.fromkeys(KEYS)
    out.update(figures)
    out["method"] = method
    out["ok"] = bool(ok)
    out["message"] = None if ok else (message or "the fit fails its diagnostics")
    return out


def mcmc_diagnostics(idata, *, method: str = "nuts", seconds: float | None = None) -> dict:
    """R-hat, bulk/tail ESS and divergences of an MCMC fit, judged by the one thresholds.

    Parameters
    ----------
    idata
        ``arviz.InferenceData`` with ``posterior`` (and ``sample_stats`` for divergences).
    method
        Recorded as ``method``.
    seconds
        Wall time of the fit.

    Returns
    -------
    dict
        The :data:`KEYS` plus ``n_chains`` and ``n_draws`` (per-variable figures:
        ``arviz.summary(idata)``).
    """
    import arviz as az

    post = idata.posterior
    n_chains = int(post.sizes["chain"])
    # a constant variable (a fixed reference level) has no R-hat or ESS: arviz divides 0 by
    # 0 and warns; its NaN is skipped below (nanmin, nanmax), so the warning is noise
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
        ess_bulk = az.ess(post, method="bulk")
        ess_tail = az.ess(post, method="tail")
        rhat = az.rhat(post) if n_chains > 1 else None

    def _worst(ds, how) -> dict[str, float]:
        return {v: float(getattr(np, how)(ds[v].to_numpy())) for v in post.data_vars}

    per = pd.DataFrame(
        {
            "ess_bulk": _worst(ess_bulk, "nanmin"),
            "ess_tail": _worst(ess_tail, "nanmin"),
            "r_hat": _worst(rhat, "nanmax")
            if rhat is not None
            else dict.fromkeys(post.data_vars, np.nan),
        }
    )
    stats = idata.get("sample_stats") if hasattr(idata, "get") else None
    div = 0
    if stats is not None and "diverging" in stats:
        div = int(stats["diverging"].sum())
    r_hat_max = float(per["r_hat"].max()) if rhat is not None else None
    ess_b, ess_t = float(per["ess_bulk"].min()), float(per["ess_tail"].min())
    reasons = []
    if r_hat_max is not None and not r_hat_max <= R_HAT_MAX:
        reasons.append(f"R-hat {r_hat_max:.3f} > {R_HAT_MAX}")
    if not ess_b >= ESS_BULK_MIN:
        reasons.append(f"bulk ESS {ess_b:.0f} < {ESS_BULK_MIN}")
    if not ess_t >= ESS_BULK_MIN:
        reasons.append(f"tail ESS {ess_t:.0f} < {ESS_BULK_MIN}")
    if div > DIVERGENCES_MAX:
        reasons.append(f"{div} divergences")
    return diagnostics(
        method,
        ok=not reasons,
        message="; ".join(reasons) or None,
        r_hat_max=r_hat_max,
        ess_bulk_min=ess_b,
        ess_tail_min=ess_t,
        divergences=div,
        seconds=seconds,
        n_chains=n_chains,
        n_draws=int(post.sizes["draw"]),
    )


def summary_line(diag: dict) -> str:
    """One line: method, ok flag and the figures behind it."""
    keys = ("r_hat_max", "ess_bulk_min", "divergences", "converged", "loglike", "message")
    figs = ", ".join(
        f"{k}={diag[k]:.4g}" if isinstance(diag[k], float) else f"{k}={diag[k]}"
        for k in keys
        if diag.get(k) is not None
    )
    return f"method={diag.get('method')}, ok={diag.get('ok')}" + (f", {figs}" if figs else "")


def fit_diagnostics(
    method: str, raw: dict[str, Any], seconds: float, message: str | None = None
) -> dict[str, Any]:
    """A fit's figures in the one diagnostics schema (figures of no schema key dropped).

    Parameters
    ----------
    method
        The method used.
    raw
        The fit's figures (``ok`` and any of the schema's keys and extra keys).
    seconds
        Wall time of the fit.
    message
        Why the fit is not ok (used when ``raw`` has none).

    Returns
    -------
    dict
        :data:`~crmkit.models.inference.diagnostics.KEYS` plus the extra keys ``raw`` has.
    """
    figures = {k: v for k, v in raw.items() if k in KEYS or k in EXTRA_KEYS}
    figures.pop("ok", None)
    figures.pop("method", None)
    msg = figures.pop("message", None) or message
    figures["seconds"] = seconds
    return diagnostics(method, ok=bool(raw.get("ok", False)), message=msg, **figures)


__all__ = [
    "DIVERGENCES_MAX",
    "ESS_BULK_MIN",
    "EXTRA_KEYS",
    "KEYS",
    "R_HAT_MAX",
    "diagnostics",
    "fit_diagnostics",
    "mcmc_diagnostics",
    "summary_line",
]
