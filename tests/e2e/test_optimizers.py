"""``--optim``: the Trainer's optimizer names train, checkpoint their own state, resume exactly, are named in the
model card, and a resumed run may not switch optimizer."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import one_line_error, run_cli, run_then_resume, tiny_task_args

SCHEDULE = ["--max-steps", "6", "--save-steps", "2", "--set", "training.load_best_model_at_end=false"]


@pytest.mark.parametrize("optim, optim_args, state_key", [
    ("adafactor", [], "exp_avg_sq_row"), ("sgd", [], None), ("sgd", ["--optim_args", "momentum=0.9"], "momentum_buffer"),
    ("rmsprop", [], "square_avg"),
])
def test_optimizer_trains_and_resumes_to_the_uninterrupted_result(optim, optim_args, state_key, tmp_path):
    import torch

    args = [*tiny_task_args("finetune-glue", tmp_path / "data"), "--optim", optim, *optim_args, *SCHEDULE]
    full, _, _ = run_then_resume(args, tmp_path, keep="checkpoint-4", later=["checkpoint-6"])
    assert f"- optimizer: {optim}" in (full / "README.md").read_text(encoding="utf-8")
    state = torch.load(full / "checkpoint-6" / "optimizer.bin", weights_only=True)["state"]
    if state_key is not None:  # the optimizer's own state: this is that optimizer, not AdamW under another name
        assert any(state_key in s for s in state.values()) and not any("exp_avg" in s for s in state.values())


def test_resume_with_another_optimizer_is_refused_naming_both(tmp_path):
    args = [*tiny_task_args("finetune-glue", tmp_path / "data"), *SCHEDULE]
    run = tmp_path / "run"
    run_cli(*args, "--optim", "sgd", "--output-dir", str(run), check=True)
    shutil.rmtree(run / "checkpoint-6")
    line = one_line_error(run_cli(*args, "--optim", "adafactor", "--output-dir", str(run), "--resume"))
    assert "training.optim 'sgd' -> 'adafactor'" in line
