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
#: The same, but with the GPU emulated on the CPU (SwiftShader through ANGLE), so canvases are
#: GPU-backed as in desktop browsers. Canvas-heavy pages (ipydatagrid) need it to be measured
#: fairly: on a software canvas each grid cell's copy from lumino's buffer canvas duplicates
#: the whole buffer (a 2048 x 512 pixel copy per cell). Pages of HTML and SVG cost more this
#: way (GPU compositing on the CPU), so it is not the default.
CHROMIUM_GPU_FLAGS = (
    *(f for f in CHROMIUM_FLAGS if f != "--disable-gpu"),
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
)


def chromium_path() -> str | None:
    """Return the path of the chromium binary on PATH, or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
