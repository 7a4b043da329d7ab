"""The tricky parts of pretraining: masking statistics, whole-word and span groups, packing, the LM loss reduction."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from ssl_cli.data.text import is_mostly_chinese, pack
from ssl_cli.tasks.pretraining.masking import IGNORE, MaskingCollator, MaskingPlan, example_rng, mask_example, word_groups

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
    from ssl_cli.engine.collate import PaddingCollator

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

    from ssl_cli.tasks.pretraining.clm import TASK as CLM
    from ssl_cli.tasks.pretraining.mlm import TASK as MLM

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


@pytest.mark.parametrize("family", ["bert", "roberta", "albert", "electra", "distilbert"])
def test_masked_positions_only_head_gives_the_full_heads_loss_and_gradients(family):
    """The sparse head must be an optimisation only: same loss, same gradients, same checkpoint keys."""
    import torch
    import transformers

    from ssl_cli.tasks.pretraining.mlm import install_training_forward

    size = {"vocab_size": 97, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64,
            "max_position_embeddings": 64}
    config = {
        "bert": lambda: transformers.BertConfig(num_hidden_layers=2, **size),
        "roberta": lambda: transformers.RobertaConfig(num_hidden_layers=2, pad_token_id=1, **size),
        "albert": lambda: transformers.AlbertConfig(num_hidden_layers=2, embedding_size=16, **size),
        "electra": lambda: transformers.ElectraConfig(num_hidden_layers=2, embedding_size=16, **size),
        "distilbert": lambda: transformers.DistilBertConfig(vocab_size=97, dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                                                            max_position_embeddings=64),
    }[family]()
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    if family == "distilbert":
        config.dropout = config.attention_dropout = 0.0
    torch.manual_seed(0)
    full = transformers.AutoModelForMaskedLM.from_config(config)
    sparse = transformers.AutoModelForMaskedLM.from_config(config)
    sparse.load_state_dict(full.state_dict())
    assert install_training_forward(sparse, sparse=True)
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(5, 97, (3, 20), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[2, 14:] = 0
    labels = torch.full_like(input_ids, -100)
    chosen = torch.rand(input_ids.shape, generator=generator) < 0.2
    labels[chosen] = input_ids[chosen]
    losses = []
    for model in (full, sparse):
        model.train()
        loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        loss.backward()
        losses.append(loss.detach())
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-6)
    for (name, a), (_, b) in zip(full.named_parameters(), sparse.named_parameters(), strict=True):
        if a.grad is not None:
            torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-6, msg=name)
    assert sparse(input_ids=input_ids, attention_mask=attention_mask).logits.shape == (3, 20, 97)  # eval: full logits
    assert sparse.state_dict().keys() == full.state_dict().keys()
    no_labels = torch.full_like(input_ids, -100)
    with torch.no_grad():
        assert sparse(input_ids=input_ids, attention_mask=attention_mask, labels=no_labels).loss.item() == 0.0
