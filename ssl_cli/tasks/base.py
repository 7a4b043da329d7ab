"""The task protocol: what a subcommand declares to run on the shared engine.

A task owns its data (one table into canonical examples), its AutoModel head,
its features and collation, its post-processing and its metrics. The engine
owns everything else: devices, precision, the optimiser, loss weighting,
accumulation, checkpoints, logging. Split assembly (``tasks/splits.py``) and
the run itself (``ssl_cli/run.py``) are written once for every task.

A task is one folder, ``ssl_cli/tasks/<name>/``, whose ``__init__`` declares its
``COMMANDS``; ``docs/adding-a-task.md`` walks through one.

Heavy imports (torch, transformers, datasets) go inside methods so that
building a command's options and validating its recipe do not load them.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from ssl_cli.config import Recipe
from ssl_cli.errors import UserError
from ssl_cli.flags import Flag

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from datasets import Dataset

    from ssl_cli.data.registry import DatasetSource


@dataclass(frozen=True)
class Traits:
    """What the run and the engine need to know about a task, as data rather than hooks."""

    # feature columns fed to the model; the rest stay for post-processing
    inputs: tuple[str, ...] = ("input_ids", "attention_mask", "token_type_ids")
    labels: tuple[str, ...] = ()  # training label columns, passed to the model under their own names
    token_labels: tuple[str, ...] = ()  # those of ``labels`` with one value per token (padded with -100)
    collator_reads: tuple[str, ...] = ()  # feature columns the collator reads besides inputs and labels
    outputs: tuple[str, ...] = ("logits",)  # model outputs gathered at evaluation (``Task.eval_tensors``)
    # What the loss is a mean over, so that every process and micro-batch weighs it alike: "rows" (examples),
    # "labelled_tokens" (label != -100: tags, masked tokens) or "predicted_tokens" (next-token labels, shifted).
    loss_weighting: Literal["rows", "labelled_tokens", "predicted_tokens"] = "rows"
    # each token's output depends on its own sequence only and the loss is over tokens: several sequences can
    # share a training row (ssl_cli.engine.packing)
    packable: bool = False
    # every batch, training and evaluation, has one shape (packed blocks): the engine then leaves the heap a
    # step frees for the next one, and keeps CUDA's cuDNN attention, which plans once per shape
    fixed_shapes: bool = False
    pretokenized: bool = False  # text arrives split into words (the tokenizer gets is_split_into_words)
    pipeline_tag: str = "feature-extraction"  # the model card's Hub pipeline tag
    pipeline_module: str | None = None  # a module to import before ``pipeline(...)`` (a task transformers lacks)
    pipeline_name: str | None = None  # the ``pipeline(...)`` task name, where it differs from the tag
    summary_aliases: tuple[str, ...] = ()  # eval metrics also written unprefixed (perplexity, as run_mlm.py)


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

    name: ClassVar[str]  # the subcommand (ssl <name>)
    recipe_cls: ClassVar[type[Recipe]]
    flags: ClassVar[tuple[Flag, ...]] = ()
    flag_aliases: ClassVar[dict[str, str]] = {}  # other spellings of its flags (the example scripts'): alias -> flag
    flag_help: ClassVar[dict[str, str]] = {}  # recipe key -> what --help says of its flag on this command
    model_heads: ClassVar[tuple[str, ...]] = ()  # architecture suffixes of its models (ssl evaluate finds the task)
    main_metric: ClassVar[str]
    greater_is_better: ClassVar[bool] = True
    traits: ClassVar[Traits] = Traits()
    datasets: ClassVar[tuple[DatasetSource, ...]] = ()  # what ``--data NAME`` resolves to (``data/registry.py``)
    tiny_recipe: ClassVar[str]  # recipes/ file used by the demo and tests
    sample_args: ClassVar[tuple[str, ...]] = ()  # flags the sample data needs besides its files (a GLUE task name)

    @property
    def help(self) -> str:
        """The command's ``--help`` line, as its folder's ``COMMANDS`` declares it (``ssl --help`` reads it there
        without importing the task)."""
        from ssl_cli.tasks import task_commands

        return task_commands()[self.name].help

    # ------------------------------------------------------------------ data

    def load_splits(self, recipe: Any) -> Splits:
        """Read raw train/eval/test data (no tokenisation): ``tasks/splits.py`` through the hooks below."""
        from ssl_cli.tasks.splits import assemble_splits

        return assemble_splits(self, recipe)

    @abstractmethod
    def read_split(self, ds: Dataset, source: str, recipe: Any, info: dict[str, Any], role: str) -> Dataset:
        """One table as this task's canonical examples (checked: one-line errors naming ``source``). ``role`` is
        "train", "eval" or "test" (a test set may lack labels). ``info`` holds what ``survey`` found; facts about
        this set go into it too (it becomes the run's info for "train", the set's ``EvalSet.info`` otherwise)."""

    def read_document(self, document: Any, path: Path) -> list[dict[str, Any]] | None:
        """A JSON file that is not a list of records, in this task's nested layout (SQuAD's articles), as flat
        records; None: not a layout this task reads. Default: None."""
        return None

    def survey(self, raw: dict[str, tuple[Dataset, str]], recipe: Any, info: dict[str, Any]) -> None:
        """Learn what every split shares before any is read (a label space), into ``info``. Default: nothing."""
        return None

    def hold_out(self, train: Dataset, recipe: Any, info: dict[str, Any]) -> tuple[Dataset, Dataset]:
        """(train, validation) when the data has no validation split: ``data.validation_split_percentage``."""
        from ssl_cli.data.loading import hold_out_validation

        return hold_out_validation(train, recipe.data, recipe.training.seed, info)

    def finish_splits(self, splits: Splits, recipe: Any) -> Splits:
        """What needs every set at once (a tag list from training, a scorer per set). Default: as read."""
        return splits

    def find_dataset(self, name: str) -> DatasetSource | None:
        """The registered dataset ``--data NAME`` means, if any (a task may resolve whole families: ud/*)."""
        return next((d for d in self.datasets if d.name == name.lower()), None)

    def predict_rows(self, model: Any, tokenizer: Any, rows: list[dict[str, Any]], settings: dict[str, Any],
                     first_row: int = 1) -> list[dict[str, Any]]:
        """``ssl predict``: raw input rows (JSON objects) -> each row with its prediction added, in one batch
        (``settings``: the recipe saved with the model; ``first_row``: the batch's first row number, for errors).
        Default: this task's models are not served by ``ssl predict``."""
        raise UserError(f"ssl predict does not serve {self.name} models: it takes finetune-glue, nli, tag-pos and "
                        "finetune-qa models (ssl generate samples from pretrain-clm models)")

    def write_predicted(self, rows: list[dict[str, Any]], path: Path) -> bool:
        """Write ``ssl predict``'s rows in a format of this task's for ``path``'s suffix; False: not one (JSON
        lines then). Default: False."""
        return False

    @abstractmethod
    def write_sample_data(self, root: Path, seed: int = 1) -> dict[str, Path]:
        """A small generated set in this task's usual file format, {"train": file, "dev": file}, that the tiny
        recipe learns in seconds (about a hundred examples). The tests, the bad-input table and the fault-injection
        suite run every task in the registry on it, so a new task is covered by them without edits."""

    @abstractmethod
    def training_texts(self, train: Dataset) -> Iterator[str]:
        """Text a scratch: tokenizer is trained on."""

    # ------------------------------------------------------------------ model

    def main_metric_for(self, splits: Splits) -> str:
        """The metric that picks the best checkpoint when the recipe names none (may depend on the data)."""
        return self.main_metric

    def traits_for(self, recipe: Any) -> Traits:
        """This run's traits: ``traits``, unless the recipe changes one (MLM's sentence pairs vary in shape)."""
        return self.traits

    def default_recipe(self) -> dict[str, Any]:
        """Built-in defaults, lowest precedence."""
        return {"task": self.name}

    @abstractmethod
    def model_class(self, recipe: Any) -> Any:
        """The ``transformers`` AutoModel class of the head for this run."""

    def model_kwargs(self, splits: Splits, recipe: Any) -> dict[str, Any]:
        """Extra ``from_pretrained``/config arguments for the head (e.g. num_labels)."""
        return {}

    def adapt_model_for_training(self, model: Any, recipe: Any) -> None:
        """Change how the model computes its training loss, before the engine wraps it (MLM: the head only at
        masked positions). The saved checkpoint must stay an ordinary one. Default: nothing."""
        return None

    # ------------------------------------------------------------------ features

    @abstractmethod
    def prepare_train(self, examples: Dataset, tokenizer: Any, recipe: Any) -> Dataset:
        """Tokenise training examples into model features with labels (and a ``length`` column)."""

    @abstractmethod
    def prepare_eval(self, eval_set: EvalSet, tokenizer: Any, recipe: Any) -> Dataset:
        """Tokenise evaluation examples into features (with what post-processing needs, and ``feature_index``)."""

    def collator(self, tokenizer: Any, recipe: Any, training: bool, fixed_length: int | None) -> Any:
        """The batch builder: pads the traits' inputs and token labels (with -100), stacks the rest. Training
        batches carry the labels, evaluation batches the token labels and ``feature_index``."""
        from ssl_cli.engine.collate import PaddingCollator

        traits = self.traits_for(recipe)
        scalars = [c for c in traits.labels if c not in traits.token_labels] if training else ["feature_index"]
        sequences = [*traits.inputs, *(c for c in traits.labels if c in traits.token_labels)]
        return PaddingCollator(sequences, scalars, pad_token_id=tokenizer.pad_token_id or 0,
                               pad_to_multiple_of=recipe.training.pad_to_multiple_of, fixed_length=fixed_length)

    # ------------------------------------------------------------------ scoring

    def eval_tensors(self, outputs: Any, labels: Any) -> dict[str, Any]:
        """Per-feature tensors gathered at evaluation: the model outputs named in ``traits.outputs`` by default.

        ``labels`` are the batch's labels when the eval collator makes them (MLM
        masks), taken out of the model call so they can be reduced here.
        """
        return {name: outputs[name] for name in self.traits.outputs}

    @abstractmethod
    def score(
        self, eval_set: EvalSet, outputs: dict[str, np.ndarray], recipe: Any
    ) -> tuple[dict[str, float], dict[str, Any]]:
        """Post-process gathered model outputs into (metrics, artefacts to write)."""

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
