"""The training loop (``Engine``): the Accelerate contract, with the other engine modules as its collaborators.

Contract (the same on a laptop CPU, one or eight GPUs, or a TPU, under
``accelerate launch`` or plain ``python``):

* ``accelerator.accumulate`` does gradient accumulation; an optimizer step is
  counted only when ``sync_gradients`` is true.
* Mixed precision, device placement and DDP/FSDP/DeepSpeed come from
  Accelerate; ``auto`` precision picks bf16 on GPUs that have it (``devices``).
* Evaluation pads across processes and uses ``gather_for_metrics``, and
  carries each feature's index, so nothing is counted twice or out of order.
* A checkpoint holds model, optimizer, scheduler, every process's RNG state
  and the data position (epoch, batches done); it is written to a temporary
  directory and renamed into place, so a crash never leaves half a checkpoint.
  Batch order is a pure function of (seed, epoch), so ``--resume`` continues
  mid-epoch with exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ssl_cli.allocator import active_allocator
from ssl_cli.collate import MicroBatches, MicroBatchingCollator, cpu_pass_overhead_tokens
from ssl_cli.compat import (
    clear_fused_grad_divisor,
    inner_optimizer,
    set_fused_grad_divisor,
)
from ssl_cli.durability import failpoint, truncate_log
from ssl_cli.engine.checkpoint import (
    Checkpointer,
    list_checkpoints,
    remove_half_written,
)
from ssl_cli.engine.cpu import HeapTrimmer, dataset_memory_mb, peak_rss_mb, tune_cpu_allocator
from ssl_cli.engine.devices import (
    avoid_cudnn_attention_plans,
    compile_plugin,
    launched_on_cpu_only,
    replays_cuda_graphs,
    resolve_mixed_precision,
)
from ssl_cli.engine.evaluate import predict
from ssl_cli.engine.logging import JsonLog, Progress, available_trackers
from ssl_cli.engine.optim import fused_adamw_supported, gradient_norm, non_embedding_parameters, parameter_groups
from ssl_cli.engine.state import CHECKPOINT_PREFIX, LOG_FILE, STATE_FILE, TrainResult, TrainState
from ssl_cli.errors import UserError
from ssl_cli.packing import SequencePacker, batch_counts, model_inputs, packing_position_offset
from ssl_cli.sampling import BatchSampler


def _shares(sizes: list[Any]) -> list[Any]:
    """Each size over their sum (ints, or device tensors left unread); a single size is the whole: 1.0."""
    if len(sizes) == 1:
        return [1.0]
    total = sum(sizes)
    total = total.clamp(min=1) if hasattr(total, "clamp") else max(1, total)
    return [size / total for size in sizes]


@dataclass
class _Plan:
    """What ``Engine.train`` runs: the prepared objects, and how long."""

    model: Any
    optimizer: Any
    scheduler: Any
    loader: Any  # None for a stream
    sampler: BatchSampler | None
    loader_rng: Any
    collate_fn: Callable
    total_steps: int
    epochs: Any  # range, or itertools.count() for a stream
    streamed: bool


@dataclass
class _Counts:
    """This session's throughput (not checkpointed): real tokens (a device tensor, read at the end), padded tokens
    computed, forward passes, batches and rows, from when training started."""

    start_time: float
    start_step: int
    start_examples: int
    tokens_seen: Any = 0
    tokens_computed: int = 0
    passes: int = 0
    batches: int = 0
    rows: int = 0

    def add(self, parts: list[dict[str, Any]], num_processes: int) -> int:
        """Count one batch (its micro-batches ``parts``); the examples it trained, over every process."""
        examples_seen = 0
        for examples, real, computed in map(batch_counts, parts):
            examples_seen += examples * num_processes
            self.tokens_seen = self.tokens_seen + real * num_processes
            self.tokens_computed += computed * num_processes
        self.rows += sum(len(part["input_ids"]) for part in parts if "input_ids" in part)
        self.passes, self.batches = self.passes + len(parts), self.batches + 1
        return examples_seen


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
        self.checkpoints = Checkpointer(self.accelerator, training, self.output_dir)
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

    def prepare_model(self, model: Any) -> Any:
        """``model`` on this run's devices and precision, for evaluation without training."""
        return self.accelerator.prepare(model)

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
        cfg, acc = self.cfg, self.accelerator
        if self._heap is not None:
            self._heap.steady_shapes = steady_shapes
        if not steady_shapes:
            avoid_cudnn_attention_plans(self.device)
        plan = self._plan(model, dataset, self._training_collator(model, collate_fn, dataset, packable, lengths), lengths)
        model = plan.model
        state = self._start_state(resume_from, fingerprint)
        if self.trackers:
            acc.init_trackers("ssl", config=tracker_config)
        log = JsonLog(self.output_dir / LOG_FILE, self.is_main_process)
        progress = Progress(plan.total_steps, state.global_step, enabled=self.is_main_process)
        counts = _Counts(time.perf_counter(), state.global_step, state.examples_seen)
        stop = state.global_step >= plan.total_steps
        evaluating = (lambda: self._evaluate(model, evaluate, state, metric_name, greater_is_better, log)) \
            if evaluate else None

        model.train()
        with progress:
            for epoch in plan.epochs:
                if epoch < state.epoch:
                    continue
                if stop:
                    break
                state.epoch = epoch
                batches_before = state.batches_in_epoch
                for batch in self._epoch_batches(plan, dataset, epoch, state):
                    parts = batch if isinstance(batch, MicroBatches) else [batch]
                    self._pending_losses.append(self._accumulate(plan, parts, labels_per_batch, token_count))
                    state.batches_in_epoch += 1
                    if self._heap is not None:
                        shape = tuple(parts[0]["input_ids"].shape) if len(parts) == 1 and "input_ids" in parts[0] else None
                        self._heap.after_batch(shape)
                    state.examples_seen += counts.add(parts, acc.num_processes)
                    if not acc.sync_gradients:
                        continue
                    stop |= self._after_step(plan, state, counts, log, progress, evaluating, metric_name)
                    if stop:
                        break
                else:
                    if plan.streamed and batches_before == 0 and state.batches_in_epoch == 0:
                        raise UserError("the training stream gave no batch: it has no text left (check the data, "
                                        "or text.streaming_validation_documents)")
                if plan.streamed and stop or not plan.streamed and state.batches_in_epoch < len(plan.loader):
                    break  # stopped inside the epoch (max_steps, early stopping): the final evaluation follows
                # The epoch's last batch, also where it was the last step: its evaluation and checkpoint are due.
                state.epoch, state.batches_in_epoch = epoch + 1, 0
                if cfg.eval_strategy == "epoch" and evaluating:
                    stop |= evaluating()
                if cfg.save_strategy == "epoch":
                    self._save_checkpoint(state, metric_name)
            self._finish(model, evaluate, state, metric_name, greater_is_better, log, _epochs_done(state, plan.loader))
        self._flush_losses(state)
        if state.running_batches:
            self._close_loss_window(state)
        runtime = time.perf_counter() - counts.start_time
        if cfg.load_best_model_at_end and state.best_checkpoint and Path(state.best_checkpoint).is_dir():
            self.checkpoints.load_weights(self.unwrap(model), Path(state.best_checkpoint))
            self.print(f"loaded the best model ({metric_name} = {state.best_metric:.4g}) from {state.best_checkpoint}")
        return TrainResult(model, self._train_metrics(plan, state, counts, runtime, dataset))

    def _training_collator(self, model: Any, collate_fn: Callable, dataset: Any, packable: bool,
                           lengths: list[int] | None) -> Callable:
        """The batch builder training runs: packed rows where the task and the model allow them, else micro-batches
        of similar lengths where padding would cost more than a pass, else ``collate_fn`` itself."""
        packer = self._sequence_packer(model, collate_fn, dataset) if packable and lengths is not None else None
        if packer is not None:
            self.print(f"training on packed rows (training.pack_sequences; position offset {packer.position_offset})")
            return packer
        if self.splits_padded_batches:
            overhead = self.cfg.microbatch_pass_overhead
            if overhead is None:
                overhead = cpu_pass_overhead_tokens(non_embedding_parameters(model))
            return MicroBatchingCollator(collate_fn, overhead)
        return collate_fn

    def _plan(self, model: Any, dataset: Any, collate_fn: Callable, lengths: list[int] | None) -> _Plan:
        """The prepared model, optimizer, scheduler and loader, and how many steps and epochs to run."""
        import torch
        from torch.utils.data import DataLoader
        from transformers import get_scheduler

        cfg, acc = self.cfg, self.accelerator
        streamed = lengths is None
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
        return _Plan(model, optimizer, acc.prepare(scheduler), loader, sampler, loader_rng, collate_fn, total_steps,
                     epochs, streamed)

    def _start_state(self, resume_from: Path | None, fingerprint: dict[str, Any] | None) -> TrainState:
        """A new state, or the checkpoint's (its log cut back to its step); half-written checkpoints go first."""
        state = TrainState()
        if self.is_main_process:
            remove_half_written(self.output_dir)
        if resume_from is not None:
            state = self.checkpoints.load(resume_from)
            if self.is_main_process:
                truncate_log(self.output_dir / LOG_FILE, state.global_step)
            self.print(f"resumed from {resume_from} at step {state.global_step} (epoch {state.epoch}, batch {state.batches_in_epoch})")
        state.fingerprint = fingerprint
        return state

    def _epoch_batches(self, plan: _Plan, dataset: Any, epoch: int, state: TrainState) -> Any:
        """The epoch's batches from where ``state`` left off (a resumed epoch skips those already trained on)."""
        if hasattr(plan.collate_fn, "set_epoch"):  # per-epoch masks (MLM), drawn before the loader starts
            plan.collate_fn.set_epoch(epoch)
        if plan.streamed:
            return self._stream_loader(dataset, epoch, state.batches_in_epoch, plan.collate_fn, plan.loader_rng)
        plan.sampler.use_epoch(epoch)
        if state.batches_in_epoch:
            return self.accelerator.skip_first_batches(plan.loader, state.batches_in_epoch)
        return plan.loader

    def _accumulate(self, plan: _Plan, parts: list[dict[str, Any]], labels_per_batch: float | None,
                    token_count: Callable[[dict[str, Any]], Any] | None) -> Any:
        """One batch's backward, and the optimizer step where accumulation completes one: the batch's loss."""
        cfg, acc = self.cfg, self.accelerator
        with acc.accumulate(plan.model):
            batch_loss = self._backward(plan.model, parts, labels_per_batch, token_count)
            if acc.sync_gradients and cfg.max_grad_norm:
                self._grad_norm = self._clip_gradients(plan.model, plan.optimizer, cfg.max_grad_norm)
            plan.optimizer.step()
            clear_fused_grad_divisor(plan.optimizer)
            plan.scheduler.step()
            plan.optimizer.zero_grad(set_to_none=True)
        return batch_loss

    def _after_step(self, plan: _Plan, state: TrainState, counts: _Counts, log: JsonLog, progress: Progress,
                    evaluating: Callable[[], bool] | None, metric_name: str) -> bool:
        """Count the optimizer step, then log, evaluate and checkpoint as the cadence says: whether to stop."""
        cfg, acc = self.cfg, self.accelerator
        state.global_step += 1
        self.current_step = state.global_step
        failpoint("step", state.global_step)
        rate = (state.examples_seen - counts.start_examples) / max(time.perf_counter() - counts.start_time, 1e-9)
        if state.global_step % cfg.logging_steps == 0 or state.global_step == plan.total_steps:
            mean_loss = self._close_loss_window(state)
            record = {"step": state.global_step, "epoch": round(_epochs_done(state, plan.loader), 4),
                      "loss": mean_loss, "learning_rate": plan.scheduler.get_last_lr()[0], "examples_per_second": rate}
            if self._grad_norm is not None:
                record["grad_norm"] = float(self._grad_norm)  # the last step's, as Trainer logs it
            log.write(record)
            if self.trackers:
                acc.log({"train/loss": mean_loss, "train/learning_rate": record["learning_rate"]}, step=state.global_step)
            progress.update(state.global_step, mean_loss, record["learning_rate"], rate)
        else:
            progress.update(state.global_step, None, None, rate)
        stop = False
        if cfg.eval_strategy == "steps" and evaluating and state.global_step % (cfg.eval_steps or 1) == 0:
            stop = evaluating()
        if cfg.save_strategy == "steps" and state.global_step % (cfg.save_steps or 1) == 0:
            self._save_checkpoint(state, metric_name)
            failpoint("saved", state.global_step)
        return stop or state.global_step >= plan.total_steps

    def _train_metrics(self, plan: _Plan, state: TrainState, counts: _Counts, runtime: float,
                       dataset: Any) -> dict[str, float]:
        """The train_* results of ``all_results.json``, Trainer's names first."""
        acc = self.accelerator
        tokens_seen = int(counts.tokens_seen)
        examples = state.examples_seen - counts.start_examples
        return {
            "train_loss": state.loss_sum / max(state.loss_count, 1),
            "train_runtime": runtime,
            "train_samples": state.examples_seen if plan.streamed else len(dataset),
            "train_samples_per_second": examples / max(runtime, 1e-9),
            "train_tokens_per_second": tokens_seen / max(runtime, 1e-9),
            "train_steps_per_second": (state.global_step - counts.start_step) / max(runtime, 1e-9),
            "train_padding_fraction": 1 - tokens_seen / counts.tokens_computed if counts.tokens_computed else 0.0,
            "train_passes_per_batch": counts.passes / max(counts.batches, 1),
            "train_examples_per_row": examples / max(counts.rows * acc.num_processes, 1),
            "train_steps": state.global_step,
            "epoch": _epochs_done(state, plan.loader),
            "global_batch_size": self.cfg.per_device_train_batch_size * acc.num_processes * self.cfg.gradient_accumulation_steps,
            "train_peak_rss_mb": peak_rss_mb(),
            **self._dataset_memory(),
            "train_heap_trims": self._heap.trims if self._heap is not None else 0,
        }

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

    def _finish(self, model, evaluate, state: TrainState, metric_name: str, greater: bool, log: JsonLog,
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

    def _evaluate(self, model, evaluate, state: TrainState, metric_name: str, greater: bool, log: JsonLog,
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
        """Model outputs for every feature, gathered from all processes, in dataset order (``evaluate.predict``)."""
        if not steady_shapes:  # the task's word, as for training: windows and sentences come in many lengths
            avoid_cudnn_attention_plans(self.device)

        def model_call(batch: dict[str, Any]) -> Any:
            self._begin_model_call()
            return model(**batch)

        return predict(self.accelerator, model, model_call, dataset, collate_fn, reduce, lengths,
                       self.cfg.per_device_eval_batch_size, lambda: failpoint("evaluating", self.current_step))

    # ------------------------------------------------------------------ checkpoints

    def _save_checkpoint(self, state: TrainState, metric_name: str) -> Path:
        """``checkpoint-N`` of this step, with the loss window in progress (it travels with the checkpoint)."""
        self._flush_losses(state)
        return self.checkpoints.save(state)


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


