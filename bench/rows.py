"""The one row of a bench table: an estimator evaluated on a set built once
(``evaluate_synthetic`` with ``data``), its metrics pooled over frames."""

from __future__ import annotations


def result_row(estimator, body, spec, data, key: str, label: str) -> dict:
    """{data: key, method: label, each metric's mean, PA-MPJPE median, ms/frame}."""
    from hmrkit.eval.metrics import summarize
    from hmrkit.eval.protocols import evaluate_synthetic

    summ = summarize(evaluate_synthetic(estimator, body, spec, data=data).metrics)
    row = {"data": key, "method": label}
    row.update({k: v.mean for k, v in summ.items()})
    row["PA-MPJPE median"] = summ["PA-MPJPE"].median
    row["ms/frame"] = 1000 * row.pop("s/frame")
    return row
