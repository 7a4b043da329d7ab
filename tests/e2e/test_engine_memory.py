"""The CPU heap trimmer: trims free heap after changing shapes, leaves the steady level of one shape alone (glibc)."""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
from pathlib import Path
from ssl_cli.engine import HeapTrimmer, _glibc, tune_cpu_allocator

def current_rss_mb():
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / (1 << 20)

tune_cpu_allocator()  # freed memory stays in the heap, as in training
trimmer = HeapTrimmer(_glibc(), min_free_mb=256)
small = [bytearray(1 << 16) for _ in range(100)]
del small
trimmer.after_batch()
assert trimmer.trims == 0, "6 MB freed: no trim"
big = [bytearray(1 << 20) for _ in range(400)]
del big
before = current_rss_mb()
trimmer.after_batch()
assert trimmer.trims == 1, "400 MB more free heap than the last batch left: trim"
assert current_rss_mb() < before - 200, (before, current_rss_mb())
trimmer.steady_shapes = True  # packed blocks (Traits.fixed_shapes)
for step in range(4):  # batches of one shape: each frees what the next one reuses
    freed = [bytearray(1 << 20) for _ in range(400)]
    del freed
    trimmer.after_batch((32, 128))
    assert trimmer.trims == 2, (step, "a new shape with 400 MB free: trim once; then the steady level is reused")
grown = [bytearray(1 << 20) for _ in range(800)]
del grown
trimmer.after_batch((32, 128))
assert trimmer.trims == 3, "the free heap grew by 400 MB over the steady level: trim"
varying = HeapTrimmer(_glibc(), min_free_mb=256)  # other tasks: every batch that leaves 256 MB free is trimmed
for _ in range(2):
    freed = [bytearray(1 << 20) for _ in range(400)]
    del freed
    varying.after_batch((32, 128))
assert varying.trims == 2
print("ok")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_trims_free_heap_except_what_the_next_batch_of_one_shape_reuses():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr
