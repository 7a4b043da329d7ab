"""Stride windows and answer labels on real tokenizers (trained on the fly), Chinese and English."""

from __future__ import annotations

import pytest

from ssl_cli.models import train_wordpiece_tokenizer
from ssl_cli.tasks.qa.task import label_windows

TRADITIONAL = "臺灣的首都是臺北，人口約二百五十萬。長榮航空成立於1989年，總部位於桃園。「故宮博物院」收藏了許多文物，遊客眾多！"
SIMPLIFIED = "台湾的首都是台北，人口约二百五十万。长荣航空成立于1989年，总部位于桃园。“故宫博物院”收藏了许多文物，游客众多！"
ENGLISH = "The Normans were the people who in the 10th and 11th centuries gave their name to Normandy, a region in France."


@pytest.fixture(scope="module")
def tokenizer():
    texts = [TRADITIONAL, SIMPLIFIED, ENGLISH, "成立於哪一年？", "哪裡收藏文物？", "Where is Normandy?"] * 3
    return train_wordpiece_tokenizer(iter(texts), vocab_size=400, model_max_length=512)


def windows(tokenizer, question, context, max_len=24, stride=6):
    return tokenizer([question], [context], truncation="only_second", max_length=max_len, stride=stride,
                     return_overflowing_tokens=True, return_offsets_mapping=True, padding=False)


@pytest.mark.parametrize(
    ("context", "question", "answer"),
    [
        (TRADITIONAL, "成立於哪一年？", "1989"),
        (TRADITIONAL, "哪裡收藏文物？", "故宮博物院"),
        (SIMPLIFIED, "成立于哪一年？", "1989"),
        (SIMPLIFIED, "哪里收藏文物？", "故宫博物院"),
        (ENGLISH, "Where is Normandy?", "a region in France"),
    ],
)
def test_every_window_labels_the_answer_exactly_or_cls(tokenizer, context, question, answer):
    start_char = context.index(answer)
    enc = windows(tokenizer, question, context)
    assert len(enc["input_ids"]) >= 2, "the context should need several windows"
    starts, ends = label_windows(enc, [{"text": [answer], "answer_start": [start_char]}], 1, tokenizer.cls_token_id)
    inside = 0
    for w, (s, e) in enumerate(zip(starts, ends, strict=True)):
        offsets = enc["offset_mapping"][w]
        if s == 0:
            assert e == 0
            seq = enc.sequence_ids(w)
            ctx = [offsets[i] for i in range(len(seq)) if seq[i] == 1]
            assert not (ctx[0][0] <= start_char and ctx[-1][1] >= start_char + len(answer)), "answer was in this window"
        else:
            inside += 1
            assert context[offsets[s][0] : offsets[e][1]] == answer
    assert inside >= 1


def test_no_answer_is_labelled_at_cls(tokenizer):
    enc = windows(tokenizer, "成立於哪一年？", TRADITIONAL)
    starts, ends = label_windows(enc, [{"text": [], "answer_start": []}], 1, tokenizer.cls_token_id)
    assert set(starts) == {0} and set(ends) == {0}


def test_full_width_punctuation_offsets_round_trip(tokenizer):
    enc = tokenizer(["？"], ["「故宮」，！"], return_offsets_mapping=True)
    seq = enc.sequence_ids(0)
    pieces = ["「故宮」，！"[a:b] for (a, b), s in zip(enc["offset_mapping"][0], seq, strict=True) if s == 1]
    assert "".join(pieces) == "「故宮」，！"


def test_canonical_answers_accepts_every_documented_shape_and_refuses_wrong_types():
    """{text: [...], answer_start: [...]}, a list of objects, a single text and start, answer_text/answer_start
    columns (a missing start is -1, unknown); a non-numeric start or lists of two lengths are one-line errors."""
    from ssl_cli.errors import UserError
    from ssl_cli.tasks.qa.task import canonical_answers

    one = {"text": ["ab"], "answer_start": [3]}
    assert canonical_answers({"answers": one}, "r") == one
    assert canonical_answers({"answers": [{"text": "ab", "answer_start": 3}]}, "r") == one
    assert canonical_answers({"answers": {"text": "ab", "answer_start": "3"}}, "r") == one
    assert canonical_answers({"answer_text": "ab", "answer_start": 3}, "r") == one
    assert canonical_answers({"answer_text": "ab"}, "r") == {"text": ["ab"], "answer_start": [-1]}
    assert canonical_answers({"answers": {"text": ["ab"]}}, "r") == {"text": ["ab"], "answer_start": [-1]}
    assert canonical_answers({"answer_text": ""}, "r") == {"text": [], "answer_start": []}
    for bad, fragment in [({"answers": {"text": ["a", "b"], "answer_start": [0]}}, "one length"),
                          ({"answers": [{"text": "a", "answer_start": "x"}]}, "answer_start is 'x'"),
                          ({"answers": [{"text": ["a"], "answer_start": 0}]}, "not a string"),
                          ({"answers": "a"}, "'answers' must be")]:
        with pytest.raises(UserError, match=fragment):
            canonical_answers(bad, "r")
