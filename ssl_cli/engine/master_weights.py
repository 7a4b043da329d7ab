"""bf16 weights for the forward and backward passes, fp32 master weights for everything else
(``training.mixed_precision: bf16-weights``).

Why. bf16 autocast keeps the weights in fp32 and casts around every matmul:
activations go back and forth between bf16 and fp32 at each linear, norm and
activation, and the casts are memory-bound passes that a CPU pays in full.
Where bf16 matmuls run several times faster than fp32 (AMX) the casts then
dominate, so autocast trains slower than fp32 (docs/performance.md; with
AVX512-BF16 alone bf16 matmuls can be slower than fp32, and neither mode pays). Here the whole forward and backward runs in bf16, with
no casts at all, as DeepSpeed's bf16 mode does; the optimizer, its state, the
gradient norm, checkpoints and the saved model stay fp32.

How. Each floating parameter keeps its fp32 tensor (the master) and gets a
bf16 copy. ``enter`` points the parameters at the copies (refreshed from the
masters after each optimizer step); as backward accumulates each bf16
gradient, a hook adds it into an fp32 gradient and frees it, so accumulated
micro-batches and steps add up in fp32. ``finish`` points the parameters back
at the masters and hands them the fp32 gradients, all-reduced over processes
(DDP's own reduction cannot see them: training runs under ``no_sync``). Outside
a training window and an evaluation the model is plain fp32, so checkpoints
and ``--resume`` are exactly those of an fp32 run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ssl_cli.errors import UserError

BF16_WEIGHTS = "bf16-weights"
REFUSED = ("DEEPSPEED", "FSDP", "XLA", "MEGATRON_LM")  # their parameters are not the plain ones; the MULTI_* are DDP


def check_master_weights(mixed_precision: str, distributed_type: str) -> None:
    """bf16-weights where the parameters are not the plain ones (FSDP shards, DeepSpeed's own bf16, XLA) is one
    line, with what to use there."""
    if mixed_precision == BF16_WEIGHTS and distributed_type in REFUSED:
        raise UserError(f"mixed_precision bf16-weights runs on one process or under DDP, not {distributed_type}: "
                        "use --mixed-precision bf16 (or DeepSpeed's bf16 in its config)")


class MasterWeights:
    """A model's floating parameters as bf16 copies while it computes, fp32 masters otherwise (module docstring)."""

    def __init__(self, model: Any, accelerator: Any) -> None:
        import torch

        self.accelerator = accelerator
        self.params = [p for p in model.parameters() if p.is_floating_point()]
        self.masters = [p.data for p in self.params]
        self.copies = [torch.empty_like(m, dtype=torch.bfloat16) for m in self.masters]
        self.grads: dict[int, Any] = {}  # index in params -> fp32 gradient summed so far in this window
        self.computing = False
        self.stale = True  # the copies lag the masters (set after every optimizer step)
        self.trainable = [i for i, p in enumerate(self.params) if p.requires_grad]
        self.hooks = [self.params[i].register_post_accumulate_grad_hook(self._fold(i)) for i in self.trainable]

    def _fold(self, index: int) -> Any:
        def fold(param: Any) -> None:
            summed = self.grads.get(index)
            if summed is None:
                self.grads[index] = param.grad.float()
            else:
                summed.add_(param.grad)
            param.grad = None
        return fold

    def enter(self) -> None:
        """Point the parameters at their bf16 copies (from the masters, where an optimizer step changed them)."""
        if self.computing:
            return
        import torch

        if self.stale:
            with torch.no_grad():
                for copy, master in zip(self.copies, self.masters, strict=True):
                    copy.copy_(master)
            self.stale = False
        for param, copy in zip(self.params, self.copies, strict=True):
            param.data = copy
        self.computing = True

    def leave(self) -> None:
        """Point the parameters back at their fp32 masters."""
        if not self.computing:
            return
        for param, master in zip(self.params, self.masters, strict=True):
            param.data = master
        self.computing = False

    @contextmanager
    def computed(self) -> Iterator[None]:
        """bf16 weights for the block (an evaluation), fp32 after it. The copies are made again first: the
        masters may have been loaded since (the best checkpoint, at the end of training)."""
        self.stale = self.stale or not self.computing
        self.enter()
        try:
            yield
        finally:
            self.leave()

    def finish(self, average: bool = True) -> None:
        """At the optimizer step: fp32 parameters holding the window's fp32 gradients, averaged over processes
        (``average``; the batch-size probe's steps are each process's own)."""
        self.leave()
        grads = self._averaged() if average and self.accelerator.num_processes > 1 and self.trainable else self.grads
        for i, grad in grads.items():
            self.params[i].grad = grad
        self.grads = {}
        self.stale = True

    def _averaged(self) -> dict[int, Any]:
        """The processes' mean of the gradients, in one all-reduce of one flat buffer (DDP's mean), with a count
        per parameter of the processes that have its gradient: one that none has keeps none, as on one process
        (the counts are read on the host, once per optimizer step)."""
        import torch

        like = [self.masters[i] for i in self.trainable]
        grads = [self.grads[i] if i in self.grads else torch.zeros_like(m) for i, m in zip(self.trainable, like, strict=True)]
        present = torch.tensor([float(i in self.grads) for i in self.trainable], device=like[0].device)
        flat = self.accelerator.reduce(torch.cat([*(g.reshape(-1) for g in grads), present]), reduction="sum")
        *parts, had = flat.split([*(m.numel() for m in like), len(like)])
        world = self.accelerator.num_processes
        return {i: part.view_as(m).div_(world) for i, part, m, seen in zip(self.trainable, parts, like, had.tolist(),
                                                                           strict=True) if seen}

    def drop(self) -> None:
        """Back to the fp32 masters, with the window's gradients dropped (after a probing step, or one that ran
        out of memory half way)."""
        self.leave()
        self.grads = {}
        self.stale = True

    def close(self) -> None:
        """Back to a plain fp32 model: masters in place, hooks removed, gradients of an unfinished window dropped."""
        self.drop()
        for hook in self.hooks:
            hook.remove()
