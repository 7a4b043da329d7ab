"""The Python API, for notebooks and scripts: the same recipes and runs as the command line
(docs/python-api.md has a worked example).

    from ssl_cli import finetune, evaluate, predict

    run = finetune(COMMAND, recipe="recipe.yaml", train_file="train.tsv", validation_file="dev.tsv",
                   output_dir="out/run")                          # COMMAND: any task command
    run.metrics, run.output_dir
    scores = evaluate("out/run", validation_file="other-dev.tsv")  # into out/run/eval-other-dev/
    predict("out/run", [{"text": "a fine film"}])                  # [{"text": ..., "label": ..., "score": ...}]

Keyword overrides are the command line's flags, with underscores (``learning_rate=1e-4``); ``set`` takes any
dotted recipe key (``set={"training.seed": 3}``). A recipe is a YAML path or a dict. Each call is a whole run,
so calling twice in one process works.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ssl_cli.errors import UserError, did_you_mean


@dataclass(frozen=True)
class Result:
    """What a run gives back: its metrics (all_results.json) and where it wrote them."""

    metrics: dict[str, Any]
    output_dir: Path


def finetune(command: str, recipe: str | Path | dict[str, Any] | None = None, *, set: dict[str, Any] | None = None,
             **flags: Any) -> Result:
    """Run ``ssl <command>`` (any task command: finetune-qa, finetune-glue, nli, tag-pos, pretrain-mlm, ...)."""
    from ssl_cli.run import run_task

    task = _task(command)
    resolved = build_recipe(task, recipe, set or {}, flags)
    return Result(run_task(task, resolved), Path(resolved.training.output_dir))


def build_recipe(task: Any, recipe: str | Path | dict[str, Any] | None, sets: dict[str, Any],
                 flags: dict[str, Any]) -> Any:
    """The validated recipe of a Python call: the task's defaults < ``recipe`` < ``sets`` < ``flags``."""
    from ssl_cli.cli import task_flags
    from ssl_cli.flags import COMMON_ALIASES
    from ssl_cli.recipe_files import resolve_recipe

    by_name = {f.name.replace("-", "_"): f for f in task_flags(task)}
    aliases = {a.replace("-", "_"): n.replace("-", "_") for a, n in {**COMMON_ALIASES, **task.flag_aliases}.items()}
    overrides: dict[str, Any] = {}
    for name, value in flags.items():
        flag = by_name.get(aliases.get(name, name))
        if flag is None:
            raise UserError(f"{task.name}: unknown keyword '{name}'{did_you_mean(name, by_name)}; pass a flag's name "
                            "(learning_rate=...) or set={'section.key': value}")
        if flag.recipe_value(value) is not None:
            overrides[flag.path] = flag.recipe_value(value)
    keys = {**sets, **overrides}  # a flag over a set= key, as on the command line
    if isinstance(recipe, dict):
        return resolve_recipe(task.recipe_cls, task.default_recipe(), None, [], keys, tree=recipe)
    return resolve_recipe(task.recipe_cls, task.default_recipe(), str(recipe) if recipe else None, [], keys)


def _task(command: str) -> Any:
    from ssl_cli.tasks import all_tasks

    tasks = all_tasks()
    if command not in tasks:
        raise UserError(f"unknown command '{command}'{did_you_mean(command, tasks)}; choose from {', '.join(tasks)}")
    return tasks[command]


# ------------------------------------------------------------------ evaluate

def trained_model(model: str | Path, task: str | None) -> tuple[Path, Any, dict[str, Any]]:
    """(directory, task, recipe saved with it or {}) of a trained model that ``ssl evaluate`` / ``predict`` are given."""
    model_dir = Path(model).expanduser()
    if not (model_dir / "config.json").is_file() and not (model_dir / "adapter_config.json").is_file():
        raise UserError(f"{model_dir} is not a model directory (no config.json, no adapter_config.json): pass the "
                        "output dir of a fine-tuning run, or another save_pretrained directory")
    saved = saved_recipe_tree(model_dir)
    return model_dir, _task(model_task(model_dir, task, saved)), saved


def model_task(model_dir: Path, task: str | None, saved: dict[str, Any]) -> str:
    """The command a model directory's model was trained with: ``task``, its recipe.yaml (``saved``), else its
    head."""
    import json

    if task:
        return _task(task).name
    if saved.get("task"):
        return _task(str(saved["task"])).name
    from ssl_cli.tasks import all_tasks

    config = model_dir / "config.json"
    architectures = json.loads(config.read_text(encoding="utf-8")).get("architectures") or [] if config.is_file() else []
    for owner in all_tasks().values():  # sorted by name: finetune-glue before nli, which share a head
        if any(str(a).endswith(owner.model_heads) for a in architectures if owner.model_heads):
            return owner.name
    raise UserError(f"cannot tell which task {model_dir}'s model is for (no recipe.yaml, architectures "
                    f"{architectures}): pass --task COMMAND")


def saved_recipe_tree(model_dir: Path) -> dict[str, Any]:
    """The recipe ``ssl`` saved with a model, or {}."""
    from ssl_cli.recipe_files import read_recipe_file

    path = model_dir / "recipe.yaml"
    return read_recipe_file(path) if path.is_file() else {}


def evaluation_tree(model_dir: Path, task: Any, saved: dict[str, Any]) -> dict[str, Any]:
    """What evaluating a trained model keeps of its recipe (``saved``): how it reads and cuts data
    (max_seq_length, its columns, its task section), not how it was trained; the trained weights are loaded as
    they are."""
    from ssl_cli.config import Recipe

    data = saved.get("data") or {}
    tree: dict[str, Any] = {k: v for k, v in saved.items() if k not in Recipe.model_fields}
    tree["task"] = task.name
    tree["model"] = {k: v for k, v in (saved.get("model") or {}).items()
                     if k in ("revision", "trust_remote_code", "attention_dropout")}
    tree["model"]["name_or_path"] = str(model_dir)
    tree["data"] = {k: data[k] for k in ("max_seq_length", "text_sample_by", "strict") if k in data}
    return tree


def _evaluation_name(recipe: Any) -> str:
    """The eval dir's name: the data it scores (``eval-drcd``, ``eval-dev``)."""
    data = recipe.data
    source = data.validation_file or data.test_file or data.name or (data.eval_data[0] if data.eval_data else "data")
    stem = Path(str(source)).stem if Path(str(source)).suffix else str(source)
    return "eval-" + (re.sub(r"[^\w.-]+", "-", stem).strip("-") or "data")


def evaluate(model: str | Path, data: str | None = None, *, task: str | None = None,
             output_dir: str | Path | None = None, set: dict[str, Any] | None = None, **flags: Any) -> Result:
    """Score a fine-tuned model directory on an evaluation set (``data``: a name or path, or ``validation_file``,
    ``test_file``, ``eval_data``): metrics and predictions go into ``output_dir`` (default
    ``<model>/eval-<data>/``); the model itself is never copied, changed or deleted."""
    from ssl_cli.run import run_task

    model_dir, owner, saved = trained_model(model, task)
    given = {k: v for k, v in flags.items() if v is not None}
    has_data = data or any(given.get(k) for k in ("validation_file", "test_file", "eval_data", "dataset_name"))
    if not has_data:
        own = saved.get("data") or {}
        for key in ("name", "validation_file", "dataset_config_name"):
            if own.get(key):
                given.setdefault("data" if key == "name" else key, own[key])
        if not any(given.get(k) for k in ("data", "validation_file")):
            raise UserError(f"nothing to evaluate {model_dir} on: pass --data NAME|PATH or --validation-file FILE")
    if data:
        given["data"] = data
    sets = {"training.do_train": False, "training.do_eval": bool(given.get("data") or given.get("validation_file")
                                                                 or given.get("eval_data")),
            "training.report_to": ["none"], **(set or {})}
    if given.get("test_file"):
        sets.setdefault("training.do_predict", True)
    recipe = build_recipe(owner, evaluation_tree(model_dir, owner, saved), sets, given)
    if output_dir is not None or flags.get("output_dir"):
        recipe.training.output_dir = str(output_dir or flags["output_dir"])
    else:
        recipe.training.output_dir = str(model_dir / _evaluation_name(recipe))
    return Result(run_task(owner, recipe, evaluation_only=True), Path(recipe.training.output_dir))


# ------------------------------------------------------------------ predict


def settings_recipe(task: Any, settings: dict[str, Any], model_dir: Path) -> Any:
    """The validated recipe a saved model reads raw input with (its max_seq_length, columns, task section)."""
    from ssl_cli.recipe_files import resolve_recipe

    return resolve_recipe(task.recipe_cls, task.default_recipe(), None, [], {},
                          tree=evaluation_tree(model_dir, task, settings))


def predict(model: str | Path, inputs: list[dict[str, Any]] | str | Path, *, task: str | None = None,
            batch_size: int = 32, output: str | Path | None = None) -> list[dict[str, Any]]:
    """Predictions of a trained model for raw rows: a list of dicts, or a JSON-lines file (``output``: also
    write them, JSON lines; tag-pos writes CoNLL-U to a .conllu path). Rows per task: {"text"[, "text_pair"]}
    (finetune-glue, nli), {"text"} or {"tokens"} (tag-pos), {"question", "context"} (finetune-qa)."""
    from ssl_cli.prediction import read_rows, run_prediction

    model_dir, owner, saved = trained_model(model, task)
    rows = read_rows(Path(inputs)) if isinstance(inputs, (str, Path)) else list(inputs)
    if batch_size < 1:
        raise UserError(f"batch_size {batch_size}: give 1 or more")
    predicted, _ = run_prediction(model_dir, owner, rows, batch_size, Path(output) if output else None, saved)
    return predicted


# ------------------------------------------------------------------ export


def export(model: str | Path, *, output_dir: str | Path | None = None, merge: bool = True,
           overwrite: bool = False) -> Path:
    """A LoRA output dir's adapter merged into its base, written as a plain model (``output_dir``, default
    ``<model>/merged``) that ``from_pretrained`` and ``pipeline(...)`` load without peft."""
    from ssl_cli.adapters import MERGED_DIR, is_adapter_dir, merge_adapter_dir

    model_dir, owner, saved = trained_model(model, None)
    if not merge:
        raise UserError("ssl export writes a merged model: pass --merge")
    if not is_adapter_dir(model_dir):
        raise UserError(f"{model_dir} holds a full model (config.json), not a LoRA adapter: nothing to merge")
    target = Path(output_dir).expanduser() if output_dir else model_dir / MERGED_DIR
    if target.exists() and any(target.iterdir()) and not overwrite:
        raise UserError(f"{target} exists and is not empty: pass --overwrite to replace it, or another --output-dir")
    recipe = settings_recipe(owner, saved, model_dir)
    return merge_adapter_dir(model_dir, owner.model_class(recipe), target)
