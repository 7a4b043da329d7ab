"""Run one task end to end: data -> tokenizer/model -> features -> engine -> outputs.

Generic over tasks: everything task-specific is behind the ``Task`` protocol,
everything device/precision/distribution-specific is behind ``Engine``.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ssl_cli.adapters import check_peft, is_peft_model, uses_lora
from ssl_cli.config import cadences_agree, selects_best_checkpoint
from ssl_cli.engine.durability import failpoint
from ssl_cli.errors import UserError, write_failure
from ssl_cli.hub import check_hub_push
from ssl_cli.output_dir import check_output_dir, check_resume_fingerprint, claim, run_fingerprint
from ssl_cli.recipe_files import flat_config, recipe_to_yaml, saved_recipe
from ssl_cli.tasks.base import EvalSet, Task

SCRATCH_TOKENIZER_DIR = "scratch-tokenizer"


def check_strategies(training: Any) -> None:
    """Best-model selection needs a checkpoint at every evaluation, as in Hugging Face's Trainer (a cadence the
    user left to its default has already followed the other: ``config.align_cadences``)."""
    if not selects_best_checkpoint(training):
        return
    if training.eval_strategy != training.save_strategy:
        raise UserError(
            f"load_best_model_at_end needs eval_strategy ({training.eval_strategy}) == save_strategy "
            f"({training.save_strategy}): set both, or --no-load-best-model-at-end"
        )
    if not cadences_agree(training):
        raise UserError(
            f"save_steps ({training.save_steps}) must be a multiple of eval_steps ({training.eval_steps}) "
            "when load_best_model_at_end is on: change one, or --no-load-best-model-at-end"
        )


def run_task(task: Task, recipe: Any, evaluation_only: bool = False) -> dict[str, Any]:
    """Train and/or evaluate as the recipe says; returns all_results. ``evaluation_only`` (``ssl evaluate``):
    the output dir gets the metrics, predictions and an evaluation report, never a copy of the model."""
    from ssl_cli.models import hub_timeouts

    hub_timeouts()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    training = recipe.training
    check_hub_push(training)
    check_peft(recipe)
    resume_from = check_output_dir(training, recipe.model.name_or_path)
    fingerprint = run_fingerprint(recipe)
    if resume_from is not None:
        check_resume_fingerprint(resume_from, fingerprint)
    check_strategies(training)
    out = Path(training.output_dir)

    from ssl_cli.engine import Engine

    engine = Engine(training, out)
    _quiet_libraries(engine.is_main_process)
    with engine.main_process_first():
        splits = task.load_splits(recipe)  # bad data fails here, before the output dir is touched
    created = not out.exists()
    staging = _staging_dir(out)
    try:
        tokenizer, model = _build_model(task, recipe, splits, engine, out, resume_from, staging)
        with engine.main_process_first():
            train_features = task.prepare_train(splits.train, tokenizer, recipe) if splits.train is not None else None
            for eval_set in splits.evals:
                eval_set.features = task.prepare_eval(eval_set, tokenizer, recipe)
        _check_token_budget(training, train_features)
        # Everything is checked: only now is the output dir created, locked and (with --overwrite) cleared.
        output_claim = claim(training, resuming=resume_from is not None) if engine.writes_files else None
        failpoint("claimed", 0)
        if engine.writes_files and (staging / SCRATCH_TOKENIZER_DIR).is_dir():
            # a move, not a rename: the datasets cache and the output dir are often on different disks
            shutil.move(str(staging / SCRATCH_TOKENIZER_DIR), str(out / SCRATCH_TOKENIZER_DIR))
        engine.wait()
    finally:
        if engine.is_main_process:
            shutil.rmtree(staging, ignore_errors=True)
    if output_claim is not None:
        engine.when_training_runs.append(output_claim.discard_replaced)  # the set-up held: the old run may go
    try:
        return _train_and_evaluate(task, recipe, engine, splits, tokenizer, model, train_features, resume_from,
                                   fingerprint, created, evaluation_only)
    except BaseException:
        if output_claim is not None:
            output_claim.put_back_replaced()  # a no-op once training ran
        raise
    finally:
        if output_claim is not None:
            output_claim.release()


def _check_token_budget(training: Any, train_features: Any) -> None:
    """A token budget that cannot hold the longest row, or a streamed dataset, is refused before the claim."""
    if training.per_device_train_tokens and train_features is not None:
        from ssl_cli.data import is_stream
        from ssl_cli.engine.batch_size import check_token_budget

        check_token_budget(training, None if is_stream(train_features) else train_features["length"])


def _staging_dir(out: Path) -> Path:
    """Where a run keeps what it makes before it may write its output dir (a scratch tokenizer, shared by the
    processes): under the datasets cache, named by the output dir, never beside the user's files."""
    import hashlib

    import datasets

    key = hashlib.sha256(str(out.expanduser().resolve()).encode()).hexdigest()[:16]
    return Path(datasets.config.HF_DATASETS_CACHE) / "ssl_cli_staging" / key


def _train_and_evaluate(task: Task, recipe: Any, engine: Any, splits: Any, tokenizer: Any, model: Any,
                        train_features: Any, resume_from: Path | None, fingerprint: dict[str, Any],
                        created: bool, evaluation_only: bool = False) -> dict[str, Any]:
    training, out = recipe.training, Path(recipe.training.output_dir)
    traits = task.traits_for(recipe)
    fixed = recipe.data.max_seq_length if engine.needs_static_shapes else None
    train_collate = task.collator(tokenizer, recipe, training=True, fixed_length=fixed)
    eval_collate = task.collator(tokenizer, recipe, training=False, fixed_length=fixed)

    def evaluate_set(model_: Any, eval_set: EvalSet) -> tuple[dict[str, float], dict[str, Any]]:
        wanted = (*traits.inputs, *traits.token_labels, *traits.collator_reads, "feature_index")
        features = eval_set.features.select_columns([c for c in eval_set.features.column_names if c in wanted])
        outputs = engine.predict(model_, features, eval_collate, task.eval_tensors, eval_set.features["length"],
                                 steady_shapes=traits.fixed_shapes)
        return task.score(eval_set, outputs, recipe)

    primary = next((e for e in splits.evals if e.name == "eval"), None)
    metric_name = training.metric_for_best_model or task.main_metric_for(splits)
    greater = training.greater_is_better if training.greater_is_better is not None else task.greater_is_better

    def evaluate_during_training(model_: Any) -> dict[str, float]:
        metrics, _ = evaluate_set(model_, primary)
        return {f"eval_{k}": v for k, v in metrics.items()}

    results: dict[str, Any] = {}
    if train_features is not None:
        from ssl_cli.data import is_stream

        task.adapt_model_for_training(model.get_base_model() if is_peft_model(model) else model, recipe)
        streamed = is_stream(train_features)  # a stream's columns are known only once read: the collator picks
        lengths = None
        if not streamed:
            lengths = train_features["length"]
            keep = [c for c in (*traits.inputs, *traits.labels, *traits.collator_reads) if c in train_features.column_names]
            train_features = train_features.select_columns(keep)
        tracker_config = flat_config(recipe.model_dump(mode="json"))
        with _no_half_made_output(out, created, engine.writes_files):  # a setting refused as training starts
            result = engine.train(
                model, train_features, train_collate, lengths,
                evaluate_during_training if primary is not None else None, metric_name, greater, tracker_config,
                resume_from, traits=traits, fingerprint=fingerprint,
            )
        model = result.model
        results.update(result.metrics)
        results["train_features"] = result.metrics["train_samples"] if streamed else len(train_features)
    else:
        model = engine.prepare_model(model)

    for eval_set in splits.evals:
        metrics, artefacts = evaluate_set(model, eval_set)
        prefix = results_prefix(eval_set.name)
        results.update({f"{prefix}_{k}": v for k, v in metrics.items()})
        results[f"{prefix}_samples"] = len(eval_set.examples)
        if engine.writes_files:
            eval_set.info["files"] = task.write_predictions(eval_set, artefacts, str(out))
            eval_set.info["metrics"] = metrics
    for alias in traits.summary_aliases:  # where the example scripts put them (perplexity: run_mlm.py, run_clm.py)
        if f"eval_{alias}" in results:
            results[alias] = results[f"eval_{alias}"]
    results.update(engine.describe())
    if is_peft_model(engine.unwrap(model)):
        from ssl_cli.adapters import trainable_parameters

        results.update(trainable_parameters(engine.unwrap(model)))
    for settled in engine.when_training_runs:  # without training (ssl evaluate), once the results are in
        settled()
    if engine.writes_files:
        try:
            _save_outputs(task, recipe, engine.unwrap(model), tokenizer, splits, results, out, evaluation_only,
                          engine.checkpoints.save_model)
        except Exception as err:  # safetensors and torch report a full disk in their own exception types
            reason = write_failure(err, out)
            if reason is None:
                raise
            raise UserError(f"cannot write the trained model into {out}: {reason}; its checkpoints are intact: free "
                            "space and run again with --resume") from None
    if engine.is_main_process:
        _print_summary(task, splits, results, out, evaluation_only)
    engine.wait()
    engine.end()
    if training.push_to_hub and not evaluation_only and engine.is_main_process:
        from ssl_cli.hub import push_output_dir

        print(f"pushed to {push_output_dir(training, out)}")
    return results


@contextmanager
def _no_half_made_output(out: Path, created: bool, main: bool) -> Iterator[None]:
    """On a bad model or setting, remove the output dir this run created, unless a checkpoint is in it to resume."""
    from ssl_cli.engine import list_checkpoints

    try:
        yield
    except UserError:
        if created and main and not list_checkpoints(out):
            shutil.rmtree(out, ignore_errors=True)
        raise


def results_prefix(eval_set: str) -> str:
    """Key prefix in all_results.json: eval_*, predict_* (test), eval_<name>_* (--eval-data), predict_<name>_*."""
    if eval_set in ("eval", "test"):
        return "eval" if eval_set == "eval" else "predict"
    if eval_set.startswith("test_"):
        return f"predict_{eval_set.removeprefix('test_')}"
    return f"eval_{eval_set}"


def _build_model(task: Task, recipe: Any, splits: Any, engine: Any, out: Path, resume_from: Path | None,
                 staging: Path):
    """Tokenizer and model; a scratch: tokenizer is trained once (main process) and shared through ``staging``
    until the output dir may be written (a resumed run reads the one it saved)."""
    import transformers

    from ssl_cli.models import classify_model, load_model, load_tokenizer, train_scratch_tokenizer, warn_remote_code

    source = classify_model(recipe.model.name_or_path)
    if engine.is_main_process:
        warn_remote_code(source.name, recipe.model.trust_remote_code)
    max_positions = max(512, recipe.data.max_seq_length)
    if source.kind == "scratch":
        saved, staged = out / SCRATCH_TOKENIZER_DIR, staging / SCRATCH_TOKENIZER_DIR
        with engine.main_process_first():
            if resume_from is not None and saved.is_dir():
                tokenizer = transformers.AutoTokenizer.from_pretrained(str(saved))
            elif not engine.is_main_process:
                tokenizer = transformers.AutoTokenizer.from_pretrained(str(staged))  # the main process's, below
            else:
                if splits.train is None:
                    raise UserError("a scratch: model needs training data to build its tokenizer (do_train is off)")
                tokenizer = train_scratch_tokenizer(
                    source.name, task.training_texts(splits.train), recipe.model.scratch_vocab_size, max_positions
                )
                shutil.rmtree(staged, ignore_errors=True)  # left by a run that was killed here
                tokenizer.save_pretrained(str(staged))
    else:
        tokenizer = load_tokenizer(source, recipe.model, pretokenized=task.traits.pretokenized)
    transformers.set_seed(recipe.training.seed)
    model = load_model(source, recipe.model, task.model_class(recipe), tokenizer, max_positions,
                       training_on_cpu=engine.device.type == "cpu" and splits.train is not None,
                       max_seq_length=recipe.data.max_seq_length, **task.model_kwargs(splits, recipe))
    _inputs_the_model_takes(tokenizer, model)
    if getattr(model.config, "pad_token_id", None) is None and tokenizer.pad_token_id is not None:
        model.config.pad_token_id = tokenizer.pad_token_id  # sequence heads of decoder-only models find the last token by it
    if recipe.model.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    if source.kind == "adapter":
        from ssl_cli.adapters import adapter_for_run

        model = adapter_for_run(model, recipe, training=splits.train is not None)
    elif uses_lora(recipe):
        from ssl_cli.adapters import add_lora

        model = add_lora(model, recipe, task.traits.pipeline_tag)
    if uses_lora(recipe) and splits.train is not None:
        from ssl_cli.adapters import describe_trainable, trainable_parameters

        if engine.is_main_process:
            print(describe_trainable(trainable_parameters(model)))
    if recipe.model.fast_cpu_dropout and engine.device.type == "cpu" and splits.train is not None:
        from ssl_cli.models import use_fast_cpu_dropout

        use_fast_cpu_dropout(model)
    return tokenizer, model


def _inputs_the_model_takes(tokenizer: Any, model: Any) -> None:
    """A tokenizer that returns token_type_ids for a model whose forward has none (a generic fast tokenizer
    with Llama) would make every batch a TypeError: it stops returning them."""
    import inspect

    base = model.get_base_model() if is_peft_model(model) else model  # peft's forward names only a few inputs
    if "token_type_ids" in tokenizer.model_input_names and \
            "token_type_ids" not in inspect.signature(base.forward).parameters:
        tokenizer.model_input_names = [name for name in tokenizer.model_input_names if name != "token_type_ids"]


def _quiet_libraries(main: bool) -> None:
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.logging.set_verbosity_error()
    if not main or not sys.stderr.isatty():
        datasets.disable_progress_bars()


def _save_outputs(task: Task, recipe: Any, model: Any, tokenizer: Any, splits: Any, results: dict[str, Any], out: Path,
                  evaluation_only: bool, save_model: Any) -> None:
    from ssl_cli.outputs import write_evaluation_report, write_json, write_model_card

    if not evaluation_only:
        save_model(model, out)
        tokenizer.save_pretrained(str(out))
        if is_peft_model(model):
            from ssl_cli.adapters import save_adapter_extras

            save_adapter_extras(model, tokenizer, out, recipe.peft.merge)
    command = "ssl " + " ".join(sys.argv[1:]) if Path(sys.argv[0]).name in ("ssl", "__main__.py") else " ".join(sys.argv)
    header = (f"# Resolved recipe of this run. Re-run it into a new directory with:\n"
              f"#   ssl {task.name} --recipe {out / 'recipe.yaml'} --output-dir NEW_DIR")
    (out / "recipe.yaml").write_text(recipe_to_yaml(saved_recipe(recipe), header), encoding="utf-8")
    write_json(out / "all_results.json", results)
    train_keys = {k: v for k, v in results.items() if k.startswith("train") or k == "epoch"}
    if train_keys or not evaluation_only:
        write_json(out / "train_results.json", train_keys)
    eval_keys = {k: v for k, v in results.items() if k.startswith("eval")}
    if eval_keys:
        write_json(out / "eval_results.json", eval_keys)
    predict_keys = {k: v for k, v in results.items() if k.startswith("predict")}
    if predict_keys:
        write_json(out / "predict_results.json", predict_keys)
    if evaluation_only:
        write_evaluation_report(out, task, recipe, splits, results, command)
    else:
        write_model_card(out, task, recipe, splits, results, command, getattr(model, "config", None))


def _print_summary(task: Task, splits: Any, results: dict[str, Any], out: Path, evaluation_only: bool = False) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=False)
    table = Table(title=f"ssl {task.name}: results")
    table.add_column("set")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for eval_set in splits.evals:
        for name, value in eval_set.info.get("metrics", {}).items():
            if name.endswith("total"):
                continue
            scorer = eval_set.info.get("scorer")  # the official scorer behind the figures (QA: squad, chinese...)
            table.add_row(eval_set.name, f"{name} ({scorer})" if scorer else name, f"{value:.2f}")
    if "train_samples_per_second" in results:
        table.add_row("train", "samples/s", f"{results['train_samples_per_second']:.1f}")
        table.add_row("train", "runtime (s)", f"{results['train_runtime']:.1f}")
    console.print(table)
    files = sorted({f for e in splits.evals for f in e.info.get("files", [])})
    if evaluation_only:
        console.print(f"evaluation: [bold]{out}[/]  (the model evaluated is left as it was)")
    else:
        console.print(f"model: [bold]{out}[/]  (AutoModel*.from_pretrained / pipeline load it directly)")
    if files:
        console.print("predictions: " + ", ".join(str(out / f) for f in files))
    console.print("metrics: " + str(out / "all_results.json"))
