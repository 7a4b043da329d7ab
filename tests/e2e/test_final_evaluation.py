"""Training always ends with an evaluation and a checkpoint of the final weights, for every task in the registry.

Each task trains 1.5 epochs with epoch cadence: one evaluation and checkpoint
at the end of epoch 1, where a step limit does not stop training, and one of
the final weights, mid-epoch. The model left in the output dir is the best
of both evaluations. Stopping at an epoch's last step (the step limit and the
epoch end fall together) is checked on finetune-glue and tag-pos.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from ssl_cli.tasks import all_tasks
from tests.conftest import run_cli, tiny_task_args

pytestmark = pytest.mark.slow

EPOCH_CADENCE = ["--per-device-train-batch-size", "16", "--logging-steps", "1",
                 "--set", "training.eval_strategy=epoch", "--set", "training.save_strategy=epoch",
                 "--set", "training.save_total_limit=4"]


def _evaluations(out: Path) -> list[dict]:
    records = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    return [r for r in records if any(k.startswith("eval_") for k in r)]


def _same_weights(a: Path, b: Path) -> bool:
    first, second = load_file(a), load_file(b)
    return first.keys() == second.keys() and all((first[k] == second[k]).all() for k in first)


def _best_step(evaluations: list[dict], metric: str, greater: bool) -> int:
    """The first evaluation with the best value, as the engine picks (ties keep the earlier one)."""
    best = None
    for record in evaluations:
        value = record[metric]
        if best is None or (value > best[1] if greater else value < best[1]):
            best = (record["step"], value)
    return best[0]


@pytest.mark.parametrize("command", sorted(all_tasks()))
def test_final_weights_are_evaluated_checkpointed_and_in_best_model_selection(command, tmp_path):
    out = tmp_path / "run"
    run_cli(*tiny_task_args(command, tmp_path / "data"), *EPOCH_CADENCE, "--num-train-epochs", "1.5",
            "--output-dir", str(out), check=True)
    steps = json.loads((out / "all_results.json").read_text())["train_steps"]
    evaluations = _evaluations(out)
    first_epoch = evaluations[0]["step"]
    assert [r["step"] for r in evaluations] == [first_epoch, steps], "one evaluation per epoch, then the final one"
    assert first_epoch < steps and evaluations[0]["epoch"] == 1 and 1 < evaluations[1]["epoch"] < 2
    final = out / f"checkpoint-{steps}"
    state = json.loads((final / "trainer_state.json").read_text())
    assert [r["step"] for r in state["eval_history"]] == [first_epoch, steps]
    task = all_tasks()[command]
    metric = f"eval_{task.main_metric}"  # the tiny sets' main metric (tag-pos: accuracy, without entity tags)
    best = _best_step(evaluations, metric, task.greater_is_better)
    assert state["best_checkpoint"] == str(out / f"checkpoint-{best}")
    assert _same_weights(out / "model.safetensors", out / f"checkpoint-{best}" / "model.safetensors")


@pytest.mark.parametrize("command", ["finetune-glue", "tag-pos"])
def test_the_last_epoch_is_evaluated_when_the_step_limit_ends_it(command, tmp_path):
    """The reported bug: 2 epochs, the step limit reached on the last epoch's last batch."""
    out = tmp_path / "run"
    run_cli(*tiny_task_args(command, tmp_path / "data"), *EPOCH_CADENCE, "--num-train-epochs", "2",
            "--set", "training.load_best_model_at_end=false", "--output-dir", str(out), check=True)
    steps = json.loads((out / "all_results.json").read_text())["train_steps"]
    evaluations = _evaluations(out)
    assert [(r["step"], r["epoch"]) for r in evaluations] == [(steps // 2, 1), (steps, 2)]
    assert _same_weights(out / "model.safetensors", out / f"checkpoint-{steps}" / "model.safetensors")
    results = json.loads((out / "all_results.json").read_text())
    metric = next(k for k in evaluations[-1] if k.startswith("eval_"))
    assert results[metric] == pytest.approx(evaluations[-1][metric]), "the reported metric is the final model's"


def test_max_steps_inside_an_epoch_ends_with_the_final_evaluation(tmp_path):
    out = tmp_path / "run"
    run_cli(*tiny_task_args("finetune-glue", tmp_path / "data"), *EPOCH_CADENCE, "--max-steps", "5",
            "--set", "training.load_best_model_at_end=false", "--output-dir", str(out), check=True)
    assert [r["step"] for r in _evaluations(out)] == [5]
    assert _same_weights(out / "model.safetensors", out / "checkpoint-5" / "model.safetensors")


def test_save_steps_alone_evaluates_at_each_checkpoint_with_fractional_epochs(tmp_path):
    """--save-steps alone (a cadence the user chose, over the default epoch evaluation) evaluates at each
    checkpoint, and each evaluation record carries the training record's fractional epoch at its step."""
    out = tmp_path / "run"
    recipe = tmp_path / "recipe.yaml"  # the tiny recipe without its cadences: the defaults (per epoch) are left
    lines = Path(all_tasks()["finetune-glue"].tiny_recipe).read_text().splitlines()
    recipe.write_text("\n".join(line for line in lines if not line.strip().startswith(("eval_", "save_"))))
    args = tiny_task_args("finetune-glue", tmp_path / "data")
    args[args.index("--recipe") + 1] = str(recipe)
    proc = run_cli(*args, "--per-device-train-batch-size", "16", "--logging-steps", "1", "--save-steps", "3",
                   "--num-train-epochs", "1", "--output-dir", str(out), check=True)
    records = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    training = {r["step"]: r["epoch"] for r in records if "loss" in r}
    evaluations = _evaluations(out)
    steps = json.loads((out / "all_results.json").read_text())["train_steps"]
    assert [r["step"] for r in evaluations] == [*range(3, steps, 3), steps]  # the final weights' too
    assert all(r["epoch"] == training[r["step"]] for r in evaluations)
    assert 0 < evaluations[0]["epoch"] < 1 and evaluations[-1]["epoch"] == 1
    assert (out / "checkpoint-3").is_dir()
    # the terminal shows each evaluation's scores as a table row under one header
    lines = [line.split() for line in proc.stderr.splitlines()]
    assert lines.count(["step", "epoch", "accuracy"]) == 1
    shown = [(int(row[0]), float(row[1])) for row in lines if len(row) == 3 and row[0].isdigit()]
    assert shown == [(r["step"], round(r["epoch"], 2)) for r in evaluations]
