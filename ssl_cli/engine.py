"""The one training engine. This is the only module that imports Accelerate.

Contract (the same on a laptop CPU, one or eight GPUs, or a TPU, under
``accelerate launch`` or plain ``python``):

* ``accelerator.accumulate`` does gradient accumulation; an optimizer step is
  counted only when ``sync_gradients`` is true.
* Mixed precision, device placement and DDP/FSDP/DeepSpeed come from
  Accelerate; ``auto`` precision picks bf16 where the hardware runs it fast.
* Evaluation pads across processes and uses ``gather_for_metrics``, and
  carries each feature's index, so nothing is counted twice or out of order.
* A checkpoint holds model, optimizer, scheduler, every process's RNG state
  and the data position (epoch, batches done); it is written to a temporary
  directory and renamed into place, so a crash never leaves half a checkpoint.
  Batch order is a pure function of (seed, epoch), so ``--resume`` continues
  mid-epoch with exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import ctypes
import itertools
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ssl_cli.allocator import active_allocator
from ssl_cli.collate import MicroBatches, MicroBatchingCollator, cpu_pass_overhead_tokens
from ssl_cli.compat import (
    clear_fused_grad_divisor,
    foreach_norm,
    inner_optimizer,
    set_fused_grad_divisor,
)
from ssl_cli.durability import failpoint, truncate_log, write_manifest
from ssl_cli.errors import UserError, write_failure
from ssl_cli.packing import SequencePacker, batch_counts, model_inputs, packing_position_offset
from ssl_cli.sampling import BatchSampler, sorted_eval_order

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


@dataclass
class TrainResult:
    metrics: dict[str, float]
    state: TrainState


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


def compile_plugin(training: Any) -> Any:
    """Accelerate's torch.compile settings when ``training.torch_compile`` is on, else None.

    Regional compilation compiles one encoder layer and reuses it for the
    others, which cuts compile time roughly by the number of layers; shapes
    are left dynamic so length-grouped batches do not recompile per length.
    """
    if not training.torch_compile:
        return None
    from accelerate.utils import TorchDynamoPlugin

    return TorchDynamoPlugin(backend="inductor", mode=training.torch_compile_mode, dynamic=True,
                             use_regional_compilation=True)


def replays_cuda_graphs(training: Any, device: Any) -> bool:
    """Whether the compiled model replays CUDA graphs: torch.compile's reduce-overhead and max-autotune modes on a GPU.

    A replay writes its outputs into the same memory every time. PyTorch must
    be told where a step begins, or a replay may overwrite outputs still in
    use; measured on an H200 (finetune-glue and tag-pos, reduce-overhead),
    training stopped at once with "accessing tensor output of CUDAGraphs
    that has been overwritten by a subsequent run".
    """
    return bool(training.torch_compile and training.torch_compile_mode in ("reduce-overhead", "max-autotune")
                and getattr(device, "type", None) == "cuda")


def _glibc() -> Any:
    if sys.platform != "linux":
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def tune_cpu_allocator() -> Any:
    """Keep freed memory in glibc's heap instead of returning it to the OS.

    Activations of tens of MB are allocated and freed every step; by default
    glibc serves the largest with mmap and unmaps them on free, so every step
    pays page faults again (20-27% of CPU time measured at seq 384 here).
    One arena instead of one per thread: freed activations are then reusable
    by whichever thread allocates next, which cut peak RSS by 7% (MiniLM,
    seq 384, changing batch shapes). ``HeapTrimmer`` hands the memory back
    after batches that leave a lot of it free. Returns the glibc handle it
    tuned, or None off glibc.
    """
    libc = _glibc()
    if libc is None:
        return None
    m_trim_threshold, m_mmap_threshold, m_arena_max = -1, -3, -8
    libc.mallopt(m_mmap_threshold, 1 << 30)
    libc.mallopt(m_trim_threshold, (1 << 31) - 1)
    libc.mallopt(m_arena_max, 1)
    return libc


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


class HeapTrimmer:
    """Hand free heap memory back to the OS after a batch, when there is enough of it to matter.

    Batch shapes change every step, which fragments the heap; trimming after
    each batch cut MiniLM's peak RSS by 12% at seq 384. The page faults it
    causes cost 13% there, and 43% on the demo's tiny model, whose steps free
    little memory. So it trims only when glibc holds at least ``min_free_mb``
    of free heap (``mallinfo2``; without it, after every batch).
    Packed MLM/CLM blocks are different (``steady_shapes``, set by the task):
    each step reuses exactly what the one before freed, and trimming it after
    every batch only moved pages out and faulted them back in, 19% of the
    speed of a BERT-mini MLM run (benchmarks/README.md). Within a run of one
    shape it then trims only when the free heap grows by ``min_free_mb`` over
    the least a batch left. (Applied to QA's runs of full-length windows, the
    same rule raised MiniLM's peak RSS by about 30 MB in single-worker checks;
    QA's memory target is tight, so other tasks keep the first rule.)
    """

    def __init__(self, libc: Any, min_free_mb: int = 256) -> None:
        self.libc = libc
        self.min_free = min_free_mb << 20
        self.mallinfo2 = getattr(libc, "mallinfo2", None)
        if self.mallinfo2 is not None:
            self.mallinfo2.restype = _MallInfo2
        self.trims = 0
        self.steady_shapes = False  # set per run: batches come in runs of one shape (packed blocks)
        self.shape: tuple[int, ...] | None = None  # the last batch's shape
        self.floor: int | None = None  # the least free heap after a batch of that shape since the last trim

    def after_batch(self, shape: tuple[int, ...] | None = None) -> None:
        """``shape``: the batch's input shape; a batch shaped like the one before reuses the heap that one freed."""
        if self.mallinfo2 is None:
            self._trim()
            return
        free = self.mallinfo2().fordblks
        if not self.steady_shapes or shape is None or shape != self.shape:  # what the last step freed may not fit
            self.shape, self.floor = shape, free
            if free >= self.min_free:
                self._trim()
            return
        if self.floor is None:  # the first batch after a trim: what one step of this shape leaves free
            self.floor = free
            return
        self.floor = min(self.floor, free)
        if free - self.floor >= self.min_free:
            self._trim()

    def _trim(self) -> None:
        self.libc.malloc_trim(0)
        self.trims += 1
        self.floor = None


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports KiB, macOS bytes)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1 << 20) if sys.platform == "darwin" else peak / 1024, 1)


def dataset_memory_mb(smaps: Path = Path("/proc/self/smaps")) -> dict[str, float]:
    """This process's share of the memory-mapped Arrow files (``datasets``' cache) holding its features.

    ``mapped``: their resident pages, which live in the OS page cache and are
    shared by every process that maps the same file; ``copied``: the pages of
    those maps this process wrote to (copy-on-write), the only ones that would
    be its own copy of the data. Empty where /proc is not there (not Linux).
    """
    if not smaps.exists():
        return {}
    mapped = copied = 0
    in_arrow = False
    for line in smaps.read_text().splitlines():
        key, _, rest = line.partition(" ")
        if not key.endswith(":"):  # a mapping's header: range perms offset dev inode [path]
            in_arrow = line.rstrip().endswith(".arrow")
        elif in_arrow and key == "Rss:":
            mapped += int(rest.split()[0])
        elif in_arrow and key == "Private_Dirty:":
            copied += int(rest.split()[0])
    return {"mapped": mapped / 1024, "copied": copied / 1024}


def avoid_cudnn_attention_plans(device: Any) -> None:
    """On CUDA, keep PyTorch's attention off its cuDNN backend, which builds a new plan for every new shape.

    Dynamic padding gives nearly every batch its own length. Measured on an
    H200 (bert-base QA steps, batches of 12, lengths 64-384): 140-160 ms a
    step while the lengths were new to cuDNN, 41 ms once each had been seen;
    with the cuDNN backend off (flash / memory-efficient kernels), 44 ms
    whatever the length. Batches of one shape (packed text blocks) keep it:
    there it was the faster backend (bert-base MLM 1.35x, CLM 1.15x).
    """
    import torch

    if device.type == "cuda" and hasattr(torch.backends.cuda, "enable_cudnn_sdp"):
        torch.backends.cuda.enable_cudnn_sdp(False)


def launched_on_cpu_only() -> bool:
    """Several processes (``accelerate launch``/torchrun) on a machine with no GPU or TPU.

    Measured here: ``accelerate launch --multi_gpu --num_processes 2`` starts two
    workers on a CPU-only machine, but an ``Accelerator()`` in each reports
    ``DistributedType.NO`` and they would train as two independent runs. With
    ``cpu=True`` they join one gloo process group (MULTI_CPU).
    """
    import importlib.util

    import torch

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    return world_size > 1 and not torch.cuda.is_available() and importlib.util.find_spec("torch_xla") is None


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


def _is_normalisation(module: Any) -> bool:
    """torch's LayerNorm/GroupNorm/BatchNorm family, and models' own (T5LayerNorm, LlamaRMSNorm...)."""
    import torch

    nn = torch.nn
    norms = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm,
             nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d,
             *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()))  # RMSNorm: torch 2.4 on
    return isinstance(module, norms) or type(module).__name__.endswith(("LayerNorm", "RMSNorm", "GroupNorm"))


def _shares(sizes: list[Any]) -> list[Any]:
    """Each size over their sum (ints, or device tensors left unread); a single size is the whole: 1.0."""
    if len(sizes) == 1:
        return [1.0]
    total = sum(sizes)
    total = total.clamp(min=1) if hasattr(total, "clamp") else max(1, total)
    return [size / total for size in sizes]


def non_embedding_parameters(model: Any) -> int:
    """Parameters outside the input embeddings (the ones every token's compute runs through)."""
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    skip = {id(p) for p in embeddings.parameters()} if embeddings is not None else set()
    return sum(p.numel() for p in model.parameters() if id(p) not in skip)


def gradient_norm(grads: list[Any]) -> Any:
    """The global L2 norm of ``grads`` (a tensor), as ``clip_grad_norm_`` computes it.

    On CPU, float32: from BLAS dot products, 2.2x faster than the per-tensor
    ``vector_norm`` that ``get_total_norm`` runs there (14 vs 31 ms for
    bert-base's 91M gradients), both reading each gradient once in float32.
    Elsewhere, where every gradient shares one device and dtype: one
    ``_foreach_norm``, what ``get_total_norm`` runs after sorting the tensors
    into device/dtype groups in Python, which took 5% of a small model's
    host-bound training loop on a GPU (py-spy, MiniLM tag-pos on an H200).
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

    Measured on the QA bench (MiniLM, seq 384): the first optimizer step of the
    foreach implementation sets the run's peak RSS; fused takes 110 MB off it.
    CPU and CUDA have the kernel; elsewhere (XLA, MPS on older torch) foreach stays.
    """
    return getattr(device, "type", str(device)) in ("cpu", "cuda")


def available_trackers(requested: list[str]) -> list[str]:
    """Trackers that are installed; an unknown name is an error, a missing package is skipped."""
    import importlib.util

    packages = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow", "comet_ml": "comet_ml",
                "aim": "aim", "clearml": "clearml"}
    chosen = []
    for name in requested:
        if name in ("none", "", None):
            continue
        if name not in packages:
            raise UserError(f"unknown tracker '{name}' in report_to; choose from {', '.join(packages)} or none")
        if importlib.util.find_spec(packages[name]) is not None:
            chosen.append(name)
    return chosen


class Engine:
    """Owns the Accelerator: device, precision, processes, training, evaluation, checkpoints."""

    def __init__(self, training: Any, output_dir: Path) -> None:
        from accelerate import Accelerator
        from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, set_seed

        self.cfg = training
        self.output_dir = Path(output_dir)
        self.mixed_precision = resolve_mixed_precision(training.mixed_precision)
        self.trackers = available_trackers(training.report_to)
        self.accelerator = Accelerator(
            cpu=launched_on_cpu_only(),
            mixed_precision=self.mixed_precision,
            dynamo_plugin=compile_plugin(training),
            gradient_accumulation_steps=training.gradient_accumulation_steps,
            log_with=self.trackers or None,
            project_config=ProjectConfiguration(project_dir=str(self.output_dir), logging_dir=str(self.output_dir / "runs")),
            # batches go to a GPU from pinned memory without waiting for the step in flight (see train)
            dataloader_config=DataLoaderConfiguration(non_blocking=True),
        )
        if training.torch_threads:
            import torch

            torch.set_num_threads(training.torch_threads)
        self.allocator = active_allocator()
        on_glibc = self.accelerator.device.type == "cpu" and self.allocator == "glibc"
        libc = tune_cpu_allocator() if on_glibc else None  # tcmalloc (ssl preloads it when installed) needs neither
        self._heap = HeapTrimmer(libc) if libc is not None and training.trim_cpu_memory else None
        self.current_step = 0  # the optimizer step training is at (evaluation failpoints name it)
        self._pending_losses: list[Any] = []  # batch losses on the device, not read yet (_flush_losses)
        self._grad_norm: Any = None  # the last step's gradient norm before clipping, read only when logged
        self._trainable: tuple[Any, list[Any]] | None = None  # (model, its trainable parameters): _trainable_parameters
        self._cuda_graphs = replays_cuda_graphs(training, self.accelerator.device)
        set_seed(training.seed)

    # ------------------------------------------------------------------ facts

    @property
    def is_main_process(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def num_processes(self) -> int:
        return self.accelerator.num_processes

    @property
    def device(self) -> Any:
        return self.accelerator.device

    @property
    def needs_static_shapes(self) -> bool:
        """XLA (TPU) recompiles for every new shape: pad to one fixed length there."""
        return self.accelerator.distributed_type.name == "XLA"

    @property
    def splits_padded_batches(self) -> bool:
        """Whether training batches run as length-sorted micro-batches (``training.padding_microbatches``).

        auto: on CPU only. An accelerator's matmuls want large batches, and its
        pass overhead in tokens is unmeasured here, so splitting stays opt-in there.
        """
        return self._on_cpu_by_default(self.cfg.padding_microbatches)

    def _on_cpu_by_default(self, setting: str | bool) -> bool:
        """An auto|true|false lever that reshapes batches: auto on CPU only, never with static shapes (TPU)."""
        if self.needs_static_shapes or setting is False:
            return False
        return setting is True or self.device.type == "cpu"

    def describe(self) -> dict[str, Any]:
        return {
            "num_processes": self.num_processes,
            "distributed_type": self.accelerator.distributed_type.name,
            "device": str(self.device),
            "mixed_precision": self.mixed_precision,
            "allocator": self.allocator,
        }

    def main_process_first(self):
        """Let the main process build caches (tokenised data, scratch tokenizer) before the others read them."""
        return self.accelerator.main_process_first()

    def wait(self) -> None:
        self.accelerator.wait_for_everyone()

    def unwrap(self, model: Any) -> Any:
        """The plain model, without distributed, precision or torch.compile wrappers (what gets saved)."""
        return self.accelerator.unwrap_model(model, keep_torch_compile=False)

    def print(self, *args: Any) -> None:
        if self.is_main_process:
            from rich.console import Console

            Console(stderr=True, highlight=False, soft_wrap=True).print(*args)

    def end(self) -> None:
        self.accelerator.end_training()

    # ------------------------------------------------------------------ training

    def train(
        self,
        model: Any,
        dataset: Any,
        collate_fn: Callable[[list[dict[str, Any]]], dict[str, Any]],
        lengths: list[int] | None,
        evaluate: Callable[[Any], dict[str, float]] | None,
        metric_name: str,
        greater_is_better: bool,
        tracker_config: dict[str, Any],
        resume_from: Path | None = None,
        labels_per_batch: float | None = None,
        steady_shapes: bool = False,
        packable: bool = False,
        token_count: Callable[[dict[str, Any]], Any] | None = None,
        fingerprint: dict[str, Any] | None = None,
    ) -> TrainResult:
        """Train ``model`` on ``dataset``; ``evaluate(model)`` returns eval metrics (with ``eval_`` keys).

        ``labels_per_batch``: for per-token losses, the mean count of labelled
        tokens in a batch. Each batch's mean loss is then scaled by its own count
        over that mean, so every token weighs the same over an epoch. Without it,
        length-grouped batches of short sentences would weigh each of their
        tokens many times more than batches of long ones (measured on UD
        English POS with grouping: 1.4 points of accuracy lost; this weighting
        won back 0.4 of them).

        ``steady_shapes``: the batches all have one shape (packed blocks); see ``HeapTrimmer``.

        ``token_count(batch)``: for a loss that is a mean over the batch's
        predicted tokens (MLM, CLM), their count. On several processes each
        process's mean is then weighed by its share of the global batch's
        tokens (one small all-reduce per step), so the averaged gradient is
        that of the mean over all the global batch's tokens, as on one process
        (Trainer's ``average_tokens_across_devices``). Without it, a process
        whose blocks drew fewer masks would weigh each of them more.

        ``packable``: the task's sequences can share a row (``Task.packable``):
        batches are then packed (``ssl_cli.packing``) when
        ``training.pack_sequences`` and the model allow it, instead of split.

        ``lengths`` None: ``dataset`` is a stream (``datasets.IterableDataset``)
        with no length. Training then runs ``max_steps`` steps, passing over the
        stream as often as that takes (``set_epoch`` reshuffles each pass), and a
        resumed pass skips the examples already trained on in the stream itself,
        before collation: they never reach the model.

        ``fingerprint``: stored in every checkpoint, for ``--resume`` to compare (``ssl_cli.output_dir``).
        """
        import torch
        from torch.utils.data import DataLoader
        from transformers import get_scheduler

        cfg, acc = self.cfg, self.accelerator
        if self._heap is not None:
            self._heap.steady_shapes = steady_shapes
        streamed = lengths is None
        if not steady_shapes:
            avoid_cudnn_attention_plans(self.device)
        packer = self._sequence_packer(model, collate_fn, dataset) if packable and not streamed else None
        if packer is not None:
            collate_fn = packer
            self.print(f"training on packed rows (training.pack_sequences; position offset {packer.position_offset})")
        elif self.splits_padded_batches:
            overhead = cfg.microbatch_pass_overhead
            if overhead is None:
                overhead = cpu_pass_overhead_tokens(non_embedding_parameters(model))
            collate_fn = MicroBatchingCollator(collate_fn, overhead)
        if streamed and not cfg.max_steps:
            raise UserError("a streamed dataset has no length: set training.max_steps (--max-steps N)")
        # A private generator: iter(DataLoader) draws a worker seed from it. From the global RNG,
        # that draw would shift dropout after ``--resume`` and break exact continuation.
        loader_rng = torch.Generator().manual_seed(cfg.seed)
        sampler = None if streamed else BatchSampler(
            lengths, cfg.per_device_train_batch_size, seed=cfg.seed, shuffle=True, group_by_length=cfg.group_by_length
        )
        optimizer = torch.optim.AdamW(
            parameter_groups(model, cfg.weight_decay), lr=cfg.learning_rate, betas=(cfg.adam_beta1, cfg.adam_beta2),
            eps=cfg.adam_epsilon, fused=fused_adamw_supported(acc.device),
        )
        model, optimizer = acc.prepare(model, optimizer)
        if streamed:
            loader = None
            total_steps, epochs = cfg.max_steps, itertools.count()
        else:
            loader = acc.prepare(DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_fn,
                                            pin_memory=acc.device.type == "cuda",
                                            num_workers=cfg.dataloader_num_workers, generator=loader_rng))
            steps_per_epoch = max(1, math.ceil(len(loader) / cfg.gradient_accumulation_steps))
            total_steps = cfg.max_steps or max(1, math.ceil(cfg.num_train_epochs * steps_per_epoch))
            epochs = range(math.ceil(total_steps / steps_per_epoch))
        warmup = cfg.warmup_steps if cfg.warmup_steps is not None else math.ceil(cfg.warmup_ratio * total_steps)
        # A prepared scheduler steps once per process per optimizer step, hence the factor.
        scheduler = get_scheduler(
            cfg.lr_scheduler_type, optimizer, num_warmup_steps=warmup * acc.num_processes,
            num_training_steps=total_steps * acc.num_processes,
        )
        scheduler = acc.prepare(scheduler)

        state = TrainState()
        if self.is_main_process:
            remove_half_written(self.output_dir)
        if resume_from is not None:
            state = self._load_checkpoint(resume_from)
            if self.is_main_process:
                truncate_log(self.output_dir / LOG_FILE, state.global_step)
            self.print(f"resumed from {resume_from} at step {state.global_step} (epoch {state.epoch}, batch {state.batches_in_epoch})")
        state.fingerprint = fingerprint
        if self.trackers:
            acc.init_trackers("ssl", config=tracker_config)
        log = _JsonLog(self.output_dir / LOG_FILE, self.is_main_process)
        progress = _Progress(total_steps, state.global_step, enabled=self.is_main_process)
        global_batch = cfg.per_device_train_batch_size * acc.num_processes
        start_time, start_step, start_examples = time.perf_counter(), state.global_step, state.examples_seen
        stop = state.global_step >= total_steps
        tokens_seen = 0  # real (unpadded) tokens of this session, for train_tokens_per_second
        tokens_computed = passes = batches_run = rows_run = 0  # padded tokens computed, passes, batches, rows

        model.train()
        with progress:
            for epoch in epochs:
                if epoch < state.epoch:
                    continue
                if stop:
                    break
                state.epoch = epoch
                if hasattr(collate_fn, "set_epoch"):  # per-epoch masks (MLM), drawn before the loader starts
                    collate_fn.set_epoch(epoch)
                if streamed:
                    epoch_loader = self._stream_loader(dataset, epoch, state.batches_in_epoch, collate_fn, loader_rng)
                else:
                    sampler.use_epoch(epoch)
                    epoch_loader = loader
                    if state.batches_in_epoch:
                        epoch_loader = acc.skip_first_batches(loader, state.batches_in_epoch)
                batches_before = state.batches_in_epoch
                for batch in epoch_loader:
                    parts = batch if isinstance(batch, MicroBatches) else [batch]
                    with acc.accumulate(model):
                        batch_loss = self._backward(model, parts, labels_per_batch, token_count)
                        if acc.sync_gradients and cfg.max_grad_norm:
                            self._grad_norm = self._clip_gradients(model, optimizer, cfg.max_grad_norm)
                        optimizer.step()
                        clear_fused_grad_divisor(optimizer)
                        scheduler.step()
                        optimizer.zero_grad(set_to_none=True)
                    state.batches_in_epoch += 1
                    if self._heap is not None:
                        shape = tuple(parts[0]["input_ids"].shape) if len(parts) == 1 and "input_ids" in parts[0] else None
                        self._heap.after_batch(shape)
                    for examples, real, computed in map(batch_counts, parts):
                        state.examples_seen += examples * acc.num_processes
                        tokens_seen = tokens_seen + real * acc.num_processes  # a tensor: read at the end
                        tokens_computed += computed * acc.num_processes
                    rows_run += sum(len(part["input_ids"]) for part in parts if "input_ids" in part)
                    passes, batches_run = passes + len(parts), batches_run + 1
                    self._pending_losses.append(batch_loss)
                    if not acc.sync_gradients:
                        continue
                    state.global_step += 1
                    self.current_step = state.global_step
                    failpoint("step", state.global_step)
                    elapsed = time.perf_counter() - start_time
                    rate = (state.examples_seen - start_examples) / max(elapsed, 1e-9)
                    if state.global_step % cfg.logging_steps == 0 or state.global_step == total_steps:
                        mean_loss = self._close_loss_window(state)
                        record = {"step": state.global_step, "epoch": round(_epochs_done(state, loader), 4),
                                  "loss": mean_loss, "learning_rate": scheduler.get_last_lr()[0],
                                  "examples_per_second": rate}
                        if self._grad_norm is not None:
                            record["grad_norm"] = float(self._grad_norm)  # the last step's, as Trainer logs it
                        log.write(record)
                        if self.trackers:
                            acc.log({"train/loss": mean_loss, "train/learning_rate": record["learning_rate"]}, step=state.global_step)
                        progress.update(state.global_step, mean_loss, record["learning_rate"], rate)
                    else:
                        progress.update(state.global_step, None, None, rate)
                    if cfg.eval_strategy == "steps" and evaluate and state.global_step % (cfg.eval_steps or 1) == 0:
                        stop |= self._evaluate(model, evaluate, state, metric_name, greater_is_better, log)
                    if cfg.save_strategy == "steps" and state.global_step % (cfg.save_steps or 1) == 0:
                        self._save_checkpoint(state, metric_name)
                        failpoint("saved", state.global_step)
                    if state.global_step >= total_steps:
                        stop = True
                    if stop:
                        break
                else:
                    if streamed and batches_before == 0 and state.batches_in_epoch == 0:
                        raise UserError("the training stream gave no batch: it has no text left (check the data, "
                                        "or text.streaming_validation_documents)")
                if streamed and stop or not streamed and state.batches_in_epoch < len(loader):
                    break  # stopped inside the epoch (max_steps, early stopping): the final evaluation follows
                # The epoch's last batch, also where it was the last step: its evaluation and checkpoint are due.
                state.epoch, state.batches_in_epoch = epoch + 1, 0
                if cfg.eval_strategy == "epoch" and evaluate:
                    stop |= self._evaluate(model, evaluate, state, metric_name, greater_is_better, log)
                if cfg.save_strategy == "epoch":
                    self._save_checkpoint(state, metric_name)
            self._finish(model, evaluate, state, metric_name, greater_is_better, log, _epochs_done(state, loader))
        self._flush_losses(state)
        if state.running_batches:
            self._close_loss_window(state)
        runtime = time.perf_counter() - start_time
        tokens_seen = int(tokens_seen)
        trained_steps = state.global_step - start_step
        if cfg.load_best_model_at_end and state.best_checkpoint and Path(state.best_checkpoint).is_dir():
            self._load_model_weights(model, Path(state.best_checkpoint))
            self.print(f"loaded the best model ({metric_name} = {state.best_metric:.4g}) from {state.best_checkpoint}")
        examples = state.examples_seen - start_examples
        metrics = {
            "train_loss": state.loss_sum / max(state.loss_count, 1),
            "train_runtime": runtime,
            "train_samples": state.examples_seen if streamed else len(dataset),
            "train_samples_per_second": examples / max(runtime, 1e-9),
            "train_tokens_per_second": tokens_seen / max(runtime, 1e-9),
            "train_steps_per_second": trained_steps / max(runtime, 1e-9),
            "train_padding_fraction": 1 - tokens_seen / tokens_computed if tokens_computed else 0.0,
            "train_passes_per_batch": passes / max(batches_run, 1),
            "train_examples_per_row": examples / max(rows_run * acc.num_processes, 1),
            "train_steps": state.global_step,
            "epoch": _epochs_done(state, loader),
            "global_batch_size": global_batch * cfg.gradient_accumulation_steps,
            "train_peak_rss_mb": peak_rss_mb(),
            **self._dataset_memory(),
            "train_heap_trims": self._heap.trims if self._heap is not None else 0,
        }
        self.model = model
        return TrainResult(metrics, state)

    def _dataset_memory(self) -> dict[str, float]:
        """``dataset_memory_mb`` as ``train_dataset_*_mb`` results: the largest figure over the processes."""
        import torch

        memory = dataset_memory_mb()
        if memory and self.num_processes > 1:
            local = torch.tensor([list(memory.values())], dtype=torch.float32, device=self.device)
            memory = dict(zip(memory, self.accelerator.gather(local).max(dim=0).values.tolist(), strict=True))
        return {f"train_dataset_{kind}_mb": round(mb, 3) for kind, mb in memory.items()}

    def _sequence_packer(self, model: Any, collate_fn: Any, dataset: Any) -> SequencePacker | None:
        """The packing collator (``training.pack_sequences``), if wanted here and the model passes the check."""
        setting = self.cfg.pack_sequences
        if not self._on_cpu_by_default(setting):
            return None
        offset = packing_position_offset(model, collate_fn, [dataset[i] for i in range(min(8, len(dataset)))])
        if offset is None:
            if setting is True:
                raise UserError(f"training.pack_sequences is true, but {type(model).__name__} does not give packed "
                                "sentences the outputs it gives them alone (it ignores a 4D attention mask or "
                                "position ids): set training.pack_sequences to auto or false")
            return None
        config = model.config
        positions = getattr(config, "max_position_embeddings", None) or 512
        return SequencePacker(collate_fn, offset, max_capacity=positions - offset,
                              hidden_size=getattr(config, "hidden_size", 768))

    def _clip_gradients(self, model: Any, optimizer: Any, max_norm: float) -> Any:
        """Clip the gradients' global norm to ``max_norm``; returns the norm before clipping (a tensor).

        ``clip_grad_norm_`` reads every gradient for the norm, then reads and
        writes every gradient again to scale it: 4% of a bert-base SST-2 step
        on CPU, where both passes are bound by memory. Fused AdamW can divide
        each gradient by a scale as it reads it (the slot ``GradScaler`` uses),
        so with a fused optimizer and no loss scaler the scaling pass is
        folded into the update: the same update, one pass fewer. Elsewhere
        (fp16's scaler, FSDP, DeepSpeed, XLA, foreach AdamW) Accelerate clips.
        """
        import torch

        acc, inner = self.accelerator, inner_optimizer(optimizer)
        foldable = (acc.scaler is None and inner.defaults.get("fused")
                    and acc.distributed_type.name in ("NO", "MULTI_CPU", "MULTI_GPU"))
        if not foldable:
            return acc.clip_grad_norm_(model.parameters(), max_norm)
        norm = gradient_norm([p.grad for p in self._trainable_parameters(model) if p.grad is not None])
        # clip_grad_norm_'s factor, min(1, max_norm / (norm + 1e-6)), as a divisor for the fused kernel
        set_fused_grad_divisor(optimizer, torch.clamp((norm + 1e-6) / max_norm, min=1.0))
        return norm

    def _begin_model_call(self) -> None:
        """Tell PyTorch a new step begins, where CUDA graphs replay (``replays_cuda_graphs``): the outputs of
        earlier calls are then done with, and a replay may reuse their memory."""
        if self._cuda_graphs:
            import torch

            torch.compiler.cudagraph_mark_step_begin()

    def _trainable_parameters(self, model: Any) -> list[Any]:
        """``model``'s parameters that train, listed once per model instead of every step.

        ``model.parameters()`` walks every submodule in Python: 4% of MiniLM
        tag-pos's host-bound training loop on a GPU (py-spy, H200).
        """
        if self._trainable is None or self._trainable[0] is not model:
            self._trainable = (model, [p for p in model.parameters() if p.requires_grad])
        return self._trainable[1]

    def _backward(self, model: Any, parts: list[dict[str, Any]], labels_per_batch: float | None,
                  token_count: Callable[[dict[str, Any]], Any] | None) -> Any:
        """Backward pass of one batch, given as one or more micro-batches; returns the batch's mean loss.

        Each part's loss is a mean over its own rows or tokens. Weighted by
        its share of the batch's, the parts' gradients add up to the whole
        batch's (see ``_loss_weights``). DDP syncs on the last part only. The
        loss comes back as a device tensor: reading it here would make the
        host wait for the device every step (see ``_flush_losses``).
        """
        from contextlib import nullcontext

        acc = self.accelerator
        shares, scales = self._loss_weights(parts, labels_per_batch, token_count)
        losses = []
        for i, (part, scale) in enumerate(zip(parts, scales, strict=True)):
            with acc.no_sync(model) if i < len(parts) - 1 else nullcontext():
                self._begin_model_call()
                loss = model(**model_inputs(part)).loss
                acc.backward(loss if scale is None else loss * scale)
            # kept until the next log line: a copy, where the loss may live in a CUDA graph's reused memory
            losses.append(loss.detach().float().clone() if self._cuda_graphs else loss.detach().float())
        if len(losses) == 1:
            return losses[0]
        return sum(loss * share for loss, share in zip(losses, shares, strict=True))

    def _loss_weights(self, parts: list[dict[str, Any]], labels_per_batch: float | None,
                      token_count: Callable[[dict[str, Any]], Any] | None) -> tuple[list[float], list[Any]]:
        """Per part: its share of the batch's loss (for the logged mean) and the factor on its loss (None: 1).

        A loss over labelled tokens (tag-pos) is weighted by labelled tokens
        (scaled by ``labels_per_batch``, see ``train``); a loss over predicted
        tokens (MLM, CLM) by their count, across processes when there are
        several; any other loss, a mean over examples, by rows.
        """
        acc = self.accelerator
        if labels_per_batch:
            labelled = [(part["labels"] != -100).sum() for part in parts]
            return _shares(labelled), [n / labels_per_batch for n in labelled]
        counts = [token_count(part) for part in parts] if token_count is not None else [None]
        if None not in counts and (acc.num_processes > 1 or len(parts) > 1):
            local = sum(counts)
            total = acc.reduce(local.detach().float().clone(), reduction="sum").clamp(min=1) \
                if acc.num_processes > 1 else local.float().clamp(min=1)
            return _shares(counts), [c.float() * acc.num_processes / total for c in counts]
        if len(parts) == 1:
            return [1.0], [None]
        rows = _shares([len(next(iter(part.values()))) for part in parts])
        return rows, rows

    def _flush_losses(self, state: TrainState) -> None:
        """Add the losses of the batches trained since the last flush to the loss window, reading them at once.

        Reading a loss (``.item()``) makes the host wait until the device has
        finished the step; read every step, it keeps an accelerator idle while
        the host prepares the next batch. They are read when a log line, an
        evaluation or a checkpoint needs them, in the order they were trained
        (the same sums as one at a time).
        """
        if not self._pending_losses:
            return
        import torch

        values = torch.stack(self._pending_losses).tolist()
        self._pending_losses.clear()
        for value in values:
            state.running_loss += value
            state.running_batches += 1
        if not all(map(math.isfinite, values)):  # the weights are now NaN too: never save, evaluate or return them
            checkpoints = list_checkpoints(self.output_dir)
            kept = f"; {checkpoints[-1]} is the last good checkpoint" if checkpoints else ""
            raise UserError(f"the training loss became {next(v for v in values if not math.isfinite(v))} by step "
                            f"{state.global_step}: training diverged. Lower --learning-rate, check the labels, or "
                            f"train in fp32 (--mixed-precision no){kept}")

    def _stream_loader(self, dataset: Any, epoch: int, skip_batches: int, collate_fn: Callable, generator: Any) -> Any:
        """One pass over a stream: reshuffled for ``epoch``, its first ``skip_batches`` global batches skipped."""
        from torch.utils.data import DataLoader

        cfg = self.cfg
        if skip_batches:
            dataset = dataset.skip(skip_batches * cfg.per_device_train_batch_size * self.accelerator.num_processes)
        loader = self.accelerator.prepare(DataLoader(dataset, batch_size=cfg.per_device_train_batch_size,
                                                     collate_fn=collate_fn, num_workers=cfg.dataloader_num_workers,
                                                     generator=generator))
        # The shuffle of this pass. On the prepared loader: a fresh one would set the stream's epoch back to 0 when
        # iterated, and a stream derived by skip() does not inherit its parent's epoch.
        loader.set_epoch(epoch)
        return _without_global_rng(loader)

    def _close_loss_window(self, state: TrainState) -> float:
        """The mean loss of the batches since the last log line (over processes), added to the run's total."""
        self._flush_losses(state)
        mean_loss = self._mean_across_processes(state.running_loss / max(state.running_batches, 1))
        state.loss_sum += mean_loss * state.running_batches
        state.loss_count += state.running_batches
        state.running_loss, state.running_batches = 0.0, 0
        return mean_loss

    def _mean_across_processes(self, value: float) -> float:
        if self.num_processes == 1:
            return value
        import torch

        tensor = torch.tensor([value], device=self.device)
        return float(self.accelerator.reduce(tensor, reduction="mean").item())

    def _finish(self, model, evaluate, state: TrainState, metric_name: str, greater: bool, log: _JsonLog,
                epochs_done: float) -> None:
        """Evaluate and checkpoint the final weights, unless the cadence just did, whatever ended training
        (epochs, ``max_steps``, early stopping, the end of a stream): the last weights always take part in
        best-model selection, and the newest checkpoint holds them."""
        if state.global_step == 0:
            return
        evaluated = state.eval_history and state.eval_history[-1]["step"] == state.global_step
        if evaluate and self.cfg.eval_strategy != "no" and not evaluated:
            self._evaluate(model, evaluate, state, metric_name, greater, log, round(epochs_done, 4))
        saved = (self.output_dir / f"{CHECKPOINT_PREFIX}{state.global_step}" / STATE_FILE).is_file()
        if self.cfg.save_strategy != "no" and not saved:
            self._save_checkpoint(state, metric_name)

    def _evaluate(self, model, evaluate, state: TrainState, metric_name: str, greater: bool, log: _JsonLog,
                  epoch: float | None = None) -> bool:
        """Run evaluation, track the best metric; True when early stopping says stop. ``epoch``: the passes
        done, where not the whole ones of ``state``."""
        self._flush_losses(state)  # a diverged run stops here, not with NaN metrics
        metrics = evaluate(model)
        model.train()
        record = {"step": state.global_step, "epoch": state.epoch if epoch is None else epoch, **metrics}
        state.eval_history.append(record)
        log.write(record)
        if self.trackers:
            self.accelerator.log({k.replace("eval_", "eval/", 1): v for k, v in metrics.items()
                                  if isinstance(v, (int, float))}, step=state.global_step)
        key = metric_name if metric_name in metrics else f"eval_{metric_name}"
        value = metrics.get(key)
        if value is None:
            raise UserError(f"metric_for_best_model '{metric_name}' is not among the eval metrics: {', '.join(metrics)}")
        improved = state.best_metric is None or (value > state.best_metric if greater else value < state.best_metric)
        if improved:
            state.best_metric = float(value)
            state.best_checkpoint = str(self.output_dir / f"{CHECKPOINT_PREFIX}{state.global_step}")
            state.evals_without_improvement = 0
        else:
            state.evals_without_improvement += 1
        patience = self.cfg.early_stopping_patience
        if patience and state.evals_without_improvement >= patience:
            self.print(f"early stopping: {metric_name} has not improved in {patience} evaluations")
            return True
        return False

    # ------------------------------------------------------------------ evaluation

    def predict(self, model: Any, dataset: Any, collate_fn: Callable, reduce: Callable[[Any, Any], dict[str, Any]],
                lengths: list[int], steady_shapes: bool = False) -> dict[str, np.ndarray]:
        """Model outputs for every feature, gathered from all processes, in dataset order.

        Outputs of shape (batch, length) are padded with -1e4 to the longest
        feature; the caller's post-processing only reads each feature's own length.
        """
        import torch
        from torch.utils.data import DataLoader

        acc = self.accelerator
        if not steady_shapes:  # the task's word, as for training: windows and sentences come in many lengths
            avoid_cudnn_attention_plans(self.device)
        batches = sorted_eval_order(lengths, self.cfg.per_device_eval_batch_size)
        loader = acc.prepare_data_loader(DataLoader(dataset, batch_sampler=batches, collate_fn=collate_fn))
        model.eval()
        rows: dict[str, list[np.ndarray | None]] = {}
        with torch.inference_mode():  # no autograd records and no version counters: cheaper than no_grad
            for batch in loader:
                index = batch.pop("feature_index")
                labels = batch.pop("labels", None)
                self._begin_model_call()
                reduced = reduce(model(**batch), labels)
                failpoint("evaluating", self.current_step)
                output_names = tuple(reduced)
                for name in output_names:
                    rows.setdefault(name, [None] * len(dataset))
                tensors = [reduced[name].float() for name in output_names]
                tensors = [acc.pad_across_processes(t, dim=1, pad_index=-1e4) if t.dim() > 1 else t for t in tensors]
                index, *tensors = acc.gather_for_metrics((index, *tensors))
                index = index.cpu().numpy()
                for name, tensor in zip(output_names, tensors, strict=True):
                    values = tensor.cpu().numpy()
                    for row, i in enumerate(index):
                        rows[name][int(i)] = values[row]
        return {name: _stack_padded(values) for name, values in rows.items()}

    # ------------------------------------------------------------------ checkpoints

    def _save_checkpoint(self, state: TrainState, metric_name: str) -> Path:
        """Write ``checkpoint-N`` atomically: save into a temp dir, then rename."""
        self._flush_losses(state)  # the loss window in progress travels with the checkpoint
        acc = self.accelerator
        final = self.output_dir / f"{CHECKPOINT_PREFIX}{state.global_step}"
        tmp = self.output_dir / f".{final.name}.tmp"
        if self.is_main_process and tmp.exists():
            shutil.rmtree(tmp)
        acc.wait_for_everyone()
        with _unwritten_checkpoint(tmp, final.name):
            acc.save_state(str(tmp))
        acc.wait_for_everyone()
        if self.is_main_process:
            with _unwritten_checkpoint(tmp, final.name):
                _write_json_atomic(tmp / STATE_FILE, asdict(state))
                failpoint("saving", state.global_step)
                write_manifest(tmp)
            if final.exists():
                discard_checkpoint(final)
            os.replace(tmp, final)
            self._rotate_checkpoints(state)
        acc.wait_for_everyone()
        return final

    def _rotate_checkpoints(self, state: TrainState) -> None:
        limit = self.cfg.save_total_limit
        if not limit:
            return
        checkpoints = list_checkpoints(self.output_dir)
        keep = set(checkpoints[-limit:])
        if state.best_checkpoint:
            keep.add(Path(state.best_checkpoint))
        for path in checkpoints:
            if path not in keep:
                discard_checkpoint(path)

    def _load_checkpoint(self, path: Path) -> TrainState:
        """Load a checkpoint ``ssl_cli.output_dir`` chose and verified against its manifest."""
        state_file = path / STATE_FILE
        self.accelerator.load_state(str(path))
        return TrainState(**json.loads(state_file.read_text()))

    def _load_model_weights(self, model: Any, checkpoint: Path) -> None:
        from safetensors.torch import load_file

        weights = checkpoint / "model.safetensors"
        if weights.is_file():
            self.unwrap(model).load_state_dict(load_file(str(weights), device="cpu"), strict=False)
            self.wait()


@contextmanager
def _unwritten_checkpoint(tmp: Path, name: str) -> Iterator[None]:
    """A checkpoint that cannot be written (full disk, quota, permissions) is one line; its partial files go,
    and the checkpoints already complete stay as they are."""
    try:
        yield
    except (OSError, RuntimeError) as err:
        reason = write_failure(err, tmp.parent)
        if reason is None:
            raise
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(f"cannot write {name} in {tmp.parent}: {reason}; the checkpoints before it are intact: "
                        "free space (or fix the permissions) and continue with --resume") from None


def _without_global_rng(loader: Any) -> Iterator[Any]:
    """``loader``'s batches, leaving torch's global RNG as it was.

    Accelerate rebuilds a stream's DataLoader without our private generator,
    and its first batch draws a worker seed from the global RNG: that draw
    would shift every later dropout mask of a resumed run.
    """
    import torch

    state = torch.get_rng_state()
    batches = iter(loader)
    first = next(batches, None)
    torch.set_rng_state(state)
    if first is not None:
        yield first
        yield from batches


def _epochs_done(state: TrainState, loader: Any) -> float:
    """Passes over the data so far, with the current one's fraction (whole passes only for a stream)."""
    if loader is None:
        return float(state.epoch)
    return state.epoch + state.batches_in_epoch / max(len(loader), 1)


DISCARDED_PREFIX = ".discarded-"


def discard_checkpoint(path: Path) -> None:
    """Delete a checkpoint so that a kill at any moment leaves it whole or gone: one atomic rename out of the
    ``checkpoint-N`` namespace first, then the slow recursive delete of the renamed copy."""
    doomed = path.with_name(f"{DISCARDED_PREFIX}{path.name}")
    if doomed.exists():
        shutil.rmtree(doomed, ignore_errors=True)
    os.replace(path, doomed)
    step = path.name.removeprefix(CHECKPOINT_PREFIX)
    failpoint("discarding", int(step) if step.isdigit() else -1)
    shutil.rmtree(doomed, ignore_errors=True)


def remove_half_written(output_dir: Path) -> None:
    """What a killed run left half done: checkpoints being written (``.checkpoint-N.tmp``) or deleted."""
    for pattern in (f".{CHECKPOINT_PREFIX}*.tmp", f"{DISCARDED_PREFIX}*"):
        for path in Path(output_dir).glob(pattern):
            shutil.rmtree(path, ignore_errors=True)


def list_checkpoints(output_dir: Path) -> list[Path]:
    """Complete checkpoints (with their state file), oldest step first."""
    found = []
    for path in Path(output_dir).glob(f"{CHECKPOINT_PREFIX}*"):
        suffix = path.name[len(CHECKPOINT_PREFIX):]
        if path.is_dir() and suffix.isdigit() and (path / STATE_FILE).is_file():
            found.append((int(suffix), path))
    return [p for _, p in sorted(found)]


def _stack_padded(rows: list[np.ndarray | None]) -> np.ndarray:
    missing = [i for i, r in enumerate(rows) if r is None]
    if missing:
        raise RuntimeError(f"evaluation produced no output for {len(missing)} features (e.g. #{missing[0]})")
    if rows and rows[0].ndim == 0:
        return np.asarray(rows)
    width = max(r.shape[0] for r in rows) if rows else 0
    out = np.full((len(rows), width, *rows[0].shape[1:]) if rows else (0, 0), -1e4, dtype=np.float32)
    for i, row in enumerate(rows):
        out[i, : row.shape[0]] = row
    return out


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False))
    os.replace(tmp, path)


class _JsonLog:
    """JSON lines of every logged step and evaluation (main process only)."""

    def __init__(self, path: Path, enabled: bool) -> None:
        self.path, self.enabled = path, enabled

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")


class _Progress:
    """Rich progress bar with loss, learning rate, examples/s and ETA (main process only)."""

    def __init__(self, total: int, completed: int, enabled: bool) -> None:
        self.enabled = enabled
        self.total, self.completed = total, completed
        self.loss: float | None = None
        self.lr: float | None = None
        self._progress: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[stats]}"),
                TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                console=Console(stderr=True), transient=False,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task("train", total=self.total, completed=self.completed, stats="")
        return self

    def update(self, step: int, loss: float | None, lr: float | None, rate: float) -> None:
        if not self._progress:
            return
        self.loss = loss if loss is not None else self.loss
        self.lr = lr if lr is not None else self.lr
        stats = f"loss {self.loss:.4f} lr {self.lr:.2e} " if self.loss is not None else ""
        self._progress.update(self._task, completed=step, stats=f"{stats}{rate:.1f} ex/s")

    def __exit__(self, *exc: Any) -> None:
        if self._progress:
            self._progress.__exit__(*exc)
