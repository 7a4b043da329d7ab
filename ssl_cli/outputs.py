"""Run outputs in Hugging Face layout: results JSON and a model card."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temp file + rename), so readers never see half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def write_model_card(out: Path, task: Any, recipe: Any, splits: Any, results: dict[str, Any], command: str,
                     model_config: Any = None) -> None:
    """README.md with the metadata header the Hub reads, the data, the metrics and the command. A LoRA run's
    card loads the adapter with peft (``model_config``: the trained model's, for its label count)."""
    from ssl_cli.adapters import uses_lora

    lora = uses_lora(recipe)
    model_class = task.model_class(recipe).__name__
    model = recipe.model.name_or_path
    random_init = model.startswith("scratch:") or recipe.model.init == "random"
    origin = f"randomly initialised weights in the architecture of **{model}**" if random_init else f"**{model}**"
    source = splits.info.get("source") or recipe.data.train_file or recipe.data.name or "local files"
    lines = [
        "---",
        f"library_name: {'peft' if lora else 'transformers'}",
        f"pipeline_tag: {task.traits.pipeline_tag}",
        "tags:",
        "- ssl",
        f"- {task.name}",
        "base_model: null" if random_init else f"base_model: {model}",
        "---",
        "",
        f"# {out.name}",
        "",
        f"Trained with `ssl {task.name}` from {origin} on **{source}**.",
        "",
        "## Command",
        "",
        "```bash",
        command,
        "```",
        "",
        "The full resolved recipe is in `recipe.yaml`; `ssl "
        f"{task.name} --recipe recipe.yaml` reproduces the run.",
        "",
        "## Results",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    lines += _result_rows(results)
    training = recipe.training
    lines += [
        "",
        "## Training hyperparameters",
        "",
        f"- optimizer: {training.optim}",
        f"- learning_rate: {training.learning_rate}",
        f"- per_device_train_batch_size: {training.per_device_train_batch_size}"
        + (f" (per_device_train_tokens: {training.per_device_train_tokens})" if training.per_device_train_tokens else ""),
        f"- gradient_accumulation_steps: {training.gradient_accumulation_steps}",
        f"- num_train_epochs: {training.num_train_epochs} (max_steps: {training.max_steps})",
        f"- max_seq_length: {recipe.data.max_seq_length}",
        f"- seed: {training.seed}" + ("" if training.data_seed is None else f" (data_seed: {training.data_seed})"),
        f"- mixed_precision: {results.get('mixed_precision', training.mixed_precision)}",
        f"- num_processes: {results.get('num_processes', 1)}",
        "",
        "## Use",
        "",
        "```python",
        *(_how_to_load_adapter(task, recipe, out, model_config) if lora else _how_to_load(task, model_class, out)),
        "```",
        "",
    ]
    (out / "README.md").write_text("\n".join(lines), encoding="utf-8")


def write_evaluation_report(out: Path, task: Any, recipe: Any, splits: Any, results: dict[str, Any],
                            command: str) -> None:
    """README.md of an evaluation (``ssl evaluate``): which model, on which data, the metrics and the command."""
    source = splits.info.get("source") or recipe.data.validation_file or recipe.data.test_file or recipe.data.name
    lines = [f"# {out.name}", "", f"Evaluation of the `ssl {task.name}` model **{recipe.model.name_or_path}** on "
             f"**{source or 'local files'}** (the model was not changed).", "", "## Command", "", "```bash", command,
             "```", "", "## Results", "", "| metric | value |", "|---|---|"]
    lines += _result_rows(results)
    (out / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _result_rows(results: dict[str, Any]) -> list[str]:
    rows = []
    for key, value in results.items():
        if isinstance(value, float):
            rows.append(f"| {key} | {value:.4f} |")
        elif isinstance(value, (int, str)):
            rows.append(f"| {key} | {value} |")
    return rows


def _how_to_load(task: Any, model_class: str, out: Path) -> list[str]:
    """How to load the output: with ``pipeline`` (a task transformers lacks names the module that registers it),
    or, for a task no pipeline serves, with its AutoModel class."""
    traits = task.traits
    name = traits.pipeline_name or traits.pipeline_tag
    if traits.pipeline_module:
        return [f"import {traits.pipeline_module}  # registers {name}", "from transformers import pipeline",
                f'pipe = pipeline("{name}", model="{out}")']
    from transformers.pipelines import PIPELINE_REGISTRY

    if name in PIPELINE_REGISTRY.get_supported_tasks():
        return ["from transformers import pipeline", f'pipe = pipeline("{name}", model="{out}")']
    return [f"from transformers import AutoTokenizer, {model_class}", "",
            f'tokenizer = AutoTokenizer.from_pretrained("{out}")', f'model = {model_class}.from_pretrained("{out}")']


def _how_to_load_adapter(task: Any, recipe: Any, out: Path, model_config: Any) -> list[str]:
    """peft's AutoPeftModel class for the task; the base's head is rebuilt with the run's label count."""
    from ssl_cli.adapters import MERGED_DIR, PEFT_TASK_TYPES

    suffix = {"SEQ_CLS": "ForSequenceClassification", "TOKEN_CLS": "ForTokenClassification",
              "QUESTION_ANS": "ForQuestionAnswering", "CAUSAL_LM": "ForCausalLM"}
    cls = "AutoPeftModel" + suffix.get(PEFT_TASK_TYPES.get(task.traits.pipeline_tag, ""), "")
    labels = getattr(model_config, "num_labels", None) if cls.endswith("Classification") else None
    lines = [f"from peft import {cls}", "",
             f'model = {cls}.from_pretrained("{out}"{f", num_labels={labels}" if labels else ""})']
    if recipe.peft.merge:
        lines += ["", "# or, without peft: the adapter merged into its base", *_how_to_load(
            task, task.model_class(recipe).__name__, out / MERGED_DIR)]
    return lines
