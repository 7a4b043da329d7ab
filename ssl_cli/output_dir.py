"""The output directory holds days of a user's training: what ``ssl`` may do to it, and when.

- Everything is checked before the directory is touched: the recipe, the
  model and the data are validated first, and only then is the directory
  created or, with ``--overwrite``, cleared (``claim``).
- ``--overwrite`` sets the old run aside (``.ssl-replaced/``, a rename) and
  deletes it only once the new run has made its first optimizer step: what
  fails while training is set up (no batch fits in memory, a setting refused
  for this model), or a Ctrl-C then, puts the old run back. A run killed
  before that point leaves it set aside; the next ``ssl`` on the directory
  puts it back.
- An output dir that is the model's directory, or holds it, is refused:
  ``--overwrite`` would delete the model it is about to load.
- One run at a time: the main process holds an exclusive ``flock`` on
  ``.ssl.lock`` inside the directory while it runs. A second run exits at
  once naming the first one's pid. The kernel drops the lock when a process
  dies, so a lock file left by a killed run locks nothing.
- ``--resume`` takes the newest checkpoint that verifies against its
  manifest and says which newer ones it skipped and why.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path
from typing import IO, Any

from ssl_cli.errors import UserError, note, write_failure

LOCK_FILE = ".ssl.lock"
REPLACED_DIR = ".ssl-replaced"  # the run that --overwrite replaces, until the new one trains
DISCARDED_DIR = ".ssl-replaced-discarded"  # a replaced run on its way out (renamed first: deleting takes time)


def check_output_dir(training: Any, model_name: str) -> Path | None:
    """Refuse what would lose data, before anything is written; return the checkpoint to resume from, if any."""
    out = Path(training.output_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"output_dir {out} is a file; pass a directory to --output-dir")
    _refuse_model_inside(out, model_name)
    _refuse_locked(out)
    _put_back_interrupted_overwrite(out)
    if training.resume_from_checkpoint:
        checkpoint = Path(training.resume_from_checkpoint)
        if not checkpoint.is_dir():
            raise UserError(f"checkpoint not found: {checkpoint} (check training.resume_from_checkpoint)")
        _verified(checkpoint)
        return checkpoint
    if training.resume:
        return newest_verified_checkpoint(out)
    if _user_files(out) and not training.overwrite:
        raise _not_empty(out)
    return None


def _not_empty(out: Path) -> UserError:
    return UserError(f"output_dir {out} is not empty: pass --overwrite to replace it, or --resume to continue its run")


def _refuse_model_inside(out: Path, model_name: str) -> None:
    model = Path(model_name).expanduser()
    if not model.is_dir():
        return
    model, target = model.resolve(), out.expanduser().resolve()
    if model == target or target in model.parents:
        what = "is the model's directory" if model == target else f"holds the model ({model})"
        raise UserError(f"output_dir {out} {what}: writing the run there would replace the model it loads; "
                        "pass another --output-dir")


def _refuse_locked(out: Path) -> None:
    """Fail at once, before any data is read, when another run holds the directory."""
    lock = out / LOCK_FILE
    if lock.is_file():
        _lock(lock, mode="r").close()  # read-only: a disk that turned read-only is told later, by ``claim``


def _lock(path: Path, mode: str = "a+") -> IO[str]:
    """An exclusive, non-blocking flock on ``path``; the open handle holds it until closed or the process ends."""
    handle = path.open(mode, encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise UserError(f"output_dir {path.parent} is in use by another ssl run (pid {holder}): wait for it to "
                        "finish, or pass another --output-dir") from None
    return handle


def _user_files(out: Path) -> list[Path]:
    return [child for child in out.iterdir() if child.name != LOCK_FILE] if out.is_dir() else []


def _remove(path: Path) -> None:
    shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()


def _put_back(out: Path) -> None:
    """The run set aside in ``out/.ssl-replaced`` back in place of what the replacing run wrote so far."""
    for child in _user_files(out):
        if child.name != REPLACED_DIR:
            _remove(child)
    for child in (out / REPLACED_DIR).iterdir():
        child.rename(out / child.name)
    (out / REPLACED_DIR).rmdir()


def _put_back_interrupted_overwrite(out: Path) -> None:
    """A run killed while it set up an ``--overwrite`` left the old run aside: restore it, under the lock."""
    if (out / DISCARDED_DIR).exists():  # killed while deleting a replaced run: the deletion goes on
        shutil.rmtree(out / DISCARDED_DIR, ignore_errors=True)
    if not (out / REPLACED_DIR).is_dir():
        return
    handle = _lock(out / LOCK_FILE)
    try:
        _put_back(out)
    finally:
        handle.close()
    note(f"put back the run in {out} that an interrupted --overwrite had set aside")


class OutputDirClaim:
    """The held lock of a claimed output directory (``claim``); released by ``release`` or by process exit.

    ``replaced``: where ``--overwrite`` set the old run aside, until ``discard_replaced`` (the new run trains)
    or ``put_back_replaced`` (it failed before that).
    """

    def __init__(self, handle: IO[str] | None, replaced: Path | None = None) -> None:
        self.handle = handle
        self.replaced = replaced

    def discard_replaced(self) -> None:
        if self.replaced is not None:
            discarded = self.replaced.with_name(DISCARDED_DIR)
            self.replaced.rename(discarded)
            self.replaced = None
            shutil.rmtree(discarded, ignore_errors=True)

    def put_back_replaced(self) -> None:
        if self.replaced is not None:
            out, self.replaced = self.replaced.parent, None
            _put_back(out)  # silently: the one line is the error that stopped the new run

    def release(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


def claim(training: Any, resuming: bool) -> OutputDirClaim:
    """Create the output dir, take its lock, and with ``--overwrite`` (not resuming) set its files aside in
    ``.ssl-replaced`` (renames, on the same disk), keeping the lock.

    Called once everything is validated. The emptiness check runs again under the lock: another run may
    have written the directory since ``check_output_dir``.
    """
    out = Path(training.output_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        handle = _lock(out / LOCK_FILE)
    except OSError as err:
        raise UserError(f"cannot write output_dir {out}: {write_failure(err, out)}; pass a writable --output-dir") from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        existing = [] if resuming else _user_files(out)
        if existing and not training.overwrite:
            raise _not_empty(out)
        replaced = _set_aside(out, existing) if existing else None
    except BaseException:
        handle.close()
        raise
    return OutputDirClaim(handle, replaced)


def _set_aside(out: Path, files: list[Path]) -> Path:
    replaced = out / REPLACED_DIR
    replaced.mkdir()
    for child in files:
        child.rename(replaced / child.name)
    return replaced


def newest_verified_checkpoint(out: Path) -> Path:
    """The newest checkpoint that is complete and matches its manifest; the newer ones skipped are named."""
    from ssl_cli.engine import list_checkpoints

    checkpoints = list_checkpoints(out) if out.is_dir() else []
    skipped = []
    for checkpoint in reversed(checkpoints):
        try:
            _verified(checkpoint)
        except UserError as err:
            skipped.append(f"{checkpoint.name} {_reason(err, checkpoint)}")
            continue
        if skipped:
            note(f"--resume skipped {'; '.join(skipped)}; resuming from {checkpoint.name}")
        return checkpoint
    if skipped:
        raise UserError(f"nothing to resume in {out}: {'; '.join(skipped)}; run without --resume (and with "
                        "--overwrite) to start again")
    raise UserError(f"nothing to resume: no complete checkpoint in {out} (run without --resume)")


def _reason(err: UserError, checkpoint: Path) -> str:
    """What is wrong with ``checkpoint`` ("is corrupt: ..."), without its path and the fix."""
    return str(err).split(";", 1)[0].removeprefix(f"checkpoint {checkpoint} ")


def _verified(checkpoint: Path) -> None:
    from ssl_cli.engine import STATE_FILE
    from ssl_cli.engine.durability import verify_manifest

    if not (checkpoint / STATE_FILE).is_file():
        raise UserError(f"checkpoint {checkpoint} is not complete: no {STATE_FILE}; pick another with "
                        "training.resume_from_checkpoint")
    verify_manifest(checkpoint)


# --------------------------------------------------------------------------- what a resumed run must not change

# Recipe keys a resumed run may change: they decide what is logged, evaluated, saved or kept, never which
# batches train or how. ``training.max_steps`` is compared, but may grow (``_changed_keys``; docs/reliability.md).
RESUME_SAFE_KEYS = frozenset({
    "training.output_dir", "training.overwrite", "training.resume", "training.resume_from_checkpoint",
    "training.logging_steps", "training.logging_first_step", "training.eval_strategy", "training.eval_steps",
    "training.save_strategy",
    "training.save_steps", "training.save_total_limit", "training.report_to", "training.project", "training.run_name",
    "training.per_device_eval_batch_size", "training.push_to_hub", "training.hub_model_id", "training.hub_private_repo",
    "training.do_eval", "training.do_predict", "training.load_best_model_at_end", "training.metric_for_best_model",
    "training.greater_is_better", "training.early_stopping_patience", "training.dataloader_num_workers",
    "training.dataloader_prefetch_factor", "training.dataloader_pin_memory", "training.dataloader_persistent_workers",
    "training.torch_threads", "training.trim_cpu_memory", "training.save_on_each_node", "training.profile_steps",
    "data.validation_file", "data.test_file", "data.eval_data", "data.max_eval_samples", "data.max_predict_samples",
    "data.preprocessing_num_workers", "data.overwrite_cache", "peft.merge",
})
#: Keys added to the recipe since fingerprints began, with what a run from before them did: such a run, whose
#: fingerprint lacks the key, resumes when the key still says that (a null is "None" in a fingerprint).
ADDED_KEYS: dict[str, Any] = {"training.optim": "adamw_torch", "training.data_seed": "None"}
_SAMPLE = 1 << 20  # bytes hashed at each end of a data file


def run_fingerprint(recipe: Any) -> dict[str, Any]:
    """What a resumed run must share with the one it continues: the recipe's keys outside ``RESUME_SAFE_KEYS``
    (plus ``max_steps``, which may only grow) and the training data files (size and a hash of each end)."""
    from ssl_cli.recipe_files import flat_config

    flat = flat_config(recipe.model_dump(mode="json"))
    return {"recipe": {k: v for k, v in flat.items() if k not in RESUME_SAFE_KEYS},
            "data": {str(path): file_fingerprint(path) for path in _training_files(recipe.data)
                     if os.access(path, os.R_OK)}}  # an unreadable file is the data reader's one-line error


def _training_files(data: Any) -> list[Path]:
    import glob

    files: list[Path] = []
    for source in (data.train_file, data.name):
        if not source:
            continue
        path = Path(source).expanduser()
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files += sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        elif any(c in str(path) for c in "*?["):
            files += [Path(p) for p in sorted(glob.glob(str(path)))]
    return files


def file_fingerprint(path: Path) -> dict[str, Any]:
    """Size and the SHA-256 of the first and last MB: cheap for any size, and a copy keeps it (no mtime)."""
    import hashlib

    size = path.stat().st_size
    with path.open("rb") as handle:
        head = hashlib.sha256(handle.read(_SAMPLE)).hexdigest()
        handle.seek(max(0, size - _SAMPLE))
        tail = hashlib.sha256(handle.read(_SAMPLE)).hexdigest()
    return {"bytes": size, "head_sha256": head, "tail_sha256": tail}


def check_resume_fingerprint(checkpoint: Path, current: dict[str, Any]) -> None:
    """Refuse to resume ``checkpoint`` with a changed recipe or training data, naming what changed."""
    import json

    from ssl_cli.engine import STATE_FILE

    saved = json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8")).get("fingerprint")
    if saved is None:
        note(f"{checkpoint.name} records no recipe or data fingerprint (written by an older ssl): they are not checked")
        return
    recipe = saved.get("recipe", {})
    changed = [f"{key} {recipe.get(key)!r} -> {current['recipe'].get(key)!r}"
               for key in _changed_keys(recipe, current["recipe"])]
    files = _changed_keys(saved.get("data", {}), current["data"])
    if files:
        changed.append("training data " + ", ".join(Path(f).name for f in files))
    if changed:
        raise UserError(f"cannot resume {checkpoint}: it was trained with other settings; changed: {'; '.join(changed)}. "
                        "Restore them, or start a new run (another --output-dir, or --overwrite)")


def _changed_keys(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    changed = []
    for key in sorted(set(saved) | set(current)):
        before, after = saved.get(key), current.get(key)
        if key == "training.max_steps" and isinstance(before, int) and isinstance(after, int) and after >= before:
            continue  # training for longer is allowed
        if key not in saved and key in ADDED_KEYS and after == ADDED_KEYS[key]:
            continue  # written before the key existed, and it still does what runs did then
        if before != after:
            changed.append(key)
    return changed
