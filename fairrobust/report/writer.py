"""Write ``report.md``, ``report.html`` and ``figures/report_*.png`` of a run folder."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fairrobust import _io
from fairrobust.report.figures import write_report_figures
from fairrobust.report.html import markdown_to_html
from fairrobust.report.markdown import render_markdown
from fairrobust.studies.results import load_run

__all__ = ["write_report", "write_report_from_dir"]


def write_report(
    run_dir: str | os.PathLike[str],
    robustness: Any = None,
    rejection: Any = None,
    config: Mapping[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` (and the report figures) for a run.

    The studies write their results under ``run_dir/results``; this reads them
    back from disk, so ``robustness`` / ``rejection`` may be the studies' results
    objects, paths to their results folders, or None (then whatever is in
    ``run_dir/results`` is used). Results objects or folders outside ``run_dir``
    are not copied: pass a run folder that holds them.

    The summary table and the findings come from ``results/run_summary.json``
    and ``results/run_findings.json``, which
    :func:`fairrobust.studies.summary.write_summary` writes (``fairrobust run``
    calls it before this); without them they are computed in memory and not
    written. Besides ``report.md`` and ``report.html`` this writes only
    ``figures/report_*.png`` (bars with bootstrap error bars).

    Args:
      run_dir: the run folder.
      robustness, rejection: results objects, their results folders, or None.
      config: ``config.json`` content; when given and the file is absent it is written.

    Returns:
      ``(md_path, html_path)``.

    Raises:
      ValueError: a results object / folder that lives outside ``run_dir``.
      FileNotFoundError: no study results in ``run_dir/results``.
    """
    run_dir = Path(run_dir)
    for name, res in (("robustness", robustness), ("rejection", rejection)):
        where = _results_dir_of(res)
        if where is not None and where.resolve() != (run_dir / "results").resolve():
            raise ValueError(
                f"{name}: results live in {where}, not in {run_dir / 'results'}; pass the run "
                "folder the study wrote to"
            )
    if config is not None and not (run_dir / "config.json").is_file():
        _io.atomic_write_json(run_dir / "config.json", dict(config))
    data = load_run(run_dir)
    figures = write_report_figures(data)
    md = render_markdown(data, figures)
    md_path = _io.atomic_write_text(run_dir / "report.md", md)
    title = md.splitlines()[0].lstrip("# ").strip()
    html_path = _io.atomic_write_text(run_dir / "report.html", markdown_to_html(md, run_dir, title))
    return md_path, html_path


def _results_dir_of(res: Any) -> Path | None:
    if res is None:
        return None
    if isinstance(res, (str, os.PathLike)):
        p = Path(res)
        return p if p.name == "results" else p / "results"
    files = getattr(res, "files", None) or {}
    for key in ("summary", "config"):
        if key in files:
            return Path(files[key]).parent
    out_dir = getattr(res, "out_dir", None)
    return None if out_dir is None else Path(out_dir) / "results"


def write_report_from_dir(run_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Regenerate ``report.md`` / ``report.html`` of a run folder from its files alone."""
    return write_report(run_dir)
