"""``mixed_precision: bf16-weights`` (``engine.master_weights``): bf16 forward and backward on a real transformers
model, fp32 gradients summed over micro-batches, fp32 masters that the bf16 passes never touch."""

from __future__ import annotations

import copy

import pytest
import torch
from accelerate import Accelerator

from ssl_cli.engine.master_weights import MasterWeights, check_master_weights
from ssl_cli.errors import UserError


def tiny_bert(seed: int = 0):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return BertForSequenceClassification(config)


def batch(seed: int, rows: int = 3, length: int = 7) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {"input_ids": torch.randint(1, 64, (rows, length), generator=generator),
            "labels": torch.randint(0, 2, (rows,), generator=generator)}


def test_the_passes_run_in_bf16_and_the_gradients_come_back_summed_in_fp32():
    model = tiny_bert()
    reference = copy.deepcopy(model).bfloat16()  # what bf16 weights compute, done the plain way
    masters = {name: p.detach().clone() for name, p in model.named_parameters()}
    weights = MasterWeights(model, Accelerator(cpu=True))

    weights.enter()
    assert model.dtype == torch.bfloat16 and all(p.dtype == torch.bfloat16 for p in model.parameters())
    losses = []
    for seed in (1, 2):  # two micro-batches of one window
        loss = model(**batch(seed)).loss
        assert loss.dtype == torch.bfloat16
        loss.backward()
        assert all(p.grad is None for p in model.parameters()), "the bf16 gradients are folded away as they come"
        losses.append(loss.detach())
        reference(**batch(seed)).loss.backward()
    weights.finish()

    assert all(p.dtype == torch.float32 for p in model.parameters())
    for name, param in model.named_parameters():
        assert torch.equal(param.detach(), masters[name]), f"{name}: the bf16 passes changed the fp32 master"
        expected = dict(reference.named_parameters())[name].grad
        assert param.grad.dtype == torch.float32
        # the reference summed the two bf16 gradients in bf16; here they are summed in fp32
        torch.testing.assert_close(param.grad, expected.float(), rtol=2e-2, atol=1e-3, msg=name)
    first = dict(model.named_parameters())["classifier.weight"]
    assert not torch.equal(first.grad, first.grad.bfloat16().float()), "summed in fp32: not bf16-rounded"


def casts(step) -> int:
    """How many dtype conversions (``aten::_to_copy``) ``step()`` runs, by torch's own profiler."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as recorded:
        step()
    return sum(event.count for event in recorded.key_averages() if event.key == "aten::_to_copy")


def test_the_passes_cast_nothing_but_each_gradient_once_where_autocast_casts_at_every_layer():
    """What the mode is for: autocast converts weights and activations around every matmul, each a pass over
    memory; here the forward converts nothing, and backward converts each gradient once, into fp32."""
    model = tiny_bert()
    inputs = batch(1, rows=4, length=16)

    def autocast_step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            model(**inputs).loss.backward()

    autocast_casts = casts(autocast_step)
    model.zero_grad(set_to_none=True)
    weights = MasterWeights(model, Accelerator(cpu=True))
    weights.enter()
    with torch.no_grad():
        assert casts(lambda: model(**inputs)) == 0
    assert casts(lambda: model(**inputs).loss.backward()) == len(list(model.parameters()))
    assert autocast_casts > 2 * len(list(model.parameters()))


def test_an_optimizer_step_reaches_the_bf16_copies_at_the_next_window():
    model = tiny_bert()
    weights = MasterWeights(model, Accelerator(cpu=True))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    weights.enter()
    model(**batch(1)).loss.backward()
    weights.finish()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    stepped = {name: p.detach().clone() for name, p in model.named_parameters()}
    assert all(state["exp_avg"].dtype == torch.float32 for state in optimizer.state.values())

    weights.enter()
    for name, param in model.named_parameters():
        assert torch.equal(param.detach(), stepped[name].bfloat16()), name
    weights.leave()
    for name, param in model.named_parameters():
        assert torch.equal(param.detach(), stepped[name]), name


def test_evaluation_computes_in_bf16_and_leaves_the_masters():
    model = tiny_bert()
    weights = MasterWeights(model, Accelerator(cpu=True))
    with torch.inference_mode(), weights.computed():
        logits = model(**batch(3)).logits
    assert logits.dtype == torch.bfloat16
    assert model.dtype == torch.float32


def test_evaluation_after_training_sees_weights_loaded_into_the_masters():
    """``load_best_model_at_end`` loads the best checkpoint into the fp32 model after the last step: the
    predictions that follow must come from it, not from the last step's bf16 copies."""
    model = tiny_bert()
    weights = MasterWeights(model, Accelerator(cpu=True))
    with torch.inference_mode(), weights.computed():
        model(**batch(3))
    weights.close()
    best = tiny_bert(seed=1)
    model.load_state_dict(best.state_dict())
    with torch.inference_mode(), weights.computed():
        got = model(**batch(3)).logits
        expected = best.bfloat16()(**batch(3)).logits
    assert torch.equal(got, expected)


def test_a_frozen_parameter_computes_in_bf16_and_gets_no_gradient():
    model = tiny_bert()
    frozen = model.bert.embeddings.word_embeddings.weight
    frozen.requires_grad_(False)
    weights = MasterWeights(model, Accelerator(cpu=True))
    weights.enter()
    assert frozen.dtype == torch.bfloat16
    model(**batch(1)).loss.backward()
    weights.finish()
    assert frozen.dtype == torch.float32 and frozen.grad is None
    assert model.classifier.weight.grad is not None


def test_close_drops_an_unfinished_window_and_the_hooks():
    model = tiny_bert()
    weights = MasterWeights(model, Accelerator(cpu=True))
    weights.enter()
    model(**batch(1)).loss.backward()
    weights.close()
    assert model.dtype == torch.float32 and not weights.grads
    model(**batch(1)).loss.backward()  # an fp32 backward after training: plain gradients, nothing folded away
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("distributed_type", ["FSDP", "DEEPSPEED", "XLA", "MEGATRON_LM"])
def test_bf16_weights_where_the_parameters_are_not_plain_ones_is_refused(distributed_type):
    with pytest.raises(UserError, match="bf16-weights runs on one process or under DDP"):
        check_master_weights("bf16-weights", distributed_type)
    check_master_weights("bf16", distributed_type)
    check_master_weights("bf16-weights", "MULTI_CPU")
    check_master_weights("bf16-weights", "MULTI_XPU")


def test_the_cpu_bf16_probe_sees_emulated_bf16_as_slower():
    """The 50 ms probe behind ``ssl env`` and the slow-bf16 note: where torch has no native bf16 kernels (no
    AVX512-BF16, no AMX) it emulates them, always slower than fp32."""
    from ssl_cli.compat import cpu_has_native_bf16
    from ssl_cli.engine.devices import cpu_bf16_matmul_speedup

    speedup = cpu_bf16_matmul_speedup()
    assert 0 < speedup < 100
    if not cpu_has_native_bf16():
        assert speedup < 1


@pytest.mark.parametrize(("mixed_precision", "speedup", "noted"), [
    ("bf16", 0.6, True), ("bf16-weights", 0.6, True), ("bf16-weights", 3.0, False), ("no", 0.6, False)])
def test_bf16_on_a_cpu_whose_bf16_matmuls_are_slow_is_one_note(monkeypatch, mixed_precision, speedup, noted):
    from ssl_cli.engine import devices

    monkeypatch.setattr(devices, "cpu_bf16_matmul_speedup", lambda: speedup)
    said = []
    devices.check_precision_plan(mixed_precision, "NO", torch.device("cpu"), said.append)
    assert len(said) == int(noted)
    if noted:
        assert said[0].startswith("note: bf16 matmuls run at 0.6x") and f"--mixed-precision {mixed_precision}" in said[0]
