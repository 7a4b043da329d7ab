"""``--mixed-precision bf16-weights`` end to end: the passes in bf16, everything a user keeps in fp32 (the saved
model, checkpoints, an exact ``--resume``), and two processes training as one (``master_weights.MasterWeights``;
its gradient reduction alone: ``tests/uneven_rows_worker.py``)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import NO_DROPOUT, results_of, run_cli, run_then_resume, tiny_task_args
from tests.e2e.test_multiprocess import two_then_one

pytestmark = pytest.mark.slow
QUIET = ["--set", "training.eval_strategy=no", "--set", "training.save_strategy=no"]


def test_bf16_weights_train_near_fp32_and_save_an_fp32_model(tmp_path):
    args = [*tiny_task_args("finetune-glue", tmp_path / "data"), *NO_DROPOUT]
    run_cli(*args, "--mixed-precision", "no", "--output-dir", str(tmp_path / "fp32"), check=True)
    run_cli(*args, "--mixed-precision", "bf16-weights", "--output-dir", str(tmp_path / "bf16"), check=True)
    fp32, bf16 = results_of(tmp_path / "fp32"), results_of(tmp_path / "bf16")
    assert bf16["mixed_precision"] == "bf16-weights" and fp32["mixed_precision"] == "no"
    assert bf16["train_loss"] == pytest.approx(fp32["train_loss"], rel=1e-2)
    assert bf16["eval_accuracy"] == pytest.approx(fp32["eval_accuracy"], abs=0.1)
    saved, plain = load_file(tmp_path / "bf16" / "model.safetensors"), load_file(tmp_path / "fp32" / "model.safetensors")
    assert {tensor.dtype for tensor in saved.values()} == {torch.float32}
    assert any(not torch.equal(saved[key], plain[key]) for key in saved), "the bf16 passes changed nothing"
    assert json.loads((tmp_path / "bf16" / "config.json").read_text())["dtype"] == "float32"
    assert "bf16-weights" in (tmp_path / "bf16" / "README.md").read_text()


def test_bf16_weights_resume_to_the_same_weights(tmp_path):
    """Micro-batches and accumulated batches add their bf16 gradients in fp32; checkpoints hold the fp32 masters,
    so a resumed run recomputes the very bf16 copies the uninterrupted one had."""
    args = [*tiny_task_args("tag-pos", tmp_path / "data"), "--mixed-precision", "bf16-weights", "--max-steps", "4",
            "--per-device-train-batch-size", "8", "--gradient-accumulation-steps", "2", "--save-steps", "2",
            "--set", "training.load_best_model_at_end=false", "--set", "model.dropout=0.1",
            "--set", "training.eval_strategy=no", "--set", "training.do_eval=false"]
    run_then_resume(args, tmp_path, keep="checkpoint-2", later=["checkpoint-4"])


@pytest.mark.multiprocess
def test_bf16_weights_on_two_processes_train_as_one(tmp_path):
    """DDP cannot reduce what bf16-weights hands the optimizer; its own all-reduce does. Without it the two
    processes' losses part from one process's by about 0.5%; with it they agree to 0.01%."""
    common = [*tiny_task_args("finetune-glue", tmp_path / "data"), "--set", "training.group_by_length=false",
              *QUIET, "--mixed-precision", "bf16-weights", *NO_DROPOUT]
    two, one = two_then_one(common, tmp_path)
    assert two["mixed_precision"] == one["mixed_precision"] == "bf16-weights"
    assert two["train_loss"] == pytest.approx(one["train_loss"], rel=1e-3)
