"""The revenue forecast: draws per period from open deals, new business and repeat customers.

Each source gives draws of revenue with dims ``(sample, period, group)``; the total is
their sum draw by draw, and every roll-up (team, owner, segment) is a sum of the deals'
draws, never a sum of quantiles. The result is a :class:`crmkit.store.Snapshot` laid out
as ``helper-notes/FORECAST_CONTRACT.md`` describes.

Quantiles are of the revenue still to come after ``as_of``; ``closed_to_date`` (won before
``as_of`` in the current period, on the ``total`` rows) is kept apart and added for
``p_target = P(closed_to_date + forecast >= target)``. Repeat revenue is allocated to
segments by account, and to owners and teams by account owner (and the owner's team in
the deals) where known.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from crmkit.errors import CrmkitError
from crmkit.forecast_kernels import simulate_new_business, simulate_pipeline
from crmkit.history import deals_as_of, end_of_day, month_index, month_label
from crmkit.models.pipeline import PipelineModel
from crmkit.models.pipeline_data import deal_frame
from crmkit.models.pipeline_newbiz import NewBusinessModel
from crmkit.store.snapshots import Snapshot

QUANTILES = {
    "p05": 0.05,
    "p10": 0.10,
    "p25": 0.25,
    "p50": 0.50,
    "p75": 0.75,
    "p90": 0.90,
    "p95": 0.95,
}
SOURCES = ("pipeline", "new_business", "repeat", "total")
GROUP_BYS = ("team", "owner", "segment")


# ---------------------------------------------------------------------- axes
@dataclass
class PeriodAxis:
    """Forecast months and the periods they fall in."""

    first_month: int
    period_of_k: np.ndarray
    labels: list[str]
    period_months: list[list[int]]
    frac_first: float

    @property
    def months(self) -> int:
        """Number of simulated months."""
        return len(self.period_of_k)


def period_axis(as_of: object, horizon: int, period: str = "M") -> PeriodAxis:
    """The forecast periods after ``as_of``: the current one (if not over) and the next ones.

    When ``as_of`` is a period's last day the first period is the next one; otherwise the
    first period is the current one, of which only the rest is forecast.
    """
    if period not in ("M", "Q"):
        raise CrmkitError(f"period must be 'M' or 'Q', not {period!r}")
    if int(horizon) < 1:
        raise CrmkitError(f"horizon must be at least 1, not {horizon!r}")
    t = pd.Timestamp(as_of).normalize()
    m = month_index(t)
    dim = t.days_in_month
    if t.day == dim:
        first, frac = m + 1, 1.0
    else:
        first, frac = m, (dim - t.day) / dim
    step = 1 if period == "M" else 3
    p0 = first // step
    months = list(range(first, (p0 + horizon) * step))
    period_of_k = np.array([mm // step - p0 for mm in months], dtype=np.int64)
    labels, groups = [], []
    for i in range(horizon):
        p = p0 + i
        labels.append(month_label(p) if period == "M" else f"{p // 4:04d}-Q{p % 4 + 1}")
        groups.append([mm for mm in months if mm // step == p])
    return PeriodAxis(first, period_of_k, labels, groups, frac)


def group_axis(frame: pd.DataFrame, accounts: pd.DataFrame | None = None) -> list[str]:
    """Group labels: ``all``, then ``team=..``, ``owner=..``, ``segment=..`` seen in the data."""
    labels = ["all"]
    for g in GROUP_BYS:
        vals = set(frame[g].dropna().astype(str))
        if g == "segment" and accounts is not None and "segment" in accounts:
            vals |= set(accounts["segment"].dropna().astype(str))
        if g == "owner" and accounts is not None and "owner" in accounts:
            vals |= set(accounts["owner"].dropna().astype(str))
        labels += [f"{g}={v}" for v in sorted(vals) if v != "(none)"]
    return labels


def memberships(frame: pd.DataFrame, index: dict[str, int]) -> np.ndarray:
    """``(rows, 4)`` group columns (all, team, owner, segment) of each deal; -1 when none."""
    cols = [np.zeros(len(frame), np.int64)]
    for g in GROUP_BYS:
        cols.append(
            frame[g].astype(str).map(lambda v, g=g: index.get(f"{g}={v}", -1)).to_numpy(np.int64)
        )
    return np.stack(cols, axis=1)


# ---------------------------------------------------------------------- data
FORECAST_TABLES = ("deals", "deal_history", "accounts", "stages", "orders")
MARKETING_TABLES = ("channel_spend", "campaigns")


def load_frames(store, *, marketing: bool = False) -> dict[str, pd.DataFrame]:
    """The store's tables a forecast needs (and those of a marketing plan if asked)."""
    names = FORECAST_TABLES + (MARKETING_TABLES if marketing else ())
    return {name: store.read(name) for name in names}


def _won_in(frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Deals won with ``start <= closed_at <= end``."""
    c = pd.to_datetime(frame["closed_at"])
    return frame[frame["status"].eq("won") & (c >= start) & (c <= end)]


# ---------------------------------------------------------------------- fitting
def fit_models(
    frames: dict[str, pd.DataFrame],
    *,
    as_of: object,
    method: str = "map",
    seed: int = 0,
    progress: bool = False,
    window_months: int = 24,
    draws: int = 500,
    tune: int = 500,
) -> dict[str, Any]:
    """Fit the pipeline and new-business models on what was known on ``as_of``."""
    deals = deal_frame(frames["deals"], frames.get("accounts"))
    history = frames.get("deal_history")
    settings = {
        "method": method,
        "seed": seed,
        "progress": progress,
        "window_months": window_months,
        "draws": draws,
        "tune": tune,
    }
    pipe = PipelineModel(**settings).fit(deals, history, as_of=as_of, stages=frames.get("stages"))
    nb = NewBusinessModel(**settings).fit(deals, history, as_of=as_of)
    return {"pipeline": pipe, "new_business": nb}


def new_business_draws(
    nb: NewBusinessModel,
    accounts: pd.DataFrame | None,
    axis: PeriodAxis,
    gindex: dict[str, int],
    *,
    draws: int,
    n_p: int,
    seed: int,
    extra: np.ndarray | None = None,
) -> tuple[np.ndarray | None, dict]:
    """New-business revenue draws ``(sample, period, group)`` and the model's diagnostics.

    ``extra`` ``(n_p, months)`` is added to the arrival means (a marketing plan's extra
    deals against the baseline; the mean is floored at 0). None when there is nothing to
    draw from.
    """
    if nb.posterior_ is None or not len(nb.templates_):
        return None, {
            **getattr(nb, "diagnostics_", {}),
            "ok": True,
            "message": "no arrivals model or no won deals to draw amounts from",
        }
    mu_nb, alpha = nb.arrival_means(axis.first_month, axis.months, n_p, seed)
    mu_nb[:, 0] *= axis.frac_first
    if extra is not None:
        mu_nb = np.maximum(mu_nb + extra, 0.0)
    rng = np.random.default_rng(seed + 1)
    pick = np.arange(draws) % n_p
    shape = 1.0 / np.maximum(alpha[pick], 1e-6)
    lam = rng.gamma(shape[:, None], mu_nb[pick] / shape[:, None])
    counts = rng.poisson(lam)
    cdf = nb.win_cdf(axis.first_month, axis.months, n_p, seed)
    t = deal_frame(nb.templates_, accounts)
    rev = simulate_new_business(
        counts,
        cdf,
        axis.period_of_k,
        t["amount"].to_numpy(float),
        memberships(t, gindex),
        n_periods=len(axis.labels),
        n_groups=len(gindex),
        seed=seed + 2,
    )
    return rev, dict(nb.diagnostics_)


# ---------------------------------------------------------------------- forecasting
def forecast_draws(
    models: dict[str, Any],
    frames: dict[str, pd.DataFrame],
    *,
    as_of: object,
    horizon: int,
    period: str = "M",
    draws: int = 1000,
    seed: int = 0,
    param_draws: int = 100,
    include_repeat: bool = True,
    repeat_method: str = "map",
    plan: pd.DataFrame | str | None = None,
) -> dict[str, Any]:
    """Revenue draws per source, period and group from fitted models.

    ``plan`` (weekly spend per channel, see :func:`crmkit.forecast_marketing.plan_arrivals`)
    needs ``models["marketing"]``, a :class:`~crmkit.models.marketing.MarketingMixModel`
    fitted on weekly new deals: the plan's extra arrivals against the baseline plan are
    added to the new-business arrival means, and nothing else changes.

    Returns
    -------
    dict
        ``rollup`` ``(sample, period, source, group)``, ``coords``, ``axis`` (PeriodAxis),
        ``deals`` (open deals with ``p_win``, ``p_slip``, ``expected_revenue``),
        ``diagnostics`` per source, ``closed_to_date`` ``(period, group)`` and
        ``marketing`` (None without a plan).
    """
    axis = period_axis(as_of, horizon, period)
    pipe: PipelineModel = models["pipeline"]
    nb: NewBusinessModel = models["new_business"]
    accounts = frames.get("accounts")
    frame = pipe.frame_
    groups = group_axis(frame, accounts)
    gindex = {g: i for i, g in enumerate(groups)}
    n_groups, n_per = len(groups), len(axis.labels)
    rollup = np.zeros((draws, n_per, len(SOURCES), n_groups))
    n_p = min(param_draws, draws)

    # open pipeline
    open_deals = pipe.open_deals()
    post = pipe.posterior_subset(n_p, seed)
    mu, sig = pipe.amount_.draws(n_p, seed)
    codes = pipe.deal_codes(open_deals)
    pipe_rev, p_win, p_slip = simulate_pipeline(
        post,
        codes,
        open_deals["amount"].fillna(0.0).to_numpy(float),
        memberships(open_deals, gindex),
        first_month=axis.first_month,
        period_of_k=axis.period_of_k,
        frac_first=axis.frac_first,
        ratio_mu=mu,
        ratio_sigma=sig,
        n_draws=draws,
        n_periods=n_per,
        n_groups=n_groups,
        seed=seed,
    )
    rollup[:, :, 0, :] = pipe_rev
    mean_ratio = float(np.mean(np.exp(mu + sig**2 / 2)))
    deals_out = open_deals.reindex(
        columns=[
            "deal_id",
            "name",
            "owner",
            "team",
            "segment",
            "stage",
            "amount",
            "expected_close_date",
        ]
    ).copy()
    deals_out["p_win"] = p_win
    deals_out["p_slip"] = p_slip
    deals_out["expected_revenue"] = p_win * deals_out["amount"].fillna(0.0) * mean_ratio

    # new business (the one place a marketing plan enters: extra arrivals)
    marketing = None
    extra = None
    if plan is not None:
        from crmkit.forecast_marketing import plan_arrivals

        extra, marketing = plan_arrivals(models, frames, plan, as_of=as_of, axis=axis, n_draws=n_p)
    nb_rev, nb_diag = new_business_draws(
        nb, accounts, axis, gindex, draws=draws, n_p=n_p, seed=seed, extra=extra
    )
    if nb_rev is not None:
        rollup[:, :, 1, :] = nb_rev
    if marketing is not None and not marketing["diagnostics"].get("ok", True):
        nb_diag = {
            **nb_diag,
            "ok": False,
            "message": "the marketing-mix model behind the spend plan did not converge",
        }

    # repeat customers
    rep_diag: dict = {"ok": True, "method": "none", "message": "not requested"}
    if include_repeat:
        from crmkit.forecast_repeat import repeat_draws

        owner_team = (
            frame[frame["team"] != "(none)"]
            .groupby("owner")["team"]
            .agg(lambda s: s.mode().iloc[0])
            .to_dict()
        )
        t0 = pd.Timestamp(as_of).normalize()
        ends = [
            pd.Timestamp(year=m // 12, month=m % 12 + 1, day=1) + pd.offsets.MonthEnd(0)
            for m in axis.first_month + np.arange(axis.months)
        ]
        weeks = np.array([(e - t0).days / 7.0 for e in ends])
        try:
            rep, rep_diag = repeat_draws(
                frames.get("orders"),
                accounts,
                gindex,
                owner_team,
                as_of=as_of,
                month_edges_weeks=weeks,
                period_of_k=axis.period_of_k,
                n_periods=n_per,
                n_draws=draws,
                method=repeat_method,
                seed=seed,
            )
            rollup[:, :, 2, :] = rep
        except Exception as exc:  # a failed repeat fit must not sink the whole forecast
            rep_diag = {"ok": False, "method": repeat_method, "message": f"repeat failed: {exc}"}
    rollup[:, :, 3, :] = rollup[:, :, :3, :].sum(axis=2)

    # closed to date in the current period
    closed = np.zeros((n_per, n_groups))
    if axis.frac_first < 1.0 or period == "Q":
        state = deals_as_of(frame, pipe.history_, as_of)
        first_m = axis.period_months[0][0]
        start = pd.Timestamp(year=first_m // 12, month=first_m % 12 + 1, day=1)
        if period == "Q":
            q = axis.first_month // 3
            start = pd.Timestamp(year=q // 4, month=(q % 4) * 3 + 1, day=1)
        won = _won_in(state, start, end_of_day(as_of))
        if len(won):
            gid = memberships(won, gindex)
            for col in range(gid.shape[1]):
                np.add.at(
                    closed[0],
                    gid[:, col][gid[:, col] >= 0],
                    won["amount"].fillna(0).to_numpy(float)[gid[:, col] >= 0],
                )
    diagnostics = {"pipeline": pipe.diagnostics_, "new_business": nb_diag, "repeat": rep_diag}
    return {
        "rollup": rollup,
        "groups": groups,
        "axis": axis,
        "deals": deals_out,
        "diagnostics": diagnostics,
        "closed_to_date": closed,
        "marketing": marketing,
        "settings": {"draws": draws, "n_p": n_p, "seed": seed, "gindex": gindex},
    }


def quantile_table(
    rollup: np.ndarray,
    labels: list[str],
    groups: list[str],
    closed_to_date: np.ndarray,
    target: object = None,
) -> pd.DataFrame:
    """Long quantile table of the contract from rollup draws ``(sample, period, source, group)``.

    ``target`` is a number (every period) or ``{period_label: amount}``; it applies to the
    ``total`` of group ``all``.
    """
    qs = np.quantile(rollup, list(QUANTILES.values()), axis=0)  # (q, period, source, group)
    mean = rollup.mean(axis=0)
    rows = []
    for gi, g in enumerate(groups):
        group_by, value = ("all", "all") if g == "all" else tuple(g.split("=", 1))
        for si, s in enumerate(SOURCES):
            for pi, p in enumerate(labels):
                row = {
                    "group_by": group_by,
                    "group": value,
                    "source": s,
                    "period": p,
                    "mean": float(mean[pi, si, gi]),
                }
                for qi, name in enumerate(QUANTILES):
                    row[name] = float(qs[qi, pi, si, gi])
                ctd = float(closed_to_date[pi, gi]) if s == "total" else 0.0
                row["closed_to_date"] = ctd
                tgt = _target_for(target, p) if (g == "all" and s == "total") else None
                row["target"] = float("nan") if tgt is None else float(tgt)
                row["p_target"] = (
                    float("nan")
                    if tgt is None
                    else float(np.mean(ctd + rollup[:, pi, si, gi] >= tgt))
                )
                rows.append(row)
    return pd.DataFrame(rows)


def _target_for(target: object, period: str) -> float | None:
    """The target of one period, or None."""
    if target is None:
        return None
    if isinstance(target, dict):
        v = target.get(period)
        return None if v is None else float(v)
    return float(target)


def probability_of_target(
    snapshot: Snapshot,
    target: float,
    *,
    period: str | None = None,
    group: str = "all",
    source: str = "total",
) -> float:
    """P(closed to date + forecast >= target) from a snapshot's draws (no refit).

    ``period`` None means the sum over all the snapshot's periods.
    """
    arr = snapshot.draws["rollup"]
    c = snapshot.coords
    si, gi = c["source"].index(source), c["group"].index(group)
    q = snapshot.quantiles
    sel = q[(q["source"] == "total") & (q["group_by"] == "all")]
    ctd = dict(zip(sel["period"], sel["closed_to_date"], strict=False))
    if period is None:
        total = arr[:, :, si, gi].sum(axis=1) + sum(ctd.values())
    else:
        pi = c["period"].index(period)
        total = arr[:, pi, si, gi] + ctd.get(period, 0.0)
    return float(np.mean(total >= target))


def actuals_table(frame: pd.DataFrame, as_of: object, period: str, n_back: int = 12) -> list[dict]:
    """Won deal revenue per past period (``source`` ``deals``) for the fan chart."""
    t = end_of_day(as_of)
    won = frame[
        frame["status"].eq("won")
        & frame["closed_at"].notna()
        & (pd.to_datetime(frame["closed_at"]) <= t)
    ]
    if won.empty:
        return []
    m = month_index(won["closed_at"])
    key = m if period == "M" else m // 3
    s = pd.Series(won["amount"].fillna(0).to_numpy(float)).groupby(key).sum().sort_index()
    s = s.iloc[-n_back:]
    lab = (
        (lambda k: month_label(int(k)))
        if period == "M"
        else (lambda k: f"{int(k) // 4:04d}-Q{int(k) % 4 + 1}")
    )
    return [{"period": lab(k), "source": "deals", "amount": float(v)} for k, v in s.items()]


def build_snapshot(
    result: dict[str, Any],
    models: dict[str, Any],
    *,
    as_of: object,
    horizon: int,
    period: str,
    draws: int,
    seed: int,
    method: str,
    target: object = None,
    label: str | None = None,
) -> Snapshot:
    """A :class:`Snapshot` of forecast draws, quantiles, diagnostics and tables."""
    axis: PeriodAxis = result["axis"]
    rollup = result["rollup"]
    groups = result["groups"]
    q = quantile_table(rollup, axis.labels, groups, result["closed_to_date"], target)
    pipe: PipelineModel = models["pipeline"]
    deals = result["deals"]
    at_risk = deals.sort_values("expected_revenue", ascending=False).head(200).copy()
    at_risk["expected_close_date"] = pd.to_datetime(at_risk["expected_close_date"]).dt.strftime(
        "%Y-%m-%d"
    )
    stage_tab = pipe.stage_probabilities()
    diag_models = {}
    for k, d in result["diagnostics"].items():
        diag_models[k] = {
            "ok": bool(d.get("ok", True)),
            "method": d.get("method"),
            "r_hat_max": d.get("r_hat_max"),
            "ess_bulk_min": d.get("ess_bulk_min"),
            "divergences": d.get("divergences"),
            "seconds": d.get("seconds"),
        }
    messages = [
        f"{k}: {d['message']}" for k, d in result["diagnostics"].items() if d.get("message")
    ]
    messages += [
        f"{k}: diagnostics not ok ({v['method']})" for k, v in diag_models.items() if not v["ok"]
    ]
    tables = {
        "stage_probabilities": stage_tab.to_dict("records"),
        "at_risk_deals": at_risk[
            [
                "deal_id",
                "name",
                "owner",
                "team",
                "stage",
                "amount",
                "expected_close_date",
                "p_win",
                "p_slip",
            ]
        ]
        .astype(object)
        .where(at_risk.notna(), None)
        .to_dict("records"),
        "actuals": actuals_table(pipe.frame_, as_of, period),
    }
    deal_ids = deals["deal_id"].astype(str).tolist()
    exp_m = month_index(deals["expected_close_date"])
    snap_draws = {
        "rollup": rollup.astype(np.float64),
        "deal_p_win": deals["p_win"].to_numpy(float),
        "deal_expected": deals["expected_revenue"].to_numpy(float),
        "deal_amount": deals["amount"].fillna(0).to_numpy(float),
        "deal_expected_month": np.asarray(exp_m, np.int64),
        "deal_stage": np.asarray(deals["stage"].astype(str).to_numpy(), dtype=str),
    }
    dims = {"rollup": ["sample", "period", "source", "group"]}
    dims.update({k: ["deal_id"] for k in snap_draws if k.startswith("deal_")})
    params = {
        "as_of": str(pd.Timestamp(as_of).date()),
        "horizon": int(horizon),
        "period": period,
        "draws": int(draws),
        "target": target,
        "seed": int(seed),
        "methods": {
            "pipeline": pipe.method,
            "new_business": models["new_business"].method,
            "repeat": result["diagnostics"]["repeat"].get("method"),
        },
        "data": {
            "pipeline": pipe.data_,
            "new_business": models["new_business"].data_,
            "open_deals": len(deals),
        },
        "tables": tables,
    }
    if result.get("marketing") is not None:
        params["marketing"] = result["marketing"]
    return Snapshot(
        as_of=pd.Timestamp(as_of).date(),
        horizon=int(horizon),
        period=period,
        quantiles=q,
        draws=snap_draws,
        coords={
            "period": axis.labels,
            "source": list(SOURCES),
            "group": groups,
            "deal_id": deal_ids,
        },
        dims=dims,
        parameters=params,
        diagnostics={
            "ok": all(v["ok"] for v in diag_models.values()),
            "models": diag_models,
            "messages": messages,
        },
        label=label or f"forecast as of {pd.Timestamp(as_of).date()} ({method})",
    )


def run_forecast(
    store,
    *,
    as_of: object,
    horizon: int,
    period: str = "M",
    draws: int = 1000,
    target: object = None,
    seed: int = 0,
    method: str = "map",
    progress: bool = False,
    label: str | None = None,
    save: bool = True,
    include_repeat: bool = True,
    plan: pd.DataFrame | str | None = None,
    mmm: Any = None,
) -> Snapshot:
    """Fit the models on the store's data as of a day, forecast, and save the snapshot.

    Parameters
    ----------
    store
        A :class:`crmkit.Store`.
    as_of
        The day of the forecast (data after it are ignored).
    horizon
        Number of periods.
    period
        ``"M"`` or ``"Q"``.
    draws
        Number of forecast draws.
    target
        Revenue target per period (number or ``{period_label: amount}``), or None.
    seed
        Random seed.
    method
        ``"map"`` (seconds; Laplace approximation), ``"nuts"`` (nutpie; minutes) or ``"advi"``.
    progress
        Show sampling progress.
    label
        Snapshot label.
    save
        Save the snapshot in the store.
    include_repeat
        Forecast repeat revenue from orders (BG/NBD + Gamma-Gamma).
    plan
        Planned marketing spend: a DataFrame (long ``channel, week_start, spend`` like the
        ``channel_spend`` table, or wide ``date`` plus a column per channel), a CSV path,
        or ``"campaigns"`` for the campaigns in the store. Weeks and channels it does not
        name follow the baseline (the last 13 weeks' average spend), so the baseline plan
        gives the forecast without a plan. Its extra new deals against the baseline enter
        the new-business arrivals only (``docs/marketing.md``). None: no marketing input.
    mmm
        A fitted :class:`~crmkit.models.marketing.MarketingMixModel` on weekly new deals
        for the plan; by default one is fitted on the store's ``channel_spend`` and deals
        up to ``as_of`` (``method`` ``"nuts"`` samples it, otherwise MAP + Laplace).

    Returns
    -------
    Snapshot
        The saved snapshot (with ``snapshot_id`` when saved).
    """
    if int(draws) < 10:
        raise CrmkitError(f"draws must be at least 10, not {draws!r}")
    frames = load_frames(store, marketing=plan is not None)
    if frames["deals"].empty:
        raise CrmkitError("the store has no deals to forecast from")
    models = fit_models(frames, as_of=as_of, method=method, seed=seed, progress=progress)
    if plan is not None:
        from crmkit.forecast_marketing import fit_marketing

        models["marketing"] = (
            mmm
            if mmm is not None
            else fit_marketing(frames, as_of=as_of, method=method, seed=seed, progress=progress)
        )
    result = forecast_draws(
        models,
        frames,
        as_of=as_of,
        horizon=horizon,
        period=period,
        draws=draws,
        seed=seed,
        include_repeat=include_repeat,
        repeat_method="map" if method == "nuts" else method,
        plan=plan,
    )
    snap = build_snapshot(
        result,
        models,
        as_of=as_of,
        horizon=horizon,
        period=period,
        draws=draws,
        seed=seed,
        method=method,
        target=target,
        label=label,
    )
    from crmkit.snapshot_tables import extra_tables

    snap.parameters.setdefault("tables", {}).update(
        extra_tables(snap, frames, open_deals=result["deals"], campaigns=store.read("campaigns"))
    )
    if save:
        store.save_snapshot(snap)
    return snap


def forecast_to_json(snapshot: Snapshot) -> dict[str, Any]:
    """The CLI's JSON: for each period, p10 / p50 / p90 per source and total, and P(target).

    Returns
    -------
    dict
        ``{"as_of", "horizon", "period", "snapshot_id", "diagnostics_ok", "periods": [{"period",
        "pipeline": {"p10", "p50", "p90", "mean"}, "new_business": {...}, "repeat": {...},
        "total": {...}, "closed_to_date", ["target", "p_target"]}]}``.
    """
    q = snapshot.quantiles
    q = q[(q["group_by"] == "all")]
    periods = []
    labels = snapshot.coords.get("period") or list(dict.fromkeys(q["period"]))
    for p in labels:
        entry: dict[str, Any] = {"period": p}
        rows = q[q["period"] == p].set_index("source")
        for s in SOURCES:
            r = rows.loc[s]
            entry[s] = {k: float(r[k]) for k in ("p10", "p50", "p90", "mean")}
        tot = rows.loc["total"]
        entry["closed_to_date"] = float(tot["closed_to_date"])
        if pd.notna(tot.get("target", np.nan)):
            entry["target"] = float(tot["target"])
            entry["p_target"] = float(tot["p_target"])
        periods.append(entry)
    return {
        "as_of": str(snapshot.as_of),
        "horizon": int(snapshot.horizon),
        "period": snapshot.period,
        "snapshot_id": snapshot.snapshot_id,
        "diagnostics_ok": bool(snapshot.diagnostics.get("ok", False)),
        "periods": periods,
    }


def compare_snapshots(
    old: Snapshot, new: Snapshot, deals: pd.DataFrame | None = None
) -> dict[str, pd.DataFrame]:
    """How the forecast moved between two snapshots, and why.

    Parameters
    ----------
    old, new
        Two forecast snapshots (``old`` made earlier).
    deals
        Current deals (``store.read("deals")``), to tell won from lost among the deals that
        left the pipeline; without them they count as ``closed``.

    Returns
    -------
    dict of DataFrame
        ``"periods"``: per period in both, total mean and p50 before and after;
        ``"reasons"``: per reason (``won``, ``lost``, ``closed``, ``added``, ``slipped``,
        ``pulled in``, ``amount changed``, ``stage changed``, ``re-estimated``,
        ``new_business``, ``repeat``) the number of deals and the change of expected revenue;
        ``"deals"``: the per-deal changes.
    """

    def deal_table(s: Snapshot) -> pd.DataFrame:
        d = s.draws
        return pd.DataFrame(
            {
                "deal_id": s.coords.get("deal_id", []),
                "expected": d.get("deal_expected", np.array([])),
                "amount": d.get("deal_amount", np.array([])),
                "month": d.get("deal_expected_month", np.array([], np.int64)),
                "stage": d.get("deal_stage", np.array([], str)),
            }
        ).set_index("deal_id")

    a, b = deal_table(old), deal_table(new)
    j = a.merge(b, how="outer", left_index=True, right_index=True, suffixes=("_old", "_new"))
    status = deals.set_index("deal_id")["status"] if deals is not None else pd.Series(dtype=str)
    reasons = []
    for did, r in j.iterrows():
        if pd.isna(r["expected_new"]):
            st = status.get(did)
            reasons.append(st if st in ("won", "lost") else "closed")
        elif pd.isna(r["expected_old"]):
            reasons.append("added")
        elif r["month_new"] > r["month_old"]:
            reasons.append("slipped")
        elif r["month_new"] < r["month_old"]:
            reasons.append("pulled in")
        elif r["amount_new"] != r["amount_old"]:
            reasons.append("amount changed")
        elif r["stage_new"] != r["stage_old"]:
            reasons.append("stage changed")
        else:
            reasons.append("re-estimated")
    j["reason"] = reasons
    j["delta"] = j["expected_new"].fillna(0.0) - j["expected_old"].fillna(0.0)
    summary = (
        j.groupby("reason")
        .agg(deals=("delta", "size"), delta_expected=("delta", "sum"))
        .reset_index()
    )
    common = [p for p in old.coords["period"] if p in new.coords["period"]]
    rows = []
    for src in ("new_business", "repeat"):
        delta = 0.0
        for p in common:
            delta += _mean(new, p, src) - _mean(old, p, src)
        rows.append({"reason": src, "deals": 0, "delta_expected": delta})
    summary = pd.concat([summary, pd.DataFrame(rows)], ignore_index=True)
    periods = pd.DataFrame(
        [
            {
                "period": p,
                "mean_old": _mean(old, p, "total"),
                "mean_new": _mean(new, p, "total"),
                "p50_old": _q(old, p, "p50"),
                "p50_new": _q(new, p, "p50"),
            }
            for p in common
        ]
    )
    if len(periods):
        periods["change"] = periods["mean_new"] - periods["mean_old"]
    return {"periods": periods, "reasons": summary, "deals": j.reset_index()}


def _mean(s: Snapshot, period: str, source: str) -> float:
    """Mean of one source for group all in one period."""
    arr = s.draws["rollup"]
    return float(
        arr[
            :,
            s.coords["period"].index(period),
            s.coords["source"].index(source),
            s.coords["group"].index("all"),
        ].mean()
    )


def _q(s: Snapshot, period: str, col: str) -> float:
    """A quantile of the total for group all."""
    q = s.quantiles
    r = q[(q["group_by"] == "all") & (q["source"] == "total") & (q["period"] == period)]
    return float(r[col].iloc[0]) if len(r) else float("nan")


__all__ = [
    "QUANTILES",
    "SOURCES",
    "build_snapshot",
    "compare_snapshots",
    "fit_models",
    "forecast_draws",
    "forecast_to_json",
    "period_axis",
    "probability_of_target",
    "quantile_table",
    "run_forecast",
]
