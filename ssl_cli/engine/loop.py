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
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ssl_cli.allocator import active_allocator
from ssl_cli.compat import clear_fused_grad_divisor
from ssl_cli.engine import batching
from ssl_cli.engine.batch_size import choose_batch_size
from ssl_cli.engine.checkpoint import Checkpointer, remove_half_written
from ssl_cli.engine.collate import MicroBatches
from ssl_cli.engine.cpu import HeapTrimmer, tune_cpu_allocator
from ssl_cli.engine.devices import (
    avoid_cudnn_attention_plans,
    check_distributed_plan,
    check_precision_plan,
    compile_plugin,
    launched_on_cpu_only,
    replays_cuda_graphs,
    resolve_mixed_precision,
    set_compute_modes,
)
from ssl_cli.engine.durability import failpoint, truncate_log
from ssl_cli.engine.evaluate import predict, track_best
from ssl_cli.engine.logging import JsonLog, Progress, available_trackers, evaluations_left, start_trackers, tracker_settings
from ssl_cli.engine.loss import LossLog, accumulation_weights, loss_weights
from ssl_cli.engine.master_weights import BF16_WEIGHTS, MasterWeights
from ssl_cli.engine.optim import TrainableParameters, clip_gradients, make_optimizer
from ssl_cli.engine.packing import model_inputs
from ssl_cli.engine.profiling import StepProfiler
from ssl_cli.engine.sampling import BatchSampler, TokenBudgetSampler, training_sampler
from ssl_cli.engine.schedule import make_scheduler, step_on_metric, step_scheduler
from ssl_cli.engine.state import CHECKPOINT_PREFIX, LOG_FILE, STATE_FILE, TrainResult, TrainState, epochs_done
from ssl_cli.engine.throughput import Counts, train_metrics
from ssl_cli.errors import UserError


@dataclass
class _Plan:
    """What ``Engine.train`` runs: the prepared objects, and how long."""

    model: Any
    optimizer: Any
    scheduler: Any
    loader: Any  # None for a stream
    sampler: BatchSampler | TokenBudgetSampler | None
    loader_rng: Any
    collate_fn: Callable
    total_steps: int
    epochs: Any  # range, or itertools.count() for a stream
    streamed: bool


class Engine:
    """Owns the Accelerator: device, precision, processes, training, evaluation, checkpoints."""

    def __init__(self, training: Any, output_dir: Path) -> None:
        from accelerate import Accelerator
        from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, set_seed

        self.cfg = training
        self.output_dir = Path(output_dir)
        self._scheduler: Any = None  # the run's, for a schedule that steps on evaluation metrics
        self._progress: Progress | None = None  # the training's terminal view, while it trains
        self._profiler = StepProfiler(0, self.output_dir, False, None)  # training.profile_steps, while it trains
        check_distributed_plan(training)
        self.mixed_precision = resolve_mixed_precision(training.mixed_precision)
        self.trackers = available_trackers(training.report_to)
        self.accelerator = Accelerator(
            cpu=launched_on_cpu_only(),
            mixed_precision="no" if self.mixed_precision == BF16_WEIGHTS else self.mixed_precision,
            dynamo_plugin=compile_plugin(training),
            gradient_accumulation_steps=training.gradient_accumulation_steps,
            log_with=self.trackers or None,
            project_config=ProjectConfiguration(project_dir=str(self.output_dir), logging_dir=str(self.output_dir / "runs"),
                                                save_on_each_node=training.save_on_each_node),
            # batches go to a GPU from pinned memory without waiting for the step in flight (see train)
            dataloader_config=DataLoaderConfiguration(non_blocking=True),
        )
        check_precision_plan(self.mixed_precision, self.accelerator.distributed_type.name, self.device, self.print)
        self._bf16: MasterWeights | None = None  # bf16-weights' copies and masters, from training on
        set_compute_modes(training, self.accelerator.device)
        self.allocator = active_allocator()
        on_glibc = self.accelerator.device.type == "cpu" and self.allocator == "glibc"
        libc = tune_cpu_allocator() if on_glibc else None  # tcmalloc (ssl preloads it when installed) needs neither
        self._heap = HeapTrimmer(libc) if libc is not None and training.trim_cpu_memory else None
        self.current_step = 0  # the optimizer step training is at (evaluation failpoints name it)
        self._grad_norm: Any = None  # the last step's gradient norm before clipping, read only when logged
        self._trainable = TrainableParameters()
        self._window: Any = None  # loss.AccumulationWeights, while batches accumulate
        self._cuda_graphs = replays_cuda_graphs(training, self.accelerator.device)
        self.batch_size: dict[str, Any] = {}  # what batch_size.choose_batch_size settled
        self.when_training_runs: list[Callable[[], None]] = []  # called once, after the first optimizer step
        self.checkpoints = Checkpointer(self.accelerator, training, self.output_dir)
        self.losses = LossLog(self.accelerator, self.output_dir)  # read from the device only when needed
        set_seed(training.seed)

    # ------------------------------------------------------------------ facts

    @property
    def is_main_process(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def writes_files(self) -> bool:
        """Whether this process writes the output dir: the first process, or each machine's first with
        ``save_on_each_node`` (disks not shared)."""
        return self.checkpoints.writes_files

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

    def _on_cpu_by_default(self, setting: str | bool) -> bool:
        """An auto|true|false lever that reshapes batches: auto on CPU only, never with static shapes (TPU)."""
        if self.needs_static_shapes or setting is False:
            return False
        return setting is True or self.device.type == "cpu"

    def describe(self) -> dict[str, Any]:
        return {"num_processes": self.num_processes, "distributed_type": self.accelerator.distributed_type.name,
                "device": str(self.device), "mixed_precision": self.mixed_precision, "allocator": self.allocator,
                "dataloader_num_workers": batching.loader_options(self.cfg, self.device.type)["num_workers"]}

    def main_process_first(self):
        """Let the main process build caches (tokenised data, scratch tokenizer) before the others read them."""
        return self.accelerator.main_process_first()

    def wait(self) -> None:
        self.accelerator.wait_for_everyone()

    def prepare_model(self, model: Any) -> Any:
        """``model`` on this run's devices and precision, for evaluation without training."""
        return self.accelerator.prepare(model.bfloat16() if self.mixed_precision == BF16_WEIGHTS else model)

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
        traits: Any = None,
        fingerprint: dict[str, Any] | None = None,
    ) -> TrainResult:
        """Train ``model`` on ``dataset``; ``evaluate(model)`` returns eval metrics (with ``eval_`` keys).

        ``traits`` (``tasks.base.Traits``; None: the defaults) says what the batches are: ``fixed_shapes`` (one
        shape: see ``HeapTrimmer``), ``packable`` (sequences may share a row when ``training.pack_sequences``
        and the model allow it, ``ssl_cli.engine.packing``) and ``loss_weighting`` (what the loss is a mean over, so
        that micro-batches and processes weigh it as one batch on one process would, ``loss.py``).

        ``lengths`` None: ``dataset`` is a stream (``datasets.IterableDataset``)
        with no length. Training then runs ``max_steps`` steps, passing over the
        stream as often as that takes (``set_epoch`` reshuffles each pass), and a
        resumed pass skips the examples already trained on in the stream itself,
        before collation: they never reach the model.

        ``fingerprint``: stored in every checkpoint, for ``--resume`` to compare (``ssl_cli.output_dir``).
        """
        cfg, acc = self.cfg, self.accelerator
        steady_shapes, packable, loss_weighting = batching.batch_traits(traits)
        self._window = accumulation_weights(acc, loss_weighting)  # accumulated batches weighed as one batch
        if self._heap is not None:
            self._heap.steady_shapes = steady_shapes
        if not steady_shapes:
            avoid_cudnn_attention_plans(self.device)
        collate_fn = batching.training_collator(model, collate_fn, dataset, cfg, packable, lengths is None,
                                       self._on_cpu_by_default, self.print, batching.wants_padding_free(
                                           cfg.padding_free, self.device.type, self.needs_static_shapes, steady_shapes,
                                           cfg.torch_compile))
        plan = self._plan(model, dataset, collate_fn, lengths, greater_is_better, resume_from)
        model = plan.model
        state = self._start_state(resume_from, fingerprint)
        if self.trackers:
            start_trackers(acc, tracker_settings(cfg, self.output_dir, self.trackers), tracker_config)
        log = JsonLog(self.output_dir / LOG_FILE, self.writes_files)
        progress = Progress(plan.total_steps, state.global_step, self.is_main_process,
                            evaluations_left(cfg, plan.total_steps, len(plan.loader or ()), evaluate is not None))
        counts = Counts(time.perf_counter(), state.global_step, state.examples_seen)
        stop = state.global_step >= plan.total_steps
        self._scheduler = plan.scheduler
        evaluating = (lambda: self._evaluate(model, evaluate, state, metric_name, greater_is_better, log,
                                             round(epochs_done(state, plan.loader), 4))) if evaluate else None

        model.train()
        with progress, StepProfiler(cfg.profile_steps, self.output_dir, self.writes_files, self.device) as profiler:
            self._progress, self._profiler = progress, profiler
            for epoch in plan.epochs:
                if epoch < state.epoch:
                    continue
                if stop:
                    break
                state.epoch = epoch
                stop |= self._train_epoch(plan, dataset, epoch, state, counts, loss_weighting,
                                          lambda: self._after_step(plan, state, counts, log, progress, evaluating,
                                                                   metric_name))
                if plan.streamed and stop or not plan.streamed and state.batches_in_epoch < len(plan.loader):
                    break  # stopped inside the epoch (max_steps, early stopping): the final evaluation follows
                # The epoch's last batch, also where it was the last step: its evaluation and checkpoint are due.
                state.epoch, state.batches_in_epoch = epoch + 1, 0
                if cfg.eval_strategy == "epoch" and evaluating:
                    stop |= evaluating()
                if cfg.save_strategy == "epoch":
                    self._save_checkpoint(state, metric_name)
            self._finish(model, evaluate, state, metric_name, greater_is_better, log, epochs_done(state, plan.loader))
        self._progress = None
        if self._bf16 is not None:
            self._bf16.close()  # a plain fp32 model from here on; predictions still run on bf16 copies
        getattr(collate_fn, "restore", lambda: None)()  # a padding-free model attends as it did before training
        self.losses.flush(state)
        if state.running_batches:
            self.losses.close_window(state)
        runtime = time.perf_counter() - counts.start_time
        if cfg.load_best_model_at_end and state.best_checkpoint:
            self.print(self.checkpoints.load_best(self.unwrap(model), state, metric_name))
        samples = state.examples_seen if plan.streamed else len(dataset)
        trims = self._heap.trims if self._heap is not None else 0
        return TrainResult(model, {**train_metrics(acc, cfg, state, counts, runtime, samples,
                                                   epochs_done(state, plan.loader), trims), **self.batch_size})

    def _train_epoch(self, plan: _Plan, dataset: Any, epoch: int, state: TrainState, counts: Counts,
                     loss_weighting: str, after_step: Callable[[], bool]) -> bool:
        """One pass's batches from where ``state`` left off; True when a step says stop (``after_step``)."""
        acc = self.accelerator
        batches_before = state.batches_in_epoch
        for batch in self._epoch_batches(plan, dataset, epoch, state):
            parts = batch if isinstance(batch, MicroBatches) else [batch]
            self.losses.add(self._accumulate(plan, parts, loss_weighting))
            state.batches_in_epoch += 1
            if self._heap is not None:
                shape = tuple(parts[0]["input_ids"].shape) if len(parts) == 1 and "input_ids" in parts[0] else None
                self._heap.after_batch(shape)
            state.examples_seen += counts.add(parts, acc.num_processes)
            if acc.sync_gradients and after_step():
                return True
        if plan.streamed and batches_before == 0 and state.batches_in_epoch == 0:
            raise UserError("the training stream gave no batch: it has no text left (check the data, "
                            "or text.streaming_validation_documents)")
        return False

    def _plan(self, model: Any, dataset: Any, collate_fn: Callable, lengths: list[int] | None,
              greater_is_better: bool, resume_from: Path | None) -> _Plan:
        """The prepared model, optimizer, scheduler and loader, and how many steps and epochs to run."""
        import torch
        cfg, acc = self.cfg, self.accelerator
        streamed = lengths is None
        if streamed and not cfg.max_steps:
            raise UserError("a streamed dataset has no length: set training.max_steps (--max-steps N)")
        # A private generator: iter(DataLoader) draws a worker seed from it. From the global RNG,
        # that draw would shift dropout after ``--resume`` and break exact continuation.
        loader_rng = torch.Generator().manual_seed(cfg.seed)
        optimizer = make_optimizer(cfg, model, acc.device)
        model, optimizer = acc.prepare(model, optimizer)
        self._bf16 = MasterWeights(self.unwrap(model), acc) if self.mixed_precision == BF16_WEIGHTS else None
        self.batch_size = choose_batch_size(acc, cfg, model, optimizer, collate_fn, dataset, lengths, resume_from,
                                            self.print, self._bf16)
        sampler = None if streamed else training_sampler(cfg, lengths, acc.num_processes)
        self.batch_size.update(batching.static_token_batches(collate_fn, sampler, cfg, self._cuda_graphs, self.print))
        if streamed:
            loader = None
            total_steps, epochs = cfg.max_steps, itertools.count()
        else:
            loader = batching.training_loader(acc, cfg, dataset, sampler, collate_fn, loader_rng)
            steps_per_epoch = max(1, math.ceil(len(loader) / cfg.gradient_accumulation_steps))
            total_steps = cfg.max_steps or max(1, math.ceil(cfg.num_train_epochs * steps_per_epoch))
            epochs = range(math.ceil(total_steps / steps_per_epoch))
        warmup = cfg.warmup_steps if cfg.warmup_steps is not None else math.ceil(cfg.warmup_ratio * total_steps)
        # A prepared scheduler steps once per process per optimizer step, hence the factor.
        scheduler = make_scheduler(cfg, optimizer, warmup * acc.num_processes, total_steps * acc.num_processes,
                                   greater_is_better)
        return _Plan(model, optimizer, acc.prepare(scheduler), loader, sampler, loader_rng, collate_fn, total_steps,
                     epochs, streamed)

    def _start_state(self, resume_from: Path | None, fingerprint: dict[str, Any] | None) -> TrainState:
        """A new state, or the checkpoint's (its log cut back to its step); half-written checkpoints go first."""
        state = TrainState()
        if self.writes_files:
            remove_half_written(self.output_dir)
        if resume_from is not None:
            state = self.checkpoints.load(resume_from)
            if self.writes_files:
                truncate_log(self.output_dir / LOG_FILE, state.global_step)
            self.print(f"resumed from {resume_from} at step {state.global_step} (epoch {state.epoch}, batch {state.batches_in_epoch})")
        state.fingerprint = fingerprint
        state.train_batch_size, state.train_tokens = self.cfg.per_device_train_batch_size, self.cfg.per_device_train_tokens
        return state

    def _epoch_batches(self, plan: _Plan, dataset: Any, epoch: int, state: TrainState) -> Any:
        """The epoch's batches from where ``state`` left off (a resumed epoch skips those already trained on)."""
        if hasattr(plan.collate_fn, "set_epoch"):  # per-epoch masks (MLM), drawn before the loader starts
            plan.collate_fn.set_epoch(epoch)
        if plan.streamed:
            return batching.stream_loader(self.accelerator, self.cfg, dataset, epoch, state.batches_in_epoch, plan.collate_fn,
                                 plan.loader_rng)
        plan.sampler.use_epoch(epoch)
        if state.batches_in_epoch:
            return self.accelerator.skip_first_batches(plan.loader, state.batches_in_epoch)
        return plan.loader

    def _accumulate(self, plan: _Plan, parts: list[dict[str, Any]], loss_weighting: str) -> Any:
        """One batch's backward, and the optimizer step where accumulation completes one: the batch's loss."""
        cfg, acc = self.cfg, self.accelerator
        with acc.accumulate(plan.model):
            batch_loss = self._backward(plan.model, parts, loss_weighting)
            if acc.sync_gradients and self._bf16 is not None:
                self._bf16.finish()  # the window's gradients, in fp32
            if acc.sync_gradients and self._window is not None:
                self._window.finish(self._trainable(plan.model))
            if acc.sync_gradients and cfg.max_grad_norm:
                self._grad_norm = clip_gradients(acc, plan.model, plan.optimizer, cfg.max_grad_norm,
                                                 self._trainable(plan.model))
            plan.optimizer.step()
            clear_fused_grad_divisor(plan.optimizer)
            step_scheduler(plan.scheduler)
            plan.optimizer.zero_grad(set_to_none=True)
        return batch_loss

    def _after_step(self, plan: _Plan, state: TrainState, counts: Counts, log: JsonLog, progress: Progress,
                    evaluating: Callable[[], bool] | None, metric_name: str) -> bool:
        """Count the optimizer step, then log, evaluate and checkpoint as the cadence says: whether to stop."""
        cfg, acc = self.cfg, self.accelerator
        state.global_step += 1
        self.current_step = state.global_step
        while self.when_training_runs:
            self.when_training_runs.pop(0)()
        failpoint("step", state.global_step)
        self._profiler.step()
        rate = (state.examples_seen - counts.start_examples) / max(time.perf_counter() - counts.start_time, 1e-9)
        first = cfg.logging_first_step and state.global_step == 1
        if first or state.global_step % cfg.logging_steps == 0 or state.global_step == plan.total_steps:
            mean_loss = self.losses.close_window(state)
            record = {"step": state.global_step, "epoch": round(epochs_done(state, plan.loader), 4),
                      "loss": mean_loss, "learning_rate": plan.optimizer.param_groups[0]["lr"], "examples_per_second": rate}
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

    def _begin_model_call(self) -> None:
        """Where CUDA graphs replay (``replays_cuda_graphs``), tell PyTorch a step begins: a replay may reuse older outputs."""
        if self._cuda_graphs:
            import torch
            torch.compiler.cudagraph_mark_step_begin()

    def _backward(self, model: Any, parts: list[dict[str, Any]], loss_weighting: str) -> Any:
        """Backward pass of one batch, given as one or more micro-batches; returns the batch's mean loss.

        Each part's loss is a mean over its own rows or tokens. Weighted by
        its share of the batch's, the parts' gradients add up to the whole
        batch's (``loss.loss_weights``). DDP syncs on the last part only. The
        loss comes back as a device tensor: reading it here would make the
        host wait for the device every step (see ``_flush_losses``).
        """
        acc = self.accelerator
        shares, scales = self._window.weights(parts) if self._window is not None else \
            loss_weights(parts, loss_weighting, acc, equal_rows=not self.cfg.per_device_train_tokens)
        losses = []
        if self._bf16 is not None:
            self._bf16.enter()  # and its gradients reach the other processes through MasterWeights, not DDP
        for i, (part, scale) in enumerate(zip(parts, scales, strict=True)):
            with acc.no_sync(model) if i < len(parts) - 1 or self._bf16 is not None else nullcontext():
                self._begin_model_call()
                loss = model(**model_inputs(part)).loss
                acc.backward(loss if scale is None else loss * scale)
            # kept until the next log line: a copy, where the loss may live in a CUDA graph's reused memory
            losses.append(loss.detach().float().clone() if self._cuda_graphs else loss.detach().float())
        if len(losses) == 1:
            return losses[0]
        return sum(loss * share for loss, share in zip(losses, shares, strict=True))

    def _finish(self, model, evaluate, state: TrainState, metric_name: str, greater: bool, log: JsonLog,
                passes: float) -> None:
        """Evaluate and checkpoint the final weights, unless the cadence just did, whatever ended training
        (epochs, ``max_steps``, early stopping, the end of a stream): the last weights always take part in
        best-model selection, and the newest checkpoint holds them."""
        if state.global_step == 0:
            return
        evaluated = state.eval_history and state.eval_history[-1]["step"] == state.global_step
        if evaluate and self.cfg.eval_strategy != "no" and not evaluated:
            self._evaluate(model, evaluate, state, metric_name, greater, log, round(passes, 4))
        saved = (self.output_dir / f"{CHECKPOINT_PREFIX}{state.global_step}" / STATE_FILE).is_file()
        if self.cfg.save_strategy != "no" and not saved:
            self._save_checkpoint(state, metric_name)

    def _evaluate(self, model, evaluate, state: TrainState, metric_name: str, greater: bool, log: JsonLog,
                  epoch: float | None = None) -> bool:
        """Run evaluation, track the best metric; True when early stopping says stop. ``epoch``: the passes
        done, where not the whole ones of ``state``."""
        self.losses.flush(state)  # a diverged run stops here, not with NaN metrics
        metrics = evaluate(model)
        model.train()
        step_on_metric(self._scheduler, metrics, metric_name)
        record = {"step": state.global_step, "epoch": state.epoch if epoch is None else epoch, **metrics}
        if self._progress is not None:
            self._progress.scores(state.global_step, record["epoch"], metrics)
        state.eval_history.append(record)
        log.write(record)
        if self.trackers:
            self.accelerator.log({k.replace("eval_", "eval/", 1): v for k, v in metrics.items()
                                  if isinstance(v, (int, float))}, step=state.global_step)
        patience = self.cfg.early_stopping_patience
        checkpoint = str(self.output_dir / f"{CHECKPOINT_PREFIX}{state.global_step}")
        if track_best(state, metrics, metric_name, greater, checkpoint, patience):
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

        size = self.cfg.per_device_eval_batch_size
        progress = self._progress or Progress(0, 0, self.is_main_process)
        with progress.evaluating(math.ceil(len(lengths) / (size * self.accelerator.num_processes))) as advance, \
                self._bf16.computed() if self._bf16 is not None else nullcontext():
            return predict(self.accelerator, model, model_call, dataset, collate_fn, reduce, lengths, size,
                           lambda: (failpoint("evaluating", self.current_step), advance()),
                           {**batching.loader_options(self.cfg, self.device.type), "persistent_workers": False})

    # ------------------------------------------------------------------ checkpoints

    def _save_checkpoint(self, state: TrainState, metric_name: str) -> Path:
        """``checkpoint-N`` of this step, with the loss window in progress (it travels with the checkpoint)."""
        self.losses.flush(state)
        return self.checkpoints.save(state)
