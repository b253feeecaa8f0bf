"""The pipeline model: will an open deal be won, lost or stay open in each coming month.

A discrete-time competing-risks model (per month: won, lost, or still open) with a
multinomial logit link, fitted to landmark exposures (:mod:`crmkit.models.pipeline.data`).
For outcome ``j`` (won, lost) in month ``k`` after the cut-off::

    eta_j = stage_j[s] + ahead_j[bucket(k)] + stage_ahead_j[s, bucket(k)] + age_j[bucket(age)]
            + due_j[due status] + miq_j[month of quarter]
            + sum_g u_{g,j}[level]     (g: owner, team, segment, source)
    P(won), P(lost), P(open) = softmax(eta_win, eta_lose, 0)

with ``u_{g,j} ~ Normal(0, sigma_{g,j})`` (partial pooling: a thin owner borrows from the
rest), ``sigma ~ HalfNormal(0.5)``, stage effects ``Normal(-2, 1.5)`` and the other
effects ``Normal(0, 1)`` (first level as reference). The stage x months-ahead interaction
``stage_ahead`` (``Normal(0, 1)``, zero at one month ahead) is each stage's deviation
from the common months-ahead effect: an early-stage deal wins mostly after advancing, so
its win hazard rises with the months ahead while a late-stage deal's falls; the common
effect alone puts too many wins on late stages and too few on early ones. Deals open at
the cut-off are censored, so win probabilities are not inflated by deals that never close.
The due status
(months before or after the expected close month) is the slip model: revenue lands in
the month the hazard puts it, and may slip beyond the horizon. Realised over listed amount
is a log-normal with a conjugate Normal-inverse-gamma posterior (:class:`AmountRatio`).

Age and months ahead are ordered: a forecast that reaches a level no training trial had
(deals older, or months further ahead, than the window followed) uses the nearest level with
trials (:meth:`PipelineModel.level_map`), not the unreached level's prior mean of zero,
which would be the one-month level's effect. A month of the quarter no training trial fell
in (a company whose closes were first recorded a month or two ago) takes the mean of the
months that were seen (:meth:`PipelineModel.quarter_seen`), not a draw from its prior: one
month's deviation says nothing about the next, and on the Maven data the prior's guess
missed the second month of the first quarter by $0.55M.

The likelihood is evaluated on aggregated cells, so 100k deals fit in seconds.
"""

from __future__ import annotations

import json
import time
from typing import Any, Self

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from crmkit.errors import CrmkitError
from crmkit.models.base import ModelContract, posterior_means
from crmkit.models.inference.diagnostics import fit_diagnostics
from crmkit.models.inference.pymc_fit import FIT_METHODS, fit_model, flat_draws
from crmkit.models.pipeline.data import (
    DUE_LEVELS,
    GROUPS,
    MONTH_EDGES,
    STAGE_AHEAD_SIGMA,
    Levels,
    amount_ratios,
    deal_frame,
    landmark_cells,
    last_full_month,
    require_stage_ahead,
    stage_ahead_coded,
    stage_ahead_levels,
    with_stage_ahead,
)
from crmkit.models.pipeline.map_fit import fit_map_numpy
from crmkit.models.pipeline.shocks import MonthShock, monthly_residuals
from crmkit.store.history import HistoryIndex, deals_as_of, month_index

#: Months after the fit's last full month that :meth:`PipelineModel.posterior_subset` draws
#: common monthly shocks for (later forecast months keep the last one's).
SHOCK_MONTHS = 36

DEFAULT_PRIORS: dict[str, float] = {
    "stage_mu": -2.0,
    "stage_sigma": 1.5,
    "effect_sigma": 1.0,
    "group_sigma": 0.5,
    "stage_ahead_sigma": STAGE_AHEAD_SIGMA,
}


def _with_reference(pm, pt, name: str, n: int, sigma: float):
    """A (2, n) effect whose first level is fixed at zero."""
    free = pm.Normal(f"{name}_free", 0.0, sigma, shape=(2, n - 1))
    return pm.Deterministic(name, pt.concatenate([pt.zeros((2, 1)), free], axis=1))


class AmountRatio:
    """Realised / listed amount of won deals as a log-normal; conjugate posterior draws.

    Parameters
    ----------
    prior_mu, prior_kappa, prior_a, prior_b
        Normal-inverse-gamma prior on the log ratio's mean and variance (defaults: centred
        on 1.0 with the weight of 2 deals; variance about 0.1).
    """

    def __init__(
        self,
        prior_mu: float = 0.0,
        prior_kappa: float = 2.0,
        prior_a: float = 2.0,
        prior_b: float = 0.1,
    ) -> None:
        self.prior_mu, self.prior_kappa, self.prior_a, self.prior_b = (
            prior_mu,
            prior_kappa,
            prior_a,
            prior_b,
        )

    def fit(self, ratios: np.ndarray) -> AmountRatio:
        """Update the prior with observed ratios; returns self."""
        x = np.log(np.asarray(ratios, float))
        x = x[np.isfinite(x)]
        n = len(x)
        mean = float(x.mean()) if n else 0.0
        ss = float(((x - mean) ** 2).sum()) if n else 0.0
        k0, m0 = self.prior_kappa, self.prior_mu
        self.kappa_ = k0 + n
        self.mu_ = (k0 * m0 + n * mean) / self.kappa_
        self.a_ = self.prior_a + n / 2
        self.b_ = self.prior_b + ss / 2 + k0 * n * (mean - m0) ** 2 / (2 * self.kappa_)
        self.n_ = n
        return self

    def draws(self, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Posterior draws of the log ratio's mean and standard deviation."""
        rng = np.random.default_rng(seed)
        var = self.b_ / rng.gamma(self.a_, 1.0, size=n)
        mu = rng.normal(self.mu_, np.sqrt(var / self.kappa_))
        return mu, np.sqrt(var)

    def state(self) -> dict[str, float]:
        """Prior and posterior parameters, JSON-ready (see :meth:`from_state`)."""
        keys = ("prior_mu", "prior_kappa", "prior_a", "prior_b", "kappa_", "mu_", "a_", "b_", "n_")
        return {k: getattr(self, k) for k in keys if hasattr(self, k)}

    @classmethod
    def from_state(cls, state: dict[str, float]) -> AmountRatio:
        """The posterior :meth:`state` describes."""
        out = cls(*(state[k] for k in ("prior_mu", "prior_kappa", "prior_a", "prior_b")))
        for k in ("kappa_", "mu_", "a_", "b_", "n_"):
            if k in state:
                setattr(out, k, state[k])
        return out


class PipelineModel(ModelContract):
    """Win / loss / timing model of open deals with partial pooling over groups.

    Follows the model contract (:class:`~crmkit.models.base.ModelContract`): the settings
    are stored as given, ``fit`` returns ``self`` with ``idata_``, ``params_``, ``method_``
    and ``diagnostics_``, and :meth:`save` / :meth:`load` round-trip the fit with what its
    predictions need (the deals, their history, the stages, the cells and the amount ratio).

    Parameters
    ----------
    window_months
        Month-end landmarks used for training.
    max_ahead
        Months each landmark follows a deal.
    priors
        Overrides of :data:`DEFAULT_PRIORS` (None: the defaults); the priors used are
        :attr:`priors_in_effect`.
    method
        Default fit method: ``"map"`` (mode + Laplace, seconds), ``"nuts"`` (nutpie on a
        numba log-density with identified, sum-to-zero group effects:
        :mod:`crmkit.models.pipeline.nuts_fit`; tens of seconds) or ``"advi"`` (the PyMC
        graph of :meth:`build_model`); ``fit(..., method=...)`` overrides it for one fit.
    draws, tune, chains
        Sampler settings (MAP and ADVI make ``draws * chains`` draws in one chain).
    seed
        Random seed.
    progress
        Show sampling progress.
    groups
        The groups whose effects the model has (None: all of
        :data:`crmkit.models.pipeline.data.GROUPS`); e.g. ``("team", "segment", "source")``
        leaves the owner effects out (the variant :func:`crmkit.forecast.checks.compare_variants`
        weighs against the full model). Deals of a group left out get no effect of it.

    Attributes
    ----------
    idata_ : arviz.InferenceData
        ``posterior`` (``stage``, ``ahead``, ``age``, ``due``, ``miq``, ``u_<group>`` and
        ``sigma_<group>`` on ``(chain, draw, outcome, <level>)``, for the model's
        :attr:`groups_in_effect`), ``observed_data`` (``cell_counts`` on ``(cell, result)``,
        the cells' factor codes as coordinates); after :meth:`add_log_likelihood`,
        ``log_likelihood`` per cell, and after :meth:`add_posterior_predictive`,
        ``posterior_predictive`` (replicated counts per cell). ``fit`` keeps neither: on the
        demo (4,350 cells, 1,000 draws) the log-likelihood takes 1.8 s against 3.4 s for the
        whole MAP fit and 35 MB, and the replicated counts three times that; the cells are
        weighted sums of deal-months, not observations, besides. The model checks
        (:mod:`crmkit.forecast.checks`) add them.
    params_ : dict
        Posterior means by name and label, e.g. ``params_["stage"]["won"]["Propose"]``
        (``sigma_<group>`` by outcome).
    method_ : str
        The method used.
    diagnostics_ : dict
        The one schema of :mod:`crmkit.models.inference.diagnostics`.
    """

    def __init__(
        self,
        *,
        window_months: int = 24,
        max_ahead: int = 12,
        priors: dict[str, float] | None = None,
        method: str = "map",
        draws: int = 500,
        tune: int = 500,
        chains: int = 2,
        seed: int = 0,
        progress: bool = False,
        groups: tuple[str, ...] | None = None,
    ) -> None:
        self.window_months = window_months
        self.max_ahead = max_ahead
        self.priors = priors
        self.method = method
        self.draws = draws
        self.tune = tune
        self.chains = chains
        self.seed = seed
        self.progress = progress
        self.groups = groups

    @classmethod
    def _settings_from_json(cls, text: str) -> dict[str, Any]:
        """Saved settings, ``groups`` back to a tuple."""
        settings = super()._settings_from_json(text)
        if isinstance(settings.get("groups"), list):
            settings["groups"] = tuple(settings["groups"])
        return settings

    @property
    def groups_in_effect(self) -> tuple[str, ...]:
        """The groups the model has effects of, in :data:`GROUPS` order (``groups`` checked)."""
        if self.groups is None:
            return GROUPS
        chosen = (self.groups,) if isinstance(self.groups, str) else tuple(self.groups)
        unknown = [g for g in chosen if g not in GROUPS]
        if unknown:
            raise CrmkitError(
                f"PipelineModel groups must be among {GROUPS}, not {unknown[0]!r}"[:200]
            )
        return tuple(g for g in GROUPS if g in chosen)

    @property
    def priors_in_effect(self) -> dict[str, float]:
        """The priors used: :data:`DEFAULT_PRIORS` updated by ``priors``."""
        return {**DEFAULT_PRIORS, **(self.priors or {})}

    # ------------------------------------------------------------------ model
    def build_model(self, cells: pd.DataFrame, levels: Levels):
        """The PyMC model on aggregated cells."""
        import pymc as pm
        import pytensor.tensor as pt

        p = self.priors_in_effect
        n_stage = len(levels.stage) + 1
        with pm.Model() as model:
            stage = pm.Normal("stage", p["stage_mu"], p["stage_sigma"], shape=(2, n_stage))
            ahead = _with_reference(pm, pt, "ahead", len(MONTH_EDGES), p["effect_sigma"])
            age = _with_reference(pm, pt, "age", len(MONTH_EDGES), p["effect_sigma"])
            due = _with_reference(pm, pt, "due", len(DUE_LEVELS), p["effect_sigma"])
            miq = _with_reference(pm, pt, "miq", 3, p["effect_sigma"])
            n_ahead = len(MONTH_EDGES)
            inter = pm.Normal(
                "stage_ahead_free",
                0.0,
                p["stage_ahead_sigma"],
                shape=(2, stage_ahead_levels(n_stage) - 1),
            )
            pm.Deterministic(
                "stage_ahead",
                pt.concatenate(
                    [pt.zeros((2, n_stage, 1)), inter.reshape((2, n_stage, n_ahead - 1))], axis=2
                ),
            )
            inter_full = pt.concatenate([pt.zeros((2, 1)), inter], axis=1)
            idx = {c: cells[c].to_numpy(np.int64) for c in cells.columns if not c.startswith("n_")}
            code = require_stage_ahead(cells, levels)  # set by the builders of cells
            eta = (
                stage[:, idx["stage"]]
                + ahead[:, idx["ahead"]]
                + age[:, idx["age"]]
                + due[:, idx["due"]]
                + miq[:, idx["miq"]]
                + inter_full[:, code]
            )
            for g in levels.groups:
                n_lev = len(levels.groups[g]) + 1
                sig = pm.HalfNormal(f"sigma_{g}", p["group_sigma"], shape=2)
                z = pm.Normal(f"z_{g}", 0.0, 1.0, shape=(2, n_lev))
                u = pm.Deterministic(f"u_{g}", sig[:, None] * z)
                eta = eta + u[:, idx[g]]
            zero = pt.zeros((1, eta.shape[1]))
            lse = pt.logsumexp(pt.concatenate([zero, eta], axis=0), axis=0)
            n_win = cells["n_win"].to_numpy(float)
            n_lose = cells["n_lose"].to_numpy(float)
            n_tot = n_win + n_lose + cells["n_stay"].to_numpy(float)
            pm.Potential("loglike", pt.sum(n_win * eta[0] + n_lose * eta[1] - n_tot * lse))
        return model

    def param_names(self) -> list[str]:
        """Names of the posterior arrays the forecast uses."""
        return [
            "stage",
            "ahead",
            "age",
            "due",
            "miq",
            "stage_ahead",
            *[f"u_{g}" for g in self.groups_in_effect],
        ]

    def _posterior_names(self) -> list[str]:
        """:meth:`param_names` the fitted posterior has (saved before the interaction: none)."""
        return [n for n in self.param_names() if n in self.idata_.posterior]

    def fit(
        self,
        deals: pd.DataFrame,
        history: pd.DataFrame | None = None,
        *,
        as_of: object,
        accounts: pd.DataFrame | None = None,
        stages: pd.DataFrame | None = None,
        method: str | None = None,
    ) -> Self:
        """Fit to what was known on ``as_of``.

        Parameters
        ----------
        deals
            Deals (``store.read("deals")``), optionally with ``segment``.
        history
            ``deal_history`` rows.
        as_of
            Cut-off day.
        accounts
            Accounts, for each deal's segment.
        stages
            Configured stages (``pipeline, stage, probability``) for the comparison table.
        method
            ``"map"``, ``"nuts"`` or ``"advi"`` for this fit (default: the ``method`` setting).

        Returns
        -------
        PipelineModel
            ``self`` with ``idata_``, ``params_``, ``method_``, ``diagnostics_``,
            ``levels_``, ``cells_``, ``amount_`` and ``data_``.
        """
        method = self.method if method is None else method
        if method not in FIT_METHODS:
            raise CrmkitError(f"method must be one of {FIT_METHODS}, not {method!r}")
        groups = self.groups_in_effect
        frame = deal_frame(deals, accounts)
        index = HistoryIndex(frame, history)  # parsed once for every as-of look-up
        cells, levels = landmark_cells(
            frame,
            index,
            as_of,
            window_months=self.window_months,
            max_ahead=self.max_ahead,
            groups=groups,
        )
        names = [*self.param_names(), *[f"sigma_{g}" for g in groups]]
        t0 = time.perf_counter()
        stats = None
        if method == "map":
            flat, raw = fit_map_numpy(
                cells,
                levels,
                self.priors_in_effect,
                n_draws=self.draws * self.chains,
                seed=self.seed,
            )
            n_chains = 1
        elif method == "nuts":
            from crmkit.models.pipeline.nuts_fit import fit_nuts  # numba, nutpie on demand

            flat, raw, stats = fit_nuts(
                cells,
                levels,
                self.priors_in_effect,
                draws=self.draws,
                tune=self.tune,
                chains=self.chains,
                seed=self.seed,
                progress=self.progress,
            )
            n_chains = self.chains
        else:
            idata, raw = fit_model(
                self.build_model(cells, levels),
                names,
                method,
                draws=self.draws,
                tune=self.tune,
                chains=self.chains,
                seed=self.seed,
                progress=self.progress,
            )
            flat = flat_draws(idata, names)
            n_chains = int(idata.posterior.sizes["chain"])
            stats = idata.sample_stats if "sample_stats" in idata.groups() else None
        seconds = round(time.perf_counter() - t0, 2)
        self.idata_ = _pipeline_idata({n: flat[n] for n in names}, n_chains, cells, levels, stats)
        self.method_ = method
        self.diagnostics_ = fit_diagnostics(method, raw, seconds, _why_not_ok(raw))
        self.params_ = posterior_means(self.idata_.posterior)
        self.cells_, self.levels_ = cells, levels
        self.frame_, self.history_ = frame, history
        self._history_index = index
        self.stages_ = stages
        self.amount_ = AmountRatio().fit(amount_ratios(frame, history, as_of, index=index))
        self.as_of_ = pd.Timestamp(as_of)
        self.data_ = {
            "cells": len(cells),
            "trials": float(cells[["n_win", "n_lose", "n_stay"]].to_numpy().sum()),
            "wins": float(cells["n_win"].sum()),
            "losses": float(cells["n_lose"].sum()),
            "amount_ratios": self.amount_.n_,
        }
        # common monthly shocks, from the fitted model's monthly residuals (none while they
        # are measured: posterior_subset adds no shock without shock_)
        self.shock_: MonthShock | None = None
        self.shock_ = MonthShock().fit(monthly_residuals(self, seed=self.seed))
        return self

    # ------------------------------------------------------------------ persistence
    def _save_attrs(self) -> dict[str, str]:
        """The contract's attributes plus the cut-off, amount ratio and data counts."""
        state = {
            "as_of": self.as_of_.isoformat(),
            "amount": self.amount_.state(),
            "data": self.data_,
        }
        if self.shock_ is not None:
            state["month_shock"] = self.shock_.state()
        return {**super()._save_attrs(), "pipeline_state": json.dumps(state)}

    def _tables(self) -> dict[str, pd.DataFrame]:
        """The data tables the predictions need, by name."""
        out = {"deals": self.frame_}
        if self.history_ is not None:
            out["history"] = self.history_
        if self.stages_ is not None:
            out["stages"] = self.stages_
        return out

    def _restore(
        self, frame: pd.DataFrame, attrs: dict[str, str], tables: dict[str, pd.DataFrame]
    ) -> None:
        """Rebuild the prediction state from the file's tables and attributes."""
        state = json.loads(attrs["pipeline_state"])
        post = self.idata_.posterior
        stage = [str(v) for v in post["stage_level"].to_numpy()[:-1]]
        groups = {
            g: [str(v) for v in post[f"{g}_level"].to_numpy()[:-1]] for g in self.groups_in_effect
        }
        self.levels_ = Levels(stage, groups)
        obs = self.idata_.observed_data
        cells = {k: obs[f"{k}_code"].to_numpy().astype(np.int64) for k in _cell_keys(groups)}
        counts = obs["cell_counts"].to_numpy().astype(float)
        for j, col in enumerate(CELL_COUNTS):
            cells[col] = counts[:, j]
        self.cells_ = with_stage_ahead(pd.DataFrame(cells), self.levels_)  # derived, not saved
        self.frame_ = tables["deals"]
        self.history_ = tables.get("history")
        self._history_index = None  # parsed on first use
        self.stages_ = tables.get("stages")
        self.amount_ = AmountRatio.from_state(state["amount"])
        self.as_of_ = pd.Timestamp(state["as_of"])
        self.data_ = state["data"]
        # models saved before the common monthly shocks have none: they forecast without
        shock = state.get("month_shock")
        self.shock_ = MonthShock.from_state(shock) if shock is not None else None

    # ------------------------------------------------------------------ predictions
    def open_deals(self) -> pd.DataFrame:
        """The deals open on the cut-off, as they were then."""
        self.check_fitted()
        state = deals_as_of(self.frame_, self.history_index, self.as_of_)
        return state[state["status"].eq("open")].reset_index(drop=True)

    @property
    def history_index(self) -> HistoryIndex:
        """The fit's deal history parsed once for as-of look-ups (built on ``frame_``).

        Every reader of the deals as they stood on a day (the open deals, the monthly
        shocks, the model checks, the forecast's closed-to-date) shares it: parsing the
        history is about 1.5 s per 50k deals, and was done about ten times per forecast.
        """
        self.check_fitted()
        if getattr(self, "_history_index", None) is None:
            self._history_index = HistoryIndex(self.frame_, self.history_)
        return self._history_index

    def deal_codes(self, deals: pd.DataFrame) -> dict[str, np.ndarray]:
        """Factor codes of deals (stage and groups), unseen levels mapped to the prior level."""
        self.check_fitted()
        codes = {"stage": self.levels_.code("stage", deals["stage"])}
        for g in GROUPS:  # a group the model has no effect of: code -1 (no effect)
            codes[g] = self._group_codes(g, deals[g])
        codes["created_m"] = month_index(deals["created_at"])
        codes["expected_m"] = month_index(deals["expected_close_date"])
        return codes

    def posterior_subset(self, n: int, seed: int = 0) -> dict[str, np.ndarray]:
        """``n`` posterior draws of :meth:`param_names` (with replacement when fewer exist).

        Chains are stacked (chain-major); the arrays keep the posterior's dims after the
        first, e.g. ``stage`` is ``(n, outcome, stage_level)``. A model with a fitted common
        monthly shock (``shock_``; models saved before it have none) adds ``month_shock``,
        ``(n, outcome, SHOCK_MONTHS)`` log multipliers of the hazards' odds in the months
        from ``month_shock_first`` (the month after the fit's last full month) on, which
        :func:`~crmkit.models.pipeline.kernels.time_effects` adds to those months' logits.
        Levels no training trial reached are filled in: ages and months ahead by
        :meth:`level_map`, months of the quarter by the seen months' mean
        (:meth:`quarter_seen`).
        """
        self.check_fitted()
        flat = flat_draws(self.idata_, self._posterior_names())
        total = next(iter(flat.values())).shape[0]
        rng = np.random.default_rng(seed)
        pick = rng.choice(total, size=n, replace=n > total) if n != total else np.arange(n)
        out = {k: np.asarray(v)[pick] for k, v in flat.items()}
        # models saved before the stage x months-ahead interaction: a zero one
        n_stage = len(self.levels_.stage) + 1
        out.setdefault("stage_ahead", np.zeros((n, 2, n_stage, len(MONTH_EDGES))))
        for name in ORDERED_EFFECTS:  # levels no training trial reached: the nearest seen one
            out[name] = out[name][:, :, self.level_map(name)]
        out["stage_ahead"] = out["stage_ahead"][..., self.level_map("ahead")]
        out["miq"] = _fill_unseen(out["miq"], self.quarter_seen())
        for g in GROUPS:  # groups left out: a zero effect (their deals' codes are -1)
            out.setdefault(f"u_{g}", np.zeros((n, 2, 1)))
        shock = getattr(self, "shock_", None)
        if shock is not None:
            out["month_shock"] = shock.draws(SHOCK_MONTHS, n, seed)
            out["month_shock_first"] = np.int64(last_full_month(self.as_of_) + 1)
        return out

    def level_map(self, name: str) -> np.ndarray:
        """The level of ordered effect ``name`` (``"ahead"``, ``"age"``) each level predicts with.

        A level with training trials keeps its own effect; a level none reached (deals older,
        or months further ahead, than any the training window followed) takes the effect of
        the nearest level with trials below it (above it when none is below). Without this,
        an unreached level keeps its prior mean, zero: the effect of the first level, so a
        deal older than any seen in training would get the hazard of a one-month-old deal.

        Parameters
        ----------
        name
            One of :data:`ORDERED_EFFECTS`.

        Returns
        -------
        numpy.ndarray
            For each level ``b`` of the effect, the level whose effect is used.
        """
        self.check_fitted()
        return _nearest_seen(self._levels_seen(name, len(MONTH_EDGES)))

    def _levels_seen(self, name: str, n: int) -> np.ndarray:
        """Which of the ``n`` levels of cell factor ``name`` had training trials."""
        counts = self.cells_[list(CELL_COUNTS)].to_numpy(float).sum(axis=1)
        return np.bincount(self.cells_[name].to_numpy(np.int64), weights=counts, minlength=n) > 0

    def quarter_seen(self) -> np.ndarray:
        """Which months of the quarter (1st, 2nd, 3rd) had training trials.

        :meth:`posterior_subset` gives a month of the quarter without trials the mean effect
        of the seen months, draw by draw: with closes recorded only in, say, a March and an
        April, the effect of the second month is not learned, and its prior (a log-odds
        multiplier with sd 1) would be a guess that no data checks. The mean is the
        neutral choice: it assumes no pattern beyond what was seen.

        Returns
        -------
        numpy.ndarray
            Boolean, one per month of the quarter (calendar quarters, as the cells code them).
        """
        self.check_fitted()
        return self._levels_seen("miq", 3)

    def _group_codes(self, g: str, values: pd.Series) -> np.ndarray:
        """Codes of a group's values; -1 (no effect) for a group the model leaves out."""
        if g not in self.levels_.groups:
            return np.full(len(values), -1, np.int64)
        return self.levels_.code(g, values)

    def stage_probabilities(self, months: int = 24, n_draws: int = 200) -> pd.DataFrame:
        """Learned probability of winning within ``months`` by stage, against the configured one.

        The learned figure is for a deal of the usual age for its stage (the most frequent
        age one month after a landmark), expected to close two months later, with the owner,
        team, segment and source of the company's recent deals (up to 200 of them,
        averaged), through the quarter cycle.
        """
        from crmkit.models.pipeline.kernels import hazard_paths

        post = self.posterior_subset(n_draws, self.seed)
        n = len(self.levels_.stage)
        recent = self.frame_.sort_values("created_at").tail(200)
        m = max(len(recent), 1)
        gcodes = {
            g: self._group_codes(g, recent[g]) if len(recent) else np.full(1, -1) for g in GROUPS
        }
        codes = {"stage": np.repeat(np.arange(n), m)}
        for g in GROUPS:
            codes[g] = np.tile(gcodes[g], n)
        # the usual age of a deal in each stage (most frequent age bucket one month ahead)
        first = self.cells_[self.cells_["ahead"] == 0]
        w = first.assign(n=first[["n_win", "n_lose", "n_stay"]].sum(axis=1))
        usual = w.groupby(["stage", "age"])["n"].sum().reset_index()
        usual = usual.sort_values("n").groupby("stage")["age"].last()
        age = np.array([MONTH_EDGES[int(usual.get(s, 0))] for s in range(n)])
        codes["created_m"] = np.repeat(1 - age, m).astype(np.int64)
        codes["expected_m"] = np.full(n * m, 3, np.int64)  # expected to close in 2 months
        pw, _ = hazard_paths(post, codes, first_month=1, months=months)
        win = pw.sum(axis=2).reshape(pw.shape[0], n, m).mean(axis=2)  # (draw, stage)
        conf = {}
        if self.stages_ is not None and len(self.stages_):
            conf = dict(
                zip(self.stages_["stage"].astype(str), self.stages_["probability"], strict=False)
            )
            pipes = dict(
                zip(self.stages_["stage"].astype(str), self.stages_["pipeline"], strict=False)
            )
        else:
            pipes = {}
        rows = []
        for i, s in enumerate(self.levels_.stage):
            rows.append(
                {
                    "pipeline": pipes.get(s, "default"),
                    "stage": s,
                    "configured": float(conf[s]) if s in conf else float("nan"),
                    "learned_mean": float(win[:, i].mean()),
                    "learned_p10": float(np.quantile(win[:, i], 0.1)),
                    "learned_p90": float(np.quantile(win[:, i], 0.9)),
                }
            )
        return pd.DataFrame(rows)

    def summary(self) -> dict[str, Any]:
        """Method used, data counts, diagnostics and the common monthly shock, JSON-ready.

        ``month_shock`` (None for a model saved before the shocks): per outcome (``won``,
        ``lost``) the posterior means of the shock's state step ``sigma``, its month noise
        ``tau`` and the current ``level`` (log multiplier of the hazards' odds at the last
        training month) with its ``level_sd``; ``note`` says why a shock is zero.
        """
        self.check_fitted()
        shock = getattr(self, "shock_", None)
        return {
            "method": self.method_,
            "data": self.data_,
            "diagnostics": self.diagnostics_,
            "month_shock": shock.summary() if shock is not None else None,
        }

    def add_log_likelihood(self) -> Self:
        """Add ``log_likelihood`` (``cell_counts`` on ``(chain, draw, cell)``) to ``idata_``.

        Each cell's multinomial log-likelihood of its weighted won / lost / open counts per
        draw (without the multinomial coefficient). The cells aggregate deal-months seen
        from several landmarks with fractional weights, so these are not the pointwise
        log-likelihoods of independent observations that LOO or WAIC assume.

        Returns
        -------
        PipelineModel
            ``self``, its ``idata_`` with the group (saved with it by :meth:`save`).
        """
        self.check_fitted()
        post = self.idata_.posterior
        names = self._posterior_names()
        ll = _cell_log_likelihood(flat_draws(self.idata_, names), self.cells_, self.levels_)
        shape = (post.sizes["chain"], post.sizes["draw"], len(self.cells_))
        ds = xr.Dataset(
            {"cell_counts": (("chain", "draw", "cell"), ll.reshape(shape))},
            coords={"chain": post["chain"], "draw": post["draw"], "cell": np.arange(shape[2])},
        )
        self.idata_ = _with_group(self.idata_, "log_likelihood", ds)
        return self

    def add_posterior_predictive(self, n_draws: int | None = 200, seed: int = 0) -> Self:
        """Add ``posterior_predictive``: replicated open / won / lost counts per cell.

        For each kept draw, each cell's ``ceil(total)`` trials are spread over open, won
        and lost by a multinomial with the draw's probabilities, then scaled back to the
        cell's (weighted, often fractional) total, so a replicated cell has the observed
        total and the model's split. Landmark weights make the observed counts smoother
        than whole trials, so the replicated spread of a single cell is a little wide;
        sums over many cells (wins per stage, per month) are what the checks compare.

        Parameters
        ----------
        n_draws
            Draws per chain kept (evenly spaced; None: all), to keep the group small.
        seed
            Random seed.

        Returns
        -------
        PipelineModel
            ``self``, its ``idata_`` with ``posterior_predictive`` ``cell_counts`` on
            ``(chain, draw, cell, result)`` (``result``: open, won, lost, as
            ``observed_data``), saved with it by :meth:`save`.
        """
        self.check_fitted()
        post = self.idata_.posterior
        n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
        keep = np.arange(n_draw)
        if n_draws is not None and n_draws < n_draw:
            keep = np.unique(np.linspace(0, n_draw - 1, n_draws).round().astype(np.int64))
        sub = post.isel(draw=keep)
        flat = {
            n: sub[n].to_numpy().reshape(-1, *sub[n].shape[2:]) for n in self._posterior_names()
        }
        eta = _cell_eta(flat, self.cells_, self.levels_)  # (draws, 2, cells)
        m = np.maximum(eta.max(axis=1), 0.0)
        e = np.exp(eta - m[:, None])
        p = np.concatenate([np.exp(-m)[:, None], e], axis=1)
        p = np.moveaxis(p / p.sum(axis=1, keepdims=True), 1, 2)  # (draws, cells, result)
        total = self.cells_[list(CELL_COUNTS)].to_numpy(float).sum(axis=1)
        trials = np.maximum(np.ceil(total - 1e-9), 1).astype(np.int64)
        rng = np.random.default_rng(seed)
        rep = rng.multinomial(trials[None, :], p) * (total / trials)[None, :, None]
        shape = (n_chain, len(keep), len(self.cells_), 3)
        ds = xr.Dataset(
            {"cell_counts": (("chain", "draw", "cell", "result"), rep.reshape(shape))},
            coords={
                "chain": post["chain"],
                "draw": sub["draw"],
                "cell": np.arange(shape[2]),
                "result": ["open", "won", "lost"],
            },
        )
        self.idata_ = _with_group(self.idata_, "posterior_predictive", ds)
        return self


# ---------------------------------------------------------------------- idata plumbing
#: Factor columns of the cells (their codes are coordinates of ``observed_data``).
CELL_KEYS = ("stage", "ahead", "age", "due", "miq", *GROUPS)


def _cell_keys(groups) -> tuple[str, ...]:
    """Factor columns of the cells of a model with these groups."""
    return (*CELL_KEYS[:5], *groups)


def _with_group(idata: az.InferenceData, name: str, ds: xr.Dataset) -> az.InferenceData:
    """A copy of ``idata`` with group ``name`` set to ``ds`` (replacing one there)."""
    groups = {g: idata[g] for g in idata.groups() if g != name}
    out = az.InferenceData(**groups, **{name: ds})
    out.attrs.update(idata.attrs)
    return out


#: Count columns of the cells, in the order of the ``result`` dimension.
CELL_COUNTS = ("n_stay", "n_win", "n_lose")
_BUCKETS = ("1", "2", "3", "4-6", "7-12", "13+")
_UNSEEN = "(unseen)"


#: Ordered effects a forecast can reach beyond the training data (see ``level_map``).
ORDERED_EFFECTS = ("ahead", "age")


def _nearest_seen(seen: np.ndarray) -> np.ndarray:
    """Each level's nearest seen level at or below it, else above it (itself if none is seen)."""
    idx = np.flatnonzero(seen)
    n = len(seen)
    if not len(idx):
        return np.arange(n)
    below = np.searchsorted(idx, np.arange(n), side="right") - 1
    return np.where(below >= 0, idx[np.maximum(below, 0)], idx[0])


def _fill_unseen(effect: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Draws ``(P, 2, L)`` with unseen levels set to the seen levels' mean (as is if none seen)."""
    if seen.all() or not seen.any():
        return effect
    fill = effect[:, :, seen].mean(axis=2, keepdims=True)
    return np.where(seen[None, None, :], effect, fill)


def _why_not_ok(raw: dict[str, Any]) -> str | None:
    """A message for an approximation that fails its checks."""
    if raw.get("ok", True):
        return None
    if raw.get("converged") is False:
        return "the optimiser did not converge"
    if raw.get("hessian_positive_definite") is False:
        return "the Hessian at the mode is not positive definite (draws only indicative)"
    return None


def _cell_eta(flat: dict[str, np.ndarray], cells: pd.DataFrame, levels: Levels) -> np.ndarray:
    """Linear predictors ``(draw, outcome, cell)`` of the cells.

    ``flat["stage_ahead"]`` ``(draw, outcome, stage, ahead)`` is taken by code
    (:func:`~crmkit.models.pipeline.data.stage_ahead_coded`) and indexed by the cells'
    ``stage_ahead`` column, the coding the fits use (absent, as in models saved before it:
    zero).
    """
    names = ["stage", "ahead", "age", "due", "miq", *[f"u_{g}" for g in levels.groups]]
    codes = [cells[c].to_numpy(np.int64) for c in _cell_keys(levels.groups)]
    arrays = [flat[n] for n in names]
    if "stage_ahead" in flat:
        arrays.append(stage_ahead_coded(flat["stage_ahead"]))
        codes.append(require_stage_ahead(cells, levels))
    n_cells = len(cells)
    theta = np.concatenate(arrays, axis=2)  # (draw, outcome, effect)
    design = np.zeros((n_cells, theta.shape[2]))
    start = 0
    for arr, code in zip(arrays, codes, strict=True):
        design[np.arange(n_cells), start + code] = 1.0
        start += arr.shape[2]
    n_draw = theta.shape[0]
    return (theta.reshape(2 * n_draw, -1) @ design.T).reshape(n_draw, 2, n_cells)


def _cell_log_likelihood(
    flat: dict[str, np.ndarray], cells: pd.DataFrame, levels: Levels
) -> np.ndarray:
    """Log-likelihood of each cell's weighted counts per draw, ``(draw, cell)``."""
    eta = _cell_eta(flat, cells, levels)
    m = np.maximum(eta.max(axis=1), 0.0)
    lse = m + np.log(np.exp(-m) + np.exp(eta - m[:, None]).sum(axis=1))
    n_win = cells["n_win"].to_numpy(float)
    n_lose = cells["n_lose"].to_numpy(float)
    n_tot = n_win + n_lose + cells["n_stay"].to_numpy(float)
    return n_win * eta[:, 0] + n_lose * eta[:, 1] - n_tot * lse


def _pipeline_idata(
    flat: dict[str, np.ndarray], n_chains: int, cells: pd.DataFrame, levels: Levels, stats
) -> az.InferenceData:
    """InferenceData of the pipeline model from flat (chain-major) draws and the cells."""
    dims = {
        "stage": ("outcome", "stage_level"),
        "ahead": ("outcome", "months_ahead"),
        "age": ("outcome", "age_months"),
        "due": ("outcome", "due_status"),
        "miq": ("outcome", "month_of_quarter"),
        "stage_ahead": ("outcome", "stage_level", "months_ahead"),
    }
    coords: dict[str, Any] = {
        "outcome": ["won", "lost"],
        "stage_level": [*levels.stage, _UNSEEN],
        "months_ahead": list(_BUCKETS),
        "age_months": list(_BUCKETS),
        "due_status": list(DUE_LEVELS),
        "month_of_quarter": [1, 2, 3],
    }
    for g in levels.groups:
        dims[f"u_{g}"] = ("outcome", f"{g}_level")
        dims[f"sigma_{g}"] = ("outcome",)
        coords[f"{g}_level"] = [*levels.groups[g], _UNSEEN]
    n_draw = next(iter(flat.values())).shape[0] // n_chains
    post = xr.Dataset(
        {
            k: (("chain", "draw", *dims[k]), v.reshape(n_chains, n_draw, *v.shape[1:]))
            for k, v in flat.items()
        },
        coords={"chain": np.arange(n_chains), "draw": np.arange(n_draw), **coords},
    )
    n_cells = len(cells)
    counts = cells[list(CELL_COUNTS)].to_numpy(float)
    obs = xr.Dataset(
        {"cell_counts": (("cell", "result"), counts)},
        coords={
            "cell": np.arange(n_cells),
            "result": ["open", "won", "lost"],
            **{
                f"{k}_code": ("cell", cells[k].to_numpy(np.int64))
                for k in _cell_keys(levels.groups)
            },
        },
    )
    groups: dict[str, xr.Dataset] = {"posterior": post, "observed_data": obs}
    if stats is not None:
        groups["sample_stats"] = stats
    return az.InferenceData(**groups)
