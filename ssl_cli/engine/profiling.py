"""``training.profile_steps``: a torch.profiler record of a few training steps, and where their time went.

"The GPU is mostly idle" is a claim about one number: the share of a step's
wall time the device spends in kernels. The record answers it. The Chrome
trace (``profile/trace.json``, for Perfetto or chrome://tracing) shows each
step's launches, waits and kernels. ``profile/summary.json`` gives the mean
step time, the device-busy fraction on an accelerator, and the operators
with the most self time. ``profile/operators.txt`` is profiler's own table.
One step of wait and one of warm-up come first, so that start-up (cuBLAS
handles, kernel selection, the allocator's first blocks) is not profiled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PROFILE_DIR = "profile"
WAIT_STEPS, WARMUP_STEPS = 1, 1


class StepProfiler:
    """A context around the training loop; ``step()`` after every optimizer step. Off (``steps`` 0), both cost
    nothing."""

    def __init__(self, steps: int, output_dir: Path, writes_files: bool, device: Any) -> None:
        self.steps = steps
        self.out = Path(output_dir) / PROFILE_DIR
        self.writes_files = writes_files
        self.on_accelerator = getattr(device, "type", "cpu") == "cuda"
        self.profiler: Any = None

    def __enter__(self) -> StepProfiler:
        if self.steps:
            from torch.profiler import ProfilerActivity, profile, schedule

            activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.on_accelerator else [])
            self.profiler = profile(activities=activities, on_trace_ready=self._write,
                                    schedule=schedule(wait=WAIT_STEPS, warmup=WARMUP_STEPS, active=self.steps,
                                                      repeat=1))
            self.profiler.start()
        return self

    def step(self) -> None:
        if self.profiler is not None:
            self.profiler.step()

    def __exit__(self, *exc: Any) -> None:
        if self.profiler is not None:
            self.profiler.stop()
            self.profiler = None

    def _write(self, profiler: Any) -> None:
        if not self.writes_files:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        profiler.export_chrome_trace(str(self.out / "trace.json"))
        sort = "self_device_time_total" if self.on_accelerator else "self_cpu_time_total"
        averages = profiler.key_averages()
        (self.out / "operators.txt").write_text(averages.table(sort_by=sort, row_limit=40), encoding="utf-8")
        summary = step_summary(profiler.events(), averages, self.on_accelerator)
        (self.out / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")


def step_summary(events: Any, averages: Any, on_accelerator: bool) -> dict[str, Any]:
    """Mean step wall time, the device's busy share of it (accelerators), and the 15 operators with the most self
    time, from a finished profile."""
    steps = [e for e in events if e.name.startswith("ProfilerStep")]
    step_us = [e.time_range.elapsed_us() for e in steps]
    mean_step_ms = sum(step_us) / len(step_us) / 1000 if step_us else 0.0
    summary: dict[str, Any] = {"profiled_steps": len(steps), "mean_step_ms": round(mean_step_ms, 3)}

    def self_us(average: Any) -> float:
        return average.self_device_time_total if on_accelerator else average.self_cpu_time_total

    ranked = sorted((a for a in averages if not a.key.startswith("ProfilerStep")), key=self_us, reverse=True)
    if on_accelerator and step_us:
        kernel_us = sum(a.self_device_time_total for a in averages)
        summary["device_busy_fraction"] = round(kernel_us / sum(step_us), 4)
    summary["top_operators"] = [{"name": a.key, "self_ms": round(self_us(a) / 1000, 3), "calls": a.count}
                                for a in ranked[:15]]
    return summary
