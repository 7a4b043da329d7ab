"""ssl pretrain-mlm end to end on generated text: the loss falls, eval metrics, masking modes, fine-tuning the result."""

from __future__ import annotations

import json
import math

import pytest

from ssl_cli.synthetic import write_tagging_task, write_text_corpus
from tests.conftest import run_cli, run_then_resume

TINY = ["pretrain-mlm", "--recipe", "recipes/pretrain/tiny-mlm-offline.yaml"]


def _log_losses(out):
    return [r["loss"] for r in map(json.loads, (out / "train_log.jsonl").read_text().splitlines()) if "loss" in r]


@pytest.fixture(scope="module")
def mlm_run(tmp_path_factory):
    data = write_text_corpus(tmp_path_factory.mktemp("text"), n_train=1500, n_dev=150, seed=1)
    out = tmp_path_factory.mktemp("run") / "mlm"
    run_cli(*TINY, "--train-file", str(data["train"]), "--validation-file", str(data["dev"]), "--output-dir", str(out),
            check=True)
    return out


def test_mlm_loss_falls_and_eval_metrics_are_reported(mlm_run):
    results = json.loads((mlm_run / "all_results.json").read_text())
    assert {"eval_loss", "perplexity", "eval_accuracy", "train_loss"} <= results.keys()
    assert results["perplexity"] == pytest.approx(math.exp(results["eval_loss"]), rel=1e-6)
    config = json.loads((mlm_run / "config.json").read_text())
    assert config["architectures"] == ["BertForMaskedLM"]
    # An untrained model scores about ln(vocab); a few dozen steps learn the token frequencies (a from-scratch
    # MLM then sits on that plateau for hundreds of steps before context pays off, so no more is asked here).
    assert results["eval_loss"] < math.log(config["vocab_size"]) - 1.0, results
    losses = _log_losses(mlm_run)
    assert losses[-1] < losses[0], losses
    assert results["eval_accuracy"] > 5 / config["vocab_size"], results


def test_pretrained_output_fine_tunes_in_another_task(mlm_run, tmp_path):
    from transformers import pipeline

    fill = pipeline("fill-mask", model=str(mlm_run), device="cpu")
    assert len(fill("the old dog [MASK] a river .")) == 5
    data = write_tagging_task("en_pos", tmp_path / "pos", n_train=100, n_dev=20, seed=3)
    out = tmp_path / "pos-run"
    run_cli("tag-pos", "--recipe", "recipes/pos/tiny-en-offline.yaml", "--model", str(mlm_run),
            "--train-file", str(data["train"]), "--validation-file", str(data["dev"]), "--max-steps", "3",
            "--output-dir", str(out), check=True)
    assert json.loads((out / "config.json").read_text())["architectures"] == ["BertForTokenClassification"]


@pytest.mark.parametrize("masking", ["whole_word", "span"])
def test_word_masking_modes_run_on_chinese(tmp_path, masking):
    data = write_text_corpus(tmp_path / "zh", n_train=200, n_dev=20, seed=2, language="zh")
    out = tmp_path / masking
    run_cli(*TINY, "--train-file", str(data["train"]), "--validation-file", str(data["dev"]), "--masking", masking,
            "--max-steps", "4", "--output-dir", str(out), check=True)
    saved = (out / "recipe.yaml").read_text()
    assert f"masking: {masking}" in saved
    assert json.loads((out / "all_results.json").read_text())["eval_loss"] > 0


def test_line_by_line_and_held_out_eval(tmp_path):
    data = write_text_corpus(tmp_path, n_train=200, n_dev=10, seed=4)
    out = tmp_path / "lines"
    run_cli(*TINY, "--train-file", str(data["train"]), "--line-by-line", "--max-steps", "3", "--output-dir", str(out),
            check=True)
    results = json.loads((out / "all_results.json").read_text())
    assert results["train_features"] == 180  # one block per line; 10% of the 200 lines held out for eval
    assert results["eval_samples"] == 20


def test_bad_mlm_input_is_one_line(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    proc = run_cli(*TINY, "--train-file", str(empty), "--output-dir", str(tmp_path / "out"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "no text (every document is empty)" in proc.stderr or "contains no records" in proc.stderr
    proc = run_cli(*TINY, "--train-file", str(empty), "--set", "mlm.mask_replace_prob=0.95",
                   "--output-dir", str(tmp_path / "out"))
    assert proc.returncode == 2 and "must not exceed 1" in proc.stderr


def test_resume_across_an_epoch_boundary_reproduces_the_uninterrupted_run(tmp_path):
    """Masks come from (seed, epoch, example): a resumed run sees the very same masks, so its weights match exactly."""
    data = write_text_corpus(tmp_path / "text", n_train=120, n_dev=10, seed=6)
    common = [*TINY, "--train-file", str(data["train"]), "--validation-file", str(data["dev"]),
              "--per-device-train-batch-size", "8", "--max-steps", "12", "--save-steps", "5", "--save-total-limit", "5",
              "--set", "model.dropout=0.1", "--set", "training.load_best_model_at_end=false"]
    full, cut, state = run_then_resume(common, tmp_path, keep="checkpoint-5", later=["checkpoint-10"])
    assert state["global_step"] == 5 and state["epoch"] == 0
    assert json.loads((full / "all_results.json").read_text())["epoch"] > 1  # the resumed part spans a new epoch
    assert json.loads((cut / "all_results.json").read_text())["eval_loss"] == json.loads(
        (full / "all_results.json").read_text())["eval_loss"]
