"""The report runs for real with Papermill; a failed run keeps the last good report."""

from __future__ import annotations

import datetime as dt
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crmkit.apps.report import ReportError, main, run_report, validate_parameters
from crmkit.errors import ValidationError
from crmkit.forecast.snapshot_tables import backtest_records
from crmkit.store import Store
from crmkit.store.engine import resolve_url
from tests.html_rows import data_rows
from tests.snapshot_factory import backtest_with_verdict, make_fake_snapshot

TODAY = dt.date(2026, 11, 27)


class _Numbers(HTMLParser):
    """Collect the text of ``<span data-source=.. data-q=..>`` elements, in any attribute order."""

    def __init__(self) -> None:
        super().__init__()
        self.found: dict[tuple[str, str], str] = {}
        self._key: tuple[str, str] | None = None

    def handle_starttag(self, tag, attrs) -> None:
        a = dict(attrs)
        if tag == "span" and "data-q" in a:
            self._key = (a["data-source"], a["data-q"])

    def handle_data(self, data) -> None:
        if self._key is not None:
            self.found.setdefault(self._key, data)
            self._key = None


def shown_numbers(html: str) -> dict[tuple[str, str], str]:
    parser = _Numbers()
    parser.feed(html)
    return parser.found


def _fields(exc: ValidationError) -> set[str]:
    return {e.field for e in exc.errors}


def test_parameters_are_normalised() -> None:
    p = validate_parameters(
        dt.date(2026, 10, 31), 6, "M", 250_000, "x.db", 200, {"team": "north"}, "out", today=TODAY
    )
    assert p["as_of"] == "2026-10-31" and p["db_url"] == resolve_url("x.db")
    assert p["filters"] == {"team": "north"} and p["refit"] is True
    q = validate_parameters("2026-09-30", 4, "Q", {"2026-Q4": 1e6}, filters={"owner": "All"},
                            today=TODAY)  # fmt: skip
    assert q["filters"] == {} and q["target"] == {"2026-Q4": 1e6}


def test_every_bad_parameter_is_named_before_anything_runs(tmp_path: Path) -> None:
    afile = tmp_path / "a_file"
    afile.write_text("x")
    with pytest.raises(ValidationError) as err:
        validate_parameters(
            "2026-13-01", 0, "W", -5, 3.5, 5, {"team": "n", "owner": "a"}, str(afile), "yes",
            "gibbs", -1, 99, today=TODAY,
        )  # fmt: skip
    assert _fields(err.value) == {
        "as_of", "horizon", "period", "target", "db_url", "draws", "filters", "out_dir", "refit",
        "method", "seed", "backtest",
    }  # fmt: skip
    with pytest.raises(ValidationError, match="in the future"):
        validate_parameters("2026-12-01", 3, today=TODAY)
    with pytest.raises(ValidationError) as err:
        validate_parameters("2026-10-31", 13, "Q", draws=True, today=TODAY)
    assert _fields(err.value) == {"horizon", "draws"}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One successful report on a database holding two fake snapshots."""
    root = tmp_path_factory.mktemp("report")
    db_path = root / "crm.db"
    with Store.open(db_path) as store:
        store.save_snapshot(
            make_fake_snapshot(seed=3, scale=0.9, label="older", forecast_call=True)
        )
        snap = make_fake_snapshot(seed=4, forecast_call=True)
        # a backtest saved inside the snapshot as a refit's report saves it, verdict included
        snap.parameters["tables"]["backtest"] = backtest_records(backtest_with_verdict())
        store.save_snapshot(snap)
    out = root / "reports"
    result = run_report("2026-11-15", 3, db=db_path, out_dir=out, refit=False, backtest=0, log=None)
    return {"db": db_path, "out": out, "result": result, "snap": snap}


def test_report_files_and_content_match_the_snapshot(report: dict) -> None:
    r, snap, out = report["result"], report["snap"], report["out"]
    assert {p.name for p in out.iterdir()} == {
        "forecast_report.ipynb", "forecast_report.html", "forecast_report.pdf",
        "forecast_report.summary.json", "forecast_report.fanchart.png",
    }  # fmt: skip
    assert r.pdf.read_bytes()[:5] == b"%PDF-"
    assert r.fanchart.read_bytes()[:4] == b"\x89PNG"
    html = r.html.read_text()
    # headline: the total over the horizon, computed here from the raw draws
    closed = snap.quantiles.query("group == 'all' and source == 'total'")["closed_to_date"].sum()
    sums = snap.revenue.sel(source="total", group="all").sum("period").to_numpy() + closed
    shown = shown_numbers(html)
    for q, value in {"p10": np.quantile(sums, 0.1), "p50": np.median(sums),
                     "p90": np.quantile(sums, 0.9)}.items():  # fmt: skip
        assert int(shown["total", q].replace(",", "")) == round(value)
    p_target = np.mean(sums >= 1_100_000.0)
    assert shown["total", "p_target"] == f"{100 * p_target:.0f}%"
    assert f'data-snapshot-id="{snap.snapshot_id}"' in html
    assert "Compared with snapshot 1" in html  # what changed since the older snapshot
    assert "crmkit-backtest" in html and 'data-ok="true"' in html
    # the backtest stored in the snapshot says, in one line, whether the model beats the run rate
    assert html.count('class="crmkit-backtest-verdict"') == 1
    assert "Model (next 3 periods): better than run rate: yes (CRPS difference −" in html
    assert "data:image/png;base64" in html  # the fan chart is embedded
    assert "report_sections" not in html and "prepare(" not in html  # no code shown
    summary = json.loads((out / "forecast_report.summary.json").read_text())
    assert summary["snapshot_id"] == snap.snapshot_id and summary["refitted"] is False
    assert summary["headline"]["total"]["p50"] == pytest.approx(np.median(sums))


def _state(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def test_failed_runs_keep_the_previous_report(report: dict, capsys) -> None:
    out = report["out"]
    before = _state(out)
    # 1. a bad parameter: refused before anything runs, through the command too
    with pytest.raises(ValidationError, match="horizon"):
        run_report("2026-11-15", 0, db=report["db"], out_dir=out, refit=False, log=None)
    code = main(["--as-of", "2026-11-31", "--horizon", "3", "--db", str(report["db"]),
                 "--out-dir", str(out), "--no-refit"])  # fmt: skip
    assert code == 1 and "as_of" in capsys.readouterr().err
    # 2. a model error inside the notebook: refitting a database without deals
    with pytest.raises(ReportError, match="no deals to forecast") as err:
        run_report("2026-11-15", 3, db=report["db"], out_dir=out, refit=True, draws=20, log=None)
    assert "previous report was kept" in str(err.value)
    assert _state(out) == before  # same files, same bytes, no temporary leftovers


def test_output_folder_is_created_and_pdf_is_optional(report: dict, tmp_path: Path) -> None:
    out = tmp_path / "a" / "b"
    r = run_report("2026-11-15", 3, db=report["db"], out_dir=out, refit=False, pdf=False, log=None)
    assert r.pdf is None and r.html.exists() and not (out / "forecast_report.pdf").exists()


def test_default_relative_out_dir_is_the_callers_folder(
    report: dict, tmp_path: Path, monkeypatch
) -> None:
    # the README's command leaves --out-dir at its default, the relative "reports"
    monkeypatch.chdir(tmp_path)
    r = run_report("2026-11-15", 3, db=report["db"], refit=False, pdf=False, log=None)
    assert r.html == tmp_path / "reports" / "forecast_report.html"
    assert r.html.exists() and r.fanchart.exists()
    assert not list((tmp_path / "reports").glob(".forecast_report.tmp-*"))


@pytest.mark.slow
def test_report_refits_with_the_forecast_models_and_prints_their_progress_to_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real fit on a small demo company, with few draws: the saved snapshot is the report's.

    ``crmkit report`` prints the models' fit lines to stderr as the notebook runs them; the
    lines never land in the report itself.
    """
    from crmkit.data.demo import company as datasets

    db_path = tmp_path / "demo.db"
    with Store.open(db_path) as store:
        datasets.build_demo(store, n_customers=200, n_deals=400, seed=3)
    out = tmp_path / "out"
    code = main(["--as-of", "2026-10-31", "--horizon", "2", "--db", str(db_path), "--draws", "40",
                 "--target", "50000", "--backtest", "1", "--method", "map",
                 "--out-dir", str(out)])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    progress = captured.err.strip().splitlines()
    assert progress[0] == "crmkit: fitting the pipeline model (map) ..."
    assert progress[1].startswith("crmkit: pipeline model fitted in ")
    assert "checks passed" in progress[1]
    assert progress[2] == "crmkit: fitting the new business model (map) ..."
    assert progress[3].startswith("crmkit: new business model fitted in ")
    assert all(line.startswith("crmkit: ") for line in progress)  # nothing else on stderr
    with Store.open(db_path) as store:
        snap = store.load_snapshot()
    assert snap.parameters["method_used"] == "map"
    summary = json.loads((out / "forecast_report.summary.json").read_text())
    assert summary["snapshot_id"] == snap.snapshot_id and summary["refitted"] is True
    html = (out / "forecast_report.html").read_text()
    assert "fitting the pipeline model" not in html
    notebook = (out / "forecast_report.ipynb").read_text()
    assert "fitting the pipeline model" not in notebook
    assert f'data-snapshot-id="{snap.snapshot_id}"' in html
    assert "cover80" in html  # the backtest ran, with its baselines
    # ... and was saved inside the snapshot with the model's verdict against the run rate
    stored = pd.DataFrame(snap.parameters["tables"]["backtest"])
    assert {"crps_diff", "crps_diff_lo", "crps_diff_hi", "vs_run_rate"} <= set(stored.columns)
    assert stored.loc[stored.forecaster == "model", "vs_run_rate"].tolist() == ["too few origins"]
    assert "too few origins to tell (1 origin; at least 4 needed)" in html
    p50 = shown_numbers(html)["total", "p50"]
    assert int(p50.replace(",", "")) == round(summary["headline"]["total"]["p50"])


def test_a_forecast_saved_as_draft_makes_no_report_and_keeps_the_previous(tmp_path: Path) -> None:
    from crmkit.data.demo import company as datasets

    db_path = tmp_path / "demo.db"
    with Store.open(db_path) as store:
        datasets.build_demo(store, n_customers=200, n_deals=300, seed=42)
        store.save_snapshot(make_fake_snapshot(seed=5))
    out = tmp_path / "reports"
    run_report("2026-10-31", 2, db=db_path, out_dir=out, refit=False, pdf=False, log=None)
    before = _state(out)
    # ADVI's loss has not settled on this small company: its diagnostics are not ok
    with pytest.raises(ReportError, match="saved as draft snapshot #2") as err:
        run_report("2026-10-31", 1, db=db_path, out_dir=out, draws=20, method="advi",
                   pdf=False, log=None)  # fmt: skip
    assert "diagnostics not ok (advi)" in str(err.value)
    assert "previous report was kept" in str(err.value)
    assert _state(out) == before
    with Store.open(db_path) as store:
        assert store.load_snapshot().snapshot_id == 1  # the draft reaches no reader
        assert store.list_snapshots(include_drafts=True)["status"].tolist() == [
            "draft",
            "published",
        ]


def test_report_has_forecast_call_attainment_and_waterfall_sections(report: dict) -> None:
    html, snap = report["result"].html.read_text(), report["snap"]
    tables = snap.parameters["tables"]
    assert "Forecast call" in html and "Attainment" in html and "What changed" in html
    # the forecast call of the whole company, period by period
    calls = [r for r in tables["forecast_call"] if r["group"] == "all"]
    shown = data_rows(html, "crmkit-call-row")
    assert [r["period"] for r in shown] == [r["period"] for r in calls]
    for row, want in zip(shown, calls, strict=True):
        for c in ("closed", "commit", "best_case", "pipeline", "p50"):
            assert int(row[c].replace(",", "")) == round(want[c])
        assert row["p_best_case"] == f"{100 * want['p_best_case']:.0f}%"
    assert int(shown[0]["call"].replace(",", "")) == 620_000 and shown[0]["call_author"] == "Eve"
    # attainment: every group with a quota, owners sorted by P(attain) in each period
    att = data_rows(html, "crmkit-quota-row")
    assert len(att) == len(tables["attainment"])
    first = snap.coords["period"][0]
    want = sorted((r for r in tables["attainment"] if r["period"] == first
                   and r["group"].startswith("owner=")), key=lambda r: -r["p_attain"])  # fmt: skip
    owners = [r for r in att if r["period"] == first and r["scope"] == "owner"]
    assert [r["group"] for r in owners] == [w["group"] for w in want]
    for r, w in zip(owners, want, strict=True):
        assert int(r["quota"].replace(",", "")) == round(w["quota"])
        assert r["p_attain"] == f"{100 * w['p_attain']:.0f}%"
    # what changed: the waterfall (PNG) and its numbers, from the older total to this one
    steps = re.findall(
        r'<tr data-step="([^"]+)"><td>.*?</td><td data-col="deals">[^<]*</td>'
        r'<td data-col="amount">(?:<b>)?([^<]+)',
        html,
    )
    assert steps[0][0] == "before" and steps[-1][0] == "now" and len(steps) > 3
    with Store.open(report["db"]) as store:
        older = store.load_snapshot(1)
    total = older.revenue.sel(source="total", group="all").sum("period").mean()
    assert int(steps[0][1].replace(",", "")) == round(float(total))
    amounts = [int(a.replace(",", "").replace("+", "")) for _, a in steps]
    assert abs(amounts[0] + sum(amounts[1:-1]) - amounts[-1]) <= len(amounts)  # rounding
    assert html.count("data:image/png;base64") >= 2  # fan chart and waterfall


def test_report_sections_of_an_older_snapshot_say_not_in_this_snapshot(monkeypatch) -> None:
    from crmkit.apps import dashboard as db
    from crmkit.apps import report_sections as rs
    from crmkit.apps.call_views import NOT_IN_SNAPSHOT

    shown: list[str] = []
    monkeypatch.setattr(rs, "_show", shown.append)
    ctx = rs.ReportContext(snapshot=make_fake_snapshot(), previous=None,
                           filter=db.Filter(), db_url="x.db", refitted=False)  # fmt: skip
    rs.show_forecast_call(ctx)
    rs.show_attainment(ctx)
    rs.show_waterfall(ctx)
    assert NOT_IN_SNAPSHOT in shown[0] and NOT_IN_SNAPSHOT in shown[1]
    assert "first saved forecast" in shown[2]


def test_report_template_is_the_shipped_notebook_not_one_in_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # issue #15: found in the package (or an editable install's checkout), never via the cwd
    from crmkit.apps.notebooks import notebooks_dir
    from crmkit.apps.report import report_template

    (tmp_path / "notebooks" / "reports").mkdir(parents=True)
    (tmp_path / "notebooks" / "reports" / "forecast_report.ipynb").write_text("{}")
    monkeypatch.chdir(tmp_path)
    template = report_template()
    assert template == notebooks_dir() / "reports" / "forecast_report.ipynb"
    assert not template.is_relative_to(tmp_path)
    assert json.loads(template.read_text())["cells"]


def test_report_has_model_checks_section_with_a_note_for_a_snapshot_without_checks(
    report: dict,
) -> None:
    from crmkit.apps.notebook_views import NO_CHECKS_NOTE

    html = report["result"].html.read_text()
    assert "Model checks" in html and NO_CHECKS_NOTE in html
    assert "runs only when the report refits the models" in html  # refit=False: no LOO


@pytest.mark.slow
def test_refitted_report_shows_ppc_figure_and_loo_comparison(tmp_path: Path) -> None:
    from crmkit.data.demo import company as datasets

    db_path = tmp_path / "demo.db"
    with Store.open(db_path) as store:
        datasets.build_demo(store, n_customers=200, n_deals=400, seed=3)
    r = run_report("2026-10-31", 2, db=db_path, out_dir=tmp_path / "out", draws=40,
                   backtest=0, method="map", pdf=False, log=None)  # fmt: skip
    html = r.html.read_text()
    assert "Model checks" in html and "crmkit-ppc-figure" in html
    assert "crmkit-loo-table" in html and "with and without owner effects" in html
    assert "elpd loo" in html and "repeat purchases" in html


def test_default_report_backtest_has_enough_origins_to_say_whether_model_beats_run_rate(
    tmp_path: Path,
) -> None:
    """The default backtest gives the manager a verdict, not "too few origins to tell"."""
    import argparse

    from crmkit.apps.dashboard import backtest_verdicts
    from crmkit.apps.report import DEFAULT_BACKTEST_ORIGINS, add_report_arguments
    from crmkit.apps.report_sections import run_backtest
    from crmkit.forecast.skill import MIN_COMPARE_ORIGINS
    from tests.notebook_runner import demo_database

    assert validate_parameters("2026-10-31", 3, today=TODAY)["backtest"] == MIN_COMPARE_ORIGINS
    parser = argparse.ArgumentParser()
    add_report_arguments(parser)
    assert parser.parse_args(["--as-of", "2026-10-31"]).backtest == DEFAULT_BACKTEST_ORIGINS
    db_path = demo_database(tmp_path / "demo.db", n_customers=150, n_deals=300, seed=2)
    snap = make_fake_snapshot(as_of=dt.date(2026, 10, 31), n_draws=100)  # its as-of and horizon
    with Store.open(db_path) as store:
        bt = run_backtest(store, snap, origins=DEFAULT_BACKTEST_ORIGINS)
    model = bt[bt["forecaster"] == "model"].iloc[0]
    assert model["origins"] == DEFAULT_BACKTEST_ORIGINS
    assert model["vs_run_rate"] in {"better", "worse", "not distinguishable"}
    line = backtest_verdicts(bt)["line"].item()
    assert line.startswith("better than run rate: ") and "90% interval" in line
