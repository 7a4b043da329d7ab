"""Checkpoints on disk: written atomically and rotated (``Checkpointer``), listed, discarded atomically, half-written
ones removed, JSON written atomically."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ssl_cli.engine.durability import failpoint, write_manifest
from ssl_cli.engine.state import CHECKPOINT_PREFIX, STATE_FILE, TrainState
from ssl_cli.errors import UserError, write_failure


@contextmanager
def unwritten_checkpoint(tmp: Path, name: str) -> Iterator[None]:
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


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False))
    os.replace(tmp, path)


class Checkpointer:
    """Writes, rotates and loads one run's checkpoints: every process's Accelerate state (model, optimizer,
    scheduler, RNGs) plus the ``TrainState``, in a temporary directory renamed into place, so that a kill at any
    moment leaves the previous checkpoints complete."""

    def __init__(self, accelerator: Any, training: Any, output_dir: Path) -> None:
        self.accelerator = accelerator
        self.training = training
        self.output_dir = output_dir

    @property
    def writes_files(self) -> bool:
        """The first process writes checkpoints, or each machine's first with ``save_on_each_node``."""
        acc = self.accelerator
        return acc.is_local_main_process if self.training.save_on_each_node else acc.is_main_process

    def save(self, state: TrainState) -> Path:
        """Write ``checkpoint-N`` atomically: save into a temp dir, then rename; then rotate."""
        acc = self.accelerator
        final = self.output_dir / f"{CHECKPOINT_PREFIX}{state.global_step}"
        tmp = self.output_dir / f".{final.name}.tmp"
        if self.writes_files and tmp.exists():
            shutil.rmtree(tmp)
        acc.wait_for_everyone()
        with unwritten_checkpoint(tmp, final.name):
            acc.save_state(str(tmp))
        acc.wait_for_everyone()
        if self.writes_files:
            with unwritten_checkpoint(tmp, final.name):
                write_json_atomic(tmp / STATE_FILE, asdict(state))
                failpoint("saving", state.global_step)
                write_manifest(tmp)
            if final.exists():
                discard_checkpoint(final)
            os.replace(tmp, final)
            self.rotate(state)
        acc.wait_for_everyone()
        return final

    def rotate(self, state: TrainState) -> None:
        """Keep the newest ``save_total_limit`` checkpoints, and the best one."""
        limit = self.training.save_total_limit
        if not limit:
            return
        checkpoints = list_checkpoints(self.output_dir)
        keep = set(checkpoints[-limit:])
        if state.best_checkpoint:
            keep.add(Path(state.best_checkpoint))
        for path in checkpoints:
            if path not in keep:
                discard_checkpoint(path)

    def load(self, path: Path) -> TrainState:
        """Load a checkpoint ``ssl_cli.output_dir`` chose and verified against its manifest."""
        self.accelerator.load_state(str(path))
        return TrainState(**json.loads((path / STATE_FILE).read_text()))

    def save_model(self, model: Any, out: Path) -> None:
        """The final model in Hugging Face layout (unwrapped). transformers writes it on the global first process
        only; another machine's first process (``save_on_each_node``) writes it through Accelerate."""
        acc = self.accelerator
        if acc.is_main_process or hasattr(model, "peft_config"):  # peft writes the adapter on any process
            model.save_pretrained(str(out))
            return
        acc.save_model(model, str(out), safe_serialization=True)
        model.config.save_pretrained(str(out))
        if getattr(model, "generation_config", None) is not None and model.can_generate():
            model.generation_config.save_pretrained(str(out))

    def load_best(self, model: Any, state: TrainState, metric_name: str) -> str:
        """The best checkpoint's weights into ``model`` (unwrapped); the line that says what the model now is."""
        best = Path(state.best_checkpoint)
        if best.is_dir() and self.load_weights(model, best):
            return f"loaded the best model ({metric_name} = {state.best_metric:.4g}) from {best}"
        return (f"warning: the best checkpoint {best} holds no weights ssl can load: the model saved is the last "
                "step's, not the best")

    def load_weights(self, model: Any, checkpoint: Path) -> bool:
        """The checkpoint's weights into ``model`` (unwrapped), on every process; False when the checkpoint holds
        none in a form ssl reads (the caller says so: the model is then the last step's, never silently).

        A plain checkpoint has ``model.safetensors``. FSDP's sharded ones (``pytorch_model_fsdp_0``) and
        DeepSpeed's (``pytorch_model``) are loaded by Accelerate itself, optimizer and RNG states included:
        harmless once training is over."""
        from safetensors.torch import load_file

        weights = checkpoint / "model.safetensors"
        if weights.is_file():
            _missing, unexpected = model.load_state_dict(load_file(str(weights), device="cpu"), strict=False)
            if unexpected:  # strict=False only for the tied weights safetensors stores once
                raise UserError(f"the best checkpoint {checkpoint} holds weights this model lacks ({unexpected[0]}, "
                                "...): it belongs to another model; pass --no-load-best-model-at-end")
        elif any(checkpoint.glob("pytorch_model_fsdp_*")) or (checkpoint / "pytorch_model").is_dir():
            self.accelerator.load_state(str(checkpoint))
        else:
            return False
        self.accelerator.wait_for_everyone()
        return True
