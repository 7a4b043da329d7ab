"""Every task in the registry trains and scores the same on two processes under `accelerate launch` as on one.

Its own file, so that pytest-xdist runs it beside tests/e2e/test_multiprocess.py, not after it.
"""

from __future__ import annotations

import pytest

from ssl_cli.tasks import all_tasks
from tests.conftest import tiny_task_args
from tests.e2e.test_multiprocess import two_then_one

pytestmark = [pytest.mark.slow, pytest.mark.multiprocess]


# nli is finetune-glue's code on other data, and test_multiprocess.py trains finetune-qa on two processes against
# one already: the suite's time goes to the tasks whose batches, losses and scoring are their own.
SHARED_CODE = {"nli", "finetune-qa"}


@pytest.mark.parametrize("command", sorted(set(all_tasks()) - SHARED_CODE))
def test_every_subcommand_trains_and_scores_the_same_on_two_processes(tmp_path, command):
    """Two processes of 4 against one of 8 (the same global batches), 21 evaluation examples (an uneven last
    batch): the same metrics within 1e-4, every example scored exactly once.
    Batches of varied lengths run as micro-batches (free passes: every length its own), DDP syncing once;
    tag-pos's are packed, several sentences per row."""
    common = [*tiny_task_args(command, tmp_path / "data"), "--max-steps", "6", "--learning-rate", "1e-4",
              "--set", "training.group_by_length=false", "--set", "training.eval_strategy=no",
              "--set", "training.save_strategy=no", "--per-device-eval-batch-size", "4",
              "--set", "training.microbatch_pass_overhead=0"]
    r2, r1 = two_then_one(common, tmp_path)
    assert r2["global_batch_size"] == r1["global_batch_size"] == 8 and r2["train_steps"] == r1["train_steps"] == 6
    # each process reads the features from the one memory-mapped Arrow cache: no process holds a copy
    assert r2["train_dataset_mapped_mb"] > 0 and r2["train_dataset_copied_mb"] == 0
    if command == "finetune-glue":  # the others' features are all one length: nothing to split
        assert r2["train_passes_per_batch"] > 1 and r1["train_passes_per_batch"] > 1
    if command == "tag-pos":  # packed: several sentences per row, one pass
        assert r2["train_examples_per_row"] > 1 and r1["train_examples_per_row"] > 1
    assert r2["eval_samples"] == r1["eval_samples"] > 0  # 21 examples (QA, as run_qa.py: its 168 windows)
    metrics = [k for k in r1 if k.startswith("eval_") and isinstance(r1[k], float) and "runtime" not in k
               and "per_second" not in k]
    assert metrics
    for key in metrics:
        assert r2[key] == pytest.approx(r1[key], abs=1e-4), (key, r2[key], r1[key])
