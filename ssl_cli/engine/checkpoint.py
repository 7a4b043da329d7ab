"""Checkpoints on disk: listed, discarded atomically, half-written ones removed, JSON written atomically."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ssl_cli.durability import failpoint
from ssl_cli.engine.state import CHECKPOINT_PREFIX, STATE_FILE
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
