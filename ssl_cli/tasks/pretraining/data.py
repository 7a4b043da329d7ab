"""Unlabelled text the project generates itself: passages from the tagging grammars (predictable enough for a
tiny model's LM loss to fall) and ordered stories (for sentence-order prediction)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ssl_cli.tasks.glue.data import COLOURS, OBJECTS
from ssl_cli.tasks.tagging.data import chinese_pos, english_pos


def text_corpus(n: int, seed: int, language: str = "en") -> list[str]:
    """Passages of 2-4 generated sentences (the tagging grammars): predictable enough that a tiny model's LM loss falls."""
    make = english_pos if language == "en" else chinese_pos
    joiner = " " if language == "en" else ""
    rng = np.random.default_rng(seed)
    sentences = make(4 * n, seed)
    passages, position = [], 0
    for _ in range(n):
        count = int(rng.integers(2, 5))
        passages.append(joiner.join(joiner.join(w for w, _ in s) for s in sentences[position : position + count]))
        position += count
    return passages


ORDER_MARKERS = ("first", "then", "later", "finally")
STORY_VERBS = ("rolls", "waits", "shines", "falls", "turns", "stops", "moves", "breaks")


def story_corpus(n: int, seed: int) -> list[str]:
    """Documents of 2-4 sentences about one object, in marked order ("first the kite ... then the kite ...").

    Built for the sentence-level objectives: sentence order is learnable from
    the markers (SOP), and a segment from another document is learnable from
    its different object (NSP).
    """
    rng = np.random.default_rng(seed)
    documents = []
    for _ in range(n):
        thing, count = str(rng.choice(OBJECTS)), int(rng.integers(2, 5))
        markers = sorted(rng.choice(len(ORDER_MARKERS), size=count, replace=False))
        documents.append(" ".join(f"{ORDER_MARKERS[m]} the {COLOURS[int(rng.integers(len(COLOURS)))]} {thing} "
                                  f"{rng.choice(STORY_VERBS)} ." for m in markers))
    return documents


def write_text_corpus(out_dir: str | Path, n_train: int, n_dev: int, seed: int = 0, language: str = "en") -> dict[str, Path]:
    """train.txt / dev.txt, one passage per line (language "story": ``story_corpus``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, n, offset in (("train", n_train, 0), ("dev", n_dev, 1000)):
        paths[name] = out / f"{name}.txt"
        passages = story_corpus(n, seed + offset) if language == "story" else text_corpus(n, seed + offset, language)
        paths[name].write_text("\n".join(passages) + "\n", encoding="utf-8")
    return paths
