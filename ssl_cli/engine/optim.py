"""The optimizer (``training.optim``) and its parameter groups, the gradient norm, and whether fused AdamW runs here."""

from __future__ import annotations

from typing import Any

from ssl_cli.compat import foreach_norm, inner_optimizer, set_fused_grad_divisor


def parameter_groups(model: Any, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: no weight decay on biases, gains and normalisation layers, found by what they are, not by
    name (GPT-2 calls its LayerNorms ``ln_1``, ``ln_2``, ``ln_f``; a name list decayed them): a parameter of a
    normalisation module, or one with fewer than two dimensions, as nanoGPT's ``p.dim() >= 2`` rule and
    Trainer's ``get_decay_parameter_names`` (LayerNorm modules and biases) both keep out."""
    in_norm_layers = {id(p) for module in model.modules() if _is_normalisation(module)
                      for p in module.parameters(recurse=False)}
    decay, no_decay = [], []
    for _, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.dim() < 2 or id(param) in in_norm_layers else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(cfg: Any, model: Any, device: Any) -> Any:
    """The recipe's optimizer over ``model``'s parameter groups, built as the Trainer builds its ``--optim`` of
    that name (``TrainingArguments.optim``): a recipe moved from run_glue.py's flags trains the same way."""
    import torch

    groups = parameter_groups(model, cfg.weight_decay)
    if cfg.optim in ("adamw_torch", "adamw_torch_fused"):
        return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=(cfg.adam_beta1, cfg.adam_beta2),
                                 eps=cfg.adam_epsilon, fused=fused_adamw_supported(device))
    if cfg.optim == "adafactor":
        from transformers.optimization import Adafactor

        return Adafactor(groups, lr=cfg.learning_rate, scale_parameter=False, relative_step=False)
    others = {"sgd": torch.optim.SGD, "adagrad": torch.optim.Adagrad, "rmsprop": torch.optim.RMSprop}
    return others[cfg.optim](groups, lr=cfg.learning_rate, **cfg.optim_args)  # checked against OPTIM_ARGS


def _is_normalisation(module: Any) -> bool:
    """torch's LayerNorm/GroupNorm/BatchNorm family, and models' own (T5LayerNorm, LlamaRMSNorm...)."""
    import torch

    nn = torch.nn
    norms = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm,
             nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d,
             *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()))  # RMSNorm: torch 2.4 on
    return isinstance(module, norms) or type(module).__name__.endswith(("LayerNorm", "RMSNorm", "GroupNorm"))


def non_embedding_parameters(model: Any) -> int:
    """Parameters outside the input embeddings (the ones every token's compute runs through)."""
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    skip = {id(p) for p in embeddings.parameters()} if embeddings is not None else set()
    return sum(p.numel() for p in model.parameters() if id(p) not in skip)


def gradient_norm(grads: list[Any]) -> Any:
    """The global L2 norm of ``grads`` (a tensor), as ``clip_grad_norm_`` computes it.

    On CPU, float32: from BLAS dot products, faster than the per-tensor
    ``vector_norm`` that ``get_total_norm`` runs there, both reading each
    gradient once in float32. Elsewhere, where every gradient shares one
    device and dtype: one ``_foreach_norm``, what ``get_total_norm`` runs
    after sorting the tensors into device/dtype groups in Python, a sort
    that shows in a small model's host-bound loop on a GPU
    (docs/performance.md).
    """
    import torch

    if not grads:
        return torch.nn.utils.get_total_norm(grads)
    first = grads[0]
    if all(g.device == first.device and g.dtype == first.dtype for g in grads):
        if first.device.type == "cpu" and first.dtype == torch.float32:
            return torch.stack([torch.dot(g.reshape(-1), g.reshape(-1)) for g in grads]).sum().sqrt()
        return torch.linalg.vector_norm(torch.stack(foreach_norm(grads)))
    return torch.nn.utils.get_total_norm(grads)


def fused_adamw_supported(device: Any) -> bool:
    """Fused AdamW updates each tensor in one kernel, without foreach's temporary copies.

    The first optimizer step of the foreach implementation sets a run's peak
    RSS; fused lowers it. CPU and CUDA have the kernel; elsewhere (XLA, MPS on
    older torch) foreach stays.
    """
    return getattr(device, "type", str(device)) in ("cpu", "cuda")


def clip_gradients(accelerator: Any, model: Any, optimizer: Any, max_norm: float, trainable: list[Any]) -> Any:
    """Clip the global norm of ``trainable``'s gradients to ``max_norm``; returns the norm before clipping (a tensor).

    ``clip_grad_norm_`` reads every gradient for the norm, then reads and
    writes every gradient again to scale it, two passes bound by memory on
    CPU. Fused AdamW can divide
    each gradient by a scale as it reads it (the slot ``GradScaler`` uses),
    so with a fused optimizer and no loss scaler the scaling pass is
    folded into the update: the same update, one pass fewer. Elsewhere
    (fp16's scaler, FSDP, DeepSpeed, XLA, foreach AdamW) Accelerate clips.
    """
    import torch

    acc, inner = accelerator, inner_optimizer(optimizer)
    foldable = (acc.scaler is None and inner.defaults.get("fused")
                and acc.distributed_type.name in ("NO", "MULTI_CPU", "MULTI_GPU"))
    if not foldable:
        return acc.clip_grad_norm_(model.parameters(), max_norm)
    norm = gradient_norm([p.grad for p in trainable if p.grad is not None])
    # clip_grad_norm_'s factor, min(1, max_norm / (norm + 1e-6)), as a divisor for the fused kernel
    set_fused_grad_divisor(optimizer, torch.clamp((norm + 1e-6) / max_norm, min=1.0))
    return norm


class TrainableParameters:
    """A model's parameters that train, listed once per model, not every step: ``model.parameters()`` walks
    every submodule in Python, which shows in a small model's host-bound training loop on a GPU."""

    def __init__(self) -> None:
        self.model: Any = None
        self.listed: list[Any] = []

    def __call__(self, model: Any) -> list[Any]:
        if model is not self.model:
            self.model, self.listed = model, [p for p in model.parameters() if p.requires_grad]
        return self.listed
