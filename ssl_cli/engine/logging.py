"""The JSON log, the progress bar, and the trackers a run reports to."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ssl_cli.errors import UserError, first_line

#: The pip package of each tracker whose import name differs from it.
TRACKER_PACKAGES = {"comet_ml": "comet-ml"}


def available_trackers(requested: list[str]) -> list[str]:
    """The trackers a run reports to: ``all`` is every one installed; one asked for by name must be installed
    (the Trainer skips it silently, and the user finds the run missing from the dashboard hours later)."""
    import importlib.util

    from ssl_cli.config import TRACKERS

    if "all" in requested:
        return [name for name in TRACKERS if importlib.util.find_spec(name) is not None]
    wanted = [name for name in requested if name in TRACKERS]
    for name in wanted:
        if importlib.util.find_spec(name) is None:
            raise UserError(f"--report_to {name}: {name} is not installed: pip install {TRACKER_PACKAGES.get(name, name)}, "
                            "or report to another tracker (none for no tracker)")
    if "wandb" in wanted:
        _check_wandb_login()
    return wanted


def _check_wandb_login() -> None:
    """wandb online needs an API key; without one, wandb.init fails (or prompts) after the data is prepared."""
    import os

    if os.environ.get("WANDB_MODE", "").lower() in ("offline", "disabled", "dryrun") or os.environ.get("WANDB_API_KEY"):
        return
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    if netrc.is_file() and "api.wandb.ai" in netrc.read_text(encoding="utf-8", errors="replace"):
        return
    raise UserError("--report_to wandb: no wandb login (no WANDB_API_KEY, no ~/.netrc entry): run `wandb login`, "
                    "or set WANDB_MODE=offline to log to local files (wandb sync uploads them later)")


def tracker_settings(cfg: Any, output_dir: Path, trackers: list[str]) -> tuple[str, dict[str, dict[str, Any]]]:
    """The project name and each tracker's own arguments: the run named as ``run_name`` (or the output dir)
    in every tracker that names runs; mlflow's store a local folder unless MLFLOW_TRACKING_URI says otherwise."""
    import os

    project = cfg.project or os.environ.get("WANDB_PROJECT") or "ssl"
    run_name = cfg.run_name or Path(output_dir).resolve().name
    if "mlflow" in trackers:
        if not os.environ.get("MLFLOW_TRACKING_URI"):  # mlflow 3's default is a SQLite file (SQLAlchemy)
            os.environ["MLFLOW_TRACKING_URI"] = Path("mlruns").resolve().as_uri()
        if "://" not in os.environ["MLFLOW_TRACKING_URI"] or os.environ["MLFLOW_TRACKING_URI"].startswith("file:"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # mlflow 3.x refuses a file store otherwise
    named = {"wandb": {"name": run_name}, "mlflow": {"run_name": run_name}, "trackio": {"name": run_name},
             "clearml": {"task_name": run_name}}
    return project, {name: named[name] for name in trackers if name in named}


def start_trackers(accelerator: Any, settings: tuple[str, dict[str, dict[str, Any]]], config: dict[str, Any]) -> None:
    """Accelerate's trackers, started with the recipe as hyper-parameters; a tracker that cannot start (a
    server not answering, a store it refuses) is one line."""
    project, init_kwargs = settings
    try:
        accelerator.init_trackers(project, config=config, init_kwargs=init_kwargs)
    except Exception as err:  # each tracker raises its own types
        names = ", ".join(str(name) for name in accelerator.log_with)
        raise UserError(f"--report_to {names}: a tracker could not start ({first_line(err, 200)}): fix its settings, or "
                        "report to other trackers") from None


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
