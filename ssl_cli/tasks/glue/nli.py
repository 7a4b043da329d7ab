"""``ssl nli``: premise + hypothesis -> entailment / neutral / contradiction.

A thin specialisation of the classification task: the NLI datasets by name
(MNLI, SNLI, XNLI per language, OCNLI, CMNLI), one canonical label order for
all of them, so a model trained on one is scored on another by label name
(zero-shot cross-lingual transfer with ``--eval-data xnli/zh,ocnli``), label
spellings and dataset-specific numeric codes normalised, rows without a gold
label dropped and counted, and a confusion matrix per evaluation set (a
table in the terminal, JSON and PNG in the output directory).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ssl_cli.errors import UserError, did_you_mean
from ssl_cli.tasks.glue.datasets import NLI_DATASETS
from ssl_cli.tasks.glue.task import ClassificationRecipe, ClassificationTask, TaskSpec

NLI_LABELS = ("entailment", "neutral", "contradiction")
_CLUE_ORDER = ("neutral", "entailment", "contradiction")  # CLUE's numeric codes for OCNLI/CMNLI
_PREMISE, _HYPOTHESIS, _LABEL = ("premise", "sentence1"), ("hypothesis", "sentence2"), ("label", "gold_label")
NLI_SPECS: dict[str, TaskSpec] = {
    "mnli": TaskSpec("mnli", _PREMISE, _HYPOTHESIS, _LABEL, NLI_LABELS),
    "snli": TaskSpec("snli", _PREMISE, _HYPOTHESIS, _LABEL, NLI_LABELS),
    "xnli": TaskSpec("xnli", _PREMISE, _HYPOTHESIS, _LABEL, NLI_LABELS),
    "ocnli": TaskSpec("ocnli", ("sentence1",), ("sentence2",), _LABEL, _CLUE_ORDER),
    "cmnli": TaskSpec("cmnli", ("sentence1",), ("sentence2",), _LABEL, _CLUE_ORDER),
}
LABEL_ALIASES = {"entails": "entailment", "entailed": "entailment", "contradictory": "contradiction",
                 "contradicts": "contradiction", "neutrality": "neutral"}


class NLITask(ClassificationTask):
    name = "nli"
    flag_help = {"data.max_seq_length": "Maximum tokens per example: premise and hypothesis, truncated beyond."}
    tiny_recipe = "recipes/nli/tiny-en-offline.yaml"
    sample_args = ()
    datasets = NLI_DATASETS
    registry_prefixes = ()
    show_confusion = True

    def write_sample_data(self, root: Path, seed: int = 1) -> dict[str, Path]:
        from ssl_cli.tasks.glue.data import write_task

        return write_task("colour_match", root, n_train=120, n_dev=21, seed=seed, suffix=".jsonl")

    def task_specs(self) -> dict[str, TaskSpec]:
        return NLI_SPECS

    def task_of_source(self, source: str | None) -> str | None:
        """Registered NLI names are the task names themselves (mnli, xnli/zh, ocnli)."""
        entry = self.find_dataset(source or "")
        return entry.name if entry is not None else None

    def normalise_label(self, key: str) -> str:
        lowered = key.lower()
        return LABEL_ALIASES.get(lowered, lowered)

    def _label_space(self, recipe: ClassificationRecipe, spec: TaskSpec | None, ds: Any, source: str) -> dict[str, Any]:
        """Always the canonical order, so every NLI dataset scores against the same ids."""
        space = super()._label_space(recipe, spec, ds, source)
        if not recipe.classification.label_list and not space["regression"]:
            found = [label for label in space["label_list"] if label not in NLI_LABELS and not label.isdigit()]
            if found:  # a typo (contradictoin) would otherwise become a fourth class
                raise UserError(f"{source}: label {found[0][:40]!r} is not an NLI label ({', '.join(NLI_LABELS)})"
                                f"{did_you_mean(found[0], NLI_LABELS)}; fix the data, or set classification.label_list "
                                "for another label set")
            space["label_list"] = list(NLI_LABELS)
        return space


TASK = NLITask()
