"""Training batches: the collator training runs (packed rows, micro-batches or plain), and a stream's loader."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from ssl_cli.engine.collate import MicroBatchingCollator, cpu_pass_overhead_tokens
from ssl_cli.engine.optim import non_embedding_parameters
from ssl_cli.engine.packing import SequencePacker, packing_position_offset
from ssl_cli.engine.padding_free import (
    FlatteningCollator,
    PaddingFree,
    StaticTokenShape,
    flattenable,
    padding_free_position_offset,
)
from ssl_cli.engine.sampling import TokenBudgetSampler
from ssl_cli.errors import UserError


def batch_traits(traits: Any) -> tuple[bool, bool, str]:
    """(fixed shapes, packable, loss weighting) of a task's ``Traits``; a plain mean over rows without one."""
    if traits is None:
        return False, False, "rows"
    return traits.fixed_shapes, traits.packable, traits.loss_weighting


def training_collator(model: Any, collate_fn: Callable, dataset: Any, cfg: Any, packable: bool, streamed: bool,
                      reshapes: Callable[[Any], bool], say: Callable[[str], None], padding_free: bool) -> Callable:
    """The batch builder training runs: padding-free rows where wanted (``padding_free``: the run's
    ``training.padding_free`` on this device) and the model passes the check, else packed rows where the task and
    the model allow them, else micro-batches of similar lengths where padding would cost more than a pass, else
    ``collate_fn`` itself. ``reshapes(setting)`` says whether an auto|true|false CPU lever is on here."""
    if cfg.padding_free is True and (not padding_free or streamed):
        if cfg.static_token_batches is True:
            raise UserError("training.static_token_batches is true, but these training batches have one shape "
                            "already (fixed-length blocks) or cannot take one (a stream): set "
                            "training.static_token_batches to auto")
        say("training.padding_free is true, but these batches stay as they are: fixed-length blocks have no padding "
            "to remove, and a stream or a TPU's fixed shapes keep theirs")
    flattening = flattening_collator(model, collate_fn, dataset, cfg.padding_free) \
        if padding_free and not streamed else None
    if flattening is not None:
        say(f"training on padding-free rows (training.padding_free; position offset {flattening.position_offset})")
        return flattening
    packer = sequence_packer(model, collate_fn, dataset, cfg.pack_sequences, reshapes) \
        if packable and not streamed else None
    if packer is not None:
        say(f"training on packed rows (training.pack_sequences; position offset {packer.position_offset})")
        return packer
    if reshapes(cfg.padding_microbatches):
        overhead = cfg.microbatch_pass_overhead
        if overhead is None:
            overhead = cpu_pass_overhead_tokens(non_embedding_parameters(model))
        return MicroBatchingCollator(collate_fn, overhead)
    return collate_fn


def sequence_packer(model: Any, collate_fn: Any, dataset: Any, setting: Any,
                    reshapes: Callable[[Any], bool]) -> SequencePacker | None:
    """The packing collator (``training.pack_sequences``), if wanted here and the model passes the check."""
    if not reshapes(setting):
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


def wants_padding_free(setting: Any, device_type: str, static_shapes: bool, fixed_shapes: bool,
                       compiled: bool = False) -> bool:
    """``training.padding_free`` here: auto on accelerators (a CPU trains faster with its own levers) in eager mode
    (torch.compile over nested tensors is not verified on a GPU), never with static shapes (TPU) or batches that
    have no padding (packed blocks)."""
    if setting is False or static_shapes or fixed_shapes:
        return False
    return setting is True or (device_type != "cpu" and not compiled)


def flattening_collator(model: Any, collate_fn: Any, dataset: Any, setting: Any) -> FlatteningCollator | None:
    """``collate_fn`` made padding-free, with ``model`` switched to attend within each sequence, if the model gives
    padding-free rows the outputs it gives padded ones (``padding_free_position_offset``)."""
    if setting == "auto" and getattr(model, "is_gradient_checkpointing", False):
        return None  # recomputing nested-tensor attention in the backward pass is not verified on a GPU
    rows = [dataset[i] for i in range(min(8, len(dataset)))]
    if not flattenable(collate_fn, rows):
        if setting is True:
            raise UserError("training.padding_free is true, but this task's batches hold several sequences per row "
                            "(choices): set training.padding_free to auto or false")
        return None
    offset = padding_free_position_offset(model, collate_fn, rows)
    if offset is None:
        if setting is True:
            raise UserError(f"training.padding_free is true, but {type(model).__name__} does not give padding-free "
                            "rows the outputs it gives padded ones (its attention or positions ignore the sequence "
                            "boundaries): set training.padding_free to auto or false")
        return None
    return FlatteningCollator(collate_fn, offset, PaddingFree(model))


def static_token_batches(collate_fn: Any, sampler: Any, cfg: Any, replays_cuda_graphs: bool,
                         say: Callable[[str], None]) -> dict[str, Any]:
    """Give padding-free batches one shape (``StaticTokenShape``) where ``training.static_token_batches`` wants
    it (auto: where CUDA graphs replay, each new shape recording a graph); what all_results.json records of it."""
    setting = cfg.static_token_batches
    if not (setting is True or (setting == "auto" and replays_cuda_graphs)):
        return {}
    if not isinstance(collate_fn, FlatteningCollator) or not isinstance(sampler, TokenBudgetSampler):
        if setting is True:
            raise UserError("training.static_token_batches is true, but these training batches are not padding-free "
                            "token budgets (padding_free auto is off on CPU and under torch_compile): set "
                            "training.padding_free to true, or static_token_batches to auto")
        return {}
    shape = StaticTokenShape(sampler.most_tokens(), sampler.most_rows(), int(max(sampler.lengths)))
    collate_fn.shape = shape
    say(f"static token batches: every training batch is {shape.tokens} tokens in {shape.sequences} sequences "
        "(training.static_token_batches)")
    return {"static_token_batch_tokens": shape.tokens}


AUTO_GPU_WORKERS = 4  # per process: collation of a BERT-size batch takes a few ms of one core


def loader_options(cfg: Any, device_type: str, streamed: bool = False) -> dict[str, Any]:
    """The DataLoader's worker and memory keywords (``training.dataloader_*``). auto workers: on CUDA, up to
    ``AUTO_GPU_WORKERS`` per process, leaving each process a core of its own; none on CPU, where a worker takes
    a core from the step, and none for a stream, whose order one reader keeps."""
    import os

    workers = cfg.dataloader_num_workers
    if workers == "auto":
        workers = 0
        if device_type == "cuda" and not streamed:
            local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
            workers = max(0, min(AUTO_GPU_WORKERS, len(os.sched_getaffinity(0)) // local_processes - 1))
    options: dict[str, Any] = {"num_workers": workers, "pin_memory": device_type == "cuda" and cfg.dataloader_pin_memory}
    if workers:
        options["persistent_workers"] = cfg.dataloader_persistent_workers
        if cfg.dataloader_prefetch_factor:
            options["prefetch_factor"] = cfg.dataloader_prefetch_factor
    return options


def check_persistent_workers(cfg: Any, collate_fn: Any) -> None:
    """Persistent workers keep their copy of the collator: one whose masks change per epoch would repeat epoch 0's."""
    if cfg.dataloader_persistent_workers and hasattr(collate_fn, "set_epoch"):
        raise UserError("training.dataloader_persistent_workers would keep the workers' copy of this task's "
                        "collator, whose masks change every epoch: leave it off (--no-persistent-workers)")


def training_loader(accelerator: Any, cfg: Any, dataset: Any, sampler: Any, collate_fn: Callable,
                    generator: Any) -> Any:
    """The prepared training DataLoader of a dataset with lengths, its batches from ``sampler``."""
    from torch.utils.data import DataLoader

    check_persistent_workers(cfg, collate_fn)
    return accelerator.prepare(DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_fn, generator=generator,
                                          **loader_options(cfg, accelerator.device.type)))


def stream_loader(accelerator: Any, cfg: Any, dataset: Any, epoch: int, skip_batches: int, collate_fn: Callable,
                  generator: Any) -> Iterator[Any]:
    """One pass over a stream: reshuffled for ``epoch``, its first ``skip_batches`` global batches skipped."""
    from torch.utils.data import DataLoader

    if skip_batches:
        dataset = dataset.skip(skip_batches * cfg.per_device_train_batch_size * accelerator.num_processes)
    loader = accelerator.prepare(DataLoader(dataset, batch_size=cfg.per_device_train_batch_size, collate_fn=collate_fn,
                                            generator=generator, **loader_options(cfg, accelerator.device.type, True)))
    # The shuffle of this pass. On the prepared loader: a fresh one would set the stream's epoch back to 0 when
    # iterated, and a stream derived by skip() does not inherit its parent's epoch.
    loader.set_epoch(epoch)
    return without_global_rng(loader)


def without_global_rng(loader: Any) -> Iterator[Any]:
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
