"""Architecture rules that a reader would otherwise have to check by eye: private APIs live in
``ssl_cli/compat.py`` and Accelerate in ``ssl_cli/engine/``."""

from __future__ import annotations

from pathlib import Path

from ssl_cli import compat


def test_no_other_module_touches_a_private_api():
    """``torch._*``, ``__class__`` and ``forward`` assignments, transformers' REMOVED_TASKS and the fused
    optimizer's grad_scale slot appear in ssl_cli/compat.py only."""
    import re

    root = Path(compat.__file__).parent
    private = re.compile(r"torch\._(?!_)|\.__class__\s*=|\.forward\s*=|REMOVED_TASKS|\bgrad_scale\b|\._C\b")
    found = [f"{path.relative_to(root)}:{number}: {line.strip()}"
             for path in sorted(root.rglob("*.py")) if path.name != "compat.py"
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if private.search(line) and not line.lstrip().startswith("#")]
    assert not found, "private APIs outside ssl_cli/compat.py:\n" + "\n".join(found)


def test_accelerate_is_imported_by_the_engine_package_only():
    """One engine: every other module reaches devices, precision and processes through ``Engine``."""
    import re

    root = Path(compat.__file__).parent
    uses = re.compile(r"^\s*(import accelerate|from accelerate\b)|\.accelerator\.")
    found = [f"{path.relative_to(root)}:{number}" for path in sorted(root.rglob("*.py"))
             if "engine" not in path.relative_to(root).parts
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if uses.search(line)]
    assert not found, f"Accelerate used outside ssl_cli/engine/: {found}"


# The CLI's ``generate`` command runs what pretrain-clm trained; the demo writes the QA task's toy data.
CROSS_FOLDER_ALLOWED = {("cli.py", "pretraining"), ("devtools/demo.py", "qa"), ("pretraining/data.py", "glue"),
                        ("pretraining/data.py", "tagging")}


def test_a_task_is_named_only_inside_its_own_folder():
    """Adding a task is adding a folder: nothing outside ``ssl_cli/tasks/<folder>/`` imports it or names its
    command, so the shared code (run, engine, data, CLI, splits) knows no task."""
    from ssl_cli.tasks import all_tasks

    root = Path(compat.__file__).parent
    folders = {type(task).__module__.split(".")[2]: [] for task in all_tasks().values()}
    for task in all_tasks().values():
        folders[type(task).__module__.split(".")[2]].append(task.name)
    found = []
    for folder, commands in folders.items():
        words = [f"ssl_cli.tasks.{folder}", f"tasks/{folder}/", *(f'"{c}"' for c in commands)]
        for path in sorted(root.rglob("*.py")):
            where = path.relative_to(root)
            if where.parts[:2] == ("tasks", folder):
                continue
            inner = str(where.relative_to("tasks")) if where.parts[0] == "tasks" else str(where)
            if (inner, folder) in CROSS_FOLDER_ALLOWED:
                continue
            text = path.read_text(encoding="utf-8")
            found += [f"{where}: {word}" for word in words if word in text]
    assert not found, "a task named outside its folder:\n" + "\n".join(found)


def test_every_task_folder_declares_its_commands_and_nothing_else_is_one():
    """Discovery walks the folders: every folder under tasks/ is a task folder with ``COMMANDS``, each run by a
    module of that folder whose ``TASK`` has the command's name."""
    import importlib
    import pkgutil

    import ssl_cli.tasks as tasks

    folders = [info.name for info in pkgutil.iter_modules(tasks.__path__) if info.ispkg]
    assert len(folders) >= 5
    for folder in folders:
        declared = importlib.import_module(f"ssl_cli.tasks.{folder}").COMMANDS
        assert declared and all(c.module.startswith(f"ssl_cli.tasks.{folder}.") for c in declared), folder
        assert all(tasks.all_tasks()[c.name].help == c.help for c in declared), folder


def test_no_module_shadows_the_python_api():
    """``from ssl_cli import predict`` must give the function: a submodule of that name, once imported, would
    shadow the package's lazy attribute."""
    import ssl_cli

    package = Path(ssl_cli.__file__).parent
    clashes = [name for name in ssl_cli.__all__ if (package / f"{name}.py").exists() or (package / name).is_dir()]
    assert not clashes
    import ssl_cli.prediction  # noqa: F401  (the module behind predict)

    assert all(callable(getattr(ssl_cli, name)) for name in ssl_cli.__all__)
