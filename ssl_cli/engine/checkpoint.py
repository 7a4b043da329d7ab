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
    def is_main_process(self) -> bool:
        return self.accelerator.is_main_process

    def save(self, state: TrainState) -> Path:
        """Write ``checkpoint-N`` atomically: save into a temp dir, then rename; then rotate."""
        acc = self.accelerator
        final = self.output_dir / f"{CHECKPOINT_PREFIX}{state.global_step}"
        tmp = self.output_dir / f".{final.name}.tmp"
        if self.is_main_process and tmp.exists():
            shutil.rmtree(tmp)
        acc.wait_for_everyone()
        with unwritten_checkpoint(tmp, final.name):
            acc.save_state(str(tmp))
        acc.wait_for_everyone()
        if self.is_main_process:
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

    def load_weights(self, model: Any, checkpoint: Path) -> None:
        """The checkpoint's weights into ``model`` (unwrapped), on every process."""
        from safetensors.torch import load_file

        weights = checkpoint / "model.safetensors"
        if weights.is_file():
            model.load_state_dict(load_file(str(weights), device="cpu"), strict=False)
            self.accelerator.wait_for_everyone()
