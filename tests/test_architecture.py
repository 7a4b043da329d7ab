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
