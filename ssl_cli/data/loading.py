"""Resolve ``--data`` / ``--train-file`` / ... into raw ``datasets`` splits."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ssl_cli.data.files import download_file, files_in_directory, load_data_file
from ssl_cli.data.registry import load_hub_dataset, lookup, unknown_dataset_error
from ssl_cli.errors import UserError, first_line


def resolve_sources(data: Any, task: str, stream: frozenset[str] = frozenset()) -> tuple[dict[str, tuple[Any, str]], dict[str, Any]]:
    """Split name -> (Dataset, label for messages), plus facts about the source (metric, language, columns).

    ``data.name`` may be a registered dataset (the user's registry or the
    tasks'), a Hugging Face Hub id (``org/name`` or ``org/name:config``), a
    directory (a ``save_to_disk`` dataset, a dataset in Hub layout, or files
    named by split) or a single file (the training split); explicit split files
    override it. The splits named in ``stream`` come as
    ``datasets.IterableDataset``: read lazily, never loaded whole or cached
    (pretraining on large corpora).
    """
    explicit = {"train": data.train_file, "validation": data.validation_file, "test": data.test_file}
    explicit = {split: Path(path).expanduser() for split, path in explicit.items() if path}
    sources = _NamedSources(explicit, stream)
    if data.name:
        sources.add(data, task)
    files = {**sources.files, **explicit}
    from ssl_cli.tasks import all_tasks

    reader = all_tasks()[task].read_document if task in all_tasks() else None
    loaded = sources.loaded
    for split, path in files.items():
        loaded[split] = (load_data_file(path, sample_by=data.text_sample_by, streaming=split in stream,
                                        read_document=reader), str(path))
    if not loaded:
        raise UserError("no data given: pass --data NAME|PATH, or --train-file/--validation-file")
    return loaded, sources.info


HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")


def name_and_config(name: str, config: str | None) -> tuple[str, str | None]:
    """``org/name:config`` -> ("org/name", "config"); ``--dataset-config-name`` wins over the suffix."""
    head, sep, tail = name.rpartition(":")
    if sep and head and HUB_ID.fullmatch(head) and not Path(name).expanduser().exists():
        return head, config or tail
    return name, config


class _NamedSources:
    """What ``--data NAME`` gives, split by split: datasets loaded whole, or files to read."""

    def __init__(self, explicit: dict[str, Path], stream: frozenset[str]) -> None:
        self.explicit, self.stream = explicit, stream
        self.loaded: dict[str, tuple[Any, str]] = {}
        self.files: dict[str, Path] = {}
        self.info: dict[str, Any] = {}

    def add(self, data: Any, task: str) -> None:
        name, config = name_and_config(data.name, data.dataset_config_name)
        path = Path(name).expanduser()
        self.info["source"] = data.name
        if path.is_dir() and is_saved_dataset(path):
            self._add_loaded(load_saved_dataset(path), str(path))
        elif path.is_dir() and is_hub_layout(path):
            self._add_loaded(load_hub_folder(path, config, bool(self.stream)), str(path))
        elif path.is_dir():
            self.files.update(files_in_directory(path))
        elif path.is_file():
            self.files["train"] = path
        elif name.startswith(("/", ".", "~")) or path.suffix in {".json", ".jsonl", ".csv", ".tsv", ".parquet"}:
            raise UserError(f"data file not found: {name} (check the path)")
        else:
            self._add_named(name, config, task, data.dataset_info)

    def _add_named(self, name: str, config: str | None, task: str, dataset_info: str | None) -> None:
        source = lookup(name, task, dataset_info)
        if source is None:
            if not HUB_ID.fullmatch(name):
                raise unknown_dataset_error(name, task, dataset_info)
            self._add_loaded(self._hub(name, config, name, task, dataset_info), name)
            return
        self.info.update({"source": source.name, "metric": source.metric, "language": source.language})
        if source.columns:
            self.info["columns"] = dict(source.columns)
        if "train" in self.explicit:
            return  # local files given: the registered name brings its facts (task, labels, metric), not its data
        if source.hub_id:
            hub = load_hub_dataset(source.hub_id, config or source.hub_config, source.name, streaming=bool(self.stream))
            self._add_loaded(hub, source.name)
        else:
            self.files.update({split: _local_or_download(url) for split, url in source.files.items()
                               if split not in self.explicit})

    def _hub(self, hub_id: str, config: str | None, label: str, task: str, dataset_info: str | None) -> Any:
        """A Hub id that no registry names; a bare word that does not load is most likely a misspelt name."""
        try:
            return load_hub_dataset(hub_id, config, label, streaming=bool(self.stream))
        except UserError:
            if "/" in hub_id:
                raise
            raise unknown_dataset_error(hub_id, task, dataset_info, hub_tried=True) from None

    def _add_loaded(self, splits: Any, label: str) -> None:
        for split in splits:
            if split not in self.explicit:
                self.loaded[split] = (_materialized(splits[split], split, self.stream), f"{label}[{split}]")


def _local_or_download(location: str) -> Path:
    """A registry entry's file: a local path (a user's registry), else an official URL to download."""
    if "://" not in location:
        path = Path(location)
        if not path.is_file():
            raise UserError(f"data file not found: {location} (named by the dataset registry)")
        return path
    return download_file(location)


def is_hub_layout(path: Path) -> bool:
    """A dataset folder as the Hub stores one: a README whose YAML header lists ``configs:``, or a ``data/``
    folder of split files (``data/train-00000-of-00001.parquet``), which ``datasets.load_dataset`` reads."""
    readme = path / "README.md"
    if readme.is_file():
        text = readme.read_text(encoding="utf-8", errors="replace")
        header = text.split("---", 2)[1] if text.startswith("---") and text.count("---") >= 2 else ""
        if re.search(r"^(configs|dataset_info):", header, re.M):
            return True
    return (path / "data").is_dir() and any((path / "data").iterdir())


def load_hub_folder(path: Path, config: str | None, streaming: bool) -> Any:
    """``datasets.load_dataset`` on a local folder in Hub layout (cached by ``datasets`` like a Hub download)."""
    import datasets

    try:
        return datasets.load_dataset(str(path), config, streaming=streaming)
    except Exception as err:
        raise UserError(f"could not read the dataset folder {path}: {first_line(err)}") from None


def _materialized(ds: Any, split: str, stream: frozenset[str]) -> Any:
    """A split of a streamed Hub dataset that is not itself to be streamed (validation text) is read into memory."""
    import datasets

    if split in stream or not isinstance(ds, datasets.IterableDataset):
        return ds
    return datasets.Dataset.from_list(list(ds))


def is_saved_dataset(path: Path) -> bool:
    """A directory written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``."""
    return (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()


def load_saved_dataset(path: Path) -> dict[str, Any]:
    """Split name -> Dataset from a ``save_to_disk`` directory (a single Dataset is the train split).

    This is how a Hub dataset downloaded on another machine travels to one
    without the network: ``load_dataset("nyu-mll/glue", "mnli").save_to_disk(DIR)``,
    then ``--data DIR``; its split names (``validation_matched``...) and
    ``ClassLabel`` features are kept.
    """
    import datasets

    try:
        saved = datasets.load_from_disk(str(path))
    except Exception as err:
        raise UserError(f"could not read the saved dataset {path}: {str(err).splitlines()[0][:300]}") from None
    return dict(saved) if isinstance(saved, datasets.DatasetDict) else {"train": saved}


def hold_out_validation(train: Any, data: Any, seed: int, info: dict[str, Any]) -> tuple[Any, Any]:
    """(train, eval): ``data.validation_split_percentage`` of the training examples held out, seeded; noted in
    ``info``. ``max_eval_samples`` is applied by split assembly (``tasks/splits.py``), as to a validation file."""
    held = train.train_test_split(test_size=data.validation_split_percentage / 100, seed=seed)
    info["validation_held_out_percent"] = data.validation_split_percentage
    return held["train"], held["test"]


def resolve_eval_source(data: Any, name: str, task: str) -> tuple[Any, str, dict[str, Any]]:
    """One ``--eval-data`` entry: its validation split (else its only/first split), label and source facts."""
    splits, info = resolve_sources(
        data.model_copy(update={"name": name, "train_file": None, "validation_file": None, "test_file": None}), task
    )
    ds, source = splits["validation"] if "validation" in splits else next(iter(splits.values()))
    return ds, source, info
