"""Split assembly, written once for every task: which sets a run trains and scores, from the recipe's
do_train / do_eval / do_predict / eval_data, and the errors when one is missing.

A task only says how one table becomes its canonical examples
(``Task.read_split``), how a validation set is held out of training data when
there is none (``Task.hold_out``) and, optionally, what it learns from all
sets together (``Task.survey``, ``Task.finish_splits``). The order is that of
Hugging Face's example scripts: the held-out set is cut from the whole
training set, then ``max_train_samples`` / ``max_eval_samples`` apply.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ssl_cli.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    from ssl_cli.tasks.base import Splits, Task


def assemble_splits(task: Task, recipe: Any, stream: frozenset[str] = frozenset()) -> Splits:
    """Read the run's sets through the task's hooks; bad or missing data fails here, before any output exists."""
    from ssl_cli.data.loading import resolve_eval_source, resolve_sources
    from ssl_cli.tasks.base import EvalSet, Splits, extra_eval_labels

    data, training = recipe.data, recipe.training
    raw, info = resolve_sources(data, task.name, stream=stream)
    apply_registry_columns(recipe, info.pop("columns", {}), str(data.name))
    if training.do_train and "train" not in raw:
        raise UserError("no training data: pass --data NAME|PATH or --train-file FILE (or set training.do_train: false)")
    task.survey(raw, recipe, info)
    train = task.read_split(*raw["train"], recipe, info, "train") if training.do_train else None
    evals: list[EvalSet] = []
    validations = sorted(name for name in raw if name.startswith("validation"))
    if training.do_eval:
        for split in validations:  # validation, or MNLI's validation_matched / validation_mismatched
            ds, source = raw[split]
            evals.append(_eval_set(task, eval_set_name(split, validations), ds, source, recipe, info, "eval"))
        if not validations and train is not None:
            train, held = task.hold_out(train, recipe, info)
            evals.append(EvalSet("eval", _limited(held, data.max_eval_samples),
                                 info={**info, "source": f"{raw['train'][1]} (held out)"}))
    for name, label in zip(data.eval_data, extra_eval_labels(data.eval_data), strict=True):
        ds, source, extra_info = resolve_eval_source(data, name, task.name)
        evals.append(_eval_set(task, label, ds, source, recipe, {**info, **extra_info}, "eval"))
    if training.do_predict:
        tests = sorted(name for name in raw if name.startswith("test"))
        if not tests:
            raise UserError("do_predict needs a test split: pass --test-file FILE (or a dataset with a test split)")
        for split in tests:  # test, or MNLI's test_matched / test_mismatched
            ds, source = raw[split]
            evals.append(_eval_set(task, eval_set_name(split, tests), ds, source, recipe, info, "test"))
    if training.do_eval and not any(e.name != "test" and not e.name.startswith("test_") for e in evals):
        raise UserError("do_eval needs validation data: pass --validation-file FILE, or set training.do_eval: false")
    for eval_set in evals:
        if len(eval_set.examples) == 0:
            raise UserError(f"the {eval_set.name} set is empty after filtering ({eval_set.info.get('source', '')})")
    if train is not None:
        train = _limited(train, data.max_train_samples)
    return task.finish_splits(Splits(train=train, evals=evals, info=info), recipe)


def apply_registry_columns(recipe: Any, columns: dict[str, str], name: str) -> None:
    """A registry entry's ``columns`` (``text_column: review``) set the keys of the task's own recipe section
    that the user left unset, so that the task reads the data as if they had passed the --*-column flags."""
    from ssl_cli.config import Recipe
    from ssl_cli.errors import did_you_mean

    if not columns:
        return
    sections = [getattr(recipe, f) for f in type(recipe).model_fields if f not in Recipe.model_fields]
    keys = {key: section for section in sections for key in type(section).model_fields if key.endswith("_column")}
    for key, column in columns.items():
        if key not in keys:
            raise UserError(f"dataset '{name}': its registry entry's columns has '{key}'{did_you_mean(key, keys)}, "
                            f"which `ssl {recipe.task}` does not read; it reads {', '.join(sorted(keys)) or 'none'}")
        if getattr(keys[key], key) is None:
            setattr(keys[key], key, column)


def _eval_set(task: Task, name: str, ds: Any, source: str, recipe: Any, info: dict[str, Any], role: str) -> Any:
    from ssl_cli.tasks.base import EvalSet

    limit = recipe.data.max_predict_samples if role == "test" else recipe.data.max_eval_samples
    info = {**info, "source": source}  # the set's own: read_split may note facts about it here
    return EvalSet(name, _limited(task.read_split(ds, source, recipe, info, role), limit), info=info)


def _limited(ds: Any, limit: int | None) -> Any:
    """The first ``limit`` examples (a stream: the first ``limit`` it yields)."""
    if not limit:
        return ds
    from ssl_cli.data import is_stream

    return ds.take(limit) if is_stream(ds) else ds.select(range(min(limit, len(ds))))


def eval_set_name(split: str, splits: list[str]) -> str:
    """``validation`` is "eval" and ``test`` is "test"; of MNLI's pairs, matched takes that place (run_glue.py
    reports it as eval_accuracy) and mismatched is "mismatched" / "test_mismatched"."""
    kind = "validation" if split.startswith("validation") else "test"
    first = kind if kind in splits else f"{kind}_matched" if f"{kind}_matched" in splits else splits[0]
    if split == first:
        return "eval" if kind == "validation" else "test"
    rest = split.removeprefix(f"{kind}_")
    return rest if kind == "validation" else f"test_{rest}"
