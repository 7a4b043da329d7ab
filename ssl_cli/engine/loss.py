"""Loss bookkeeping: one token-weighting mechanism, and the losses read from the device only when needed.

Weighting. A task's loss is a mean over what ``Traits.loss_weighting`` names:
rows, labelled tokens (label != -100) or predicted tokens (the shifted labels
of next-token prediction). A batch may run as several micro-batches, on
several processes. Each part's mean is multiplied by its count (a sum), and
the batch's sum is divided by the batch's total count over every process,
found with one small all-reduce: the gradient is that of the mean over the
whole global batch, as on one process with no micro-batches (torchtune's
``scale_grads_``, Trainer's ``average_tokens_across_devices``). Here the
division is folded into the loss before backward (the same gradient, without a
pass over every gradient). Rows on one process need no count from the device.

Reading. Reading a loss (``.item()``) makes the host wait until the device has
finished the step; read every step, it keeps an accelerator idle while the host
prepares the next batch. Losses are kept on the device and read when a log line,
an evaluation or a checkpoint needs them, in the order they were trained.
"""

from __future__ import annotations

import math
from typing import Any

from ssl_cli.compat import foreach_scale
from ssl_cli.engine.packing import batch_examples
from ssl_cli.errors import UserError

IGNORE = -100


def counted(part: dict[str, Any], weighting: str) -> Any:
    """What ``part``'s loss is a mean over: its rows (an int) or its labelled / predicted tokens (a tensor)."""
    if weighting == "rows":
        return batch_examples(part)
    labels = part["labels"][:, 1:] if weighting == "predicted_tokens" else part["labels"]
    return (labels != IGNORE).sum()


def shares(sizes: list[Any]) -> list[Any]:
    """Each size over their sum (ints, or device tensors left unread); a single size is the whole: 1.0."""
    if len(sizes) == 1:
        return [1.0]
    total = sum(sizes)
    total = total.clamp(min=1) if hasattr(total, "clamp") else max(1, total)
    return [size / total for size in sizes]


def loss_weights(parts: list[dict[str, Any]], weighting: str, accelerator: Any,
                 equal_rows: bool = True) -> tuple[list[Any], list[Any]]:
    """Per part: its share of the batch's loss (for the logged mean) and the factor on its loss (None: 1).

    The factor is count x processes / global count: DDP averages the processes'
    gradients, so the processes' factors sum to the processes' number.
    ``equal_rows``: every process's batch has as many rows (not so with token budgets).
    """
    processes = accelerator.num_processes
    equal = processes == 1 or equal_rows
    if len(parts) == 1 and (processes == 1 or weighting == "rows" and equal):
        return [1.0], [None]  # rows on several processes: equal batches, DDP's mean is the global one
    counts = [counted(part, weighting) for part in parts]
    if weighting == "rows" and equal:
        rows = shares(counts)
        return rows, rows
    if weighting == "rows":  # rows per process differ: counted on the device, as tokens are
        import torch

        counts = [torch.tensor(count, device=accelerator.device) for count in counts]
    local = sum(counts)
    total = accelerator.reduce(local.detach().float().clone(), reduction="sum") if processes > 1 else local.float()
    total = total.clamp(min=1)
    return shares(counts), [count.float() * processes / total for count in counts]


class AccumulationWeights:
    """Gradient accumulation weighed as one batch: the batches of an optimizer step count by their rows or
    tokens, not equally (Trainer's ``num_items_in_batch``).

    The window's total is known only at its end, and reading ahead for it would
    upset Accelerate's end-of-epoch sync. So each part's loss is weighted by its
    count while the gradients accumulate, and at the window's end the gradients
    are divided by the total over every process (one all-reduce per optimizer
    step). The counts are in a unit that every process shares, a power of two near
    the first batch's: losses keep their size (fp16's scaler needs that), and a
    power of two scales without rounding, so a resumed run is bit-identical.
    """

    def __init__(self, accelerator: Any, weighting: str) -> None:
        self.accelerator = accelerator
        self.weighting = weighting
        self.unit: Any = None
        self.total: Any = 0.0

    def weights(self, parts: list[dict[str, Any]]) -> tuple[list[Any], list[Any]]:
        """Per part: its share of the batch's loss (for the logged mean) and the factor on its loss."""
        import torch

        acc = self.accelerator
        counts = [torch.as_tensor(counted(part, self.weighting), device=acc.device).float() for part in parts]
        local = sum(counts)
        if self.unit is None:
            first = acc.reduce(local.detach().clone(), reduction="mean") if acc.num_processes > 1 else local
            self.unit = torch.exp2(torch.floor(torch.log2(first.detach().clamp(min=1))))
        self.total = self.total + local.detach()
        return shares(counts), [count / self.unit for count in counts]

    def finish(self, parameters: list[Any]) -> None:
        """At the window's end, after its last backward: the gradients made those of the window's mean."""
        acc = self.accelerator
        total = acc.reduce(self.total.clone(), reduction="sum") if acc.num_processes > 1 else self.total
        # Accelerate divided each loss by the accumulation steps, and DDP averaged over the processes
        factor = self.unit * acc.gradient_accumulation_steps * acc.num_processes / total.clamp(min=1)
        grads = [p.grad for p in parameters if p.grad is not None]
        if grads:
            foreach_scale(grads, factor)
        self.total = 0.0


def accumulation_weights(accelerator: Any, weighting: str) -> AccumulationWeights | None:
    """The run's ``AccumulationWeights`` where batches accumulate (not under DeepSpeed, which scales its own)."""
    if accelerator.gradient_accumulation_steps == 1 or accelerator.distributed_type.name == "DEEPSPEED":
        return None
    return AccumulationWeights(accelerator, weighting)


class LossLog:
    """The batch losses of a run: kept on the device until read, then summed into the logging window and
    the run's mean (``TrainState`` carries both across checkpoints)."""

    def __init__(self, accelerator: Any, output_dir: Any) -> None:
        self.accelerator = accelerator
        self.output_dir = output_dir
        self.pending: list[Any] = []

    def add(self, loss: Any) -> None:
        self.pending.append(loss)

    def flush(self, state: Any) -> None:
        """Read the pending losses at once into ``state``'s window; a diverged run stops here, before its NaN
        weights are saved, evaluated or returned."""
        if not self.pending:
            return
        import torch

        from ssl_cli.engine.checkpoint import list_checkpoints

        values = torch.stack(self.pending).tolist()
        self.pending.clear()
        for value in values:
            state.running_loss += value
            state.running_batches += 1
        if not all(map(math.isfinite, values)):
            checkpoints = list_checkpoints(self.output_dir)
            kept = f"; {checkpoints[-1]} is the last good checkpoint" if checkpoints else ""
            raise UserError(f"the training loss became {next(v for v in values if not math.isfinite(v))} by step "
                            f"{state.global_step}: training diverged. Lower --learning-rate, check the labels, or "
                            f"train in fp32 (--mixed-precision no){kept}")

    def close_window(self, state: Any) -> float:
        """The mean loss of the batches since the last log line (over processes), added to the run's total."""
        self.flush(state)
        mean_loss = self.mean_across_processes(state.running_loss / max(state.running_batches, 1))
        state.loss_sum += mean_loss * state.running_batches
        state.loss_count += state.running_batches
        state.running_loss, state.running_batches = 0.0, 0
        return mean_loss

    def mean_across_processes(self, value: float) -> float:
        if self.accelerator.num_processes == 1:
            return value
        import torch

        tensor = torch.tensor([value], device=self.accelerator.device)
        return float(self.accelerator.reduce(tensor, reduction="mean").item())
