"""QA window labelling and span post-processing: the tricky index arithmetic."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ssl_cli.metrics.qa_postprocess import postprocess_predictions


def brute_force_best(context, start, end, offsets, max_answer_length):
    """Reference: try every (i, j) pair of every window."""
    best = None
    for f in range(len(start)):
        offs = offsets[f]
        for i, j in itertools.product(range(len(offs)), repeat=2):
            if offs[i] is None or offs[j] is None or j < i or j - i + 1 > max_answer_length:
                continue
            score = start[f][i] + end[f][j]
            if best is None or score > best[0]:
                best = (score, context[offs[i][0] : offs[j][1]])
    return best


@pytest.mark.parametrize("seed", range(25))
def test_vectorised_postprocessing_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    context = "".join(rng.choice(list("臺北市長榮航空出生於畢業年ABCdef，。")) for _ in range(60))
    n_windows, length = rng.integers(1, 4), rng.integers(8, 20)
    start = rng.normal(size=(n_windows, length)).astype(np.float32)
    end = rng.normal(size=(n_windows, length)).astype(np.float32)
    offsets = []
    for w in range(n_windows):
        base = int(w * 10)
        offs = [None, None, None] + [(base + k, base + k + 1) for k in range(length - 4)] + [None]
        offsets.append(offs)
    max_len = int(rng.integers(1, 8))
    preds, nbest, _ = postprocess_predictions(
        ["q"], [context], np.zeros(n_windows, dtype=int), start, end, offsets, n_best_size=5, max_answer_length=max_len
    )
    ref_score, ref_text = brute_force_best(context, start, end, offsets, max_len)
    assert nbest["q"][0]["score"] == pytest.approx(ref_score, rel=1e-6)
    assert preds["q"] == ref_text
    scores = [c["score"] for c in nbest["q"]]
    assert scores == sorted(scores, reverse=True)
    assert abs(sum(c["probability"] for c in nbest["q"]) - 1) < 1e-6


def test_version_2_predicts_empty_when_null_wins():
    start = np.array([[5.0, 0.0, 1.0, 0.0]], dtype=np.float32)
    end = np.array([[5.0, 0.0, 0.0, 1.0]], dtype=np.float32)
    offsets = [[None, (0, 1), (1, 2), (2, 3)]]
    preds, _, diffs = postprocess_predictions(["q"], ["abc"], np.array([0]), start, end, offsets,
                                              version_2_with_negative=True)
    assert preds["q"] == "" and diffs["q"] == pytest.approx(10.0 - 2.0)
    preds, _, _ = postprocess_predictions(["q"], ["abc"], np.array([0]), start, end, offsets,
                                          version_2_with_negative=True, null_score_diff_threshold=9.0)
    assert preds["q"] == "bc"


def test_padding_beyond_a_window_is_never_chosen():
    # window of 4 real tokens, padded to 6 with huge logits that must be ignored
    start = np.array([[0, 1, 0, 0, 1e3, 1e3]], dtype=np.float32)
    end = np.array([[0, 0, 1, 0, 1e3, 1e3]], dtype=np.float32)
    offsets = [[None, (0, 1), (1, 2), None]]
    preds, _, _ = postprocess_predictions(["q"], ["xy"], np.array([0]), start, end, offsets)
    assert preds["q"] == "xy"


def test_overlapping_windows_are_deduplicated():
    start = np.array([[0, 3, 0], [0, 3, 0]], dtype=np.float32)
    end = np.array([[0, 3, 0], [0, 3, 0]], dtype=np.float32)
    offsets = [[None, (0, 1), (1, 2)], [None, (0, 1), (1, 2)]]
    _, nbest, _ = postprocess_predictions(["q"], ["ab"], np.array([0, 0]), start, end, offsets, n_best_size=5)
    spans = [tuple(c["offsets"]) for c in nbest["q"]]
    assert len(spans) == len(set(spans))
