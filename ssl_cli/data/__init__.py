"""Data: the dataset registry and local-file loading."""

from __future__ import annotations

from typing import Any


def is_stream(ds: Any) -> bool:
    """A ``datasets.IterableDataset`` (no length, read as consumed). Here, not in ``loading``, so that task modules
    can use it without importing the loaders at start-up (``ssl --help`` imports every task module)."""
    import datasets

    return isinstance(ds, datasets.IterableDataset)
