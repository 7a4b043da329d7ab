"""``--gradient-accumulation-steps`` end to end: accumulated batches weigh by their rows or tokens, as one batch
that many times larger would (``loss.AccumulationWeights``; two processes: ``tests/uneven_rows_worker.py``), and a
run killed between optimizer steps resumes to the same weights."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import NO_DROPOUT, results_of, run_cli, run_then_resume, tiny_task_args

QUIET = ["--set", "training.eval_strategy=no", "--set", "training.do_eval=false"]


def test_two_accumulated_batches_train_as_one_batch_twice_their_size(tmp_path):
    """tag-pos's loss is a mean over labelled tokens, and sentences differ in them: two batches of 8 weighed
    equally would not give the gradient of the 16 (the weights then drift apart by about the learning rate)."""
    args = [*tiny_task_args("tag-pos", tmp_path / "data"), "--max-steps", "3", "--set", "training.group_by_length=false",
            "--set", "training.save_strategy=no", *NO_DROPOUT, *QUIET]
    run_cli(*args, "--per-device-train-batch-size", "16", "--output-dir", str(tmp_path / "one"), check=True)
    run_cli(*args, "--per-device-train-batch-size", "8", "--gradient-accumulation-steps", "2",
            "--output-dir", str(tmp_path / "accumulated"), check=True)
    one, accumulated = load_file(tmp_path / "one" / "model.safetensors"), \
        load_file(tmp_path / "accumulated" / "model.safetensors")
    for key in one:
        torch.testing.assert_close(accumulated[key], one[key], rtol=0, atol=1e-5, msg=key)
    assert results_of(tmp_path / "accumulated")["train_samples"] == results_of(tmp_path / "one")["train_samples"]


@pytest.mark.slow
def test_an_accumulating_run_resumes_to_the_same_weights(tmp_path):
    args = [*tiny_task_args("tag-pos", tmp_path / "data"), "--max-steps", "4", "--per-device-train-batch-size", "4",
            "--gradient-accumulation-steps", "3", "--save-steps", "2", "--set", "training.load_best_model_at_end=false",
            "--set", "model.dropout=0.1", *QUIET]
    run_then_resume(args, tmp_path, keep="checkpoint-2", later=["checkpoint-4"])
