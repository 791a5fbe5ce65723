"""``report.html`` in headless Chromium: every figure loads, fits its column, and no title is cut.

Slow (``pytest -m slow tests/test_report_browser.py``): runs ``fairrobust run
--preset tiny`` into a temporary folder, or uses the run folder named by
``FAIRROBUST_REPORT_RUN_DIR`` (read-only; it must hold ``report.html``). Needs
Python Playwright (``pip install playwright``; its own browser download is not
used) and a Chromium executable (``apt-get install chromium``: ``/usr/bin/chromium``,
or the path in ``FAIRROBUST_CHROMIUM``); skipped with the reason when either is
missing.

For every ``<img>`` of the page it checks that the image loaded, that it is
displayed no wider than its container and the page column, and, on a screenshot
of the element as Chromium draws it, that no dark pixel (text, lines) touches
the image's left, right or top edge: a title (or legend, or tick label) cut at
the figure edge leaves its letters in the edge columns, while an uncut figure
keeps a blank margin there (constrained layout pads every figure by 3 points).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

pytestmark = pytest.mark.slow

#: Flags of a Chromium that reaches nothing outside the machine.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Pixels whose luminance is below this are ink (text, axes); the figure background is 1.
DARK = 0.55
#: Columns / rows at each edge that must hold no ink (inside the 1 px CSS border).
EDGE = 2


def _chromium() -> str | None:
    for candidate in (os.environ.get("FAIRROBUST_CHROMIUM"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file():
            return candidate
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def report_html(tmp_path_factory) -> Path:
    """``report.html`` of a tiny run (or of ``FAIRROBUST_REPORT_RUN_DIR``)."""
    given = os.environ.get("FAIRROBUST_REPORT_RUN_DIR")
    if given:
        page = Path(given) / "report.html"
        assert page.is_file(), f"FAIRROBUST_REPORT_RUN_DIR={given}: no report.html there"
        return page
    out = tmp_path_factory.mktemp("browser") / "run"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    cmd = [sys.executable, "-m", "fairrobust.cli", "run", "--preset", "tiny", "--out", str(out)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    return out / "report.html"


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Python Playwright not installed (pip install playwright)"
    )
    exe = _chromium()
    if exe is None:
        pytest.skip("no Chromium executable (apt-get install chromium, or set FAIRROBUST_CHROMIUM)")
    with sync_api.sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        except Exception as err:  # any launch failure means: no usable browser
            pytest.skip(f"Chromium at {exe} does not start headless: {err}")
        yield b
        b.close()


def edge_ink(shot: np.ndarray) -> dict[str, int]:
    """Number of dark pixels in the edge columns / rows of an element screenshot.

    Args:
      shot: RGB(A) image ``[h, w, 3 or 4]`` in [0, 1] of an ``<img>`` with its 1 px
        CSS border.

    Returns:
      ``{"left": k, "right": k, "top": k}`` dark-pixel counts.
    """
    rgb = np.asarray(shot, float)[1:-1, 1:-1, :3]  # inside the CSS border
    lum = rgb @ np.array([0.299, 0.587, 0.114])
    dark = lum < DARK
    return {
        "left": int(dark[:, :EDGE].sum()),
        "right": int(dark[:, -EDGE:].sum()),
        "top": int(dark[:EDGE, :].sum()),
    }


_GEOMETRY = """() => {
  const col = document.body.getBoundingClientRect().width;
  return Array.from(document.images).map((img) => ({
    alt: img.alt.slice(0, 80),
    complete: img.complete,
    natural: img.naturalWidth,
    width: img.getBoundingClientRect().width,
    container: img.parentElement.getBoundingClientRect().width,
    column: col,
  }));
}"""


def check_page(browser, page_path: Path) -> list[str]:
    """Problems of the figures of ``page_path`` (empty: all load, fit and show whole titles)."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    try:
        page.goto(page_path.resolve().as_uri(), wait_until="load")
        geometry = page.evaluate(_GEOMETRY)
        assert geometry, f"{page_path}: no <img> in the page"
        problems = []
        for k, g in enumerate(geometry):
            name = f"image {k} ({g['alt']!r})"
            if not g["complete"] or g["natural"] == 0:
                problems.append(f"{name}: not loaded")
                continue
            if g["width"] > min(g["container"], g["column"]) + 0.5:
                problems.append(f"{name}: {g['width']} px wide in a {g['container']} px container")
            shot = page.locator("img").nth(k).screenshot()
            ink = edge_ink(matplotlib.image.imread(io.BytesIO(shot), format="png"))
            if any(ink.values()):
                problems.append(f"{name}: dark pixels at the image edge (cut text?) {ink}")
        return problems
    finally:
        page.close()


def test_edge_ink_sees_a_cut_title_and_not_a_margin():
    """The screenshot check can fail: letters at the left edge count, a blank margin does not."""
    img = np.ones((40, 60, 3))
    assert edge_ink(img) == {"left": 0, "right": 0, "top": 0}
    img[10:15, 1:3] = 0.1  # a letter cut at the left edge (inside the 1 px border)
    assert edge_ink(img)["left"] == 10
    img2 = np.ones((40, 60, 3))
    img2[0, :] = img2[-1, :] = img2[:, 0] = img2[:, -1] = 0.93  # the #eee CSS border
    img2[10:15, 8:20] = 0.0  # text inside the margin
    assert not any(edge_ink(img2).values())


def test_report_figures_load_fit_and_show_whole_titles(browser, report_html):
    assert check_page(browser, report_html) == []
