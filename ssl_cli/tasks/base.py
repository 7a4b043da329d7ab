"""The task protocol: what a subcommand must declare to run on the shared engine.

A task owns its data (loading, schema, preprocessing), its AutoModel head, its
collation, its post-processing and its metrics. The engine owns everything
else: devices, precision, the optimiser, accumulation, checkpoints, logging.
Adding a subcommand is one module in ``ssl_cli/tasks/`` that defines ``TASK``,
one recipe under ``recipes/`` and one test file.

Heavy imports (torch, transformers, datasets) go inside methods so that the
CLI can import every task module to build ``--help`` without loading them.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ssl_cli.config import Recipe
from ssl_cli.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from datasets import Dataset


@dataclass(frozen=True)
class Flag:
    """A first-class CLI flag and the recipe key it sets (its help is that key's description)."""

    name: str  # kebab-case, without the leading dashes
    path: str  # dotted recipe key
    type: type = str
    aliases: tuple[str, ...] = ()


@dataclass
class EvalSet:
    """One evaluation dataset: raw examples, model features, and how to score them."""

    name: str  # "eval", "test" or the label of an --eval-data entry
    examples: Dataset
    features: Dataset | None = None
    info: dict[str, Any] = field(default_factory=dict)  # task-specific, e.g. the metric to use

    def __post_init__(self) -> None:
        """The name becomes output file names (``<name>_predictions.json``): it must not reach outside the output
        directory, whatever a dataset's split names say."""
        if not SAFE_NAME.fullmatch(self.name):
            raise UserError(f"evaluation set name {self.name!r} cannot name output files: rename the split (letters, "
                            "digits, _ . - only, in any script, not starting with a dot)")


SAFE_NAME = re.compile(r"[\w-][\w.-]*")  # letters and digits of any script (开发集), _ . -; no separator, no leading dot


@dataclass
class Splits:
    """Raw data for one run, before tokenisation."""

    train: Dataset | None
    evals: list[EvalSet]
    info: dict[str, Any] = field(default_factory=dict)


class Task(ABC):
    """Base class of every subcommand's task."""

    name: ClassVar[str]  # the subcommand, e.g. "finetune-qa"
    help: ClassVar[str]
    recipe_cls: ClassVar[type[Recipe]]
    flags: ClassVar[tuple[Flag, ...]] = ()
    main_metric: ClassVar[str]
    greater_is_better: ClassVar[bool] = True
    output_names: ClassVar[tuple[str, ...]]  # model outputs gathered at evaluation
    tiny_recipe: ClassVar[str]  # recipes/ file used by the demo and tests
    sample_args: ClassVar[tuple[str, ...]] = ()  # flags the sample data needs besides its files (a GLUE task name)
    pretokenized_input: ClassVar[bool] = False  # text arrives split into words (tagging)
    token_level_loss: ClassVar[bool] = False  # the loss is a mean over labelled tokens (batches weighted by count)
    # each token's output depends on its own sequence only and the loss is over tokens: several sequences can share
    # a training row (ssl_cli.packing)
    packable: ClassVar[bool] = False

    def main_metric_for(self, splits: Splits) -> str:
        """The metric that picks the best checkpoint when the recipe names none (may depend on the data)."""
        return self.main_metric

    def default_recipe(self) -> dict[str, Any]:
        """Built-in defaults, lowest precedence."""
        return {"task": self.name}

    @abstractmethod
    def load_splits(self, recipe: Any) -> Splits:
        """Read raw train/eval/test data (no tokenisation)."""

    @abstractmethod
    def write_sample_data(self, root: Path, seed: int = 1) -> dict[str, Path]:
        """A small generated set in this task's usual file format, {"train": file, "dev": file}, that the tiny
        recipe learns in seconds (about a hundred examples). The tests, the bad-input table and the fault-injection
        suite run every task in the registry on it, so a new task is covered by them without edits."""

    @abstractmethod
    def training_texts(self, train: Dataset) -> Iterator[str]:
        """Text a scratch: tokenizer is trained on."""

    def model_kwargs(self, splits: Splits, recipe: Any) -> dict[str, Any]:
        """Extra ``from_pretrained``/config arguments for the head (e.g. num_labels)."""
        return {}

    @abstractmethod
    def auto_model_class(self) -> Any:
        """The ``transformers`` AutoModel class of the head."""

    @abstractmethod
    def prepare_train(self, examples: Dataset, tokenizer: Any, recipe: Any) -> Dataset:
        """Tokenise training examples into model features with labels."""

    @abstractmethod
    def prepare_eval(self, eval_set: EvalSet, tokenizer: Any, recipe: Any) -> Dataset:
        """Tokenise evaluation examples into features (with what post-processing needs)."""

    def model_class(self, recipe: Any) -> Any:
        """The AutoModel class for this run: ``auto_model_class()`` unless the recipe changes the head (MLM with a
        sentence objective needs the pretraining heads)."""
        return self.auto_model_class()

    def model_input_columns(self) -> list[str]:
        """Feature columns fed to the model (the rest stay for post-processing)."""
        return ["input_ids", "attention_mask", "token_type_ids"]

    def label_columns(self) -> list[str]:
        """Training label columns, passed to the model under their own names."""
        return []

    def sequence_label_columns(self) -> list[str]:
        """Label columns with one value per token (padded with -100); the rest are one value per example."""
        return []

    @abstractmethod
    def score(
        self, eval_set: EvalSet, outputs: dict[str, np.ndarray], recipe: Any
    ) -> tuple[dict[str, float], dict[str, Any]]:
        """Post-process gathered model outputs into (metrics, artefacts to write)."""

    def wrap_collator(self, padder: Any, tokenizer: Any, recipe: Any) -> Any:
        """The batch builder around the padder: masking for MLM, shifted labels for CLM; the padder itself by default."""
        return padder

    def collator_columns(self) -> list[str]:
        """Feature columns the collator reads besides model inputs and labels (kept in training and eval features)."""
        return []

    def fixed_shape_batches(self, recipe: Any) -> bool:
        """Whether batches, training and evaluation, all share one shape (packed blocks): the engine then leaves
        the heap a step frees for the next one instead of trimming it, and keeps CUDA's cuDNN attention, which
        plans once per shape. Default: False."""
        return False

    def adapt_model_for_training(self, model: Any, recipe: Any) -> None:
        """Change how the model computes its training loss, before the engine wraps it (MLM: the head only at
        masked positions). The saved checkpoint must stay an ordinary one. Default: nothing."""
        return None

    def loss_token_count(self, batch: dict[str, Any]) -> Any | None:
        """For a loss that is a mean over this batch's predicted tokens: their count (a tensor), so that several
        processes weigh every token alike (see ``Engine.train``). None: a mean over examples."""
        return None

    def eval_tensors(self, outputs: Any, labels: Any) -> dict[str, Any]:
        """Per-feature tensors gathered at evaluation: the model outputs named in ``output_names`` by default.

        ``labels`` are the batch's labels when the eval collator makes them (MLM
        masks), taken out of the model call so they can be reduced here.
        """
        return {name: outputs[name] for name in self.output_names}

    def write_predictions(self, eval_set: EvalSet, artefacts: dict[str, Any], output_dir: str) -> list[str]:
        """Write prediction files; return their names."""
        return []


def eval_set_label(name: str) -> str:
    """The key of an --eval-data entry in results: a file's stem, or the registered name (xnli/zh -> xnli_zh)."""
    path = Path(name).expanduser()
    stem = path.stem if path.suffix or path.exists() else name
    return _as_label(stem)


def _as_label(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text).strip("_").lower() or "extra"


# Names the validation and test sets use (MNLI's second validation set is "mismatched"): their results and
# prediction files would be replaced by an --eval-data set of the same name.
RESERVED_EVAL_NAMES = ("eval", "test", "mismatched")


def extra_eval_labels(names: list[str]) -> list[str]:
    """One unique label per --eval-data entry, in order, none a reserved name: a name that collides takes its
    folders in front (other/eval.json -> other_eval), then a number (dev_2)."""
    labels: list[str] = []
    for name in names:
        path = Path(name).expanduser()
        label = eval_set_label(name)
        parents = [p.name for p in path.resolve().parents if p.name] if path.suffix or path.exists() else []
        for parent in parents:
            if not _taken(label, labels):
                break
            label = _as_label(f"{parent}_{label}")
        base, number = label, 2
        while _taken(label, labels):
            label, number = f"{base}_{number}", number + 1
        labels.append(label)
    return labels


def _taken(label: str, labels: list[str]) -> bool:
    return label in labels or label in RESERVED_EVAL_NAMES or label.startswith("test_")
