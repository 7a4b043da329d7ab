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

from typing import Any

from ssl_cli.tasks.classification import ClassificationRecipe, ClassificationTask, TaskSpec

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
    help = "Natural language inference: premise/hypothesis to entailment, neutral or contradiction (MNLI, XNLI, OCNLI)."
    tiny_recipe = "recipes/nli/tiny-en-offline.yaml"
    registry_prefixes = ()
    show_confusion = True

    def task_specs(self) -> dict[str, TaskSpec]:
        return NLI_SPECS

    def task_of_source(self, source: str | None) -> str | None:
        """Registered NLI names are the task names themselves (mnli, xnli/zh, ocnli)."""
        from ssl_cli.data.registry import REGISTRY

        entry = REGISTRY.get((source or "").lower())
        return entry.name if entry is not None and entry.task == self.name else None

    def normalise_label(self, key: str) -> str:
        lowered = key.lower()
        return LABEL_ALIASES.get(lowered, lowered)

    def _label_space(self, recipe: ClassificationRecipe, spec: TaskSpec | None, ds: Any) -> dict[str, Any]:
        """Always the canonical order, so every NLI dataset scores against the same ids."""
        space = super()._label_space(recipe, spec, ds)
        if not recipe.classification.label_list and not space["regression"]:
            found = [label for label in space["label_list"] if label not in NLI_LABELS and not label.isdigit()]
            space["label_list"] = list(NLI_LABELS) + found
        return space


TASK = NLITask()
