"""LoRA's ``auto`` targets and the head trained in full, on the architectures the issue names (tiny random
models of transformers' own classes; nothing trains)."""

from __future__ import annotations

import re

import pytest

from ssl_cli.adapters import auto_target_modules, head_modules

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
        "vocab_size": 100}


def _model(name: str, head: str = "ForSequenceClassification"):
    import transformers

    config_cls = getattr(transformers, f"{name}Config")
    extra = {"num_key_value_heads": 1} if name == "Llama" else {}
    if name == "GPT2":
        config = config_cls(n_embd=32, n_layer=2, n_head=2, vocab_size=100, pad_token_id=0)
    else:
        config = config_cls(**TINY, **extra, pad_token_id=0)
    return getattr(transformers, f"{name}{head}")(config)


@pytest.mark.parametrize("name, projections", [
    ("Bert", {"attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
              "intermediate.dense", "output.dense"}),
    ("Roberta", {"attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                 "intermediate.dense", "output.dense"}),
    ("DebertaV2", {"attention.self.query_proj", "attention.self.key_proj", "attention.self.value_proj",
                   "attention.output.dense", "intermediate.dense", "output.dense"}),
    ("ModernBert", {"attn.Wqkv", "attn.Wo", "mlp.Wi", "mlp.Wo"}),
    ("GPT2", {"attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"}),
    ("Llama", {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
               "mlp.up_proj", "mlp.down_proj"}),
])
def test_auto_targets_every_projection_of_every_layer_and_nothing_else(name, projections):
    from ssl_cli.adapters import _projection_types

    model = _model(name)
    pattern = auto_target_modules(model)
    linear = [n for n, m in model.named_modules() if isinstance(m, _projection_types())]
    targeted = {n for n in linear if re.fullmatch(pattern, n)}
    per_layer = {re.sub(r"^.*?\.\d+\.", "", n) for n in targeted}
    assert per_layer == projections
    assert len(targeted) == 2 * len(projections)  # both layers
    assert not any(re.search(r"pooler|classifier|score|head", n) for n in targeted)


@pytest.mark.parametrize("name, head, expected", [
    ("Bert", "ForSequenceClassification", ["classifier"]),
    ("DebertaV2", "ForSequenceClassification", ["pooler", "classifier"]),
    ("GPT2", "ForSequenceClassification", ["score"]),
    ("Llama", "ForSequenceClassification", ["score"]),
    ("Bert", "ForTokenClassification", ["classifier"]),
    ("Bert", "ForQuestionAnswering", ["qa_outputs"]),
    ("GPT2", "LMHeadModel", []),  # its output layer is the tied input embedding: frozen with it
    ("Bert", "ForMaskedLM", []),
])
def test_the_head_is_what_the_task_model_adds_to_its_base(name, head, expected):
    assert head_modules(_model(name, head)) == expected
