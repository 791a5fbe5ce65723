"""``report.html`` is self-contained: every image an embedded PNG that decodes; no external URL.

The slow test renders it with headless Chromium (``apt-get install chromium``) and
checks the screenshot is not blank: ``pytest -m slow tests/test_report_html.py``.
"""

from __future__ import annotations

import base64
import io
import shutil
import subprocess
from html.parser import HTMLParser

import matplotlib.image
import numpy as np
import pytest
from test_report import _rej, _rob, _write_hand_run

from fairrobust import report
from fairrobust.report.markdown import render_markdown
from fairrobust.studies.results import load_run


@pytest.fixture
def hand_run_dir(tmp_path):
    """A run folder of hand-built result tables (see ``test_report.py``)."""
    rob = _rob(
        {"f": (0.05, 0.04, 0.06), "m": (0.06, 0.05, 0.07)},
        dp_base=(0.002, 0.0, 0.01),
        dp_robust=(0.01, 0.0, 0.03),
    )
    rej = _rej(
        {
            "gender": {
                "RS N=10": (0.2, 0.1, 0.3),
                "RS N=1000": (0.01, 0.0, 0.02),
                "NR": (0.1, 0.05, 0.15),
            }
        }
    )
    return _write_hand_run(tmp_path / "run", rob, rej)


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs, self.refs = [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        for key in ("src", "href", "data", "action", "poster"):
            if key in a and tag != "img":
                self.refs.append(a[key])
        if tag in ("link", "script", "iframe", "object", "embed"):
            self.refs.append(tag)


def test_html_images_are_embedded_pngs_and_nothing_external(hand_run_dir):
    _, html_path = report.write_report_from_dir(hand_run_dir)
    text = html_path.read_text()
    parser = _Collect()
    parser.feed(text)
    n_md_images = render_markdown(load_run(hand_run_dir)).count("![")
    assert len(parser.imgs) == n_md_images >= 2
    for src in parser.imgs:
        prefix = "data:image/png;base64,"
        assert src.startswith(prefix)
        raw = base64.b64decode(src[len(prefix) :], validate=True)
        assert raw[:8] == b"\x89PNG\r\n\x1a\n"
        img = matplotlib.image.imread(io.BytesIO(raw), format="png")
        assert img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 50
    assert parser.refs == []
    for needle in ("http://", "https://", "url(", "@import", "file://"):
        assert needle not in text


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed")
def test_chromium_renders_report_with_figures(hand_run_dir, tmp_path):
    _, html_path = report.write_report_from_dir(hand_run_dir)
    shot = tmp_path / "shot.png"
    cmd = [
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={shot}",
        "--window-size=1200,4000",
        html_path.resolve().as_uri(),
    ]
    subprocess.run(cmd, check=True, timeout=120, capture_output=True)
    img = matplotlib.image.imread(shot)
    rgb = np.asarray(img)[..., :3]
    assert rgb.std() > 0.05  # not blank
    # figures are coloured; text and tables alone are grey: some saturated pixels must exist
    sat = rgb.max(axis=-1) - rgb.min(axis=-1)
    assert (sat > 0.3).mean() > 0.001
