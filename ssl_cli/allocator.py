"""Preload tcmalloc for the commands that train, when it is installed.

Why: a training step allocates and frees tens of MB of activations whose
shapes change from batch to batch. glibc either hands that memory back and
faults it in again, or, tuned not to (``engine.tune_cpu_allocator``),
fragments and holds more. tcmalloc does neither: it is faster and smaller
than tuned glibc on the real commands, and jemalloc slower than either
(RESULTS.md, "Ceiling and CPU levers"; docs/performance.md, "Choosing the
allocator").

An allocator can only be chosen before the process starts, so ``ssl``
re-executes itself once with ``LD_PRELOAD`` set (the same process id, so
``accelerate launch`` and job schedulers see nothing). Help, ``--dry-run``
and ``ssl env`` are not re-executed: they allocate little and must start
fast. ``SSL_ALLOCATOR`` chooses: ``auto`` (default: tcmalloc when found),
``system`` (never preload), or the path of an allocator library.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

ENV = "SSL_ALLOCATOR"
TCMALLOC_NAMES = ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4")  # Debian: libtcmalloc-minimal4, libgoogle-perftools4
LIBRARY_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib")
QUICK_COMMANDS = frozenset({"env", "--help", "-h", "--version", "--dry-run", "--show-completion", "--install-completion"})
ALLOCATOR_MARKERS = ("tcmalloc", "jemalloc", "mimalloc")
# tcmalloc reports every allocation over 1 GB on stderr; a large model's embedding gradient is one
QUIET_LARGE_ALLOCATIONS = {"TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD": str(1 << 40)}


def find_tcmalloc(dirs: Sequence[str] = LIBRARY_DIRS) -> str | None:
    """The first tcmalloc library installed in the usual places, or None."""
    for directory in dirs:
        for name in TCMALLOC_NAMES:
            path = Path(directory) / name
            if path.is_file():
                return str(path)
    return None


def is_quick(argv: Sequence[str]) -> bool:
    """Help, ``--dry-run``, ``ssl env`` or no command at all: nothing trains, start-up is what counts."""
    return not argv or bool(QUICK_COMMANDS & set(argv))


def preloaded_allocator(environ: Mapping[str, str]) -> str | None:
    """The allocator library already in ``LD_PRELOAD`` (ours after the re-exec, or the user's), if any."""
    for library in environ.get("LD_PRELOAD", "").split(":"):
        if any(marker in library for marker in ALLOCATOR_MARKERS):
            return library
    return None


def allocator_environment(environ: Mapping[str, str], platform: str = sys.platform,
                          find: object = find_tcmalloc) -> dict[str, str] | None:
    """The environment a training process should run with to get the chosen allocator, or None to keep this one.

    None for ``SSL_ALLOCATOR=system``, off Linux, when nothing is found, or
    when ``LD_PRELOAD`` already holds an allocator (ours after the re-exec,
    or the user's). A path that is not a file is a ``UserError``.
    """
    choice = environ.get(ENV, "auto").strip() or "auto"
    if choice == "system" or platform != "linux":
        return None
    if preloaded_allocator(environ):
        return None
    if choice == "auto":
        library = find()  # type: ignore[operator]
    elif Path(choice).is_file():
        library = choice
    else:
        from ssl_cli.errors import UserError

        raise UserError(f"{ENV}={choice} is not a library file: set it to auto, system, or the path of an allocator "
                        "(e.g. /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4)")
    if library is None:
        return None
    preloaded = environ.get("LD_PRELOAD", "")
    return {**environ, **QUIET_LARGE_ALLOCATIONS, "LD_PRELOAD": ":".join(p for p in (library, preloaded) if p)}


def preload_plan(argv: Sequence[str], environ: Mapping[str, str], platform: str = sys.platform,
                 find: object = find_tcmalloc) -> dict[str, str] | None:
    """The environment to re-execute ``ssl ARGV`` with, or None to run as is.

    ``argv``: the arguments after ``ssl``. Pure, so every rule is testable
    without starting processes.
    """
    return None if is_quick(argv) else allocator_environment(environ, platform, find)


def reexec_with_allocator(argv: Sequence[str]) -> None:
    """Replace this process by the same command with the allocator preloaded, when the plan says so."""
    env = preload_plan(argv, os.environ)
    if env is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


def active_allocator() -> str:
    """The malloc this process runs on: the preloaded library's name, else glibc (what run results record)."""
    maps = Path("/proc/self/maps")
    loaded = maps.read_text() if maps.exists() else ""
    for marker in ALLOCATOR_MARKERS:
        if f"lib{marker}" in loaded:
            return marker
    return "glibc" if sys.platform == "linux" else "system"
