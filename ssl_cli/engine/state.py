"""What a run carries between steps and across a resume, and the names of the files it writes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CHECKPOINT_PREFIX = "checkpoint-"


STATE_FILE = "trainer_state.json"


LOG_FILE = "train_log.jsonl"


@dataclass
class TrainState:
    """Everything beyond tensors that a resumed run needs."""

    global_step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0
    best_metric: float | None = None
    best_checkpoint: str | None = None
    evals_without_improvement: int = 0
    examples_seen: int = 0
    eval_history: list[dict[str, Any]] = field(default_factory=list)
    # The loss of the logging window in progress and of the run so far: a resumed run logs the same means.
    running_loss: float = 0.0
    running_batches: int = 0
    loss_sum: float = 0.0
    loss_count: int = 0
    # What a resumed run must not change (ssl_cli.output_dir.run_fingerprint); None in older checkpoints.
    fingerprint: dict[str, Any] | None = None
    # The per-process batch size trained with: what ``per_device_train_batch_size: auto`` chose, for --resume.
    train_batch_size: int | None = None
    train_tokens: int | None = None  # the token budget trained with (per_device_train_tokens), likewise


@dataclass
class TrainResult:
    """What ``Engine.train`` gives back: the trained model (prepared for this run's devices; the best
    checkpoint's weights with ``load_best_model_at_end``) and the run's training metrics."""

    model: Any
    metrics: dict[str, float]


def epochs_done(state: TrainState, loader: Any) -> float:
    """Passes over the data so far, with the current one's fraction (whole passes only for a stream)."""
    if loader is None:
        return float(state.epoch)
    return state.epoch + state.batches_in_epoch / max(len(loader), 1)
