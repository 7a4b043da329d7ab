"""Evaluation across processes: every feature's model outputs, gathered in dataset order, each counted once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ssl_cli.engine.sampling import sorted_eval_order
from ssl_cli.errors import UserError


def predict(accelerator: Any, model: Any, model_call: Callable[[dict[str, Any]], Any], dataset: Any,
            collate_fn: Callable, reduce: Callable[[Any, Any], dict[str, Any]], lengths: list[int], batch_size: int,
            after_batch: Callable[[], None], loader_options: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
    """Model outputs for every feature, gathered from all processes, in dataset order.

    Batches are length-sorted (``sorted_eval_order``); ``reduce(outputs, labels)`` names the tensors kept per
    feature. Outputs of shape (batch, length) are padded with -1e4 to the longest feature; the caller's
    post-processing only reads each feature's own length. ``gather_for_metrics`` drops the duplicates that pad
    the last batch across processes, and each feature's index puts it back in place. ``loader_options``: the
    DataLoader's workers and pinned memory (``batching.loader_options``).
    """
    import torch
    from torch.utils.data import DataLoader

    batches = sorted_eval_order(lengths, batch_size)
    loader = accelerator.prepare_data_loader(DataLoader(dataset, batch_sampler=batches, collate_fn=collate_fn,
                                                        **(loader_options or {})))
    model.eval()
    rows: dict[str, list[np.ndarray | None]] = {}
    pending: list[tuple[tuple[str, ...], Any, list[Any]]] = []  # gathered batches still on the device
    with torch.inference_mode():  # no autograd records and no version counters: cheaper than no_grad
        for batch in loader:
            index = batch.pop("feature_index")
            labels = batch.pop("labels", None)
            reduced = reduce(model_call(batch), labels)
            after_batch()
            output_names = tuple(reduced)
            tensors = [reduced[name].float() for name in output_names]
            tensors = [accelerator.pad_across_processes(t, dim=1, pad_index=-1e4) if t.dim() > 1 else t for t in tensors]
            index, *tensors = accelerator.gather_for_metrics((index, *tensors))
            pending.append((output_names, index, tensors))
            if len(pending) == HOST_COPY_BATCHES:
                _to_host(pending, rows, len(dataset))
        _to_host(pending, rows, len(dataset))
    return {name: _stack_padded(values) for name, values in rows.items()}


#: Gathered outputs stay on the device for this many batches, then come to the host together: copying each
#: batch's at once would make the host wait for the device after every batch, with nothing queued behind it.
HOST_COPY_BATCHES = 32


def _to_host(pending: list[tuple[tuple[str, ...], Any, list[Any]]], rows: dict[str, list[np.ndarray | None]],
             features: int) -> None:
    """The pending batches' outputs into ``rows`` (per output name, one array per feature, in dataset order)."""
    for output_names, index, tensors in pending:
        index = index.cpu().numpy()
        for name, tensor in zip(output_names, tensors, strict=True):
            values = tensor.cpu().numpy()
            column = rows.setdefault(name, [None] * features)
            for row, i in enumerate(index):
                column[int(i)] = values[row]
    pending.clear()


def _stack_padded(rows: list[np.ndarray | None]) -> np.ndarray:
    missing = [i for i, r in enumerate(rows) if r is None]
    if missing:
        raise RuntimeError(f"evaluation produced no output for {len(missing)} features (e.g. #{missing[0]})")
    if rows and rows[0].ndim == 0:
        return np.asarray(rows)
    width = max(r.shape[0] for r in rows) if rows else 0
    out = np.full((len(rows), width, *rows[0].shape[1:]) if rows else (0, 0), -1e4, dtype=np.float32)
    for i, row in enumerate(rows):
        out[i, : row.shape[0]] = row
    return out


def track_best(state: Any, metrics: dict[str, float], metric_name: str, greater: bool, checkpoint: str,
               patience: int | None) -> bool:
    """Note whether this evaluation is the best so far (its checkpoint becomes the best model); True when early
    stopping says stop: ``patience`` evaluations in a row without improvement."""
    key = metric_name if metric_name in metrics else f"eval_{metric_name}"
    value = metrics.get(key)
    if value is None:
        raise UserError(f"metric_for_best_model '{metric_name}' is not among the eval metrics: {', '.join(metrics)}")
    improved = state.best_metric is None or (value > state.best_metric if greater else value < state.best_metric)
    if improved:
        state.best_metric = float(value)
        state.best_checkpoint = checkpoint
        state.evals_without_improvement = 0
    else:
        state.evals_without_improvement += 1
    return bool(patience) and state.evals_without_improvement >= patience
