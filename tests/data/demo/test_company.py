"""The demo company: schema, integrity, determinism, and its stated truth showing in its data.

Statistical checks compare an observed count or mean with the value the truth implies and
allow ``Z`` standard errors, the standard error derived from the sample size (binomial or
Poisson variance, or the sample variance of independent units). The expected values are
recomputed here from the truth's parameters and formulas, not taken from the generator.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, hyp2f1, logit

from crmkit.data.demo.company import (
    DEMO_ENTITIES,
    TRUTH_KEY,
    build_demo,
    generate_demo,
    true_win_probability,
)
from crmkit.errors import ValidationError
from crmkit.store import Store
from crmkit.store.schema import DEAL_TRACKED_FIELDS, entity
from crmkit.store.validation import validate

#: Standard errors allowed between an observed statistic and its expectation.
Z = 4.0


@pytest.fixture(scope="module")
def demo():
    return generate_demo()


@pytest.fixture(scope="module")
def frames(demo):
    return demo.frames


@pytest.fixture(scope="module")
def truth(demo):
    return demo.truth


def _end(truth) -> pd.Timestamp:
    return pd.Timestamp(truth["period"]["end_exclusive"])


# ---------------------------------------------------------------- schema and integrity
def test_frames_have_the_schema_columns_and_types(frames):
    assert tuple(frames) == DEMO_ENTITIES
    for name, df in frames.items():
        spec = entity(name)
        assert list(df.columns) == spec.column_names, name
        assert len(df) > 0, name
        for c in spec.columns:
            s = df[c.name]
            if c.kind in ("datetime", "date"):
                assert s.dtype == "datetime64[ns]", (name, c.name, s.dtype)
            elif c.kind == "float":
                assert s.dtype == "float64", (name, c.name, s.dtype)
            elif c.kind == "int":
                assert s.dtype == "Int64", (name, c.name, s.dtype)
            else:
                assert pd.api.types.is_string_dtype(s), (name, c.name, s.dtype)
            if c.required:
                assert s.notna().all(), (name, c.name)
            if c.choices:
                assert set(s.dropna()) <= set(c.choices), (name, c.name)
            if c.min_value is not None:
                assert (s.dropna() >= c.min_value).all(), (name, c.name)
            if c.max_value is not None:
                assert (s.dropna() <= c.max_value).all(), (name, c.name)
            if c.kind == "date":
                assert (s.dropna() == s.dropna().dt.normalize()).all(), (name, c.name)


def test_keys_are_unique_and_references_resolve(frames):
    for name, df in frames.items():
        spec = entity(name)
        assert not df.duplicated(list(spec.key)).any(), name
        for c in spec.columns:
            if c.references:
                ref_entity, ref_col = c.references.split(".")
                values = df[c.name].dropna()
                assert values.isin(frames[ref_entity][ref_col]).all(), (name, c.name)
    stages = set(zip(frames["stages"]["pipeline"], frames["stages"]["stage"], strict=True))
    deals = frames["deals"]
    assert set(zip(deals["pipeline"], deals["stage"], strict=True)) <= stages


def test_every_frame_passes_the_store_validator(frames):
    keys: dict[str, set] = {}
    for name in DEMO_ENTITIES:
        result = validate(name, frames[name], known_keys=lambda ref: keys.get(ref, set()))
        assert result.ok, (name, result.errors[:5])
        spec = entity(name)
        df = frames[name]
        if len(spec.key) == 1:
            keys[name] = set(df[spec.key[0]])
        else:
            keys[name] = set(zip(*(df[k] for k in spec.key), strict=True))


def test_times_respect_the_period_and_causality(frames, truth):
    start, end = pd.Timestamp(truth["period"]["start"]), _end(truth)
    acc = frames["accounts"].set_index("account_id")["created_at"]
    deals, orders = frames["deals"], frames["orders"]
    for name, col in [
        ("accounts", "created_at"),
        ("deals", "created_at"),
        ("deals", "closed_at"),
        ("deal_history", "changed_at"),
        ("activities", "at"),
        ("orders", "ordered_at"),
        ("forecast_calls", "created_at"),
    ]:
        s = frames[name][col].dropna()
        assert s.min() >= start and s.max() < end, (name, col)
    assert (deals["created_at"] >= acc.loc[deals["account_id"]].to_numpy()).all()
    assert (orders["ordered_at"] >= acc.loc[orders["account_id"]].to_numpy()).all()
    closed = deals["status"] != "open"
    assert (deals["closed_at"].notna() == closed).all()
    assert (deals.loc[closed, "closed_at"] >= deals.loc[closed, "created_at"]).all()
    assert deals.loc[deals["status"] == "lost", "lost_reason"].notna().all()
    assert deals.loc[deals["status"] != "lost", "lost_reason"].isna().all()
    assert (deals["status"] == "open").sum() > 0, "some deals must be censored at the end"


def test_history_replays_to_the_current_deal_values(frames):
    deals = frames["deals"].set_index("deal_id")
    hist = frames["deal_history"].sort_values(["deal_id", "changed_at", "history_id"])
    assert set(hist["field"]) == set(DEAL_TRACKED_FIELDS)
    first = hist.groupby(["deal_id", "field"]).head(1)
    assert first["old_value"].isna().all()
    assert len(first) == len(deals) * len(DEAL_TRACKED_FIELDS)
    assert (first["changed_at"].to_numpy() == deals.loc[first["deal_id"], "created_at"]).all()
    # each change starts from the previous value of the same field
    prev = hist.groupby(["deal_id", "field"])["new_value"].shift()
    later = prev.notna()
    assert (hist.loc[later, "old_value"] == prev[later]).all()
    last = hist.groupby(["deal_id", "field"]).tail(1).set_index(["deal_id", "field"])["new_value"]
    current = {
        "stage": deals["stage"],
        "status": deals["status"],
        "amount": deals["amount"].map(lambda v: repr(float(v))),
        "expected_close_date": deals["expected_close_date"].dt.strftime("%Y-%m-%d"),
        "forecast_category": deals["forecast_category"],
    }
    for f, values in current.items():
        got = last.xs(f, level="field").loc[deals.index]
        assert (got == values).all(), f
    # the owner records every change, stages move forward one at a time
    owner = deals.loc[hist["deal_id"], "owner"].to_numpy()
    assert (hist["changed_by"].to_numpy() == owner).all()
    order = {s: i for i, s in enumerate(frames["stages"]["stage"])}
    moves = hist[(hist["field"] == "stage") & hist["old_value"].notna()]
    step = moves["new_value"].map(order) - moves["old_value"].map(order)
    assert (step == 1).all()


def test_pushed_close_dates_had_passed(frames):
    hist = frames["deal_history"]
    push = hist[(hist["field"] == "expected_close_date") & hist["old_value"].notna()]
    assert len(push) > 0
    old = pd.to_datetime(push["old_value"])
    new = pd.to_datetime(push["new_value"])
    assert (push["changed_at"] >= old + pd.Timedelta(days=1)).all()
    assert (new > push["changed_at"].dt.normalize()).all()


def test_won_deals_create_orders(frames):
    deals, orders = frames["deals"], frames["orders"]
    won = deals[deals["status"] == "won"].set_index("deal_id")
    from_deals = orders[orders["deal_id"].notna()].set_index("deal_id").loc[won.index]
    assert len(from_deals) == len(won) == orders["deal_id"].notna().sum()
    assert (from_deals["account_id"] == won["account_id"]).all()
    assert (from_deals["ordered_at"] == won["closed_at"]).all()
    assert np.allclose(from_deals["amount"], won["amount"])


def test_campaigns_add_up_to_channel_spend(frames, truth):
    camps, spend, deals = frames["campaigns"], frames["channel_spend"], frames["deals"]
    assert set(spend["channel"]) == set(truth["marketing"]["channels"])
    by_channel = spend.groupby("channel")["spend"].sum()
    cost = camps.groupby("channel")["cost"].sum()
    assert np.allclose(by_channel.loc[cost.index], cost, rtol=0, atol=0.01 * len(camps))
    assert (
        spend.groupby("channel").size() == len(truth["arrivals"]["weekly_expected"]["week_start"])
    ).all()
    assert (camps["end_date"] >= camps["start_date"]).all()
    # a campaign's deals are created while its spend (or carry-over) acts, from its channel
    tagged = deals[deals["campaign_id"].notna()].merge(camps, on="campaign_id")
    assert (tagged["created_at"] >= tagged["start_date"]).all()
    source = {c: v["source"] for c, v in truth["marketing"]["channels"].items()}
    assert (tagged["source"] == tagged["channel"].map(source)).all()
    assert (
        deals.loc[deals["campaign_id"].isna(), "source"]
        .isin(truth["arrivals"]["organic"]["source_probabilities"])
        .all()
    )


# ---------------------------------------------------------------- determinism and truth
def test_same_seed_same_company_and_other_seed_differs():
    a = generate_demo(n_customers=300, n_deals=400, seed=7)
    b = generate_demo(n_customers=300, n_deals=400, seed=7)
    c = generate_demo(n_customers=300, n_deals=400, seed=8)
    for name in DEMO_ENTITIES:
        pd.testing.assert_frame_equal(a.frames[name], b.frames[name])
    assert json.dumps(a.truth, sort_keys=True) == json.dumps(b.truth, sort_keys=True)
    assert not a.frames["orders"]["amount"].equals(c.frames["orders"]["amount"])
    assert len(a.frames["accounts"]) == 300 and len(a.frames["deals"]) == 400


def test_truth_is_json_and_complete(truth):
    back = json.loads(json.dumps(truth))
    assert back == truth
    assert truth["period"]["as_of"] == "2026-10-31"
    assert set(truth["customers"]["segments"]) == {"SMB", "Mid-Market", "Enterprise"}
    stages = truth["pipeline"]["stages"]
    assert [s["configured_probability"] for s in stages] == [0.10, 0.25, 0.60, 0.80]
    # the configured probabilities are deliberately not the true ones
    assert any(
        abs(s["configured_probability"] - s["win_probability_population"]) > 0.1 for s in stages
    )
    for ch in truth["marketing"]["channels"].values():
        assert 0 <= ch["adstock"]["decay"] < 1 and ch["saturation"]["half_saturation"] > 0


def test_bad_sizes_are_rejected():
    with pytest.raises(ValidationError, match="n_customers"):
        generate_demo(n_customers=0)
    with pytest.raises(ValidationError, match="end"):
        generate_demo(start="2024-01-01", end="2023-01-01")
    with pytest.raises(ValidationError, match="not a date"):
        generate_demo(start="first of May")


# ---------------------------------------------------------------- the truth in the data
def _deal_win_probability(deals: pd.DataFrame, truth: dict) -> np.ndarray:
    """P(win) of each deal from its team, owner, segment and source, by the truth's formula."""
    pl = truth["pipeline"]
    eta = _offsets(deals, truth)
    prog = np.array([s["progression_probability_reference"] for s in pl["stages"]])
    return np.prod(expit(logit(prog)[None, :] + eta[:, None]), axis=1)


@pytest.fixture(scope="module")
def settled_deals(frames, truth):
    """Deals created at least a year before the end: all closed, so no censoring."""
    deals = frames["deals"].merge(
        frames["accounts"][["account_id", "segment"]], on="account_id", how="left"
    )
    old = deals[deals["created_at"] < _end(truth) - pd.Timedelta(days=365)].copy()
    assert (old["status"] != "open").mean() > 0.995
    old = old[old["status"] != "open"]
    old["p_win"] = _deal_win_probability(old, truth)
    return old


def test_observed_win_rates_per_team_match_the_truth(settled_deals):
    rates = {}
    for team, g in settled_deals.groupby("team"):
        won = (g["status"] == "won").sum()
        expected = g["p_win"].sum()
        se = np.sqrt((g["p_win"] * (1 - g["p_win"])).sum())
        assert abs(won - expected) < Z * se, (team, won, expected, se)
        rates[team] = won / len(g)
    assert rates["Strategic"] > rates["West"]


def test_stage_progression_matches_the_truth(frames, settled_deals, truth):
    hist = frames["deal_history"]
    moves = hist[(hist["field"] == "stage") & hist["deal_id"].isin(settled_deals["deal_id"])]
    stages = [s["stage"] for s in truth["pipeline"]["stages"]]
    reached = {s: set(moves.loc[moves["new_value"] == s, "deal_id"]) for s in stages}
    won = set(settled_deals.loc[settled_deals["status"] == "won", "deal_id"])
    # P(advance from stage k) for the deals that reached k, expected from their offsets
    pl = truth["pipeline"]
    for k, st in enumerate(stages):
        ids = list(reached[st])
        g = settled_deals.set_index("deal_id").loc[ids]
        prog = pl["stages"][k]["progression_probability_reference"]
        offs = _offsets(g, truth)
        p = expit(logit(prog) + offs)
        nxt = reached[stages[k + 1]] if k + 1 < len(stages) else won
        moved = len(set(ids) & nxt)
        se = np.sqrt((p * (1 - p)).sum())
        assert abs(moved - p.sum()) < Z * se, (st, moved, p.sum(), se)


def _offsets(g: pd.DataFrame, truth: dict) -> np.ndarray:
    """Log-odds offset of each deal: team + owner + segment + source."""
    pl = truth["pipeline"]
    owner_off = {o: v["win_log_odds"] for t in pl["teams"].values() for o, v in t["owners"].items()}
    return (
        g["team"].map({t: v["win_log_odds"] for t, v in pl["teams"].items()})
        + g["owner"].map(owner_off)
        + g["segment"].map(pl["segment_win_log_odds"])
        + g["source"].map(pl["source_win_log_odds"])
    ).to_numpy()


def test_realised_to_listed_amount_ratio(frames, truth):
    hist = frames["deal_history"]
    rows = hist[(hist["field"] == "amount") & hist["old_value"].notna()]
    ratio = rows["new_value"].astype(float) / rows["old_value"].astype(float)
    rt = truth["pipeline"]["amount"]["realised_ratio"]
    mean = np.exp(rt["mu"] + rt["sigma"] ** 2 / 2)
    se = ratio.std() / np.sqrt(len(ratio))
    assert len(ratio) > 100
    assert abs(ratio.mean() - mean) < Z * se
    assert abs(np.log(ratio).std() - rt["sigma"]) < Z * rt["sigma"] / np.sqrt(2 * len(ratio))


def _bgnbd_expected(t: np.ndarray, r: float, alpha: float, a: float, b: float) -> np.ndarray:
    """Expected repeat purchases in (0, t] (Fader, Hardie & Lee 2005, eq. 9)."""
    z = t / (alpha + t)
    return (a + b - 1) / (a - 1) * (1 - (alpha / (alpha + t)) ** r * hyp2f1(r, b, a + b - 1, z))


def _operational_weeks(created: pd.Series, truth: dict) -> np.ndarray:
    """Seasonally weighted weeks from each acquisition to the period end, by the truth."""
    season = truth["customers"]["purchase_seasonality"]
    amp, peak = season["amplitude"], season["peak_year_fraction"]
    origin = pd.Timestamp("2000-01-01")

    def integral(ts: np.ndarray) -> np.ndarray:
        days = (ts - origin.to_datetime64()) / np.timedelta64(1, "D")
        u = days / 365.25
        return days + amp * 365.25 / (2 * np.pi) * np.sin(2 * np.pi * (u - peak))

    end = np.datetime64(_end(truth).to_datetime64())
    return (integral(np.full(len(created), end)) - integral(created.to_numpy())) / 7.0


def test_segment_purchase_counts_follow_bgnbd(frames, truth):
    acc = frames["accounts"]
    orders = frames["orders"]
    repeat = orders[orders["deal_id"].isna()].groupby("account_id").size() - 1
    acc = acc.assign(repeat=acc["account_id"].map(repeat).fillna(0).to_numpy())
    assert (acc["repeat"] >= 0).all()
    for seg, g in acc.groupby("segment"):
        par = truth["customers"]["segments"][seg]["bgnbd"]
        expected = _bgnbd_expected(_operational_weeks(g["created_at"], truth), **par)
        se = g["repeat"].std() * np.sqrt(len(g))
        assert abs(g["repeat"].sum() - expected.sum()) < Z * se, (seg, g["repeat"].sum())
    means = acc.groupby("segment")["repeat"].mean()
    assert means["Enterprise"] > means["SMB"]


def test_first_order_values_follow_gamma_gamma(frames, truth):
    orders = frames["orders"]
    first = orders[orders["deal_id"].isna()].sort_values("ordered_at").groupby("account_id").head(1)
    first = first.merge(frames["accounts"][["account_id", "segment"]], on="account_id")
    for seg, g in first.groupby("segment"):
        gg = truth["customers"]["segments"][seg]["gamma_gamma"]
        mean = gg["p"] * gg["gamma"] / (gg["q"] - 1)
        se = g["amount"].std() / np.sqrt(len(g))
        assert abs(g["amount"].mean() - mean) < Z * se, (seg, g["amount"].mean(), mean)


def test_segment_shares(frames, truth):
    acc = frames["accounts"]
    n = len(acc)
    for seg, v in truth["customers"]["segments"].items():
        share = v["share"]
        assert abs((acc["segment"] == seg).sum() - n * share) < Z * np.sqrt(n * share * (1 - share))


def _week_index(ts: pd.Series, truth: dict) -> np.ndarray:
    weeks = pd.to_datetime(pd.Series(truth["arrivals"]["weekly_expected"]["week_start"]))
    return np.searchsorted(weeks.to_numpy(), ts.to_numpy(), side="right") - 1


def test_deal_arrivals_follow_the_expected_weekly_rate(frames, truth):
    weekly = truth["arrivals"]["weekly_expected"]
    expected = np.array(weekly["organic"]) + sum(np.array(v) for v in weekly["channels"].values())
    assert expected.sum() == pytest.approx(len(frames["deals"]), rel=1e-6)
    observed = np.bincount(
        _week_index(frames["deals"]["created_at"], truth), minlength=len(expected)
    )
    # per 13-week block (a quarter): Poisson counts (conditioning on the total only narrows them)
    blocks = np.arange(len(expected)) // 13
    obs_b = np.bincount(blocks, observed)
    exp_b = np.bincount(blocks, expected)
    assert (np.abs(obs_b - exp_b) < Z * np.sqrt(exp_b)).all()
    # the trend: the last year has clearly more deals than the first
    first, last = observed[:52].sum(), observed[-52:].sum()
    assert last - first > Z * np.sqrt(first + last)


def test_organic_rate_is_the_documented_formula(truth):
    org = truth["arrivals"]["organic"]
    start, end = pd.Timestamp(truth["period"]["start"]), pd.Timestamp(truth["period"]["end"])
    days = pd.date_range(start, end, freq="D")
    d = np.arange(len(days)) + 0.5
    u = ((start - pd.Timestamp("2000-01-01")).days + d) / 365.25
    qe = org["quarter_end"]
    to_q_end = (days.to_period("Q").end_time.normalize() - days).days.to_numpy()
    rate = (
        org["base_per_day"]
        * np.exp(
            org["trend_log_per_year"] * d / 365.25
            + org["seasonality"]["amplitude"]
            * np.cos(2 * np.pi * (u - org["seasonality"]["peak_year_fraction"]))
        )
        * np.where(to_q_end < qe["days"], qe["multiplier"], 1.0)
    )
    week = _week_index(pd.Series(days), truth)
    weekly = np.bincount(week, rate)
    assert np.allclose(weekly, truth["arrivals"]["weekly_expected"]["organic"], rtol=1e-6)


def test_marketing_effect_is_adstock_then_saturation_of_the_spend(frames, truth):
    spend = frames["channel_spend"]
    weeks = truth["arrivals"]["weekly_expected"]["week_start"]
    start, end_excl = pd.Timestamp(truth["period"]["start"]), _end(truth)
    monday = pd.to_datetime(pd.Series(weeks))
    days_in = (
        np.minimum(monday + pd.Timedelta(days=7), end_excl) - np.maximum(monday, start)
    ).dt.days.to_numpy()
    for ch, par in truth["marketing"]["channels"].items():
        x = spend[spend["channel"] == ch].sort_values("week_start")["spend"].to_numpy()
        a = np.zeros_like(x)
        carry = 0.0
        for i, v in enumerate(x):
            carry = v + par["adstock"]["decay"] * carry
            a[i] = carry
        k, h = par["saturation"]["shape"], par["saturation"]["half_saturation"]
        effect = par["max_deals_per_week"] * a**k / (a**k + h**k) * days_in / 7
        expected = truth["arrivals"]["weekly_expected"]["channels"][ch]
        assert np.allclose(effect, expected, rtol=1e-6, atol=1e-8)


def test_campaign_deals_per_channel_match_the_expected_effect(frames, truth):
    deals = frames["deals"]
    n = len(deals)
    for ch, par in truth["marketing"]["channels"].items():
        got = (deals["source"] == par["source"]).sum()
        e = par["expected_deals"]
        assert abs(got - e) < Z * np.sqrt(e * (1 - e / n)), (ch, got, e)


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.postgres)])
def demo_store(request: pytest.FixtureRequest):
    """An empty in-memory SQLite store, and a PostgreSQL one when CI provides a server."""
    if request.param == "memory":
        s = Store.open("sqlite://")
    else:
        s = Store.open(request.getfixturevalue("pg_schema_url"))
    yield s
    s.close()


def test_build_demo_writes_everything_in_the_store(demo_store):
    demo = build_demo(demo_store, n_customers=150, n_deals=200, seed=3)
    for name, df in demo.frames.items():
        assert demo_store.count(name) == len(df), name
    assert demo_store.get_meta(TRUTH_KEY) == demo.truth
    stored = demo_store.read("deals")
    pd.testing.assert_series_equal(
        stored["amount"].reset_index(drop=True), demo.frames["deals"]["amount"], check_names=False
    )
    # the history is the generator's (changed by owners), and later edits number after it
    assert (demo_store.read("deal_history")["changed_by"] != "demo").all()
    deals = demo.frames["deals"]
    open_deal = deals.loc[deals["status"] == "open", "deal_id"].iloc[0]
    demo_store.update(
        "deals", open_deal, {"status": "lost", "closed_at": pd.Timestamp("2026-10-31")}
    )
    hist = demo_store.read("deal_history", where={"deal_id": open_deal})
    assert demo_store.count("deal_history") == len(demo.frames["deal_history"]) + 1
    assert hist.sort_values("history_id")["new_value"].iloc[-1] == "lost"


def test_build_demo_rejects_a_store_that_already_holds_the_ids():
    with Store.open("sqlite://") as s:
        build_demo(s, n_customers=20, n_deals=10, seed=1)
        with pytest.raises(ValidationError):
            build_demo(s, n_customers=20, n_deals=10, seed=1)
        assert s.count("accounts") == 20


def _cycle_scale(deals: pd.DataFrame, truth: dict) -> np.ndarray:
    """Team x segment multiplier of every deal's stage durations."""
    pl = truth["pipeline"]
    team = deals["team"].map({t: v["cycle_time_multiplier"] for t, v in pl["teams"].items()})
    return (team * deals["segment"].map(pl["segment_cycle_time_multiplier"])).to_numpy()


def test_time_in_first_stage_is_gamma_with_the_true_mean(frames, settled_deals, truth):
    hist = frames["deal_history"]
    stages = truth["pipeline"]["stages"]
    nxt = hist[(hist["field"] == "stage") & (hist["new_value"] == stages[1]["stage"])]
    left = settled_deals["deal_id"].map(nxt.set_index("deal_id")["changed_at"])
    left = left.fillna(settled_deals["closed_at"])  # lost in the first stage
    days = (left - settled_deals["created_at"]).dt.total_seconds().to_numpy() / 86400
    ratio = days / (stages[0]["mean_days_reference"] * _cycle_scale(settled_deals, truth))
    shape = truth["pipeline"]["stage_duration"]["shape"]
    se = np.sqrt(1 / shape / len(ratio))  # Gamma(shape, mean 1) has variance 1 / shape
    assert abs(ratio.mean() - 1) < Z * se
    se_var = np.sqrt(((ratio - ratio.mean()) ** 2).var() / len(ratio))
    assert abs(ratio.var() - 1 / shape) < Z * se_var


def test_initial_close_dates_and_pushes_follow_the_truth(frames, settled_deals, truth):
    pl = truth["pipeline"]
    hist = frames["deal_history"]
    ecd = hist[hist["field"] == "expected_close_date"]
    first = ecd[ecd["old_value"].isna()].set_index("deal_id")["new_value"]
    d = settled_deals
    plan = (pd.to_datetime(d["deal_id"].map(first)) - d["created_at"]).dt.total_seconds() / 86400
    total_days = sum(s["mean_days_reference"] for s in pl["stages"])
    opt = d["team"].map({t: v["close_date_optimism"] for t, v in pl["teams"].items()})
    scale = opt.to_numpy() * total_days * _cycle_scale(d, truth)
    sd = pl["expected_close_date"]["log_sd"]
    lo, hi = plan.to_numpy() / scale, (plan.to_numpy() + 1) / scale  # the date floors the time
    se = lo.std() / np.sqrt(len(lo))
    assert lo.mean() - Z * se < np.exp(sd**2 / 2) < hi.mean() + Z * se
    # each push moves the date to the push day plus about push_mean_days (ceil adds < 1 day)
    push = ecd[ecd["old_value"].notna()].merge(frames["deals"][["deal_id", "team"]], on="deal_id")
    step = (pd.to_datetime(push["new_value"]) - push["changed_at"].dt.normalize()).dt.days
    for team, g in step.groupby(push["team"]):
        mean = pl["teams"][team]["push_mean_days"]
        se = g.std() / np.sqrt(len(g))
        assert mean - Z * se < g.mean() < mean + 1 + Z * se, (team, g.mean(), mean)


def test_true_win_probability_from_creation_matches_the_formula(frames, settled_deals, truth):
    at_creation = settled_deals.assign(stage=truth["pipeline"]["stages"][0]["stage"])
    p = true_win_probability(at_creation, frames["accounts"], truth)
    assert np.allclose(p.to_numpy(), settled_deals["p_win"].to_numpy())


def test_true_win_probability_is_calibrated_for_a_past_pipeline(frames, truth):
    as_of = _end(truth) - pd.Timedelta(days=365)
    deals, hist = frames["deals"], frames["deal_history"]
    was_open = (deals["created_at"] <= as_of) & ~(deals["closed_at"] <= as_of)
    then = deals[was_open].copy()
    moves = hist[(hist["field"] == "stage") & (hist["changed_at"] <= as_of)]
    then["stage"] = then["deal_id"].map(moves.groupby("deal_id")["new_value"].last())
    p = true_win_probability(then, frames["accounts"], truth).to_numpy()
    won = (then["status"] == "won").to_numpy()
    assert len(then) > 50 and (then["status"] != "open").all()
    assert abs(won.sum() - p.sum()) < Z * np.sqrt((p * (1 - p)).sum())
    stage = then["stage"].to_numpy()
    assert p[stage == "Negotiation"].mean() > p[stage == "Qualification"].mean()
