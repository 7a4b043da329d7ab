"""The CPU's memory: glibc tuning, heap trimming, and the peak and dataset memory a run reports."""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path
from typing import Any


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
    pays page faults again, a large share of CPU time at long sequences.
    One arena instead of one per thread: freed activations are then reusable
    by whichever thread allocates next, which lowers peak RSS under changing
    batch shapes. ``HeapTrimmer`` hands the memory back
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
    each batch lowers peak RSS, but the page faults it causes cost speed,
    most on small models whose steps free little memory. So it trims only
    when glibc holds at least ``min_free_mb`` of free heap (``mallinfo2``;
    without it, after every batch). Packed MLM/CLM blocks are different
    (``steady_shapes``, from the task's traits): each step reuses exactly
    what the one before freed, and trimming after every batch would only move
    pages out and fault them back in. Within a run of one shape it then trims
    only when the free heap grows by ``min_free_mb`` over the least a batch
    left. (The same rule on QA's runs of full-length windows raised peak RSS,
    so the other tasks keep the first rule; docs/performance.md, "Memory".)
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
