"""Weight decay goes to weight matrices only: never to biases or normalisation layers, whatever a model calls
them (GPT-2's ``ln_1``/``ln_2``/``ln_f`` were decayed by a name list)."""

from __future__ import annotations

import pytest

from ssl_cli.engine import parameter_groups


def _names(model, group) -> set[str]:
    by_id = {id(p): n for n, p in model.named_parameters()}
    return {by_id[id(p)] for p in group["params"]}


def test_gpt2_layer_norms_get_no_weight_decay():
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(vocab_size=64, n_embd=16, n_layer=2, n_head=2, n_positions=32,
                                       bos_token_id=0, eos_token_id=0))
    decay, no_decay = parameter_groups(model, 0.01)
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert {"transformer.h.0.ln_1.weight", "transformer.h.1.ln_2.weight", "transformer.ln_f.weight",
            "transformer.ln_f.bias"} <= _names(model, no_decay)
    assert all(not n.startswith(("transformer.ln_", "transformer.h.0.ln")) for n in _names(model, decay))
    assert {"transformer.wte.weight", "transformer.h.0.attn.c_attn.weight"} <= _names(model, decay)


def test_bert_groups_are_what_trainer_gives():
    """Trainer's get_decay_parameter_names: every parameter but biases and LayerNorm ones decays."""
    from transformers import BertConfig, BertForMaskedLM

    model = BertForMaskedLM(BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                       intermediate_size=32))
    decay, no_decay = parameter_groups(model, 0.01)
    trainer_rule = {n for n, _ in model.named_parameters() if "bias" in n or "LayerNorm" in n}
    assert _names(model, no_decay) == trainer_rule
    assert _names(model, decay) == {n for n, _ in model.named_parameters()} - trainer_rule


@pytest.mark.parametrize("norm", ["torch", "own"])
def test_a_models_own_rms_norm_class_is_a_normalisation(norm):
    import torch

    class LlamaRMSNorm(torch.nn.Module):  # as transformers' models define their own
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(8, 1))  # 2-D on purpose: found by its module, not its shape

    layer = torch.nn.LayerNorm(8) if norm == "torch" else LlamaRMSNorm()
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), layer)
    decay, no_decay = parameter_groups(model, 0.1)
    assert _names(model, decay) == {"0.weight"}
    assert _names(model, no_decay) == {"0.bias", *(f"1.{n}" for n, _ in layer.named_parameters())}


@pytest.mark.parametrize("name, optim_args", [
    ("adamw_torch", ""), ("adamw_torch_fused", ""), ("adafactor", ""), ("sgd", ""),
    ("sgd", "momentum=0.9,nesterov=true,dampening=0"), ("adagrad", "lr_decay=0.01,eps=1e-9"), ("rmsprop", ""),
    ("rmsprop", "momentum=0.5,alpha=0.9,eps=1e-7,centered=true"),
])
def test_each_optim_is_the_trainers_of_that_name(name, optim_args, tmp_path):
    """``training.optim`` builds what the Trainer's ``--optim`` of that name builds: its class, and every setting
    the Trainer passes (lr, betas, eps, Adafactor's relative step off), over the same decay groups."""
    import torch
    from transformers import BertConfig, BertForMaskedLM, Trainer, TrainingArguments

    from ssl_cli.config import TrainingConfig
    from ssl_cli.engine import make_optimizer

    model = BertForMaskedLM(BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                       intermediate_size=32))
    cfg = TrainingConfig(optim=name.upper(), optim_args=optim_args, learning_rate=2e-4, weight_decay=0.05,
                         adam_beta2=0.98)
    ours = make_optimizer(cfg, model, torch.device("cpu"))
    args = TrainingArguments(output_dir=str(tmp_path), optim=name, optim_args=optim_args or None, learning_rate=2e-4,
                             adam_beta2=0.98, report_to=[], use_cpu=True)
    trainer_class, trainer_kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
    assert type(ours) is trainer_class
    assert {k: ours.defaults[k] for k in trainer_kwargs} == trainer_kwargs
    assert [g["weight_decay"] for g in ours.param_groups] == [0.05, 0.0]

