"""The batch-size search (``per_device_train_batch_size: auto``): which sizes it tries, and a probe that runs real
training steps on a real model, runs out of memory for real (the allocator refuses a petabyte) and leaves the
weights and every RNG as they were."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from ssl_cli.engine.batch_size import BatchProbe, is_out_of_memory, largest_fitting, longest_rows, scaled_learning_rate


@pytest.mark.parametrize(("limit", "cap", "chosen", "tried"), [
    (100, 4096, 96, [8, 16, 32, 64, 128, 96, 112, 104]),  # doubling, then halving the gap, to multiples of 8
    (5000, 4096, 4096, [8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]),  # everything fits: the cap
    (3, 4096, 3, [8, 4, 2, 3]),  # the start does not fit: halve, then bisect to single rows
    (40, 20, 20, [8, 16, 20]),  # the cap is not a power of two
    (17, 20, 16, [8, 16, 20]),  # between multiples of 8: the lower one
    (0, 4096, None, [8, 4, 2, 1]),  # not one row
])
def test_the_search_keeps_the_largest_size_that_fits(limit, cap, chosen, tried):
    size, sizes = largest_fitting(lambda n: n <= limit, cap)
    assert size == chosen
    assert sizes == tried
    assert all(n <= cap for n in sizes)


def test_real_allocator_failures_count_as_out_of_memory():
    with pytest.raises(RuntimeError) as refused:
        torch.empty(1 << 50, dtype=torch.uint8)
    assert is_out_of_memory(refused.value)
    assert not is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not is_out_of_memory(ValueError("out of memory."))


def test_probing_rows_are_the_longest():
    rows = [{"input_ids": [1] * n} for n in (3, 9, 1, 7)]
    assert [len(r["input_ids"]) for r in longest_rows(rows, [3, 9, 1, 7], 3)] == [9, 7, 3]
    assert [len(r["input_ids"]) for r in longest_rows(rows, [3, 9, 1, 7], 6)] == [9, 7, 3, 1, 9, 7]
    assert len(longest_rows(iter(rows), None, 5)) == 5  # a stream: its first rows, repeated


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    from accelerate import Accelerator
    from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, PreTrainedTokenizerFast

    from ssl_cli.engine.packing import model_inputs
    from tests.models_on_disk import TEXTS, write_tiny_model

    path = write_tiny_model("bert", tmp_path_factory.mktemp("models"))
    tokenizer = PreTrainedTokenizerFast.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    rows = [{**tokenizer(text), "labels": i % 2} for i, text in enumerate(TEXTS[:40])]
    accelerator = Accelerator(cpu=True)
    model = accelerator.prepare(model)
    return BatchProbe(accelerator, model, DataCollatorWithPadding(tokenizer), rows,
                      [len(r["input_ids"]) for r in rows], model_inputs)


def _snapshot(model):
    return ({k: v.clone() for k, v in model.state_dict().items()}, random.random(), np.random.rand(),
            torch.rand(3))


def test_a_probe_moves_no_weight_and_draws_from_no_rng(probe, monkeypatch):
    monkeypatch.setenv("SSL_FAILPOINT", "oom_above:12")
    from ssl_cli.engine.batch_size import restore_rng_states, rng_states

    states = rng_states()
    before = _snapshot(probe.model)
    restore_rng_states(states)
    states = rng_states()
    assert probe(8)  # a real forward, backward and AdamW step at lr 0
    assert not probe(16)  # the allocator refuses a petabyte
    restore_rng_states(states)
    after = _snapshot(probe.model)
    for key, value in before[0].items():
        assert torch.equal(value, after[0][key]), key
    assert before[1:3] == after[1:3]
    assert torch.equal(before[3], after[3])
    assert all(p.grad is None for p in probe.model.parameters())


def test_errors_other_than_memory_are_not_swallowed(probe):
    def broken(rows):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    with pytest.raises(RuntimeError, match="shapes"):
        BatchProbe(probe.accelerator, probe.model, broken, probe.dataset, probe.lengths, probe.model_inputs)(8)


def test_the_learning_rate_follows_the_rule_asked_for():
    from ssl_cli.config import TrainingConfig

    cfg = TrainingConfig(learning_rate=1e-4, auto_batch_reference_size=32)
    assert scaled_learning_rate(cfg, 128) == 1e-4
    cfg.auto_batch_lr_scaling = "sqrt"
    assert scaled_learning_rate(cfg, 128) == pytest.approx(2e-4)
    cfg.auto_batch_lr_scaling = "linear"
    assert scaled_learning_rate(cfg, 128) == pytest.approx(4e-4)


def test_under_bf16_weights_the_probe_steps_in_bf16_and_leaves_the_fp32_masters_as_they_were(probe, monkeypatch):
    """The probe measures the memory of the step training will take: bf16 copies forward and backward, fp32
    gradients and optimizer state; afterwards, and after a step that ran out of memory half way, the model is its
    fp32 self with no gradient anywhere."""
    from ssl_cli.engine.master_weights import MasterWeights

    model = probe.accelerator.unwrap_model(probe.model)
    weights = MasterWeights(model, probe.accelerator)
    seen: list[torch.dtype] = []
    hook = model.register_forward_pre_hook(lambda module, args: seen.append(next(module.parameters()).dtype))
    bf16_probe = BatchProbe(probe.accelerator, probe.model, probe.collate_fn, probe.dataset, probe.lengths,
                            probe.model_inputs, weights)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        assert bf16_probe(8)
        monkeypatch.setattr(type(model), "forward", _out_of_memory)
        assert not bf16_probe(8)
    finally:
        hook.remove()
        weights.close()
    assert seen == [torch.bfloat16, torch.bfloat16]
    after = model.state_dict()
    assert all(after[k].dtype == torch.float32 and torch.equal(v, after[k]) for k, v in before.items())
    assert all(p.grad is None for p in model.parameters()) and weights.grads == {}


def _out_of_memory(*args, **kwargs):
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
