"""Extractive-QA post-processing: start/end logits over stride windows -> answer text.

Pure numpy, no torch, so it can be tested on its own against a brute-force
reference. Unlike Hugging Face's ``utils_qa.py``, which only pairs the top-k
start and top-k end logits (and can miss the best valid span), this scores
*every* valid span with a banded vectorised sum: for each window, spans
(i, i + d) for d < max_answer_length, both ends inside the context. That is
L x max_answer_length candidates per window, cheap in numpy, and exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

NEG_INF = np.float32(-1e9)


@dataclass(frozen=True)
class Candidate:
    """One scored answer span."""

    text: str
    score: float
    start_logit: float
    end_logit: float
    start_char: int
    end_char: int


def context_mask(offsets: Sequence[Sequence[int] | None], length: int) -> np.ndarray:
    """True where a token belongs to the context (offsets of other tokens are None)."""
    mask = np.zeros(length, dtype=bool)
    for i, off in enumerate(offsets[:length]):
        if off is not None and off[1] > off[0]:
            mask[i] = True
    return mask


def span_scores(start: np.ndarray, end: np.ndarray, mask: np.ndarray, max_answer_length: int) -> np.ndarray:
    """Scores of all spans of one window, shape (L, A): [i, d] scores the span i..i+d.

    Invalid spans (outside the context, past the window, longer than
    ``max_answer_length`` tokens) score ``NEG_INF``.
    """
    length = len(mask)
    width = max(1, min(max_answer_length, length))
    idx = np.arange(length)[:, None] + np.arange(width)[None, :]  # end index of each span
    inside = idx < length
    idx_c = np.minimum(idx, length - 1)
    valid = inside & mask[:, None] & mask[idx_c]
    scores = start[:length, None].astype(np.float32) + end[idx_c].astype(np.float32)
    return np.where(valid, scores, NEG_INF)


def best_spans_for_example(
    context: str,
    starts: Sequence[np.ndarray],
    ends: Sequence[np.ndarray],
    offsets: Sequence[Sequence[Sequence[int] | None]],
    n_best_size: int,
    max_answer_length: int,
) -> tuple[list[Candidate], float]:
    """The n best spans over all windows of one example, and the null (CLS) score.

    The null score is the minimum over windows of ``start[0] + end[0]``, as in
    the SQuAD v2 reference implementation.
    """
    candidates: list[Candidate] = []
    null_score = np.inf
    for start, end, offs in zip(starts, ends, offsets, strict=True):
        length = min(len(offs), len(start))
        null_score = min(null_score, float(start[0] + end[0]))
        mask = context_mask(offs, length)
        if not mask.any():
            continue
        scores = span_scores(start, end, mask, max_answer_length)
        flat = scores.ravel()
        k = min(n_best_size, int((flat > NEG_INF).sum()))
        if k == 0:
            continue
        top = np.argpartition(-flat, k - 1)[:k]
        width = scores.shape[1]
        for pos in top:
            i, d = divmod(int(pos), width)
            j = i + d
            s_char, e_char = offs[i][0], offs[j][1]
            candidates.append(
                Candidate(context[s_char:e_char], float(flat[pos]), float(start[i]), float(end[j]), s_char, e_char)
            )
    candidates.sort(key=lambda c: c.score, reverse=True)
    return _dedupe(candidates)[:n_best_size], float(null_score)


def _dedupe(candidates: list[Candidate]) -> list[Candidate]:
    """Keep the best-scoring candidate for each character span (windows overlap)."""
    seen: set[tuple[int, int]] = set()
    unique = []
    for cand in candidates:
        key = (cand.start_char, cand.end_char)
        if key not in seen:
            seen.add(key)
            unique.append(cand)
    return unique


def softmax_probabilities(candidates: list[Candidate]) -> list[float]:
    if not candidates:
        return []
    scores = np.array([c.score for c in candidates], dtype=np.float64)
    exp = np.exp(scores - scores.max())
    return (exp / exp.sum()).tolist()


def postprocess_predictions(
    example_ids: Sequence[str],
    contexts: Sequence[str],
    feature_example_index: np.ndarray,
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    feature_offsets: Sequence[Sequence[Sequence[int] | None]],
    *,
    n_best_size: int = 20,
    max_answer_length: int = 30,
    version_2_with_negative: bool = False,
    null_score_diff_threshold: float = 0.0,
) -> tuple[dict[str, str], dict[str, list[dict]], dict[str, float]]:
    """Map window logits to answers: (predictions, n-best lists, null-minus-best score diffs).

    ``feature_example_index[f]`` is the example row of window ``f``; logits are
    (num_windows, padded_length) arrays, ``feature_offsets[f]`` the window's
    offset mapping with None for non-context tokens.
    """
    by_example: dict[int, list[int]] = {}
    for f, ex in enumerate(np.asarray(feature_example_index).tolist()):
        by_example.setdefault(ex, []).append(f)

    predictions: dict[str, str] = {}
    nbest_json: dict[str, list[dict]] = {}
    score_diffs: dict[str, float] = {}
    for ex_index, ex_id in enumerate(example_ids):
        feats = by_example.get(ex_index, [])
        cands, null_score = best_spans_for_example(
            contexts[ex_index],
            [start_logits[f] for f in feats],
            [end_logits[f] for f in feats],
            [feature_offsets[f] for f in feats],
            n_best_size,
            max_answer_length,
        )
        probs = softmax_probabilities(cands)
        nbest_json[ex_id] = [
            {
                "text": c.text,
                "probability": p,
                "score": c.score,
                "start_logit": c.start_logit,
                "end_logit": c.end_logit,
                "offsets": [c.start_char, c.end_char],
            }
            for c, p in zip(cands, probs, strict=True)
        ]
        best = cands[0] if cands else None
        if version_2_with_negative:
            best_score = best.score if best else float(NEG_INF)
            diff = null_score - best_score
            score_diffs[ex_id] = diff
            predictions[ex_id] = "" if best is None or diff > null_score_diff_threshold else best.text
        else:
            predictions[ex_id] = best.text if best else ""
    return predictions, nbest_json, score_diffs
