"""The one training engine, and the only package that imports Accelerate: ``Engine`` (``loop``) and its
collaborators, each a module of one job.

- ``loop``: the Accelerate contract, the training loop, evaluation and checkpoints' timing (``Engine``);
- ``state``: what a run carries across steps and resumes, and its file names;
- ``batching``: the collator training runs (packed rows, micro-batches), a stream's loader; built from
  ``collate`` (padding, length-sorted micro-batches), ``packing`` (several sequences a row) and ``sampling``
  (seeded length-grouped batches, sorted evaluation order);
- ``loss``: one token-weighting mechanism, and losses read from the device only when needed;
- ``throughput``: what a session did (examples, real and padded tokens, memory) for the results;
- ``devices``: precision, torch.compile and CUDA-graph policy;
- ``optim``: the optimizer and its parameter groups, the gradient norm, fused AdamW;
- ``schedule``: the learning-rate schedule (any of transformers'), stepped on steps or on evaluation metrics;
- ``checkpoint``: checkpoints on disk (``Checkpointer``: atomic save, rotation, load; listing, atomic discard,
  half-written ones);
- ``evaluate``: prediction across processes, every feature once and in order; the best model, early stopping;
- ``cpu``: glibc tuning, heap trimming, memory reports;
- ``logging``: the JSON log, the progress bar, trackers;
- ``durability``: checkpoint manifests, the resumable log's cut, fault-injection points.

Names are imported from their modules on first use (PEP 562), so that a light module (``durability``,
``collate``) is importable without torch and Accelerate, which ``loop`` loads.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "checkpoint": ("DISCARDED_PREFIX", "discard_checkpoint", "list_checkpoints", "remove_half_written"),
    "cpu": ("HeapTrimmer", "_glibc", "dataset_memory_mb", "peak_rss_mb", "tune_cpu_allocator"),
    "devices": ("avoid_cudnn_attention_plans", "compile_plugin", "launched_on_cpu_only", "replays_cuda_graphs",
                "resolve_mixed_precision"),
    "logging": ("available_trackers",),
    "loop": ("Engine",),
    "optim": ("fused_adamw_supported", "gradient_norm", "make_optimizer", "non_embedding_parameters",
              "parameter_groups"),
    "schedule": ("make_scheduler",),
    "state": ("CHECKPOINT_PREFIX", "LOG_FILE", "STATE_FILE", "TrainResult", "TrainState"),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'ssl_cli.engine' has no attribute {name!r}")
    return getattr(importlib.import_module(f"ssl_cli.engine.{module}"), name)
