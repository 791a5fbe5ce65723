"""The run report: ``report.md`` and a self-contained ``report.html`` from a run folder.

The report only renders: everything it shows is read from the run folder's
result files (``results/*.json``, including ``run_summary.json`` and
``run_findings.json`` written by :func:`fairrobust.studies.summary.write_summary`),
and it writes only ``report.md``, ``report.html`` and ``figures/report_*.png``.
A report can be regenerated from disk alone::

    from fairrobust.report import write_report_from_dir
    md_path, html_path = write_report_from_dir("runs/20240101-120000")

Modules, one per part of the page:

* :mod:`fairrobust.report.markdown` -- ``render_markdown``: header, summary,
  findings, groups, files, and the sections below;
* :mod:`fairrobust.report.robustness`, :mod:`fairrobust.report.rejection`,
  :mod:`fairrobust.report.soundness` -- one section per study
  (``render_soundness`` also writes ``results/soundness.md`` in ``fairrobust run``);
* :mod:`fairrobust.report.figures` -- ``write_report_figures``;
* :mod:`fairrobust.report.html` -- ``markdown_to_html`` (markdown-it-py and a
  Jinja2 page template; images embedded as data URIs, no external resource);
* :mod:`fairrobust.report.blocks` -- markdown tables, figure links, settings lines.
"""

from __future__ import annotations

from fairrobust.report.soundness import render_soundness as render_soundness
from fairrobust.report.writer import write_report as write_report
from fairrobust.report.writer import write_report_from_dir as write_report_from_dir

# render_soundness is used by ``fairrobust run`` for results/soundness.md.
__all__ = ["render_soundness", "write_report", "write_report_from_dir"]
