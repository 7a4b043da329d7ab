"""Model loading choices that change what trains: dropout overrides and the CPU attention-dropout rule."""

from __future__ import annotations

import json

import pytest

from ssl_cli.config import ModelConfig
from ssl_cli.models import resolve_attention_dropout, scratch_config
from tests.conftest import run_cli


@pytest.mark.parametrize(
    ("attention_dropout", "dropout", "on_cpu", "expected"),
    [
        ("auto", None, True, 0.0),  # CPU: the fused kernel has no dropout, so auto turns it off
        ("auto", None, False, None),  # GPU/TPU: keep the checkpoint's value
        ("auto", 0.2, True, 0.2),  # an explicit dropout wins over auto
        (None, None, True, None),  # null keeps the config's value even on CPU
        (None, 0.3, True, 0.3),
        (0.05, 0.3, True, 0.05),  # an explicit attention_dropout wins over dropout
        (0.0, None, False, 0.0),
    ],
)
def test_attention_dropout_resolution(attention_dropout, dropout, on_cpu, expected):
    cfg = ModelConfig(attention_dropout=attention_dropout, dropout=dropout)
    assert resolve_attention_dropout(cfg, on_cpu) == expected


def test_overrides_reach_a_real_bert_config():
    cpu = scratch_config("bert-tiny", 100, 512, ModelConfig(), training_on_cpu=True)
    assert cpu.attention_probs_dropout_prob == 0.0 and cpu.hidden_dropout_prob == 0.1
    gpu = scratch_config("bert-tiny", 100, 512, ModelConfig(), training_on_cpu=False)
    assert gpu.attention_probs_dropout_prob == 0.1
    both = scratch_config("bert-tiny", 100, 512, ModelConfig(dropout=0.25), training_on_cpu=True)
    assert both.attention_probs_dropout_prob == both.hidden_dropout_prob == 0.25


def test_attention_dropout_values_are_validated():
    with pytest.raises(ValueError):
        ModelConfig(attention_dropout="sometimes")


def test_saved_config_records_the_dropout_that_trained(tmp_path, tiny_run_args):
    """CPU training with the defaults saves attention dropout 0 and the model's hidden dropout."""
    out = tmp_path / "drop"
    run_cli(*tiny_run_args, "--max-steps", "2", "--set", "model.dropout=null", "--set", "training.trim_cpu_memory=false",
            "--output-dir", str(out), check=True)
    config = json.loads((out / "config.json").read_text())
    assert config["attention_probs_dropout_prob"] == 0.0
    assert config["hidden_dropout_prob"] == 0.1
