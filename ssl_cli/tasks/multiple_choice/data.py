"""A small, learnable multiple-choice set the project generates itself, in SWAG's and C3's layouts.

A review names one opinion word; the right ending says how the reviewer felt
(loved / hated it), among one wrong feeling and two unrelated endings. Telling
the two feelings apart needs the context; the unrelated endings need none.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

FILLER = ("the", "movie", "story", "was", "and", "a", "film", "plot", "actors", "really", "quite", "this", "it", "of")
POSITIVE = ("great", "wonderful", "brilliant", "moving", "superb", "delightful", "charming", "excellent")
NEGATIVE = ("awful", "boring", "terrible", "dull", "clumsy", "painful", "tedious", "dreadful")
UNRELATED = ("the bus was late .", "it rained all day .", "the shop was closed .", "my phone rang .")


def questions(n: int, seed: int) -> list[dict[str, Any]]:
    """SWAG-style rows: sent1 (the review), sent2 (the ending's start), ending0..3, label."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        positive = bool(rng.integers(2))
        words = [str(w) for w in rng.choice(FILLER, size=int(rng.integers(3, 7)))]
        words.insert(int(rng.integers(len(words) + 1)), str(rng.choice(POSITIVE if positive else NEGATIVE)))
        right, wrong = ("loved it .", "hated it .") if positive else ("hated it .", "loved it .")
        endings = [right, wrong, *rng.choice(UNRELATED, size=2, replace=False).tolist()]
        order = rng.permutation(4)
        rows.append({"sent1": " ".join(words) + " .", "sent2": "so i",
                     **{f"ending{i}": endings[j] for i, j in enumerate(order)}, "label": int(np.argmax(order == 0))})
    return rows


def write_swag_task(out_dir: str | Path, n_train: int, n_dev: int, seed: int = 0) -> dict[str, Path]:
    """train.jsonl / dev.jsonl in SWAG's columns."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, n, split_seed in (("train", n_train, seed), ("dev", n_dev, seed + 1000)):
        path = out / f"{split}.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row in questions(n, split_seed)), encoding="utf-8")
        paths[split] = path
    return paths


def as_c3(rows: list[dict[str, Any]]) -> list[list[Any]]:
    """The same questions as a C3 file: [passage lines, [{question, choice, answer (text)}], id] per passage."""
    items = []
    for n, row in enumerate(rows):
        choices = [f"{row['sent2']} {row[f'ending{i}']}" for i in range(4)]
        items.append([[row["sent1"]], [{"question": "how did the reviewer feel ?", "choice": choices,
                                        "answer": choices[row["label"]]}], f"{n}"])
    return items


def as_race(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The same questions as one RACE passage file (a cloze question per row; letters as answers)."""
    return {"article": " ".join(row["sent1"] for row in rows), "id": "sample.txt",
            "questions": [f"{row['sent1']} so i _" for row in rows],
            "options": [[row[f"ending{i}"] for i in range(4)] for row in rows],
            "answers": ["ABCD"[row["label"]] for row in rows]}
