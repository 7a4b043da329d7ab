"""``per_device_train_batch_size: auto``: the largest training batch that fits in the device's memory.

On a GPU the batch is the first lever: a BERT-size step at batch 12-32 leaves
the chip waiting on the host, and the memory left over is the ceiling. The
search tries real training steps (forward, backward and the optimizer's first
step, which allocates its state) on the dataset's *longest* rows, so that no
later batch needs more memory than the one that passed, and keeps the largest
size that did not run out of memory: doubling from ``AUTO_START`` until one
fails, then halving the gap to the largest that passes, to a multiple of
``AUTO_MULTIPLE`` (tensor cores like multiples of 8).

The probe leaves no trace: the optimizer that takes the probing steps is a
throwaway one at learning rate 0 (the weights do not move), the gradients are
dropped, and every RNG the steps drew from (dropout) is put back, so the run
then trains exactly as it would with that batch size written in the recipe.
With several processes each probes on its own (outside DDP, so one running
out of memory cannot leave the others waiting), and all take the largest
size that fit everywhere.

A CPU has no memory error to catch before the kernel's OOM killer, and its
throughput stops growing long before memory runs out (``padding_microbatches``
splits big batches anyway), so there ``auto`` searches only up to
``AUTO_CPU_CAP``. ``auto_find_batch_size`` is the Trainer's flag: the recipe's
batch size is then the upper bound, lowered until a step fits.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssl_cli.errors import UserError

AUTO = "auto"
AUTO_START = 8
AUTO_MULTIPLE = 8
AUTO_CAP = 4096  # rows per process on an accelerator: beyond this, the step is no longer host-bound
AUTO_CPU_CAP = 32


def is_out_of_memory(error: BaseException) -> bool:
    """A device (CUDA, XPU, MPS, HPU) or CPU allocator that ran out of memory, as Accelerate recognises them."""
    import torch
    from accelerate.utils.memory import should_reduce_batch_size

    return isinstance(error, torch.OutOfMemoryError) or should_reduce_batch_size(error)


def largest_fitting(fits: Callable[[int], bool], cap: int, start: int = AUTO_START,
                    multiple: int = AUTO_MULTIPLE) -> tuple[int | None, list[int]]:
    """The largest batch size up to ``cap`` for which ``fits(size)`` is true, and the sizes tried, in order.

    Doubles from ``start`` (or ``cap``, if smaller) until a size fails or ``cap`` is reached, then bisects
    between the last size that fit and the first that failed, to multiples of ``multiple`` (below
    ``multiple``, to single rows). None: not even one row fits.
    """
    tried: list[int] = []

    def attempt(size: int) -> bool:
        tried.append(size)
        return fits(size)

    size, bad = min(start, cap), None
    while not attempt(size):  # even the start fails: halve to a size that fits
        if size == 1:
            return None, tried
        size, bad = size // 2, size
    good = size
    while bad is None and good < cap:
        size = min(good * 2, cap)
        if attempt(size):
            good = size
        else:
            bad = size
    while bad is not None:
        step = multiple if good >= multiple else 1
        middle = (good + bad) // 2 // step * step
        if middle <= good:
            break
        if attempt(middle):
            good = middle
        else:
            bad = middle
    return good, tried


def longest_rows(dataset: Any, lengths: Sequence[int] | None, size: int) -> list[dict[str, Any]]:
    """``size`` rows for a probing batch: the dataset's longest (repeated if it has fewer), or, for a stream,
    its first rows repeated (streams here are fixed-length blocks)."""
    if lengths is not None:
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])[:size]
        # one read of the rows (a datasets.Dataset), not thousands of single-row reads
        pool = dataset.select(order).to_list() if hasattr(dataset, "select") else [dataset[i] for i in order]
    else:
        pool = [row for _, row in zip(range(min(size, 64)), dataset, strict=False)]
    if not pool:
        raise UserError("there are no training rows to size the batch on: check the training data")
    return [pool[i % len(pool)] for i in range(size)]


@dataclass
class BatchProbe:
    """``fits(size)``: whether one training step at ``size`` of the longest rows runs without running out of
    memory, on every process; the model's weights and every RNG are as they were afterwards."""

    accelerator: Any
    model: Any
    collate_fn: Callable
    dataset: Any
    lengths: Sequence[int] | None
    model_inputs: Callable[[dict], dict]
    master_weights: Any = None  # bf16-weights' MasterWeights: the probe then steps as training will, in bf16
    _pool: list[dict[str, Any]] = field(default_factory=list)  # the longest rows, for the largest size so far

    def rows(self, size: int) -> list[dict[str, Any]]:
        """``longest_rows`` of ``size``, read once for the largest size (a smaller one is its beginning)."""
        if len(self._pool) < size:
            self._pool = longest_rows(self.dataset, self.lengths, size)
        return self._pool[:size]

    def __call__(self, size: int) -> bool:
        import torch

        fit = 1
        try:
            self._step(size)
        except Exception as error:  # noqa: BLE001 - anything but running out of memory is re-raised
            if not is_out_of_memory(error):
                raise
            fit = 0
        finally:
            self._release()
        flag = torch.tensor([fit], device=self.accelerator.device)
        return bool(self.accelerator.reduce(flag, reduction="sum").item() == self.accelerator.num_processes)

    def _step(self, size: int) -> None:
        import torch

        from ssl_cli.engine.durability import memory_failpoint
        from ssl_cli.engine.packing import on_device

        acc = self.accelerator
        parameters = [p for p in self.model.parameters() if p.requires_grad]
        # AdamW's two states per parameter: the most any training.optim holds, so a size that fits here fits them all
        optimizer = torch.optim.AdamW(parameters, lr=0.0, weight_decay=0.0)
        memory_failpoint(size)
        batch = self.collate_fn(self.rows(size))
        parts = batch if isinstance(batch, list) else [batch]  # micro-batches (MicroBatches) or one batch
        # Off DDP's wrapper: its forward and backward talk to the other processes, which would wait forever
        # on one that ran out of memory (FSDP's shards exist only inside its wrapper).
        model = self.model if acc.distributed_type.name == "FSDP" else acc.unwrap_model(self.model)
        weights = self.master_weights
        if weights is not None:
            weights.enter()
        with acc.autocast():
            for part in parts:
                acc.backward(model(**on_device(self.model_inputs(part), acc.device)).loss)
        if weights is not None:
            weights.finish(average=False)  # each process on its own, as the probe's steps are
        optimizer.step()
        del optimizer

    def _release(self) -> None:
        from accelerate.utils.memory import clear_device_cache

        if self.master_weights is not None:
            self.master_weights.drop()
        for parameter in self.model.parameters():
            parameter.grad = None
        clear_device_cache(garbage_collection=True)


def rng_states() -> dict[str, Any]:
    """Every RNG a training step draws from: python's, numpy's, torch's CPU and each accelerator's."""
    import random

    import numpy as np
    import torch

    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    import random

    import numpy as np
    import torch

    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states:
        torch.cuda.set_rng_state_all(states["cuda"])


def search_cap(cfg: Any, device_type: str, rows: int | None, num_processes: int, longest: int = 1) -> int:
    """The largest size the search tries: the recipe's own with ``auto_find_batch_size`` (in rows of the longest
    length, for a token budget); else a device cap, no more than each process's share of the training rows."""
    if cfg.per_device_train_batch_size != AUTO or cfg.per_device_train_tokens:
        return max(1, cfg.per_device_train_tokens // longest) if cfg.per_device_train_tokens \
            else int(cfg.per_device_train_batch_size)
    cap = AUTO_CPU_CAP if device_type == "cpu" else AUTO_CAP
    if rows is not None:
        cap = min(cap, max(1, rows // num_processes))
    return cap


def resumed_batch_size(checkpoint: Path | None) -> tuple[int | None, int | None]:
    """The batch size and token budget the search chose for the run ``checkpoint`` belongs to (a resumed run
    keeps them: the batch order, and so exact continuation, depend on them)."""
    if checkpoint is None:
        return None, None
    from ssl_cli.engine.state import STATE_FILE

    try:
        state = json.loads((Path(checkpoint) / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None, None
    return state.get("train_batch_size"), state.get("train_tokens")


def scaled_learning_rate(cfg: Any, size: float) -> float:
    """The learning rate for ``size`` rows: the recipe's (``auto_batch_lr_scaling: none``), or scaled from the
    batch it was tuned at (``auto_batch_reference_size``) by the square root (Adam's usual rule) or linearly."""
    ratio = size / cfg.auto_batch_reference_size
    if cfg.auto_batch_lr_scaling == "sqrt":
        return cfg.learning_rate * ratio ** 0.5
    if cfg.auto_batch_lr_scaling == "linear":
        return cfg.learning_rate * ratio
    return cfg.learning_rate


def check_token_budget(cfg: Any, lengths: Sequence[int] | None) -> int:
    """The longest training row, which a token budget must hold; streams have no lengths to budget with."""
    if lengths is None:
        raise UserError("training.per_device_train_tokens needs a dataset with lengths, and this one is streamed: "
                        "set per_device_train_batch_size instead")
    longest = max(lengths, default=1)
    if cfg.per_device_train_tokens is not None and cfg.per_device_train_tokens < longest:
        raise UserError(f"training.per_device_train_tokens ({cfg.per_device_train_tokens}) cannot hold the longest "
                        f"training row ({longest} tokens): raise it to at least {longest}, or lower "
                        "data.max_seq_length (--max-seq-length)")
    return longest


def choose_batch_size(accelerator: Any, cfg: Any, model: Any, optimizer: Any, collate_fn: Callable, dataset: Any,
                      lengths: Sequence[int] | None, resume_from: Path | None,
                      say: Callable[[str], None], master_weights: Any = None) -> dict[str, Any]:
    """Settle ``cfg.per_device_train_batch_size`` or ``cfg.per_device_train_tokens`` (and the learning rate that
    goes with it, in ``optimizer`` too) before the batches are planned: the search's result, the resumed run's,
    or the recipe's as it is. The search is in tokens for padding-free rows, or where the recipe gives a token
    budget: the largest number of the longest rows that fits, times their length. Under bf16-weights
    (``master_weights``) the probing steps run on the bf16 copies, as training does. Returns what
    all_results.json records of it."""
    from ssl_cli.engine.padding_free import FlatteningCollator

    searching = cfg.per_device_train_batch_size == AUTO or cfg.auto_find_batch_size
    in_tokens = cfg.per_device_train_tokens is not None or searching and isinstance(collate_fn, FlatteningCollator)
    longest = check_token_budget(cfg, lengths) if in_tokens else 1
    processes = accelerator.num_processes
    if not searching:
        return _settled(cfg, _mean_rows(cfg, lengths, processes), processes)
    size, tokens = resumed_batch_size(resume_from)
    if size is not None:
        cfg.per_device_train_batch_size, cfg.per_device_train_tokens, tried = size, tokens, []
        rows = _mean_rows(cfg, lengths, processes)
        say(f"per_device_train_batch_size: {size}{_in_tokens(tokens)}, as the run being resumed chose")
    else:
        size, tried, cap = _search(accelerator, cfg, model, collate_fn, dataset, lengths, longest, master_weights)
        cfg.per_device_train_batch_size = size
        if in_tokens:
            cfg.per_device_train_tokens = size * longest
        rows = _mean_rows(cfg, lengths, processes)
        say(f"per_device_train_batch_size: {size}{_in_tokens(cfg.per_device_train_tokens, longest)}, the largest "
            f"that fits of {', '.join(map(str, tried))} (up to {cap}){_learning_rate_note(cfg, rows)}")
    cfg.learning_rate = scaled_learning_rate(cfg, rows)
    for group in optimizer.param_groups:
        group["lr"] = cfg.learning_rate
    cfg.auto_find_batch_size = False  # settled: nothing downstream searches again
    return {**_settled(cfg, rows, processes), "auto_batch_size": True, "auto_batch_sizes_tried": tried,
            "learning_rate": cfg.learning_rate}


def _search(accelerator: Any, cfg: Any, model: Any, collate_fn: Callable, dataset: Any,
            lengths: Sequence[int] | None, longest: int, master_weights: Any) -> tuple[int, list[int], int]:
    """(the largest size that fits, the sizes tried, the cap): the probe's search, every RNG put back."""
    from ssl_cli.engine.packing import model_inputs

    if accelerator.distributed_type.name == "DEEPSPEED":
        raise UserError("per_device_train_batch_size auto does not work with DeepSpeed, whose config fixes the "
                        "batch: give a number (--per-device-train-batch-size N)")
    cap = search_cap(cfg, accelerator.device.type, None if lengths is None else len(lengths),
                     accelerator.num_processes, longest)
    states = rng_states()
    try:
        probe = BatchProbe(accelerator, model, collate_fn, dataset, lengths, model_inputs, master_weights)
        size, tried = largest_fitting(probe, cap)
    finally:
        restore_rng_states(states)
    if size is None:
        raise UserError(f"not even one training row of the longest length fits in {accelerator.device.type} "
                        "memory: lower data.max_seq_length (--max-seq-length), or train in bf16 "
                        "(--mixed-precision bf16), with LoRA (--peft lora) or --gradient-checkpointing")
    return size, tried, cap


def _mean_rows(cfg: Any, lengths: Sequence[int] | None, num_processes: int) -> float:
    """Rows per batch: the batch size, or a token budget's mean (what the learning rate scales with)."""
    if not cfg.per_device_train_tokens:
        return cfg.per_device_train_batch_size
    from ssl_cli.engine.sampling import TokenBudgetSampler

    return TokenBudgetSampler(lengths, cfg.per_device_train_tokens, seed=cfg.sampling_seed,
                              num_processes=num_processes).mean_rows()


def _settled(cfg: Any, rows: float, num_processes: int) -> dict[str, Any]:
    """What all_results.json records of the batch: its size, or a token budget and the ``rows`` it holds on
    average (``global_batch_size``: that mean, over processes and accumulation)."""
    if not cfg.per_device_train_tokens:
        return {"per_device_train_batch_size": cfg.per_device_train_batch_size}
    return {"per_device_train_tokens": cfg.per_device_train_tokens, "train_rows_per_batch": round(rows, 2),
            "global_batch_size": round(rows * num_processes * cfg.gradient_accumulation_steps, 2)}


def _in_tokens(tokens: int | None, longest: int | None = None) -> str:
    if not tokens:
        return ""
    return f" of the longest rows ({longest} tokens): per_device_train_tokens {tokens}" if longest \
        else f" (per_device_train_tokens {tokens})"


def _learning_rate_note(cfg: Any, rows: float) -> str:
    per_batch = f"; {rows:.1f} rows per batch" if cfg.per_device_train_tokens else ""
    if cfg.auto_batch_lr_scaling == "none":
        return (f"{per_batch}; learning_rate stays {cfg.learning_rate:g} (training.auto_batch_lr_scaling: sqrt or "
                f"linear scales it from a batch of {cfg.auto_batch_reference_size})")
    return (f"{per_batch}; learning_rate {cfg.learning_rate:g} -> {scaled_learning_rate(cfg, rows):g} "
            f"({cfg.auto_batch_lr_scaling})")
