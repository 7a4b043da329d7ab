"""``ssl multiple-choice``: pick the right answer among several (SWAG, RACE, C3), as ``run_swag.py`` does.

Each choice is encoded with its context, ``[CLS] context [SEP] question
choice [SEP]`` (a RACE cloze question's ``_`` is filled with the choice), and
``AutoModelForMultipleChoice`` scores the choices of one question against each
other. Questions with fewer choices than the most in the data (C3 has 2 to 4)
get empty ones that are never predicted. The metric is accuracy.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import Field

from ssl_cli.config import Recipe, Section
from ssl_cli.data.columns import find_column
from ssl_cli.data.schema import TEXT, require_column_type
from ssl_cli.errors import UserError
from ssl_cli.tasks.base import EvalSet, Flag, Splits, Task, Traits
from ssl_cli.tasks.multiple_choice import formats


class ChoiceConfig(Section):
    context_column: str | None = Field(
        None, description="Column of the passage or first sentence. Null: context, article, passage, sent1, ...")
    question_column: str | None = Field(
        None, description="Column of the question (or SWAG's second sentence). Null: question, sent2, query.")
    choices_column: str | None = Field(
        None, description="Column of the list of choices. Null: choices, options, endings, or SWAG's ending0..N.")
    label_column: str | None = Field(
        None, description="Column of the right choice: an index, a letter (A = 0) or the choice's text. "
        "Null: label, answer, labels, gold.")


class MultipleChoiceRecipe(Recipe):
    choice: ChoiceConfig = Field(default_factory=ChoiceConfig)


class MultipleChoiceTask(Task):
    name = "multiple-choice"
    recipe_cls = MultipleChoiceRecipe
    flags = (
        Flag("context-column", "choice.context_column"),
        Flag("question-column", "choice.question_column"),
        Flag("choices-column", "choice.choices_column"),
        Flag("label-column", "choice.label_column"),
    )
    flag_help = {"data.max_seq_length": "Maximum tokens per choice: the context, the question and one ending."}
    model_heads = ("ForMultipleChoice",)
    main_metric = "accuracy"
    traits = Traits(labels=("labels",), pipeline_tag="multiple-choice")
    tiny_recipe = "recipes/multiple-choice/tiny-en-offline.yaml"

    # ------------------------------------------------------------------ data

    def read_document(self, document: Any, path: Path) -> list[dict[str, Any]] | None:
        return formats.read_document(document, path)

    def read_split(self, ds: Any, source: str, recipe: MultipleChoiceRecipe, info: dict[str, Any], role: str) -> Any:
        if "documents" in ds.column_names and "questions" in ds.column_names:  # the Hub's c3
            ds = _expand_c3_rows(ds)
        elif "article" in ds.column_names and "questions" in ds.column_names:  # RACE passages as records
            ds = _expand_passages(ds, source)
        layout = self._layout(ds.column_names, source, recipe.choice)
        if role != "test" and layout["label"] is None:
            raise UserError(f"{source}: no label column (looked for {', '.join(formats.LABEL_COLUMNS)}); name it "
                            "with --label-column")
        for column in filter(None, (layout["context"], layout["question"], *layout["endings"])):
            require_column_type(ds, column, TEXT, source)
        return _canonical(ds, layout, source)

    def _layout(self, columns: list[str], source: str, cfg: ChoiceConfig) -> dict[str, Any]:
        named = {key: find_column(columns, getattr(cfg, f"{key}_column"), (), key, f"--{key}-column", source)
                 for key in ("context", "question", "choices", "label") if getattr(cfg, f"{key}_column")}
        return formats.choice_layout(columns, source, named)

    def finish_splits(self, splits: Splits, recipe: MultipleChoiceRecipe) -> Splits:
        """The number of choices every question is given: the most of any set's questions."""
        sets = [s.examples for s in splits.evals] + ([splits.train] if splits.train is not None else [])
        splits.info["num_choices"] = max(max(map(len, ds["choices"]), default=0) for ds in sets)
        if splits.info["num_choices"] < 2:
            raise UserError("multiple choice needs at least 2 choices per question; the data has at most "
                            f"{splits.info['num_choices']}")
        for eval_set in splits.evals:
            eval_set.info["num_choices"] = splits.info["num_choices"]
        return splits

    def write_sample_data(self, root: Path, seed: int = 1) -> dict[str, Path]:
        from ssl_cli.tasks.multiple_choice.data import write_swag_task

        return write_swag_task(root, n_train=120, n_dev=21, seed=seed)

    def training_texts(self, train: Any) -> Iterator[str]:
        for batch in train.iter(batch_size=1000):
            yield from batch["context"]
            yield from batch["question"]
            for choices in batch["choices"]:
                yield from choices

    # ------------------------------------------------------------------ model

    def model_class(self, recipe: MultipleChoiceRecipe) -> Any:
        from transformers import AutoModelForMultipleChoice

        return AutoModelForMultipleChoice

    # ------------------------------------------------------------------ features

    def _encode(self, batch: dict[str, list], tokenizer: Any, recipe: MultipleChoiceRecipe,
                num_choices: int) -> dict[str, list]:
        """Per question: one encoded (context, question + choice) pair per choice, the missing ones empty."""
        firsts, seconds = [], []
        for context, question, choices in zip(batch["context"], batch["question"], batch["choices"], strict=True):
            padded = [*choices, *[""] * (num_choices - len(choices))]
            firsts.extend([context] * num_choices)
            seconds.extend(_with_choice(question, choice) for choice in padded)
        enc = tokenizer(firsts, seconds, truncation="longest_first", max_length=recipe.data.max_seq_length)
        features: dict[str, list] = {}
        for name in ("input_ids", "attention_mask", "token_type_ids"):
            if name in enc:
                values = enc[name]
                features[name] = [values[i:i + num_choices] for i in range(0, len(values), num_choices)]
        features["length"] = [max(map(len, choices)) for choices in features["input_ids"]]
        return features

    def prepare_train(self, examples: Any, tokenizer: Any, recipe: MultipleChoiceRecipe) -> Any:
        num_choices = max(map(len, examples["choices"]))

        def features(batch: dict[str, list]) -> dict[str, list]:
            return {**self._encode(batch, tokenizer, recipe, num_choices), "labels": batch["label"]}

        return examples.map(features, batched=True, remove_columns=examples.column_names,
                            num_proc=recipe.data.preprocessing_num_workers,
                            load_from_cache_file=not recipe.data.overwrite_cache, desc="tokenizing train")

    def prepare_eval(self, eval_set: EvalSet, tokenizer: Any, recipe: MultipleChoiceRecipe) -> Any:
        examples, num_choices = eval_set.examples, eval_set.info["num_choices"]
        feats = examples.map(lambda batch: self._encode(batch, tokenizer, recipe, num_choices), batched=True,
                             remove_columns=examples.column_names, num_proc=recipe.data.preprocessing_num_workers,
                             load_from_cache_file=not recipe.data.overwrite_cache, desc=f"tokenizing {eval_set.name}")
        return feats.add_column("feature_index", list(range(len(feats))))

    def collator(self, tokenizer: Any, recipe: MultipleChoiceRecipe, training: bool, fixed_length: int | None) -> Any:
        from ssl_cli.tasks.multiple_choice.collate import ChoiceCollator

        return ChoiceCollator(self.traits.inputs, ["labels"] if training else ["feature_index"],
                              pad_token_id=tokenizer.pad_token_id or 0,
                              pad_to_multiple_of=recipe.training.pad_to_multiple_of, fixed_length=fixed_length)

    # ------------------------------------------------------------------ scoring

    def score(self, eval_set: EvalSet, outputs: dict[str, Any], recipe: MultipleChoiceRecipe):
        import numpy as np

        logits = np.asarray(outputs["logits"], dtype=np.float64)
        offered = np.array([len(c) for c in eval_set.examples["choices"]])
        logits[np.arange(logits.shape[1])[None, :] >= offered[:, None]] = -np.inf  # the empty padding choices
        predicted = logits.argmax(axis=-1).tolist()
        artefacts = {"predictions": predicted}
        if "label" not in eval_set.examples.column_names:
            return {}, artefacts
        gold = np.asarray(eval_set.examples["label"])
        return {"accuracy": float((np.asarray(predicted) == gold).mean())}, artefacts

    def write_predictions(self, eval_set: EvalSet, artefacts: dict[str, Any], output_dir: str) -> list[str]:
        """JSON lines, one per question: its position in the source, the predicted choice (index and text) and
        the gold one where known."""
        name = f"{'eval' if eval_set.name == 'eval' else eval_set.name}_predictions.jsonl"
        labelled = "label" in eval_set.examples.column_names
        lines = []
        for row, predicted in zip(eval_set.examples, artefacts["predictions"], strict=True):
            record = {"idx": row["idx"], "prediction": predicted, "prediction_text": row["choices"][predicted]}
            if labelled:
                record["label"] = row["label"]
            lines.append(json.dumps(record, ensure_ascii=False))
        Path(output_dir, name).write_text("\n".join(lines) + "\n", encoding="utf-8")
        return [name]


def _with_choice(question: str, choice: str) -> str:
    """The second sentence: a cloze question's blank filled with the choice, else question then choice."""
    if "_" in question:
        return question.replace("_", choice, 1)
    return f"{question} {choice}".strip()


def _canonical(ds: Any, layout: dict[str, Any], source: str) -> Any:
    import datasets

    def convert(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        rows: dict[str, list] = {"context": [], "question": [], "choices": [], "idx": indices}
        if layout["label"]:
            rows["label"] = []
        for n, i in enumerate(indices):
            where = f"{source}: row {i}"
            choices = [batch[e][n] for e in layout["endings"]] if layout["endings"] else batch[layout["choices"]][n]
            if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices) or len(choices) < 2:
                raise UserError(f"{where}: the choices must be a list of at least 2 strings")
            rows["context"].append(str(batch[layout["context"]][n] or "") if layout["context"] else "")
            rows["question"].append(str(batch[layout["question"]][n] or "") if layout["question"] else "")
            rows["choices"].append(choices)
            if layout["label"]:
                rows["label"].append(formats.label_index(batch[layout["label"]][n], choices, where))
        return rows

    features = datasets.Features({"context": datasets.Value("string"), "question": datasets.Value("string"),
                                  "choices": datasets.Sequence(datasets.Value("string")),
                                  "idx": datasets.Value("int64")})
    if layout["label"]:
        features["label"] = datasets.Value("int64")
    return ds.map(convert, batched=True, with_indices=True, remove_columns=ds.column_names, features=features,
                  desc=f"reading {Path(source).name}")


def _expand_passages(ds: Any, source: str) -> Any:
    """RACE passages (article + lists of questions, options, answers) as one row per question."""
    import datasets

    rows = [record for n, passage in enumerate(ds) for record in formats.passage_questions(passage, f"{source}: row {n}")]
    return datasets.Dataset.from_list(rows)


def _expand_c3_rows(ds: Any) -> Any:
    """The Hub's c3: ``documents`` (lines) and ``questions`` {question, answer, choice} lists, per passage."""
    import datasets

    rows = []
    for record in ds:
        context, questions = "\n".join(record["documents"]), record["questions"]
        for question, answer, choice in zip(questions["question"], questions["answer"], questions["choice"],
                                            strict=True):
            rows.append({"context": context, "question": question, "choices": choice, "answer": answer})
    return datasets.Dataset.from_list(rows)


TASK = MultipleChoiceTask()
