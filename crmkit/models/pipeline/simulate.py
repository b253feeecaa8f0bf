"""Simulate the pipeline model's own data from known parameters, for calibration checks.

Simulation-based calibration (SBC) needs data drawn from exactly the model that is fitted:
parameters from the prior, then data from the likelihood given them. This module does
that for the pipeline model (:mod:`crmkit.models.pipeline.model`) on the demo generator's
structure (:mod:`crmkit.data.demo.params`): its four stages, its teams and owners (owners
nested in teams), its segments and sources with the demo's shares, and the demo's number
of deals (3,000, or fewer). The demo's own parameters (stage durations, log-odds offsets)
are *not* used: the parameters are drawn from the pipeline model's prior
(:data:`~crmkit.models.pipeline.model.DEFAULT_PRIORS` or the priors given).

The generative process is the model's likelihood, so the check is exact:

1. :func:`demo_structure`: each simulated deal is seen once, at a month-end landmark, in
   a stage with its owner, team, segment and source, its creation month and expected close
   month (or none), and is followed for up to ``max_ahead`` months, censored at the end of
   the window (deals still open then count as "stayed open").
2. :func:`draw_prior`: the model's parameters from the prior, in the parametrisation of
   the fit to be checked: ``"map"`` (every group level, the unseen one included,
   ``u = sigma * z`` with ``z ~ Normal(0, 1)``: the MAP + Laplace fit,
   :mod:`crmkit.models.pipeline.map_fit`) or ``"nuts"`` (group effects summing to zero,
   owners within their team: the NUTS fit, :mod:`crmkit.models.pipeline.nuts_fit`; the
   same draw projected onto those sums, so both truths share their stage, time effects and
   scales).
3. :func:`simulate_cells`: each deal-month is won, lost or stays open with the model's
   multinomial-logit hazards ``softmax(eta_won, eta_lost, 0)``; the trials are summed into
   the cells the fits take (the columns of :func:`crmkit.models.pipeline.data.landmark_cells`,
   the derived ``stage_ahead`` code included, each trial with weight 1).

:func:`main_parameters` names the scalar parameters an SBC ranks (``"stage[won,Proposal]"``,
``"sigma_owner[won]"``, ...) and :func:`parameter_values` reads them from a truth or from
posterior draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from crmkit.data.demo import params
from crmkit.errors import CrmkitError
from crmkit.models.pipeline.data import (
    DUE_LEVELS,
    GROUPS,
    MONTH_EDGES,
    Levels,
    due_level,
    month_bucket,
    with_stage_ahead,
)

#: Parametrisations of the group effects a truth can be drawn in (see :func:`draw_prior`).
PARAMETRISATIONS = ("map", "nuts")
#: Factor columns of the cells, in :func:`crmkit.models.pipeline.data.landmark_cells`'s order.
CELL_KEYS = ("stage", "ahead", "age", "due", "miq", *GROUPS)
#: Bucket labels of months ahead and age (the posterior's coordinates).
BUCKETS = ("1", "2", "3", "4-6", "7-12", "13+")
#: The month after the simulated window (only the month of the quarter matters): 2026-01.
END_MONTH = 2026 * 12


@dataclass
class Structure:
    """Who the simulated deals are: one row per deal, and the levels of each factor.

    Attributes
    ----------
    deals : pandas.DataFrame
        ``stage`` and the group codes (indices into ``levels``), the labels ``stage_name``,
        ``owner_name``, ..., and the months ``landmark_m``, ``created_m``, ``expected_m``
        (-1: no expected close date) and ``months`` (months followed, ``>= 1``).
    levels : Levels
        Stage and group labels (only levels that have deals).
    """

    deals: pd.DataFrame
    levels: Levels


def _stage_shares() -> np.ndarray:
    """Share of open deals in each demo stage: chance of reaching it times its mean days."""
    reach = np.concatenate([[1.0], np.cumprod(params.PROGRESSION_PROBABILITY[:-1])])
    w = reach * np.asarray(params.STAGE_MEAN_DAYS)
    return w / w.sum()


def _source_shares() -> dict[str, float]:
    """The demo's sources: organic ones (80%, the demo's mix) and marketing ones (5% each)."""
    out = {s: 0.8 * p for s, p in params.ORGANIC_SOURCES.items()}
    marketing = [s for s in params.SOURCE_LOG_ODDS if s not in out]
    out.update({s: 0.2 / len(marketing) for s in marketing})
    return out


def demo_structure(
    n_deals: int = params.REFERENCE_DEALS,
    *,
    seed: int = 0,
    window_months: int = 24,
    max_ahead: int = 12,
) -> Structure:
    """Deals shaped like the demo company's: its stages, teams, owners, segments, sources.

    Parameters
    ----------
    n_deals
        Number of deals (the demo's reference size by default; fewer for quick fits).
    seed
        Random seed.
    window_months
        Landmarks fall uniformly in this many months before :data:`END_MONTH`.
    max_ahead
        Months a deal is followed at most (the model's ``max_ahead``).

    Returns
    -------
    Structure
        The deals and their levels. Segment shares are the demo's deal shares, the team
        follows the segment as in the demo, the owner is uniform within the team, the
        stage share is the demo's chance of reaching a stage times its mean days; age at
        the landmark grows with the stage, and 10% of deals have no expected close date.
    """
    if n_deals < 1:
        raise CrmkitError(f"n_deals must be at least 1, not {n_deals}")
    rng = np.random.default_rng(seed)
    segs = list(params.SEGMENTS)
    share = np.array([params.DEAL_SEGMENT_SHARE[s] for s in segs])
    seg = rng.choice(len(segs), n_deals, p=share / share.sum())
    teams = list(params.TEAMS)
    team = np.empty(n_deals, np.int64)
    owner = np.empty(n_deals, dtype=object)
    for i, s in enumerate(segs):
        sel = np.flatnonzero(seg == i)
        p = np.array([params.TEAM_BY_SEGMENT[s][t] for t in teams])
        team[sel] = rng.choice(len(teams), len(sel), p=p / p.sum())
    for j, t in enumerate(teams):
        sel = np.flatnonzero(team == j)
        owner[sel] = rng.choice(params.TEAMS[t], len(sel))
    sources = _source_shares()
    src_names = list(sources)
    src = rng.choice(len(src_names), n_deals, p=np.array(list(sources.values())))
    stage = rng.choice(len(params.STAGES), n_deals, p=_stage_shares())
    landmark = END_MONTH - rng.integers(1, window_months + 1, n_deals)
    created = landmark - (rng.geometric(0.45, n_deals) - 1 + stage)
    expected = np.where(rng.random(n_deals) < 0.1, -1, landmark + rng.integers(-2, 5, n_deals))
    labels = {
        "stage": np.asarray(params.STAGES, dtype=object)[stage],
        "owner": owner.astype(str),
        "team": np.asarray(teams, dtype=object)[team],
        "segment": np.asarray(segs, dtype=object)[seg],
        "source": np.asarray(src_names, dtype=object)[src],
    }
    stages = [s for s in params.STAGES if s in set(labels["stage"])]
    levels = Levels(stages, {g: sorted(set(labels[g])) for g in GROUPS})
    frame = {"stage": levels.code("stage", pd.Series(labels["stage"]))}
    for g in GROUPS:
        frame[g] = levels.code(g, pd.Series(labels[g]))
    for k, v in labels.items():
        frame[f"{k}_name"] = v
    frame["landmark_m"] = landmark
    frame["created_m"] = created
    frame["expected_m"] = expected
    frame["months"] = np.minimum(max_ahead, END_MONTH - landmark)
    return Structure(pd.DataFrame(frame), levels)


def _group_bases(structure: Structure) -> dict[str, np.ndarray]:
    """Zero-sum bases of the NUTS fit's group effects for these deals (owners within teams)."""
    from crmkit.models.pipeline.nuts_fit import nesting, zero_sum_basis  # numba on demand

    deals = structure.deals
    nest = nesting(deals, structure.levels)
    out = {}
    for g in GROUPS:
        n = len(structure.levels.groups[g])
        parent = None
        if nest[g] is not None:
            first = deals.groupby(g)[nest[g]].first()
            parent = np.full(n, -1, np.int64)
            parent[first.index.to_numpy(np.int64)] = first.to_numpy(np.int64)
        out[g] = zero_sum_basis(n, parent)
    return out


def draw_prior(
    structure: Structure,
    priors: dict[str, float] | None = None,
    *,
    seed: int = 0,
    parametrisation: str = "map",
) -> dict[str, np.ndarray]:
    """The pipeline model's parameters drawn from its prior.

    Parameters
    ----------
    structure
        The deals (:func:`demo_structure`); their levels give the parameters' sizes.
    priors
        Overrides of :data:`~crmkit.models.pipeline.model.DEFAULT_PRIORS` (None: defaults).
    seed
        Random seed; the same seed gives the same draw in both parametrisations.
    parametrisation
        ``"map"``: group effects ``u = sigma * z``, ``z ~ Normal(0, 1)`` on every level (the
        MAP + Laplace fit's prior); ``"nuts"``: the same ``z`` projected onto effects that
        sum to zero (owners within each team), i.e. the NUTS fit's ``ZeroSumNormal`` prior.

    Returns
    -------
    dict
        ``stage`` ``(2, stages + 1)``, ``ahead``, ``age`` ``(2, 6)``, ``due`` ``(2, 8)``,
        ``miq`` ``(2, 3)`` (first level 0), ``stage_ahead`` ``(2, stages + 1, 6)`` (the stage
        x months-ahead interaction, months-ahead level 0 zero), ``u_<group>``
        ``(2, levels + 1)`` and ``sigma_<group>`` ``(2,)``; outcome axis (won, lost); the
        last stage and group level is the model's "unseen" level.
    """
    from crmkit.models.pipeline.model import DEFAULT_PRIORS

    if parametrisation not in PARAMETRISATIONS:
        raise CrmkitError(
            f"parametrisation must be one of {PARAMETRISATIONS}, not {parametrisation!r}"
        )
    p = {**DEFAULT_PRIORS, **(priors or {})}
    rng = np.random.default_rng(seed)
    levels = structure.levels
    out: dict[str, np.ndarray] = {
        "stage": rng.normal(p["stage_mu"], p["stage_sigma"], (2, len(levels.stage) + 1))
    }
    sizes = {"ahead": len(MONTH_EDGES), "age": len(MONTH_EDGES), "due": len(DUE_LEVELS), "miq": 3}
    for name, n in sizes.items():
        free = rng.normal(0.0, p["effect_sigma"], (2, n - 1))
        out[name] = np.concatenate([np.zeros((2, 1)), free], axis=1)
    bases = _group_bases(structure) if parametrisation == "nuts" else {}
    for g in GROUPS:
        n = len(levels.groups[g])
        sig = np.abs(rng.normal(0.0, p["group_sigma"], 2))
        z = rng.standard_normal((2, n + 1))
        if parametrisation == "nuts":
            b = bases[g]
            z[:, :n] = (z[:, :n] @ b) @ b.T
        out[f"sigma_{g}"] = sig
        out[f"u_{g}"] = sig[:, None] * z
    # drawn last, so the other parameters of a seed are those drawn before the interaction
    free = rng.normal(0.0, p["stage_ahead_sigma"], (2, len(levels.stage) + 1, len(MONTH_EDGES) - 1))
    out["stage_ahead"] = np.concatenate([np.zeros((2, len(levels.stage) + 1, 1)), free], axis=2)
    return out


def trial_covariates(structure: Structure, k: np.ndarray) -> dict[str, np.ndarray]:
    """Factor codes of each deal's ``k``-th month followed (``k >= 1``), one per deal.

    Returns the :data:`CELL_KEYS` codes exactly as :func:`~crmkit.models.pipeline.data.
    landmark_cells` makes them: months-ahead and age buckets, due status, month of quarter.
    """
    d = structure.deals
    trial = d["landmark_m"].to_numpy(np.int64) + k
    out = {
        "stage": d["stage"].to_numpy(np.int64),
        "ahead": month_bucket(k),
        "age": month_bucket(trial - d["created_m"].to_numpy(np.int64)),
        "due": due_level(trial, d["expected_m"].to_numpy(np.int64)),
        "miq": trial % 3,
    }
    for g in GROUPS:
        out[g] = d[g].to_numpy(np.int64)
    return out


def linear_predictor(truth: dict[str, np.ndarray], codes: dict[str, np.ndarray]) -> np.ndarray:
    """``eta`` ``(2, n)`` (won, lost) of trials with the given factor codes.

    A truth without ``stage_ahead`` has no stage x months-ahead interaction.
    """
    eta = truth["stage"][:, codes["stage"]]
    for name in ("ahead", "age", "due", "miq"):
        eta = eta + truth[name][:, codes[name]]
    if "stage_ahead" in truth:
        eta = eta + truth["stage_ahead"][:, codes["stage"], codes["ahead"]]
    for g in GROUPS:
        eta = eta + truth[f"u_{g}"][:, codes[g]]
    return eta


def simulate_cells(
    structure: Structure, truth: dict[str, np.ndarray], *, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each deal's months won / lost / open from the model's hazards, summed into cells.

    Parameters
    ----------
    structure
        The deals (:func:`demo_structure`).
    truth
        Parameters (:func:`draw_prior`).
    seed
        Random seed of the outcomes (one uniform per deal and month, so two truths simulated
        with the same seed share their random numbers).

    Returns
    -------
    cells : pandas.DataFrame
        Factor codes :data:`CELL_KEYS`, the derived code ``stage_ahead``
        (:func:`~crmkit.models.pipeline.data.with_stage_ahead`) and counts ``n_stay, n_win,
        n_lose`` (each trial weight 1): the columns of
        :func:`~crmkit.models.pipeline.data.landmark_cells`, the input of the MAP and NUTS
        fits.
    outcomes : pandas.DataFrame
        Per deal: ``result`` (``"won"``, ``"lost"``, ``"open"`` when censored) and
        ``months`` (months followed until the close or the censoring).
    """
    rng = np.random.default_rng(seed)
    d = structure.deals
    n = len(d)
    horizon = d["months"].to_numpy(np.int64)
    unif = rng.random((n, int(horizon.max()) if n else 0))
    result = np.zeros(n, np.int64)  # 0 open, 1 won, 2 lost
    followed = np.zeros(n, np.int64)
    parts = []
    for k in range(1, unif.shape[1] + 1):
        alive = (result == 0) & (horizon >= k)
        if not alive.any():
            break
        codes = trial_covariates(structure, np.full(n, k))
        eta = linear_predictor(truth, codes)
        m = np.maximum(eta.max(axis=0), 0.0)
        e = np.exp(eta - m)
        den = e.sum(axis=0) + np.exp(-m)
        p_win, p_lose = e[0] / den, e[1] / den
        u = unif[:, k - 1]
        res = np.where(u < p_win, 1, np.where(u < p_win + p_lose, 2, 0))
        res = np.where(alive, res, 0)
        frame = {c: codes[c][alive] for c in CELL_KEYS}
        r = res[alive]
        frame["n_stay"] = (r == 0).astype(float)
        frame["n_win"] = (r == 1).astype(float)
        frame["n_lose"] = (r == 2).astype(float)
        parts.append(pd.DataFrame(frame))
        followed[alive] = k
        result[alive] = res[alive]
    keys = list(CELL_KEYS)
    if parts:
        cells = pd.concat(parts, ignore_index=True).groupby(keys, as_index=False).sum()
    else:
        cells = pd.DataFrame({c: pd.Series(dtype="int64") for c in keys})
        for c in ("n_stay", "n_win", "n_lose"):
            cells[c] = pd.Series(dtype="float64")
    cells = with_stage_ahead(cells, structure.levels)  # the fits read it, as landmark_cells'
    outcomes = pd.DataFrame(
        {"result": np.array(["open", "won", "lost"])[result], "months": followed}
    )
    return cells, outcomes


def main_parameters(levels: Levels) -> list[str]:
    """Names of the scalar parameters an SBC ranks, e.g. ``"stage[won,Proposal]"``.

    Every stage's win and loss intercepts, the age effect of 4-6 months (against 1 month),
    the due effect "late 1" (against unknown) and the months-ahead effect of 2 months, for
    winning; the owner and team scales (won and lost), the source scale (won), and the first
    owner's effect (won); then the stage x months-ahead interaction of every stage with
    deals, outcome and months-ahead bucket but the reference (1 month), e.g.
    ``"stage_ahead[won,Proposal,2]"`` (won, Proposal, 2 months ahead; 13+ months is
    beyond the ``max_ahead`` followed, so its posterior is its prior).
    """
    names = [f"stage[{o},{s}]" for o in ("won", "lost") for s in levels.stage]
    names += ["age[won,4-6]", "due[won,late 1]", "ahead[won,2]"]
    names += ["sigma_owner[won]", "sigma_owner[lost]", "sigma_team[won]", "sigma_team[lost]"]
    names += ["sigma_source[won]", f"u_owner[won,{levels.groups['owner'][0]}]"]
    outcomes, later = ("won", "lost"), BUCKETS[1:]
    names += [f"stage_ahead[{o},{s},{b}]" for o in outcomes for s in levels.stage for b in later]
    return names


def parameter_values(values: dict[str, np.ndarray], name: str, levels: Levels) -> np.ndarray:
    """The named scalar (:func:`main_parameters`) from a truth or from draws.

    Parameters
    ----------
    values
        A truth (:func:`draw_prior`: arrays without a draw axis) or flat posterior draws
        (first axis: draw, as the MAP and NUTS fits return them).
    name
        ``"<variable>[<outcome>,<level>]"``, ``"sigma_<group>[<outcome>]"`` or
        ``"stage_ahead[<outcome>,<stage>,<months-ahead bucket>]"``.
    levels
        The levels the names refer to.

    Returns
    -------
    numpy.ndarray
        The value (0-d for a truth) or one value per draw.
    """
    var, _, rest = name.partition("[")
    parts = rest.rstrip("]").split(",", 1)
    if var not in values or not rest:
        raise CrmkitError(f"unknown parameter {name!r}")
    arr = np.asarray(values[var])
    o = ("won", "lost").index(parts[0])
    if var.startswith("sigma_"):
        return arr[..., o]
    if var == "stage_ahead":  # (..., outcome, stage, months ahead)
        stage, _, bucket = parts[1].rpartition(",")
        if stage not in levels.stage or bucket not in BUCKETS:
            raise CrmkitError(f"unknown parameter {name!r}")
        return arr[..., o, list(levels.stage).index(stage), BUCKETS.index(bucket)]
    coords = {
        "stage": list(levels.stage),
        "ahead": list(BUCKETS),
        "age": list(BUCKETS),
        "due": list(DUE_LEVELS),
        "miq": ["1", "2", "3"],
    }
    for g in GROUPS:
        coords[f"u_{g}"] = list(levels.groups[g])
    return arr[..., o, coords[var].index(parts[1])]
