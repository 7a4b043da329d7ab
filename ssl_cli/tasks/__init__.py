"""Task discovery: every folder here whose ``__init__`` declares ``COMMANDS`` adds those subcommands.

A task is one folder (``tasks/<name>/``) holding its task class, data format,
metrics, toy data and registered datasets; nothing outside it names the task.
A folder's ``__init__`` only declares its commands (name, module, help line):
``ssl --help`` lists them without importing the tasks and their recipe models,
which load when a command runs. Discovery never swallows errors: a task folder
that fails to import fails the CLI loudly, rather than silently disappearing
from ``--help``.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from ssl_cli.tasks.base import Task


@dataclass(frozen=True)
class Command:
    """A subcommand of a task folder: ``ssl <name>``, run by ``<module>.TASK``, with its ``--help`` line."""

    name: str
    module: str
    help: str


@cache
def task_commands() -> dict[str, Command]:
    """Subcommand name -> its declaration, in name order, from the task folders' ``COMMANDS`` alone."""
    commands: dict[str, Command] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.ispkg:
            continue
        for command in getattr(importlib.import_module(f"{__name__}.{info.name}"), "COMMANDS", ()):
            if command.name in commands:
                raise RuntimeError(f"two task folders declare the subcommand '{command.name}'")
            commands[command.name] = command
    return dict(sorted(commands.items()))


@cache
def all_tasks() -> dict[str, Task]:
    """Subcommand name -> task instance, in name order (imports every task module)."""
    tasks: dict[str, Task] = {}
    for name, command in task_commands().items():
        task = importlib.import_module(command.module).TASK
        if task.name != name:
            raise RuntimeError(f"{command.module}.TASK runs '{task.name}', but its folder declares it as '{name}'")
        tasks[name] = task
    return tasks
