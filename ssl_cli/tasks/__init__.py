"""Task discovery: every module in this folder that defines ``TASK`` is a subcommand.

Discovery never swallows errors: a task module that fails to import fails the
CLI loudly, rather than silently disappearing from ``--help``.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from ssl_cli.tasks.base import Task

_NOT_TASKS = {"base"}


@cache
def all_tasks() -> dict[str, Task]:
    """Subcommand name -> task instance, in module order."""
    tasks: dict[str, Task] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name in _NOT_TASKS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        task = getattr(module, "TASK", None)
        if task is None:
            continue
        if task.name in tasks:
            raise RuntimeError(f"two task modules declare the subcommand '{task.name}'")
        tasks[task.name] = task
    return tasks
