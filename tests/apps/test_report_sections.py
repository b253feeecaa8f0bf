"""The report's sections built as HTML from data (no notebook run)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from crmkit.apps.report_sections import call_backtest_html


def _rows(with_call: bool) -> pd.DataFrame:
    rows = [
        ("2024-01-20", "all", "model", 100.0, 90.0, 5.0, 1.0, 1.0),
        ("2024-01-20", "all", "commit", 100.0, 130.0, None, None, None),
        ("2024-01-20", "team=<East>", "model", 40.0, 50.0, 4.0, 1.0, 0.0),
        ("2024-01-20", "team=<East>", "commit", 40.0, 45.0, None, None, None),
    ]
    if with_call:
        rows.append(("2024-01-20", "team=<East>", "manager_call", 40.0, 30.0, None, None, None))
    cols = ["origin", "group", "forecaster", "outcome", "point", "crps", "cover80", "cover50"]
    df = pd.DataFrame(rows, columns=cols).astype({c: float for c in cols[5:]})
    df["period"] = "2024-01"
    df["error"] = df["point"] - df["outcome"]
    df["abs_error"] = df["error"].abs()
    df["hit"] = (df["outcome"] >= df["point"]).astype(float)
    return df


def test_call_backtest_html_names_the_forecasters_and_the_managers_groups() -> None:
    markup = call_backtest_html(_rows(with_call=True))
    assert "crmkit-call-backtest-table" in markup and "crmkit-call-backtest-groups" in markup
    assert "Model (P50)" in markup and "Commit roll-up" in markup and "Manager" in markup
    assert "Best Case roll-up" not in markup  # only the forecasters scored are listed
    assert "team=&lt;East&gt;" in markup and "<East>" not in markup  # names are escaped


def test_call_backtest_html_without_manager_calls_has_no_group_table() -> None:
    markup = call_backtest_html(_rows(with_call=False))
    assert "crmkit-call-backtest-table" in markup
    assert "crmkit-call-backtest-groups" not in markup


def test_call_backtest_html_says_when_no_backtest_was_run() -> None:
    for empty in (None, _rows(with_call=False).iloc[:0]):
        markup = call_backtest_html(empty)
        assert "No forecast-call backtest was run" in markup


def test_call_backtest_html_says_why_it_was_not_run(snap) -> None:
    from crmkit.apps import dashboard as db
    from crmkit.apps.report_sections import ReportContext

    ctx = ReportContext(
        snapshot=snap, previous=None, filter=db.Filter.from_mapping({}), db_url="x.db",
        refitted=False, call_backtest_note="pipeline model: no closed deals <before> 2020",
    )  # fmt: skip
    markup = call_backtest_html(ctx)
    assert "No forecast-call backtest was run" in markup
    assert "no closed deals &lt;before&gt; 2020" in markup


def test_report_headline_and_summary_say_the_currency_code(snap, monkeypatch) -> None:
    from crmkit.apps import dashboard as db
    from crmkit.apps import report_sections as rs

    snap = snap.__class__(**{**vars(snap), "parameters": {**snap.parameters, "currency": "EUR"}})
    shown: list[str] = []
    monkeypatch.setattr(rs, "_show", shown.append)
    ctx = rs.ReportContext(
        snapshot=snap, previous=None, filter=db.Filter.from_mapping({}), db_url="x.db",
        refitted=False,
    )  # fmt: skip
    rs.show_headline(ctx)
    assert "Revenue over the horizon in EUR" in shown[0] and 'data-currency="EUR"' in shown[0]
    assert rs.summary(ctx)["currency"] == "EUR"


def _checks_context(
    snap, *, tables: bool, refitted: bool, comparison=None, note=None, missing=None
):
    """A report context whose snapshot holds (or lacks) the model check tables."""
    from crmkit.apps import dashboard as db
    from crmkit.apps.report_sections import ReportContext

    extra = {} if missing is None else {"model_checks_missing": missing}
    if tables:
        checks = [
            {"check": check, "label": f"2026-{m:02d}", "observed": 10.0 + 50 * (m <= k),
             "p05": 5.0, "p10": 7.0, "p50": 10.0, "p90": 13.0, "p95": 15.0,
             "inside80": m > k, "inside90": m > k}
            for check, k in (("monthly won revenue", 4), ("wins per stage", 0))
            for m in range(1, 11)
        ]  # fmt: skip
        traces = [
            {"model": "pipeline", "parameter": "a", "chain": c, "draw": d, "value": float(d % 7)}
            for c in range(2) for d in range(30)
        ]  # fmt: skip
        extra = {**extra, "model_checks": checks, "model_traces": traces}
    params = {**snap.parameters, "tables": {**snap.parameters.get("tables", {}), **extra}}
    snap = snap.__class__(**{**vars(snap), "parameters": params})
    return ReportContext(
        snapshot=snap, previous=None, filter=db.Filter.from_mapping({}), db_url="x.db",
        refitted=refitted, model_comparison=comparison, model_comparison_note=note,
    )  # fmt: skip


def _comparison() -> pd.DataFrame:
    return pd.DataFrame({
        "family": ["pipeline", "pipeline"], "variant": ["no owners", "owners"],
        "elpd_loo": [-110.04, -100.0], "se": [5.0, 5.0], "d_loo": [10.04, 0.0],
        "dse": [3.0, 0.0], "weight": [0.2, 0.8], "pareto_k_bad": [0, 1], "rank": [1, 0],
    })  # fmt: skip


def test_model_checks_section_shows_ppc_warning_figures_and_loo_when_refitted(snap) -> None:
    from crmkit.apps.report_sections import model_checks_html

    markup = model_checks_html(
        _checks_context(snap, tables=True, refitted=True, comparison=_comparison())
    )
    assert 'class="crmkit-ppc-figure"' in markup and 'class="crmkit-rank-figure"' in markup
    assert markup.count("data:image/png;base64,") == 2
    # the check that misses 4 of 10 is named in the warning; the one that never misses is not
    assert "crmkit-ppc-warning" in markup
    assert "monthly won revenue: 4 of 10 observed values (40%)" in markup
    assert "wins per stage:" not in markup
    # the LOO table: best variant first, and the text says what was compared and how
    assert "crmkit-loo-table" in markup and "MAP + Laplace" in markup
    assert "with and without owner effects" in markup and "with and without the calendar" in markup
    assert markup.index("<td>owners</td>") < markup.index("<td>no owners</td>")
    assert "<td>-110.0</td>" in markup


def test_model_checks_section_names_a_check_whose_fit_failed_and_why(snap) -> None:
    from crmkit.apps.report_sections import model_checks_html

    missing = [{"check": "repeat purchases per week", "reason": "fit failed: <q> flat"}]
    for tables in (True, False):
        markup = model_checks_html(
            _checks_context(snap, tables=tables, refitted=False, missing=missing)
        )
        assert "crmkit-ppc-warning" in markup
        assert "repeat purchases per week: not checked: fit failed: &lt;q&gt; flat" in markup
    markup = model_checks_html(_checks_context(snap, tables=True, refitted=False))
    assert "not checked" not in markup


def test_model_checks_section_without_refit_says_loo_needs_a_refit(snap) -> None:
    from crmkit.apps.report_sections import model_checks_html

    markup = model_checks_html(_checks_context(snap, tables=True, refitted=False))
    assert "crmkit-ppc-figure" in markup and "crmkit-loo-table" not in markup
    assert "runs only when the report refits the models" in markup


def test_model_checks_section_says_why_loo_was_not_run(snap) -> None:
    from crmkit.apps.report_sections import model_checks_html

    ctx = _checks_context(snap, tables=True, refitted=True, note="no <repeat> orders")
    markup = model_checks_html(ctx)
    assert "LOO comparison of model variants was not run (no &lt;repeat&gt; orders)" in markup


def test_model_checks_section_of_a_snapshot_without_checks_is_a_note(snap, monkeypatch) -> None:
    from crmkit.apps import report_sections as rs
    from crmkit.apps.notebook_views import NO_CHECKS_NOTE

    shown: list[str] = []
    monkeypatch.setattr(rs, "_show", shown.append)
    rs.show_model_checks(_checks_context(snap, tables=False, refitted=False))
    assert NO_CHECKS_NOTE in shown[0] and "data:image/png" not in shown[0]
    assert "crmkit-ppc-warning" not in shown[0]


def _backtest_rows(n: int, model_gap: float) -> pd.DataFrame:
    """Backtest-like rows: model and run rate at ``n`` monthly origins, lead 1-3."""
    from crmkit.forecast.backtest import month_ends

    rows = []
    for i, o in enumerate(month_ends("2024-01-01", "2026-12-31")[:n]):
        for name, crps in (("model", 100.0 + model_gap + (i % 3)), ("run_rate", 100.0 + i % 2)):
            rows.append(
                {
                    "origin": o.date(),
                    "lead": "1-3",
                    "forecaster": name,
                    "crps": crps,
                    "median_error": 5.0,
                    "hit50": 1.0,
                    "hit80": 1.0,
                    "hit95": 1.0,
                }
            )
    return pd.DataFrame(rows)  # fmt: skip


def test_backtest_html_says_in_one_line_that_the_model_beats_the_run_rate() -> None:
    from crmkit.apps.report_sections import backtest_html
    from crmkit.forecast.backtest import summarise
    from crmkit.forecast.skill import with_run_rate_verdict

    scores = _backtest_rows(12, -50.0)
    markup = backtest_html(with_run_rate_verdict(summarise(scores), scores))
    assert markup.count('class="crmkit-backtest-verdict"') == 1
    assert "Model (next 3 periods): better than run rate: yes (CRPS difference −" in markup
    assert "crps_diff" not in markup and "vs_run_rate" not in markup  # no table of numbers


def test_backtest_html_says_too_few_origins_to_tell() -> None:
    from crmkit.apps.report_sections import backtest_html
    from crmkit.forecast.backtest import summarise
    from crmkit.forecast.skill import with_run_rate_verdict

    scores = _backtest_rows(3, -50.0)
    markup = backtest_html(with_run_rate_verdict(summarise(scores), scores))
    assert "better than run rate: too few origins to tell (3 origins; at least 4 needed)" in markup


def test_backtest_html_of_a_table_without_the_comparison_has_no_verdict_line() -> None:
    from crmkit.apps.report_sections import backtest_html
    from crmkit.forecast.backtest import summarise

    markup = backtest_html(summarise(_backtest_rows(12, -50.0)))
    assert "crmkit-backtest-verdict" not in markup and "crmkit-backtest" in markup


def _shown_backtest(snap, monkeypatch, tmp_path) -> str:
    """The backtest section a report rebuilt from ``snap`` (saved, then read back) shows."""
    from crmkit.apps import dashboard as db
    from crmkit.apps import report_sections as rs
    from crmkit.store import Store

    with Store.open(tmp_path / "crm.db") as store:
        store.save_snapshot(snap)
        loaded = store.load_snapshot(snap.snapshot_id)
    shown: list[str] = []
    monkeypatch.setattr(rs, "_show", shown.append)
    ctx = rs.ReportContext(
        snapshot=loaded, previous=None, filter=db.Filter(), db_url="x.db", refitted=False
    )
    rs.show_backtest(ctx)
    assert len(shown) == 1
    return shown[0]


def test_report_from_a_snapshot_shows_its_stored_backtest_verdict(monkeypatch, tmp_path) -> None:
    from crmkit.forecast.snapshot_tables import backtest_records
    from tests.snapshot_factory import backtest_with_verdict, make_fake_snapshot

    snap = make_fake_snapshot()
    snap.parameters["tables"]["backtest"] = backtest_records(backtest_with_verdict(12, 50.0))
    markup = _shown_backtest(snap, monkeypatch, tmp_path)
    assert markup.count('class="crmkit-backtest-verdict"') == 1
    assert "Model (next 3 periods): better than run rate: no (CRPS difference +" in markup
    assert "crps_diff" not in markup and "vs_run_rate" not in markup  # the line, not numbers


def test_report_from_an_old_snapshot_shows_its_backtest_without_verdict(
    monkeypatch, tmp_path
) -> None:
    from crmkit.forecast.backtest import summarise
    from crmkit.forecast.snapshot_tables import backtest_records
    from tests.snapshot_factory import backtest_scores, make_fake_snapshot

    snap = make_fake_snapshot()  # a report's table as stored before the verdict was
    snap.parameters["tables"]["backtest"] = backtest_records(summarise(backtest_scores(3, 0.0)))
    markup = _shown_backtest(snap, monkeypatch, tmp_path)
    assert 'crmkit-table crmkit-backtest"' in markup
    assert "crmkit-backtest-verdict" not in markup
    assert "cover80" in markup and "No backtest was run" not in markup


def test_refit_report_whose_backtest_lacks_history_keeps_its_snapshot_and_says_why(
    monkeypatch, tmp_path
) -> None:
    """A young database: the forecast fits, the 4 backtest origins reach before the data."""
    from crmkit.apps import dashboard as db
    from crmkit.apps import report_sections as rs
    from crmkit.data.demo.company import build_demo
    from crmkit.store import Store

    with Store.open(tmp_path / "crm.db") as store:
        build_demo(store, validate=False, n_customers=1500, n_deals=300)
    ctx = rs.prepare(
        as_of="2023-06-30", horizon=3, db_url=str(tmp_path / "crm.db"), method="map",
        backtest=4, draws=200,
    )  # fmt: skip
    assert ctx.backtest is None
    note = ctx.backtest_note
    assert note.startswith("the backtest from the last 4 month ends could not be run: ")
    assert "\n" not in note and "--backtest N" in note
    with Store.open(tmp_path / "crm.db") as store:  # the finished forecast is kept
        kept = db.latest_snapshot(store)
    assert kept is not None and kept.snapshot_id == ctx.snapshot.snapshot_id
    assert "backtest" not in kept.parameters.get("tables", {})
    shown: list[str] = []
    monkeypatch.setattr(rs, "_show", shown.append)
    rs.show_backtest(ctx)
    assert (
        len(shown) == 1 and "could not be run" in shown[0] and "No backtest was run" not in shown[0]
    )


@pytest.fixture(scope="module")
def _refitted_db(tmp_path_factory) -> tuple[Path, dict]:
    """A small demo database with one refit snapshot and no backtest; the prepare() args."""
    from crmkit.apps import report_sections as rs
    from tests.notebook_runner import demo_database

    path = tmp_path_factory.mktemp("norefit") / "crm.db"
    demo_database(path, n_customers=120, n_deals=300, seed=2)
    common = dict(as_of="2026-06-30", horizon=1, method="map", draws=100)
    rs.prepare(refit=True, backtest=0, db_url=str(path), **common)
    return path, common


def _copy_of(db: tuple[Path, dict], tmp_path: Path) -> dict:
    """The prepare() arguments on a fresh copy of the refitted database."""
    path, common = db
    copy = tmp_path / "crm.db"
    shutil.copy(path, copy)
    return dict(common, db_url=str(copy))


def test_no_refit_report_keeps_its_backtest_beside_the_snapshot_for_the_app_and_next_report(
    _refitted_db, monkeypatch, tmp_path
) -> None:
    from crmkit.apps import dashboard as db
    from crmkit.apps import report_sections as rs
    from crmkit.store import Store

    common = _copy_of(_refitted_db, tmp_path)
    path = common["db_url"]
    with Store.open(path) as store:  # the refit's snapshot has no backtest
        first = db.latest_snapshot(store)
    assert db.backtest_table(first) is None
    ctx = rs.prepare(refit=False, backtest=4, **common)
    assert ctx.snapshot.snapshot_id == first.snapshot_id
    assert ctx.backtest is not None and ctx.backtest_note is None
    with Store.open(path) as store:  # what the manager app reads
        kept = db.backtest_table(db.latest_snapshot(store))
    assert kept is not None
    model = kept[(kept["forecaster"] == "model") & (kept["lead"] == "1-1")].iloc[0]
    assert model["origins"] == 4 and model["vs_run_rate"] in (
        "better",
        "worse",
        "not distinguishable",
    )
    # the next --no-refit report shows the kept backtest and does not run it again
    monkeypatch.setattr(rs, "run_backtest", lambda *a, **k: pytest.fail("backtest rerun"))
    again = rs.prepare(refit=False, backtest=4, **common)
    assert again.backtest is None
    shown: list[str] = []
    monkeypatch.setattr(rs, "_show", shown.append)
    rs.show_backtest(again)
    assert "better than run rate" in shown[0] and "No backtest was run" not in shown[0]


def test_no_refit_report_whose_backtest_the_database_refuses_still_shows_it_and_says_so(
    _refitted_db, monkeypatch, tmp_path
) -> None:
    import sqlalchemy as sa

    from crmkit.apps import report_sections as rs
    from crmkit.store import Store

    common = _copy_of(_refitted_db, tmp_path)

    def refuse(self, *args, **kwargs):
        raise sa.exc.OperationalError(
            "INSERT", {}, Exception("attempt to write a readonly database")
        )

    monkeypatch.setattr(Store, "save_backtest", refuse)  # a database role that may only read
    ctx = rs.prepare(refit=False, backtest=4, **common)
    assert ctx.backtest is not None
    note = ctx.backtest_note
    assert note.startswith(f"this backtest was not kept with snapshot #{ctx.snapshot.snapshot_id}")
    assert "attempt to write a readonly database" in note and "\n" not in note
    shown: list[str] = []
    monkeypatch.setattr(rs, "_show", shown.append)
    rs.show_backtest(ctx)
    assert "cover80" in shown[0] and "was not kept" in shown[0]
