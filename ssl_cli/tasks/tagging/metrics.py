"""Tagging metrics: word accuracy, a per-tag report, and entity-level scores computed as seqeval computes them.

Pure Python, offline. ``entity_scores`` reproduces seqeval's default
(conlleval-compatible, non-strict) chunking, which is what Hugging Face's
``run_ner.py`` reports through ``evaluate.load("seqeval")``: an ``I-X`` after
``O`` starts an entity, a change of type ends one. The output keys follow that
module (``overall_precision``, ``overall_f1``, per type ``number``...).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

Tags = Sequence[Sequence[str]]


def word_accuracy(gold: Tags, predicted: Tags) -> float:
    """Share of words whose tag is right, over all sentences."""
    _check_shapes(gold, predicted)
    total = sum(len(sentence) for sentence in gold)
    right = sum(g == p for gs, ps in zip(gold, predicted, strict=True) for g, p in zip(gs, ps, strict=True))
    return right / total if total else 0.0


def _check_shapes(gold: Tags, predicted: Tags) -> None:
    if len(gold) != len(predicted):
        raise ValueError(f"{len(predicted)} predicted sentences for {len(gold)} gold sentences")
    for i, (g, p) in enumerate(zip(gold, predicted, strict=True)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(p)} predicted tags for {len(g)} words")


def _prf(true_positives: int, predicted: int, gold: int) -> dict[str, float]:
    precision = true_positives / predicted if predicted else 0.0
    recall = true_positives / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def tag_report(gold: Tags, predicted: Tags) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support of every tag (gold or predicted), word by word."""
    _check_shapes(gold, predicted)
    gold_counts, predicted_counts, right = Counter(), Counter(), Counter()
    for gs, ps in zip(gold, predicted, strict=True):
        for g, p in zip(gs, ps, strict=True):
            gold_counts[g] += 1
            predicted_counts[p] += 1
            right[g] += g == p
    tags = sorted(set(gold_counts) | set(predicted_counts))
    return {tag: {**_prf(right[tag], predicted_counts[tag], gold_counts[tag]), "support": gold_counts[tag]} for tag in tags}


def macro_f1(report: dict[str, dict[str, float]]) -> float:
    """Mean F1 over the tags that occur in the gold data."""
    scores = [row["f1"] for row in report.values() if row["support"]]
    return sum(scores) / len(scores) if scores else 0.0


# ----------------------------------------------------------------------------- entities (seqeval's default mode)


def _split_tag(tag: str, suffix: bool) -> tuple[str, str]:
    """``B-PER`` -> (``B``, ``PER``); an untyped ``B`` has type ``_``, as in seqeval."""
    if suffix:
        return tag[-1], tag[:-1].rsplit("-", maxsplit=1)[0] or "_"
    return tag[0], tag[1:].split("-", maxsplit=1)[-1] or "_"


def _ends_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    if prev_tag in ("E", "S"):
        return True
    if prev_tag in ("B", "I") and tag in ("B", "S", "O"):
        return True
    return prev_tag not in ("O", ".") and prev_type != type_


def _starts_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    if tag in ("B", "S"):
        return True
    if prev_tag in ("E", "S", "O") and tag in ("E", "I"):
        return True
    return tag not in ("O", ".") and prev_type != type_


def entities(tags: Sequence[str], suffix: bool = False) -> list[tuple[str, int, int]]:
    """(type, first, last) of every entity in one tag sequence (BIO, IOB1, IOE or BIOES)."""
    chunks = []
    prev_tag, prev_type, begin = "O", "", 0
    for i, chunk in enumerate([*tags, "O"]):
        tag, type_ = _split_tag(chunk, suffix)
        if _ends_chunk(prev_tag, tag, prev_type, type_):
            chunks.append((prev_type, begin, i - 1))
        if _starts_chunk(prev_tag, tag, prev_type, type_):
            begin = i
        prev_tag, prev_type = tag, type_
    return chunks


def entity_scores(gold: Tags, predicted: Tags) -> dict[str, Any]:
    """seqeval-style micro scores over entities, per type and overall, plus word accuracy.

    Entities are collected per sentence (seqeval joins the sentences with an
    ``O`` between them, which is the same thing).
    """
    _check_shapes(gold, predicted)
    gold_entities, predicted_entities = set(), set()
    for s, (gs, ps) in enumerate(zip(gold, predicted, strict=True)):
        gold_entities.update((s, *e) for e in entities(gs))
        predicted_entities.update((s, *e) for e in entities(ps))
    right = gold_entities & predicted_entities
    result: dict[str, Any] = {}
    for type_ in sorted({e[1] for e in gold_entities | predicted_entities}):
        n_gold = sum(e[1] == type_ for e in gold_entities)
        n_pred = sum(e[1] == type_ for e in predicted_entities)
        n_right = sum(e[1] == type_ for e in right)
        result[type_] = {**_prf(n_right, n_pred, n_gold), "number": n_gold}
    overall = _prf(len(right), len(predicted_entities), len(gold_entities))
    result.update({f"overall_{k}": v for k, v in overall.items()})
    result["overall_accuracy"] = word_accuracy(gold, predicted)
    return result


def detect_scheme(labels: Sequence[str]) -> str:
    """``bioes`` / ``bio`` when every label is ``O`` or a prefixed entity tag, else ``none`` (POS tags)."""
    prefixes = set()
    for label in labels:
        if label == "O":
            continue
        if len(label) < 3 or label[1] != "-" or label[0] not in "BIES":
            return "none"
        prefixes.add(label[0])
    if "B" not in prefixes:
        return "none"
    return "bioes" if prefixes & {"E", "S"} else "bio"


def load_metric():
    """An ``evaluate.Metric`` with seqeval's inputs and outputs (lists of tag lists), computed offline."""
    import datasets
    import evaluate

    class SeqevalMetric(evaluate.Metric):
        def _info(self):
            return evaluate.MetricInfo(
                description="Entity-level precision/recall/F1 as seqeval's default mode computes them, offline.",
                citation="",
                inputs_description="predictions and references: one list of tags per sentence",
                features=datasets.Features({"predictions": datasets.Sequence(datasets.Value("string")),
                                            "references": datasets.Sequence(datasets.Value("string"))}),
            )

        def _compute(self, predictions, references):
            return entity_scores(references, predictions)

    return SeqevalMetric()
