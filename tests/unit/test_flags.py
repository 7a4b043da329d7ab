"""Hugging Face's command lines carry over: flag names in both spellings, booleans with values, unused flags
noted, unknown ones with "did you mean", cadences that follow the one the user chose, and --help per command."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import yaml

from ssl_cli.cli import main
from ssl_cli.config import LR_SCHEDULES
from ssl_cli.tasks import all_tasks
from tests.conftest import ROOT

TASKS = sorted(all_tasks())


def ssl(capsys, *args: str) -> tuple[int, str, str]:
    """``ssl ARGS`` in this process: (exit code, stdout, stderr)."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def resolved(capsys, *args: str, command: str = "finetune-glue") -> dict:
    code, out, err = ssl(capsys, command, *args, "--dry-run")
    assert code == 0, err
    return yaml.safe_load(out)


def key(tree: dict, dotted: str):
    for part in dotted.split("."):
        tree = tree[part]
    return tree


# run_glue.py / run_qa.py flags and the recipe key each one means (the list)
HF_FLAGS = [
    (["--model_name_or_path", "m"], "model.name_or_path", "m"),
    (["--train_file", "t.csv"], "data.train_file", "t.csv"),
    (["--validation_file", "v.csv"], "data.validation_file", "v.csv"),
    (["--test_file", "x.csv"], "data.test_file", "x.csv"),
    (["--dataset_name", "glue/rte"], "data.name", "glue/rte"),
    (["--dataset_config_name", "rte"], "data.dataset_config_name", "rte"),
    (["--task_name", "rte"], "classification.task_name", "rte"),
    (["--per_device_train_batch_size", "8"], "training.per_device_train_batch_size", 8),
    (["--per_device_eval_batch_size", "64"], "training.per_device_eval_batch_size", 64),
    (["--learning_rate", "2e-5"], "training.learning_rate", 2e-5),
    (["--weight_decay", "0.1"], "training.weight_decay", 0.1),
    (["--num_train_epochs", "3"], "training.num_train_epochs", 3.0),
    (["--max_steps", "100"], "training.max_steps", 100),
    (["--lr_scheduler_type", "cosine_with_restarts"], "training.lr_scheduler_type", "cosine_with_restarts"),
    (["--warmup_ratio", "0.06"], "training.warmup_ratio", 0.06),
    (["--warmup_steps", "10"], "training.warmup_steps", 10),
    (["--gradient_accumulation_steps", "4"], "training.gradient_accumulation_steps", 4),
    (["--gradient_checkpointing"], "model.gradient_checkpointing", True),
    (["--fp16"], "training.mixed_precision", "fp16"),
    (["--bf16"], "training.mixed_precision", "bf16"),
    (["--seed", "7"], "training.seed", 7),
    (["--logging_steps", "5"], "training.logging_steps", 5),
    (["--eval_strategy", "no"], "training.eval_strategy", "no"),
    (["--evaluation_strategy", "no"], "training.eval_strategy", "no"),
    (["--save_strategy", "no"], "training.save_strategy", "no"),
    (["--save_total_limit", "3"], "training.save_total_limit", 3),
    (["--load_best_model_at_end", "false"], "training.load_best_model_at_end", False),
    (["--metric_for_best_model", "f1"], "training.metric_for_best_model", "f1"),
    (["--report_to", "tensorboard,wandb"], "training.report_to", ["tensorboard", "wandb"]),
    (["--report_to", "none"], "training.report_to", ["none"]),
    (["--output_dir", "/tmp/somewhere"], "training.output_dir", "/tmp/somewhere"),
    (["--overwrite_output_dir"], "training.overwrite", True),
    (["--max_seq_length", "128"], "data.max_seq_length", 128),
    (["--max_train_samples", "100"], "data.max_train_samples", 100),
    (["--max_eval_samples", "50"], "data.max_eval_samples", 50),
    (["--max_predict_samples", "20"], "data.max_predict_samples", 20),
    (["--do_train", "false"], "training.do_train", False),
    (["--do_eval", "False"], "training.do_eval", False),
    (["--do_predict"], "training.do_predict", True),
]


@pytest.mark.parametrize(("args", "dotted", "expected"), HF_FLAGS, ids=[a[0] for a, _, _ in HF_FLAGS])
def test_hugging_face_flag_sets_its_recipe_key_in_both_spellings(capsys, args, dotted, expected):
    dashed = [a.replace("_", "-") if a.startswith("--") else a for a in args]
    for spelling in (args, dashed):
        assert key(resolved(capsys, *spelling), dotted) == expected, spelling


def test_choices_take_any_case(capsys):
    tree = resolved(capsys, "--mixed-precision", "BF16", "--eval-strategy", "Epoch", "--save-strategy", "NO")
    assert [key(tree, f"training.{name}") for name in ("mixed_precision", "eval_strategy", "save_strategy")] == \
        ["bf16", "epoch", "no"]


def test_trainer_optimizer_and_batching_flags(capsys):
    tree = resolved(capsys, "--optim", "Adafactor", "--adam_beta1", "0.8", "--adam_beta2", "0.95", "--adam_epsilon",
                    "1e-6", "--group_by_length", "false", "--max_grad_norm", "0", "--seed", "3", "--data_seed", "11")
    assert key(tree, "training.optim") == "adafactor"
    assert [key(tree, f"training.adam_{name}") for name in ("beta1", "beta2", "epsilon")] == [0.8, 0.95, 1e-6]
    assert key(tree, "training.group_by_length") is False
    assert key(tree, "training.max_grad_norm") == 0  # the Trainer's "no clipping"
    assert (key(tree, "training.seed"), key(tree, "training.data_seed")) == (3, 11)


def test_qa_flags_of_run_qa(capsys):
    tree = resolved(capsys, "--doc_stride", "64", "--max_answer_length", "20", "--n_best_size", "5",
                    "--version_2_with_negative", "--null_score_diff_threshold", "0.5", command="finetune-qa")
    assert tree["qa"] == {**tree["qa"], "doc_stride": 64, "max_answer_length": 20, "n_best_size": 5,
                          "version_2_with_negative": True, "null_score_diff_threshold": 0.5}


@pytest.mark.parametrize(("args", "expected"), [
    (["--do-predict"], True), (["--do_predict", "true"], True), (["--do_predict=yes"], True),
    (["--do-predict", "0"], False), (["--no-do-predict"], False), (["--do_predict=False"], False), ([], False),
])
def test_booleans_switch_on_and_off(capsys, args, expected):
    assert resolved(capsys, *args, "--seed", "3")["training"]["do_predict"] is expected
    assert resolved(capsys, *args, "--seed", "3")["training"]["seed"] == 3  # the next flag is still read


def test_a_boolean_given_a_non_boolean_value_is_one_line(capsys):
    code, _, err = ssl(capsys, "finetune-glue", "--do_predict", "maybe", "--dry-run")
    assert code == 2 and err.strip() == ("error: --do_predict takes true or false, not 'maybe': write --do_predict "
                                         "true|false, or leave the value out")


def test_unused_hugging_face_flags_are_noted_and_skipped_with_their_value(capsys):
    code, out, err = ssl(capsys, "finetune-qa", "--pad_to_max_length", "--use_fast_tokenizer", "True",
                         "--cache_dir", "/somewhere", "--average_tokens_across_devices", "false",
                         "--half_precision_backend", "auto", "--seed", "5", "--dry-run")
    assert code == 0, err
    notes = err.strip().splitlines()
    assert len(notes) == 5 and all(line.startswith("note: --") and "ignored: " in line for line in notes)
    assert "never pads" not in err and "longest feature" in notes[0]
    assert yaml.safe_load(out)["training"]["seed"] == 5


@pytest.mark.parametrize(("typed", "suggested"), [
    ("--do_trian", "--do_train"), ("--do-trian", "--do-train"), ("--learning_rat", "--learning_rate"),
    ("--per_device_batch_size", "--per_device_eval_batch_size"),
])
def test_unknown_flag_gets_did_you_mean_in_the_users_spelling(capsys, typed, suggested):
    code, out, err = ssl(capsys, "finetune-glue", typed, "1")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith(f"error: no such option {typed} (did you mean {suggested}?)")


def test_click_errors_name_the_option_as_typed(capsys):
    code, _, err = ssl(capsys, "finetune-glue", "--per_device_train_batch_size", "many")
    assert code == 2 and "'--per_device_train_batch_size'" in err and "--per-device" not in err


def test_save_steps_alone_evaluates_at_each_checkpoint(capsys):
    code, out, err = ssl(capsys, "finetune-qa", "--save-steps", "5", "--dry-run")
    training = yaml.safe_load(out)["training"]
    assert code == 0 and (training["eval_strategy"], training["eval_steps"]) == ("steps", 5)
    assert training["load_best_model_at_end"] is True and err.startswith("note: evaluating at every checkpoint")


def test_eval_steps_alone_saves_at_each_evaluation(capsys):
    training = resolved(capsys, "--eval_steps", "4")["training"]
    assert (training["save_strategy"], training["save_steps"]) == ("steps", 4)


def test_two_cadences_that_disagree_turn_best_model_loading_off_unless_asked(capsys):
    training = resolved(capsys, "--eval-steps", "4", "--save-steps", "6")["training"]
    assert training["load_best_model_at_end"] is False and training["save_steps"] == 6
    from ssl_cli.errors import UserError
    from ssl_cli.recipe_files import resolve_recipe
    from ssl_cli.run import check_strategies

    task = all_tasks()["finetune-glue"]
    asked = resolve_recipe(task.recipe_cls, task.default_recipe(), None, [], {
        "training.eval_steps": 4, "training.save_steps": 6, "training.load_best_model_at_end": True})
    with pytest.raises(UserError, match="multiple of eval_steps"):
        check_strategies(asked.training)


def test_list_keys_take_comma_lists_from_set(capsys):
    tree = resolved(capsys, "--set", "training.report_to=wandb,mlflow", "--set", "data.eval_data=a.json")
    assert tree["training"]["report_to"] == ["wandb", "mlflow"] and tree["data"]["eval_data"] == ["a.json"]


def test_unknown_tracker_and_schedule_say_did_you_mean(capsys):
    assert "did you mean 'tensorboard'" in ssl(capsys, "nli", "--report_to", "tensorbord", "--dry-run")[2]
    assert "did you mean 'cosine'" in ssl(capsys, "nli", "--lr-scheduler-type", "cosin", "--dry-run")[2]


def test_every_transformers_schedule_is_offered():
    from transformers import SchedulerType

    assert set(LR_SCHEDULES) == {s.value for s in SchedulerType}


# ------------------------------------------------------------------ --help


def command_help(command: str) -> str:
    env = {**os.environ, "COLUMNS": "80", "TERM": "dumb", "NO_COLOR": "1"}
    proc = subprocess.run([sys.executable, "-m", "ssl_cli", command, "--help"], capture_output=True, text=True,
                          cwd=ROOT, env=env, check=True)
    return proc.stdout


@pytest.fixture(scope="module")
def helps() -> dict[str, str]:
    return {command: command_help(command) for command in TASKS}


def help_of(text: str, flag: str) -> str:
    """The help cell of ``flag``, its wrapped lines joined."""
    rows = [line.strip("│ ") for line in text.splitlines()]
    start = next(i for i, row in enumerate(rows) if row.startswith(f"{flag} "))
    cells = [re.sub(rf"^{flag}\s+(\S+\s+)?", "", rows[start], count=1)]
    for row in rows[start + 1:]:
        if row.startswith("--") or not row or row.startswith(("╰", "╭")):
            break
        cells.append(row.strip())
    return " ".join(cells)


@pytest.mark.parametrize("command", [*TASKS, "evaluate", "predict", "generate"])
def test_help_is_readable_at_80_columns(helps, command):
    text = helps.get(command) or command_help(command)
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "…" not in text  # nothing cropped
    assert "<bool>" not in "".join(line for line in text.splitlines() if "Show this message" not in line)


@pytest.mark.parametrize("command", TASKS)
def test_help_lists_the_commands_own_datasets_and_wording(helps, command):
    task = all_tasks()[command]
    data_help = help_of(helps[command], "--data")
    others = {s.name for t in all_tasks().values() if t.name != command for s in t.datasets} - {
        s.name for s in task.datasets}
    assert not [name for name in others if re.search(rf"[ (]{re.escape(name)}[,)]", data_help)], data_help
    assert all(s.name in data_help for s in task.datasets)
    assert help_of(helps[command], "--max-seq-length") == task.flag_help["data.max_seq_length"]  # what it holds here


def test_each_command_words_max_seq_length_its_own_way():
    wordings = {t.flag_help["data.max_seq_length"] for t in all_tasks().values() if t.name != "pretrain-clm"}
    assert len(wordings) == len(TASKS) - 1  # pretrain-mlm and pretrain-clm share their blocks


def test_help_lists_the_choices(helps):
    schedule = help_of(helps["finetune-glue"], "--lr-scheduler-type")
    assert all(name in schedule.replace(" ", "") for name in LR_SCHEDULES)
    assert "One of: no, steps, epoch." in help_of(helps["finetune-glue"], "--eval-strategy")


def test_shell_completion_is_available():
    # typer finds the user's shell from the parent processes (make runs tests under sh, which it does not serve);
    # its own test switch takes the shell as a value instead
    proc = subprocess.run([sys.executable, "-m", "ssl_cli", "--show-completion", "bash"], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert proc.returncode == 0 and "_SSL_COMPLETE" in proc.stdout, proc.stderr
    env = {**os.environ, "COMP_WORDS": "ssl finetune-qa --do-pr", "COMP_CWORD": "2", "_SSL_COMPLETE": "complete_bash"}
    proc = subprocess.run([sys.executable, "-m", "ssl_cli"], capture_output=True, text=True, cwd=ROOT, env=env)
    assert proc.stdout.split() == ["--do-predict"]


@pytest.mark.parametrize(("command", "typed", "suggested"), [
    ("evaluate", "--validaton-file", "--validation-file"), ("predict", "--modle", "--model"),
    ("evaluate", "--validation_fil", "--validation_file"),
])
def test_other_commands_say_did_you_mean_too(capsys, command, typed, suggested):
    code, _, err = ssl(capsys, command, typed, "x")
    assert code == 2 and err.startswith(f"error: no such option {typed} (did you mean {suggested}?)")


def test_evaluate_and_predict_take_hugging_face_names(capsys):
    code, _, err = ssl(capsys, "evaluate", "--model_name_or_path", "/nowhere", "--dataset_name", "x")
    assert code == 2 and "/nowhere is not a model directory" in err
    code, _, err = ssl(capsys, "predict", "--model_name_or_path", "/nowhere", "--input", "x",
                       "--per_device_eval_batch_size", "4")
    assert code == 2 and "/nowhere is not a model directory" in err


def test_python_keywords_set_switches_as_the_command_line_does():
    from ssl_cli.api import build_recipe

    task = all_tasks()["finetune-glue"]
    assert build_recipe(task, None, {}, {"fp16": True}).training.mixed_precision == "fp16"
    assert build_recipe(task, None, {}, {"fp16": False}).training.mixed_precision == "auto"  # as --no-fp16
    recipe = build_recipe(task, None, {"training.seed": 3, "training.report_to": "none"}, {"seed": 5, "do_predict": False})
    assert (recipe.training.seed, recipe.training.report_to, recipe.training.do_predict) == (5, ["none"], False)
