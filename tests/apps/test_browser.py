"""Chromium's flag sets: the tests' software one and the benchmarks' emulated-GPU one."""

from __future__ import annotations

import pytest

from crmkit.apps.browser import CHROMIUM_FLAGS, CHROMIUM_GPU_FLAGS, free_port
from tests.browser.support import CHROMIUM, need_browser

# A buffer canvas copied cell by cell into the visible canvas, as lumino's DataGrid paints.
PAGE = """<canvas id=c width=600 height=200></canvas><script>
const buf = document.createElement('canvas'); buf.width = 600; buf.height = 200;
const b = buf.getContext('2d'), c = document.getElementById('c').getContext('2d');
for (let col = 0; col < 6; col++) for (let row = 0; row < 8; row++) {
  b.fillStyle = `rgb(${col * 40}, ${row * 30}, 7)`; b.fillRect(col * 100, row * 25, 100, 25);
  c.drawImage(buf, col * 100, row * 25, 100, 25, col * 100, row * 25, 100, 25);
}
</script>"""
# chrome://gpu's feature list, read from its shadow DOM.
GPU_STATUS = (
    "() => { const v = document.querySelector('info-view');"
    " return v && v.shadowRoot ? v.shadowRoot.textContent : document.body.innerText; }"
)


def test_gpu_flags_are_the_software_ones_with_an_emulated_gpu():
    assert "--disable-gpu" in CHROMIUM_FLAGS
    assert "--disable-gpu" not in CHROMIUM_GPU_FLAGS
    assert set(CHROMIUM_FLAGS) - {"--disable-gpu"} <= set(CHROMIUM_GPU_FLAGS)
    assert "--use-angle=swiftshader" in CHROMIUM_GPU_FLAGS


def test_free_port_can_be_bound():
    import socket

    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        assert s.getsockname()[1] == port


@pytest.mark.browser
@pytest.mark.parametrize("flags", ["software", "gpu"])
def test_debian_chromium_draws_canvases_with_each_flag_set(flags, tmp_path):
    """Both flag sets start Debian's chromium and copy canvas cells exactly; "gpu" accelerates."""
    need_browser()
    from playwright.sync_api import sync_playwright

    page_file = tmp_path / "canvas.html"
    page_file.write_text(PAGE)
    args = list(CHROMIUM_FLAGS if flags == "software" else CHROMIUM_GPU_FLAGS)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=args)
        page = browser.new_page()
        page.goto(page_file.as_uri())
        pixels = page.evaluate(
            "() => { const c = document.getElementById('c').getContext('2d');"
            " return [[250, 110], [50, 10], [590, 190]].map(([x, y]) =>"
            " Array.from(c.getImageData(x, y, 1, 1).data)); }"
        )
        page.goto("chrome://gpu")
        page.wait_for_function(f"() => ({GPU_STATUS})().includes('Canvas:')")
        status = page.evaluate(GPU_STATUS)
        browser.close()
    # cell (col 2, row 4), (0, 0), (5, 7): the colours painted into the buffer for them
    assert pixels == [[80, 120, 7, 255], [0, 0, 7, 255], [200, 210, 7, 255]]
    expected = "Canvas: Hardware accelerated" if flags == "gpu" else "Canvas: Software only"
    assert expected in status
