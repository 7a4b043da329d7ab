"""Task discovery: every folder here whose ``__init__`` declares ``TASKS`` adds those subcommands.

A task is one folder (``tasks/<name>/``) holding its task class, data format,
metrics, toy data and registered datasets; nothing outside it names the task.
Discovery never swallows errors: a task folder that fails to import fails the
CLI loudly, rather than silently disappearing from ``--help``.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from ssl_cli.tasks.base import Task


@cache
def all_tasks() -> dict[str, Task]:
    """Subcommand name -> task instance, in name order."""
    tasks: dict[str, Task] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.ispkg:
            continue
        for task in getattr(importlib.import_module(f"{__name__}.{info.name}"), "TASKS", ()):
            if task.name in tasks:
                raise RuntimeError(f"two task folders declare the subcommand '{task.name}'")
            tasks[task.name] = task
    return dict(sorted(tasks.items()))
