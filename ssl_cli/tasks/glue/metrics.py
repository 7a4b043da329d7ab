"""Sentence(-pair) classification and regression metrics, as GLUE/CLUE report them, offline.

The functions are plain numpy so they need neither scikit-learn nor scipy,
and they follow the definitions those libraries (and ``evaluate``'s ``glue``
module) use:

* accuracy;
* binary F1 of the positive class (label 1), as MRPC and QQP report it;
* Matthews correlation (CoLA), 0 when a row or column of the confusion
  matrix is empty, as scikit-learn does;
* Pearson and Spearman correlation (STS-B); Spearman ranks ties by their
  average rank, as scipy does.

``glue_metrics(task, predictions, references)`` returns the keys of
``evaluate.load("glue", task)``; ``load_metric(task)`` wraps it as an
``evaluate.Metric``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# The metric keys of each GLUE/CLUE task (the rest report accuracy).
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "cola": ("matthews_correlation",),
    "stsb": ("pearson", "spearmanr"),
    "mrpc": ("accuracy", "f1"),
    "qqp": ("accuracy", "f1"),
}
MAIN_METRIC: dict[str, str] = {"cola": "matthews_correlation", "stsb": "pearson", "mrpc": "f1", "qqp": "f1"}


def accuracy(predictions: Sequence[int], references: Sequence[int]) -> float:
    pred, ref = _pair(predictions, references)
    return float((pred == ref).mean()) if len(ref) else 0.0


def binary_f1(predictions: Sequence[int], references: Sequence[int], positive: int = 1) -> float:
    """F1 of the positive class; 0 when there are no true positives."""
    pred, ref = _pair(predictions, references)
    true_pos = float(((pred == positive) & (ref == positive)).sum())
    predicted, actual = float((pred == positive).sum()), float((ref == positive).sum())
    if true_pos == 0:
        return 0.0
    precision, recall = true_pos / predicted, true_pos / actual
    return 2 * precision * recall / (precision + recall)


def matthews_correlation(predictions: Sequence[int], references: Sequence[int]) -> float:
    """Multiclass Matthews correlation (Gorodkin's R_K), 0 when undefined."""
    pred, ref = _pair(predictions, references)
    labels = np.union1d(pred, ref)
    index = {label: i for i, label in enumerate(labels.tolist())}
    confusion = np.zeros((len(labels), len(labels)), dtype=np.float64)
    for r, p in zip(ref.tolist(), pred.tolist(), strict=True):
        confusion[index[r], index[p]] += 1
    t_sum, p_sum = confusion.sum(axis=1), confusion.sum(axis=0)
    correct, total = np.trace(confusion), confusion.sum()
    cov_ytyp = correct * total - t_sum @ p_sum
    cov_ypyp = total**2 - p_sum @ p_sum
    cov_ytyt = total**2 - t_sum @ t_sum
    denominator = np.sqrt(cov_ytyt * cov_ypyp)
    return float(cov_ytyp / denominator) if denominator else 0.0


def pearson(predictions: Sequence[float], references: Sequence[float]) -> float:
    pred, ref = _pair(predictions, references, dtype=np.float64)
    pred, ref = pred - pred.mean(), ref - ref.mean()
    denominator = np.sqrt((pred**2).sum() * (ref**2).sum())
    return float((pred * ref).sum() / denominator) if denominator else 0.0


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties sharing the mean of the ranks they span (scipy's 'average')."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    ranks = np.empty(len(values), dtype=np.float64)
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def spearman(predictions: Sequence[float], references: Sequence[float]) -> float:
    pred, ref = _pair(predictions, references, dtype=np.float64)
    return pearson(average_ranks(pred), average_ranks(ref))


def glue_metrics(task: str | None, predictions: Sequence, references: Sequence) -> dict[str, float]:
    """The metrics GLUE/CLUE report for ``task`` (None or an unknown name: accuracy, or correlations for floats)."""
    names = TASK_METRICS.get(task or "", ("accuracy",))
    functions = {"accuracy": accuracy, "f1": binary_f1, "matthews_correlation": matthews_correlation,
                 "pearson": pearson, "spearmanr": spearman}
    return {name: functions[name](predictions, references) for name in names}


def regression_metrics(predictions: Sequence[float], references: Sequence[float]) -> dict[str, float]:
    """Pearson, Spearman and MSE for any regression task."""
    pred, ref = _pair(predictions, references, dtype=np.float64)
    return {"pearson": pearson(pred, ref), "spearmanr": spearman(pred, ref), "mse": float(((pred - ref) ** 2).mean())}


def _pair(predictions: Sequence, references: Sequence, dtype: type | None = None) -> tuple[np.ndarray, np.ndarray]:
    pred, ref = np.asarray(predictions, dtype=dtype), np.asarray(references, dtype=dtype)
    if pred.shape != ref.shape:
        raise ValueError(f"{len(pred)} predictions for {len(ref)} references")
    return pred, ref


def load_metric(task: str | None = None):
    """An ``evaluate.Metric`` computing ``glue_metrics(task, ...)`` (offline)."""
    import datasets
    import evaluate

    value_type = "float32" if task == "stsb" else "int64"

    class GlueMetric(evaluate.Metric):
        def _info(self):
            return evaluate.MetricInfo(
                description=f"GLUE/CLUE metrics for {task or 'classification'}: {', '.join(TASK_METRICS.get(task or '', ('accuracy',)))}",
                citation="",
                inputs_description="predictions and references: label ids (floats for stsb)",
                features=datasets.Features({"predictions": datasets.Value(value_type),
                                            "references": datasets.Value(value_type)}),
            )

        def _compute(self, predictions, references):
            return glue_metrics(task, predictions, references)

    return GlueMetric()
