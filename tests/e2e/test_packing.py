"""Several sentences per training row (ssl_cli.engine.packing): the layout, the equality check per model, the same
gradients as the unpacked batch, and tag-pos end to end."""

from __future__ import annotations

import json
import random

import pytest

from ssl_cli.engine.collate import PaddingCollator
from ssl_cli.engine.packing import (
    PACKED_EXAMPLES,
    SequencePacker,
    batch_counts,
    first_fit_decreasing,
    model_inputs,
    pack_rows,
    packing_position_offset,
    plan_packs,
)
from tests.conftest import run_cli, tiny_task_args

PADDER = PaddingCollator(["input_ids", "attention_mask", "labels"])


def _rows(lengths, seed=0, vocab=120):
    generator = random.Random(seed)
    return [{"input_ids": [generator.randrange(5, vocab) for _ in range(n)], "attention_mask": [1] * n,
             "labels": [generator.choice([-100, 0, 1, 2]) for _ in range(n)]} for n in lengths]


@pytest.mark.parametrize("seed", range(20))
def test_first_fit_decreasing_places_every_sequence_once_within_capacity(seed):
    generator = random.Random(seed)
    lengths = [generator.randint(1, 60) for _ in range(generator.randint(1, 40))]
    capacity = max(lengths) + generator.randint(0, 40)
    rows = first_fit_decreasing(lengths, capacity)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= capacity for row in rows)
    assert len(rows) <= 11 / 9 * -(-sum(lengths) // capacity) + 1  # FFD's bound over the best possible


def test_plan_packs_widens_rows_when_that_saves_padding_and_respects_the_model_limit():
    lengths = [12, 11, 10, 12, 9, 12, 11, 10]  # none fit two to a 12-token row; at 24 they pair up
    rows = plan_packs(lengths, max_capacity=512, hidden_size=768)
    assert len(rows) == 4 and max(sum(lengths[i] for i in row) for row in rows) <= 24
    assert len(plan_packs(lengths, max_capacity=12, hidden_size=768)) == 8, "never wider than the positions allow"
    skewed = [100, 3, 4, 5, 2, 90]
    assert len(plan_packs(skewed, max_capacity=512, hidden_size=768)) == 2, "short ones fill the long rows' room"


def test_packed_batch_layout():
    """Sentences end to end, each attending to itself only, positions restarting (after the offset), labels
    following their tokens, padding attending only to padding (an all-masked row would give NaN)."""
    rows = _rows([3, 2, 4])
    batch = pack_rows(PADDER, rows, [[2], [0, 1]], position_offset=2)
    assert batch["input_ids"].tolist() == [rows[2]["input_ids"] + [0], rows[0]["input_ids"] + rows[1]["input_ids"]]
    assert batch["labels"][1].tolist() == rows[0]["labels"] + rows[1]["labels"]
    assert batch["labels"][0, 4].item() == -100
    assert batch["position_ids"].tolist() == [[2, 3, 4, 5, 2], [2, 3, 4, 2, 3]]
    mask = batch["attention_mask"]
    assert mask.shape == (2, 1, 5, 5) and mask.dtype.is_floating_point is False
    assert mask[1, 0].int().tolist() == [[1, 1, 1, 0, 0]] * 3 + [[0, 0, 0, 1, 1]] * 2
    assert mask[0, 0, 4].int().tolist() == [0, 0, 0, 0, 1]
    assert batch_counts(batch)[:1] == (3,) and batch_counts(batch)[1] == 9 and batch_counts(batch)[2] == 10
    assert PACKED_EXAMPLES not in model_inputs(batch)


def _tiny(model_type: str):
    import torch
    import transformers

    torch.manual_seed(0)
    config_cls, model_cls = {
        "bert": (transformers.BertConfig, transformers.BertForTokenClassification),
        "bert-eager": (transformers.BertConfig, transformers.BertForTokenClassification),
        "roberta": (transformers.RobertaConfig, transformers.RobertaForTokenClassification),
        "deberta-v2": (transformers.DebertaV2Config, transformers.DebertaV2ForTokenClassification),
    }[model_type]
    extra = {"attn_implementation": "eager"} if model_type == "bert-eager" else {}
    config = config_cls(vocab_size=120, num_labels=3, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, pad_token_id=1, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                        max_position_embeddings=80, **extra)
    return model_cls(config)


@pytest.mark.parametrize(("model_type", "offset"), [("bert", 0), ("roberta", 2), ("bert-eager", None),
                                                    ("deberta-v2", None)])
def test_each_model_is_checked_before_it_trains_packed(model_type, offset):
    """BERT numbers positions from 0, RoBERTa after its padding index. Eager attention adds a boolean mask
    instead of selecting with it, and DeBERTa builds its relative positions from the row: packed, their
    sentences would see each other, so they fail the check and train unpacked."""
    model = _tiny(model_type)
    model.train()
    assert packing_position_offset(model, PADDER, _rows([5, 9, 3, 7])) == offset
    assert model.training, "the check leaves the model in training mode"


def test_packed_gradients_and_loss_equal_the_unpacked_batch():
    import torch

    model = _tiny("bert")
    rows = _rows([5, 19, 6, 17, 4, 7, 18, 5], seed=3)
    packer = SequencePacker(PADDER, position_offset=0, max_capacity=80, hidden_size=32)
    packed = packer(rows)
    assert packed["input_ids"].shape[0] < len(rows)

    def run(batch):
        model.zero_grad(set_to_none=True)
        loss = model(**model_inputs(batch)).loss
        loss.backward()
        return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    loss_plain, grads_plain = run(PADDER(rows))
    loss_packed, grads_packed = run(packed)
    assert loss_packed == pytest.approx(loss_plain, rel=1e-5)
    for name, grad in grads_plain.items():
        torch.testing.assert_close(grads_packed[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def _results(path) -> dict:
    return json.loads((path / "all_results.json").read_text())


def test_tag_pos_trains_packed_like_unpacked(tmp_path):
    """End to end on CPU (auto): rows hold about two sentences, padding falls, and training and evaluation are
    those of plain padded batches (the tiny recipe has no dropout)."""
    common = [*tiny_task_args("tag-pos", tmp_path / "data"), "--max-steps", "8"]
    packed = run_cli(*common, "--output-dir", str(tmp_path / "packed"), check=True)
    run_cli(*common, "--output-dir", str(tmp_path / "plain"), "--set", "training.pack_sequences=false",
            "--set", "training.padding_microbatches=false", check=True)
    assert "training on packed rows" in packed.stderr
    got, want = _results(tmp_path / "packed"), _results(tmp_path / "plain")
    assert got["train_examples_per_row"] > 1.5 and want["train_examples_per_row"] == 1
    assert got["train_padding_fraction"] < 0.1 < want["train_padding_fraction"]
    assert got["train_samples_per_second"] > 0 and got["train_steps"] == want["train_steps"] == 8
    assert got["train_loss"] == pytest.approx(want["train_loss"], rel=1e-4)
    assert got["eval_accuracy"] == pytest.approx(want["eval_accuracy"], abs=1e-9)
