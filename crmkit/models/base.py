"""THE model contract every crmkit model follows, and its save/load.

Settings (priors, sampler options) are stored by ``__init__``; ``fit(data, method=...)``
validates, builds, fits and returns ``self``; what was learned ends in ``_``:
``idata_`` (ArviZ InferenceData whose ``posterior`` holds draws for every method, on
``(chain, draw, ...)``, and ``observed_data``), ``params_`` (point estimates), ``method_`` and
``diagnostics_`` (the one schema of :mod:`crmkit.models.inference.diagnostics`).

The fitting itself (MAP, Laplace, ADVI, MLE, NUTS) is in :mod:`crmkit.models.inference`; the
models are in :mod:`crmkit.models.clv`, :mod:`crmkit.models.pipeline` and
:mod:`crmkit.models.mmm`. ``docs/architecture.md`` states the contract for users.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
import xarray as xr

from crmkit.errors import CrmkitError, NotFittedError
from crmkit.models.persist import load_idata, save_idata, split_tables, with_tables

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
    @classmethod
    def _settings_from_json(cls, text: str) -> dict[str, Any]:
        """Saved settings, lists back to tuples where ``__init__``'s default is a tuple."""
        settings = json.loads(text)
        params = inspect.signature(cls.__init__).parameters
        for k, v in settings.items():
            if isinstance(v, list) and k in params and isinstance(params[k].default, tuple):
                settings[k] = tuple(v)
        return settings

    def _fit_frame(self) -> pd.DataFrame:
        """The data kept with a saved fit (the fit data when the model keeps it)."""
        frame = getattr(self, "fit_data_", None)
        return frame if isinstance(frame, pd.DataFrame) else pd.DataFrame()

    def _tables(self) -> dict[str, pd.DataFrame]:
        """Other tables the predictions need, saved beside the draws (none by default)."""
        return {}

    def _restore(
        self, frame: pd.DataFrame, attrs: dict[str, str], tables: dict[str, pd.DataFrame]
    ) -> None:
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
        idata = with_tables(self.idata_, self._tables())
        return save_idata(path, idata, self._fit_frame(), self._save_attrs())

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
        model = cls(**cls._settings_from_json(attrs["settings"]))
        model.idata_, tables = split_tables(idata)
        model.method_ = attrs["method"]
        model.diagnostics_ = json.loads(attrs["diagnostics"])
        model.params_ = json.loads(attrs["params"])
        model._restore(frame, attrs, tables)
        return model


def posterior_means(posterior: xr.Dataset) -> dict[str, Any]:
    """Posterior means by name and label, JSON-ready.

    Parameters
    ----------
    posterior
        A posterior on ``(chain, draw, ...)`` with labelled dims.

    Returns
    -------
    dict
        A float per scalar variable, ``{label: float}`` per vector and ``{label: {label:
        float}}`` per matrix (labels as text).
    """

    def nest(values: np.ndarray, labels: list[np.ndarray]) -> Any:
        if not labels:
            return float(values)
        return {str(k): nest(v, labels[1:]) for k, v in zip(labels[0], values, strict=True)}

    out: dict[str, Any] = {}
    for name, var in posterior.data_vars.items():
        mean = var.mean(("chain", "draw"))
        labels = [
            mean[d].to_numpy() if d in mean.coords else np.arange(mean.sizes[d]) for d in mean.dims
        ]
        out[str(name)] = nest(mean.to_numpy(), labels)
    return out
