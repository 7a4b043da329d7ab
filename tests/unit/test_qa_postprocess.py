"""QA window labelling and span post-processing: the tricky index arithmetic."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ssl_cli.tasks.qa import postprocess as qa_postprocess
from ssl_cli.tasks.qa.postprocess import WindowOffsets, best_spans, postprocess_predictions, sliding_max


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


def brute_force_nbest(context, start, end, offsets, max_answer_length, n):
    """Reference n-best: every valid (i, j) of every window, best score per character span, top n."""
    best: dict[tuple[int, int], float] = {}
    for f in range(len(start)):
        offs = offsets[f]
        for i, j in itertools.product(range(len(offs)), repeat=2):
            if offs[i] is None or offs[j] is None or j < i or j - i + 1 > max_answer_length:
                continue
            key = (offs[i][0], offs[j][1])
            best[key] = max(best.get(key, -np.inf), float(start[f][i] + end[f][j]))
    return sorted(best.items(), key=lambda kv: -kv[1])[:n]


@pytest.mark.parametrize("seed", range(20))
def test_whole_nbest_list_matches_brute_force(seed):
    """Only the top-n starts' bands are expanded: the pruning must still find the exact n best spans."""
    rng = np.random.default_rng(100 + seed)
    n_windows, length = int(rng.integers(1, 4)), int(rng.integers(6, 40))
    start = rng.normal(size=(n_windows, length)).astype(np.float32)
    end = rng.normal(size=(n_windows, length)).astype(np.float32)
    offsets = [[None, None] + [(w * 7 + k, w * 7 + k + 1) if rng.random() > 0.1 else None for k in range(length - 3)]
               + [None] for w in range(n_windows)]
    context = "x" * (n_windows * 7 + length)
    max_len, n = int(rng.integers(1, length + 5)), int(rng.integers(1, 12))
    _, nbest, _ = postprocess_predictions(["q"], [context], np.zeros(n_windows, dtype=int), start, end, offsets,
                                          n_best_size=n, max_answer_length=max_len)
    expected = brute_force_nbest(context, start, end, offsets, max_len, n)
    assert [c["score"] for c in nbest["q"]] == pytest.approx([score for _, score in expected], rel=1e-6)
    assert [tuple(c["offsets"]) for c in nbest["q"]] == [span for span, _ in expected]


def test_sliding_max_matches_a_plain_window_max():
    values = np.random.default_rng(0).normal(size=(3, 50)).astype(np.float32)
    for width in (1, 2, 3, 7, 8, 30, 50):
        expected = np.stack([values[:, i : i + width].max(axis=1) for i in range(50 - width + 1)], axis=1)
        assert np.array_equal(sliding_max(values, width), expected)


def test_offsets_from_arrow_equal_offsets_from_lists():
    """Selections, concatenations and windows longer than the logits read the same as the Python lists."""
    from datasets import Dataset, concatenate_datasets

    ds = Dataset.from_dict({"offset_mapping": [[[0, 1], None, [1, 3]], [None, [5, 6]], [[7, 8]], [], [None]]})
    variants = [ds, ds.select([2, 0, 4]), ds.select(range(1, 4)), concatenate_datasets([ds, ds.select([0])])]
    for table in variants:
        for length in (1, 2, 3, 5):
            arrow = WindowOffsets.from_arrow(table.with_format("arrow")["offset_mapping"], length)
            lists = WindowOffsets.from_lists(table["offset_mapping"], length)
            assert np.array_equal(arrow.start, lists.start) and np.array_equal(arrow.end, lists.end)


def test_many_windows_on_threads_give_the_one_chunk_answer(monkeypatch):
    """More windows than one chunk: the threaded path must agree with a single call."""
    rng = np.random.default_rng(7)
    windows, length = 1300, 24
    start, end = (rng.normal(size=(windows, length)).astype(np.float32) for _ in range(2))
    is_context = rng.random((windows, length)) > 0.2
    threaded = best_spans(start, end, is_context, 5, 6)
    monkeypatch.setattr(qa_postprocess, "WINDOWS_PER_CHUNK", windows)
    single = best_spans(start, end, is_context, 5, 6)
    for name in ("first", "last", "score"):
        assert np.array_equal(np.sort(getattr(threaded, name), axis=1), np.sort(getattr(single, name), axis=1))
