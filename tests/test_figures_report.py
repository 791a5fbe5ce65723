"""Figures in the report: each embedded once with a caption that says what it shows.

A hand-built run folder (``test_report``'s tables) gets the study figures the
rejection study writes (copies of one PNG under their real names); the report
must embed each figure at most once, list under "Other figures" only figures it
neither shows nor replaces, caption each with a sentence (not a file-name stub),
and ``report.html`` must use that sentence as the ``<figcaption>`` without
repeating it.
"""

from __future__ import annotations

import re
import shutil

import pytest
from test_report import _rej, _rob, _write_hand_run

from fairrobust import report
from fairrobust.report.html import markdown_to_html

REJECTION_FIGURES = [
    "rejection_auc_fpr_gender.png",  # replaced by report_auc_fpr_gender.png (same bars)
    "rejection_certified_accuracy_all.png",
    "rejection_certified_accuracy_gender.png",
    "rejection_fpr_curves_all.png",
    "rejection_fpr_curves_gender.png",
    "rejection_fpr_parity_vs_n.png",
]


@pytest.fixture
def run_with_figures(tmp_path):
    rob = _rob(
        {"f": (0.05, 0.04, 0.06), "m": (0.06, 0.05, 0.07)},
        dp_base=(0.002, 0.0, 0.01),
        dp_robust=(0.01, 0.0, 0.03),
    )
    rej = _rej({"gender": {"RS N=10": (0.2, 0.1, 0.3), "NR": (0.1, 0.05, 0.15)}})
    rej["certified_accuracy"] = [
        {"attribute": a, "group": g, "n": 30, "valid": True, "radius": r, "model": "M5",
         "sigma": 0.1, "norm": "l2", "space": "waveform", "certified_accuracy": 0.5,
         "ci_low": 0.4, "ci_high": 0.6}
        for a, g in (("all", "all"), ("gender", "g1"))
        for r in (0.0, 0.1)
    ]  # fmt: skip
    run = _write_hand_run(tmp_path / "run", rob, rej)
    report.write_report_from_dir(run)  # draws figures/report_*.png
    png = next((run / "figures").glob("report_*.png"))
    for name in REJECTION_FIGURES:
        shutil.copy(png, run / "figures" / name)
    shutil.copy(png, run / "figures" / "robustness_hand_extra_focus.png")  # shown nowhere
    return run


def _images(md: str) -> list[tuple[str, str]]:
    return re.findall(r"!\[([^\]]*)\]\(([^)]+)\)", md)


def test_each_figure_once_and_other_figures_only_lists_the_rest(run_with_figures):
    md_path, _ = report.write_report_from_dir(run_with_figures)
    md = md_path.read_text()
    paths = [p for _, p in _images(md)]
    assert len(paths) == len(set(paths)), "a figure is embedded twice"
    other = md.split("## Other figures", 1)[1].split("\n## ", 1)[0] if "## Other" in md else ""
    listed = [p for _, p in _images(other)]
    assert listed == ["figures/robustness_hand_extra_focus.png"]
    shown = {p.rsplit("/", 1)[1] for p in paths}
    for name in REJECTION_FIGURES:
        if name == "rejection_auc_fpr_gender.png":
            assert name not in shown  # replaced by the report's bars with intervals
        else:
            assert name in shown
    # the paper's per-model figures, drawn from the tables for a run without them
    for needle in ("hist_accuracy", "models_accuracy", "models_auc"):
        assert any(needle in p for p in paths), needle


def test_every_figure_has_a_caption_sentence(run_with_figures):
    md_path, _ = report.write_report_from_dir(run_with_figures)
    lines = md_path.read_text().splitlines()
    for k, line in enumerate(lines):
        if not line.startswith("!["):
            continue
        alt, path = _images(line)[0]
        stem = path.rsplit("/", 1)[1][:-4]
        caption = lines[k + 2]
        assert caption.startswith("*") and caption.endswith("*"), (path, caption)
        words = caption.strip("*").split()
        assert len(words) >= 10 and caption.strip("*").rstrip().endswith("."), caption
        if "## Other figures" not in lines[:k]:  # there the file name is what is known
            assert stem not in alt and stem.replace("_", " ") not in alt, (path, alt)


def test_html_caption_is_the_sentence_and_not_repeated(run_with_figures):
    md_path, html_path = report.write_report_from_dir(run_with_figures)
    html = html_path.read_text()
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", html, flags=re.S)
    assert len(captions) == md_path.read_text().count("![")
    text = re.sub(r' alt="[^"]*"', "", html)  # the caption is also the image's alt text
    for cap in captions:
        assert len(cap.split()) >= 10
        assert text.count(cap) == 1, f"caption repeated: {cap[:60]}"


def test_caption_paragraph_is_taken_only_right_after_an_image(tmp_path):
    png = tmp_path / "a.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 10)
    md = "![alt](a.png)\n\n*What `a` shows.*\n\n*An ordinary emphasised paragraph.*\n"
    html = markdown_to_html(md, tmp_path)
    assert "<figcaption>What <code>a</code> shows.</figcaption>" in html
    assert "<p><em>An ordinary emphasised paragraph.</em></p>" in html
    assert html.count("What <code>a</code> shows.") == 1
    plain = markdown_to_html("![alt text](a.png)\n\nnot a caption\n", tmp_path)
    assert "<figcaption>alt text</figcaption>" in plain and "<p>not a caption</p>" in plain
