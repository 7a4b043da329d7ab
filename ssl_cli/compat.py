"""Every use of a private torch or transformers API, in one place.

Each one buys speed or a behaviour users expect that no public API gives. Each
has a test in ``tests/unit/test_compat.py`` that fails loudly, naming the API, when
a new torch or transformers changes it, instead of a silent fallback or a
slower run. Nothing else in ``ssl_cli`` touches these.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# The CPU's instruction sets as torch's own kernels see them (no public API asks): torch.cpu._is_*_supported,
# torch._C._cpu before torch 2.x moved them (there, a lookup that fell back to False hid that for several releases)
CPU_BF16_PROBES = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")


def cpu_probes() -> Any | None:
    """The module holding ``CPU_BF16_PROBES`` in this torch, or None."""
    import torch

    for module in (getattr(torch, "cpu", None), getattr(torch._C, "_cpu", None)):
        if module is not None and all(callable(getattr(module, name, None)) for name in CPU_BF16_PROBES):
            return module
    return None


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: bf16 matmuls are native on this CPU."""
    probes = cpu_probes()
    return probes is not None and any(getattr(probes, name)() for name in CPU_BF16_PROBES)


def foreach_norm(tensors: list[Any]) -> list[Any]:
    """Each tensor's L2 norm in one multi-tensor kernel (``torch._foreach_norm``, what ``get_total_norm`` runs
    once it has grouped the tensors by device and dtype)."""
    import torch

    return torch._foreach_norm(tensors)


def foreach_scale(tensors: list[Any], factor: Any) -> None:
    """Multiply every tensor by ``factor`` (a number or a one-element device tensor, left unread) in place, in one
    multi-tensor kernel (``torch._foreach_mul_``, what ``clip_grads_with_norm_`` runs)."""
    import torch

    torch._foreach_mul_(tensors, factor)


def inner_optimizer(optimizer: Any) -> Any:
    """The torch optimizer inside Accelerate's wrapper."""
    return getattr(optimizer, "optimizer", optimizer)


def set_fused_grad_divisor(optimizer: Any, divisor: Any) -> None:
    """Make the next step of a fused AdamW divide every gradient by ``divisor`` as it reads it: the slot
    ``torch.amp.GradScaler`` fills (``grad_scale``), read by ``torch.optim.adamw._fused_adamw``. Clipping is
    then folded into the update instead of a pass of its own over every gradient."""
    inner_optimizer(optimizer).grad_scale = divisor


def clear_fused_grad_divisor(optimizer: Any) -> None:
    """Undo ``set_fused_grad_divisor`` after the step (the slot must not scale the next one)."""
    inner = inner_optimizer(optimizer)
    if "grad_scale" in vars(inner):
        del inner.grad_scale


def swap_module_class(module: Any, cls: type) -> None:
    """Give ``module`` the behaviour of ``cls``, a subclass of its class that adds no state (a faster forward),
    keeping the module object, its place in the model and its hooks: an assignment to ``__class__``."""
    if not issubclass(cls, type(module)):
        raise TypeError(f"{cls.__name__} is not a subclass of {type(module).__name__}")
    module.__class__ = cls


def replace_forward(model: Any, forward: Callable[..., Any]) -> None:
    """Make ``model(...)`` call ``forward(model, ...)``: ``nn.Module.__call__`` looks ``forward`` up on the
    instance first. The class, its weights and ``save_pretrained`` are unchanged."""
    import types

    model.forward = types.MethodType(forward, model)


def unremove_pipeline_task(task: str) -> bool:
    """Take ``task`` off transformers 5's ``pipelines.REMOVED_TASKS`` (which makes ``pipeline(task)`` raise,
    pointing elsewhere) so that it can be registered again. False when that transformers does not list it."""
    from transformers import pipelines

    removed = getattr(pipelines, "REMOVED_TASKS", {})
    if task not in removed:
        return False
    removed.pop(task)
    return True
