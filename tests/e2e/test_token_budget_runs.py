"""Token-budget batches end to end: ``--per-device-train-tokens`` on one and two processes, resumed exactly, and
``per_device_train_batch_size: auto`` sizing padding-free batches in tokens (``SSL_FAILPOINT=oom_above:N`` makes a
probe of more than N rows run out of memory for real, as in ``test_auto_batch_size.py``)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import NO_DROPOUT, ROOT, assert_same_weights, copy_cut_back, results_of, run_cli, tiny_task_args

pytestmark = pytest.mark.slow


def _cut_back_to_the_oldest_checkpoint(full, cut) -> str:
    """``full`` copied to ``cut`` as a kill right after its oldest kept checkpoint leaves it; that checkpoint."""
    checkpoints = sorted(full.glob("checkpoint-*"), key=lambda path: int(path.name.split("-")[1]))
    copy_cut_back(full, cut, [path.name for path in checkpoints[1:]])
    return checkpoints[0].name


def test_token_batches_fill_the_budget_with_whole_rows_and_resume_exactly(tmp_path):
    args = [*tiny_task_args("finetune-glue", tmp_path / "data"), "--num-train-epochs", "2", "--save-strategy", "steps", "--save-steps", "3",
            "--per-device-train-tokens", "256", "--set", "training.load_best_model_at_end=false"]
    full, cut = tmp_path / "full", tmp_path / "cut"
    run_cli(*args, "--output-dir", str(full), check=True)
    results = results_of(full)
    assert results["per_device_train_tokens"] == 256
    batches_per_epoch = results["train_steps"] / 2
    assert results["train_rows_per_batch"] == pytest.approx(results["train_samples"] / batches_per_epoch, abs=0.01)
    assert results["train_rows_per_batch"] > 12  # short rows: more of them than the recipe's batch of 12
    assert results["global_batch_size"] == results["train_rows_per_batch"]
    assert "per_device_train_tokens: 256" in (full / "recipe.yaml").read_text()
    assert _cut_back_to_the_oldest_checkpoint(full, cut) == "checkpoint-12"  # inside the second epoch
    run_cli(*args, "--output-dir", str(cut), "--resume", check=True)
    assert_same_weights(full, cut)
    assert results_of(cut)["train_loss"] == pytest.approx(results["train_loss"], rel=1e-6)


def test_auto_sizes_padding_free_batches_in_tokens_and_a_resumed_run_keeps_them(tmp_path):
    args = [*tiny_task_args("finetune-glue", tmp_path / "data"), "--max-steps", "4", "--save-strategy", "steps", "--save-steps", "2",
            "--set", "training.padding_free=true", "--per-device-train-batch-size", "auto",
            "--set", "training.load_best_model_at_end=false"]
    full, cut = tmp_path / "full", tmp_path / "cut"
    proc = run_cli(*args, "--output-dir", str(full), env={"SSL_FAILPOINT": "oom_above:20"}, check=True)
    results = results_of(full)
    longest = results["per_device_train_tokens"] // 16  # 16 rows of the longest length fit, 24 did not
    assert f"per_device_train_batch_size: 16 of the longest rows ({longest} tokens): per_device_train_tokens " \
           f"{16 * longest}, the largest that fits of 8, 16, 32, 24" in proc.stderr
    assert results["auto_batch_size"] is True and results["train_padding_fraction"] == 0.0
    assert f"per_device_train_tokens: {16 * longest}\n" in (full / "recipe.yaml").read_text()
    _cut_back_to_the_oldest_checkpoint(full, cut)
    proc = run_cli(*args, "--output-dir", str(cut), "--resume", env={"SSL_FAILPOINT": "oom_above:100"}, check=True)
    assert f"(per_device_train_tokens {16 * longest}), as the run being resumed chose" in proc.stderr
    assert_same_weights(full, cut)


def test_a_budget_of_zero_is_one_line(tmp_path):
    """(A budget under the longest row, or on a stream: test_bad_input.py.)"""
    args = tiny_task_args("finetune-glue", tmp_path / "data")
    proc = run_cli(*args, "--per-device-train-tokens", "0", "--output-dir", str(tmp_path / "run"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "per_device_train_tokens" in lines[0], proc.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.multiprocess
def test_two_processes_get_as_many_batches_and_weigh_their_uneven_rows_as_one_batch():
    """Under accelerate launch (2 gloo processes, ``tests/uneven_rows_worker.py``): Accelerate's prepared loader
    gives each process as many token batches and every row at least once; a real DDP gradient over 3 + 5 rows is
    the mean over the 8 (and the plain mean of the two processes' means is not); so is one over two accumulated
    batches per process of different labelled tokens; and so are bf16-weights' fp32 gradients."""
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([*launch, "tests/uneven_rows_worker.py"], cwd=ROOT, capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for line in ("shards OK", "weighted OK", "unweighted differs", "accumulated OK", "master weights OK"):
        assert proc.stdout.count(line) == 2, proc.stdout


def test_static_token_batches_train_as_the_flattened_ones_do(tmp_path):
    """``training.static_token_batches``: every batch filled out to one shape trains to the weights of the plain
    padding-free batches; the fillers show as padding, and the shape is recorded."""
    args = [*tiny_task_args("finetune-qa", tmp_path / "data"), "--max-steps", "4", "--per-device-train-tokens", "1024",
            "--set", "training.padding_free=true", *NO_DROPOUT]
    run_cli(*args, "--output-dir", str(tmp_path / "flat"), check=True)
    proc = run_cli(*args, "--set", "training.static_token_batches=true", "--output-dir", str(tmp_path / "static"),
                   check=True)
    flat, static = results_of(tmp_path / "flat"), results_of(tmp_path / "static")
    tokens = static["static_token_batch_tokens"]
    assert f"static token batches: every training batch is {tokens} tokens" in proc.stderr
    assert 1024 < tokens < 1100 and "static_token_batch_tokens" not in flat
    assert flat["train_padding_fraction"] == 0.0 < static["train_padding_fraction"] < 0.5
    assert static["train_loss"] == pytest.approx(flat["train_loss"], rel=1e-6)
    # the weights agree to float noise, which Adam magnifies in the attention keys' biases (their gradient is 0)
    assert_same_weights(tmp_path / "flat", tmp_path / "static", atol=5e-4)
    assert static["eval_f1"] == pytest.approx(flat["eval_f1"], abs=1e-6)

