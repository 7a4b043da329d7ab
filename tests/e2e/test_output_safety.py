"""Nothing a user has is lost: the output dir is checked before it is touched, locked while a run holds it,
resumed only with the recipe and data it was trained with, and never shares names between evaluation sets.

Every case asserts on the files as a user would find them afterwards.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import one_line_error, run_cli, tiny_task_args

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def glue_args(tmp_path_factory) -> list[str]:
    return tiny_task_args("finetune-glue", tmp_path_factory.mktemp("glue-data"))


@pytest.fixture(scope="module")
def trained_run(glue_args, tmp_path_factory) -> Path:
    """A finished run (a model dir with a checkpoint), copied by each test that changes it."""
    out = tmp_path_factory.mktemp("trained") / "run"
    run_cli(*glue_args, "--max-steps", "4", "--save-steps", "2", "--output-dir", str(out), check=True)
    return out


def _snapshot(directory: Path) -> dict[str, bytes]:
    """Every file of the run, byte for byte; the lock file holds only the pid of the last run that held it."""
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*"))
            if p.is_file() and p.name != ".ssl.lock"}


def _copy(run: Path, tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(run, target)
    return target


@pytest.mark.parametrize("bad", [["--model", "./no/such/model"], ["--train-file", "no-such-train.tsv"],
                                 ["--max-seq-length", "8"]])
def test_overwrite_checks_model_data_and_recipe_before_emptying_the_dir(bad, glue_args, trained_run, tmp_path):
    run = _copy(trained_run, tmp_path)
    before = _snapshot(run)
    proc = run_cli(*glue_args, *bad, "--output-dir", str(run), "--overwrite")
    one_line_error(proc)
    assert _snapshot(run) == before


def test_overwrite_that_fails_setting_up_training_keeps_the_old_run(glue_args, trained_run, tmp_path):
    """The batch search runs after the output dir is claimed: when not one row fits, the old run is still there,
    and a later --overwrite that trains replaces it, leaving nothing set aside."""
    run = _copy(trained_run, tmp_path)
    before = _snapshot(run)
    proc = run_cli(*glue_args, "--per-device-train-batch-size", "auto", "--output-dir", str(run), "--overwrite",
                   env={"SSL_FAILPOINT": "oom_above:0"})
    assert "not even one training row" in one_line_error(proc)
    assert _snapshot(run) == before
    run_cli(*glue_args, "--max-steps", "1", "--output-dir", str(run), "--overwrite", check=True)
    names = {p.name for p in run.iterdir()}
    assert "model.safetensors" in names and not {"checkpoint-2", "checkpoint-4"} & names
    assert not [name for name in names if name.startswith(".ssl-replaced")]


def test_overwrite_killed_before_training_is_undone_by_the_next_run(glue_args, trained_run, tmp_path):
    """kill -9 right after the claim: the old run lies set aside, and the next ssl on the dir puts it back."""
    run = _copy(trained_run, tmp_path)
    before = _snapshot(run)
    killed = run_cli(*glue_args, "--output-dir", str(run), "--overwrite", env={"SSL_FAILPOINT": "claimed:0"})
    assert killed.returncode == -9
    assert not (run / "model.safetensors").exists() and (run / ".ssl-replaced" / "model.safetensors").is_file()
    proc = run_cli(*glue_args, "--output-dir", str(run))
    assert "is not empty" in one_line_error(proc)
    assert "put back the run" in proc.stderr
    assert _snapshot(run) == before


def test_an_output_dir_that_is_or_holds_the_model_is_refused(glue_args, trained_run, tmp_path):
    run = _copy(trained_run, tmp_path)
    before = _snapshot(run)
    line = one_line_error(run_cli(*glue_args, "--model", str(run), "--output-dir", str(run), "--overwrite"))
    assert "is the model's directory" in line and "--output-dir" in line
    line = one_line_error(run_cli(*glue_args, "--model", str(run), "--output-dir", str(tmp_path), "--overwrite"))
    assert "holds the model" in line
    assert _snapshot(run) == before


def test_saved_recipe_never_overwrites_by_itself(glue_args, trained_run, tmp_path):
    """The saved recipe.yaml has overwrite: false, and a recipe file that says true is ignored with a note."""
    run = _copy(trained_run, tmp_path)
    saved = (run / "recipe.yaml").read_text()
    assert "overwrite: false" in saved and "resume: false" in saved and "--output-dir NEW_DIR" in saved
    before = _snapshot(run)
    assert "is not empty" in one_line_error(run_cli("finetune-glue", "--recipe", str(run / "recipe.yaml")))
    forcing = tmp_path / "forcing.yaml"
    forcing.write_text(saved.replace("overwrite: false", "overwrite: true"), encoding="utf-8")
    proc = run_cli("finetune-glue", "--recipe", str(forcing))
    assert "is not empty" in one_line_error(proc)
    assert "sets training.overwrite: true, ignored" in proc.stderr
    assert _snapshot(run) == before


def test_a_second_run_on_a_locked_dir_exits_at_once_naming_the_first(glue_args, tmp_path):
    """The lock is a real flock, held here as a running ssl would hold it; released, the same file locks nothing."""
    run = tmp_path / "run"
    run.mkdir()
    lock = (run / ".ssl.lock").open("a+")
    lock.write("4242")
    lock.flush()
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        line = one_line_error(run_cli(*glue_args, "--max-steps", "1", "--output-dir", str(run)))
        assert "in use by another ssl run (pid 4242)" in line
    finally:
        lock.close()
    assert list(run.iterdir()) == [run / ".ssl.lock"]
    run_cli(*glue_args, "--max-steps", "1", "--output-dir", str(run), check=True)  # a stale lock file is no lock
    assert (run / "model.safetensors").is_file()


def test_two_concurrent_runs_one_refused_and_the_other_intact(glue_args, tmp_path):
    import subprocess
    import sys
    import time

    from tests.conftest import ROOT

    run = tmp_path / "run"
    long_run = [*glue_args, "--max-steps", "250", "--logging-steps", "50", "--output-dir", str(run)]
    first = subprocess.Popen([sys.executable, "-m", "ssl_cli", *long_run], cwd=ROOT, env={**os.environ},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (run / "train_log.jsonl").is_file() and first.poll() is None and time.time() < deadline:
            time.sleep(0.2)  # training has started: the lock is held
        second = run_cli(*glue_args, "--max-steps", "1", "--output-dir", str(run), "--overwrite")
        running = first.poll() is None
        assert f"pid {first.pid}" in one_line_error(second)
    finally:
        _, err = first.communicate(timeout=600)
    assert running, "the first run ended before the second was refused: lengthen it"
    assert first.returncode == 0, err[-2000:]
    log = (run / "train_log.jsonl").read_text().splitlines()
    assert len(log) == len({json.loads(line)["step"] for line in log})  # every step logged once


def _schedule(*extra: str) -> list[str]:
    return ["--max-steps", "6", "--save-steps", "2", "--set", "training.load_best_model_at_end=false", *extra]


def test_resume_refuses_a_changed_recipe_or_data_and_names_what_changed(glue_args, tmp_path):
    run = tmp_path / "run"
    run_cli(*glue_args, *_schedule(), "--output-dir", str(run), check=True)
    shutil.rmtree(run / "checkpoint-6")
    line = one_line_error(run_cli(*glue_args, *_schedule("--learning-rate", "0.5"), "--output-dir", str(run), "--resume"))
    assert "training.learning_rate 0.001 -> 0.5" in line
    line = one_line_error(run_cli(*glue_args, *_schedule("--per-device-train-batch-size", "4"), "--output-dir", str(run),
                                   "--resume"))
    assert "training.per_device_train_batch_size" in line
    train_file = Path(glue_args[glue_args.index("--train-file") + 1])
    changed = tmp_path / "train.tsv"
    changed.write_text(train_file.read_text().replace("good", "fine", 1))
    args = [*glue_args]
    args[args.index("--train-file") + 1] = str(changed)
    line = one_line_error(run_cli(*args, *_schedule(), "--output-dir", str(run), "--resume"))
    assert "training.train_file" not in line and "data.train_file" in line and "training data train.tsv" in line
    # what decides logging, evaluation and checkpoints may change, and max_steps may grow
    proc = run_cli(*glue_args, *_schedule("--logging-steps", "1", "--max-steps", "8", "--save-total-limit", "3"),
                   "--output-dir", str(run), "--resume", check=True)
    assert "resumed from" in proc.stderr
    assert json.loads((run / "all_results.json").read_text())["train_steps"] == 8


def test_resume_skips_checkpoints_that_do_not_verify_and_says_why(glue_args, tmp_path):
    run = tmp_path / "run"
    run_cli(*glue_args, *_schedule("--set", "training.save_total_limit=3"), "--output-dir", str(run), check=True)
    (run / "checkpoint-6" / "manifest.json").unlink()  # weights that can no longer be verified
    data = bytearray((run / "checkpoint-4" / "model.safetensors").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (run / "checkpoint-4" / "model.safetensors").write_bytes(bytes(data))
    (run / "model.safetensors").unlink()
    proc = run_cli(*glue_args, *_schedule("--set", "training.save_total_limit=3"), "--output-dir", str(run), "--resume",
                   check=True)
    assert "skipped checkpoint-6 cannot be verified: it has no manifest.json" in proc.stderr.replace("\n", " ")
    assert "checkpoint-4 is corrupt: model.safetensors fails its SHA-256 check" in proc.stderr.replace("\n", " ")
    assert f"resumed from {run / 'checkpoint-2'}" in proc.stderr.replace("\n", "")
    (run / "checkpoint-2" / "manifest.json").unlink()
    for name in ("checkpoint-4", "checkpoint-6"):
        shutil.rmtree(run / name, ignore_errors=True)
    line = one_line_error(run_cli(*glue_args, *_schedule(), "--output-dir", str(run), "--resume"))
    assert "nothing to resume" in line and "no manifest.json" in line


def test_a_kill_while_a_checkpoint_is_discarded_resumes_exactly(glue_args, tmp_path):
    """Rotation renames a doomed checkpoint out of the checkpoint-N namespace before deleting it: killed in
    between, the run resumes from the newest one and ends bit-identical to an uninterrupted run."""
    from safetensors.torch import load_file

    schedule = _schedule("--set", "training.save_total_limit=1", "--set", "model.dropout=0.1")
    full, cut = tmp_path / "full", tmp_path / "cut"
    run_cli(*glue_args, *schedule, "--output-dir", str(full), check=True)
    killed = run_cli(*glue_args, *schedule, "--output-dir", str(cut), env={"SSL_FAILPOINT": "discarding:2"})
    assert killed.returncode == -9
    assert (cut / ".discarded-checkpoint-2").is_dir() and (cut / "checkpoint-4").is_dir()
    run_cli(*glue_args, *schedule, "--output-dir", str(cut), "--resume", check=True)
    assert not (cut / ".discarded-checkpoint-2").exists()
    a, b = load_file(full / "model.safetensors"), load_file(cut / "model.safetensors")
    assert all((a[k] == b[k]).all() for k in a)


def test_evaluation_set_names_never_collide(glue_args, tmp_path):
    """--eval-data other/eval.json is not the validation set, and two dev.tsv files keep their own results."""
    dev = Path(glue_args[glue_args.index("--validation-file") + 1])
    other, second = tmp_path / "other" / "eval.tsv", tmp_path / "b" / "dev.tsv"
    for target in (other, second):
        target.parent.mkdir()
        lines = dev.read_text().splitlines()
        target.write_text("\n".join(lines[: 1 + len(lines) // 2]) + "\n")
    chinese = tmp_path / "开发集.tsv"
    shutil.copy(dev, chinese)
    out = tmp_path / "out"
    run_cli(*glue_args, "--max-steps", "2", "--eval-data", f"{other},{dev},{second},{chinese}", "--output-dir", str(out),
            check=True)
    results = json.loads((out / "all_results.json").read_text())
    full, half = len(dev.read_text().splitlines()) - 1, len(dev.read_text().splitlines()) // 2
    assert results["eval_samples"] == full and results["eval_other_eval_samples"] == half
    assert results["eval_dev_samples"] == full and results["eval_b_dev_samples"] == half
    assert results["eval_开发集_samples"] == full
    for name in ("eval", "other_eval", "dev", "b_dev", "开发集"):
        assert (out / f"{name}_predictions.jsonl").is_file(), name


def _tmpfs(tmp_path: Path, size: str):
    """A tmpfs of ``size`` mounted under ``tmp_path``; skipped where mounting is not allowed (not root, or a
    container without the capability)."""
    import subprocess

    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.fixture
def small_disk(tmp_path):
    """A 9 MB tmpfs: one checkpoint of the tiny model (6 MB) fits, a second does not."""
    yield from _tmpfs(tmp_path, "9m")


@pytest.fixture
def own_disk(tmp_path):
    """A 64 MB tmpfs of its own, that a test may remount read-only."""
    yield from _tmpfs(tmp_path, "64m")


def test_a_full_disk_is_one_line_and_keeps_the_previous_checkpoint(glue_args, small_disk):
    import subprocess

    run = small_disk / "run"
    schedule = _schedule("--set", "training.save_total_limit=3")
    line = one_line_error(run_cli(*glue_args, *schedule, "--output-dir", str(run)))
    assert "cannot write checkpoint-4" in line and "no space left on device" in line and "--resume" in line
    assert (run / "checkpoint-2" / "manifest.json").is_file() and not list(run.glob(".checkpoint-*.tmp"))
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)  # space freed
    proc = run_cli(*glue_args, *schedule, "--output-dir", str(run), "--resume", check=True)
    assert f"resumed from {run / 'checkpoint-2'}" in proc.stderr.replace("\n", "")
    assert json.loads((run / "all_results.json").read_text())["train_steps"] == 6


def test_a_read_only_output_dir_is_one_line_and_keeps_the_run(glue_args, own_disk):
    """The disk of a trained run turns read-only (a remount after an error, a quota, a snapshot): resuming,
    overwriting or starting a run there is one line each, and the run's files stay as they were."""
    import subprocess

    run = own_disk / "run"
    run_cli(*glue_args, *_schedule("--max-steps", "2"), "--output-dir", str(run), check=True)
    before = _snapshot(run)
    subprocess.run(["mount", "-o", "remount,ro", str(own_disk)], check=True)
    for extra in (["--resume", "--max-steps", "6"], ["--overwrite"]):
        line = one_line_error(run_cli(*glue_args, *_schedule(), "--output-dir", str(run), *extra))
        assert "read-only file system" in line.lower() and str(run) in line, line
    line = one_line_error(run_cli(*glue_args, *_schedule(), "--output-dir", str(own_disk / "new")))
    assert "cannot write output_dir" in line and "read-only file system" in line.lower()
    assert _snapshot(run) == before
