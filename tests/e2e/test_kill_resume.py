"""Runs killed with SIGKILL at the worst moments resume to exactly the uninterrupted result.

Each task trains 12 steps with a checkpoint and an evaluation every 4 and
dropout on (so the RNG state matters). One run is killed (a real SIGKILL: no
clean-up runs) at each of these points in turn, every kill but the first
hitting a resumed run, and is finally resumed to the end:

- ``step:6``: mid-epoch, two steps after checkpoint-4;
- ``evaluating:8``: inside the evaluation at step 8, before checkpoint-8;
- ``saving:8``: inside the write of checkpoint-8, whose files are on disk
  but not yet renamed into place (``save_total_limit`` 1: checkpoint-4 must
  survive as the newest complete one);
- ``saved:8``: just after checkpoint-8 is complete.

The run must end with the same weights as an uninterrupted one (bit for bit),
the same logged losses and learning rates, and the same evaluation metrics.
A second test kills a run with SIGKILL from outside at 20 moments drawn at
random over its wall time and resumes it after each one.

For finetune-glue the uninterrupted run and the final resume of the first test are fresh interpreters,
each with a hash seed of its own (the killed runs between fork the warm zygote, with a third), so a resume
that depended on the order of a set or a dict would show.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli, tiny_task_args

pytestmark = pytest.mark.slow

FRESH = {"finetune-glue"}  # tasks whose runs start fresh interpreters (tests.zygote: the others fork a warm one)
KILL_POINTS = {"step:6": 4, "evaluating:8": 4, "saving:8": 4, "saved:8": 8}  # in this order; -> newest checkpoint
SCHEDULE = ["--max-steps", "12", "--save-steps", "4", "--eval-steps", "4", "--logging-steps", "1",
            "--per-device-train-batch-size", "8", "--set", "training.save_total_limit=1",
            "--set", "training.load_best_model_at_end=false", "--set", "model.dropout=0.1"]


@pytest.fixture(scope="module")
def task_args(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill-data")
    return {task: tiny_task_args(task, root / task) for task in ("finetune-qa", "finetune-glue", "pretrain-mlm")}


_uninterrupted: dict[str, Path] = {}


def _uninterrupted_run(task: str, args: list[str], tmp_path_factory) -> Path:
    if task not in _uninterrupted:
        out = tmp_path_factory.mktemp("full") / task
        run_cli(*args, *SCHEDULE, "--output-dir", str(out), check=True, fresh=task in FRESH)
        _uninterrupted[task] = out
    return _uninterrupted[task]


def _log(out: Path) -> list[dict]:
    """The log without wall-clock figures."""
    records = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if "per_second" not in k and "runtime" not in k} for r in records]


def _quality(out: Path) -> dict:
    results = json.loads((out / "all_results.json").read_text())
    return {k: v for k, v in results.items() if k.startswith("eval_") or k in ("train_loss", "train_steps", "epoch")}


@pytest.mark.parametrize("task", ["finetune-qa", "finetune-glue", "pretrain-mlm"])
def test_a_run_killed_at_every_point_resumes_to_the_uninterrupted_result(task, task_args, tmp_path, tmp_path_factory):
    """One run, killed four times in a row (each resume is killed at the next point), then resumed to the end:
    any resume that was not exact would show in the final weights."""
    from safetensors.torch import load_file

    full = _uninterrupted_run(task, task_args[task], tmp_path_factory)
    out = tmp_path / "killed"
    for number, (kill_point, resumes_from) in enumerate(KILL_POINTS.items()):
        resume = ["--resume"] if number else []
        killed = run_cli(*task_args[task], *SCHEDULE, "--output-dir", str(out), *resume,
                         env={"SSL_FAILPOINT": kill_point})
        assert killed.returncode == -9, (kill_point, killed.stderr[-2000:])
        assert not (out / "all_results.json").exists()
        steps = sorted(int(p.name.removeprefix("checkpoint-")) for p in out.glob("checkpoint-*"))
        # the newest complete checkpoint survives the rotation (and the best one, when older: GLUE here)
        assert steps[-1] == resumes_from and len(steps) <= 2, (kill_point, steps)
        if kill_point.startswith("saving"):
            assert (out / ".checkpoint-8.tmp" / "model.safetensors").is_file()  # the write was well under way

    resumed = run_cli(*task_args[task], *SCHEDULE, "--output-dir", str(out), "--resume", check=True,
                      fresh=task in FRESH)
    assert f"resumed from {out / 'checkpoint-8'}" in resumed.stderr.replace("\n", "")
    a, b = load_file(full / "model.safetensors"), load_file(out / "model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert _log(out) == _log(full)
    assert _quality(out) == _quality(full)
    assert not list(out.glob(".checkpoint-*.tmp"))


def test_a_corrupt_checkpoint_is_refused_with_one_line(task_args, tmp_path):
    out = tmp_path / "run"
    args = [*task_args["pretrain-mlm"], *SCHEDULE, "--max-steps", "4", "--output-dir", str(out)]
    run_cli(*args, check=True)
    manifest = json.loads((out / "checkpoint-4" / "manifest.json").read_text())
    assert {"model.safetensors", "optimizer.bin", "trainer_state.json"} <= manifest["files"].keys()
    weights = out / "checkpoint-4" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped bit pattern in the middle of the weights
    weights.write_bytes(bytes(data))
    proc = run_cli(*args, "--resume")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    line = proc.stderr.strip()
    assert len(line.splitlines()) == 1 and "corrupt" in line and "model.safetensors" in line and "SHA-256" in line
    weights.write_bytes(bytes(data[:-10]))  # cut short
    assert "bytes, not" in run_cli(*args, "--resume").stderr


RANDOM_SCHEDULE = ["--max-steps", "36", "--save-steps", "3", "--eval-steps", "3", "--logging-steps", "1",
                   "--per-device-train-batch-size", "8", "--set", "training.save_total_limit=2",
                   "--set", "model.dropout=0.1"]


def test_twenty_kills_at_random_moments_each_resume_to_the_uninterrupted_result(task_args, tmp_path):
    """SIGKILL (from outside, as ``kill -9`` or the OOM killer) at moments drawn at random over a run's wall
    time: in start-up, a step, an evaluation, a checkpoint's write, a rotation or the final save. After each kill
    the run resumes from its newest checkpoint (or starts afresh when it had none); every resume must succeed,
    and every run that gets to its end must end bit-identical to the uninterrupted one (weights, log, metrics),
    and a new run starts. Kills go on until there have been 20, 8 of them on a run that had a checkpoint, and 3
    runs have finished. The draws are seeded: a failure names the delays that led to it."""
    import random
    import subprocess
    import time

    from safetensors.torch import load_file

    args = [*task_args["finetune-glue"], *RANDOM_SCHEDULE]
    full = tmp_path / "full"
    run_cli("--version")  # the zygote is warm: the run is timed as every later one starts
    started = time.monotonic()
    run_cli(*args, "--output-dir", str(full), check=True)
    duration = time.monotonic() - started
    expected = load_file(full / "model.safetensors")
    draws, kills, completions, resumed = random.Random(20), [], 0, 0
    out = tmp_path / "run-0"
    while len(kills) < 20 or resumed < 8 or completions < 3:  # kills in start-up count, but do not test a resume
        assert len(kills) < 80, f"the kills never reached a checkpoint often enough: {kills}"
        delay = draws.uniform(0.1, duration)
        has_checkpoint = any(out.glob("checkpoint-*"))
        mode = ["--resume"] if has_checkpoint else ["--overwrite"]
        try:
            proc = run_cli(*args, "--output-dir", str(out), *mode, timeout=delay)
        except subprocess.TimeoutExpired:
            kills.append(round(delay, 2))
            resumed += has_checkpoint
            continue
        assert proc.returncode == 0, (kills, delay, proc.stderr[-2000:])
        got = load_file(out / "model.safetensors")
        assert all((got[k] == expected[k]).all() for k in expected), f"not bit-identical after kills {kills}"
        assert _log(out) == _log(full) and _quality(out) == _quality(full), kills
        completions += 1
        out = tmp_path / f"run-{completions}"
