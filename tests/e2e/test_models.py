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


def _weights(out):
    from safetensors.torch import load_file

    return load_file(str(out / "model.safetensors"))


def test_init_random_keeps_config_and_tokenizer_with_fresh_weights(tmp_path, tiny_run_args):
    """--model DIR --init random: the pretrain-vs-scratch baseline; DIR's architecture and tokenizer, new weights."""
    import torch

    base = tmp_path / "base"
    run_cli(*tiny_run_args, "--output-dir", str(base), check=True)
    outs = {}
    for init in ("pretrained", "random"):
        outs[init] = tmp_path / init
        run_cli(*tiny_run_args, "--model", str(base), "--init", init, "--max-steps", "1", "--learning-rate", "1e-12",
                "--output-dir", str(outs[init]), check=True)
    key = "bert.embeddings.word_embeddings.weight"
    start = _weights(base)[key]
    torch.testing.assert_close(_weights(outs["pretrained"])[key], start, rtol=0, atol=1e-6)
    fresh = _weights(outs["random"])[key]
    assert fresh.shape == start.shape and not torch.allclose(fresh, start, atol=1e-3)
    assert abs(float(fresh.std()) - 0.02) < 0.005  # BERT's initializer_range: new weights, not a copy
    assert (outs["random"] / "tokenizer.json").read_text() == (base / "tokenizer.json").read_text()
    assert "base_model: null" in (outs["random"] / "README.md").read_text()
    assert f"base_model: {base}" in (outs["pretrained"] / "README.md").read_text()


def test_config_overrides_change_the_architecture(tmp_path, tiny_run_args):
    out = tmp_path / "small"
    run_cli(*tiny_run_args, "--config-overrides", "num_hidden_layers=1,hidden_act=relu", "--max-steps", "1",
            "--output-dir", str(out), check=True)
    config = json.loads((out / "config.json").read_text())
    assert (config["num_hidden_layers"], config["hidden_act"]) == (1, "relu")


@pytest.mark.parametrize(("value", "expected"), [
    ("num_hiden_layers=1", "has no attribute 'num_hiden_layers' (did you mean 'num_hidden_layers'?)"),
    ("num_hidden_layers", "is not key=value"),
])
def test_bad_config_overrides_are_one_line(tmp_path, tiny_run_args, value, expected):
    proc = run_cli(*tiny_run_args, "--config-overrides", value, "--output-dir", str(tmp_path / "out"))
    assert proc.returncode == 2 and expected in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_config_overrides_parse_yaml_values():
    parsed = ModelConfig(config_overrides="num_hidden_layers=4, hidden_dropout_prob=0.2,tie_word_embeddings=false")
    assert parsed.config_overrides == {"num_hidden_layers": 4, "hidden_dropout_prob": 0.2, "tie_word_embeddings": False}
    assert ModelConfig(config_overrides={"hidden_act": "gelu"}).config_overrides == {"hidden_act": "gelu"}


def test_fast_cpu_dropout_is_dropout():
    """Same Bernoulli(1 - p) keep rate, the same 1/(1 - p) scaling and gradient, identity in eval, no new weights."""
    import torch
    import transformers

    from ssl_cli.models import use_fast_cpu_dropout

    torch.manual_seed(0)
    layer = torch.nn.Sequential(torch.nn.Dropout(0.25))
    assert use_fast_cpu_dropout(layer) == 1
    x = torch.full((400, 500), 2.0, requires_grad=True)
    y = layer(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.75) < 0.005
    assert torch.all(y[kept] == 2.0 / 0.75)
    y.sum().backward()
    torch.testing.assert_close(x.grad, kept.float() / 0.75)
    layer.eval()
    assert torch.equal(layer(x), x)
    layer[0].p = 0.1  # not a multiple of 1/65536: rounded to 6554/65536, and scaled by the rounded rate
    layer.train()
    odd = torch.ones(999, 1001)  # a size that is not a multiple of the 4 draws per 64-bit integer
    y = layer(odd)
    assert abs((y != 0).float().mean().item() - (1 - 6554 / 65536)) < 0.003
    assert torch.allclose(y[y != 0], torch.tensor(65536 / (65536 - 6554)))
    model = transformers.BertForMaskedLM(transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2,
                                                                 num_attention_heads=2, intermediate_size=32))
    keys = set(model.state_dict())
    assert use_fast_cpu_dropout(model) == 2 * 3 + 1  # per layer: attention probabilities, outputs; the embeddings
    assert set(model.state_dict()) == keys


def test_scratch_wordpiece_tokenizer_is_the_same_on_every_training():
    """tokenizers' WordPiece trainer numbers its ## pieces in hash-map order (tokenizers#1794), which
    changed the vocabulary, and the demo's F1 by 7 points, from one run to the next."""
    from ssl_cli.models import train_wordpiece_tokenizer
    from ssl_cli.tasks.pretraining.data import text_corpus
    from ssl_cli.tasks.qa.data import make_squad_json

    squad = make_squad_json(40, seed=0)
    texts = [p["context"] for article in squad["data"] for p in article["paragraphs"]] + text_corpus(200, seed=0)
    vocabs = [train_wordpiece_tokenizer(iter(texts), 300, 128).get_vocab() for _ in range(4)]  # 300: words split into pieces
    assert all(v == vocabs[0] for v in vocabs[1:])
    tokenizer = train_wordpiece_tokenizer(texts, 300, 128)
    assert set(tokenizer.get_added_vocab()) == {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}  # ## pieces stay ordinary
    pieces = tokenizer.tokenize(texts[-1] + " " + texts[0][:20])
    assert any(p.startswith("##") for p in pieces) and "[UNK]" not in pieces
    assert "##s" in tokenizer.get_vocab() and tokenizer.tokenize("##s")[-1] == "s"  # text "##s" is not that piece
