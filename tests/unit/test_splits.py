"""Split assembly (``tasks/splits.py``), written once for every task: which sets a run reads, in the example
scripts' order, with one error per missing set. Real tasks on generated files; nothing trains."""

from __future__ import annotations

import pytest

from ssl_cli.errors import UserError
from ssl_cli.recipe_files import resolve_recipe
from ssl_cli.tasks import all_tasks


def _splits(command: str, root, flags: dict, sets: list[str] | None = None):
    task = all_tasks()[command]
    sample = task.write_sample_data(root)
    files = {"data.train_file": str(sample["train"]), "data.validation_file": str(sample["dev"])}
    files = {k: v for k, v in files.items() if sets is None or k.split(".")[1].split("_")[0] in sets}
    recipe = resolve_recipe(task.recipe_cls, task.default_recipe(), task.tiny_recipe, [],
                            {**files, "training.output_dir": str(root / "out"), **flags})
    return task.load_splits(recipe)


@pytest.mark.parametrize("command", sorted(all_tasks()))
def test_a_held_out_set_is_cut_from_the_whole_training_set_then_the_limits_apply(command, tmp_path):
    """No validation file: validation_split_percentage of all the training examples is held out (whole
    articles for QA), then max_train_samples / max_eval_samples cut both, as run_glue.py and run_mlm.py do."""
    whole = _splits(command, tmp_path, {}, sets=["train"])
    assert [e.name for e in whole.evals] == ["eval"]
    held = len(whole.evals[0].examples)
    assert 0 < held < len(whole.train) + held
    limited = _splits(command, tmp_path, {"data.max_train_samples": 7, "data.max_eval_samples": 3}, sets=["train"])
    assert len(limited.train) == 7 and len(limited.evals[0].examples) == min(3, held)
    assert limited.evals[0].info["source"].endswith("(held out)")


@pytest.mark.parametrize("command", sorted(all_tasks()))
def test_every_task_reads_its_sample_data_into_train_and_eval(command, tmp_path):
    splits = _splits(command, tmp_path, {})
    assert len(splits.train) > 0 and [e.name for e in splits.evals] == ["eval"] and len(splits.evals[0].examples)


@pytest.mark.parametrize(("flags", "sets", "message"), [
    ({"training.do_predict": True}, None, "do_predict needs a test split"),
    ({"training.do_train": False}, ["train"], "do_eval needs validation data"),
    ({}, ["validation"], "no training data"),
])
@pytest.mark.parametrize("command", sorted(all_tasks()))
def test_a_missing_set_is_one_error_naming_the_flag(command, flags, sets, message, tmp_path):
    with pytest.raises(UserError, match=message):
        _splits(command, tmp_path, flags, sets=sets)
