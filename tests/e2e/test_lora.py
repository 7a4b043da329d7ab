"""LoRA through peft, end to end: the adapter peft loads, the head trained in full, the merged model pipeline()
loads, resume, and the one-line refusals."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import run_cli, tiny_task_args
from tests.models_on_disk import write_tiny_model

pytest.importorskip("peft")


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return write_tiny_model("bert", tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def glue_args(tmp_path_factory, bert_dir):
    return [*tiny_task_args("finetune-glue", tmp_path_factory.mktemp("glue")), "--model", str(bert_dir),
            "--max-steps", "8", "--learning-rate", "5e-3"]


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, glue_args):
    out = tmp_path_factory.mktemp("lora") / "run"
    proc = run_cli(*glue_args, "--peft", "lora", "--lora-r", "4", "--merge", "--output-dir", str(out), check=True)
    return out, proc


def test_lora_writes_an_adapter_with_the_head_in_full(lora_run):
    from safetensors.torch import load_file

    out, proc = lora_run
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    assert not (out / "model.safetensors").exists() and not (out / "config.json").exists()
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["r"] == 4 and config["task_type"] == "SEQ_CLS"
    weights = load_file(str(out / "adapter_model.safetensors"))
    # adapters on every projection of both layers (query, key, value, three dense), none on the pooler
    lora_a = [k for k in weights if "lora_A" in k]
    assert len(lora_a) == 2 * 6 and not any("pooler" in k for k in lora_a)
    assert any("classifier" in k and k.endswith("weight") for k in weights)  # the head, in full
    # the pooler, which the MLM checkpoint lacks, was initialised at random: trained and saved in full, or the
    # adapter would need that one random draw to load
    assert any("pooler" in k and "lora" not in k for k in weights)
    results = json.loads((out / "all_results.json").read_text())
    assert 0 < results["trainable_percent"] < 100
    assert results["trainable_parameters"] < results["total_parameters"]
    assert re.search(r"LoRA: [\d,]+ trainable parameters of [\d,]+ \(\d+\.\d+%\)", proc.stdout)
    card = (out / "README.md").read_text()
    assert "library_name: peft" in card and "AutoPeftModelForSequenceClassification" in card


def test_peft_loads_the_adapter_and_the_merged_model_gives_the_same_logits(lora_run, bert_dir):
    import torch
    from peft import AutoPeftModelForSequenceClassification
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    out, _ = lora_run
    labels = json.loads((out / "merged" / "config.json").read_text())["id2label"]
    adapted = AutoPeftModelForSequenceClassification.from_pretrained(str(out), num_labels=len(labels)).eval()
    merged = AutoModelForSequenceClassification.from_pretrained(str(out / "merged")).eval()
    base = AutoModelForSequenceClassification.from_pretrained(str(bert_dir), num_labels=len(labels)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    batch = tokenizer(["a fine film", "a dull story"], return_tensors="pt", padding=True)
    with torch.no_grad():
        a, m, b = (model(**batch).logits for model in (adapted, merged, base))
    assert torch.allclose(a, m, atol=1e-5)
    assert not torch.allclose(a, b, atol=1e-3)  # the adapter and head changed something
    pipe = pipeline("text-classification", model=str(out / "merged"))
    assert pipe("a fine film")[0]["label"] in labels.values()


def test_ssl_evaluate_scores_an_adapter_as_training_did(lora_run, tmp_path):
    out, _ = lora_run
    results = json.loads((out / "all_results.json").read_text())
    proc = run_cli("evaluate", "--model", str(out), "--output-dir", str(tmp_path / "ev"), check=True)
    again = json.loads((tmp_path / "ev" / "all_results.json").read_text())
    assert again["eval_accuracy"] == pytest.approx(results["eval_accuracy"], abs=1e-6), proc.stdout


def test_lora_killed_mid_run_resumes_to_the_same_adapter(tmp_path, glue_args):
    """SIGKILL two steps after checkpoint-4 (no clean-up runs), then --resume: the uninterrupted run's adapter,
    bit for bit (LoRA's dropout draws included)."""
    from safetensors.torch import load_file

    common = [*glue_args, "--peft", "lora", "--save-steps", "4", "--no-load-best-model-at-end"]
    full, cut = tmp_path / "full", tmp_path / "cut"
    run_cli(*common, "--output-dir", str(full), check=True)
    killed = run_cli(*common, "--output-dir", str(cut), env={"SSL_FAILPOINT": "step:6"})
    assert killed.returncode == -9 and not (cut / "adapter_model.safetensors").exists()
    proc = run_cli(*common, "--output-dir", str(cut), "--resume", check=True)
    assert "resumed from" in proc.stderr and "checkpoint-4" in proc.stderr
    a, b = (load_file(str(d / "adapter_model.safetensors")) for d in (full, cut))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


@pytest.mark.parametrize("args, expected", [
    (["--target-modules", "no_such_layer"], "--peft lora: "),
    (["--model", "scratch:bert-tiny"], "LoRA adapts pretrained weights"),
    (["--init", "random"], "LoRA adapts pretrained weights"),
])
def test_lora_refusals_are_one_line(tmp_path, glue_args, args, expected):
    out = tmp_path / "run"
    proc = run_cli(*glue_args, "--peft", "lora", *args, "--output-dir", str(out))
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in proc.stderr
    assert not out.exists()


def test_pretrain_clm_trains_a_lora_adapter_on_gpt2(tmp_path):
    from peft import AutoPeftModelForCausalLM

    gpt2 = write_tiny_model("gpt2", tmp_path)
    out = tmp_path / "clm"
    run_cli(*tiny_task_args("pretrain-clm", tmp_path / "data"), "--model", str(gpt2), "--peft", "lora",
            "--max-steps", "4", "--output-dir", str(out), check=True)
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["task_type"] == "CAUSAL_LM" and config["modules_to_save"] is None  # lm_head is tied: frozen
    model = AutoPeftModelForCausalLM.from_pretrained(str(out))
    assert model.peft_config["default"].r == 8
    assert json.loads((out / "all_results.json").read_text())["trainable_percent"] < 50


def test_ssl_export_merges_as_merge_does_and_predict_reads_the_adapter(lora_run, tmp_path):
    import torch
    from safetensors.torch import load_file

    out, _ = lora_run
    target = tmp_path / "exported"
    proc = run_cli("export", "--model", str(out), "--merge", "--output-dir", str(target), check=True)
    assert str(target) in proc.stdout
    a, b = (load_file(str(d / "model.safetensors")) for d in (out / "merged", target))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert json.loads((target / "config.json").read_text())["id2label"] == \
        json.loads((out / "merged" / "config.json").read_text())["id2label"]

    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"text": "a fine film"}\n{"text": "a dull story"}\n')
    from_adapter = run_cli("predict", "--model", str(out), "--input", str(rows), check=True).stdout
    from_merged = run_cli("predict", "--model", str(target), "--task", "finetune-glue", "--input", str(rows),
                          check=True).stdout
    labels = [json.loads(line)["label"] for line in from_adapter.splitlines()]
    assert labels == [json.loads(line)["label"] for line in from_merged.splitlines()] and len(labels) == 2
    refused = run_cli("export", "--model", str(target), "--merge")
    assert refused.returncode == 2 and "not a LoRA adapter" in refused.stderr


@pytest.mark.multiprocess
def test_lora_on_two_processes_trains_as_one(tmp_path, glue_args):
    from tests.e2e.test_multiprocess import two_then_one

    common = [*glue_args, "--peft", "lora", "--set", "training.group_by_length=false", "--mixed-precision", "no"]
    two, one = two_then_one(common, tmp_path)
    assert two["trainable_parameters"] == one["trainable_parameters"]
    assert two["train_loss"] == pytest.approx(one["train_loss"], rel=1e-2)
    assert two["eval_accuracy"] == pytest.approx(one["eval_accuracy"], abs=1e-4)


@pytest.mark.parametrize("command, task_type", [("tag-pos", "TOKEN_CLS"), ("finetune-qa", "QUESTION_ANS"),
                                                ("multiple-choice", None)])
def test_lora_trains_the_other_heads(tmp_path, bert_dir, command, task_type):
    out = tmp_path / "run"
    run_cli(*tiny_task_args(command, tmp_path / "data"), "--model", str(bert_dir), "--peft", "lora",
            "--max-steps", "3", "--output-dir", str(out), check=True)
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["task_type"] == task_type and config["modules_to_save"]  # the head, in full
    assert 0 < json.loads((out / "all_results.json").read_text())["trainable_percent"] < 100
