"""CLI surface and typed recipes: precedence, validation, help, imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ssl_cli.recipe_files import resolve_recipe
from ssl_cli.tasks import all_tasks
from tests.conftest import ROOT, run_cli

QA = all_tasks()["finetune-qa"]


def resolve(recipe_file=None, sets=(), flags=None):
    return resolve_recipe(QA.recipe_cls, QA.default_recipe(), recipe_file, list(sets), flags or {})


def test_cli_import_does_not_load_torch_or_transformers():
    code = "import sys, ssl_cli.cli; bad = {'torch', 'transformers', 'datasets', 'accelerate'} & set(sys.modules); print(sorted(bad))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_help_lists_subcommands_and_env():
    proc = run_cli("--help", check=True)
    assert "finetune-qa" in proc.stdout and "env" in proc.stdout


def test_top_level_help_loads_no_task_and_no_recipe_model():
    """``ssl --help`` lists every command from the task folders' declarations: importing the task modules and
    pydantic's recipe models is most of a start-up, and only the command that runs needs them."""
    code = ("import sys; from ssl_cli.cli import main\ntry: main(['--help'])\nexcept SystemExit: pass\n"
            "loaded = [m for m in sys.modules if m == 'pydantic' or m.startswith('ssl_cli.config') "
            "or m.count('.') >= 3 and m.startswith('ssl_cli.tasks.')]\nprint(sorted(loaded), file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert all(f" {name} " in out.stdout for name in all_tasks())
    assert out.stderr.strip() == "[]"


def test_a_task_command_is_built_with_its_options_when_it_runs():
    proc = run_cli("tag-pos", "--help", check=True)
    assert "--label-all-tokens" in proc.stdout and "--install-completion" not in proc.stdout


def test_version():
    from ssl_cli import __version__

    assert run_cli("--version", check=True).stdout.strip() == f"ssl {__version__}"


def test_env_reports_versions_and_processes():
    out = run_cli("env", check=True).stdout
    assert "transformers" in out and "accelerate config" in out


def test_precedence_defaults_recipe_set_flags(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("training:\n  learning_rate: 1e-4\n  seed: 7\n  per_device_train_batch_size: 4\nqa:\n  doc_stride: 64\n")
    r = resolve(recipe, ["training.seed=9", "training.per_device_train_batch_size=6"], {"training.per_device_train_batch_size": 8})
    assert r.training.learning_rate == pytest.approx(1e-4)  # recipe over default; '1e-4' is coerced from YAML's string
    assert r.training.seed == 9  # --set over recipe
    assert r.training.per_device_train_batch_size == 8  # flag over --set
    assert r.qa.doc_stride == 64
    assert r.training.num_train_epochs == 2.0  # untouched default


def test_dry_run_prints_resolved_recipe_with_underscore_flags():
    proc = run_cli("finetune-qa", "--dry-run", "--max_seq_length", "256", "--doc_stride=100", "--set", "training.seed=3", check=True)
    assert "max_seq_length: 256" in proc.stdout and "doc_stride: 100" in proc.stdout and "seed: 3" in proc.stdout


def test_dry_run_piped_prints_whole_lines_that_are_the_recipe(tmp_path):
    """Not a terminal: no cropping at 80 columns, so long paths can be copied, and the output is valid YAML."""
    import yaml

    long_dir = tmp_path / ("a-long-directory-name-" * 6) / "train.json"
    proc = run_cli("finetune-qa", "--dry-run", "--train-file", str(long_dir), check=True)
    assert f"  train_file: {long_dir}" in proc.stdout.splitlines()
    assert yaml.safe_load(proc.stdout)["data"]["train_file"] == str(long_dir)
    assert "\x1b[" not in proc.stdout  # no colour codes


def test_eval_data_flag_splits_on_commas():
    proc = run_cli("finetune-qa", "--dry-run", "--eval-data", "drcd, cmrc2018", check=True)
    assert "- drcd" in proc.stdout and "- cmrc2018" in proc.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--set", "training.lerning_rate=1"], "did you mean 'learning_rate'"),
        (["--set", "traning.seed=1"], "did you mean 'training'"),
        (["--set", "qa.doc_strid=1"], "did you mean 'doc_stride'"),
        (["--learning-rate", "fast"], "learning-rate"),
        (["--set", "training.per_device_train_batch_size=abc"], "training.per_device_train_batch_size"),
        (["--mixed-precision", "fp8"], "training.mixed_precision"),
        (["--set", "novalue"], "KEY=VALUE"),
    ],
)
def test_bad_recipe_values_are_one_line_errors(args, expected):
    proc = run_cli("finetune-qa", "--dry-run", *args)
    assert proc.returncode == 2, proc.stderr
    assert expected in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


def test_unknown_key_in_recipe_file(tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("task: finetune-qa\ntraining:\n  num_train_epoch: 3\n")
    proc = run_cli("finetune-qa", "--recipe", str(recipe), "--dry-run")
    assert proc.returncode == 2
    assert "unknown recipe key 'training.num_train_epoch' (did you mean 'num_train_epochs'?)" in proc.stderr


def test_recipe_for_another_task_is_rejected(tmp_path):
    recipe = tmp_path / "other.yaml"
    recipe.write_text("task: tag-pos\n")
    proc = run_cli("finetune-qa", "--recipe", str(recipe), "--dry-run")
    assert proc.returncode == 2 and "tag-pos" in proc.stderr


def test_debug_shows_the_traceback():
    proc = run_cli("finetune-qa", "--dry-run", "--set", "training.bogus=1", "--debug")
    assert proc.returncode != 0 and "Traceback" in proc.stderr


RECIPES = sorted((ROOT / "recipes").rglob("*.yaml"))
TASK_RECIPES = [p for p in RECIPES if "accelerate" not in p.parts]


@pytest.mark.parametrize("path", TASK_RECIPES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_recipe_validates_and_starts_with_its_command(path):
    text = path.read_text(encoding="utf-8")
    first = text.splitlines()[0]
    data = yaml.safe_load(text)
    task = all_tasks()[data["task"]]
    assert first.startswith(f"# ssl {task.name}") or first.startswith("# accelerate launch"), first
    resolve_recipe(task.recipe_cls, task.default_recipe(), str(path), [], {})


@pytest.mark.parametrize("path", [p for p in RECIPES if "accelerate" in p.parts], ids=lambda p: p.name)
def test_accelerate_configs_are_yaml_with_a_launch_line(path):
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# accelerate launch --config_file")
    assert isinstance(yaml.safe_load(text), dict)


@pytest.mark.parametrize("name", sorted(all_tasks()))
def test_every_task_has_a_tiny_recipe_and_a_test_file(name):
    task = all_tasks()[name]
    assert (ROOT / task.tiny_recipe).is_file()
    test_file = f"test_{name.replace('-', '_')}.py"  # named like the command
    assert list((ROOT / "tests").rglob(test_file)), f"no tests/**/{test_file}"


def test_resolved_recipe_is_itself_a_valid_recipe(tmp_path):
    from ssl_cli.recipe_files import recipe_to_yaml

    r = resolve(flags={"training.learning_rate": 5e-5, "data.eval_data": ["drcd"]})
    saved = tmp_path / "recipe.yaml"
    saved.write_text(recipe_to_yaml(r, "# header"))
    assert resolve(saved) == r


def test_docs_recipe_reference_is_generated_from_the_schema():
    from ssl_cli.devtools.docs_gen import recipe_reference

    assert (ROOT / "docs" / "recipe-reference.md").read_text(encoding="utf-8") == recipe_reference(), (
        "docs/recipe-reference.md is stale: run `make docs`"
    )
    assert Path


def test_yaml_bare_no_means_the_choice_no(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("training:\n  eval_strategy: no\n  mixed_precision: no\n")
    r = resolve(recipe, ["training.save_strategy=no"])
    assert (r.training.eval_strategy, r.training.save_strategy, r.training.mixed_precision) == ("no", "no", "no")
