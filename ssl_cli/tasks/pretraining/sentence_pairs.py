"""Segment pairs for the sentence-level pretraining objectives: BERT's next sentence prediction and ALBERT's
sentence order prediction.

Each document is split into sentences, tokenised, and cut into chunks of
about ``target`` tokens (BERT's ``create_pretraining_data.py``: with
probability ``short_seq_prob`` a chunk gets a shorter random target, so the
model also sees short inputs). A chunk is split at a random sentence
boundary into segments A and B, and then:

- NSP: half of the time B is replaced by text from another document (label 1,
  "random next"); the chunk's unused sentences go back to be used again, as in
  BERT. Otherwise B is the real continuation (label 0).
- SOP: half of the time A and B are swapped (label 1, "swapped"); both
  segments always come from the same document, so the model cannot
  solve the task by topic alone (the point of ALBERT's objective).

A chunk of a single sentence is split inside it. Pairs longer than the
target are trimmed from the longer segment, at its front or back at random.
Every draw comes from a generator seeded by the document's index, so the
pairs do not depend on batching or on worker count.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# After a Chinese/Japanese end mark (no space follows), or after . ! ? followed by whitespace.
_SENTENCE_END = re.compile(r"(?<=[。！？；!?…])(?=[^”’」』）)\"'])|(?<=[。！？!?][”’」』）)\"'])|(?<=[.!?])\s+")

NSP_RANDOM_NEXT, NSP_IS_NEXT = 1, 0
SOP_SWAPPED, SOP_IN_ORDER = 1, 0


def split_sentences(text: str) -> list[str]:
    """Sentences of one document (end marks stay with their sentence; empty pieces dropped)."""
    return [piece.strip() for piece in _SENTENCE_END.split(text) if piece and piece.strip()]


@dataclass
class Segment:
    """Token ids of a segment with the matching word-start flags (for whole-word masking; empty when unused)."""

    ids: list[int] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)

    def extend(self, other: Segment) -> None:
        self.ids += other.ids
        self.starts += other.starts

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class Pair:
    first: Segment
    second: Segment
    label: int


def _joined(sentences: list[Segment]) -> Segment:
    joined = Segment()
    for sentence in sentences:
        joined.extend(sentence)
    return joined


def _cut(sentence: Segment, at: int) -> list[Segment]:
    return [Segment(sentence.ids[:at], sentence.starts[:at]), Segment(sentence.ids[at:], sentence.starts[at:])]


def trim_pair(first: Segment, second: Segment, target: int, rng: np.random.Generator) -> None:
    """Drop tokens from the longer segment, at its front or back at random, until the pair fits ``target``."""
    while len(first) + len(second) > target:
        longer = first if len(first) > len(second) else second
        if rng.random() < 0.5:
            del longer.ids[0], longer.starts[0]
        else:
            longer.ids.pop(), longer.starts.pop()
    for segment in (first, second):
        if segment.starts:
            segment.starts[0] = 1  # a trimmed front would otherwise start mid-word


def document_pairs(sentences: list[Segment], objective: str, target: int, short_seq_prob: float,
                   rng: np.random.Generator, random_document: Callable[[], list[Segment]] | None) -> list[Pair]:
    """The pairs of one document (see the module docstring). ``random_document`` draws another document's
    sentences for NSP; None when there is no other document (every pair is then a real continuation)."""
    sentences = [s for s in sentences if len(s)]
    pairs: list[Pair] = []

    def draw_target() -> int:
        return int(rng.integers(2, target + 1)) if rng.random() < short_seq_prob else target

    chunk: list[Segment] = []
    length, goal, i = 0, draw_target(), 0
    while i < len(sentences):
        chunk.append(sentences[i])
        length += len(sentences[i])
        if i == len(sentences) - 1 or length >= goal:
            whole_sentences = len(chunk) >= 2
            if len(chunk) == 1 and len(chunk[0]) >= 2:  # one sentence: split inside it
                chunk = _cut(chunk[0], int(rng.integers(1, len(chunk[0]))))
            if len(chunk) >= 2:
                split = int(rng.integers(1, len(chunk)))
                first, second = _joined(chunk[:split]), _joined(chunk[split:])
                label = NSP_IS_NEXT
                if objective == "nsp" and random_document is not None and rng.random() < 0.5:
                    label = NSP_RANDOM_NEXT
                    second = _random_continuation(random_document(), max(1, goal - len(first)), rng)
                    if whole_sentences:
                        i -= len(chunk) - split  # the real continuation's sentences are used again (A's never)
                elif objective == "sop" and rng.random() < 0.5:
                    first, second, label = second, first, SOP_SWAPPED
                trim_pair(first, second, target, rng)
                if len(first) and len(second):
                    pairs.append(Pair(first, second, label))
            chunk, length, goal = [], 0, draw_target()
        i += 1
    return pairs


def _random_continuation(document: list[Segment], wanted: int, rng: np.random.Generator) -> Segment:
    """Sentences of another document from a random start, until ``wanted`` tokens."""
    document = [s for s in document if len(s)]
    if not document:
        return Segment()
    start = int(rng.integers(0, len(document)))
    taken = Segment()
    for sentence in document[start:]:
        taken.extend(Segment(list(sentence.ids), list(sentence.starts)))
        if len(taken) >= wanted:
            break
    return taken


def pair_features(texts: list[str], indices: list[int], tokenizer: Any, segmentation: str | None, objective: str,
                  max_seq_length: int, short_seq_prob: float, seed: int, special_ids: set[int],
                  label_column: str) -> dict[str, list]:
    """Model features of the pairs of a batch of documents: [CLS] A [SEP] B [SEP] with segment ids, the
    special-token mask (never masked), word starts (whole-word masking) and the pair label.

    NSP draws its "random next" segments from the other documents of the
    same batch (``datasets.map`` batches of 1,000); each document's draws come
    from a generator seeded by its index.
    """
    from ssl_cli.data.text import word_starts_of

    documents = [split_sentences(text) for text in texts]
    flat = [sentence for document in documents for sentence in document]
    encoded = tokenizer(flat, add_special_tokens=False, return_offsets_mapping=segmentation == "jieba") if flat else None
    segments: list[list[Segment]] = []
    k = 0
    for document in documents:
        sentences = []
        for text in document:
            ids = list(encoded["input_ids"][k])
            starts = word_starts_of(encoded, k, text, segmentation) if segmentation else [1] * len(ids)
            sentences.append(Segment(ids, list(starts)))
            k += 1
        segments.append(sentences)
    out: dict[str, list] = {name: [] for name in ("input_ids", "token_type_ids", "special_tokens_mask", "attention_mask",
                                                  "length", label_column)}
    if segmentation:
        out["word_starts"] = []
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    for j, index in enumerate(indices):
        rng = np.random.default_rng([seed, index, 0x5E57])
        for pair in document_pairs(segments[j], objective, max_seq_length - 3, short_seq_prob, rng,
                                   _other_document_drawer(segments, j, rng)):
            first, second = pair.first, pair.second
            ids = [cls, *first.ids, sep, *second.ids, sep]
            out["input_ids"].append(ids)
            out["token_type_ids"].append([0] * (len(first) + 2) + [1] * (len(second) + 1))
            out["special_tokens_mask"].append([1] + [int(t in special_ids) for t in first.ids] + [1]
                                              + [int(t in special_ids) for t in second.ids] + [1])
            out["attention_mask"].append([1] * len(ids))
            out["length"].append(len(ids))
            out[label_column].append(pair.label)
            if segmentation:
                out["word_starts"].append([1, *first.starts, 1, *second.starts, 1])
    return out


def _other_document_drawer(segments: list[list[Segment]], current: int,
                           rng: np.random.Generator) -> Callable[[], list[Segment]] | None:
    others = [d for d in range(len(segments)) if d != current and segments[d]]
    if not others:
        return None
    return lambda: segments[others[int(rng.integers(len(others)))]]
