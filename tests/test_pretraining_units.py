"""The tricky parts of pretraining: masking statistics, whole-word and span groups, packing, the LM loss reduction."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from ssl_cli.data.text import is_mostly_chinese, pack
from ssl_cli.masking import IGNORE, MaskingCollator, MaskingPlan, example_rng, mask_example, word_groups

MASK, VOCAB = 4, 1000


def _example(rng: random.Random, length: int = 128) -> tuple[list[int], list[int], list[int]]:
    """ids, special mask ([CLS] ... [SEP] and a separator in the middle), word starts (words of 1-3 pieces)."""
    ids = [rng.randrange(10, VOCAB) for _ in range(length)]
    special = [0] * length
    special[0] = special[-1] = special[length // 2] = 1
    starts, left = [], 0
    for _ in range(length):
        starts.append(int(left == 0))
        left = rng.randint(0, 2) if left == 0 else left - 1
    return ids, special, starts


def test_token_masking_proportions_on_a_large_sample():
    rng = random.Random(0)
    plan = MaskingPlan()
    chosen = masked = randomised = kept = candidates = 0
    for i in range(400):
        ids, special, _ = _example(rng)
        new, labels = mask_example(ids, special, None, plan, example_rng(1, 0, i), MASK, VOCAB)
        picked = labels != IGNORE
        assert not any(picked[j] for j, s in enumerate(special) if s), "special tokens are never masked"
        assert (labels[picked] == np.asarray(ids)[picked]).all() and (new[~picked] == np.asarray(ids)[~picked]).all()
        candidates += len(ids) - sum(special)
        chosen += int(picked.sum())
        masked += int((new[picked] == MASK).sum())
        kept += int((new[picked] == np.asarray(ids)[picked]).sum())
        randomised += int(((new[picked] != MASK) & (new[picked] != np.asarray(ids)[picked])).sum())
    assert chosen / candidates == pytest.approx(0.15, abs=0.01)
    assert masked / chosen == pytest.approx(0.8, abs=0.02)
    assert randomised / chosen == pytest.approx(0.1, abs=0.015)
    assert kept / chosen == pytest.approx(0.1, abs=0.015)


def test_custom_shares_are_honoured():
    rng = random.Random(1)
    plan = MaskingPlan(probability=0.3, mask_replace_prob=1.0, random_replace_prob=0.0)
    ids, special, _ = _example(rng, 4000)
    new, labels = mask_example(ids, special, None, plan, example_rng(0, 0, 0), MASK, VOCAB)
    picked = labels != IGNORE
    assert picked.mean() == pytest.approx(0.3, abs=0.03) and (new[picked] == MASK).all()


@pytest.mark.parametrize("unit", ["whole_word", "span"])
def test_words_are_masked_whole(unit):
    rng = random.Random(2)
    plan = MaskingPlan(unit=unit)
    total_chosen = total = 0
    for i in range(200):
        ids, special, starts = _example(rng)
        _, labels = mask_example(ids, special, starts, plan, example_rng(3, 0, i), MASK, VOCAB)
        picked = labels != IGNORE
        for group in word_groups(starts, special):
            assert len({bool(picked[p]) for p in group}) == 1, "a word is masked whole or not at all"
        assert not any(picked[j] for j, s in enumerate(special) if s)
        total_chosen += int(picked.sum())
        total += len(ids) - sum(special)
    assert total_chosen / total == pytest.approx(0.15, abs=0.03)


def test_word_groups_break_at_special_tokens():
    assert word_groups([1, 0, 1, 0, 0, 1], [1, 0, 0, 0, 1, 0]) == [[1], [2, 3], [5]]


def test_masks_are_reproducible_per_example_and_change_per_epoch():
    from ssl_cli.collate import PaddingCollator

    rows = [{"input_ids": list(range(10, 60)), "special_tokens_mask": [1] + [0] * 48 + [1], "attention_mask": [1] * 50,
             "example_index": i} for i in range(4)]
    collator = MaskingCollator(PaddingCollator(["input_ids", "attention_mask", "labels"]), MaskingPlan(), 7, MASK, VOCAB)
    first = collator(rows)
    assert (collator(list(reversed(rows)))["labels"].flip(0) == first["labels"]).all()  # per example, not per batch
    collator.set_epoch(1)
    assert not (collator(rows)["labels"] == first["labels"]).all()
    assert set(first) == {"input_ids", "attention_mask", "labels"}


@pytest.mark.parametrize("seed", range(10))
def test_packing_loses_and_repeats_nothing(seed):
    rng = random.Random(seed)
    docs = [[rng.randrange(100) for _ in range(rng.randint(1, 40))] for _ in range(rng.randint(1, 30))]
    starts = [[1] * len(d) for d in docs]
    body = rng.randint(3, 50)
    blocks = pack({"input_ids": docs, "word_starts": starts}, body, {"input_ids": -1, "word_starts": 1})
    joined = [t for block in blocks["input_ids"] for t in block]
    expected = [t for i, d in enumerate(docs) for t in ([-1] if i else []) + d]
    assert joined == expected
    assert all(len(b) == body for b in blocks["input_ids"][:-1]) and 0 < len(blocks["input_ids"][-1]) <= body
    assert [len(b) for b in blocks["word_starts"]] == [len(b) for b in blocks["input_ids"]]


def test_chinese_detection_and_jieba_word_starts():
    pytest.importorskip("jieba")
    from transformers import BertTokenizerFast

    from ssl_cli.data.text import jieba_word_boundaries, word_starts_of
    from ssl_cli.models import train_wordpiece_tokenizer

    assert is_mostly_chinese(["北京大学的学生喜欢看书"]) and not is_mostly_chinese(["the dog sees a river"])
    text = "北京大学的学生"
    assert jieba_word_boundaries(text) == {0, 4, 5}
    tokenizer: BertTokenizerFast = train_wordpiece_tokenizer(iter([text] * 5), 100, 64)
    encoded = tokenizer([text], add_special_tokens=False, return_offsets_mapping=True)
    assert word_starts_of(encoded, 0, text, "jieba") == [1, 0, 0, 0, 1, 1, 0]
    english = tokenizer(["ab cd"], add_special_tokens=False)
    assert word_starts_of(english, 0, "ab cd", "whitespace")[0] == 1


def test_eval_loss_reduction_matches_the_models_own_loss():
    """The per-block loss sums the evaluation gathers give back exactly the model's mean loss."""
    import torch
    from transformers import BertConfig, BertForMaskedLM, GPT2Config, GPT2LMHeadModel

    from ssl_cli.tasks.clm import TASK as CLM
    from ssl_cli.tasks.mlm import TASK as MLM

    torch.manual_seed(0)
    ids = torch.randint(5, 50, (3, 12))
    labels = torch.full_like(ids, IGNORE)
    labels[:, 2:6] = ids[:, 2:6]
    bert = BertForMaskedLM(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                      intermediate_size=64)).eval()
    gpt = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_embd=32, n_layer=1, n_head=2)).eval()
    for task, model, lab in ((MLM, bert, labels), (CLM, gpt, ids)):
        with torch.no_grad():
            out = model(input_ids=ids, labels=lab)
            reduced = task.eval_tensors(model(input_ids=ids), lab)
        mean = float(reduced["loss_sum"].sum() / reduced["tokens"].sum())
        assert mean == pytest.approx(float(out.loss), rel=1e-5)
        metrics, _ = task.score(None, {k: v.numpy() for k, v in reduced.items()}, None)
        assert metrics["perplexity"] == pytest.approx(math.exp(metrics["loss"]))
        assert 0 <= metrics["accuracy"] <= 1
