"""Clean accuracy of a trained model per split and per demographic group.

:func:`accuracy_report` is the report ``fairrobust train`` prints and writes to
``metrics.json``; :func:`accuracy_by_split` is its per-split part for a model given
as ``apply_fn``. The studies build their richer tables on the same functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fairrobust import groups as groups_lib
from fairrobust import metrics
from fairrobust.data.dataset import SPLITS, AudioDataset
from fairrobust.models import ApplyFn, logits_fn
from fairrobust.train import predict_logits

__all__ = ["accuracy_by_split", "accuracy_report", "format_accuracy_report"]


def accuracy_by_split(
    apply_fn: ApplyFn, variables: Any, dataset: AudioDataset, *, batch_size: int = 256
) -> dict[str, float]:
    """Clean accuracy per split present in ``dataset``: ``{"train": acc, "val": acc, ...}``.

    Args:
      apply_fn: ``apply_fn(variables, x) -> logits``, e.g. ``TrainResult.apply_fn``.
      variables: model variables.
      dataset: the dataset, all splits.
      batch_size: forward-pass batch size.

    Returns:
      Accuracy in [0, 1] per non-empty split, in ``SPLITS`` order.
    """
    out = {}
    for name in SPLITS:
        part = dataset.split(name)
        if len(part):
            logits = predict_logits(apply_fn, variables, part.waveforms, batch_size=batch_size)
            out[name] = float(np.mean(logits.argmax(-1) == part.labels))
    return out


def accuracy_report(
    model: Any,
    variables: Any,
    dataset: AudioDataset,
    *,
    attributes: Sequence[str] | None = None,
    split: str = "test",
    min_size: int = 1,
    batch_size: int = 256,
) -> dict[str, Any]:
    """Accuracy of ``model`` on every split, and on every group of ``split``.

    Args:
      model: a Flax M5 module (see :mod:`fairrobust.models`).
      variables: its variables (``{"params", "batch_stats"?}``).
      dataset: the dataset, all splits.
      attributes: attributes to break down by (default: all of the dataset's).
      split: the split whose groups are reported (default ``"test"``).
      min_size: groups smaller than this are reported but flagged ``small``.
      batch_size: forward-pass batch size.

    Returns:
      ``{"splits": {split: {"accuracy", "n"}}, "groups": {attribute: [{"group",
      "n", "accuracy", "small"}]}}``, JSON-able.
    """
    apply_fn = logits_fn(model)
    logits = predict_logits(apply_fn, variables, dataset.waveforms, batch_size=batch_size)
    correct = np.asarray(logits).argmax(-1) == dataset.labels
    report: dict[str, Any] = {"splits": {}, "groups": {}, "num_classes": dataset.num_classes}
    for name in SPLITS:
        sel = dataset.splits == name
        if sel.any():
            report["splits"][name] = {"accuracy": float(correct[sel].mean()), "n": int(sel.sum())}
    sel = dataset.splits == split
    sub_attrs = {k: v[sel] for k, v in dataset.attributes.items()}
    names = list(attributes) if attributes is not None else sorted(sub_attrs)
    for attr in names:
        g = groups_lib.group_masks(sub_attrs, attr, min_size=min_size)
        if g.num_groups == 0:
            continue
        acc = np.asarray(metrics.group_rates(correct[sel].astype(np.float32), g.masks))
        report["groups"][attr] = [
            {"group": gname, "n": int(size), "accuracy": float(a), "small": gname in g.small}
            for gname, size, a in zip(g.names, g.sizes, acc, strict=True)
        ]
    report["split_reported"] = split
    return report


def format_accuracy_report(report: dict[str, Any]) -> str:
    """A plain-text table of :func:`accuracy_report`'s result."""
    lines = ["split   accuracy      n"]
    for name, rec in report["splits"].items():
        lines.append(f"{name:<7} {rec['accuracy']:8.3f} {rec['n']:6d}")
    for attr, rows in report["groups"].items():
        lines.append("")
        lines.append(f"{report.get('split_reported', 'test')} accuracy by {attr}:")
        for row in rows:
            flag = "  (small)" if row["small"] else ""
            lines.append(f"  {row['group']:<32} {row['accuracy']:6.3f}  n={row['n']}{flag}")
    return "\n".join(lines)
