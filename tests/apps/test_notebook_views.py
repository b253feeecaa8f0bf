"""Notebook views: the fit warning box, results greyed under it, the repeat-purchase summary."""

from __future__ import annotations

import dataclasses

import ipywidgets as widgets
import numpy as np
import pandas as pd
import pytest
from IPython.display import HTML

from crmkit.apps import notebook_views as views
from crmkit.data.cdnow import simulate_bgnbd_gammagamma
from crmkit.errors import CrmkitError
from crmkit.models.clv.models import GammaGamma
from crmkit.models.inference.diagnostics import diagnostics
from crmkit.store import Store
from tests.notebook_runner import demo_database
from tests.snapshot_factory import make_fake_snapshot

#: The issue's notebook 04 fit: what the raw dict showed.
FAILED_NUTS = diagnostics(
    "nuts",
    ok=False,
    r_hat_max=1.03,
    ess_bulk_min=207.0,
    ess_tail_min=450.0,
    divergences=3,
    message="R-hat 1.03 > 1.01; bulk ESS 207 < 400; 3 divergences",
)
PASSED_NUTS = diagnostics(
    "nuts", ok=True, r_hat_max=1.004, ess_bulk_min=812.0, ess_tail_min=700.0, divergences=0
)


@pytest.fixture(scope="module")
def heavy_spend() -> pd.DataFrame:
    """Repeat buyers whose spend heterogeneity wants q < 1 (true q = 0.7)."""
    sim = simulate_bgnbd_gammagamma(3000, p=4.0, q=0.7, gamma=20.0, seed=22)
    return sim[sim["frequency"] > 0].reset_index(drop=True)


def test_fit_warning_for_failed_nuts_names_model_each_failure_and_what_to_do():
    box = views.fit_warning(FAILED_NUTS, name="marketing-mix model")
    assert isinstance(box, HTML)
    text = box.data
    assert 'class="crmkit-fit-warning"' in text and 'role="alert"' in text
    assert "marketing-mix model (nuts)" in text
    assert "R-hat 1.03 &gt; 1.01" in text
    assert "bulk ESS 207 &lt; 400" in text
    assert "3 divergences" in text
    assert "more draws and tuning steps" in text and "target_accept" in text
    assert "tail ESS" not in text  # 450 passed
    assert "{" not in text  # no raw diagnostics dict


def test_fit_warning_is_none_for_passing_diagnostics():
    assert views.fit_warning(PASSED_NUTS, name="marketing-mix model") is None
    assert views.fit_problems(PASSED_NUTS) == []


def test_fit_warning_for_an_approximation_that_failed_gives_its_message_and_method_advice():
    failed_map = diagnostics("map", ok=False, message="Hessian not positive definite <x>")
    text = views.fit_warning(failed_map, name="pipeline").data
    assert "pipeline (map): Hessian not positive definite &lt;x&gt;" in text
    assert "method=&#x27;nuts&#x27;" in text


def test_fit_warning_for_gamma_gamma_q_below_one(heavy_spend):
    gg = GammaGamma().fit(heavy_spend, method="mle")  # no prior: q < 1 here
    assert gg.params_["q"] < 1
    text = views.fit_warning(gg).data
    assert "GammaGamma (mle)" in text
    assert f"q = {gg.params_['q']:.3g} &lt;= 1" in text
    assert "mean spend of customers without repeat purchases" in text
    assert "repeat orders only" in text


def test_fit_warning_for_gamma_gamma_q_pressed_against_its_bound(heavy_spend):
    gg = GammaGamma(random_seed=0).fit(heavy_spend, method="map")
    assert gg.params_["q"] > 1  # the default prior keeps q > 1 ...
    text = views.fit_warning(gg).data  # ... and the check says the data want less
    assert "pressed against its bound 1" in text


def test_fit_warning_is_none_for_a_gamma_gamma_fit_with_q_well_above_one():
    sim = simulate_bgnbd_gammagamma(2000, seed=5)
    gg = GammaGamma(random_seed=0).fit(sim[sim["frequency"] > 0], method="map")
    assert views.fit_warning(gg) is None


def test_fit_warning_of_a_snapshot_names_each_failed_model():
    snap = make_fake_snapshot()
    diag = {
        "ok": False,
        "models": {"pipeline": PASSED_NUTS, "repeat": FAILED_NUTS},
        "messages": [],
    }
    text = views.fit_warning(dataclasses.replace(snap, diagnostics=diag)).data
    assert "repeat model (nuts)" in text and "pipeline model" not in text
    ok = {"ok": True, "models": {"pipeline": PASSED_NUTS}, "messages": []}
    assert views.fit_warning(dataclasses.replace(snap, diagnostics=ok)) is None


def test_fit_warning_of_an_unfitted_model_is_a_one_line_error():
    with pytest.raises(CrmkitError, match="GammaGamma is not fitted"):
        views.fit_warning(GammaGamma())


def test_checked_greys_a_table_under_the_warning_when_a_fit_failed():
    table = pd.DataFrame({"segment": ["SMB"], "clv_total": [123.0]})
    shown = views.checked(table, FAILED_NUTS)
    assert isinstance(shown, HTML)
    html = shown.data
    assert html.index("crmkit-fit-warning") < html.index("crmkit-unreliable")
    assert "opacity:0.4" in html and "clv_total" in html
    series = views.checked(pd.Series({"mean": 1.0}, name="gain"), FAILED_NUTS)
    assert "crmkit-unreliable" in series.data


def test_checked_returns_the_table_itself_when_every_fit_passed():
    table = pd.DataFrame({"segment": ["SMB"], "clv_total": [123.0]})
    assert views.checked(table, PASSED_NUTS, PASSED_NUTS) is table


def test_checked_puts_a_widget_under_the_warning():
    panel = widgets.Label("contributions")
    shown = views.checked(panel, FAILED_NUTS)
    assert isinstance(shown, widgets.VBox)
    assert "crmkit-fit-warning" in shown.children[0].value and shown.children[1] is panel
    assert views.checked(panel, PASSED_NUTS) is panel


def test_repeat_purchase_summary_leaves_out_orders_of_deals(tmp_path):
    db = demo_database(tmp_path / "demo.db", n_customers=120, n_deals=150, seed=2)
    with Store.open(db) as store:
        orders = store.read("orders")
        summary = views.repeat_purchase_summary(store, "2026-10-31")
    repeat = orders[orders["deal_id"].isna() & (orders["ordered_at"] <= "2026-10-31 23:59:59")]
    assert orders["deal_id"].notna().any()
    assert set(summary["customer_id"]) == set(repeat["account_id"].astype(str))
    per_day = repeat.assign(day=pd.to_datetime(repeat["ordered_at"]).dt.normalize())
    n_days = per_day.groupby("account_id")["day"].nunique()
    freq = summary.set_index("customer_id")["frequency"]
    np.testing.assert_array_equal(freq.sort_index().to_numpy(), (n_days - 1).sort_index())


def _ppc(misses: dict[str, int], n: int = 10) -> pd.DataFrame:
    """A posterior predictive check table with ``misses[check]`` rows outside P5–P95."""
    rows = [
        {"check": check, "label": f"L{i}", "observed": 1.0, "p05": 0.0, "p10": 0.0,
         "p50": 1.0, "p90": 2.0, "p95": 2.0, "inside80": i >= k, "inside90": i >= k}
        for check, k in misses.items() for i in range(n)
    ]  # fmt: skip
    return pd.DataFrame(rows)


def test_ppc_warning_names_each_check_missing_more_than_a_fifth_and_how_many():
    table = _ppc({"monthly won revenue": 3, "wins per stage": 2, "new deals per month": 5})
    box = views.ppc_warning(table)
    assert isinstance(box, HTML)
    assert "crmkit-ppc-warning" in box.data and 'role="alert"' in box.data
    assert "monthly won revenue: 3 of 10 observed values (30%)" in box.data
    assert "new deals per month: 5 of 10" in box.data
    assert "wins per stage" not in box.data  # 2 of 10 is within 20%
    assert views.ppc_problems(table)[0].startswith("monthly won revenue")


def test_ppc_warning_is_none_when_every_check_is_fine_or_there_are_none():
    assert views.ppc_warning(_ppc({"monthly won revenue": 2, "wins per stage": 0})) is None
    assert views.ppc_warning(_ppc({}).iloc[:0]) is None


def test_ppc_warning_escapes_check_names():
    box = views.ppc_warning(_ppc({"<b>weekly</b>": 9}))
    assert "&lt;b&gt;weekly&lt;/b&gt;: 9 of 10" in box.data and "<b>weekly" not in box.data


def test_ppc_warning_names_a_check_that_could_not_run_and_why():
    missing = pd.DataFrame(
        [{"check": "repeat purchases per week", "reason": "the repeat model could not be fitted"}]
    )
    box = views.ppc_warning(_ppc({"monthly won revenue": 0}), missing=missing)
    assert box is not None and "crmkit-ppc-warning" in box.data
    assert (
        "repeat purchases per week: not checked: the repeat model could not be fitted" in box.data
    )
    # with no check table at all, the missing check is still named
    assert views.ppc_problems(_ppc({}).iloc[:0], missing=missing) == [
        "repeat purchases per week: not checked: the repeat model could not be fitted"
    ]
    assert views.ppc_warning(_ppc({"monthly won revenue": 0}), missing=missing.iloc[:0]) is None


def test_short_backtest_gives_the_model_one_line_against_the_run_rate(tmp_path):
    db = demo_database(tmp_path / "demo.db", n_customers=120, n_deals=300, seed=2)
    with Store.open(db) as store:
        out = views.short_backtest(store, as_of="2026-06-30", origins=4, horizon=1, draws=100)
    assert not {"crps_diff", "crps_diff_lo", "crps_diff_hi"} & set(out.columns)
    model = out[out["forecaster"] == "model"]["vs_run_rate"].tolist()
    assert len(model) == 2  # leads "1" and "1-1"
    assert all(line.startswith("better than run rate: ") for line in model)
    assert all("90% interval" in line and "\n" not in line for line in model)
    assert set(out[out["forecaster"] != "model"]["vs_run_rate"]) == {""}


@pytest.mark.parametrize(
    ("verdict", "expected"),
    [
        ("better", "better than run rate: yes (CRPS difference −36k, 90% interval −68k to −4.6k)"),
        ("worse", "better than run rate: no (CRPS difference −36k, 90% interval −68k to −4.6k)"),
        (
            "not distinguishable",
            "better than run rate: not distinguishable (CRPS difference −36k, 90% interval −68k "
            "to −4.6k); with 3 origins only a large difference would show",
        ),
        (
            "too few origins",
            "better than run rate: too few origins to tell (3 origins; at least 4 needed)",
        ),
    ],
    ids=["better", "worse", "not_distinguishable", "too_few_origins"],
)
def test_run_rate_verdict_says_it_in_one_short_line(verdict, expected):
    row = {"vs_run_rate": verdict, "crps_diff": -36041.2, "crps_diff_lo": -68284.6,
           "crps_diff_hi": -4555.1, "origins": 3}  # fmt: skip
    assert views.run_rate_verdict(row) == expected


def test_run_rate_verdict_is_none_without_a_comparison():
    assert views.run_rate_verdict({"forecaster": "run_rate", "vs_run_rate": None}) is None
    assert views.run_rate_verdict({"forecaster": "model", "crps": 1.0}) is None


def test_run_rate_verdict_of_an_interval_across_zero_shows_both_signs():
    row = {"vs_run_rate": "not distinguishable", "crps_diff": 3759.3, "crps_diff_lo": -27397.9,
           "crps_diff_hi": 32393.5, "origins": 19}  # fmt: skip
    assert views.run_rate_verdict(row) == (
        "better than run rate: not distinguishable (CRPS difference +3.8k, 90% interval −27k "
        "to +32k)"
    )
