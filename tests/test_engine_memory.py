"""The CPU heap trimmer: trims after a batch that freed a lot, leaves small ones alone (real glibc, own process)."""

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
assert trimmer.trims == 1, "400 MB freed: trim"
assert current_rss_mb() < before - 200, (before, current_rss_mb())
print("ok")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_trims_only_when_a_batch_left_much_free_heap():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr
