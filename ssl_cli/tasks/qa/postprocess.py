"""Extractive-QA post-processing: start/end logits over stride windows -> answer text.

Pure numpy, no torch, so it can be tested on its own against a brute-force
reference. Two things set it apart from Hugging Face's ``utils_qa.py``:

- **Exact.** ``utils_qa`` only pairs the top-20 start with the top-20 end
  logits of each window, and can miss the best valid span (a high start whose
  best end is not in the top 20). Here every span of at most
  ``max_answer_length`` tokens inside the context is a candidate.
- **Batched.** ``utils_qa`` loops in Python over every window and every
  start/end pair. Here all windows are scored at once: for each start token
  the best end within the band is a sliding maximum (log-doubling, a few
  array passes), which bounds what any span from that start can score; only
  the ``n_best_size`` starts with the highest bounds can own one of the window's
  ``n_best_size`` best spans, so only their bands are expanded. Grouping by
  example, de-duplicating overlapping windows and the per-example softmax are
  array operations too; Python only builds the output dicts.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

NO_SPAN = np.float32(-np.inf)
WINDOWS_PER_CHUNK = 512  # a chunk's (512, seq) arrays stay in cache; chunks run on threads (numpy drops the GIL)


@dataclass(frozen=True)
class WindowOffsets:
    """Character offsets of every window's tokens, padded: (num_windows, length) int arrays.

    ``start[w, t]`` / ``end[w, t]`` are the characters token ``t`` of window
    ``w`` covers in the context; -1 where the token is not context (question,
    special or padding token).
    """

    start: np.ndarray
    end: np.ndarray

    @classmethod
    def from_lists(cls, windows: Sequence[Sequence[Sequence[int] | None]], length: int) -> WindowOffsets:
        """From per-window offset lists with None for non-context tokens (the tokenizer's mapping, filtered)."""
        start = np.full((len(windows), length), -1, dtype=np.int32)
        end = np.full((len(windows), length), -1, dtype=np.int32)
        for w, offsets in enumerate(windows):
            pairs = [(t, off[0], off[1]) for t, off in enumerate(offsets[:length]) if off is not None]
            if pairs:
                t, s, e = np.array(pairs).T
                start[w, t], end[w, t] = s, e
        return cls(start, end)

    @classmethod
    def from_arrow(cls, column: Any, length: int) -> WindowOffsets:
        """From an Arrow ``list<list<int>>`` column of offset pairs with null for non-context tokens.

        Reads the buffers directly: turning 10,000 windows of 384 pairs into
        Python lists first would cost more than all the scoring.
        """
        import pyarrow as pa

        if isinstance(column, pa.ChunkedArray):
            column = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
        tokens = column.flatten()  # one entry per token: a [start, end] pair or null
        bounds = tokens.offsets.to_numpy()
        pairs = tokens.values.to_numpy(zero_copy_only=False)[bounds[0] : bounds[-1]].reshape(-1, 2)  # context only
        slots = _padded_slots(np.diff(column.offsets.to_numpy()), length)
        at = slots[tokens.is_valid().to_numpy(zero_copy_only=False)]
        kept = at >= 0
        if not kept.all():  # windows longer than the logits: drop what lies past them
            at, pairs = at[kept], pairs[kept]
        start, end = (np.full(len(column) * length, -1, dtype=np.int32) for _ in range(2))
        start[at], end[at] = pairs[:, 0], pairs[:, 1]
        return cls(start.reshape(-1, length), end.reshape(-1, length))

    @property
    def is_context(self) -> np.ndarray:
        """True where a token covers context characters (empty offsets do not)."""
        return (self.start >= 0) & (self.end > self.start)


def _padded_slots(lengths: np.ndarray, length: int) -> np.ndarray:
    """Where each of the rows' tokens, laid end to end, lands in a (rows, length) array; -1 past ``length``."""
    if (lengths <= length).all():  # the usual case: one pass
        return np.flatnonzero(np.arange(length) < lengths[:, None])
    row = np.repeat(np.arange(len(lengths)), lengths)
    col = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.where(col < length, row * length + col, -1)


def sliding_max(values: np.ndarray, width: int) -> np.ndarray:
    """``out[:, i] = values[:, i:i + width].max(axis=1)`` for every full window, in O(log width) passes."""
    span, cur = 1, values
    while span * 2 <= width:
        cur = np.maximum(cur[:, :-span], cur[:, span:])
        span *= 2
    if span == width:
        return cur
    return np.maximum(cur[:, : cur.shape[1] - (width - span)], cur[:, width - span :])


@dataclass(frozen=True)
class WindowSpans:
    """The ``k`` best spans of every window: (num_windows, k) token indices and scores (-inf: no span)."""

    first: np.ndarray
    last: np.ndarray
    score: np.ndarray


def best_spans_per_window(start: np.ndarray, end: np.ndarray, is_context: np.ndarray, k: int,
                          max_answer_length: int) -> WindowSpans:
    """The ``k`` best valid spans of each window, exactly, without scoring all L x max_answer_length spans.

    A span (i, j) is valid when both ends are context tokens, i <= j and it
    has at most ``max_answer_length`` tokens. ``bound[i]``, start i's logit
    plus the best end logit in its band, is the best score of any span from
    i. The k starts with the highest bounds already give k valid spans
    scoring at least the k-th highest bound, so a start below that bound owns
    none of the k best spans: only the top-k starts' bands are expanded.
    """
    windows, length = start.shape
    band = max(1, min(max_answer_length, length))
    start_score = np.where(is_context, start, NO_SPAN).astype(np.float32)
    end_score = np.where(is_context, end, NO_SPAN).astype(np.float32)
    end_padded = np.concatenate([end_score, np.full((windows, band), NO_SPAN, dtype=np.float32)], axis=1)
    bound = start_score + sliding_max(end_padded, band)[:, :length]
    k_starts = min(k, length)
    starts = np.argpartition(-bound, k_starts - 1, axis=1)[:, :k_starts]  # (W, k)
    ends_of = np.lib.stride_tricks.sliding_window_view(end_padded, band, axis=1)  # (W, L + 1, band) view
    scores = np.take_along_axis(start_score, starts, 1)[:, :, None] + np.take_along_axis(
        ends_of, starts[:, :, None], 1)  # (W, k, band)
    flat = scores.reshape(windows, -1)
    k_spans = min(k, flat.shape[1])
    best = np.argpartition(-flat, k_spans - 1, axis=1)[:, :k_spans]
    first = np.take_along_axis(starts, best // band, 1)
    return WindowSpans(first, first + best % band, np.take_along_axis(flat, best, 1))


def best_spans(start: np.ndarray, end: np.ndarray, is_context: np.ndarray, k: int,
               max_answer_length: int) -> WindowSpans:
    """:func:`best_spans_per_window` over chunks of windows, on up to 4 threads (numpy releases the GIL)."""
    bounds = range(0, len(start), WINDOWS_PER_CHUNK)

    def chunk(lo: int) -> WindowSpans:
        hi = lo + WINDOWS_PER_CHUNK
        return best_spans_per_window(start[lo:hi], end[lo:hi], is_context[lo:hi], k, max_answer_length)

    workers = min(4, len(bounds), len(os.sched_getaffinity(0)))
    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            parts = list(pool.map(chunk, bounds))
    else:
        parts = [chunk(lo) for lo in bounds]
    return WindowSpans(*(np.concatenate([getattr(p, name) for p in parts]) for name in ("first", "last", "score")))


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many small containers.

    60,000 n-best dicts trigger dozens of collections that walk every live
    object and find nothing to free: a third of the post-processing time.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _char_spans(spans: WindowSpans, offsets: WindowOffsets, owners: np.ndarray,
                start: np.ndarray, end: np.ndarray) -> dict[str, np.ndarray]:
    """Flatten valid window spans into columns: example, score, logits and character offsets."""
    window, slot = np.nonzero(np.isfinite(spans.score))
    first, last = spans.first[window, slot], spans.last[window, slot]
    return {
        "example": owners[window],
        "score": spans.score[window, slot].astype(np.float64),
        "start_logit": start[window, first].astype(np.float64),
        "end_logit": end[window, last].astype(np.float64),
        "start_char": offsets.start[window, first],
        "end_char": offsets.end[window, last],
    }


def _n_best_per_example(columns: dict[str, np.ndarray], n_best_size: int) -> dict[str, np.ndarray]:
    """Sort by example then score, keep each character span once (its best window) and the first n per example."""
    order = _by_example_best_first(columns["example"], columns["score"])
    columns = {name: col[order] for name, col in columns.items()}
    _, first_seen = np.unique(_span_keys(columns), return_index=True)
    keep = np.sort(first_seen)  # sorted order is best score first within an example
    columns = {name: col[keep] for name, col in columns.items()}
    example = columns["example"]
    rank = np.arange(len(example)) - np.searchsorted(example, example, side="left")
    return {name: col[rank < n_best_size] for name, col in columns.items()}


def _by_example_best_first(example: np.ndarray, score: np.ndarray) -> np.ndarray:
    """The order that sorts rows by example, then score descending.

    One argsort of ``example * gap - score`` (gap wider than the score range,
    so examples never interleave) while the key stays below 2**30, where
    float64 still tells apart scores 3e-7 apart (closer ones count as a tie);
    else ``np.lexsort``, which is exact but slower.
    """
    if not len(score):
        return np.zeros(0, dtype=np.int64)
    low, high = float(score.min()), float(score.max())
    gap = high - low + 1.0
    if (int(example.max()) + 1) * gap < 2.0**30 and max(abs(low), abs(high)) < 2.0**20:
        return np.argsort(example * gap - score, kind="stable")
    return np.lexsort((-score, example))


def _span_keys(columns: dict[str, np.ndarray]) -> np.ndarray:
    """One sortable key per (example, start_char, end_char): an int64 when it fits, else a row-view of the triple."""
    triple = np.stack([columns["example"], columns["start_char"], columns["end_char"]], axis=1).astype(np.int64)
    if not len(triple):
        return np.zeros(0, dtype=np.int64)
    base = int(triple[:, 1:].max()) + 1
    if (int(triple[:, 0].max()) + 1) * base * base < 2**62:
        return (triple[:, 0] * base + triple[:, 1]) * base + triple[:, 2]
    return np.ascontiguousarray(triple).view([("example", np.int64), ("start", np.int64), ("end", np.int64)])[:, 0]


def _probabilities(score: np.ndarray, example: np.ndarray, num_examples: int) -> np.ndarray:
    """Softmax of the n-best scores within each example (rows sorted by example, best first)."""
    group_start = np.searchsorted(example, example, side="left")
    exp = np.exp(score - score[group_start])
    return exp / np.bincount(example, weights=exp, minlength=num_examples)[example]


def postprocess_predictions(
    example_ids: Sequence[str],
    contexts: Sequence[str],
    feature_example_index: np.ndarray,
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    feature_offsets: WindowOffsets | Sequence[Sequence[Sequence[int] | None]],
    *,
    n_best_size: int = 20,
    max_answer_length: int = 30,
    version_2_with_negative: bool = False,
    null_score_diff_threshold: float = 0.0,
) -> tuple[dict[str, str], dict[str, list[dict]], dict[str, float]]:
    """Map window logits to answers: (predictions, n-best lists, null-minus-best score diffs).

    ``feature_example_index[f]`` is the example row of window ``f``; logits are
    (num_windows, padded_length) arrays; ``feature_offsets`` is a
    :class:`WindowOffsets` or, per window, the offset mapping with None for
    non-context tokens. The null score of an example (SQuAD v2) is the
    minimum over its windows of ``start[0] + end[0]``, as in the reference
    implementation.
    """
    start = np.asarray(start_logits, dtype=np.float32)
    end = np.asarray(end_logits, dtype=np.float32)
    owners = np.asarray(feature_example_index, dtype=np.int64).reshape(-1)
    offsets = (feature_offsets if isinstance(feature_offsets, WindowOffsets)
               else WindowOffsets.from_lists(feature_offsets, start.shape[1]))
    num_examples = len(example_ids)
    if start.size == 0:
        best = {name: np.zeros(0, dtype=np.int64) for name in ("example", "start_char", "end_char")}
        best.update({name: np.zeros(0) for name in ("score", "start_logit", "end_logit")})
    else:
        spans = best_spans(start, end, offsets.is_context, n_best_size, max_answer_length)
        best = _n_best_per_example(_char_spans(spans, offsets, owners, start, end), n_best_size)
    best["probability"] = _probabilities(best["score"], best["example"], num_examples)
    with gc_paused():
        nbest_json = _nbest_lists(example_ids, contexts, best)
    predictions = {ex_id: (cands[0]["text"] if cands else "") for ex_id, cands in nbest_json.items()}
    score_diffs: dict[str, float] = {}
    if version_2_with_negative:
        null_scores = _null_scores(start, end, owners, num_examples)
        for ex_id, null_score in zip(example_ids, null_scores, strict=True):
            cands = nbest_json[ex_id]
            score_diffs[ex_id] = diff = null_score - (cands[0]["score"] if cands else -1e9)
            if diff > null_score_diff_threshold:
                predictions[ex_id] = ""
    return predictions, nbest_json, score_diffs


def _nbest_lists(example_ids: Sequence[str], contexts: Sequence[str],
                 best: dict[str, np.ndarray]) -> dict[str, list[dict]]:
    """The n-best JSON of every example from the columns (sorted by example, best first)."""
    bounds = np.searchsorted(best["example"], np.arange(len(example_ids) + 1), side="left").tolist()
    columns = [best[name].tolist() for name in ("start_char", "end_char", "probability", "score", "start_logit",
                                                  "end_logit")]
    nbest_json: dict[str, list[dict]] = {}
    for ex_index, ex_id in enumerate(example_ids):
        lo, hi = bounds[ex_index], bounds[ex_index + 1]
        context = contexts[ex_index]
        nbest_json[ex_id] = [
            {"text": context[s:e], "probability": p, "score": sc, "start_logit": sl, "end_logit": el, "offsets": (s, e)}
            for s, e, p, sc, sl, el in zip(*(col[lo:hi] for col in columns), strict=True)
        ]
    return nbest_json


def _null_scores(start: np.ndarray, end: np.ndarray, owners: np.ndarray, num_examples: int) -> list[float]:
    """Per example, the lowest ``start[CLS] + end[CLS]`` over its windows (inf for an example without windows)."""
    null = np.full(num_examples, np.inf)
    if start.size:
        np.minimum.at(null, owners, start[:, 0].astype(np.float64) + end[:, 0])
    return null.tolist()
