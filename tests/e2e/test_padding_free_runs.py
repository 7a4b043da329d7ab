"""``training.padding_free`` end to end: forced on a CPU (where auto leaves it off), a run trains to the padded run's
weights, and a task whose batches cannot be flattened is refused in one line."""

from __future__ import annotations

import json

import torch
from safetensors.torch import load_file

from tests.conftest import NO_DROPOUT, run_cli, tiny_task_args


def test_padding_free_rows_train_to_the_padded_runs_weights(tmp_path):
    args = [*tiny_task_args("finetune-glue", tmp_path / "data"), "--max-steps", "4", *NO_DROPOUT,
            "--set", "training.padding_microbatches=false"]
    flat = run_cli(*args, "--set", "training.padding_free=true", "--output-dir", str(tmp_path / "flat"), check=True)
    assert "training on padding-free rows" in flat.stderr
    run_cli(*args, "--set", "training.padding_free=false", "--output-dir", str(tmp_path / "padded"), check=True)
    results = {name: json.loads((tmp_path / name / "all_results.json").read_text()) for name in ("flat", "padded")}
    assert results["flat"]["train_padding_fraction"] == 0.0 < results["padded"]["train_padding_fraction"]
    assert abs(results["flat"]["train_loss"] - results["padded"]["train_loss"]) < 1e-5
    a, b = load_file(tmp_path / "flat" / "model.safetensors"), load_file(tmp_path / "padded" / "model.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)
    config = json.loads((tmp_path / "flat" / "config.json").read_text())
    assert "ssl_varlen" not in json.dumps(config)  # the saved model attends as it did before training


def test_padding_free_on_a_task_with_several_sequences_per_row_is_one_line(tmp_path):
    args = tiny_task_args("multiple-choice", tmp_path / "data")
    proc = run_cli(*args, "--set", "training.padding_free=true", "--output-dir", str(tmp_path / "run"))
    assert proc.returncode == 2
    assert "several sequences per row" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()


def test_padding_free_on_fixed_length_blocks_says_there_is_nothing_to_remove(tmp_path):
    args = [*tiny_task_args("pretrain-mlm", tmp_path / "data"), "--max-steps", "2"]
    proc = run_cli(*args, "--set", "training.padding_free=true", "--output-dir", str(tmp_path / "run"), check=True)
    assert "fixed-length blocks have no padding to remove" in proc.stderr
    assert "training on padding-free rows" not in proc.stderr
