"""The report's sections built as HTML from data (no notebook run)."""

from __future__ import annotations

import pandas as pd

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
