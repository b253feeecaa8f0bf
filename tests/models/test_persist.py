"""Saving an InferenceData with its data frame and attributes to netCDF, and reading it back."""

from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from crmkit.models.persist import (
    dataset_to_table,
    load_idata,
    save_idata,
    split_tables,
    table_to_dataset,
    with_tables,
)


def _idata() -> az.InferenceData:
    rng = np.random.default_rng(0)
    idata = az.from_dict(
        posterior={"a": rng.normal(size=(2, 5)), "b": rng.normal(size=(2, 5, 3))},
        sample_stats={"diverging": np.zeros((2, 5), dtype=bool)},
        dims={"b": ["channel"]},
        coords={"channel": ["tv", "radio", "search"]},
    )
    idata.attrs["method"] = "map"
    return idata


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["c1", "c2", "c3"],
            "count": np.array([0, 3, 7], dtype=np.int64),
            "amount": [1.5, np.nan, 2.25],
            "week": pd.to_datetime(["2025-01-06", "2025-01-13", "2025-01-20"]),
            "alive": [True, False, True],
        },
        index=[10, 11, 12],
    )


def test_round_trip_keeps_draws_frame_and_attributes(tmp_path):
    idata, frame = _idata(), _frame()
    path = save_idata(tmp_path / "fit.nc", idata, frame, {"model": "Toy", "method": "mle"})
    assert path == tmp_path / "fit.nc" and path.exists()
    back, got, attrs = load_idata(path)
    assert set(back.groups()) == {"posterior", "sample_stats"}
    xr.testing.assert_equal(back.posterior, idata.posterior)
    np.testing.assert_array_equal(back.sample_stats["diverging"], idata.sample_stats["diverging"])
    assert attrs == {"model": "Toy", "method": "mle"}  # the given attrs override idata's
    assert dict(back.attrs) == attrs
    want = frame.reset_index(drop=True)
    assert list(got.columns) == list(want.columns)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    assert got["count"].dtype == np.int64 and got["alive"].dtype == bool
    assert pd.api.types.is_datetime64_any_dtype(got["week"])
    assert pd.api.types.is_string_dtype(got["customer_id"])
    # the input was not modified
    assert "constant_data" not in idata.groups() and idata.attrs == {"method": "map"}


def test_a_saved_constant_data_group_is_replaced(tmp_path):
    idata = _idata()
    idata.add_groups(constant_data=xr.Dataset({"old": ("row", np.arange(4))}))
    back, got, _ = load_idata(save_idata(tmp_path / "f.nc", idata, _frame().iloc[:2], dim="week"))
    assert list(got.columns) == list(_frame().columns) and len(got) == 2
    assert "constant_data" not in back.groups()


def test_reads_files_that_kept_ids_as_a_coordinate(tmp_path):
    # The layout BayesianEstimator.save wrote before this module: ids on the row coordinate.
    idata = _idata()
    ds = xr.Dataset(
        {"frequency": ("row", np.array([1.0, 2.0]))},
        coords={"row": np.arange(2), "customer_id": ("row", np.array(["a", "b"]))},
    )
    idata.add_groups(constant_data=ds)
    idata.to_netcdf(str(tmp_path / "old.nc"))
    _, got, _ = load_idata(tmp_path / "old.nc")
    assert list(got.columns) == ["customer_id", "frequency"]
    assert got["customer_id"].tolist() == ["a", "b"] and got["frequency"].tolist() == [1.0, 2.0]


def test_text_columns_with_numbers_are_kept_as_text(tmp_path):
    frame = pd.DataFrame({"customer_id": pd.Series([1, 22, 333]).astype(str), "x": [1, 2, 3]})
    _, got, _ = load_idata(save_idata(tmp_path / "t.nc", _idata(), frame))
    assert got["customer_id"].tolist() == ["1", "22", "333"]


def test_tables_round_trip_with_dtypes_and_missing_values() -> None:
    frame = pd.DataFrame(
        {
            "text": pd.Series(["a", None, "c"], index=[4, 8, 9], dtype=object),
            "amount": [1.0 / 3.0, np.nan, 2.5],
            "n": pd.array([1, None, 3], dtype="Int64"),
            "when": pd.to_datetime(
                ["2024-01-01 10:00:00.123456", None, "2024-02-01 00:00:00.000000"]
            ),
            "flag": [True, False, True],
            "label": pd.Series(["x", None, "z"], dtype="str"),
        },
        index=pd.Index([4, 8, 9], name="row_id"),
    )
    back = dataset_to_table(table_to_dataset(frame))
    pd.testing.assert_frame_equal(back, frame, check_exact=True)
    assert back["text"].iloc[1] is None


def test_tables_travel_in_their_own_groups_and_come_back(tmp_path):
    idata = az.from_dict(posterior={"a": np.ones((1, 3))})
    tables = {"deals": pd.DataFrame({"deal_id": ["D1", "D2"], "amount": [1.5, np.nan]})}
    path = save_idata(tmp_path / "t.nc", with_tables(idata, tables), pd.DataFrame())
    back, _, _ = load_idata(path)
    assert "table_deals" in back.groups()
    rest, found = split_tables(back)
    assert "table_deals" not in rest.groups()
    assert "posterior" in rest.groups()
    pd.testing.assert_frame_equal(found["deals"], tables["deals"])
