"""ssl: fine-tuning and pretraining toolkit for self-supervised language models.

The package is named ``ssl_cli`` (not ``ssl``) so that it never shadows the
standard library's ``ssl`` module; the console script is still ``ssl``.

The Python API (``ssl_cli.api``; docs/python-api.md): ``from ssl_cli import finetune, evaluate, predict``.
Its names load on first use, so that ``ssl --help`` imports none of it (and no module of the package may
share their names: an imported submodule would shadow them).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Result", "evaluate", "export", "finetune", "predict"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from ssl_cli import api

        return getattr(api, name)
    raise AttributeError(f"module 'ssl_cli' has no attribute {name!r}")
