"""What lets a run survive being killed at any moment.

- A checkpoint is written into a hidden temporary directory and renamed into
  place only once complete, so a kill mid-write leaves the previous checkpoint
  as the newest one ``--resume`` finds.
- Its ``manifest.json`` lists every file with its size and SHA-256; resuming
  verifies them, so a checkpoint damaged after the fact (a full disk, a bad
  copy, a partial rsync) is refused with a one-line error instead of loading
  garbage weights.
- On resume, log lines written after the checkpoint by the killed run are
  dropped, so the log reads as one uninterrupted run.
- ``SSL_FAILPOINT=name:step`` makes the process SIGKILL itself at a named
  point: how the kill tests hit "mid-write" or "during evaluation" exactly,
  with a real kill (no clean-up runs, as with ``kill -9`` or the OOM killer);
  ``SSL_FAILPOINT=oom_above:N`` makes batches of more than N rows run out of
  memory (``memory_failpoint``).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
from pathlib import Path
from typing import Any

from ssl_cli.errors import UserError

MANIFEST_FILE = "manifest.json"


def failpoint(name: str, step: int) -> None:
    """SIGKILL this process when ``SSL_FAILPOINT`` is ``name:step`` (a test hook; unset, it costs one lookup)."""
    spec = os.environ.get("SSL_FAILPOINT")
    if spec and spec == f"{name}:{step}":
        os.kill(os.getpid(), signal.SIGKILL)


def memory_failpoint(rows: int) -> None:
    """With ``SSL_FAILPOINT`` = ``oom_above:N``, a batch of more than N rows asks the allocator for a petabyte:
    a real out-of-memory error, as a full device raises it, for testing the batch-size search on a CPU."""
    spec = os.environ.get("SSL_FAILPOINT", "")
    if spec.startswith("oom_above:") and rows > int(spec.partition(":")[2]):
        import torch

        torch.empty(1 << 50, dtype=torch.uint8)


def sha256_of(path: Path) -> str:
    """The file's SHA-256, read in 1 MB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(directory: Path) -> None:
    """``manifest.json``: every file's size and SHA-256, each file flushed to disk first."""
    files: dict[str, Any] = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST_FILE):
        with path.open("rb") as handle:
            os.fsync(handle.fileno())
        files[path.relative_to(directory).as_posix()] = {"bytes": path.stat().st_size, "sha256": sha256_of(path)}
    target = directory / MANIFEST_FILE
    with target.open("w", encoding="utf-8") as handle:
        json.dump({"format": 1, "files": files}, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())


def verify_manifest(directory: Path) -> None:
    """Raise a one-line error naming the first missing, truncated or altered file. A checkpoint without a
    manifest cannot be verified (its weights may have been overwritten), so it is refused too."""
    manifest_path = directory / MANIFEST_FILE
    fix = (f"delete {directory} to resume from the checkpoint before it, or set training.resume_from_checkpoint "
           "to another one")
    if not manifest_path.is_file():
        raise UserError(f"checkpoint {directory} cannot be verified: it has no {MANIFEST_FILE} (written by an ssl "
                        f"older than manifests, or damaged); {fix}")
    try:
        files = json.loads(manifest_path.read_text(encoding="utf-8"))["files"]
    except (ValueError, KeyError, TypeError):
        raise UserError(f"checkpoint {directory} is corrupt: its {MANIFEST_FILE} is unreadable; {fix}") from None
    for name, expected in files.items():
        path = directory / name
        if not path.is_file():
            raise UserError(f"checkpoint {directory} is corrupt: {name} is missing; {fix}")
        size = path.stat().st_size
        if size != expected["bytes"]:
            raise UserError(f"checkpoint {directory} is corrupt: {name} has {size} bytes, not {expected['bytes']}; {fix}")
        if sha256_of(path) != expected["sha256"]:
            raise UserError(f"checkpoint {directory} is corrupt: {name} fails its SHA-256 check; {fix}")


def truncate_log(path: Path, last_step: int) -> None:
    """Keep the JSON-lines records up to ``last_step`` (a killed run may have logged past its last checkpoint)."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut short by the kill
        if record.get("step", 0) <= last_step:
            kept.append(line)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
    os.replace(temporary, path)
