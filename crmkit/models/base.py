"""A small shared base for crmkit's Bayesian models: the estimator contract and its plumbing.

Settings (priors, sampler options) are stored by ``__init__``; ``fit(data, method=...)``
validates, builds, fits and returns ``self``; what was learned ends in ``_``:
``idata_`` (ArviZ InferenceData whose ``posterior`` holds draws for every method),
``params_`` (point estimates), ``method_`` and ``diagnostics_``.

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

``"map"`` and ``"mle"`` draw with :func:`crmkit.models.inference.laplace.laplace_draws`: a Hessian
that
is not positive definite has its eigenvalues floored, and the fit fails its diagnostics.
"""

from __future__ import annotations

import inspect
import json
import time
import warnings
from pathlib import Path
from typing import Any, ClassVar, Self

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr
from scipy import optimize

from crmkit.errors import CrmkitError, CrmkitWarning, NotFittedError
from crmkit.models.inference.laplace import laplace_draws, numeric_hessian
from crmkit.models.persist import load_idata, save_idata

METHODS = ("nuts", "map", "advi", "mle")

#: Version of the saved-model file layout written by :meth:`ModelContract.save`.
MODEL_FORMAT_VERSION = 1


def _jsonable(value: Any) -> Any:
    """JSON default for settings: numpy scalars and arrays as Python values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"a setting of type {type(value).__name__} cannot be saved")


class ModelContract:
    """The contract every crmkit model follows (scikit-learn's estimator rules).

    * ``__init__`` stores its keyword settings unmodified under their own names, so
      :meth:`get_params` returns them and ``type(m)(**m.get_params())`` is an equal model.
    * ``fit(data, method=...)`` validates, builds, fits and returns ``self``.
    * What was learned ends in ``_``: ``idata_`` (``arviz.InferenceData`` with
      ``posterior`` on ``(chain, draw)`` and ``observed_data``, plus ``log_likelihood``
      where the likelihood is per observation), ``params_`` (point estimates), ``method_``
      and ``diagnostics_`` (the one schema of :mod:`crmkit.models.inference.diagnostics`).
    * Asking a model that is not fitted for results raises :class:`~crmkit.errors.NotFittedError`.
    * :meth:`save` writes one netCDF file that :meth:`load` reads back with every setting;
      a file of another model or of a newer format is refused.

    Subclasses override :meth:`_fit_frame` and :meth:`_restore` when they keep state
    besides ``idata_`` (the data they were fitted on, labels, scales).
    """

    @classmethod
    def _init_param_names(cls) -> list[str]:
        """Names of ``__init__``'s settings."""
        sig = inspect.signature(cls.__init__)
        return [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def get_params(self) -> dict[str, Any]:
        """The settings given to ``__init__``, by name.

        Returns
        -------
        dict
            ``type(self)(**self.get_params())`` builds an unfitted model with equal settings.
        """
        return {name: getattr(self, name) for name in self._init_param_names()}

    def set_params(self, **params: Any) -> Self:
        """Change settings (as ``__init__`` names them) and return ``self``.

        Parameters
        ----------
        **params
            New values of settings.

        Returns
        -------
        Self
            The model, with the new settings (a fit made before is kept until refitted).
        """
        names = set(self._init_param_names())
        for k, v in params.items():
            if k not in names:
                raise CrmkitError(
                    f"{type(self).__name__} has no setting {k!r}; use {sorted(names)}"
                )
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`fit` (or :meth:`load`) has run."""
        return getattr(self, "idata_", None) is not None

    def check_fitted(self) -> None:
        """Raise :class:`~crmkit.errors.NotFittedError` unless the model is fitted."""
        if not self.is_fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit(data) first")

    # -- persistence -------------------------------------------------------------------
    def _fit_frame(self) -> pd.DataFrame:
        """The data kept with a saved fit (the fit data when the model keeps it)."""
        frame = getattr(self, "fit_data_", None)
        return frame if isinstance(frame, pd.DataFrame) else pd.DataFrame()

    def _restore(self, frame: pd.DataFrame, attrs: dict[str, str]) -> None:
        """Rebuild state besides ``idata_`` after :meth:`load` (the fit data by default)."""
        self.fit_data_ = frame

    def _save_attrs(self) -> dict[str, str]:
        """Attributes saved with the fit, JSON for anything structured."""
        from crmkit import __version__

        diag = {k: v for k, v in self.diagnostics_.items() if k != "per_parameter"}
        return {
            "crmkit_model": type(self).__name__,
            "crmkit_format": str(MODEL_FORMAT_VERSION),
            "crmkit_version": __version__,
            "settings": json.dumps(self.get_params(), default=_jsonable),
            "method": str(self.method_),
            "diagnostics": json.dumps(diag, default=str),
            "params": json.dumps(self.params_, default=_jsonable),
        }

    def save(self, path: str | Path) -> Path:
        """Save the fit: draws, settings, diagnostics and the data it keeps, to netCDF.

        Parameters
        ----------
        path
            File to write.

        Returns
        -------
        pathlib.Path
            The path written.
        """
        self.check_fitted()
        return save_idata(path, self.idata_, self._fit_frame(), self._save_attrs())

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Load a model written by :meth:`save`.

        Parameters
        ----------
        path
            A netCDF file written by ``save`` of this model class.

        Returns
        -------
        Self
            A fitted model with the settings, draws, diagnostics and kept data saved.

        Raises
        ------
        CrmkitError
            The file holds another model, or was written by a newer crmkit.
        """
        idata, frame, attrs = load_idata(path)
        name = attrs.get("crmkit_model")
        if name != cls.__name__:
            raise CrmkitError(f"{path} holds a {name!r} fit, not a {cls.__name__}")
        version = int(attrs.get("crmkit_format", "0"))
        if version != MODEL_FORMAT_VERSION:
            raise CrmkitError(
                f"{path} was saved in model format {version} (crmkit "
                f"{attrs.get('crmkit_version', 'unknown')}); this crmkit reads format "
                f"{MODEL_FORMAT_VERSION}: refit the model"
            )
        model = cls(**json.loads(attrs["settings"]))
        model.idata_ = idata
        model.method_ = attrs["method"]
        model.diagnostics_ = json.loads(attrs["diagnostics"])
        model.params_ = json.loads(attrs["params"])
        model._restore(frame, attrs)
        return model


class BayesianEstimator(ModelContract):
    """Base class: subclasses define the parameters, priors, likelihood and data checks."""

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
        "max_rhat": 1.01,
        "min_ess": 400,
    }

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
            idata, diag = self._fit_mle(arrays, settings)
        elif method == "map":
            idata, diag = self._fit_map(arrays, settings)
        elif method == "advi":
            idata, diag = self._fit_advi(arrays, settings)
        else:
            idata, diag = self._fit_nuts(arrays, settings)
        diag["fit_seconds"] = time.perf_counter() - started
        self.method_ = method
        self.idata_ = idata
        self.diagnostics_ = diag
        self.fit_data_ = data.reset_index(drop=True).copy()
        self.params_ = self._point_estimates()
        self.idata_.attrs.update(self._attrs())
        if not diag["ok"]:
            warnings.warn(
                f"{type(self).__name__} fit ({method}) fails its diagnostics: "
                f"{self.diagnostics_summary()}",
                CrmkitWarning,
                stacklevel=2,
            )
        return self

    def _posterior_from_unconstrained(
        self, draws: np.ndarray, n_chains: int = 1
    ) -> az.InferenceData:
        """Wrap draws of log-parameters, shape (n, k), as a posterior of natural parameters."""
        n = draws.shape[0] // n_chains
        post = {
            name: np.exp(draws[: n * n_chains, i]).reshape(n_chains, n)
            for i, name in enumerate(self.param_names)
        }
        return az.from_dict(posterior=post)

    def _optimise_loglike(self, arrays):
        """Maximise the likelihood over log-parameters; return the scipy result and nll."""

        def nll(lp: np.ndarray) -> float:
            val = -self._loglike_np(np.exp(lp), arrays)
            return val if np.isfinite(val) else 1e300

        x0 = np.log(self._start(arrays))
        res = optimize.minimize(nll, x0, method="Nelder-Mead", options={"maxiter": 4000})
        res = optimize.minimize(nll, res.x, method="BFGS", options={"gtol": 1e-7})
        return res, nll

    def _mle_estimate(self, arrays) -> np.ndarray:
        """Maximum-likelihood estimate on the natural scale."""
        return np.exp(self._optimise_loglike(arrays)[0].x)

    def _fit_mle(self, arrays, settings) -> tuple[az.InferenceData, dict]:
        """Maximum likelihood on log-parameters, normal approximation for draws."""
        res, nll = self._optimise_loglike(arrays)
        hess = numeric_hessian(lambda z: optimize.approx_fprime(z, nll, 1e-6), res.x, 1e-4)
        draws, _, pd_ok = laplace_draws(res.x, hess, settings["approx_draws"], self.random_seed)
        # Converged: the gradient is tiny relative to the curvature (Newton step < 1e-4).
        step = np.linalg.solve(hess, optimize.approx_fprime(res.x, nll, 1e-7)) if pd_ok else 1
        converged = bool(np.all(np.abs(step) < 1e-3))
        idata = self._posterior_from_unconstrained(draws)
        mle = dict(zip(self.param_names, np.exp(res.x), strict=True))
        idata.attrs["mle"] = json.dumps(mle)
        diag = {
            "ok": bool(pd_ok and converged and np.isfinite(res.fun)),
            "converged": converged,
            "loglike": float(-res.fun),
            "hessian_positive_definite": pd_ok,
        }
        return idata, diag

    def _log_space_model(self, arrays):
        """PyMC model plus compiled logp / dlogp in the unconstrained space."""
        model = self._build(arrays)
        names = [v.name for v in model.value_vars]
        logp = model.compile_logp(jacobian=True)
        dlogp = model.compile_dlogp(jacobian=True)
        to_nat = _natural_params_fn(model, self.param_names)

        def point(z: np.ndarray) -> dict[str, np.ndarray]:
            return {n: np.asarray(v) for n, v in zip(names, z, strict=True)}

        return model, names, logp, dlogp, to_nat, point

    def _fit_map(self, arrays, settings) -> tuple[az.InferenceData, dict]:
        """Posterior mode in unconstrained space with a Laplace approximation."""
        model, names, logp, dlogp, to_nat, point = self._log_space_model(arrays)
        start = model.initial_point()
        z0 = np.array([float(start[n]) for n in names])
        # Start from the maximum-likelihood estimate (cheap, numpy) where the transform is a log.
        guess = np.log(self._mle_estimate(arrays))
        z0 = np.array(
            [g if n.endswith("_log__") else z for n, g, z in zip(names, guess, z0, strict=True)]
        )
        res = optimize.minimize(
            lambda z: -float(logp(point(z))),
            z0,
            jac=lambda z: -np.asarray(dlogp(point(z)), dtype=float),
            method="BFGS",
            options={"gtol": 1e-6},
        )
        neg_grad = lambda z: -np.asarray(dlogp(point(z)), dtype=float)  # noqa: E731
        hess = numeric_hessian(neg_grad, res.x, 1e-5)
        draws, _, pd_ok = laplace_draws(res.x, hess, settings["approx_draws"], self.random_seed)
        step = np.linalg.solve(hess, neg_grad(res.x)) if pd_ok else 1
        converged = bool(np.all(np.abs(step) < 1e-3))
        nat = np.array([to_nat(point(d)) for d in draws], dtype=float)
        post = {n: nat[:, i][None, :] for i, n in enumerate(self.param_names)}
        idata = az.from_dict(posterior=post)
        mode = np.asarray(to_nat(point(res.x)), dtype=float)
        idata.attrs["map"] = json.dumps(dict(zip(self.param_names, mode.tolist(), strict=True)))
        diag = {
            "ok": bool(pd_ok and converged),
            "converged": converged,
            "hessian_positive_definite": pd_ok,
        }
        return idata, diag

    def _fit_advi(self, arrays, settings) -> tuple[az.InferenceData, dict]:
        """Mean-field ADVI."""
        import pymc as pm

        model = self._build(arrays)
        with model:
            approx = pm.fit(
                n=settings["advi_iterations"],
                method="advi",
                random_seed=self.random_seed,
                progressbar=self.progressbar,
            )
            idata = approx.sample(settings["approx_draws"], random_seed=self.random_seed)
        hist = np.asarray(approx.hist)
        tail = hist[-max(10, len(hist) // 10) :]
        # Converged when the last tenth of the loss trace is flat relative to its level.
        rel = float(np.std(tail) / max(1.0, abs(np.mean(tail))))
        keep = az.InferenceData(posterior=idata.posterior[list(self.param_names)])
        return keep, {"ok": bool(np.isfinite(rel) and rel < 0.01), "loss_rel_sd": rel}

    def _fit_nuts(self, arrays, settings) -> tuple[az.InferenceData, dict]:
        """Full NUTS: nutpie if importable, else PyMC's sampler."""
        sampler = settings.get("sampler")
        if sampler not in (None, "nutpie-numba", "nutpie", "nutpie-pyfunc", "pymc"):
            raise CrmkitError(
                f"sampler must be None, 'nutpie-numba', 'nutpie', 'nutpie-pyfunc' or 'pymc', "
                f"not {sampler!r}"
            )
        try:
            import nutpie
        except ImportError:  # pragma: no cover - nutpie is a dependency
            nutpie = None
        kernel = None
        if sampler in (None, "nutpie-numba") and nutpie is not None:
            kernel = self._numba_kernel(arrays)
            if kernel is None and sampler == "nutpie-numba":
                warnings.warn(
                    f"{type(self).__name__}: no numba kernel for these priors; "
                    "sampling the PyMC graph with nutpie instead",
                    CrmkitWarning,
                    stacklevel=3,
                )
        model = None if kernel is not None else self._build(arrays)
        if kernel is not None or (sampler != "pymc" and nutpie is not None):
            low_rank = settings.get("low_rank_mass_matrix")
            if low_rank is None:  # default: on for the numba kernels (correlated posteriors)
                low_rank = kernel is not None
            if kernel is not None:
                compiled = _nutpie_numba(kernel, self.param_names, self._start(arrays))
            elif sampler == "nutpie-pyfunc":
                compiled = _nutpie_pyfunc(model, self.param_names, self.random_seed)
            else:
                compiled = nutpie.compile_pymc_model(model)
            idata = nutpie.sample(
                compiled,
                draws=settings["draws"],
                tune=settings["tune"],
                chains=settings["chains"],
                cores=min(settings["chains"], settings.get("cores", 2)),
                seed=self.random_seed,
                progress_bar=self.progressbar,
                save_warmup=False,
                target_accept=settings["target_accept"],
                low_rank_modified_mass_matrix=bool(low_rank),
            )
            used = "nutpie-numba" if kernel is not None else sampler or "nutpie"
        else:
            import pymc as pm

            with model:
                idata = pm.sample(
                    draws=settings["draws"],
                    tune=settings["tune"],
                    chains=settings["chains"],
                    cores=min(settings["chains"], settings.get("cores", 2)),
                    target_accept=settings["target_accept"],
                    random_seed=self.random_seed,
                    progressbar=self.progressbar,
                    compute_convergence_checks=False,
                )
            used = "pymc"
        keep = az.InferenceData(
            posterior=idata.posterior[list(self.param_names)],
            sample_stats=idata.sample_stats,
        )
        diag = mcmc_diagnostics(keep, settings["max_rhat"], settings["min_ess"])
        diag["sampler"] = used
        return keep, diag

    # -- results -------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        """Raise if the model has not been fitted."""
        if not hasattr(self, "idata_"):
            raise CrmkitError(f"{type(self).__name__} is not fitted; call fit(data) first")

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
        self._check_fitted()
        post = self.idata_.posterior[list(self.param_names)]
        stacked = post.stack(sample=("chain", "draw")).reset_index("sample", drop=True)
        n = stacked.sizes["sample"]
        if n_draws is not None and n_draws < n:
            idx = np.sort(np.random.default_rng(seed).choice(n, n_draws, replace=False))
            stacked = stacked.isel(sample=idx)
        return stacked.assign_coords(sample=np.arange(stacked.sizes["sample"]))

    def diagnostics_summary(self) -> str:
        """One line: method, ok flag and the figures behind it."""
        self._check_fitted()
        d = self.diagnostics_
        keys = ("max_rhat", "min_ess_bulk", "divergences", "converged", "loglike")
        figs = ", ".join(
            f"{k}={d[k]:.4g}" if isinstance(d[k], float) else f"{k}={d[k]}" for k in keys if k in d
        )
        return f"method={self.method_}, ok={d['ok']}, {figs}"

    def _attrs(self) -> dict[str, str]:
        """Attributes saved with the InferenceData."""
        return {
            "crmkit_model": type(self).__name__,
            "method": self.method_,
            "time_unit": self.time_unit,
            "model_config": json.dumps(self.priors),
            "diagnostics": json.dumps(
                {k: v for k, v in self.diagnostics_.items() if k != "per_parameter"},
                default=str,
            ),
        }

    # -- persistence -------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Save the fit (draws, settings, diagnostics and the fit data) to netCDF.

        Parameters
        ----------
        path
            File to write.

        Returns
        -------
        pathlib.Path
            The path written.
        """
        self._check_fitted()
        fit = self.fit_data_.copy()
        fit["customer_id"] = fit["customer_id"].astype(str)
        return save_idata(path, self.idata_, fit)

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Load a model saved with :meth:`save`.

        Parameters
        ----------
        path
            A netCDF file written by :meth:`save`.

        Returns
        -------
        Self
            A fitted model equal to the one saved.
        """
        idata, fit, _ = load_idata(path)
        name = idata.attrs.get("crmkit_model")
        if name != cls.__name__:
            raise CrmkitError(f"{path} holds a {name!r} fit, not {cls.__name__}")
        model = cls(
            model_config=json.loads(idata.attrs["model_config"]),
            time_unit=idata.attrs["time_unit"],
        )
        model.idata_ = idata
        model.method_ = idata.attrs["method"]
        model.diagnostics_ = json.loads(idata.attrs["diagnostics"])
        model.fit_data_ = fit
        model.params_ = model._point_estimates()
        return model


def _natural_params_fn(model, param_names: tuple[str, ...]):
    """Compiled map from unconstrained values (a point dict) to the parameters."""
    by_name = {v.name: v for v in model.unobserved_value_vars}
    return model.compile_fn(
        [by_name[n] for n in param_names], inputs=model.value_vars, on_unused_input="ignore"
    )


def _nutpie_numba(kernel, param_names: tuple[str, ...], start: np.ndarray):
    """Nutpie model calling a numba log-posterior ``z -> (logp, grad)`` (see ``clv_numba``).

    Chains start near the posterior mode (found with the kernel's own gradient), jittered
    by up to two approximate posterior sd (from a numerical Hessian) in each direction.
    """
    from nutpie.compiled_pyfunc import from_pyfunc

    ndim = len(param_names)

    def neg(z: np.ndarray) -> tuple[float, np.ndarray]:
        lp, g = kernel(z)
        return (-lp, -g) if np.isfinite(lp) else (1e300, np.zeros(ndim))

    z0 = np.log(np.asarray(start, dtype=float))
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
            return {n: np.asarray(np.exp(x[i])) for i, n in enumerate(param_names)}

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


def _nutpie_pyfunc(model, param_names: tuple[str, ...], seed: int | None):
    """Nutpie model calling PyMC's C-compiled logp and gradient (cached on disk by pytensor).

    nutpie's own PyMC route compiles the graph with numba on every fit (tens of seconds);
    the C backend's compiled modules are reused across fits, and the data enter as
    shared values, so a new data set needs no new compilation.
    """
    from nutpie.compiled_pyfunc import from_pyfunc

    vgf = model.logp_dlogp_function(ravel_inputs=True)
    vgf.set_extra_values({})
    names = [v.name for v in vgf._grad_vars]
    sizes = [int(np.prod(model.initial_point()[n].shape)) for n in names]
    ndim = int(sum(sizes))
    to_nat = _natural_params_fn(model, param_names)
    start = np.concatenate([np.ravel(model.initial_point()[n]) for n in names])

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
                point[n] = x[i : i + k].reshape(model.initial_point()[n].shape)
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


def mcmc_diagnostics(idata: az.InferenceData, max_rhat: float, min_ess: float) -> dict:
    """R-hat, bulk/tail ESS and divergences of an MCMC fit, with an ``ok`` flag.

    Parameters
    ----------
    idata
        InferenceData with ``posterior`` and ``sample_stats``.
    max_rhat
        Largest acceptable R-hat (checked only with two or more chains).
    min_ess
        Smallest acceptable bulk and tail effective sample size.

    Returns
    -------
    dict
        ``ok``, ``max_rhat``, ``min_ess_bulk``, ``min_ess_tail``, ``divergences``,
        ``n_chains``, ``n_draws`` and ``per_parameter`` (a DataFrame).
    """
    post = idata.posterior
    n_chains = post.sizes["chain"]
    ess_bulk = az.ess(post, method="bulk")
    ess_tail = az.ess(post, method="tail")
    rhat = az.rhat(post) if n_chains > 1 else None
    per = pd.DataFrame(
        {
            "ess_bulk": {v: float(ess_bulk[v]) for v in post.data_vars},
            "ess_tail": {v: float(ess_tail[v]) for v in post.data_vars},
            "r_hat": {v: float(rhat[v]) if rhat is not None else np.nan for v in post.data_vars},
        }
    )
    stats = idata.get("sample_stats")
    div = 0
    if stats is not None and "diverging" in stats:
        div = int(stats["diverging"].sum())
    max_r = float(per["r_hat"].max()) if rhat is not None else float("nan")
    out = {
        "max_rhat": max_r,
        "min_ess_bulk": float(per["ess_bulk"].min()),
        "min_ess_tail": float(per["ess_tail"].min()),
        "divergences": div,
        "n_chains": int(n_chains),
        "n_draws": int(post.sizes["draw"]),
    }
    out["ok"] = bool(
        (rhat is None or max_r <= max_rhat)
        and out["min_ess_bulk"] >= min_ess
        and out["min_ess_tail"] >= min_ess
        and div == 0
    )
    out["per_parameter"] = per
    return out
