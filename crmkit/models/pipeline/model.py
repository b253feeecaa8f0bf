"""The pipeline model: will an open deal be won, lost or stay open in each coming month.

A discrete-time competing-risks model (per month: won, lost, or still open) with a
multinomial logit link, fitted to landmark exposures (:mod:`crmkit.models.pipeline.data`).
For outcome ``j`` (won, lost) in month ``k`` after the cut-off::

    eta_j = stage_j[s] + ahead_j[bucket(k)] + age_j[bucket(age)] + due_j[due status]
            + miq_j[month of quarter] + sum_g u_{g,j}[level]     (g: owner, team, segment, source)
    P(won), P(lost), P(open) = softmax(eta_win, eta_lose, 0)

with ``u_{g,j} ~ Normal(0, sigma_{g,j})`` (partial pooling: a thin owner borrows from the
rest), ``sigma ~ HalfNormal(0.5)``, stage effects ``Normal(-2, 1.5)`` and the other
effects ``Normal(0, 1)`` (first level as reference). Deals open at the cut-off are
censored, so win probabilities are not inflated by deals that never close. The due status
(months before or after the expected close month) is the slip model: revenue lands in
the month the hazard puts it, and may slip beyond the horizon. Realised over listed amount
is a log-normal with a conjugate Normal-inverse-gamma posterior (:class:`AmountRatio`).

The likelihood is evaluated on aggregated cells, so 100k deals fit in seconds.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from crmkit.models.inference.pymc_fit import fit_model
from crmkit.models.pipeline.data import (
    DUE_LEVELS,
    GROUPS,
    MONTH_EDGES,
    Levels,
    amount_ratios,
    deal_frame,
    landmark_cells,
)
from crmkit.models.pipeline.map_fit import fit_map_numpy
from crmkit.store.history import deals_as_of, month_index

DEFAULT_PRIORS: dict[str, float] = {
    "stage_mu": -2.0,
    "stage_sigma": 1.5,
    "effect_sigma": 1.0,
    "group_sigma": 0.5,
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


class PipelineModel:
    """Win / loss / timing model of open deals with partial pooling over groups.

    Parameters
    ----------
    window_months
        Month-end landmarks used for training.
    max_ahead
        Months each landmark follows a deal.
    priors
        Overrides of :data:`DEFAULT_PRIORS`.
    method
        ``"map"`` (mode + Laplace, seconds), ``"nuts"`` (nutpie) or ``"advi"``.
    draws, tune, chains
        Sampler settings.
    seed
        Random seed.
    progress
        Show sampling progress.
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
    ) -> None:
        self.window_months = window_months
        self.max_ahead = max_ahead
        self.priors = {**DEFAULT_PRIORS, **(priors or {})}
        self.method = method
        self.draws, self.tune, self.chains = draws, tune, chains
        self.seed = seed
        self.progress = progress

    # ------------------------------------------------------------------ model
    def build_model(self, cells: pd.DataFrame, levels: Levels):
        """The PyMC model on aggregated cells."""
        import pymc as pm
        import pytensor.tensor as pt

        p = self.priors
        n_stage = len(levels.stage) + 1
        with pm.Model() as model:
            stage = pm.Normal("stage", p["stage_mu"], p["stage_sigma"], shape=(2, n_stage))
            ahead = _with_reference(pm, pt, "ahead", len(MONTH_EDGES), p["effect_sigma"])
            age = _with_reference(pm, pt, "age", len(MONTH_EDGES), p["effect_sigma"])
            due = _with_reference(pm, pt, "due", len(DUE_LEVELS), p["effect_sigma"])
            miq = _with_reference(pm, pt, "miq", 3, p["effect_sigma"])
            idx = {c: cells[c].to_numpy(np.int64) for c in cells.columns if not c.startswith("n_")}
            eta = (
                stage[:, idx["stage"]]
                + ahead[:, idx["ahead"]]
                + age[:, idx["age"]]
                + due[:, idx["due"]]
                + miq[:, idx["miq"]]
            )
            for g in GROUPS:
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
        return ["stage", "ahead", "age", "due", "miq", *[f"u_{g}" for g in GROUPS]]

    def fit(
        self,
        deals: pd.DataFrame,
        history: pd.DataFrame | None = None,
        *,
        as_of: object,
        accounts: pd.DataFrame | None = None,
        stages: pd.DataFrame | None = None,
    ) -> PipelineModel:
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

        Returns
        -------
        PipelineModel
            ``self`` with ``posterior_``, ``levels_``, ``cells_``, ``amount_``,
            ``diagnostics_`` and ``data_``.
        """
        frame = deal_frame(deals, accounts)
        cells, levels = landmark_cells(
            frame, history, as_of, window_months=self.window_months, max_ahead=self.max_ahead
        )
        self.cells_, self.levels_ = cells, levels
        self.frame_, self.history_ = frame, history
        self.stages_ = stages
        if self.method == "map":
            t0 = time.perf_counter()
            self.posterior_, self.diagnostics_ = fit_map_numpy(
                cells, levels, self.priors, n_draws=self.draws * self.chains, seed=self.seed
            )
            self.diagnostics_.update(method="map", seconds=round(time.perf_counter() - t0, 2))
        else:
            model = self.build_model(cells, levels)
            self.posterior_, self.diagnostics_ = fit_model(
                model,
                self.param_names(),
                self.method,
                draws=self.draws,
                tune=self.tune,
                chains=self.chains,
                seed=self.seed,
                progress=self.progress,
            )
        self.amount_ = AmountRatio().fit(amount_ratios(frame, history, as_of))
        self.as_of_ = pd.Timestamp(as_of)
        self.data_ = {
            "cells": len(cells),
            "trials": float(cells[["n_win", "n_lose", "n_stay"]].to_numpy().sum()),
            "wins": float(cells["n_win"].sum()),
            "losses": float(cells["n_lose"].sum()),
            "amount_ratios": self.amount_.n_,
        }
        return self

    # ------------------------------------------------------------------ predictions
    def open_deals(self) -> pd.DataFrame:
        """The deals open on the cut-off, as they were then."""
        state = deals_as_of(self.frame_, self.history_, self.as_of_)
        return state[state["status"].eq("open")].reset_index(drop=True)

    def deal_codes(self, deals: pd.DataFrame) -> dict[str, np.ndarray]:
        """Factor codes of deals (stage and groups), unseen levels mapped to the prior level."""
        codes = {"stage": self.levels_.code("stage", deals["stage"])}
        for g in GROUPS:
            codes[g] = self.levels_.code(g, deals[g])
        codes["created_m"] = month_index(deals["created_at"])
        codes["expected_m"] = month_index(deals["expected_close_date"])
        return codes

    def posterior_subset(self, n: int, seed: int = 0) -> dict[str, np.ndarray]:
        """``n`` posterior draws (with replacement when fewer exist)."""
        total = next(iter(self.posterior_.values())).shape[0]
        rng = np.random.default_rng(seed)
        pick = rng.choice(total, size=n, replace=n > total) if n != total else np.arange(n)
        return {k: np.asarray(v)[pick] for k, v in self.posterior_.items()}

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
            g: self.levels_.code(g, recent[g]) if len(recent) else np.full(1, -1) for g in GROUPS
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
        """Method, data counts and diagnostics as a JSON-ready dict."""
        return {"method": self.method, "data": self.data_, "diagnostics": self.diagnostics_}
