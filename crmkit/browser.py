"""Headless Chromium and loopback ports: the one place the browser's flags are written."""

from __future__ import annotations

import shutil
import socket

#: Flags for Chromium run headless as root on a machine without outside network: no sandbox
#: (root), no GPU, and none of the background connections that a closed network refuses.
CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def chromium_path() -> str | None:
    """Return the path of the chromium binary on PATH, or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
