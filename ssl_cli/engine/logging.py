"""The JSON log, the progress bar, and the trackers a run reports to."""

from __future__ import annotations

import json
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


class Progress:
    """Rich progress bar with loss, learning rate, examples/s and ETA (main process only)."""

    def __init__(self, total: int, completed: int, enabled: bool) -> None:
        self.enabled = enabled
        self.total, self.completed = total, completed
        self.loss: float | None = None
        self.lr: float | None = None
        self._progress: Any = None

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[stats]}"),
                TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                console=Console(stderr=True), transient=False,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task("train", total=self.total, completed=self.completed, stats="")
        return self

    def update(self, step: int, loss: float | None, lr: float | None, rate: float) -> None:
        if not self._progress:
            return
        self.loss = loss if loss is not None else self.loss
        self.lr = lr if lr is not None else self.lr
        stats = f"loss {self.loss:.4f} lr {self.lr:.2e} " if self.loss is not None else ""
        self._progress.update(self._task, completed=step, stats=f"{stats}{rate:.1f} ex/s")

    def __exit__(self, *exc: Any) -> None:
        if self._progress:
            self._progress.__exit__(*exc)
