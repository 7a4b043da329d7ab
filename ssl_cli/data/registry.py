"""Registered datasets: ``--data drcd`` resolves to the real public source.

Each task folder lists its entries (``tasks/<task>/datasets.py``). Each entry names where the data lives (a Hub dataset id or the official file
URLs), its language, and the metric its papers report. Loading code is the
real one; on a machine without the network it fails fast with a one-line
error telling the user to pass local files instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssl_cli.errors import UserError, did_you_mean, first_line


@dataclass(frozen=True)
class DatasetSource:
    name: str
    task: str  # "" in a user's registry entry that names no command: any command may read it
    language: str  # "zh" or "en"
    metric: str
    description: str
    hub_id: str | None = None
    hub_config: str | None = None
    files: dict[str, str] = field(default_factory=dict)  # split -> official URL, or a local path (a user's entry)
    columns: dict[str, str] = field(default_factory=dict)  # recipe keys of the task's section: text_column: review


def registered(task: str) -> tuple[DatasetSource, ...]:
    """The datasets ``task`` lists (its folder's ``datasets``)."""
    from ssl_cli.tasks import all_tasks

    return all_tasks()[task].datasets if task in all_tasks() else ()


def lookup(name: str, task: str, dataset_info: str | None = None) -> DatasetSource | None:
    """The registry entry for ``name``: the user's registry first (``--dataset-info``, or a dataset_info file in
    the working directory), then the tasks' (any ``ud/<treebank>`` is registered)."""
    from ssl_cli.tasks import all_tasks

    user = user_datasets(dataset_info).get(name)
    if user is not None:
        if user.task and user.task != task:
            raise UserError(f"dataset '{name}' ({user.description}) is for `ssl {user.task}`, not `ssl {task}`")
        return user
    tasks = all_tasks()
    owner = tasks.get(task)
    source = owner.find_dataset(name) if owner is not None else None
    source = source or next((s for t in tasks.values() if (s := t.find_dataset(name)) is not None), None)
    if source is not None and source.task != task:
        raise UserError(f"dataset '{name}' is for `ssl {source.task}`, not `ssl {task}`")
    return source


def unknown_dataset_error(name: str, task: str, dataset_info: str | None = None, hub_tried: bool = False) -> UserError:
    users = [n for n, s in user_datasets(dataset_info).items() if s.task in ("", task)]
    names = sorted({s.name for s in registered(task)} | set(users))
    listed = f"registered for {task}: {', '.join(names)}" if names else f"no dataset is registered for {task}"
    tried = "nor a Hugging Face Hub dataset that loads here" if hub_tried else "nor an existing path"
    return UserError(
        f"'{name}' is neither a registered dataset {tried}{did_you_mean(name, names)}; {listed}; or pass a Hub id "
        "(org/name, org/name:config), a data file or a directory"
    )


# ------------------------------------------------------------------ a user's own registry

USER_REGISTRY_NAMES = ("dataset_info.yaml", "dataset_info.yml", "dataset_info.json")
_ENTRY_KEYS = {"task", "hf_hub_url", "hub_id", "subset", "config", "file_name", "files", "columns", "language",
               "metric", "description"}


def user_registry_file(dataset_info: str | None) -> Path | None:
    """``--dataset-info FILE``, else a dataset_info.yaml/.json in the working directory, else None."""
    if dataset_info:
        path = Path(dataset_info).expanduser()
        if not path.is_file():
            raise UserError(f"dataset registry not found: {dataset_info} (pass an existing YAML or JSON file to "
                            "--dataset-info)")
        return path
    return next((Path(n) for n in USER_REGISTRY_NAMES if Path(n).is_file()), None)


def user_datasets(dataset_info: str | None) -> dict[str, DatasetSource]:
    """The datasets a user's registry names, as LLaMA-Factory's dataset_info.json does: each entry a Hub id
    (``hf_hub_url``, ``subset``) or files (``file_name``, or ``files`` by split, relative to the registry file),
    with its ``columns`` (recipe keys of the task's section) and, optionally, the ``task`` it is for."""
    path = user_registry_file(dataset_info)
    if path is None:
        return {}
    return {name: _user_entry(path, name, entry) for name, entry in _read_registry(path).items()}


def _read_registry(path: Path) -> dict[str, Any]:
    import yaml

    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8-sig"))  # JSON is YAML
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise UserError(f"dataset registry {path} is not valid YAML/JSON: {str(err).splitlines()[0][:200]}") from None
    if not isinstance(tree, dict) or not all(isinstance(v, dict) for v in tree.values()):
        raise UserError(f"dataset registry {path} must map each dataset name to its entry (hf_hub_url or file_name, "
                        "columns, task)")
    return tree


def _user_entry(path: Path, name: str, entry: dict[str, Any]) -> DatasetSource:
    where = f"dataset registry {path}, entry '{name}'"
    unknown = sorted(set(entry) - _ENTRY_KEYS)
    if unknown:
        raise UserError(f"{where}: unknown key '{unknown[0]}'{did_you_mean(unknown[0], _ENTRY_KEYS)}; keys: "
                        f"{', '.join(sorted(_ENTRY_KEYS))}")
    hub_id = entry.get("hf_hub_url") or entry.get("hub_id")
    files = dict(entry.get("files") or {})
    if entry.get("file_name"):
        files.setdefault("train", entry["file_name"])
    if bool(hub_id) == bool(files):
        raise UserError(f"{where}: give either hf_hub_url (a Hub dataset) or file_name / files (local files)")
    columns = entry.get("columns") or {}
    if not isinstance(columns, dict) or not isinstance(files, dict):
        raise UserError(f"{where}: columns and files must be mappings (columns: {{text_column: review}})")
    local = {split: str((path.parent / str(file)).expanduser()) for split, file in files.items()}
    return DatasetSource(name, str(entry.get("task") or ""), str(entry.get("language") or "en"),
                         str(entry.get("metric") or ""), str(entry.get("description") or f"{path}: {name}"),
                         hub_id=hub_id, hub_config=entry.get("subset") or entry.get("config"), files=local,
                         columns={str(k): str(v) for k, v in columns.items()})


def load_hub_dataset(hub_id: str, config: str | None, label: str, streaming: bool = False) -> Any:
    """``datasets.load_dataset`` on a Hub id: from the Hub, or offline from the datasets cache when it was loaded
    before; one line when neither works."""
    import datasets

    hint = "download the data elsewhere and pass --data DIR (a save_to_disk folder) or --train-file/--validation-file"
    try:
        return datasets.load_dataset(hub_id, config, streaming=streaming)
    except Exception as err:
        reason = first_line(err)
        if "config" in reason.lower() and "missing" in reason.lower():
            raise UserError(f"dataset '{label}' ({hub_id}) has several configurations: {reason} (write --data "
                            f"{hub_id}:CONFIG or --dataset-config-name CONFIG)") from None
        if datasets.config.HF_HUB_OFFLINE:
            raise UserError(f"dataset '{label}' lives on the Hugging Face Hub ({hub_id}), is not in the datasets "
                            f"cache, and offline mode is set: {hint}") from None
        raise UserError(f"cannot load dataset '{label}' from the Hugging Face Hub ({hub_id}): "
                        f"{type(err).__name__}: {reason}; {hint}") from None
