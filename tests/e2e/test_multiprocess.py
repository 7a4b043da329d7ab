"""Two real processes under `accelerate launch` (gloo on CPU) give the 1-process result."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.multiprocess]


def launch(*args: str, num_processes: int = 2) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(num_processes),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "ssl_cli", *args]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env, timeout=900)


def two_then_one(common: list[str], tmp_path) -> tuple[dict, dict]:
    """``common`` on two processes of 4 and on one of 8 (the same global batch): both all_results."""
    proc = launch(*common, "--per-device-train-batch-size", "4", "--output-dir", str(tmp_path / "two"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_cli(*common, "--per-device-train-batch-size", "8", "--output-dir", str(tmp_path / "one"), check=True,
            env={"OMP_NUM_THREADS": "1"})
    results = [json.loads((tmp_path / name / "all_results.json").read_text()) for name in ("two", "one")]
    assert results[0]["num_processes"] == 2 and results[0]["distributed_type"] == "MULTI_CPU"
    assert results[1]["num_processes"] == 1
    return results[0], results[1]


def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path, tiny_run_args, demo_data):
    # no length grouping: then a global batch of 8 is exactly two consecutive batches of 4
    common = [*tiny_run_args, "--set", "training.group_by_length=false", "--set", "training.eval_strategy=no",
              "--set", "training.save_strategy=no", "--mixed-precision", "no", "--learning-rate", "1e-4"]
    r2, r1 = two_then_one(common, tmp_path)
    one = tmp_path / "one"
    assert r2["global_batch_size"] == r1["global_batch_size"] == 8
    assert r2["train_steps"] == r1["train_steps"] == 6
    # the examples trained are summed over the processes (Counts.totals): 6 steps of 8 on both
    assert round(r2["train_samples_per_second"] * r2["train_runtime"]) == 48
    assert round(r1["train_samples_per_second"] * r1["train_runtime"]) == 48
    # every eval question scored once: gather_for_metrics drops the duplicates of uneven last batches
    assert r2["eval_samples"] == r1["eval_samples"] == r2["eval_total"]
    # Same examples per optimizer step; only float summation order differs (per-process padded shapes),
    # which Adam's sign-like first steps amplify slightly: the losses agree to 1%.
    assert r2["train_loss"] == pytest.approx(r1["train_loss"], rel=1e-2)
    assert r2["eval_f1"] == pytest.approx(r1["eval_f1"], abs=1e-4)
    assert r2["eval_exact_match"] == pytest.approx(r1["eval_exact_match"], abs=1e-4)

    # The same trained model evaluated by two processes scores exactly as by one.
    both = tmp_path / "eval2"
    proc = launch("finetune-qa", "--recipe", "recipes/qa/tiny-zh-offline.yaml", "--model", str(one), "--validation-file", str(demo_data["dev"]),
                  "--set", "training.do_train=false", "--per-device-eval-batch-size", "3", "--output-dir", str(both))
    assert proc.returncode == 0, proc.stderr[-3000:]
    r3 = json.loads((both / "all_results.json").read_text())
    assert r3["num_processes"] == 2 and r3["eval_samples"] == r1["eval_samples"]
    assert r3["eval_f1"] == r1["eval_f1"] and r3["eval_exact_match"] == r1["eval_exact_match"]


def test_two_processes_stream_like_one(tmp_path):
    """A streamed corpus: the main process reads the stream and hands each process its share of every global
    batch, so two processes of 4 train on the very blocks (and masks) one process of 8 does."""
    from ssl_cli.tasks.pretraining.data import write_text_corpus

    data = write_text_corpus(tmp_path / "text", n_train=600, n_dev=40, seed=3, language="zh")
    common = ["pretrain-mlm", "--recipe", "recipes/pretrain/tiny-mlm-offline.yaml", "--train-file", str(data["train"]),
              "--validation-file", str(data["dev"]), "--streaming", "--max-steps", "10", "--learning-rate", "1e-4"]
    r2, r1 = two_then_one(common, tmp_path)
    assert r2["train_samples"] == r1["train_samples"] == 80
    assert r2["train_loss"] == pytest.approx(r1["train_loss"], rel=1e-2)
    assert r2["eval_loss"] == pytest.approx(r1["eval_loss"], abs=1e-3)


def test_evaluate_on_two_processes_scores_as_one(tmp_path):
    """``ssl evaluate`` under accelerate launch: every example scored once, the 1-process metrics."""
    from ssl_cli.tasks.glue.data import write_task

    files = write_task("sentiment", tmp_path / "data", 300, 41)  # an odd count: the last batch is padded across
    model = tmp_path / "model"
    run_cli("finetune-glue", "--recipe", "recipes/glue/tiny-en-offline.yaml", "--train-file", str(files["train"]),
            "--validation-file", str(files["dev"]), "--output-dir", str(model), "--max-steps", "10", check=True)
    proc = launch("evaluate", "--model", str(model), "--validation-file", str(files["dev"]), "--output-dir",
                  str(tmp_path / "two"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads((tmp_path / "two" / "all_results.json").read_text())
    one = json.loads((model / "all_results.json").read_text())
    assert two["num_processes"] == 2 and two["eval_samples"] == 41
    assert two["eval_accuracy"] == pytest.approx(one["eval_accuracy"])
    assert sum(1 for _ in (tmp_path / "two" / "eval_predictions.jsonl").open()) == 41
