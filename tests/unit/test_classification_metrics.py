"""GLUE/CLUE metrics: hand-checked values, then agreement with scikit-learn/scipy where installed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ssl_cli.tasks.glue.metrics import (
    accuracy,
    average_ranks,
    binary_f1,
    glue_metrics,
    load_metric,
    matthews_correlation,
    pearson,
    regression_metrics,
    spearman,
)

PRED, REF = [1, 0, 1, 1], [1, 1, 1, 0]  # TP 2, TN 0, FP 1, FN 1


def test_hand_checked_binary_values():
    assert accuracy(PRED, REF) == 0.5
    assert binary_f1(PRED, REF) == pytest.approx(2 / 3)  # precision 2/3, recall 2/3
    # (TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (0 - 1) / sqrt(3*3*1*1)
    assert matthews_correlation(PRED, REF) == pytest.approx(-1 / 3)


def test_degenerate_cases_are_zero_not_nan():
    assert matthews_correlation([1, 1, 1], [0, 1, 0]) == 0.0  # constant prediction
    assert binary_f1([0, 0], [1, 0]) == 0.0  # no true positives
    assert pearson([1, 1, 1], [1, 2, 3]) == 0.0  # constant prediction


def test_correlations_by_hand():
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert average_ranks(np.array([10.0, 20.0, 20.0, 5.0])).tolist() == [2.0, 3.5, 3.5, 1.0]
    # ranks [1, 2.5, 2.5, 4] vs [1, 2, 3, 4]: 4.5 / sqrt(4.5 * 5)
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / math.sqrt(22.5))


def test_glue_task_keys_match_the_official_glue_metric():
    assert set(glue_metrics("cola", PRED, REF)) == {"matthews_correlation"}
    assert set(glue_metrics("mrpc", PRED, REF)) == {"accuracy", "f1"}
    assert set(glue_metrics("qqp", PRED, REF)) == {"accuracy", "f1"}
    assert set(glue_metrics("stsb", [0.1, 2.0, 3.5], [0.0, 2.5, 5.0])) == {"pearson", "spearmanr"}
    assert set(glue_metrics("rte", PRED, REF)) == {"accuracy"}
    assert set(glue_metrics(None, PRED, REF)) == {"accuracy"}
    assert set(regression_metrics([0.1, 2.0], [0.0, 2.5])) == {"pearson", "spearmanr", "mse"}


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="3 predictions for 4 references"):
        accuracy([1, 0, 1], REF)


@pytest.mark.parametrize("seed", range(5))
def test_agrees_with_scikit_learn_and_scipy(seed):
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(seed)
    ref, pred = rng.integers(0, 3, 200), rng.integers(0, 3, 200)
    pred[:80] = ref[:80]  # some signal
    assert matthews_correlation(pred, ref) == pytest.approx(sklearn_metrics.matthews_corrcoef(ref, pred))
    ref2, pred2 = ref % 2, pred % 2
    assert binary_f1(pred2, ref2) == pytest.approx(sklearn_metrics.f1_score(ref2, pred2))
    x = rng.normal(size=100).round(1)  # rounding makes ties
    y = x + rng.normal(size=100).round(1)
    assert pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0])
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0])


def test_evaluate_module_wrapper():
    metric = load_metric("mrpc")
    result = metric.compute(predictions=PRED, references=REF)
    assert result == pytest.approx({"accuracy": 0.5, "f1": 2 / 3})
    stsb = load_metric("stsb").compute(predictions=[0.1, 2.0, 3.5], references=[0.0, 2.5, 5.0])
    assert stsb["pearson"] == pytest.approx(pearson([0.1, 2.0, 3.5], [0.0, 2.5, 5.0]), rel=1e-6)
