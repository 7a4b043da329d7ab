"""Device and precision policy: mixed precision, torch.compile, CUDA graphs, and CPU-only launches."""

from __future__ import annotations

import os
from typing import Any

from ssl_cli.errors import UserError

CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")  # torch.compile modes that replay CUDA graphs on a GPU


def resolve_mixed_precision(requested: str) -> str:
    """'auto' -> bf16 on a GPU that has it, else 'no'; fp16 only on GPUs. On CPUs, 'auto' is fp32 even with
    AVX512-BF16 or AMX: there bf16 autocast still trains slower than fp32 (docs/performance.md), so bf16 is asked
    for (``--mixed-precision bf16``), not chosen."""
    import torch

    on_gpu = torch.cuda.is_available()
    if requested == "fp16" and not on_gpu:
        raise UserError("mixed_precision fp16 needs a GPU; on CPU use --mixed-precision bf16 (or no)")
    if requested != "auto":
        return requested
    if os.environ.get("ACCELERATE_MIXED_PRECISION") not in (None, "", "no"):
        return os.environ["ACCELERATE_MIXED_PRECISION"]  # from `accelerate launch` / config
    if on_gpu:
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    return "no"


def cpu_bf16_matmul_speedup() -> float:
    """bf16 over fp32 matmul throughput on this CPU, measured at a BERT layer's FFN shape (tens of ms).

    The instruction sets do not tell: with AMX a bf16 matmul runs several times
    faster than fp32, with AVX512-BF16 alone it can run slower, and without
    either torch emulates it (RESULTS.md, "Ceiling and CPU levers"). Best of
    two timings of each, after one warm-up.
    """
    import time

    import torch

    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(512, 768, generator=generator), torch.randn(768, 3072, generator=generator)
    best = {}
    for dtype in (torch.float32, torch.bfloat16):
        left, right = a.to(dtype), b.to(dtype)
        left @ right
        timings = []
        for _ in range(2):
            start = time.perf_counter()
            left @ right
            timings.append(time.perf_counter() - start)
        best[dtype] = min(timings)
    return best[torch.float32] / max(best[torch.bfloat16], 1e-9)


def check_precision_plan(mixed_precision: str, distributed_type: str, device: Any, say: Any) -> None:
    """What the precision asked for cannot do here: bf16-weights where parameters are not plain ones (one line,
    ``master_weights``), and a note where a CPU's bf16 matmuls are slower than fp32's (it still saves memory)."""
    from ssl_cli.engine.master_weights import BF16_WEIGHTS, check_master_weights

    check_master_weights(mixed_precision, distributed_type)
    if getattr(device, "type", None) != "cpu" or mixed_precision not in ("bf16", BF16_WEIGHTS):
        return
    speedup = cpu_bf16_matmul_speedup()
    if speedup < 1.0:
        say(f"note: bf16 matmuls run at {speedup:.2g}x fp32's speed on this CPU (measured; a CPU with AMX runs them "
            f"several times faster): --mixed-precision {mixed_precision} saves memory here, not time; fp32 is "
            "--mixed-precision no")


def set_compute_modes(training: Any, device: Any) -> None:
    """CPU threads (``training.torch_threads``) and, on CUDA, TF32 for fp32 matmuls and convolutions
    (``training.tf32``; null: on). TF32 keeps fp32's range with a 10-bit mantissa, as bf16 autocast's
    accumulation does: Ampere and later GPUs run fp32 training several times faster with it, at no
    measurable cost to fine-tuning quality (the Trainer's ``--tf32``)."""
    import torch

    if training.torch_threads:
        torch.set_num_threads(training.torch_threads)
    if getattr(device, "type", None) == "cuda":
        precision = "ieee" if training.tf32 is False else "tf32"
        torch.backends.cuda.matmul.fp32_precision = precision
        torch.backends.cudnn.conv.fp32_precision = precision


def compile_plugin(training: Any) -> Any:
    """Accelerate's torch.compile settings when ``training.torch_compile`` is on, else None.

    Regional compilation compiles one encoder layer and reuses it for the
    others, which cuts compile time roughly by the number of layers; shapes
    are left dynamic so length-grouped batches do not recompile per length.
    Static token batches (``training.static_token_batches``) have one shape:
    there training compiles for it alone (PyTorch's automatic dynamic shapes,
    which evaluation's varying batches then turn on for themselves).
    """
    if not training.torch_compile:
        return None
    from accelerate.utils import TorchDynamoPlugin

    static = training.static_token_batches is True or (
        training.static_token_batches == "auto" and training.padding_free is True
        and training.torch_compile_mode in CUDA_GRAPH_MODES)  # auto's padding_free is off under torch.compile
    return TorchDynamoPlugin(backend="inductor", mode=training.torch_compile_mode, dynamic=None if static else True,
                             use_regional_compilation=True)


def replays_cuda_graphs(training: Any, device: Any) -> bool:
    """Whether the compiled model replays CUDA graphs: torch.compile's reduce-overhead and max-autotune modes on a GPU.

    A replay writes its outputs into the same memory every time. PyTorch must
    be told where a step begins, or a replay may overwrite outputs still in
    use: without it, training stops at once with "accessing tensor output of
    CUDAGraphs that has been overwritten by a subsequent run".
    """
    return bool(training.torch_compile and training.torch_compile_mode in CUDA_GRAPH_MODES
                and getattr(device, "type", None) == "cuda")


def avoid_cudnn_attention_plans(device: Any) -> None:
    """On CUDA, keep PyTorch's attention off its cuDNN backend, which builds a new plan for every new shape.

    Dynamic padding gives nearly every batch its own length, and a step pays
    for a new plan each time, while the flash and memory-efficient kernels
    cost the same whatever the length. Batches of one shape (packed text
    blocks) keep it: there it is the faster backend (docs/performance.md).
    """
    import torch

    if device.type == "cuda" and hasattr(torch.backends.cuda, "enable_cudnn_sdp"):
        torch.backends.cuda.enable_cudnn_sdp(False)


def launched_on_cpu_only() -> bool:
    """Several processes (``accelerate launch``/torchrun) on a machine with no GPU or TPU.

    ``accelerate launch --multi_gpu --num_processes 2`` starts two
    workers on a CPU-only machine, but an ``Accelerator()`` in each reports
    ``DistributedType.NO`` and they would train as two independent runs. With
    ``cpu=True`` they join one gloo process group (MULTI_CPU).
    """
    import importlib.util

    import torch

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    return world_size > 1 and not torch.cuda.is_available() and importlib.util.find_spec("torch_xla") is None


def check_distributed_plan(training: Any) -> None:
    """An ``accelerate launch`` config this machine cannot run is one line, never a silent fallback: Accelerate
    on a machine without GPUs would train FSDP and DeepSpeed configs as plain DDP (or fail deep in DeepSpeed)."""
    import importlib.util

    import torch

    on_gpu = torch.cuda.is_available() or importlib.util.find_spec("torch_xla") is not None
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true":
        if importlib.util.find_spec("deepspeed") is None:
            raise UserError("the accelerate config asks for DeepSpeed, which is not installed: pip install deepspeed "
                            "(it needs GPUs), or launch with recipes/accelerate/multi-gpu.yaml (DDP)")
        if not torch.cuda.is_available():
            raise UserError("the accelerate config asks for DeepSpeed, which needs CUDA GPUs, and this machine has "
                            "none: launch with recipes/accelerate/cpu-2proc.yaml on CPUs")
        _check_deepspeed_accumulation(training)
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true" and not on_gpu:
        raise UserError("the accelerate config asks for FSDP, which Accelerate runs on GPUs only (on this machine "
                        "it would train plain DDP): launch with recipes/accelerate/cpu-2proc.yaml on CPUs")


def _check_deepspeed_accumulation(training: Any) -> None:
    """DeepSpeed accumulates by its own config's count: a different one would silently change the batch."""
    steps = os.environ.get("ACCELERATE_GRADIENT_ACCUMULATION_STEPS")
    if steps not in (None, "", "auto") and int(steps) != training.gradient_accumulation_steps:
        raise UserError(f"the DeepSpeed config accumulates {steps} steps, the recipe "
                        f"{training.gradient_accumulation_steps}: make them equal (--gradient-accumulation-steps)")
    stage = os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE")
    if stage not in (None, "") and stage not in ("0", "1", "2", "3"):
        raise UserError(f"the DeepSpeed config's zero_stage is {stage}: use 0, 1, 2 or 3")
