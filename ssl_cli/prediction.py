"""``ssl predict``: a trained model's predictions for raw input, JSON lines in and out, in batches.

Each task says how a batch of raw rows becomes its predictions (``Task.predict_rows``); this module reads the
input, batches it on one device, shows progress and throughput, and writes the output. No training, no
Accelerate: a prediction run is one process.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ssl_cli.errors import UserError, not_utf8


def read_rows(path: Path) -> list[dict[str, Any]]:
    """JSON lines (one object per line); a .txt file is one ``{"text": line}`` per non-empty line."""
    if not path.is_file():
        raise UserError(f"input file not found: {path} (pass a JSON-lines file to --input)")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(not_utf8(f"input {path}")) from None
    if path.suffix == ".txt":
        return [{"text": line.strip()} for line in text.splitlines() if line.strip()]
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(f"{path} line {number} is not JSON ({err.msg}): write one JSON object per line") from None
        if not isinstance(row, dict):
            raise UserError(f"{path} line {number} is not a JSON object: write one object per line, e.g. "
                            '{"text": "..."}')
        rows.append(row)
    if not rows:
        raise UserError(f"{path} is empty: give it at least one JSON object per line")
    return rows


def load_for_prediction(model_dir: Path, task: Any, settings: dict[str, Any] | None = None) -> tuple[Any, Any, dict[str, Any]]:
    """(model on its device in eval mode, tokenizer, the recipe saved with the model or {}: ``settings`` when the
    caller has read it)."""
    import torch
    import transformers
    from transformers import AutoTokenizer

    from ssl_cli.adapters import is_adapter_dir, load_trained_adapter
    from ssl_cli.api import saved_recipe_tree, settings_recipe

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()

    settings = saved_recipe_tree(model_dir) if settings is None else settings
    recipe = settings_recipe(task, settings, model_dir)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir), add_prefix_space=True) if task.traits.pretokenized \
            else AutoTokenizer.from_pretrained(str(model_dir))
        if is_adapter_dir(model_dir):
            model = load_trained_adapter(model_dir, task.model_class(recipe))
        else:
            model = task.model_class(recipe).from_pretrained(str(model_dir), use_safetensors=True)
    except (OSError, ValueError) as err:
        raise UserError(f"cannot load the model in {model_dir}: {str(err).splitlines()[0][:200]}") from None
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return model.to(device).eval(), tokenizer, settings


def predict_rows(task: Any, model: Any, tokenizer: Any, rows: list[dict[str, Any]], settings: dict[str, Any],
                 batch_size: int, show_progress: bool = True) -> list[dict[str, Any]]:
    """Every row's prediction, ``batch_size`` rows per forward pass, with a progress line on a terminal."""
    import sys

    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    out: list[dict[str, Any]] = []
    columns = (TextColumn("predict"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not (show_progress and sys.stderr.isatty()), transient=True) as progress:
        bar = progress.add_task("predict", total=len(rows))
        with torch.inference_mode():
            for start in range(0, len(rows), batch_size):
                batch = rows[start:start + batch_size]
                out += task.predict_rows(model, tokenizer, batch, settings, first_row=start + 1)
                progress.advance(bar, len(batch))
    return out


def check_output_file(path: Path) -> None:
    """Refuse an output path that cannot become a file, before the model is loaded and rows are predicted."""
    if path.is_dir():
        raise UserError(f"--output {path} is a directory: name a file, e.g. {path / 'predictions.jsonl'}")
    parent = next((p for p in path.parents if p.exists()), Path("."))
    if not parent.is_dir():
        raise UserError(f"--output {path}: {parent} is a file, not a directory; name a file in a directory")


def write_rows(rows: list[dict[str, Any]], path: Path, task: Any) -> None:
    """JSON lines; a task may write its own format for a suffix it knows (tag-pos: .conllu)."""
    from ssl_cli.errors import write_failure

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if task.write_predicted(rows, path):
            return
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        tmp.replace(path)
    except OSError as err:
        raise UserError(f"cannot write the predictions to {path}: {write_failure(err, path)}") from None


def run_prediction(model_dir: Path, task: Any, rows: list[dict[str, Any]], batch_size: int, output: Path | None,
                   settings: dict[str, Any] | None = None) -> tuple[list[dict[str, Any]], float]:
    """Predictions for ``rows`` (written to ``output`` when given) and the rows per second."""
    if output is not None:
        check_output_file(output)
    model, tokenizer, settings = load_for_prediction(model_dir, task, settings)
    started = time.perf_counter()
    predicted = predict_rows(task, model, tokenizer, rows, settings, batch_size)
    rate = len(rows) / max(time.perf_counter() - started, 1e-9)
    if output is not None:
        write_rows(predicted, output, task)
    return predicted, rate
