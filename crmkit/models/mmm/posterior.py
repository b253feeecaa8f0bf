"""Posterior computations of a fitted marketing-mix model: contributions, ROAS, response curves.

Everything here is computed in numpy from the posterior draws, with the transforms of
:mod:`crmkit.models.mmm.transforms` the model itself uses, so every figure carries the
posterior spread. :class:`MarketingPosterior` is a mixin of
:class:`crmkit.models.mmm.model.MarketingMixModel`, which provides the settings, the fitted
draws (``idata_``), the scales (``scales_``), the fit data (``data_``) and its design
(``design_``), and the not-fitted check (``check_fitted``, from
:class:`crmkit.models.base.ModelContract`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from crmkit.errors import CrmkitError
from crmkit.models.mmm.transforms import (
    geometric_adstock,
    hill_saturation,
    logistic_saturation,
)

__all__ = ["MarketingPosterior"]


class MarketingPosterior:
    """Posterior computations of :class:`~crmkit.models.mmm.model.MarketingMixModel` (mixin)."""

    channels: list[str]
    date_column: str
    target: str
    controls: list[str] | None
    events: list[str] | None
    saturation: str
    l_max: int
    yearly_order: int
    trend: bool
    random_seed: int | None
    param_names: list[str]
    idata_: az.InferenceData
    scales_: dict[str, Any]
    data_: pd.DataFrame
    design_: dict[str, Any]
    check_fitted: Callable[[], None]

    def draws(self, n_draws: int | None = None) -> dict[str, np.ndarray]:
        """Parameter draws stacked over chains, ``{name: (sample, ...)}``, thinned with the seed."""
        self.check_fitted()
        post = self.idata_.posterior
        n = post.sizes["chain"] * post.sizes["draw"]
        idx = np.arange(n)
        if n_draws is not None and n_draws < n:
            rng = np.random.default_rng(self.random_seed)
            idx = np.sort(rng.choice(n, n_draws, replace=False))
        return {k: post[k].values.reshape((n, *post[k].shape[2:]))[idx] for k in self.param_names}

    def saturate(self, adstock: np.ndarray, p: dict[str, np.ndarray]) -> np.ndarray:
        """Saturation of scaled adstock ``(sample, time, channel)`` under draws ``p``."""
        if self.saturation == "logistic":
            return logistic_saturation(adstock, p["lam"][:, None, :])
        return hill_saturation(adstock, p["half"][:, None, :], p["slope"][:, None, :])

    def channel_response(
        self, spend: np.ndarray, p: dict[str, np.ndarray], history: np.ndarray | None = None
    ) -> np.ndarray:
        """Contribution (outcome units) of spend ``(time, channel)``: (sample, time, channel).

        ``history`` (earlier weeks' spend, original units) carries over into the first weeks.
        """
        x = np.asarray(spend, dtype=float) / self.scales_["x"]
        n_hist = 0
        if history is not None and len(history):
            h = np.asarray(history, dtype=float)[-self.l_max :] / self.scales_["x"]
            n_hist = len(h)
            x = np.concatenate([h, x])
        a = geometric_adstock(x, p["decay"], self.l_max)  # (sample, time, channel)
        return (self.saturate(a, p) * p["beta"][:, None, :])[:, n_hist:] * self.scales_["y"]

    def baseline(self, design: dict[str, np.ndarray], p: dict[str, np.ndarray]) -> np.ndarray:
        """Non-media part of the mean (outcome units), shape (sample, time)."""
        mu = np.repeat(p["intercept"][:, None], len(design["years"]), axis=1)
        if self.trend:
            mu = mu + p["trend"][:, None] * design["years"][None]
        if self.yearly_order:
            mu = mu + p["fourier"] @ design["fourier"].T
        if self.controls:
            mu = mu + p["control"] @ design["controls"].T
        if self.events:
            mu = mu + p["event"] @ design["events"].T
        return mu * self.scales_["y"]

    def pointwise_log_likelihood(self) -> np.ndarray:
        """Log-density of each fit week's outcome under every posterior draw.

        The normal likelihood of the model, in outcome units (the PyMC model's density of
        the scaled outcome less ``log(y_scale)``), so it matches ``observed_data``.

        Returns
        -------
        numpy.ndarray
            Shape ``(sample, date)``, all draws in chain order.
        """
        p = self.draws(None)
        mu = self.baseline(self.design_, p) + self.channel_response(
            self.data_[self.channels].to_numpy(float), p
        ).sum(axis=2)
        sd = p["sigma"][:, None] * self.scales_["y"]
        z = (self.data_[self.target].to_numpy(float)[None] - mu) / sd
        return -0.5 * z**2 - np.log(sd) - 0.5 * np.log(2.0 * np.pi)

    def replicated_outcome(self, seed: int | None = None) -> np.ndarray:
        """Replicated outcome of each fit week under every posterior draw (posterior predictive).

        The mean (baseline plus media) plus the model's normal noise, in outcome units.

        Parameters
        ----------
        seed
            Random seed (default the model's ``random_seed``).

        Returns
        -------
        numpy.ndarray
            Shape ``(sample, date)``, all draws in chain order.
        """
        p = self.draws(None)
        mu = self.baseline(self.design_, p) + self.channel_response(
            self.data_[self.channels].to_numpy(float), p
        ).sum(axis=2)
        sd = p["sigma"][:, None] * self.scales_["y"]
        rng = np.random.default_rng(self.random_seed if seed is None else seed)
        return mu + sd * rng.standard_normal(mu.shape)

    def contributions(self, n_draws: int | None = 500) -> xr.DataArray:
        """Channel contributions over the fit weeks, dims ``(sample, date, channel)``.

        Parameters
        ----------
        n_draws
            Posterior draws used (None: all).

        Returns
        -------
        xarray.DataArray
            Outcome units (e.g. revenue) each channel adds each week.

        """
        p = self.draws(n_draws)
        c = self.channel_response(self.data_[self.channels].to_numpy(float), p)
        return xr.DataArray(
            c,
            dims=("sample", "date", "channel"),
            coords={"date": self.design_["dates"], "channel": self.channels},
        )

    def _period_mask(self, start: object = None, end: object = None) -> np.ndarray:
        """Weeks of the fit data between ``start`` and ``end`` (inclusive)."""
        d = self.design_["dates"]
        m = np.ones(len(d), dtype=bool)
        if start is not None:
            m &= d >= pd.Timestamp(start)
        if end is not None:
            m &= d <= pd.Timestamp(end)
        if not m.any():
            raise CrmkitError(f"no fitted weeks between {start} and {end}")
        return m

    def roas(
        self,
        start: object = None,
        end: object = None,
        *,
        n_draws: int | None = 500,
        ci: float = 0.9,
        eps: float = 0.01,
    ) -> pd.DataFrame:
        """Return on ad spend and marginal ROAS per channel over a period, with intervals.

        ROAS = contribution / spend over the period. Marginal ROAS = extra contribution per
        extra unit of spend when every week's spend of that channel in the period grows by
        ``eps`` (carry-over into later weeks of the fit included).

        Parameters
        ----------
        start, end
            Period (inclusive) of the fit data; all weeks by default.
        n_draws
            Posterior draws used.
        ci
            Credible-interval mass (0.9: 5% and 95% quantiles).
        eps
            Relative spend increase for the marginal ROAS.

        Returns
        -------
        pandas.DataFrame
            channel, spend, contribution (mean, lo, hi), roas (mean, lo, hi), mroas (mean, lo, hi).

        """
        p = self.draws(n_draws)
        m = self._period_mask(start, end)
        x = self.data_[self.channels].to_numpy(float)
        base = self.channel_response(x, p)
        contrib = base[:, m].sum(axis=1)  # (sample, channel)
        spend = x[m].sum(axis=0)
        bumped = x.copy()
        bumped[m] *= 1.0 + eps
        extra = (self.channel_response(bumped, p) - base).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            roas = contrib / spend
            mroas = extra / (eps * spend)
        lo, hi = (1 - ci) / 2, 1 - (1 - ci) / 2
        rows = []
        for j, ch in enumerate(self.channels):
            row: dict[str, Any] = {"channel": ch, "spend": spend[j]}
            for name, arr in (("contribution", contrib), ("roas", roas), ("mroas", mroas)):
                row[name] = float(np.mean(arr[:, j]))
                row[f"{name}_lo"] = float(np.quantile(arr[:, j], lo))
                row[f"{name}_hi"] = float(np.quantile(arr[:, j], hi))
            rows.append(row)
        return pd.DataFrame(rows)

    def response_curves(
        self,
        n_points: int = 40,
        max_multiple: float = 2.0,
        *,
        n_draws: int | None = 500,
        ci: float = 0.9,
    ) -> pd.DataFrame:
        """Steady-state weekly contribution against constant weekly spend, per channel.

        Spend runs from 0 to ``max_multiple`` times the largest weekly spend seen.

        Returns
        -------
        pandas.DataFrame
            channel, spend, mean, lo, hi (outcome per week once carry-over has built up).

        """
        p = self.draws(n_draws)
        lo, hi = (1 - ci) / 2, 1 - (1 - ci) / 2
        frames = []
        grid = np.linspace(0.0, max_multiple, n_points)  # in units of x_scale
        carry = (p["decay"][:, None, :] ** np.arange(self.l_max)[None, :, None]).sum(axis=1)
        a = grid[None, :, None] * carry[:, None, :]  # (sample, point, channel)
        resp = self.saturate(a, p) * p["beta"][:, None, :] * self.scales_["y"]
        for j, ch in enumerate(self.channels):
            r = resp[:, :, j]
            frames.append(
                pd.DataFrame(
                    {
                        "channel": ch,
                        "spend": grid * self.scales_["x"][j],
                        "mean": r.mean(axis=0),
                        "lo": np.quantile(r, lo, axis=0),
                        "hi": np.quantile(r, hi, axis=0),
                    }
                )
            )
        return pd.concat(frames, ignore_index=True)

    def contribution_summary(
        self,
        *,
        channels: list[str] | None = None,
        start: object = None,
        end: object = None,
        n_draws: int | None = 500,
        ci: float = 0.9,
    ) -> pd.DataFrame:
        """Weekly contribution per channel with intervals, long format.

        Returns
        -------
        pandas.DataFrame
            date, channel, spend, mean, lo, hi.

        """
        c = self.contributions(n_draws)
        m = self._period_mask(start, end)
        chans = list(channels or self.channels)
        unknown = sorted(set(chans) - set(self.channels))
        if unknown:
            raise CrmkitError(f"unknown channel(s) {unknown}; fitted: {self.channels}")
        c = c.isel(date=np.flatnonzero(m)).sel(channel=chans)
        lo, hi = (1 - ci) / 2, 1 - (1 - ci) / 2
        out = c.mean("sample").to_dataframe("mean").reset_index()
        out["lo"] = c.quantile(lo, "sample").drop_vars("quantile").to_dataframe("v")["v"].values
        out["hi"] = c.quantile(hi, "sample").drop_vars("quantile").to_dataframe("v")["v"].values
        sp = self.data_.loc[m, [self.date_column, *chans]].melt(
            id_vars=self.date_column, var_name="channel", value_name="spend"
        )
        sp = sp.rename(columns={self.date_column: "date"})
        sp["date"] = pd.to_datetime(sp["date"])
        out = out.merge(sp, on=["date", "channel"], how="left")
        return out[["date", "channel", "spend", "mean", "lo", "hi"]]

    def fitted(self, n_draws: int | None = 500, ci: float = 0.9) -> pd.DataFrame:
        """Posterior mean of the outcome per fit week (baseline plus media), with intervals."""
        p = self.draws(n_draws)
        mu = self.baseline(self.design_, p) + self.channel_response(
            self.data_[self.channels].to_numpy(float), p
        ).sum(axis=2)
        lo, hi = (1 - ci) / 2, 1 - (1 - ci) / 2
        return pd.DataFrame(
            {
                "date": self.design_["dates"],
                "actual": self.data_[self.target].to_numpy(float),
                "mean": mu.mean(axis=0),
                "lo": np.quantile(mu, lo, axis=0),
                "hi": np.quantile(mu, hi, axis=0),
            }
        )
