"""``--per-device-train-batch-size auto`` and the Trainer's ``--auto_find_batch_size``, end to end on CPU, where
``SSL_FAILPOINT=oom_above:N`` makes every batch of more than N rows run out of memory for real (the allocator
is asked for a petabyte), as a full GPU would."""

from __future__ import annotations

from tests.conftest import assert_same_weights, copy_cut_back, results_of, run_cli, tiny_task_args


def test_auto_picks_the_largest_size_that_fits_and_trains_as_that_size_would(tmp_path):
    args = [*tiny_task_args("finetune-glue", tmp_path / "data"), "--max-steps", "4"]
    auto = run_cli(*args, "--per-device-train-batch-size", "auto", "--output-dir", str(tmp_path / "auto"),
                   env={"SSL_FAILPOINT": "oom_above:20"}, check=True)
    assert "per_device_train_batch_size: 16, the largest that fits of 8, 16, 32, 24" in auto.stderr
    results = results_of(tmp_path / "auto")
    assert results["per_device_train_batch_size"] == 16 and results["auto_batch_size"] is True
    assert results["auto_batch_sizes_tried"] == [8, 16, 32, 24]
    assert results["global_batch_size"] == 16
    # the probing steps leave no trace: weights, loss and every draw of dropout as with 16 written down
    run_cli(*args, "--per-device-train-batch-size", "16", "--output-dir", str(tmp_path / "fixed"), check=True)
    assert_same_weights(tmp_path / "auto", tmp_path / "fixed")
    assert results["train_loss"] == results_of(tmp_path / "fixed")["train_loss"]
    recipe = (tmp_path / "auto" / "recipe.yaml").read_text()
    assert "per_device_train_batch_size: 16\n" in recipe  # the saved recipe reproduces the run as it trained


def test_under_bf16_weights_the_search_leaves_no_trace_either(tmp_path):
    """The probe steps on the bf16 copies, as training will; the run then trains exactly as with the size given."""
    args = [*tiny_task_args("finetune-glue", tmp_path / "data"), "--max-steps", "3", "--mixed-precision",
            "bf16-weights"]
    auto = run_cli(*args, "--per-device-train-batch-size", "auto", "--output-dir", str(tmp_path / "auto"),
                   env={"SSL_FAILPOINT": "oom_above:12"}, check=True)
    assert "per_device_train_batch_size: 8, the largest that fits of 8, 16 (up to" in auto.stderr
    run_cli(*args, "--per-device-train-batch-size", "8", "--output-dir", str(tmp_path / "fixed"), check=True)
    assert_same_weights(tmp_path / "auto", tmp_path / "fixed")
    assert results_of(tmp_path / "auto")["train_loss"] == results_of(tmp_path / "fixed")["train_loss"]


def test_the_trainers_auto_find_batch_size_lowers_the_given_size_until_it_fits(tmp_path):
    args = tiny_task_args("finetune-glue", tmp_path / "data")
    proc = run_cli(*args, "--max_steps", "2", "--auto_find_batch_size", "--per_device_train_batch_size", "64",
                   "--set", "training.auto_batch_lr_scaling=sqrt", "--learning-rate", "1e-4",
                   "--output-dir", str(tmp_path / "run"), env={"SSL_FAILPOINT": "oom_above:40"}, check=True)
    results = results_of(tmp_path / "run")
    assert results["per_device_train_batch_size"] == 40  # 8, 16, 32 fit, 64 not, then 48, 40
    assert results["auto_batch_sizes_tried"] == [8, 16, 32, 64, 48, 40]
    assert abs(results["learning_rate"] - 1e-4 * (40 / 32) ** 0.5) < 1e-12
    assert "learning_rate 0.0001 -> 0.000111803 (sqrt)" in proc.stderr


def test_a_resumed_run_keeps_the_size_its_search_chose(tmp_path):
    args = [*tiny_task_args("finetune-glue", tmp_path / "data"), "--max-steps", "4", "--save-steps", "2",
            "--per-device-train-batch-size", "auto", "--set", "training.load_best_model_at_end=false"]
    full, cut = tmp_path / "full", tmp_path / "cut"
    run_cli(*args, "--output-dir", str(full), env={"SSL_FAILPOINT": "oom_above:20"}, check=True)
    copy_cut_back(full, cut, ["checkpoint-4"])
    # memory has grown since: a new search would choose more, but the run goes on at 16 and ends as it would have
    proc = run_cli(*args, "--output-dir", str(cut), "--resume", env={"SSL_FAILPOINT": "oom_above:100"}, check=True)
    assert "per_device_train_batch_size: 16, as the run being resumed chose" in proc.stderr
    assert results_of(cut)["per_device_train_batch_size"] == 16
    assert_same_weights(full, cut)


def test_when_not_one_row_fits_it_says_what_to_do_in_one_line(tmp_path):
    args = tiny_task_args("finetune-glue", tmp_path / "data")
    proc = run_cli(*args, "--per-device-train-batch-size", "auto", "--output-dir", str(tmp_path / "run"),
                   env={"SSL_FAILPOINT": "oom_above:0"})
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == [lines[-1]] and "not even one training row" in lines[-1] and "--max-seq-length" in lines[-1]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()  # a run refused as training starts leaves no output dir behind


def test_a_batch_size_that_is_neither_a_number_nor_auto_is_one_line(tmp_path):
    args = tiny_task_args("finetune-glue", tmp_path / "data")
    for value in ("lots", "0", "2.5"):
        proc = run_cli(*args, "--per-device-train-batch-size", value, "--output-dir", str(tmp_path / "run"))
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert "--per-device-train-batch-size" in proc.stderr and "nor auto" in proc.stderr
    assert not (tmp_path / "run").exists()
