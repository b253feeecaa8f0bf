"""Two processes writing to the same SQLite file at once: nothing is lost."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pandas as pd

from crmkit.store import Store


def _writer(path: str, tag: str, batches: int, per_batch: int) -> None:
    store = Store.open(path)
    for b in range(batches):
        ids = [f"{tag}-{b}-{i}" for i in range(per_batch)]
        store.insert(
            "orders",
            pd.DataFrame(
                {
                    "order_id": ids,
                    "account_id": "A1",
                    "ordered_at": pd.Timestamp("2024-01-01"),
                    "amount": 1.0,
                }
            ),
        )
        # An edit on the shared row each round: row_version must count every one.
        store.update("accounts", "A1", {"owner": f"{tag}{b}"}, changed_by=tag)
    store.close()


def test_two_processes_write_the_same_file(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    store = Store.open(path)
    store.insert(
        "accounts",
        pd.DataFrame(
            {"account_id": ["A1"], "name": ["Acme"], "created_at": [pd.Timestamp("2024-01-01")]}
        ),
    )
    ctx = mp.get_context("spawn")
    batches, per_batch = 15, 40
    procs = [ctx.Process(target=_writer, args=(path, t, batches, per_batch)) for t in ("p", "q")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0, 0]
    assert store.count("orders") == 2 * batches * per_batch
    assert store.read("accounts").loc[0, "row_version"] == 1 + 2 * batches
