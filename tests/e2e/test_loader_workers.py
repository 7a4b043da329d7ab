"""``training.dataloader_*``: loader workers collate beside the loop without changing a single batch (MLM's
per-epoch masks included) or ``--resume``'s exact continuation; settings that cannot work are one line."""

from __future__ import annotations

import pytest

from tests.conftest import assert_same_weights, copy_cut_back, results_of, run_cli, tiny_task_args

pytestmark = pytest.mark.slow


def test_workers_train_and_resume_exactly_as_the_loop_alone(tmp_path):
    args = [*tiny_task_args("finetune-glue", tmp_path / "data"), "--max-steps", "8", "--save-strategy", "steps",
            "--save-steps", "3", "--set", "training.load_best_model_at_end=false"]
    run_cli(*args, "--output-dir", str(tmp_path / "alone"), check=True)
    assert results_of(tmp_path / "alone")["dataloader_num_workers"] == 0  # auto: none on a CPU
    workers = [*args, "--dataloader_num_workers", "2", "--dataloader_prefetch_factor", "3",
               "--dataloader-persistent-workers"]
    run_cli(*workers, "--output-dir", str(tmp_path / "workers"), check=True)
    assert results_of(tmp_path / "workers")["dataloader_num_workers"] == 2
    assert_same_weights(tmp_path / "alone", tmp_path / "workers")
    cut = tmp_path / "cut"
    copy_cut_back(tmp_path / "workers", cut, ["checkpoint-8"])
    run_cli(*workers, "--output-dir", str(cut), "--resume", check=True)  # from checkpoint-6, mid-epoch
    assert_same_weights(tmp_path / "alone", cut)


def test_mlm_masks_of_every_epoch_reach_the_workers(tmp_path):
    args = [*tiny_task_args("pretrain-mlm", tmp_path / "data"), "--num-train-epochs", "2"]
    run_cli(*args, "--output-dir", str(tmp_path / "alone"), check=True)
    run_cli(*args, "--dataloader-num-workers", "2", "--output-dir", str(tmp_path / "workers"), check=True)
    assert_same_weights(tmp_path / "alone", tmp_path / "workers")
    assert results_of(tmp_path / "workers")["eval_loss"] == results_of(tmp_path / "alone")["eval_loss"]
    # persistent workers would keep epoch 0's masks: refused (test_bad_input.py, persistent-workers-with-epoch-masks)


@pytest.mark.parametrize(("flags", "message"), [
    (["--dataloader-num-workers", "-1"], "--dataloader-num-workers"),
    (["--dataloader-num-workers", "some"], "--dataloader-num-workers"),
    (["--dataloader-num-workers", "0", "--dataloader-prefetch-factor", "2"], "needs loader workers"),
    (["--dataloader-prefetch-factor", "0"], "dataloader_prefetch_factor"),
])
def test_loader_settings_that_cannot_work_are_one_line(tmp_path, flags, message):
    args = tiny_task_args("finetune-glue", tmp_path / "data")
    proc = run_cli(*args, *flags, "--output-dir", str(tmp_path / "run"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert not (tmp_path / "run").exists()
