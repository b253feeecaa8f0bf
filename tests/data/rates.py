"""Exchange rates for vendor fixtures whose exports hold a second currency (EUR)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from crmkit.data.io import import_file
from crmkit.store import Store

FIXTURES = Path(__file__).parent.parent / "fixtures"


def rates_file(vendor: str) -> Path:
    """The fixture's ``exchange_rates.csv`` (EUR per USD, the reporting currency)."""
    return FIXTURES / vendor / "exchange_rates.csv"


def rated_store(path: Path, vendor: str) -> Store:
    """Open a store at ``path`` holding the vendor fixture's exchange rates."""
    store = Store.open(path)
    import_file(store, "exchange_rates", rates_file(vendor))
    return store


def import_rates_cli(db: Path | str, vendor: str) -> None:
    """``crmkit import exchange_rates`` into ``db``, as a user does before a vendor import."""
    cmd = [sys.executable, "-m", "crmkit", "import", "exchange_rates", str(rates_file(vendor))]
    subprocess.run([*cmd, "--db", str(db)], check=True, capture_output=True)
