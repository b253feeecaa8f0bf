"""Inference shared by every model: MAP + Laplace, ADVI, MLE and NUTS, and their diagnostics.

Every function returns ``(idata, diagnostics)``: an ``arviz.InferenceData`` whose
``posterior`` holds draws on ``(chain, draw, ...)`` (one chain for the approximations), and
a dict in the one schema of :mod:`~crmkit.models.inference.diagnostics`.

API
---
:mod:`crmkit.models.inference.diagnostics`
    ``KEYS``, ``EXTRA_KEYS``, ``R_HAT_MAX`` (1.01), ``ESS_BULK_MIN`` (400),
    ``DIVERGENCES_MAX`` (0); ``diagnostics(method, ok=, message=, **figures)`` builds a
    dict in the schema; ``mcmc_diagnostics(idata, method="nuts", seconds=None)`` judges
    MCMC draws by the thresholds; ``fit_diagnostics(method, raw, seconds, message)`` puts
    a fit's own figures into the schema; ``summary_line(diag)`` one line of text.
:mod:`crmkit.models.inference.nuts`
    ``sample_nuts(model, names, *, draws, tune, chains, cores=None, target_accept=None,
    seed, progressbar, sampler=None, kernel=None, start=None, low_rank_mass_matrix=None)``:
    nutpie with a numba kernel (``"nutpie-numba"``), nutpie compiling the PyMC graph
    (``"nutpie"``), nutpie calling PyMC's C logp (``"nutpie-pyfunc"``) or ``pm.sample``
    (``"pymc"``); diagnostics add ``sampler``, ``n_chains``, ``n_draws`` and
    ``compile_seconds``.
    ``nutpie_numba``, ``nutpie_pyfunc`` and ``natural_params_fn`` are its building blocks.
:mod:`crmkit.models.inference.approx`
    ``fit_map(model, names, *, n_draws, seed, start=None, optimizer="L-BFGS-B",
    options=None, hessian_eps=1e-4, converged_by="optimizer")``: mode in the unconstrained
    space plus Laplace draws (adds ``converged``, ``hessian_positive_definite``; the mode
    in ``idata.attrs["map"]``). ``fit_advi(model, names, *, n_draws, seed, iterations,
    progressbar)`` (adds ``loss_rel_sd``). ``fit_mle(loglike, start, names, *, n_draws,
    seed)``: maximum likelihood over log-parameters of a numpy log-likelihood with
    asymptotic-normal draws (adds ``converged``, ``loglike``, ``hessian_positive_definite``;
    the estimate in ``idata.attrs["mle"]``).
:mod:`crmkit.models.inference.laplace`
    ``numeric_hessian`` and ``laplace_draws`` (eigenvalue-floored normal draws).
:mod:`crmkit.models.inference.pymc_fit`
    ``fit_model(model, names, method="map", *, draws=500, tune=500, chains=2, seed=0,
    progress=False, advi_iterations=20000, **nuts_options)`` -> ``(idata, diagnostics)``
    for any PyMC model; ``flat_draws(idata, names)`` -> ``{name: array(chain * draw, ...)}``.
:mod:`crmkit.models.inference.grid`
    Grid posteriors of local-level models (not ``(idata, diagnostics)``):
    ``kalman_filter(y, obs_var, sig2, tau2, phi, start_var, H=None, effect_var=0.0, *,
    predictions=False)`` -> ``KalmanResult`` (log-likelihood, last filtered state, one-step
    predictions) at every grid point at once; ``half_normal_log_grid(scale, lo, hi, n)``;
    ``posterior_weights(log_post)``.
"""
