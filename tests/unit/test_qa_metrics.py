"""Metric normalisation: SQuAD (English) and CMRC/DRCD (Chinese character level)."""

from __future__ import annotations

import pytest

from ssl_cli.tasks.qa.metrics import (
    best_null_threshold,
    chinese_em,
    chinese_f1,
    load_metric,
    mixed_segmentation,
    normalize_squad_answer,
    score_qa,
    squad_f1,
)


def test_squad_normalisation_strips_articles_punctuation_case():
    assert normalize_squad_answer("The  Eiffel Tower!") == "eiffel tower"
    assert normalize_squad_answer("an apple, a day") == "apple day"


def test_squad_f1_partial_overlap():
    assert squad_f1("the Eiffel Tower in Paris", "Eiffel Tower") == pytest.approx(2 * (2 / 4) * 1 / (2 / 4 + 1))


def test_chinese_segmentation_keeps_latin_words_and_numbers_whole():
    assert mixed_segmentation("長榮航空成立於1989年，BR code！") == ["長", "榮", "航", "空", "成", "立", "於", "1989", "年", "br", "code"]


def test_chinese_segmentation_keeps_marks_outside_the_official_list():
    """ASCII punctuation becomes nltk tokens, and removed marks do not split a run (cmrc2018_evaluate.py)."""
    assert mixed_segmentation("70%") == ["70", "%"]
    assert mixed_segmentation("ab-cd") == ["abcd"]
    assert mixed_segmentation("美国, 纽约") == ["美", "国", ",", "纽", "约"]


def test_chinese_em_ignores_punctuation_and_full_width_marks():
    assert chinese_em("「故宮博物院」。", "故宮博物院") == 1.0
    assert chinese_em("故宮", "故宮博物院") == 0.0


def test_chinese_f1_is_character_level_lcs():
    # pred 4 chars, gold 5 chars, longest common substring 4 -> P=1, R=0.8
    assert chinese_f1("故宮博物", "故宮博物院") == pytest.approx(2 * 1 * 0.8 / 1.8)
    # common characters that are not contiguous only count as the longest run
    assert chinese_f1("臺北故宮", "故宮臺北") == pytest.approx(0.5)


def test_max_over_references_and_percentages():
    result = score_qa({"a": "臺北", "b": "高雄"}, {"a": ["臺北市", "臺北"], "b": ["新竹"]}, "chinese")
    assert result["exact_match"] == pytest.approx(50.0)
    assert result["f1"] == pytest.approx(50.0)


def test_squad_v2_no_answer_breakdown():
    result = score_qa({"a": "", "b": "x", "c": "Paris"}, {"a": [], "b": [], "c": ["Paris"]}, "squad_v2")
    assert result["NoAns_exact"] == pytest.approx(50.0)
    assert result["HasAns_exact"] == pytest.approx(100.0)
    assert result["exact_match"] == pytest.approx(200 / 3)


def test_best_null_threshold_finds_the_separating_diff():
    refs = {"a": ["Paris"], "b": []}
    best_f1, thresh = best_null_threshold({"a": "Paris", "b": "Rome"}, {"a": -2.0, "b": 3.0}, refs, "squad_v2")
    assert best_f1 == pytest.approx(100.0) and thresh == pytest.approx(-2.0)


def test_evaluate_module_interface():
    metric = load_metric("chinese")
    out = metric.compute(
        predictions=[{"id": "1", "prediction_text": "臺北"}],
        references=[{"id": "1", "answers": {"text": ["臺北"], "answer_start": [0]}}],
    )
    assert out["exact_match"] == 100.0 and out["f1"] == 100.0
