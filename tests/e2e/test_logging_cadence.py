"""The loss is logged every ``logging_steps`` and at the last step; ``--logging_first_step`` adds the first, as
the Trainer's does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli, tiny_task_args


def _logged_steps(out: Path) -> list[int]:
    records = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    return [r["step"] for r in records if "loss" in r and r["loss"] == r["loss"]]  # logged, and not NaN


@pytest.mark.parametrize("flags, steps", [([], [2, 4, 5]), (["--logging_first_step"], [1, 2, 4, 5])])
def test_logged_steps(flags, steps, tmp_path):
    out = tmp_path / "run"
    run_cli(*tiny_task_args("finetune-glue", tmp_path / "data"), "--max-steps", "5", "--logging-steps", "2",
            "--set", "training.eval_strategy=no", "--set", "training.save_strategy=no", *flags,
            "--output-dir", str(out), check=True)
    assert _logged_steps(out) == steps
