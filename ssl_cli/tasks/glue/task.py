"""``ssl finetune-glue``: single-sentence and sentence-pair classification and regression.

One module serves every GLUE and CLUE task and any local table: a task spec
(``--task sst2``, or implied by ``--data glue/sst2``) fixes the columns, the
label list, the problem type and the metric, as ``run_glue.py --task_name``
does; without one, everything is inferred from the files (column names, label
values; float labels mean regression). Labels are stored as ids with the
label list in ``config.json`` (``id2label``/``label2id``), so the output
directory loads in ``pipeline("text-classification")``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from ssl_cli.config import Recipe, Section
from ssl_cli.data.columns import find_column
from ssl_cli.data.schema import LABEL, TEXT_OR_WORDS, require_column_type
from ssl_cli.errors import UserError, did_you_mean
from ssl_cli.tasks.base import EvalSet, Flag, Splits, Task, Traits
from ssl_cli.tasks.glue.datasets import DATASETS

TEXT_CANDIDATES = ("sentence", "text", "sentence1", "premise", "question1", "question", "content", "abst")
PAIR_CANDIDATES = ("sentence2", "hypothesis", "question2", "text_pair", "text_b")
LABEL_CANDIDATES = ("label", "labels", "gold_label", "score", "is_duplicate")
NO_GOLD_LABELS = ("-", "", "-1")  # MNLI/OCNLI files ("-") and SNLI on the Hub (-1): no annotator agreement


@dataclass(frozen=True)
class TaskSpec:
    """What ``--task NAME`` fixes: column names (first found wins), labels, problem type, metric."""

    name: str
    text: tuple[str, ...]
    pair: tuple[str, ...] = ()
    label: tuple[str, ...] = ("label",)
    labels: tuple[str, ...] | None = None  # None: regression, or the label set is read from the data
    regression: bool = False
    headerless_columns: tuple[str, ...] = ()  # TSV as distributed without a header (CoLA)


_BINARY = ("0", "1")
_NLI3 = ("entailment", "neutral", "contradiction")
_NLI2 = ("entailment", "not_entailment")
TASK_SPECS: dict[str, TaskSpec] = {
    s.name: s
    for s in (
        TaskSpec("cola", ("sentence",), labels=_BINARY, headerless_columns=("source", "label", "original_label", "sentence")),
        TaskSpec("sst2", ("sentence",), labels=_BINARY),
        TaskSpec("mrpc", ("sentence1", "#1 String"), ("sentence2", "#2 String"), ("label", "Quality"), _BINARY),
        TaskSpec("qqp", ("question1",), ("question2",), ("label", "is_duplicate"), _BINARY),
        TaskSpec("stsb", ("sentence1",), ("sentence2",), ("label", "score"), regression=True),
        TaskSpec("mnli", ("premise", "sentence1"), ("hypothesis", "sentence2"), ("label", "gold_label"), _NLI3),
        TaskSpec("qnli", ("question",), ("sentence",), ("label",), _NLI2),
        TaskSpec("rte", ("sentence1",), ("sentence2",), ("label",), _NLI2),
        TaskSpec("wnli", ("sentence1",), ("sentence2",), ("label",), _BINARY),
        # CLUE (Simplified Chinese); tnews/iflytek label sets are read from the data
        TaskSpec("afqmc", ("sentence1",), ("sentence2",), ("label",), _BINARY),
        TaskSpec("tnews", ("sentence",), (), ("label", "label_desc")),
        TaskSpec("iflytek", ("sentence",), (), ("label", "label_des")),
        TaskSpec("ocnli", ("sentence1",), ("sentence2",), ("label",), ("neutral", "entailment", "contradiction")),
        TaskSpec("cmnli", ("sentence1",), ("sentence2",), ("label",), ("neutral", "entailment", "contradiction")),
        TaskSpec("csl", ("abst",), ("keyword",), ("label",), _BINARY),
        # FewCLUE's own tasks (its tnews/iflytek/ocnli/csl variants use the CLUE specs: ``--task tnews_fc``)
        TaskSpec("eprstmt", ("sentence",), (), ("label",)),  # Positive / Negative
        TaskSpec("bustm", ("sentence1",), ("sentence2",), ("label",), _BINARY),
        TaskSpec("csldcp", ("content",), (), ("label",)),  # 67 discipline names, read from the data
    )
}


# The file names the GLUE leaderboard expects in a submission zip, per (task, test set).
GLUE_SUBMISSION_FILES = {"cola": "CoLA.tsv", "sst2": "SST-2.tsv", "mrpc": "MRPC.tsv", "qqp": "QQP.tsv", "stsb": "STS-B.tsv",
                         "mnli": "MNLI-m.tsv", "mnli/test_mismatched": "MNLI-mm.tsv", "qnli": "QNLI.tsv", "rte": "RTE.tsv",
                         "wnli": "WNLI.tsv"}


def submission_file_name(task: str | None, test_set: str) -> str:
    """MNLI-m.tsv for MNLI's matched test set, MNLI-mm.tsv for the mismatched one, SST-2.tsv...; else a generic name."""
    key = task if test_set == "test" else f"{task}/{test_set}"
    return GLUE_SUBMISSION_FILES.get(key or "", f"{test_set}_submission.tsv")


class ClassificationConfig(Section):
    task_name: str | None = Field(
        None,
        description="GLUE/CLUE/FewCLUE task (cola, sst2, mrpc, qqp, stsb, mnli, qnli, rte, wnli, afqmc, tnews, iflytek, "
        "ocnli, cmnli, csl, eprstmt, bustm, csldcp; FewCLUE's tnews_fc, iflytek_fc, ocnli_fc, csl_fc): fixes columns, "
        "labels, problem type and metric, as run_glue.py --task_name. Null: implied by "
        "a registered --data glue/<task>, else inferred from the files.",
    )
    text_column: str | None = Field(None, description="Column with the (first) sentence. Null: found by name.")
    text_pair_column: str | None = Field(
        None, description="Column with the second sentence of a pair. Null: found by name; none means single sentences."
    )
    label_column: str | None = Field(None, description="Column with the label. Null: found by name (label, gold_label, score...).")
    label_list: list[str] | None = Field(
        None, description="Label names in id order. Null: from the task, else the sorted distinct training labels."
    )
    problem_type: Literal["auto", "single_label_classification", "regression"] = Field(
        "auto", description="auto: regression when the task says so or the training labels are non-integer numbers."
    )


class ClassificationRecipe(Recipe):
    classification: ClassificationConfig = Field(default_factory=ClassificationConfig)


# ----------------------------------------------------------------------------- columns and labels


def class_labels_as_names(ds: Any) -> Any:
    """ClassLabel columns (Hub and ``save_to_disk`` datasets) as their names, so ids never depend on a dataset's
    own label order: CLUE's TNEWS ids 0..14 become its codes "100".."116", and -1 (no gold label) stays "-1"."""
    import datasets

    classes = {name: f.names for name, f in ds.features.items() if isinstance(f, datasets.ClassLabel)}
    if not classes:
        return ds
    features = ds.features.copy()
    for name in classes:
        features[name] = datasets.Value("string")

    def to_names(batch: dict[str, list]) -> dict[str, list]:
        return {name: [names[i] if i is not None and 0 <= i < len(names) else "-1" for i in batch[name]]
                for name, names in classes.items()}

    return ds.map(to_names, batched=True, features=features, desc="label ids to names")


def label_key(value: Any) -> str:
    """Labels compare as strings: 1, 1.0 (from pandas) and "1" are the same label."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def is_regression_labels(values: list[Any]) -> bool:
    """Non-integer numbers among the labels: a regression target (STS-B scores)."""
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return len(numbers) == len(values) and any(isinstance(v, float) and not v.is_integer() for v in numbers)


class ClassificationTask(Task):
    name = "finetune-glue"
    recipe_cls = ClassificationRecipe
    flags = (
        Flag("task", "classification.task_name", str),
        Flag("text-column", "classification.text_column"),
        Flag("text-pair-column", "classification.text_pair_column"),
        Flag("label-column", "classification.label_column"),
    )
    flag_aliases = {"task-name": "task"}  # run_glue.py's --task_name
    flag_help = {"data.max_seq_length": "Maximum tokens per example: the text and its pair, truncated beyond."}
    model_heads = ("ForSequenceClassification",)
    main_metric = "accuracy"
    traits = Traits(labels=("labels",), pipeline_tag="text-classification")
    datasets = DATASETS
    tiny_recipe = "recipes/glue/tiny-en-offline.yaml"
    sample_args = ("--task", "sst2")
    registry_prefixes: tuple[str, ...] = ("glue/", "clue/")
    show_confusion = False

    def predict_rows(self, model: Any, tokenizer: Any, rows: list[dict[str, Any]], settings: dict[str, Any],
                     first_row: int = 1) -> list[dict[str, Any]]:
        from ssl_cli.tasks.glue.predict import classify_rows

        return classify_rows(model, tokenizer, rows, settings, first_row)

    def model_class(self, recipe: ClassificationRecipe) -> Any:
        from transformers import AutoModelForSequenceClassification

        return AutoModelForSequenceClassification

    # ------------------------------------------------------------------ data

    def spec_for(self, recipe: ClassificationRecipe, source: str | None) -> TaskSpec | None:
        """The task spec: --task, else the one a registered dataset implies, else None (infer from the files)."""
        return self.spec_named(recipe.classification.task_name or self.task_of_source(source))

    def task_of_source(self, source: str | None) -> str | None:
        """glue/sst2 -> sst2 (registered names only; a path implies nothing)."""
        for prefix in self.registry_prefixes:
            if source and source.lower().startswith(prefix):
                return source[len(prefix):]
        return None

    def spec_named(self, name: str | None) -> TaskSpec | None:
        if name is None:
            return None
        key = name.lower().replace("-", "")
        specs = self.task_specs()
        if key not in specs and key.endswith("fc") and key.removesuffix("fc").rstrip("_") in specs:
            key = key.removesuffix("fc").rstrip("_")  # FewCLUE: tnews_fc / ocnlifc -> the CLUE spec
        if key not in specs and key.split("/")[0] in specs:
            key = key.split("/")[0]  # xnli/zh -> xnli
        if key not in specs:
            raise UserError(f"unknown task '{name}'{did_you_mean(key, specs)}; choose from {', '.join(specs)}")
        return specs[key]

    def task_specs(self) -> dict[str, TaskSpec]:
        return TASK_SPECS

    def survey(self, raw: dict[str, tuple[Any, str]], recipe: ClassificationRecipe, info: dict[str, Any]) -> None:
        """The task spec and the label space, read from the training data where there is some (else the first
        validation split), so that every set scores against the same ids."""
        spec = self.spec_for(recipe, info.get("source"))
        validations = sorted(s for s in raw if s.startswith("validation"))
        split = "train" if recipe.training.do_train else validations[0] if validations else next(iter(raw))
        ds, source = raw[split]
        info.update(self._label_space(recipe, spec, self._read_table(ds, source, spec), source),
                    task_name=spec.name if spec else None)

    def read_split(self, ds: Any, source: str, recipe: ClassificationRecipe, info: dict[str, Any], role: str) -> Any:
        spec = self.spec_named(self.task_of_source(info.get("source"))) or self.spec_named(info.get("task_name"))
        return self._canonical(self._read_table(ds, source, spec), source, spec, recipe, info, needs_label=role != "test")

    def _read_table(self, ds: Any, source: str, spec: TaskSpec | None) -> Any:
        """Re-read a headerless TSV (CoLA's train/dev as distributed) with its column names; ClassLabel ids become
        their names. A TSV whose header names the text column (CoLA's official test.tsv: index, sentence) has one."""
        headed = set(spec.label + spec.text) & set(ds.column_names) if spec else True
        if spec and spec.headerless_columns and source.endswith(".tsv") and not headed:
            from ssl_cli.data.files import load_data_file

            return load_data_file(source, column_names=list(spec.headerless_columns))
        return class_labels_as_names(ds)

    def _columns(self, ds: Any, source: str, spec: TaskSpec | None, recipe: ClassificationRecipe,
                 needs_label: bool) -> tuple[str, str | None, str | None]:
        cfg, names = recipe.classification, ds.column_names
        text = find_column(names, cfg.text_column, spec.text if spec else TEXT_CANDIDATES, "text", "--text-column", source)
        pair_candidates = spec.pair if spec else PAIR_CANDIDATES
        pair = find_column(names, cfg.text_pair_column, pair_candidates, "text pair", "--text-pair-column", source,
                           required=bool(spec and spec.pair))
        label = find_column(names, cfg.label_column, spec.label if spec else LABEL_CANDIDATES, "label", "--label-column",
                            source, required=needs_label)
        return text, pair, label

    def _label_space(self, recipe: ClassificationRecipe, spec: TaskSpec | None, ds: Any, source: str) -> dict[str, Any]:
        """Regression, or the label list in id order (read from ``ds``, the training data where there is some)."""
        cfg = recipe.classification
        _, _, label_col = self._columns(ds, source, spec, recipe, needs_label=True)
        require_column_type(ds, label_col, LABEL, source)
        values = [v for v in ds[label_col] if label_key(v) not in NO_GOLD_LABELS]
        regression = cfg.problem_type == "regression" or (
            cfg.problem_type == "auto" and (spec.regression if spec else is_regression_labels(values)))
        if regression:
            return {"regression": True, "label_list": None}
        if cfg.label_list:
            label_list = list(cfg.label_list)
        elif spec and spec.labels:
            label_list = list(spec.labels)
        else:
            keys = {self.normalise_label(label_key(v)) for v in values}
            label_list = sorted(keys, key=lambda k: (not k.lstrip("-").isdigit(), int(k) if k.lstrip("-").isdigit() else 0, k))
        if len(label_list) < 2:
            raise UserError(f"classification needs at least 2 labels, the training data has {label_list}; "
                            "check --label-column (or set classification.problem_type: regression)")
        return {"regression": False, "label_list": label_list}

    def _canonical(self, ds: Any, source: str, spec: TaskSpec | None, recipe: ClassificationRecipe,
                   labels: dict[str, Any], needs_label: bool) -> Any:
        """Columns text, text_pair, label (id, or float for regression), idx; rows without a gold label dropped."""
        text, pair, label = self._columns(ds, source, spec, recipe, needs_label)
        for column in filter(None, (text, pair)):
            require_column_type(ds, column, TEXT_OR_WORDS, source)
        if label:
            require_column_type(ds, label, LABEL, source)
        if label and not needs_label and any(label_key(v) in NO_GOLD_LABELS for v in ds[label]):
            label = None  # a test set without gold labels (-1 on the Hub): predict every row, score none
        label_list = labels["label_list"]
        ids = {name: i for i, name in enumerate(label_list or [])}
        names_by_position = spec.labels if spec and spec.labels else tuple(label_list or ())

        def to_label(value: Any, row: int) -> float | int:
            if labels["regression"]:
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    raise UserError(f"{source}: row {row}: label {value!r} is not a number (regression)") from None
                if not math.isfinite(number):  # trains to NaN weights, and NaN predictions score a perfect spearmanr
                    raise UserError(f"{source}: row {row}: label {value!r} is not a finite number (regression); "
                                    "fix or remove the row")
                return number
            key = self.normalise_label(label_key(value))
            if key in ids:
                return ids[key]
            if key.isdigit() and int(key) < len(names_by_position) and names_by_position[int(key)] in ids:
                return ids[names_by_position[int(key)]]  # Hub datasets store label names as ids, in their own order
            raise UserError(f"{source}: row {row}: label {value!r} is not one of the labels {label_list}; "
                            "fix the data or set classification.label_list")

        keep = [i for i, v in enumerate(ds[label]) if label_key(v) not in NO_GOLD_LABELS] if label else list(range(len(ds)))
        dropped = len(ds) - len(keep)
        if dropped:
            from rich.console import Console

            Console(stderr=True, soft_wrap=True).print(f"{source}: dropped {dropped} row(s) without a gold label")
        rows = ds.select(keep) if len(keep) != len(ds) else ds

        def convert(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
            texts = [_text(v) for v in batch[text]]
            for i, t in zip(indices, texts, strict=True):
                if not t.strip():
                    raise UserError(f"{source}: row {keep[i]}: empty text in column '{text}'; remove the row or fix the data")
            columns: dict[str, list] = {"text": texts, "idx": [keep[i] for i in indices]}
            if pair:
                columns["text_pair"] = [_text(v) for v in batch[pair]]
            if label:
                columns["label"] = [to_label(v, keep[i]) for i, v in zip(indices, batch[label], strict=True)]
            return columns

        if len(rows) == 0:
            raise UserError(f"{source}: no examples left after dropping rows without a gold label")
        import datasets

        features = datasets.Features({"text": datasets.Value("string"), "idx": datasets.Value("int64")})
        if pair:
            features["text_pair"] = datasets.Value("string")
        if label:  # explicit, or datasets would keep a replaced column's old type (string labels stay strings)
            features["label"] = datasets.Value("float32" if labels["regression"] else "int64")
        # a map (not an in-memory table), so the tokenised features downstream are cached by fingerprint
        return rows.map(convert, batched=True, with_indices=True, remove_columns=rows.column_names, features=features,
                        desc=f"reading {Path(source).name}")

    def normalise_label(self, key: str) -> str:
        """Spelling variants of one label map to one name (NLI lower-cases them)."""
        return key

    def write_sample_data(self, root: Path, seed: int = 1) -> dict[str, Path]:
        from ssl_cli.tasks.glue.data import write_task

        return write_task("sentiment", root, n_train=120, n_dev=21, seed=seed)

    def training_texts(self, train: Any) -> Iterator[str]:
        for batch in train.iter(batch_size=1000):
            yield from batch["text"]
            yield from batch.get("text_pair") or []

    def model_kwargs(self, splits: Splits, recipe: ClassificationRecipe) -> dict[str, Any]:
        info = splits.info
        if info["regression"]:
            return {"num_labels": 1, "problem_type": "regression"}
        label_list = info["label_list"]
        return {"num_labels": len(label_list), "problem_type": "single_label_classification",
                "id2label": dict(enumerate(label_list)), "label2id": {name: i for i, name in enumerate(label_list)}}

    # ------------------------------------------------------------------ features

    def _encode(self, batch: dict[str, list], tokenizer: Any, recipe: ClassificationRecipe) -> dict[str, list]:
        pairs = batch.get("text_pair")
        enc = tokenizer(batch["text"], pairs, truncation=True, max_length=recipe.data.max_seq_length, padding=False)
        features = {name: enc[name] for name in ("input_ids", "attention_mask", "token_type_ids") if name in enc}
        features["length"] = [len(ids) for ids in enc["input_ids"]]
        return features

    def prepare_train(self, examples: Any, tokenizer: Any, recipe: ClassificationRecipe) -> Any:
        def features(batch: dict[str, list]) -> dict[str, list]:
            return {**self._encode(batch, tokenizer, recipe), "labels": batch["label"]}

        return examples.map(features, batched=True, remove_columns=examples.column_names,
                            num_proc=recipe.data.preprocessing_num_workers,
                            load_from_cache_file=not recipe.data.overwrite_cache, desc="tokenizing train")

    def prepare_eval(self, eval_set: EvalSet, tokenizer: Any, recipe: ClassificationRecipe) -> Any:
        examples = eval_set.examples
        feats = examples.map(lambda batch: self._encode(batch, tokenizer, recipe), batched=True,
                             remove_columns=examples.column_names, num_proc=recipe.data.preprocessing_num_workers,
                             load_from_cache_file=not recipe.data.overwrite_cache, desc=f"tokenizing {eval_set.name}")
        return feats.add_column("feature_index", list(range(len(feats))))

    # ------------------------------------------------------------------ scoring

    def score(self, eval_set: EvalSet, outputs: dict[str, Any], recipe: ClassificationRecipe):
        import numpy as np

        from ssl_cli.tasks.glue.metrics import glue_metrics, regression_metrics

        logits = np.asarray(outputs["logits"], dtype=np.float64)
        info = eval_set.info
        if info["regression"]:
            predictions = logits.reshape(len(logits), -1)[:, 0]
            probabilities = None
        else:
            shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
            probabilities = shifted / shifted.sum(axis=1, keepdims=True)
            predictions = probabilities.argmax(axis=1)
        artefacts = {"predictions": predictions, "probabilities": probabilities}
        if "label" not in eval_set.examples.column_names:
            return {}, artefacts
        references = eval_set.examples["label"]
        task = info.get("task_name")
        if info["regression"]:
            metrics = glue_metrics(task, predictions, references) if task else regression_metrics(predictions, references)
        else:
            metrics = glue_metrics(task, predictions.tolist(), references)
        return metrics, artefacts

    def write_predictions(self, eval_set: EvalSet, artefacts: dict[str, Any], output_dir: str) -> list[str]:
        """JSONL with text, label and probabilities; for the test split also the GLUE submission TSV."""
        info, examples = eval_set.info, eval_set.examples
        label_list = info["label_list"]
        prefix = "eval" if eval_set.name == "eval" else eval_set.name
        records = []
        for i, row in enumerate(examples):
            value = artefacts["predictions"][i]
            record = {"idx": row["idx"], "text": row["text"], **({"text_pair": row["text_pair"]} if "text_pair" in row else {})}
            if label_list is None:
                record["prediction"] = float(value)
            else:
                record["prediction"] = label_list[int(value)]
                record["probabilities"] = {name: round(float(p), 6) for name, p in zip(label_list, artefacts["probabilities"][i],
                                                                                     strict=True)}
            if "label" in row:
                record["label"] = row["label"] if label_list is None else label_list[row["label"]]
            records.append(record)
        files = {f"{prefix}_predictions.jsonl": "\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n"}
        if label_list is not None and "label" in examples.column_names:
            matrix = confusion_matrix(examples["label"], [int(v) for v in artefacts["predictions"]], len(label_list))
            files[f"{prefix}_confusion_matrix.json"] = json.dumps({"labels": label_list, "rows_are": "gold",
                                                                  "matrix": matrix}, ensure_ascii=False) + "\n"
            png = Path(output_dir, f"{prefix}_confusion_matrix.png")
            if save_confusion_png(matrix, label_list, png, title=f"{eval_set.name}: gold (rows) vs predicted"):
                files[png.name] = None
            if self.show_confusion:
                print_confusion(matrix, label_list, eval_set.name)
        if eval_set.name.startswith("test"):
            lines = ["index\tprediction"] + [f"{r['idx']}\t{r['prediction']}" for r in records]
            files[submission_file_name(info.get("task_name"), eval_set.name)] = "\n".join(lines) + "\n"
        for name, content in files.items():
            if content is not None:
                Path(output_dir, name).write_text(content, encoding="utf-8")
        return list(files)


def confusion_matrix(gold: list[int], predicted: list[int], n_labels: int) -> list[list[int]]:
    """Counts with gold labels as rows and predictions as columns."""
    matrix = [[0] * n_labels for _ in range(n_labels)]
    for g, p in zip(gold, predicted, strict=True):
        matrix[g][p] += 1
    return matrix


def print_confusion(matrix: list[list[int]], labels: list[str], name: str) -> None:
    """The matrix as a rich table on stderr, the diagonal in bold."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{name}: confusion matrix (rows: gold, columns: predicted)")
    table.add_column("gold / predicted")
    for label in labels:
        table.add_column(label, justify="right")
    for i, (label, row) in enumerate(zip(labels, matrix, strict=True)):
        table.add_row(label, *[f"[bold]{v}[/]" if i == j else str(v) for j, v in enumerate(row)])
    Console(stderr=True).print(table)


def save_confusion_png(matrix: list[list[int]], labels: list[str], path: Path, title: str) -> bool:
    """A heat-map PNG with counts (Pillow); False when Pillow is missing."""
    try:
        from PIL import Image, ImageDraw
    except ImportError:
        return False
    n, cell, margin = len(labels), 64, 130
    image = Image.new("RGB", (margin + n * cell + 10, margin + n * cell + 10), "white")
    draw = ImageDraw.Draw(image)
    draw.text((10, 10), title, fill="black")
    peak = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        draw.text((10, margin + i * cell + cell // 2 - 6), labels[i][:18], fill="black")
        for j, value in enumerate(row):
            shade = 255 - int(200 * value / peak)
            x, y = margin + j * cell, margin + i * cell
            draw.rectangle([x, y, x + cell - 2, y + cell - 2], fill=(shade, shade, 255))
            draw.text((x + 8, y + cell // 2 - 6), str(value), fill="black" if shade > 120 else "white")
    for j, label in enumerate(labels):
        draw.text((margin + j * cell + 4, margin - 20), label[:9], fill="black")
    image.save(path)
    return True


def _text(value: Any) -> str:
    """Cells as text: lists (CSL keywords) joined, missing values empty."""
    if value is None:
        return ""
    if isinstance(value, list):
        return "，".join(str(v) for v in value)
    return str(value)


TASK = ClassificationTask()
