"""Local data files -> ``datasets.Dataset``, with errors that name the file and record.

Formats: JSON lines, a JSON array, SQuAD-style nested JSON
(``data[].paragraphs[].qas[]``), CSV/TSV, Parquet, CoNLL-U and CoNLL-2003-style
column files. Nested SQuAD JSON and CoNLL files are flattened once into a
JSON-lines file under the ``datasets`` cache (named by the source's content
hash), so that loading and every later ``map`` are cached by ``datasets``
fingerprints like any other file.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ssl_cli.data.conll import is_conll_file, read_conll
from ssl_cli.engine.durability import sha256_of
from ssl_cli.errors import UserError, not_utf8

# (document, path) -> flat records, or None for a document that is not the task's layout
DocumentReader = Callable[[Any, Path], 'list[dict[str, Any]] | None']

SUFFIX_BUILDERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".txt": "text"}

# Official file names recognised inside a --data directory, per split: DRCD, CMRC 2018, SQuAD, the MultiNLI and
# SNLI JSON-lines distributions, and FewCLUE (train_few_all/dev_few_all; test_public is its labelled test set).
KNOWN_SPLIT_FILES = {
    "train": ("DRCD_training.json", "cmrc2018_train.json", "train-v1.1.json", "train-v2.0.json",
              "multinli_1.0_train.jsonl", "snli_1.0_train.jsonl", "train_few_all.json"),
    "validation": ("DRCD_dev.json", "cmrc2018_dev.json", "dev-v1.1.json", "dev-v2.0.json", "snli_1.0_dev.jsonl",
                   "dev_few_all.json"),
    "validation_matched": ("multinli_1.0_dev_matched.jsonl",),
    "validation_mismatched": ("multinli_1.0_dev_mismatched.jsonl",),
    "test": ("DRCD_test.json", "cmrc2018_trial.json", "snli_1.0_test.jsonl", "test_public.json"),
}
# Conventional stems; GLUE's MNLI folder has dev_matched.tsv / dev_mismatched.tsv / test_matched.tsv / ...
GENERIC_SPLIT_STEMS = {"train": ("train",), "validation": ("validation", "dev", "valid", "eval"),
                       "validation_matched": ("dev_matched", "validation_matched"),
                       "validation_mismatched": ("dev_mismatched", "validation_mismatched"),
                       "test": ("test",), "test_matched": ("test_matched",), "test_mismatched": ("test_mismatched",)}
DIRECTORY_SUFFIXES = (*SUFFIX_BUILDERS, ".conllu", ".conll")  # train.txt, dev.conllu...
UD_SPLIT_NAMES = {"train": "train", "validation": "dev", "test": "test"}  # en_ewt-ud-dev.conllu


def files_in_directory(directory: Path) -> dict[str, Path]:
    """Find split files in a directory by official or conventional names."""
    found: dict[str, Path] = {}
    for split, names in KNOWN_SPLIT_FILES.items():
        for name in names:
            if (directory / name).is_file():
                found.setdefault(split, directory / name)
    for split, stems in GENERIC_SPLIT_STEMS.items():
        for stem in stems:
            for suffix in DIRECTORY_SUFFIXES:
                if split not in found and (directory / f"{stem}{suffix}").is_file():
                    found[split] = directory / f"{stem}{suffix}"
    for split, ud_name in UD_SPLIT_NAMES.items():  # a Universal Dependencies treebank folder
        treebank = sorted(directory.glob(f"*-ud-{ud_name}.conllu"))
        if split not in found and treebank:
            found[split] = treebank[0]
    if not found:
        raise UserError(
            f"no data files found in {directory}: expected train/validation/test files (e.g. train.json, dev.json, "
            "dev.conllu) or official names such as DRCD_training.json, cmrc2018_dev.json, en_ewt-ud-dev.conllu"
        )
    return found


def _cache_root() -> Path:
    import datasets

    root = Path(datasets.config.HF_DATASETS_CACHE) / "ssl_cli_flat"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _read_json_document(path: Path) -> Any | None:
    """The parsed JSON document, or None when the file is JSON lines."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise UserError(not_utf8(f"{path} (byte {err.start})")) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        if err.msg == "Extra data":  # several top-level values: JSON lines
            return None
        first_line = text.lstrip()[:1]
        if first_line == "{" and "\n" in text.strip():
            try:
                json.loads(text.strip().splitlines()[0])
                return None
            except json.JSONDecodeError:
                pass
        raise UserError(f"{path} is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}") from None


def _flattened_file(path: Path, read_records: Callable[[], list[dict[str, Any]]], kind: str) -> Path:
    """Write (once) a JSON-lines copy of ``read_records()`` named by the source's content; atomic rename."""
    target = _cache_root() / f"{path.stem}-{kind}-{sha256_of(path)[:16]}.jsonl"
    if not target.exists():
        records = read_records()
        tmp = target.with_suffix(f".tmp{os.getpid()}")
        with tmp.open("w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        tmp.replace(target)
    return target


def load_data_file(path: str | Path, column_names: list[str] | None = None, sample_by: str = "line",
                   streaming: bool = False, read_document: DocumentReader | None = None):
    """Load one local file as a ``datasets.Dataset`` (cached by ``datasets``), or with ``streaming`` as an
    ``IterableDataset`` read lazily (JSON lines, CSV, TSV, Parquet and text; a JSON document is read whole).

    TSV is read as GLUE distributes it: no quoting (sentences hold stray
    quote marks), and ``column_names`` for files without a header (CoLA).
    Plain text becomes one ``text`` record per line (``sample_by``: or per
    blank-line-separated paragraph, or the whole file). A JSON document that is
    not a list of records (SQuAD's nested articles, C3's passages) is the
    task's to read: ``read_document(document, path)`` flattens it to records
    (``Task.read_document``), once, into a cached JSON-lines copy.
    """
    path = Path(path).expanduser()
    if not path.exists() and any(c in str(path) for c in "*?["):
        return _load_shards(path, sample_by, streaming)
    if not path.exists():
        raise UserError(f"data file not found: {path} (check the path, or pass a registered name such as drcd)")
    if path.is_dir():
        raise UserError(f"{path} is a directory: pass it with --data, or a file with --train-file/--validation-file")
    if not path.is_file():
        raise UserError(f"{path} is {_file_kind(path)}, not a regular file: save the data to a file and pass that")
    if not os.access(path, os.R_OK):
        raise UserError(f"data file is not readable: {path} (check its permissions)")
    suffix = path.suffix.lower()
    if suffix != ".parquet":
        _check_is_text(path)
    if is_conll_file(path):
        return _load_json_lines(_flattened_file(path, lambda: read_conll(path), "conll"), path)
    if suffix not in SUFFIX_BUILDERS:
        raise UserError(f"{path}: unsupported data format '{suffix}' "
                        "(use .json, .jsonl, .csv, .tsv, .parquet, .txt, .conllu or .conll)")
    data_file = path
    if suffix == ".json":
        document = _read_json_document(path)
        if document is not None and not _is_records(document):
            records = read_document(document, path) if read_document is not None else None
            if records is None:
                raise UserError(f"{path}: expected a JSON list of records or JSON lines (one object per example), "
                                f"not {_json_kind(document)}")
            data_file = _flattened_file(path, lambda: records, _reader_name(read_document))
    return _load_with_builder(SUFFIX_BUILDERS[suffix], data_file, path, _builder_kwargs(suffix, sample_by, column_names),
                              streaming)


def _json_kind(document: Any) -> str:
    """What a JSON document is, for an error: 'a number', 'an object' (of a layout this task does not read)..."""
    if isinstance(document, dict):
        return "an object of a layout this command does not read"
    if isinstance(document, list):
        return "a list of non-objects"
    return {bool: "a boolean", str: "a string", type(None): "null"}.get(type(document), "a number")


def _is_records(document: Any) -> bool:
    """A JSON list of objects (or an empty list): what ``datasets``' JSON builder reads as rows."""
    return isinstance(document, list) and all(isinstance(item, dict) for item in document[:100])


def _reader_name(read_document: DocumentReader) -> str:
    """Names the flattened copy by its reader: two tasks may read one file differently."""
    owner = getattr(read_document, "__self__", None)
    return re.sub(r"\W", "_", type(owner).__name__ if owner is not None else read_document.__name__)


def _file_kind(path: Path) -> str:
    import stat

    mode = path.stat().st_mode
    kinds = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"))
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def _check_is_text(path: Path) -> None:
    """A text format whose first 64 KB hold a NUL byte is binary or UTF-16: say so at once, not after a parser
    has read all of it."""
    with path.open("rb") as handle:
        start = handle.read(1 << 16)
    if b"\x00" in start:
        raise UserError(f"{path} is not UTF-8 text (it holds NUL bytes: binary, or UTF-16): convert it, e.g. "
                        "iconv -f utf-16 -t utf-8")


def _builder_kwargs(suffix: str, sample_by: str, column_names: list[str] | None = None) -> dict[str, Any]:
    """How ``datasets`` must read a file of this suffix."""
    kwargs: dict[str, Any] = {}
    if suffix == ".tsv":
        kwargs.update(delimiter="\t", quoting=csv.QUOTE_NONE)
    if suffix == ".txt":
        kwargs.update(sample_by=sample_by, encoding="utf-8-sig")  # a byte-order mark is not text
    if suffix in (".tsv", ".csv"):
        kwargs.update(keep_default_na=False)  # a sentence "NA" or "null" is text, not a missing value
        if column_names:
            kwargs.update(column_names=column_names)
    return kwargs


SHARD_SUFFIXES = (".jsonl", ".csv", ".parquet", ".txt")


def _load_shards(pattern: Path, sample_by: str, streaming: bool):
    """The files a glob matches (a sharded corpus, ``shards/*.txt``), in name order, as one split of one format."""
    import glob

    files = sorted(glob.glob(str(pattern)))
    if not files:
        raise UserError(f"no file matches {pattern} (check the pattern)")
    suffixes = sorted({Path(f).suffix.lower() for f in files})
    if len(suffixes) > 1 or suffixes[0] not in SHARD_SUFFIXES:
        raise UserError(f"{pattern} matches {', '.join(suffixes)} files: shards must all be one of "
                        f"{', '.join(SHARD_SUFFIXES)}")
    return _load_with_builder(SUFFIX_BUILDERS[suffixes[0]], files, pattern, _builder_kwargs(suffixes[0], sample_by),
                              streaming)


def _load_json_lines(data_file: Path, path: Path):
    return _load_with_builder("json", data_file, path, {})


def _load_with_builder(builder: str, data_file: Path | list[str], path: Path, kwargs: dict[str, Any],
                       streaming: bool = False):
    import datasets

    data_files = [str(f) for f in data_file] if isinstance(data_file, list) else str(data_file)
    library_log = datasets.utils.logging.get_logger("datasets")
    level = library_log.level
    library_log.setLevel(logging.CRITICAL)  # a parse failure is reported once, by us, not also logged by datasets
    try:
        loaded = datasets.load_dataset(builder, data_files={"data": data_files}, split="data", streaming=streaming,
                                       **kwargs)
    except Exception as err:  # datasets raises many types for malformed files
        raise UserError(_read_error(path, err)) from None
    finally:
        library_log.setLevel(level)
    if streaming:
        return loaded  # its records are checked as they are read
    if len(loaded) == 0:
        raise UserError(f"{path} contains no records")
    return loaded


def _read_error(path: Path, err: Exception) -> str:
    """One line for a file ``datasets`` could not read, in the user's terms where the cause is known (datasets
    wraps the parser's error as "An error occurred while generating the dataset": the cause is further down)."""
    chain: list[BaseException] = [err]
    while (cause := chain[-1].__cause__ or chain[-1].__context__) is not None and len(chain) < 10:
        chain.append(cause)
    texts = [str(e) for e in chain]
    if path.is_file() and not path.read_bytes()[:4096].strip() and path.stat().st_size < 4096:
        return f"{path} is empty: give it at least one record"
    if any("corresponds to no data" in t for t in texts):
        return f"{path} contains no records (only a header, or nothing): give it at least one"
    if any(isinstance(e, UnicodeDecodeError) or "codec can't decode" in t for e, t in zip(chain, texts, strict=True)):
        return f"{not_utf8(str(path))} (or -f utf-16)"
    if path.suffix.lower() in (".jsonl", ".json") and path.is_file() and (problem := _json_lines_problem(path)):
        return problem
    cause = next((t for t in reversed(texts) if t.strip()), type(err).__name__)
    return f"could not read {path}: {cause.splitlines()[0][:300]}"


def _json_lines_problem(path: Path) -> str | None:
    """The first line of a JSON-lines file that is not a JSON object, named with its number; only read once
    ``datasets`` has failed, so a good file is never parsed twice."""
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                return f"{path}:{number}: not valid JSON ({err.msg} at column {err.colno}); fix or remove the line"
            if not isinstance(record, dict):
                return (f"{path}:{number}: a JSON-lines record must be an object {{...}}, not "
                        f"{type(record).__name__ if record is not None else 'null'}; write one object per line")
    return None


def download_file(url: str) -> Path:
    """Download (or reuse the cached copy of) an official data file URL."""
    import datasets

    if datasets.config.HF_HUB_OFFLINE:
        raise UserError(
            f"cannot download {url}: offline mode (HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set). "
            "Download the file elsewhere and pass it with --data DIR or --train-file/--validation-file"
        )
    try:
        cached = Path(datasets.DownloadManager().download(url))
    except Exception as err:
        raise UserError(
            f"cannot download {url} ({type(err).__name__}): the network is unreachable. "
            "Download the file elsewhere and pass it with --data DIR or --train-file/--validation-file"
        ) from None
    return with_url_suffix(cached, url)


def with_url_suffix(cached: Path, url: str) -> Path:
    """The download under a name ending like the URL (the cache names files by hash, and the format is read
    from the suffix): a symlink beside it, or a copy where links are not allowed."""
    import shutil
    from urllib.parse import urlparse

    suffix = Path(urlparse(url).path).suffix
    if not suffix or cached.suffix == suffix:
        return cached
    named = cached.with_name(cached.name + suffix)
    if not named.exists():
        try:
            named.symlink_to(cached.name)
        except OSError:
            shutil.copyfile(cached, named)
    return named
