"""The JSON log, the progress bar, and the trackers a run reports to."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def available_trackers(requested: list[str]) -> list[str]:
    """Trackers that are installed (names are checked by the recipe schema); a missing package is skipped."""
    import importlib.util

    from ssl_cli.config import TRACKERS

    wanted = TRACKERS if "all" in requested else [name for name in requested if name in TRACKERS]
    return [name for name in wanted if importlib.util.find_spec(name) is not None]


class JsonLog:
    """JSON lines of every logged step and evaluation (main process only)."""

    def __init__(self, path: Path, enabled: bool) -> None:
        self.path, self.enabled = path, enabled

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def evaluations_left(cfg: Any, total_steps: int, batches_per_epoch: int, evaluates: bool) -> Callable[[int], int]:
    """How many evaluations a run still has after a step (the final one included), for the ETA."""
    import math

    def left(step: int) -> int:
        if not evaluates or cfg.eval_strategy == "no":
            return 0
        if cfg.eval_strategy == "steps":
            every = cfg.eval_steps or 1
            return total_steps // every - step // every + (total_steps % every > 0)
        per_epoch = max(1, math.ceil(batches_per_epoch / cfg.gradient_accumulation_steps)) if batches_per_epoch else 0
        return math.ceil(total_steps / per_epoch) - step // per_epoch if per_epoch else 1

    return left


class Progress:
    """The terminal's view of a run (main process only): a training line with loss, learning rate, examples/s and
    an ETA that counts the evaluations still to come; an evaluation line while one runs; a table row of scores
    after each evaluation. Outside training (a final or an evaluation-only run) an evaluation gets a line of
    its own."""

    def __init__(self, total: int, completed: int, enabled: bool,
                 evaluations_left: Callable[[int], int] = lambda step: 0) -> None:
        self.enabled = enabled
        self.total, self.completed = total, completed
        self.loss: float | None = None
        self.lr: float | None = None
        self.evaluations_left = evaluations_left
        self._progress: Any = None
        self._last = time.perf_counter()
        self._step_seconds: list[float] = []  # training time per step, evaluation time excluded
        self._eval_seconds: list[float] = []
        self._rows = 0

    def __enter__(self) -> Progress:
        if self.enabled:
            self._progress = _rich_progress("{task.fields[stats]}", "eta {task.fields[eta]}")
            self._progress.__enter__()
            self._task = self._progress.add_task("train", total=self.total, completed=self.completed, stats="", eta="")
            self._last = time.perf_counter()
        return self

    def update(self, step: int, loss: float | None, lr: float | None, rate: float) -> None:
        now = time.perf_counter()
        self._step_seconds.append(now - self._last)
        self._last = now
        if not self._progress:
            return
        self.loss = loss if loss is not None else self.loss
        self.lr = lr if lr is not None else self.lr
        stats = f"loss {self.loss:.4f} lr {self.lr:.2e} " if self.loss is not None else ""
        self._progress.update(self._task, completed=step, stats=f"{stats}{rate:.1f} ex/s", eta=self._eta(step))

    def _eta(self, step: int) -> str:
        recent = self._step_seconds[-50:]
        seconds = (self.total - step) * (sum(recent) / len(recent)) if recent else 0.0
        if self._eval_seconds:
            seconds += self.evaluations_left(step) * sum(self._eval_seconds) / len(self._eval_seconds)
        minutes, secs = divmod(int(seconds), 60)
        return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"

    @contextmanager
    def evaluating(self, batches: int, name: str = "eval") -> Iterator[Callable[[], None]]:
        """An evaluation of ``batches`` batches: a line that advances with them; yields the advance callable."""
        started = time.perf_counter()
        if self._progress is not None:
            task = self._progress.add_task(name, total=batches, stats="", eta="")
            try:
                yield lambda: self._progress.advance(task)
            finally:
                self._progress.remove_task(task)
        else:
            yield from _standalone_evaluation(self.enabled, batches, name)
        self._eval_seconds.append(time.perf_counter() - started)
        self._last = time.perf_counter()  # the next step's time starts after the evaluation

    def scores(self, step: int, epoch: float, metrics: dict[str, Any]) -> None:
        """One table row of an evaluation's scores, above the progress lines (a header before the first)."""
        if not self._progress:
            return
        from rich.table import Table

        shown = {k.removeprefix("eval_"): v for k, v in metrics.items() if isinstance(v, float) and not k.endswith("total")}
        table = Table(box=None, show_header=self._rows == 0, pad_edge=False)
        for name in ("step", "epoch", *shown):
            table.add_column(name, justify="right", min_width=max(8, len(name)))
        table.add_row(str(step), f"{epoch:.2f}", *(f"{v:.4f}" for v in shown.values()))
        self._rows += 1
        self._progress.console.print(table)

    def __exit__(self, *exc: Any) -> None:
        if self._progress:
            self._progress.__exit__(*exc)
            self._progress = None


def _rich_progress(*fields: str, transient: bool = False) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    *(TextColumn(f) for f in fields), TimeElapsedColumn(), console=Console(stderr=True),
                    transient=transient)


def _standalone_evaluation(enabled: bool, batches: int, name: str) -> Iterator[Callable[[], None]]:
    """An evaluation line of its own (no training line is live): removed when the evaluation ends."""
    import sys

    if not (enabled and sys.stderr.isatty()):
        yield lambda: None
        return
    progress = _rich_progress(transient=True)
    with progress:
        task = progress.add_task(name, total=batches)
        yield lambda: progress.advance(task)
