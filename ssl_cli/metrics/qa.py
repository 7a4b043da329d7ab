"""Extractive-QA metrics, identical in behaviour to the official scripts, offline.

* ``squad`` / ``squad_v2``: the SQuAD v1.1/v2.0 evaluation (lower-case, strip
  punctuation and English articles, token F1, max over the gold answers;
  v2 adds HasAns/NoAns splits, an empty prediction matching an empty gold).
* ``chinese``: the CMRC 2018 / DRCD evaluation: each CJK character is a
  token while Latin words and numbers stay whole, punctuation (Chinese,
  full-width and ASCII) is removed, F1 uses the longest common substring of
  those segments, EM compares the punctuation-free strings, max over the
  references.

The scoring functions are plain Python; ``SquadMetric`` and ``ChineseQAMetric``
wrap them as ``evaluate.Metric`` modules, so ``evaluate``-based code can use
them: ``evaluate.load("ssl_cli/metrics/qa.py")`` is not needed, instantiate
the class.
"""

from __future__ import annotations

import collections
import re
import string
import unicodedata
from collections.abc import Sequence

# ----------------------------------------------------------------------------- SQuAD

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)


def normalize_squad_answer(text: str) -> str:
    """Lower text and remove punctuation, articles and extra whitespace (official SQuAD)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def squad_f1(prediction: str, truth: str) -> float:
    pred_tokens = normalize_squad_answer(prediction).split()
    truth_tokens = normalize_squad_answer(truth).split()
    if not pred_tokens or not truth_tokens:  # SQuAD v2: no-answer matches only no-answer
        return float(pred_tokens == truth_tokens)
    common = collections.Counter(pred_tokens) & collections.Counter(truth_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(truth_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_em(prediction: str, truth: str) -> float:
    return float(normalize_squad_answer(prediction) == normalize_squad_answer(truth))


# ----------------------------------------------------------------------------- Chinese

_CJK_PUNCT = set(
    "－：_*^/\\~`+=，。：？！“”；’《》……·、「」（）－～『』【】〔〕〈〉—–﹏・．,.;:?!'\"()[]{}<>"
    "｛｝［］＜＞＂＇＃＄％＆＊＋／＠＼＾＿｀｜￥…"
)


def _is_cjk(ch: str) -> bool:
    code = ord(ch)
    return (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0x20000 <= code <= 0x2A6DF
        or 0xF900 <= code <= 0xFAFF
        or 0x2F800 <= code <= 0x2FA1F
    )


def _is_punct(ch: str) -> bool:
    return ch in _CJK_PUNCT or ch in _PUNCT or unicodedata.category(ch).startswith("P")


def mixed_segmentation(text: str) -> list[str]:
    """Split into CJK characters and whole Latin/number words, dropping punctuation and spaces."""
    segments: list[str] = []
    word = ""
    for ch in text.lower().strip():
        if _is_cjk(ch) or _is_punct(ch) or ch.isspace():
            if word:
                segments.append(word)
                word = ""
            if _is_cjk(ch):
                segments.append(ch)
        else:
            word += ch
    if word:
        segments.append(word)
    return segments


def remove_punctuation(text: str) -> str:
    return "".join(ch for ch in text.lower().strip() if not _is_punct(ch) and not ch.isspace())


def longest_common_substring(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common contiguous run of two segment lists."""
    best = 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, 1):
            if x == y:
                cur[j] = prev[j - 1] + 1
                best = max(best, cur[j])
        prev = cur
    return best


def chinese_f1(prediction: str, truth: str) -> float:
    pred, gold = mixed_segmentation(prediction), mixed_segmentation(truth)
    if not pred or not gold:
        return float(pred == gold)
    lcs = longest_common_substring(pred, gold)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(pred), lcs / len(gold)
    return 2 * precision * recall / (precision + recall)


def chinese_em(prediction: str, truth: str) -> float:
    return float(remove_punctuation(prediction) == remove_punctuation(truth))


# ----------------------------------------------------------------------------- aggregate

SCORERS = {"squad": (squad_em, squad_f1), "squad_v2": (squad_em, squad_f1), "chinese": (chinese_em, chinese_f1)}


def score_qa(
    predictions: dict[str, str], references: dict[str, list[str]], metric: str = "squad"
) -> dict[str, float]:
    """EM and F1 in percent, max over each question's references.

    A question with no reference answers is a no-answer question (SQuAD v2):
    it counts as correct only for an empty prediction. With ``squad_v2`` the
    HasAns/NoAns breakdown is added.
    """
    if metric not in SCORERS:
        raise ValueError(f"unknown QA metric '{metric}' (choose from {sorted(SCORERS)})")
    em_fn, f1_fn = SCORERS[metric]
    em: dict[str, float] = {}
    f1: dict[str, float] = {}
    for qid, golds in references.items():
        pred = predictions.get(qid, "")
        golds = [g for g in golds if g.strip()] or [""]
        em[qid] = max(em_fn(pred, g) for g in golds)
        f1[qid] = max(f1_fn(pred, g) for g in golds)
    total = max(len(references), 1)
    result = {"exact_match": 100.0 * sum(em.values()) / total, "f1": 100.0 * sum(f1.values()) / total}
    if metric == "squad_v2":
        has = [q for q, g in references.items() if any(x.strip() for x in g)]
        no = [q for q in references if q not in set(has)]
        for name, ids in (("HasAns", has), ("NoAns", no)):
            if ids:
                result[f"{name}_exact"] = 100.0 * sum(em[q] for q in ids) / len(ids)
                result[f"{name}_f1"] = 100.0 * sum(f1[q] for q in ids) / len(ids)
                result[f"{name}_total"] = float(len(ids))
    result["total"] = float(len(references))
    return result


def best_null_threshold(
    best_texts: dict[str, str], score_diffs: dict[str, float], references: dict[str, list[str]], metric: str
) -> tuple[float, float]:
    """(best F1, threshold): the null-score threshold maximising F1, as the SQuAD v2 script's find_best_thresh.

    ``best_texts`` are the best *non-null* answers; a question is answered
    with its text when its null-minus-best score diff is at most the threshold.
    """
    _, f1_fn = SCORERS[metric]
    no_answer = {q: not any(g.strip() for g in refs) for q, refs in references.items()}
    current = best = float(sum(no_answer.values()))  # everything predicted empty
    best_thresh = 0.0
    for qid in sorted(references, key=lambda q: score_diffs.get(q, 0.0)):
        text = best_texts.get(qid, "")
        if no_answer[qid]:
            current += -1.0 if text else 0.0
        else:
            current += max(f1_fn(text, g) for g in references[qid] if g.strip())
        if current > best:
            best, best_thresh = current, score_diffs.get(qid, 0.0)
    return 100.0 * best / max(len(references), 1), best_thresh


# ----------------------------------------------------------------------------- evaluate modules


def _metric_class(name: str, metric: str, description: str):
    import datasets
    import evaluate

    class _QAMetric(evaluate.Metric):
        def _info(self):
            return evaluate.MetricInfo(
                description=description,
                citation="",
                inputs_description="predictions: [{'id', 'prediction_text'}]; references: [{'id', 'answers': {'text': [...]}}]",
                features=datasets.Features(
                    {
                        "predictions": {"id": datasets.Value("string"), "prediction_text": datasets.Value("string")},
                        "references": {
                            "id": datasets.Value("string"),
                            "answers": datasets.Sequence(
                                {"text": datasets.Value("string"), "answer_start": datasets.Value("int32")}
                            ),
                        },
                    }
                ),
            )

        def _compute(self, predictions, references):
            preds = {p["id"]: p["prediction_text"] for p in predictions}
            refs = {r["id"]: list(r["answers"]["text"]) for r in references}
            return score_qa(preds, refs, metric)

    _QAMetric.__name__ = name
    return _QAMetric


def load_metric(metric: str):
    """An ``evaluate.Metric`` instance for ``squad``, ``squad_v2`` or ``chinese`` (offline)."""
    descriptions = {
        "squad": "SQuAD v1.1 exact match and F1",
        "squad_v2": "SQuAD v2.0 exact match and F1 with HasAns/NoAns",
        "chinese": "CMRC 2018 / DRCD character-level exact match and F1",
    }
    return _metric_class(f"{metric.title().replace('_', '')}Metric", metric, descriptions[metric])()
