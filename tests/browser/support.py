"""What the real-browser tests need: Debian's chromium and the playwright package."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: Debian's chromium, installed by ``bash dev.sh test``.
CHROMIUM = Path("/usr/bin/chromium")


def need_browser() -> None:
    """Skip (or fail in CI) when chromium or playwright is missing."""
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (bash dev.sh test installs Debian's chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright Python package")
    if missing:
        msg = f"browser test needs {' and '.join(missing)}"
        if os.environ.get("CI"):
            pytest.fail(msg + " in CI")
        pytest.skip(msg)
