"""ssl's QA metrics against the official scripts in ../shared/reference/ (skipped where that folder is absent).

The answers scored are generated here: the project's own Chinese QA contexts,
cut, extended, wrapped in punctuation of every class the official scripts
treat differently, turned full-width, and mixed with English words and
numbers. Every question's EM and F1 must equal the script's exactly.
"""

from __future__ import annotations

import importlib.util
import random
import types
from pathlib import Path

import pytest

from ssl_cli.tasks.qa.metrics import chinese_em, chinese_f1, score_qa, squad_em, squad_f1

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference"

# Marks the official scripts treat in different ways: the CMRC list (removed, no split), ASCII punctuation
# (kept as nltk tokens), full-width and CJK marks outside the list (kept), spaces, and '…' (half of '……').
MARKS = list("-:_*^/\\~`+=，。：？！“”；’《》·、「」（）－～『』") + ["……", "…"] + list(".,;!?%()[]'\"$#@&") + \
    list("％（）．，；【】〈〉—–・") + [" ", "  ", "\u3000"]
MIXED = ["70%", "70", "U.S.", "BR-123", "3.5公里", "iPhone 12", "COVID-19", "No. 5", "A+", "1,000", "Dr. Sun",
         "ＡＢＣ", "１９８９", "e-mail", "can't", "5:30", "$100", "t-shirt", "〈紅樓夢〉", "《三國演義》"]
FULL_WIDTH = {chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)}


def _official(name: str, file: str):
    path = REFERENCE / file
    if not path.is_file():
        pytest.skip(f"{path} is absent (../shared/reference/)")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cmrc():
    """cmrc2018_evaluate.py with nltk's word_tokenize minus the punkt sentence split (reference README)."""
    nltk = pytest.importorskip("nltk")
    module = _official("cmrc2018_official", "cmrc2018_evaluate.py")
    module.nltk = types.SimpleNamespace(word_tokenize=lambda text: nltk.word_tokenize(text, preserve_line=True))
    return module


@pytest.fixture(scope="module")
def squad_v1():
    return _official("squad_v11_official", "evaluate-v1.1.py")


def _contexts() -> list[str]:
    from ssl_cli.tasks.qa.data import make_squad_json

    articles = make_squad_json(60, seed=7)["data"] + make_squad_json(20, seed=8, simplified=True)["data"]
    return [paragraph["context"] for article in articles for paragraph in article["paragraphs"]]


def perturbed_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """(prediction, gold) pairs: gold spans of generated contexts and perturbed predictions of them."""
    rng = random.Random(seed)
    contexts = _contexts()
    pairs = []
    for _ in range(n):
        context = rng.choice(contexts)
        start = rng.randrange(len(context) - 2)
        gold = context[start:start + rng.randint(1, 12)]
        if rng.random() < 0.3:
            gold = _mix(gold, rng)
        pairs.append((_perturb(gold, context, rng), gold))
    return pairs


def _mix(text: str, rng: random.Random) -> str:
    at = rng.randrange(len(text) + 1)
    return text[:at] + rng.choice(["", " "]) + rng.choice(MIXED) + rng.choice(["", " "]) + text[at:]


def _perturb(gold: str, context: str, rng: random.Random) -> str:
    kind = rng.randrange(7)
    if kind == 0:  # cut
        return gold[rng.randint(0, max(0, len(gold) - 1)):] if rng.random() < 0.5 else gold[:rng.randint(0, len(gold))]
    if kind == 1:  # extended with neighbouring context
        where = context.find(gold)
        where = max(0, where)
        return context[max(0, where - rng.randint(0, 4)):where + len(gold) + rng.randint(0, 4)]
    if kind == 2:  # punctuation around and inside
        marks = [rng.choice(MARKS) for _ in range(3)]
        at = rng.randrange(len(gold) + 1)
        return marks[0] + gold[:at] + marks[1] + gold[at:] + marks[2]
    if kind == 3:  # full-width ASCII
        return "".join(FULL_WIDTH.get(ch, ch) for ch in gold)
    if kind == 4:  # mixed Chinese / English / digits
        return _mix(gold, rng)
    if kind == 5:  # case and spaces
        return f" {gold.upper()} " if rng.random() < 0.5 else gold.replace("", " ").strip()
    return gold


def test_chinese_metric_equals_cmrc2018_evaluate_on_thousands_of_perturbed_answers(cmrc):
    pairs = perturbed_pairs(4000)
    wrong = [(p, g) for p, g in pairs
             if chinese_em(p, g) != cmrc.calc_em_score([g], p) or chinese_f1(p, g) != cmrc.calc_f1_score([g], p)]
    assert not wrong, f"{len(wrong)} of {len(pairs)} differ, e.g. {wrong[:5]}"


def test_chinese_aggregate_equals_cmrc2018_evaluate(cmrc):
    """Whole-file figures: several golds per question and one question left unanswered."""
    pairs = perturbed_pairs(600, seed=1)
    rng = random.Random(2)
    questions = [{"id": f"q{i}", "answers": [{"text": g}, {"text": _perturb(g, g, rng)}]} for i, (_, g) in enumerate(pairs)]
    predictions = {f"q{i}": p for i, (p, _) in enumerate(pairs) if i != 5}
    f1, em, total, skipped = cmrc.evaluate({"data": [{"paragraphs": [{"qas": questions}]}]}, predictions)
    ours = score_qa(predictions, {q["id"]: [a["text"] for a in q["answers"]] for q in questions}, "chinese")
    assert (total, skipped) == (600, 1)
    assert ours["exact_match"] == pytest.approx(em, abs=1e-9) and ours["f1"] == pytest.approx(f1, abs=1e-9)


@pytest.mark.parametrize("prediction, gold", [
    ("70%", "70"), ("美国, 纽约", "美国纽约"), ("…故宫…", "故宫"), ("ＢＲ１２３", "BR123"), ("U.S. 總統", "U.S.總統"),
])
def test_examples_against_cmrc2018_evaluate(cmrc, prediction, gold):
    assert chinese_em(prediction, gold) == cmrc.calc_em_score([gold], prediction)
    assert chinese_f1(prediction, gold) == cmrc.calc_f1_score([gold], prediction)


@pytest.mark.parametrize("prediction, gold, em, f1", [
    ("70%", "70", 0.0, 2 / 3),  # '%' stays a token: 70 | %
    ("美国, 纽约", "美国纽约", 0.0, 4 / 9),  # ',' stays a token and splits the run: 美 国 , 纽 约
    ("…故宫…", "故宫", 0.0, 2 / 3),  # a lone '…' is not in the official list ('……' is)
    ("U.S. 總統", "U.S.總統", 0.0, 1.0),  # EM keeps the space; nltk splits 'u.s.' into u.s | .
    ("ＢＲ１２３", "BR123", 0.0, 0.0),  # full-width letters are other characters
    ("「故宮博物院」。", "故宮博物院", 1.0, 1.0),  # the official list's marks are removed
    ("長榮航空成立於1989年，BR code！", "長榮航空", 0.0, 8 / 15),  # 長 榮 航 空 成 立 於 1989 年 br code
])
def test_figures_computed_once_with_the_official_script(prediction, gold, em, f1):
    """Values the official script gives (computed with it once), for machines without ../shared/reference."""
    assert chinese_em(prediction, gold) == em
    assert chinese_f1(prediction, gold) == pytest.approx(f1)


def test_squad_metric_equals_evaluate_v11_on_perturbed_answers(squad_v1):
    rng = random.Random(3)
    words = ["The", "the", "a", "an", "Eiffel", "Tower", ",", ".", "!", "Paris", "1889", "France's", '"tallest"', "(built)", "—"]
    for _ in range(2000):
        gold = " ".join(rng.choice(words) for _ in range(rng.randint(1, 5)))
        pred = " ".join(rng.choice(words) for _ in range(rng.randint(0, 5)))
        assert squad_em(pred, gold) == float(squad_v1.exact_match_score(pred, gold)), (pred, gold)
        assert squad_f1(pred, gold) == squad_v1.f1_score(pred, gold), (pred, gold)


# dev-v1.1 questions whose gold answers include "." (normalises to nothing). 5725bad5271a42140099d0c1 in full;
# the other two with their "." gold.
DOT_GOLDS = {
    "5725bad5271a42140099d0c1": ["renewal of hostilities in the Arab–Israeli conflict", "renewal of hostilities", ".",
                                 "the Arab–Israeli conflict released the underlying economic pressure on oil prices"],
    "5730b7ce069b5314008322c4": ["."],
    "57340d124776f419006617bf": ["."],
}


def test_squad_answers_that_normalise_to_nothing_score_f1_zero():
    """evaluate-v1.1.py: no common token is F1 0, also when both sides normalise to the empty string."""
    assert squad_f1("the", "The") == 0.0 and squad_em("the", "The") == 1.0
    result = score_qa({qid: "." for qid in DOT_GOLDS}, DOT_GOLDS, "squad")
    assert result["exact_match"] == 100.0 and result["f1"] == 0.0
    result = score_qa({qid: "renewal of hostilities" for qid in DOT_GOLDS}, DOT_GOLDS, "squad")
    assert result["f1"] == pytest.approx(100 / 3) and result["exact_match"] == pytest.approx(100 / 3)


def test_squad_dot_golds_equal_evaluate_v11(squad_v1):
    dataset = [{"paragraphs": [{"qas": [{"id": qid, "answers": [{"text": g} for g in golds]}
                                        for qid, golds in DOT_GOLDS.items()]}]}]
    for prediction in (".", "the", "renewal", "renewal of hostilities"):
        predictions = dict.fromkeys(DOT_GOLDS, prediction)
        official = squad_v1.evaluate(dataset, predictions)
        ours = score_qa(predictions, DOT_GOLDS, "squad")
        assert ours["exact_match"] == pytest.approx(official["exact_match"]) and ours["f1"] == pytest.approx(official["f1"])
