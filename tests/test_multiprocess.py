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


def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path, tiny_run_args, demo_data):
    # no length grouping: then a global batch of 8 is exactly two consecutive batches of 4
    common = [*tiny_run_args, "--set", "training.group_by_length=false", "--set", "training.eval_strategy=no",
              "--set", "training.save_strategy=no", "--mixed-precision", "no", "--learning-rate", "1e-4"]
    two = tmp_path / "two"
    proc = launch(*common, "--per-device-train-batch-size", "4", "--output-dir", str(two))
    assert proc.returncode == 0, proc.stderr[-3000:]
    one = tmp_path / "one"
    run_cli(*common, "--per-device-train-batch-size", "8", "--output-dir", str(one), check=True,
            env={"OMP_NUM_THREADS": "1"})

    r2 = json.loads((two / "all_results.json").read_text())
    r1 = json.loads((one / "all_results.json").read_text())
    assert r2["num_processes"] == 2 and r2["distributed_type"] == "MULTI_CPU"
    assert r1["num_processes"] == 1
    assert r2["global_batch_size"] == r1["global_batch_size"] == 8
    assert r2["train_steps"] == r1["train_steps"] == 6
    # every eval question scored once: gather_for_metrics drops the duplicates of uneven last batches
    assert r2["eval_samples"] == r1["eval_samples"] == r2["eval_total"]
    # Same examples per optimizer step; only float summation order differs (per-process padded shapes),
    # which Adam's sign-like first steps amplify slightly: the losses agree to 1%.
    assert r2["train_loss"] == pytest.approx(r1["train_loss"], rel=1e-2)

    # The same trained model evaluated by two processes scores exactly as by one.
    both = tmp_path / "eval2"
    proc = launch("finetune-qa", "--recipe", "recipes/qa/tiny-zh-offline.yaml", "--model", str(one), "--validation-file", str(demo_data["dev"]),
                  "--set", "training.do_train=false", "--per-device-eval-batch-size", "3", "--output-dir", str(both))
    assert proc.returncode == 0, proc.stderr[-3000:]
    r3 = json.loads((both / "all_results.json").read_text())
    assert r3["num_processes"] == 2 and r3["eval_samples"] == r1["eval_samples"]
    assert r3["eval_f1"] == r1["eval_f1"] and r3["eval_exact_match"] == r1["eval_exact_match"]
