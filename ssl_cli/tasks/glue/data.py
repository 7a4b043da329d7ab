"""Small, learnable sentence(-pair) tasks the project generates itself (tests, offline recipes).

* ``sentiment``: a review with filler words and one or two opinion words;
  the label follows the opinion words (single sentence, 2 classes).
* ``colour_match``: a premise naming three colours and a hypothesis
  "something is <word>": entailment when the premise names that colour,
  contradiction when it names other colours only, neutral when the word is a
  shape (pairs, 3 classes: telling the first two apart needs both sentences).
  A from-scratch bert-tiny learns neutral within a few epochs but not the
  comparison (accuracy plateaus at 0.65; measured up to 15 epochs).
* ``overlap``: two word lists; the score is 5 x the share of words they have
  in common (regression, like STS-B's 0-5 scale).

Rows are dicts with GLUE's column names; ``write_table`` writes TSV (as GLUE
distributes it), CSV, JSONL or JSON.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

FILLER = ("the", "movie", "story", "was", "and", "a", "film", "plot", "actors", "really", "quite", "this", "it", "of",
          "music", "scenes", "ending", "very", "with", "some", "we", "saw", "for", "hours", "cast")
POSITIVE = ("great", "wonderful", "brilliant", "moving", "superb", "delightful", "charming", "excellent")
NEGATIVE = ("awful", "boring", "terrible", "dull", "clumsy", "painful", "tedious", "dreadful")
OBJECTS = ("car", "house", "bird", "lamp", "boat", "kite", "chair", "door", "cup", "hat")
COLOURS = ("red", "blue", "green", "yellow", "black", "white", "purple", "orange")
SHAPES = ("round", "square", "flat", "tall", "long", "tiny")


def sentiment(n: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        label = int(rng.integers(2))
        words = list(rng.choice(FILLER, size=int(rng.integers(5, 14))))
        for _ in range(int(rng.integers(1, 3))):
            words.insert(int(rng.integers(len(words) + 1)), str(rng.choice(POSITIVE if label else NEGATIVE)))
        rows.append({"sentence": " ".join(words), "label": label})
    return rows


def colour_match(n: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        seen = list(rng.choice(COLOURS, size=3, replace=False))
        premise = f"the {rng.choice(OBJECTS)} is {seen[0]} , the {rng.choice(OBJECTS)} is {seen[1]} and the " \
                  f"{rng.choice(OBJECTS)} is {seen[2]}"
        label = str(rng.choice(["entailment", "contradiction", "neutral"]))
        if label == "entailment":  # a colour the premise mentions
            hypothesis = f"something is {rng.choice(seen)}"
        elif label == "contradiction":  # a colour it does not
            hypothesis = f"something is {rng.choice([c for c in COLOURS if c not in seen])}"
        else:  # not about colour at all
            hypothesis = f"something is {rng.choice(SHAPES)}"
        rows.append({"sentence1": premise, "sentence2": hypothesis, "label": label})
    return rows


def overlap(n: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        first = list(rng.choice(FILLER + POSITIVE, size=6, replace=False))
        shared = int(rng.integers(0, 7))
        second = first[:shared] + [w for w in rng.choice(NEGATIVE + OBJECTS, size=6 - shared, replace=False)]
        rng.shuffle(second)
        rows.append({"sentence1": " ".join(first), "sentence2": " ".join(second), "label": round(5 * shared / 6, 3)})
    return rows


def write_table(rows: list[dict[str, Any]], path: str | Path, header: bool = True) -> Path:
    """Rows to ``path`` by suffix: .tsv (no quoting, as GLUE), .csv, .jsonl or .json."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix in (".tsv", ".csv"):
        with path.open("w", encoding="utf-8", newline="") as handle:
            tsv = path.suffix == ".tsv"
            writer = csv.writer(handle, delimiter="\t" if tsv else ",", quoting=csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL,
                                escapechar="\\" if tsv else None, lineterminator="\n")
            if header:
                writer.writerow(rows[0].keys())
            writer.writerows([row.values() for row in rows])
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    else:
        path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return path


GENERATORS = {"sentiment": sentiment, "colour_match": colour_match, "overlap": overlap}


def write_task(name: str, out_dir: str | Path, n_train: int, n_dev: int, seed: int = 0, suffix: str = ".tsv") -> dict[str, Path]:
    """train/dev files of one generated task."""
    make = GENERATORS[name]
    out = Path(out_dir)
    return {"train": write_table(make(n_train, seed), out / f"train{suffix}"),
            "dev": write_table(make(n_dev, seed + 1000), out / f"dev{suffix}")}
