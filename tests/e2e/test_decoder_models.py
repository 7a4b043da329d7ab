"""GPT-2 and Llama (decoder-only, no padding token in their tokenizers, as on the Hub) in the encoder tasks:
classification picks the last real token, tagging and QA train and score; a model without a QA head in
transformers is one line."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli, tiny_task_args
from tests.models_on_disk import write_tiny_model


@pytest.fixture(scope="module")
def decoders(tmp_path_factory):
    root = tmp_path_factory.mktemp("decoders")
    return {kind: write_tiny_model(kind, root) for kind in ("gpt2", "llama")}


@pytest.mark.parametrize("kind, command", [("gpt2", "finetune-glue"), ("gpt2", "tag-pos"), ("gpt2", "nli"),
                                           ("llama", "finetune-glue"), ("llama", "tag-pos")])  # nli: glue's code
def test_decoder_models_train_in_the_encoder_tasks(tmp_path, decoders, kind, command):
    out = tmp_path / "run"
    run_cli(*tiny_task_args(command, tmp_path / "data"), "--model", str(decoders[kind]), "--max-steps", "4",
            "--per-device-train-batch-size", "8", "--output-dir", str(out), check=True)
    results = json.loads((out / "all_results.json").read_text())
    assert 0 <= results["eval_accuracy"] <= 1
    config = json.loads((out / "config.json").read_text())
    assert config["pad_token_id"] is not None  # saved: pipeline() batches the model as training did


def test_classification_reads_the_last_real_token_whatever_the_padding(tmp_path, decoders):
    """A row's logits do not depend on how much padding its batch adds after it."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = tmp_path / "run"
    run_cli(*tiny_task_args("finetune-glue", tmp_path / "data"), "--model", str(decoders["gpt2"]), "--max-steps",
            "2", "--output-dir", str(out), check=True)
    model = AutoModelForSequenceClassification.from_pretrained(str(out)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    alone = tokenizer(["a fine film"], return_tensors="pt")
    padded = tokenizer(["a fine film", "a much longer sentence about a very dull and tired story"],
                       return_tensors="pt", padding=True)
    with torch.no_grad():
        assert torch.allclose(model(**alone).logits[0], model(**padded).logits[0], atol=1e-5)


def test_finetune_qa_trains_gpt2_with_its_qa_head(tmp_path, decoders):
    out = tmp_path / "run"
    run_cli(*tiny_task_args("finetune-qa", tmp_path / "data"), "--model", str(decoders["gpt2"]), "--max-steps", "2",
            "--output-dir", str(out), check=True)
    assert json.loads((out / "config.json").read_text())["architectures"] == ["GPT2ForQuestionAnswering"]
    assert "eval_f1" in json.loads((out / "all_results.json").read_text())


def test_a_model_without_the_task_s_head_is_one_line(tmp_path):
    """transformers has no question-answering head for CTRL: refused before the output dir exists."""
    import transformers

    from tests.models_on_disk import _bpe_tokenizer

    model_dir = tmp_path / "ctrl"
    tokenizer = _bpe_tokenizer("<|endoftext|>", "<|endoftext|>")
    config = transformers.CTRLConfig(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2, dff=64,
                                     n_positions=128)
    transformers.CTRLLMHeadModel(config).save_pretrained(str(model_dir))
    tokenizer.save_pretrained(str(model_dir))
    out = tmp_path / "run"
    proc = run_cli(*tiny_task_args("finetune-qa", tmp_path / "data"), "--model", str(model_dir), "--output-dir",
                   str(out))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    assert "no question-answering head" in lines[0] and "ctrl" in lines[0]
    assert not out.exists()
