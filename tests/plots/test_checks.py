"""Model check figures drawn from hand-made tables: PPC panels, misses, rank counts, LOO order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure

from crmkit.errors import CrmkitError
from crmkit.plots import checks
from crmkit.plots.format import figure_png

CHECKS = (
    "monthly won revenue",
    "wins per stage",
    "new deals per month",
    "repeat purchases per week",
)


def ppc_table(misses: dict[str, int] | None = None, n: int = 10) -> pd.DataFrame:
    """Rows per check with predicted quantiles; the first ``misses[check]`` rows miss P5–P95."""
    misses = misses or {}
    rows = []
    for k, check in enumerate(CHECKS):
        for i in range(n):
            p50 = 100.0 * (k + 1) + i
            miss = i < misses.get(check, 0)
            observed = p50 + (80.0 if miss else 5.0)
            rows.append({
                "check": check, "label": f"L{i:02d}", "observed": observed, "p05": p50 - 40,
                "p10": p50 - 30, "p50": p50, "p90": p50 + 30, "p95": p50 + 40,
                "inside80": abs(observed - p50) <= 30, "inside90": not miss,
            })  # fmt: skip
    return pd.DataFrame(rows)


def trace_table(chains: int = 4, draws: int = 250) -> pd.DataFrame:
    """Draws of three parameters of two models, ``chains`` chains each."""
    rng = np.random.default_rng(0)
    rows = []
    for model, param in (("pipeline", "win_rate"), ("pipeline", "slip"), ("repeat", "r")):
        for c in range(chains):
            for d in range(draws):
                rows.append((model, param, c, d, rng.normal()))
    return pd.DataFrame(rows, columns=["model", "parameter", "chain", "draw", "value"])


def _scatter(ax, label: str) -> PathCollection | None:
    found = [c for c in ax.collections if isinstance(c, PathCollection) and c.get_label() == label]
    return found[0] if found else None


def test_ppc_figure_has_one_panel_per_check_in_table_order() -> None:
    fig = checks.ppc_figure(ppc_table())
    assert isinstance(fig, Figure)
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert [t.split(":")[0] for t in titles] == list(CHECKS)
    assert figure_png(fig)[:4] == b"\x89PNG"


def test_ppc_figure_highlights_the_misses_and_counts_them_in_the_title() -> None:
    table = ppc_table({"wins per stage": 3})
    fig = checks.ppc_figure(table)
    panels = {ax.get_title().split(":")[0]: ax for ax in fig.axes}
    stage = panels["wins per stage"]
    assert stage.get_title() == "wins per stage: 3 of 10 outside P5–P95"
    misses = _scatter(stage, checks.MISS_LABEL).get_offsets()
    want = table[(table["check"] == "wins per stage") & ~table["inside90"]]
    np.testing.assert_allclose(misses[:, 0], [0, 1, 2])
    np.testing.assert_allclose(misses[:, 1], want["observed"])
    inside = _scatter(stage, checks.OBSERVED_LABEL).get_offsets()
    assert len(inside) == 7
    # a check without misses has no red dots and says 0
    revenue = panels["monthly won revenue"]
    assert _scatter(revenue, checks.MISS_LABEL) is None
    assert revenue.get_title().endswith("0 of 10 outside P5–P95")
    assert checks.MISS_LABEL in [t.get_text() for t in fig.legends[0].get_texts()]


def test_ppc_figure_draws_the_predicted_median_and_ranges() -> None:
    table = ppc_table()
    fig = checks.ppc_figure(table)
    ax = fig.axes[0]
    rows = table[table["check"] == CHECKS[0]]
    np.testing.assert_allclose(_scatter(ax, checks.P50_LABEL).get_offsets()[:, 1], rows["p50"])
    bars = {c.get_label(): c for c in ax.containers}
    outer = bars["P5–P95"].lines[2][0].get_segments()
    np.testing.assert_allclose([s[0][1] for s in outer], rows["p05"])
    np.testing.assert_allclose([s[1][1] for s in outer], rows["p95"])


def test_ppc_figure_thins_long_label_axes() -> None:
    table = ppc_table(n=60)
    ax = checks.ppc_figure(table).axes[-1]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert 1 < len(labels) <= checks.MAX_TICKS and labels[0] == "L00"


def test_ppc_figure_of_a_table_without_columns_or_rows_is_a_one_line_error() -> None:
    with pytest.raises(CrmkitError, match=r"lacks column.*inside90"):
        checks.ppc_figure(ppc_table().drop(columns="inside90"))
    with pytest.raises(CrmkitError, match="empty"):
        checks.ppc_figure(ppc_table().iloc[:0])


def test_rank_histogram_counts_of_each_chain_sum_to_its_draws() -> None:
    traces = trace_table(chains=4, draws=250)
    fig = checks.rank_figure(traces, bins=20)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == [
        "pipeline: win_rate",
        "pipeline: slip",
        "repeat: r",
    ]
    for ax in panels:
        steps = [p for p in ax.patches if p.get_label().startswith("chain ")]
        assert [p.get_label() for p in steps] == ["chain 0", "chain 1", "chain 2", "chain 3"]
        for step in steps:
            counts, edges, _ = step.get_data()
            assert counts.sum() == 250 and len(counts) == 20
            assert edges[0] == 0 and edges[-1] == 1000
        assert ax.get_lines()[0].get_ydata()[0] == pytest.approx(250 / 20)  # uniform line


def test_rank_counts_show_a_chain_stuck_apart() -> None:
    values = np.concatenate([np.arange(100.0), np.arange(100.0) + 1000])  # chain 1 all above
    chains = np.repeat([0, 1], 100)
    counts = checks.rank_counts(values, chains, bins=4)
    assert counts[0].tolist() == [50, 50, 0, 0] and counts[1].tolist() == [0, 0, 50, 50]


def test_trace_figure_draws_each_chains_values_in_order() -> None:
    traces = trace_table(chains=2, draws=50)
    fig = checks.trace_figure(traces)
    ax = fig.axes[1]
    assert ax.get_title() == "pipeline: slip"
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"chain 0", "chain 1"}
    want = traces.query("parameter == 'slip' and chain == 1").sort_values("draw")
    np.testing.assert_allclose(lines["chain 1"].get_ydata(), want["value"])
    np.testing.assert_allclose(lines["chain 1"].get_xdata(), np.arange(50))


def test_rank_and_trace_figures_of_a_table_without_rows_are_a_one_line_error() -> None:
    for draw in (checks.rank_figure, checks.trace_figure):
        with pytest.raises(CrmkitError, match="trace table is empty"):
            draw(trace_table().iloc[:0])


def _compare() -> pd.DataFrame:
    return pd.DataFrame({
        "family": ["pipeline", "pipeline", "repeat purchases", "repeat purchases"],
        "variant": ["without owner effects", "with owner effects", "no calendar", "calendar"],
        "elpd_loo": [-1234.567, -1200.04, -800.25, -790.91],
        "se": [20.123, 19.87, 10.01, 10.55],
        "d_loo": [34.527, 0.0, 9.34, 0.0],
        "dse": [5.55, 0.0, 2.04, 0.0],
        "weight": [0.1234, 0.8766, 0.0, 1.0],
        "pareto_k_bad": [0, 2, 0, 1],
        "rank": [1, 0, 1, 0],
    })  # fmt: skip


def test_loo_table_puts_the_best_variant_of_each_family_first_and_rounds() -> None:
    out = checks.loo_table(_compare())
    assert list(out.columns) == list(checks.LOO_COLUMNS)
    assert out["variant"].tolist() == [
        "with owner effects", "without owner effects", "calendar", "no calendar",
    ]  # fmt: skip
    assert out["elpd_loo"].tolist() == [-1200.0, -1234.6, -790.9, -800.2]
    assert out["d_loo"].tolist() == [0.0, 34.5, 0.0, 9.3]
    assert out["weight"].tolist() == [0.88, 0.12, 1.0, 0.0]
    assert out["pareto_k_bad"].tolist() == [2, 0, 1, 0]


def test_loo_table_without_a_column_is_a_one_line_error() -> None:
    with pytest.raises(CrmkitError, match=r"lacks column.*weight"):
        checks.loo_table(_compare().drop(columns="weight"))
