"""The estimator behind the CLV models: a few positive parameters, priors and a weighted likelihood.

:class:`BayesianEstimator` follows :class:`crmkit.models.base.ModelContract`; subclasses
(:mod:`crmkit.models.clv.models`) define the parameters, priors, likelihood and data checks.

Methods
-------
``"nuts"``
    Full MCMC: nutpie when importable, else ``pm.sample``.
``"map"``
    Posterior mode in the unconstrained (log) space plus a Laplace (normal) approximation.
``"advi"``
    Mean-field variational inference.
``"mle"``
    Maximum likelihood (no priors) with draws from the asymptotic normal of the
    log-parameters (inverse Hessian), so every prediction still has a spread.

``"map"`` and ``"mle"`` draw with :func:`crmkit.models.inference.laplace.laplace_draws`: a
Hessian that is not positive definite has its eigenvalues floored, and the fit fails its
diagnostics.
"""

from __future__ import annotations

import json
import time
import warnings
from typing import Any, ClassVar, Self

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from crmkit.errors import CrmkitError, CrmkitWarning
from crmkit.models.base import ModelContract
from crmkit.models.inference.approx import fit_advi, fit_map, fit_mle, optimise_log_likelihood
from crmkit.models.inference.diagnostics import summary_line
from crmkit.models.inference.nuts import SAMPLERS, natural_params_fn, sample_nuts

#: Fit methods.
METHODS = ("nuts", "map", "advi", "mle")


class BayesianEstimator(ModelContract):
    """Models with a few positive parameters, priors and a weighted likelihood (the CLV models).

    Subclasses define the parameters, priors, likelihood and data checks; fitting runs
    through :mod:`crmkit.models.inference`. ``idata_`` holds ``posterior`` (the parameters
    on ``(chain, draw)``), ``sample_stats`` (NUTS), ``observed_data`` (the fit data's arrays
    on ``obs``) and, while customers x draws stay within :attr:`log_likelihood_max_values`,
    ``log_likelihood`` per customer.
    """

    #: Parameter names, in the order of the likelihood's arguments.
    param_names: ClassVar[tuple[str, ...]] = ()
    #: Default priors: name -> {"dist": PyMC distribution name, **its keyword arguments}.
    default_model_config: ClassVar[dict[str, dict[str, Any]]] = {}
    #: Default sampler settings.
    default_sampler_config: ClassVar[dict[str, Any]] = {
        "draws": 1000,
        "tune": 1000,
        "chains": 2,
        "target_accept": 0.8,
        # None (= "nutpie-numba" when the model has a kernel, else "nutpie"), "nutpie-numba"
        # (crmkit's numba log-posterior), "nutpie" (PyMC graph compiled by nutpie with numba),
        # "nutpie-pyfunc" (PyMC's C logp called from Python) or "pymc".
        "sampler": None,
        # nutpie's low-rank modified mass matrix (adapts to posterior correlations such as
        # r-alpha); None = on with the numba kernels, off otherwise.
        "low_rank_mass_matrix": None,
        "advi_iterations": 20000,
        "approx_draws": 1000,
    }
    #: Largest customers x draws for which ``idata_`` gets a ``log_likelihood`` group.
    log_likelihood_max_values: ClassVar[int] = 2_000_000

    def __init__(
        self,
        model_config: dict[str, dict[str, Any]] | None = None,
        sampler_config: dict[str, Any] | None = None,
        *,
        time_unit: str = "W",
        random_seed: int | None = None,
        progressbar: bool = False,
    ) -> None:
        self.model_config = model_config
        self.sampler_config = sampler_config
        self.time_unit = time_unit
        self.random_seed = random_seed
        self.progressbar = progressbar

    # -- to be provided by subclasses -------------------------------------------------
    def _prepare(self, data: pd.DataFrame) -> dict[str, np.ndarray]:
        """Validate a DataFrame and return the compressed arrays the likelihood needs."""
        raise NotImplementedError

    def _loglike_np(self, params: np.ndarray, arrays: dict[str, np.ndarray]) -> float:
        """Total (weighted) log-likelihood for a parameter vector, numpy."""
        raise NotImplementedError

    def _loglike_pt(self, params: list, arrays: dict[str, np.ndarray]):
        """Total (weighted) log-likelihood as a pytensor expression."""
        raise NotImplementedError

    def _start(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """Starting values (natural scale) for optimisation."""
        return np.ones(len(self.param_names))

    def _numba_kernel(self, arrays: dict[str, np.ndarray]):
        """Numba log-posterior ``z -> (logp, grad)`` in log space, or None (use PyMC)."""
        return None

    def _observed(self, data: pd.DataFrame) -> dict[str, np.ndarray]:
        """The likelihood's observations, one array per column, one row per observation."""
        return {}

    def _loglike_rows(
        self, values: np.ndarray, observed: dict[str, np.ndarray]
    ) -> np.ndarray | None:
        """Log-likelihood of each observation (columns) at each parameter vector, or None."""
        return None

    # -- settings ------------------------------------------------------------------------
    @property
    def priors(self) -> dict[str, dict[str, Any]]:
        """Prior settings in effect: the defaults updated by ``model_config``."""
        out = {k: dict(v) for k, v in self.default_model_config.items()}
        for k, v in (self.model_config or {}).items():
            if k not in out:
                raise CrmkitError(f"unknown parameter {k!r} in model_config; use {list(out)}")
            out[k] = dict(v)
        return out

    @property
    def sampler_settings(self) -> dict[str, Any]:
        """Sampler settings in effect: the defaults updated by ``sampler_config``."""
        return {**self.default_sampler_config, **(self.sampler_config or {})}

    # -- fitting -------------------------------------------------------------------------
    def build_model(self, data: pd.DataFrame):
        """Return the PyMC model for ``data`` (priors plus a weighted ``pm.Potential``)."""
        return self._build(self._prepare(data))

    def _build(self, arrays: dict[str, np.ndarray]):
        """Build the PyMC model from prepared arrays."""
        import pymc as pm

        with pm.Model() as model:
            # Data as shared values: the graph (and its compiled C code) is the same for
            # every data set of the same model, so pytensor's on-disk cache is reused.
            data = {k: pm.Data(k, np.asarray(v, dtype=float)) for k, v in arrays.items()}
            rvs = []
            for name in self.param_names:
                spec = dict(self.priors[name])
                dist = getattr(pm, spec.pop("dist"))
                rvs.append(dist(name, **spec))
            pm.Potential("loglike", self._loglike_pt(rvs, data))
        return model

    def fit(self, data: pd.DataFrame, method: str = "nuts", **kwargs: Any) -> Self:
        """Fit the model.

        Parameters
        ----------
        data
            One row per customer (see the subclass for the columns).
        method
            ``"nuts"``, ``"map"`` (MAP + Laplace), ``"advi"`` or ``"mle"``.
        **kwargs
            Override sampler settings for this fit (e.g. ``draws=200``).

        Returns
        -------
        Self
            The fitted model.
        """
        if method not in METHODS:
            raise CrmkitError(f"method must be one of {METHODS}, not {method!r}")
        arrays = self._prepare(data)
        settings = {**self.sampler_settings, **kwargs}
        started = time.perf_counter()
        if method == "mle":
            idata, diag = fit_mle(
                lambda p: self._loglike_np(p, arrays),
                self._start(arrays),
                self.param_names,
                n_draws=settings["approx_draws"],
                seed=self.random_seed,
            )
        elif method == "map":
            idata, diag = self._fit_map(arrays, settings)
        elif method == "advi":
            idata, diag = fit_advi(
                self._build(arrays),
                self.param_names,
                n_draws=settings["approx_draws"],
                seed=self.random_seed,
                iterations=settings["advi_iterations"],
                progressbar=self.progressbar,
            )
        else:
            idata, diag = self._fit_nuts(arrays, settings)
        diag["seconds"] = time.perf_counter() - started
        self.method_ = method
        self.idata_ = idata
        self.diagnostics_ = diag
        self.fit_data_ = data.reset_index(drop=True).copy()
        self.params_ = self._point_estimates()
        self._add_observations(self.fit_data_)
        if not diag["ok"]:
            warnings.warn(
                f"{type(self).__name__} fit ({method}) fails its diagnostics: {summary_line(diag)}",
                CrmkitWarning,
                stacklevel=2,
            )
        return self

    def _mle_estimate(self, arrays) -> np.ndarray:
        """Maximum-likelihood estimate on the natural scale."""

        def nll(lp: np.ndarray) -> float:
            val = -self._loglike_np(np.exp(lp), arrays)
            return val if np.isfinite(val) else 1e300

        return np.exp(optimise_log_likelihood(nll, np.log(self._start(arrays))).x)

    def _fit_map(self, arrays, settings) -> tuple[az.InferenceData, dict]:
        """Posterior mode from the maximum-likelihood estimate, with a Laplace approximation."""
        model = self._build(arrays)
        # Start from the maximum-likelihood estimate (cheap, numpy) where the transform is a log.
        guess = np.log(self._mle_estimate(arrays))
        start = {
            v.name: g
            for v, g in zip(model.value_vars, guess, strict=True)
            if v.name.endswith("_log__")
        }
        return fit_map(
            model,
            self.param_names,
            n_draws=settings["approx_draws"],
            seed=self.random_seed,
            start=start,
            optimizer="BFGS",
            options={"gtol": 1e-6},
            hessian_eps=1e-5,
            converged_by="newton",
        )

    def _fit_nuts(self, arrays, settings) -> tuple[az.InferenceData, dict]:
        """Full NUTS through :func:`crmkit.models.inference.nuts.sample_nuts`."""
        sampler = settings.get("sampler")
        if sampler not in SAMPLERS:
            raise CrmkitError(
                f"sampler must be None, 'nutpie-numba', 'nutpie', 'nutpie-pyfunc' or 'pymc', "
                f"not {sampler!r}"
            )
        kernel = self._numba_kernel(arrays) if sampler in (None, "nutpie-numba") else None
        if kernel is None and sampler == "nutpie-numba":
            warnings.warn(
                f"{type(self).__name__}: no numba kernel for these priors; "
                "sampling the PyMC graph with nutpie instead",
                CrmkitWarning,
                stacklevel=3,
            )
            sampler = "nutpie"
        return sample_nuts(
            None if kernel is not None else self._build(arrays),
            self.param_names,
            draws=settings["draws"],
            tune=settings["tune"],
            chains=settings["chains"],
            cores=settings.get("cores", 2),
            target_accept=settings["target_accept"],
            seed=self.random_seed,
            progressbar=self.progressbar,
            sampler=sampler,
            kernel=kernel,
            start=self._start(arrays),
            low_rank_mass_matrix=settings.get("low_rank_mass_matrix"),
        )

    def _log_space_model(self, arrays):
        """PyMC model plus compiled logp / dlogp in the unconstrained space."""
        model = self._build(arrays)
        names = [v.name for v in model.value_vars]
        logp = model.compile_logp(jacobian=True)
        dlogp = model.compile_dlogp(jacobian=True)
        to_nat = natural_params_fn(model, self.param_names)

        def point(z: np.ndarray) -> dict[str, np.ndarray]:
            return {n: np.asarray(v) for n, v in zip(names, z, strict=True)}

        return model, names, logp, dlogp, to_nat, point

    def _add_observations(self, data: pd.DataFrame) -> None:
        """Add ``observed_data`` and, when cheap, ``log_likelihood`` per row to ``idata_``."""
        observed = self._observed(data)
        if not observed:
            return
        groups = {"observed_data": xr.Dataset({k: ("obs", v) for k, v in observed.items()})}
        n_rows = len(next(iter(observed.values())))
        post = self.idata_.posterior
        n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
        if n_rows and n_rows * n_chain * n_draw <= self.log_likelihood_max_values:
            values = np.stack([post[n].to_numpy().ravel() for n in self.param_names], axis=1)
            ll = self._loglike_rows(values, observed)  # (chain * draw, rows)
            if ll is not None:
                groups["log_likelihood"] = xr.Dataset(
                    {"loglike": (("chain", "draw", "obs"), ll.reshape(n_chain, n_draw, n_rows))},
                    coords={"chain": post["chain"], "draw": post["draw"]},
                )
        for name in ("observed_data", "log_likelihood"):
            if name in self.idata_.groups():
                delattr(self.idata_, name)
        self.idata_.add_groups(groups)

    # -- results -------------------------------------------------------------------------
    def _point_estimates(self) -> dict[str, float]:
        """Posterior means (Bayesian fits) or the MLE."""
        if self.idata_.attrs.get("mle"):
            return {k: float(v) for k, v in json.loads(self.idata_.attrs["mle"]).items()}
        post = self.idata_.posterior
        return {n: float(post[n].mean()) for n in self.param_names}

    def posterior_draws(self, n_draws: int | None = None, seed: int | None = 0) -> xr.Dataset:
        """Parameter draws stacked over chains, dims ``("sample",)``.

        Parameters
        ----------
        n_draws
            Thin (without replacement) to this many draws; all when None.
        seed
            Seed of the thinning.

        Returns
        -------
        xarray.Dataset
            One variable per parameter.
        """
        self.check_fitted()
        post = self.idata_.posterior[list(self.param_names)]
        stacked = post.stack(sample=("chain", "draw")).reset_index("sample", drop=True)
        n = stacked.sizes["sample"]
        if n_draws is not None and n_draws < n:
            idx = np.sort(np.random.default_rng(seed).choice(n, n_draws, replace=False))
            stacked = stacked.isel(sample=idx)
        return stacked.assign_coords(sample=np.arange(stacked.sizes["sample"]))

    # -- persistence -------------------------------------------------------------------
    def _fit_frame(self) -> pd.DataFrame:
        """The fit data, customer ids as text."""
        fit = self.fit_data_.copy()
        fit["customer_id"] = fit["customer_id"].astype(str)
        return fit
