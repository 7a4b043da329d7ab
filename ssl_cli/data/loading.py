"""Resolve ``--data`` / ``--train-file`` / ... into raw ``datasets`` splits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ssl_cli.data.files import download_file, files_in_directory, load_data_file
from ssl_cli.data.registry import load_hub_dataset, lookup, unknown_dataset_error
from ssl_cli.errors import UserError


def resolve_sources(data: Any, task: str, stream: frozenset[str] = frozenset()) -> tuple[dict[str, tuple[Any, str]], dict[str, Any]]:
    """Split name -> (Dataset, label for messages), plus facts about the source (metric, language).

    ``data.name`` may be a registered dataset, a directory or a single file (a
    single file is the training split); explicit split files override it.
    The splits named in ``stream`` come as ``datasets.IterableDataset``: read
    lazily, never loaded whole or cached (pretraining on large corpora).
    """
    explicit = {"train": data.train_file, "validation": data.validation_file, "test": data.test_file}
    explicit = {split: Path(path).expanduser() for split, path in explicit.items() if path}
    files: dict[str, Path] = {}
    loaded: dict[str, tuple[Any, str]] = {}
    info: dict[str, Any] = {}
    if data.name:
        path = Path(data.name).expanduser()
        info["source"] = data.name
        if path.is_dir() and is_saved_dataset(path):
            loaded.update({split: (ds.to_iterable_dataset() if split in stream else ds, f"{path}[{split}]")
                           for split, ds in load_saved_dataset(path).items() if split not in explicit})
        elif path.is_dir():
            files.update(files_in_directory(path))
        elif path.is_file():
            files["train"] = path
        elif data.name.startswith(("/", ".", "~")) or Path(data.name).suffix in {".json", ".jsonl", ".csv", ".tsv", ".parquet"}:
            raise UserError(f"data file not found: {data.name} (check the path)")
        else:
            source = lookup(data.name, task)
            if source is None:
                raise unknown_dataset_error(data.name, task)
            info.update({"source": source.name, "metric": source.metric, "language": source.language})
            if source.hub_id:
                hub = load_hub_dataset(source, streaming=bool(stream))
                loaded.update({split: (_materialized(hub[split], split, stream), f"{source.name}[{split}]")
                               for split in hub if split not in explicit})
            else:
                files.update({split: download_file(url) for split, url in source.files.items() if split not in explicit})
    files.update(explicit)
    from ssl_cli.tasks import all_tasks

    reader = all_tasks()[task].read_document if task in all_tasks() else None
    for split, path in files.items():
        loaded[split] = (load_data_file(path, sample_by=data.text_sample_by, streaming=split in stream,
                                        read_document=reader), str(path))
    if not loaded:
        raise UserError("no data given: pass --data NAME|PATH, or --train-file/--validation-file")
    return loaded, info


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
