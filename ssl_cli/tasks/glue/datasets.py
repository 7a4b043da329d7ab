"""Registered classification datasets: GLUE and CLUE on the Hub (finetune-glue), and the NLI corpora (nli)."""

from __future__ import annotations

from ssl_cli.data.registry import DatasetSource

GLUE_TASKS = ("cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli")
CLUE_TASKS = ("afqmc", "tnews", "iflytek", "ocnli", "cmnli", "csl")
DATASETS = (
    *(DatasetSource(f"glue/{_task}", "finetune-glue", "en", _task, f"GLUE {_task.upper()}",
                    hub_id="nyu-mll/glue", hub_config=_task) for _task in GLUE_TASKS),
    *(DatasetSource(f"clue/{_task}", "finetune-glue", "zh", _task, f"CLUE {_task.upper()}",
                    hub_id="clue/clue", hub_config=_task) for _task in CLUE_TASKS),
)


XNLI_LANGUAGES = ("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh")
NLI_DATASETS = (
    DatasetSource("mnli", "nli", "en", "accuracy", "MultiNLI (matched and mismatched dev)", hub_id="nyu-mll/multi_nli"),
    DatasetSource("snli", "nli", "en", "accuracy", "Stanford NLI", hub_id="stanfordnlp/snli"),
    DatasetSource("ocnli", "nli", "zh", "accuracy", "Original Chinese NLI (CLUE)", hub_id="clue/clue", hub_config="ocnli"),
    DatasetSource("cmnli", "nli", "zh", "accuracy", "Chinese MultiNLI (CLUE)", hub_id="clue/clue", hub_config="cmnli"),
    *(DatasetSource(f"xnli/{lang}", "nli", lang, "accuracy", f"XNLI ({lang})", hub_id="facebook/xnli", hub_config=lang)
      for lang in XNLI_LANGUAGES),
)
