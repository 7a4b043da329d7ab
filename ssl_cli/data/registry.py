"""Registered datasets: ``--data drcd`` resolves to the real public source.

Each entry names where the data lives (a Hub dataset id or the official file
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


_DRCD = "https://raw.githubusercontent.com/DRCKnowledgeTeam/DRCD/master"
_CMRC = "https://raw.githubusercontent.com/ymcui/cmrc2018/master/squad-style-data"

REGISTRY: dict[str, DatasetSource] = {
    s.name: s
    for s in (
        DatasetSource(
            "drcd", "finetune-qa", "zh", "chinese",
            "Delta Reading Comprehension Dataset (Traditional Chinese Wikipedia), official files",
            files={
                "train": f"{_DRCD}/DRCD_training.json",
                "validation": f"{_DRCD}/DRCD_dev.json",
                "test": f"{_DRCD}/DRCD_test.json",
            },
        ),
        DatasetSource(
            "cmrc2018", "finetune-qa", "zh", "chinese",
            "CMRC 2018 span-extraction reading comprehension (Simplified Chinese), official files",
            files={
                "train": f"{_CMRC}/cmrc2018_train.json",
                "validation": f"{_CMRC}/cmrc2018_dev.json",
                "test": f"{_CMRC}/cmrc2018_trial.json",
            },
        ),
        DatasetSource("squad", "finetune-qa", "en", "squad", "SQuAD v1.1", hub_id="rajpurkar/squad"),
        DatasetSource("squad_v2", "finetune-qa", "en", "squad_v2", "SQuAD v2.0 (with unanswerable questions)",
                      hub_id="rajpurkar/squad_v2"),
    )
}


GLUE_TASKS = ("cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli")
CLUE_TASKS = ("afqmc", "tnews", "iflytek", "ocnli", "cmnli", "csl")
for _task in GLUE_TASKS:
    REGISTRY[f"glue/{_task}"] = DatasetSource(f"glue/{_task}", "finetune-glue", "en", _task, f"GLUE {_task.upper()}",
                                              hub_id="nyu-mll/glue", hub_config=_task)
for _task in CLUE_TASKS:
    REGISTRY[f"clue/{_task}"] = DatasetSource(f"clue/{_task}", "finetune-glue", "zh", _task, f"CLUE {_task.upper()}",
                                              hub_id="clue/clue", hub_config=_task)

XNLI_LANGUAGES = ("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh")
for _source in (
    DatasetSource("mnli", "nli", "en", "accuracy", "MultiNLI (matched and mismatched dev)", hub_id="nyu-mll/multi_nli"),
    DatasetSource("snli", "nli", "en", "accuracy", "Stanford NLI", hub_id="stanfordnlp/snli"),
    DatasetSource("ocnli", "nli", "zh", "accuracy", "Original Chinese NLI (CLUE)", hub_id="clue/clue", hub_config="ocnli"),
    DatasetSource("cmnli", "nli", "zh", "accuracy", "Chinese MultiNLI (CLUE)", hub_id="clue/clue", hub_config="cmnli"),
    *(DatasetSource(f"xnli/{lang}", "nli", lang, "accuracy", f"XNLI ({lang})", hub_id="facebook/xnli", hub_config=lang)
      for lang in XNLI_LANGUAGES),
):
    REGISTRY[_source.name] = _source


# Universal Dependencies treebanks: ``ud/<code>`` -> the official GitHub repository's CoNLL-U files.
_UD = "https://raw.githubusercontent.com/UniversalDependencies"
UD_LANGUAGES = {
    "af": "Afrikaans", "ar": "Arabic", "bg": "Bulgarian", "ca": "Catalan", "cs": "Czech", "cy": "Welsh", "da": "Danish",
    "de": "German", "el": "Greek", "en": "English", "es": "Spanish", "et": "Estonian", "eu": "Basque", "fa": "Persian",
    "fi": "Finnish", "fr": "French", "ga": "Irish", "gl": "Galician", "he": "Hebrew", "hi": "Hindi", "hr": "Croatian",
    "hu": "Hungarian", "hy": "Armenian", "id": "Indonesian", "is": "Icelandic", "it": "Italian", "ja": "Japanese",
    "ko": "Korean", "la": "Latin", "lt": "Lithuanian", "lv": "Latvian", "nl": "Dutch", "no": "Norwegian", "pl": "Polish",
    "pt": "Portuguese", "ro": "Romanian", "ru": "Russian", "sk": "Slovak", "sl": "Slovenian", "sr": "Serbian",
    "sv": "Swedish", "ta": "Tamil", "th": "Thai", "tr": "Turkish", "ug": "Uyghur", "uk": "Ukrainian", "ur": "Urdu",
    "vi": "Vietnamese", "wo": "Wolof", "yue": "Cantonese", "zh": "Chinese",
}
# Repository suffixes whose spelling is not simply the upper-cased code.
UD_TREEBANK_NAMES = {"gsdsimp": "GSDSimp", "gum": "GUM", "gumreddit": "GUMReddit", "partut": "ParTUT",
                     "sequoia": "Sequoia", "rhapsodie": "Rhapsodie", "ancora": "AnCora", "bosque": "Bosque",
                     "pud": "PUD", "lines": "LinES", "talbanken": "Talbanken", "alksnis": "ALKSNIS", "pdt": "PDT",
                     "bokmaal": "Bokmaal", "nynorsk": "Nynorsk", "kaist": "Kaist", "taiga": "Taiga", "syntagrus": "SynTagRus"}


def ud_source(name: str) -> DatasetSource | None:
    """``ud/en_ewt`` -> UD_English-EWT's train/dev/test CoNLL-U files; None when the code cannot be a treebank."""
    code = name.lower().removeprefix("ud/")
    language, _, treebank = code.partition("_")
    if language not in UD_LANGUAGES or not treebank.isalnum():
        return None
    repository = f"UD_{UD_LANGUAGES[language]}-{UD_TREEBANK_NAMES.get(treebank, treebank.upper())}"
    base = f"{_UD}/{repository}/master/{code}-ud"
    files = {"train": f"{base}-train.conllu", "validation": f"{base}-dev.conllu", "test": f"{base}-test.conllu"}
    return DatasetSource(f"ud/{code}", "tag-pos", language, "accuracy",
                         f"Universal Dependencies {repository} (UPOS/XPOS), official CoNLL-U files", files=files)


for _code in ("en_ewt", "en_gum", "zh_gsd", "zh_gsdsimp", "ja_gsd", "ko_kaist", "fr_gsd", "de_gsd"):
    REGISTRY[f"ud/{_code}"] = ud_source(f"ud/{_code}")


def lookup(name: str, task: str) -> DatasetSource | None:
    """The registry entry for ``name`` if it is registered for ``task`` (any ``ud/<treebank>`` is).

    A name that is neither registered nor an existing path gets a one-line
    error listing the task's datasets.
    """
    source = REGISTRY.get(name.lower()) or (ud_source(name) if name.lower().startswith("ud/") else None)
    if source is not None and source.task != task:
        raise UserError(f"dataset '{name}' is for `ssl {source.task}`, not `ssl {task}`")
    return source


def unknown_dataset_error(name: str, task: str) -> UserError:
    names = sorted(n for n, s in REGISTRY.items() if s.task == task)
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
