"""Unlabelled text for pretraining: tokenise, mark word starts (for whole-word masking), pack into blocks.

Packing concatenates documents (a separator token between them) and cuts the
stream into blocks of exactly ``max_seq_length`` tokens, as ``run_mlm.py`` and
``run_clm.py`` do, so no compute goes to padding. Unlike those scripts, the
tail of each batch of documents is kept as a shorter block rather than
dropped: every token of the corpus is trained on exactly once per epoch.
``line_by_line`` keeps one document per example instead (truncated to the
block length), for corpora whose lines must not be mixed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def is_mostly_chinese(texts: Sequence[str], threshold: float = 0.3) -> bool:
    """Whether CJK characters make up at least ``threshold`` of the non-space characters of ``texts``."""
    sample = "".join(texts)
    letters = sum(not ch.isspace() for ch in sample)
    return letters > 0 and len(_CJK.findall(sample)) / letters >= threshold


def jieba_word_boundaries(text: str) -> set[int]:
    """Character offsets where jieba starts a word (Chinese whole-word masking without a reference file)."""
    import jieba

    jieba.setLogLevel(60)
    boundaries, position = set(), 0
    for word in jieba.cut(text, HMM=True):
        boundaries.add(position)
        position += len(word)
    return boundaries


def word_starts_of(encoding: Any, index: int, text: str, segmentation: str) -> list[int]:
    """1 where a token starts a word, for one tokenised text (no special tokens).

    ``whitespace``: the tokenizer's own pre-tokenised words (WordPiece
    continuations ``##`` never start one; each CJK character is its own word).
    ``jieba``: words from jieba's segmentation, mapped onto the tokens by
    character offsets, so the characters of 北京大学 are masked together.
    """
    if segmentation == "jieba":
        boundaries = jieba_word_boundaries(text)
        return [int(start in boundaries) for start, _ in encoding["offset_mapping"][index]]
    starts, previous = [], None
    for word in encoding.word_ids(index):
        starts.append(int(word != previous))
        previous = word
    return starts


def pack(streams: dict[str, list[list[int]]], block_body: int, separator: dict[str, int] | None) -> dict[str, list[list[int]]]:
    """Concatenate each column's per-document lists (``separator[column]`` between documents) and cut into blocks.

    All columns are cut at the same positions. The last block may be shorter.
    Nothing is dropped and nothing repeated: the blocks joined are the stream.
    """
    joined: dict[str, list[int]] = {name: [] for name in streams}
    documents = len(next(iter(streams.values())))
    for d in range(documents):
        for name, column in streams.items():
            if d and separator is not None:
                joined[name].append(separator[name])
            joined[name].extend(column[d])
    total = len(next(iter(joined.values())))
    return {name: [values[i : i + block_body] for i in range(0, total, block_body)] for name, values in joined.items()}
