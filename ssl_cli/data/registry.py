"""Registered datasets: ``--data drcd`` resolves to the real public source.

Each task folder lists its entries (``tasks/<task>/datasets.py``). Each entry names where the data lives (a Hub dataset id or the official file
URLs), its language, and the metric its papers report. Loading code is the
real one; on a machine without the network it fails fast with a one-line
error telling the user to pass local files instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ssl_cli.errors import UserError, did_you_mean


@dataclass(frozen=True)
class DatasetSource:
    name: str
    task: str
    language: str  # "zh" or "en"
    metric: str
    description: str
    hub_id: str | None = None
    hub_config: str | None = None
    files: dict[str, str] = field(default_factory=dict)  # split -> official URL


def registered(task: str) -> tuple[DatasetSource, ...]:
    """The datasets ``task`` lists (its folder's ``datasets``)."""
    from ssl_cli.tasks import all_tasks

    return all_tasks()[task].datasets if task in all_tasks() else ()


def lookup(name: str, task: str) -> DatasetSource | None:
    """The registry entry for ``name`` if it is registered for ``task`` (any ``ud/<treebank>`` is).

    A name that is neither registered nor an existing path gets a one-line
    error listing the task's datasets.
    """
    from ssl_cli.tasks import all_tasks

    tasks = all_tasks()
    owner = tasks.get(task)
    source = owner.find_dataset(name) if owner is not None else None
    source = source or next((s for t in tasks.values() if (s := t.find_dataset(name)) is not None), None)
    if source is not None and source.task != task:
        raise UserError(f"dataset '{name}' is for `ssl {source.task}`, not `ssl {task}`")
    return source


def unknown_dataset_error(name: str, task: str) -> UserError:
    names = sorted(s.name for s in registered(task))
    return UserError(
        f"'{name}' is neither a registered dataset nor an existing path{did_you_mean(name, names)}; "
        f"registered for {task}: {', '.join(names)}"
    )


def load_hub_dataset(source: DatasetSource, streaming: bool = False):
    """``datasets.load_dataset`` on the Hub id (streamed if asked), failing fast and clearly when offline."""
    import datasets

    hint = "download the data elsewhere and pass --data DIR or --train-file/--validation-file"
    if datasets.config.HF_HUB_OFFLINE:
        raise UserError(f"dataset '{source.name}' lives on the Hugging Face Hub ({source.hub_id}) but offline mode is set: {hint}")
    try:
        return datasets.load_dataset(source.hub_id, source.hub_config, streaming=streaming)
    except Exception as err:
        raise UserError(
            f"cannot load dataset '{source.name}' from the Hugging Face Hub ({source.hub_id}): "
            f"{type(err).__name__}; {hint}"
        ) from None
