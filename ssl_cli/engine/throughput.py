"""What a training session did, for ``all_results.json``: examples, real and padded tokens, passes, memory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ssl_cli.engine.cpu import dataset_memory_mb, peak_rss_mb
from ssl_cli.engine.packing import batch_counts


@dataclass
class Counts:
    """This session's throughput on this process (not checkpointed): examples, real tokens (a device tensor, read
    at the end), padded tokens computed, forward passes, batches and rows, from when training started. The
    processes' counts are summed at the end (``totals``): under a token budget their batches differ in rows."""

    start_time: float
    start_step: int
    start_examples: int
    examples: int = 0
    tokens_seen: Any = 0
    tokens_computed: int = 0
    passes: int = 0
    batches: int = 0
    rows: int = 0

    def add(self, parts: list[dict[str, Any]], num_processes: int) -> int:
        """Count one batch (its micro-batches ``parts``); the examples it trained, over every process (as many as
        this one's on each: for the progress line and a stream's position, where batches are equal)."""
        examples = 0
        for rows, real, computed in map(batch_counts, parts):
            examples += rows
            self.tokens_seen = self.tokens_seen + real
            self.tokens_computed += computed
        self.examples += examples
        self.rows += sum(len(part["input_ids"]) for part in parts if "input_ids" in part)
        self.passes, self.batches = self.passes + len(parts), self.batches + 1
        return examples * num_processes

    def totals(self, accelerator: Any) -> tuple[int, int, int, int]:
        """(examples, real tokens, computed tokens, rows) of every process together."""
        local = [self.examples, int(self.tokens_seen), self.tokens_computed, self.rows]
        if accelerator.num_processes == 1:
            return tuple(local)
        import torch

        summed = accelerator.reduce(torch.tensor(local, dtype=torch.int64, device=accelerator.device), "sum")
        return tuple(int(v) for v in summed.tolist())


def train_metrics(accelerator: Any, cfg: Any, state: Any, counts: Counts, runtime: float, train_samples: int,
                  epochs_done: float, heap_trims: int) -> dict[str, float]:
    """The train_* results of ``all_results.json``, Trainer's names first."""
    acc = accelerator
    examples, tokens_seen, tokens_computed, rows = counts.totals(acc)
    return {
        "train_loss": state.loss_sum / max(state.loss_count, 1),
        "train_runtime": runtime,
        "train_samples": train_samples,
        "train_samples_per_second": examples / max(runtime, 1e-9),
        "train_tokens_per_second": tokens_seen / max(runtime, 1e-9),
        "train_steps_per_second": (state.global_step - counts.start_step) / max(runtime, 1e-9),
        "train_padding_fraction": 1 - tokens_seen / tokens_computed if tokens_computed else 0.0,
        "train_passes_per_batch": counts.passes / max(counts.batches, 1),
        "train_examples_per_row": examples / max(rows, 1),
        "train_steps": state.global_step,
        "epoch": epochs_done,
        "global_batch_size": cfg.per_device_train_batch_size * acc.num_processes * cfg.gradient_accumulation_steps,
        "train_peak_rss_mb": peak_rss_mb(),
        **dataset_memory(accelerator),
        "train_heap_trims": heap_trims,
    }

def dataset_memory(accelerator: Any) -> dict[str, float]:
    """``dataset_memory_mb`` as ``train_dataset_*_mb`` results: the largest figure over the processes."""
    import torch

    memory = dataset_memory_mb()
    if memory and accelerator.num_processes > 1:
        local = torch.tensor([list(memory.values())], dtype=torch.float32, device=accelerator.device)
        memory = dict(zip(memory, accelerator.gather(local).max(dim=0).values.tolist(), strict=True))
    return {f"train_dataset_{kind}_mb": round(mb, 3) for kind, mb in memory.items()}
