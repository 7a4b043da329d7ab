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
- ``optim``: AdamW parameter groups, the gradient norm, fused AdamW;
- ``checkpoint``: checkpoints on disk (``Checkpointer``: atomic save, rotation, load; listing, atomic discard,
  half-written ones);
- ``evaluate``: prediction across processes, every feature once and in order; the best model, early stopping;
- ``cpu``: glibc tuning, heap trimming, memory reports;
- ``logging``: the JSON log, the progress bar, trackers.
"""

from ssl_cli.engine.checkpoint import DISCARDED_PREFIX, discard_checkpoint, list_checkpoints, remove_half_written
from ssl_cli.engine.cpu import HeapTrimmer, _glibc, dataset_memory_mb, peak_rss_mb, tune_cpu_allocator
from ssl_cli.engine.devices import (
    avoid_cudnn_attention_plans,
    compile_plugin,
    launched_on_cpu_only,
    replays_cuda_graphs,
    resolve_mixed_precision,
)
from ssl_cli.engine.logging import available_trackers
from ssl_cli.engine.loop import Engine
from ssl_cli.engine.optim import fused_adamw_supported, gradient_norm, non_embedding_parameters, parameter_groups
from ssl_cli.engine.state import CHECKPOINT_PREFIX, LOG_FILE, STATE_FILE, TrainResult, TrainState

__all__ = [
    "CHECKPOINT_PREFIX", "DISCARDED_PREFIX", "LOG_FILE", "STATE_FILE", "Engine", "HeapTrimmer", "TrainResult",
    "TrainState", "_glibc", "available_trackers", "avoid_cudnn_attention_plans", "compile_plugin", "dataset_memory_mb",
    "discard_checkpoint", "fused_adamw_supported", "gradient_norm", "launched_on_cpu_only", "list_checkpoints",
    "non_embedding_parameters", "parameter_groups", "peak_rss_mb", "remove_half_written", "replays_cuda_graphs",
    "resolve_mixed_precision", "tune_cpu_allocator",
]
