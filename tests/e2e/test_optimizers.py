"""``--optim``: the Trainer's optimizer names train, checkpoint their own state, resume exactly, are named in the
model card, and a resumed run may not switch optimizer."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import run_cli, tiny_task_args


def _schedule(*extra: str) -> list[str]:
    return ["--max-steps", "6", "--save-steps", "2", "--set", "training.load_best_model_at_end=false", *extra]


def _weights(run: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(run / "model.safetensors")


@pytest.mark.parametrize("optim, optim_args, state_key", [
    ("adafactor", [], "exp_avg_sq_row"), ("sgd", [], None), ("sgd", ["--optim_args", "momentum=0.9"], "momentum_buffer"),
    ("rmsprop", [], "square_avg"),
])
def test_optimizer_trains_and_resumes_to_the_uninterrupted_result(optim, optim_args, state_key, tmp_path):
    import torch

    args = [*tiny_task_args("finetune-glue", tmp_path / "data"), "--optim", optim, *optim_args]
    run = tmp_path / "run"
    run_cli(*args, *_schedule(), "--output-dir", str(run), check=True)
    assert f"- optimizer: {optim}" in (run / "README.md").read_text(encoding="utf-8")
    state = torch.load(run / "checkpoint-6" / "optimizer.bin", weights_only=True)["state"]
    if state_key is not None:  # the optimizer's own state: this is that optimizer, not AdamW under another name
        assert any(state_key in s for s in state.values()) and not any("exp_avg" in s for s in state.values())
    uninterrupted = _weights(run)

    shutil.rmtree(run / "checkpoint-6")
    proc = run_cli(*args, *_schedule(), "--output-dir", str(run), "--resume", check=True)
    assert "resumed from" in proc.stderr
    resumed = _weights(run)
    assert resumed.keys() == uninterrupted.keys()
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in resumed)


def test_resume_with_another_optimizer_is_refused_naming_both(tmp_path):
    args = tiny_task_args("finetune-glue", tmp_path / "data")
    run = tmp_path / "run"
    run_cli(*args, *_schedule("--optim", "sgd"), "--output-dir", str(run), check=True)
    shutil.rmtree(run / "checkpoint-6")
    proc = run_cli(*args, *_schedule("--optim", "adafactor"), "--output-dir", str(run), "--resume")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "training.optim 'sgd' -> 'adafactor'" in errors[0], proc.stderr
