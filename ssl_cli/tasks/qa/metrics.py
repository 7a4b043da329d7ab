"""Extractive-QA metrics, identical in behaviour to the official scripts, offline.

* ``squad``: SQuAD v1.1's ``evaluate-v1.1.py`` (lower-case, strip ASCII
  punctuation and English articles, token F1, max over the gold answers; a
  prediction and gold that share no token score F1 0, also when both
  normalise to nothing).
* ``squad_v2``: SQuAD v2.0's script: gold answers that normalise to nothing
  are dropped, an empty prediction matches an empty gold, plus the
  HasAns/NoAns split.
* ``chinese``: the CMRC 2018 script (``cmrc2018_evaluate.py``, also used for
  DRCD): its own 32 punctuation marks are removed, each CJK character is a
  token and runs of other characters go through nltk's word tokenizer; F1 is
  over the longest common run of those tokens, EM compares the strings with
  only those marks removed.

docs/metrics.md lists the tests that hold each one to its official script.
``SquadMetric`` and ``ChineseQAMetric`` wrap them as ``evaluate.Metric``
modules, so ``evaluate``-based code can use them: instantiate with
``load_metric``.
"""

from __future__ import annotations

import collections
import functools
import re
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ssl_cli.errors import UserError

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
    """SQuAD v1.1 token F1: no common token, including both sides normalising to nothing, scores 0."""
    pred_tokens = normalize_squad_answer(prediction).split()
    truth_tokens = normalize_squad_answer(truth).split()
    common = collections.Counter(pred_tokens) & collections.Counter(truth_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(truth_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_v2_f1(prediction: str, truth: str) -> float:
    """SQuAD v2.0 token F1: where either side normalises to nothing, 1 only when both do (no-answer matches)."""
    pred_tokens = normalize_squad_answer(prediction).split()
    truth_tokens = normalize_squad_answer(truth).split()
    if not pred_tokens or not truth_tokens:
        return float(pred_tokens == truth_tokens)
    return squad_f1(prediction, truth)


def squad_em(prediction: str, truth: str) -> float:
    return float(normalize_squad_answer(prediction) == normalize_squad_answer(truth))


# ----------------------------------------------------------------------------- Chinese

# The official script's list, in its order. '……' is one entry of two characters: compared with single
# characters it never matches, so a lone '…' is kept, as there.
CMRC_PUNCTUATION = (
    "-", ":", "_", "*", "^", "/", "\\", "~", "`", "+", "=",
    "，", "。", "：", "？", "！", "“", "”", "；", "’", "《", "》", "……", "·", "、",
    "「", "」", "（", "）", "－", "～", "『", "』",
)
_CMRC_REMOVED = frozenset(p for p in CMRC_PUNCTUATION if len(p) == 1)


def _is_cmrc_cjk(ch: str) -> bool:
    """The official script's test, ``re.search(r'[\\u4e00-\\u9fa5]', char)``: the CJK block up to U+9FA5."""
    return "\u4e00" <= ch <= "\u9fa5"


@functools.lru_cache(maxsize=1)
def _word_tokenizer() -> Callable[[str], list[str]]:
    """nltk's ``word_tokenize`` without its sentence split.

    The official script calls ``nltk.word_tokenize(text)``, which first splits
    sentences with the punkt model, a separate download. Only the sentence
    split is skipped here: it changes a token only where a full stop ends a
    sentence inside a run of non-Chinese text, and gave the same figures on
    the DRCD and CMRC 2018 dev sets.
    """
    try:
        from nltk.tokenize import NLTKWordTokenizer
    except ImportError as err:  # a dependency of ssl-cli: only a broken install lands here
        raise UserError("the CMRC 2018 / DRCD metric needs nltk: pip install nltk") from err
    return NLTKWordTokenizer().tokenize


def mixed_segmentation(text: str) -> list[str]:
    """The official CMRC 2018 segmentation (``rm_punc=True``): each character of U+4E00-U+9FA5 is a token, each
    run of other characters goes through nltk's word tokenizer, and the 32 marks of ``CMRC_PUNCTUATION`` are
    dropped without splitting there; other punctuation (ASCII ``%().,``, full-width ``，`` aside) stays."""
    tokenize = _word_tokenizer()
    segments: list[str] = []
    run = ""
    for ch in str(text).lower().strip():
        if ch in _CMRC_REMOVED:
            continue
        if _is_cmrc_cjk(ch):
            if run:
                segments.extend(tokenize(run))
                run = ""
            segments.append(ch)
        else:
            run += ch
    if run:
        segments.extend(tokenize(run))
    return segments


def remove_punctuation(text: str) -> str:
    """The official CMRC 2018 EM normalisation: lower-case, strip the ends, drop ``CMRC_PUNCTUATION``; inner
    spaces and other punctuation stay."""
    return "".join(ch for ch in str(text).lower().strip() if ch not in _CMRC_REMOVED)


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
    """CMRC 2018 F1 over the longest common run of segments; no common segment (or none at all) scores 0."""
    pred, gold = mixed_segmentation(prediction), mixed_segmentation(truth)
    lcs = longest_common_substring(gold, pred)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(pred), lcs / len(gold)
    return 2 * precision * recall / (precision + recall)


def chinese_em(prediction: str, truth: str) -> float:
    return float(remove_punctuation(prediction) == remove_punctuation(truth))


# ----------------------------------------------------------------------------- aggregate


@dataclass(frozen=True)
class QAScorer:
    """One official definition: its EM and F1, and which gold answers it scores against."""

    em: Callable[[str, str], float]
    f1: Callable[[str, str], float]
    drops_empty_golds: bool  # SQuAD v2 drops gold answers that normalise to nothing; v1.1 and CMRC keep every one


SCORERS = {
    "squad": QAScorer(squad_em, squad_f1, drops_empty_golds=False),
    "squad_v2": QAScorer(squad_em, squad_v2_f1, drops_empty_golds=True),
    "chinese": QAScorer(chinese_em, chinese_f1, drops_empty_golds=False),
}


def scored_golds(scorer: QAScorer, golds: list[str]) -> list[str]:
    """The gold answers a prediction is scored against; [""] for a question without any (a no-answer question)."""
    if scorer.drops_empty_golds:
        golds = [g for g in golds if normalize_squad_answer(g)]
    return list(golds) or [""]


def score_qa(
    predictions: dict[str, str], references: dict[str, list[str]], metric: str = "squad"
) -> dict[str, float]:
    """EM and F1 in percent, max over each question's references, as the official script of ``metric`` scores.

    A question without a prediction scores 0, as in the official scripts. A
    question with no reference answers is a no-answer question (SQuAD v2):
    it counts as correct only for an empty prediction. With ``squad_v2`` the
    HasAns/NoAns breakdown is added.
    """
    if metric not in SCORERS:
        raise ValueError(f"unknown QA metric '{metric}' (choose from {sorted(SCORERS)})")
    scorer = SCORERS[metric]
    em: dict[str, float] = {}
    f1: dict[str, float] = {}
    for qid, golds in references.items():
        em[qid], f1[qid] = _question_scores(scorer, predictions.get(qid), golds)
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


def _question_scores(scorer: QAScorer, prediction: str | None, golds: list[str]) -> tuple[float, float]:
    """(EM, F1) of one question."""
    if prediction is None:
        return 0.0, 0.0
    if not any(g.strip() for g in golds):  # a no-answer question: only an empty prediction is right
        right = scorer.em(prediction, "")
        return right, right
    golds = scored_golds(scorer, golds)
    return max(scorer.em(prediction, g) for g in golds), max(scorer.f1(prediction, g) for g in golds)


def best_null_threshold(
    best_texts: dict[str, str], score_diffs: dict[str, float], references: dict[str, list[str]], metric: str
) -> tuple[float, float]:
    """(best F1, threshold): the null-score threshold maximising F1, as the SQuAD v2 script's find_best_thresh.

    ``best_texts`` are the best *non-null* answers; a question is answered
    with its text when its null-minus-best score diff is at most the threshold.
    """
    scorer = SCORERS[metric]
    no_answer = {q: not any(g.strip() for g in refs) for q, refs in references.items()}
    current = best = float(sum(no_answer.values()))  # everything predicted empty
    best_thresh = 0.0
    for qid in sorted(references, key=lambda q: score_diffs.get(q, 0.0)):
        text = best_texts.get(qid, "")
        if no_answer[qid]:
            current += -1.0 if text else 0.0
        else:
            current += max(scorer.f1(text, g) for g in scored_golds(scorer, references[qid]))
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
