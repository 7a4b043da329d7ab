"""``ssl finetune-qa``: extractive question answering (DRCD, CMRC 2018, SQuAD v1/v2).

Question + context are tokenised into ``doc_stride`` windows with offset
mappings; an answer outside a window is labelled at [CLS]. Predictions are
mapped back to character spans of the original context (so Chinese,
full-width punctuation and whitespace survive untouched), and scored with the
official metric of the dataset: SQuAD EM/F1 for English, CMRC/DRCD
character-level EM/F1 for Chinese.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from ssl_cli.config import Recipe, Section
from ssl_cli.data.schema import answer_start_of, answer_text_of
from ssl_cli.errors import UserError
from ssl_cli.tasks.base import EvalSet, Flag, Splits, Task, Traits
from ssl_cli.tasks.qa.datasets import DATASETS


class QAConfig(Section):
    doc_stride: int = Field(128, ge=1, description="Overlap in tokens between consecutive windows of a long context.")
    max_answer_length: int = Field(30, ge=1, description="Longest answer, in tokens, the post-processing may return.")
    n_best_size: int = Field(20, ge=1, description="Answer candidates kept per question (eval_nbest_predictions.json).")
    version_2_with_negative: bool | None = Field(
        None, description="Some questions have no answer (SQuAD v2). Null: detect from the data."
    )
    null_score_diff_threshold: float = Field(
        0.0, description="Predict no answer when null score - best span score exceeds this (SQuAD v2)."
    )
    metric: Literal["auto", "squad", "squad_v2", "chinese"] = Field(
        "auto", description="Scoring: auto picks it from the dataset (chinese for CJK text, squad_v2 with no-answer questions)."
    )


class QARecipe(Recipe):
    qa: QAConfig = Field(default_factory=QAConfig)


QA_COLUMNS = ["id", "title", "context", "question", "answers"]


def _cjk_ratio(texts: list[str]) -> float:
    sample = "".join(texts)[:20000]
    if not sample:
        return 0.0
    return sum(1 for ch in sample if "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf") / len(sample)


def canonical_answers(record: dict[str, Any], where: str) -> dict[str, list]:
    """Accept answers as {text: [...], answer_start: [...]}, a list of dicts, or answer_text/answer_start columns;
    a text and a start that are not lists are one answer. Any other shape or type is refused, naming the record."""
    answers = record.get("answers")
    if answers is None and "answer_text" in record:
        text, start = record.get("answer_text"), record.get("answer_start")
        if text is None or text == "":
            return {"text": [], "answer_start": []}
        start = -1 if start is None else start  # -1: unknown, found by its text (as a missing answers.answer_start)
        return {"text": [answer_text_of(text, where)], "answer_start": [answer_start_of(start, where)]}
    if answers is None:
        return {"text": [], "answer_start": []}
    if isinstance(answers, list):
        if not all(isinstance(a, dict) and "text" in a and "answer_start" in a for a in answers):
            raise UserError(f"{where}: 'answers' must be a list of {{text, answer_start}} objects")
        return {"text": [answer_text_of(a["text"], where) for a in answers],
                "answer_start": [answer_start_of(a["answer_start"], where) for a in answers]}
    if isinstance(answers, dict) and "text" in answers:
        texts = answers["text"]
        starts = answers.get("answer_start", [-1] * len(texts) if isinstance(texts, list) else -1)  # -1: unknown
        if not isinstance(texts, list) and not isinstance(starts, list):
            texts, starts = [texts], [starts]
        if not isinstance(texts, list) or not isinstance(starts, list) or len(texts) != len(starts):
            raise UserError(f"{where}: answers.text and answers.answer_start must be lists of one length, "
                            f"not {_shape(texts)} and {_shape(starts)}")
        return {"text": [answer_text_of(t, where) for t in texts],
                "answer_start": [answer_start_of(s, where) for s in starts]}
    raise UserError(f"{where}: 'answers' must be {{text: [...], answer_start: [...]}} or a list of such objects")


def _shape(value: Any) -> str:
    return f"a list of {len(value)}" if isinstance(value, list) else f"a {type(value).__name__}"


def canonicalise(dataset: Any, source: str) -> Any:
    """Any supported QA schema -> columns id, title, context, question, answers; errors name file, record, field."""
    missing = [c for c in ("context", "question") if c not in dataset.column_names]
    if missing:
        raise UserError(
            f"{source}: QA records need 'context' and 'question' fields; missing {', '.join(missing)} "
            f"(found: {', '.join(dataset.column_names)})"
        )

    def convert(record: dict[str, Any], index: int) -> dict[str, Any]:
        where = f"{source} record {index}"
        for key in ("context", "question"):
            if not isinstance(record[key], str) or not record[key].strip():
                raise UserError(f"{where}: field '{key}' must be a non-empty string")
        return {
            "id": str(record["id"]) if record.get("id") not in (None, "") else f"{Path(source).stem}-{index}",
            "title": str(record.get("title") or ""),
            "context": record["context"],
            "question": record["question"],
            "answers": canonical_answers(record, where),
        }

    extra = [c for c in dataset.column_names if c not in QA_COLUMNS]
    return dataset.map(convert, with_indices=True, remove_columns=extra, desc="checking QA schema")


def answer_mismatches(dataset: Any) -> list[int]:
    """Rows whose first answer's ``answer_start`` does not point at its text in the context."""
    bad = []
    for i, (context, answers) in enumerate(zip(dataset["context"], dataset["answers"], strict=True)):
        if answers["text"]:
            text, start = answers["text"][0], answers["answer_start"][0]
            if start < 0 or context[start : start + len(text)] != text:
                bad.append(i)
    return bad


def split_by_group(dataset: Any, percentage: int, seed: int) -> tuple[Any, Any]:
    """Hold out ``percentage`` of the articles (title, else context) for validation."""
    import numpy as np

    keys = [t or c for t, c in zip(dataset["title"], dataset["context"], strict=True)]
    groups = sorted(set(keys))
    rng = np.random.default_rng(seed)
    rng.shuffle(groups)
    n_val = max(1, round(len(groups) * percentage / 100))
    if len(groups) < 2:
        raise UserError("cannot hold out a validation split: the data has a single article/context; pass --validation-file")
    held = set(groups[:n_val])
    val_idx = [i for i, k in enumerate(keys) if k in held]
    train_idx = [i for i, k in enumerate(keys) if k not in held]
    return dataset.select(train_idx), dataset.select(val_idx)


def _first_of_each_id(ds: Any, source: str) -> Any:
    """Predictions and scores are keyed by question id: a repeated id would count once in the score and every
    time in ``eval_samples``. Keep its first question, and say how many were dropped."""
    from ssl_cli.errors import note

    ids = ds["id"]
    seen: set[str] = set()
    first = [i for i, qid in enumerate(ids) if not (qid in seen or seen.add(qid))]
    if len(first) == len(ids):
        return ds
    kept = set(first)
    repeated = next(qid for i, qid in enumerate(ids) if i not in kept)
    note(f"{source}: {len(ids) - len(first)} question(s) repeat an earlier id (e.g. {repeated!r}): scoring the "
         "first question of each id only; give each question its own id to score them all")
    return ds.select(first)


class QATask(Task):
    name = "finetune-qa"
    recipe_cls = QARecipe
    flags = (
        Flag("doc-stride", "qa.doc_stride", int),
        Flag("max-answer-length", "qa.max_answer_length", int),
        Flag("n-best-size", "qa.n_best_size", int),
        Flag("null-score-diff-threshold", "qa.null_score_diff_threshold", float),
        Flag("version-2-with-negative", "qa.version_2_with_negative", bool),
    )
    flag_help = {"data.max_seq_length": "Maximum tokens per feature: the question plus a window of the context "
                                        "(long contexts become several windows, doc_stride apart)."}
    model_heads = ("ForQuestionAnswering",)
    main_metric = "f1"
    traits = Traits(labels=("start_positions", "end_positions"), outputs=("start_logits", "end_logits"),
                    pipeline_tag="question-answering", pipeline_module="ssl_cli.tasks.qa.pipeline",
                    pipeline_name="extractive-question-answering")
    datasets = DATASETS
    tiny_recipe = "recipes/qa/tiny-zh-offline.yaml"

    # ------------------------------------------------------------------ data

    def predict_rows(self, model: Any, tokenizer: Any, rows: list[dict[str, Any]], settings: dict[str, Any],
                     first_row: int = 1) -> list[dict[str, Any]]:
        from ssl_cli.tasks.qa.predict import answer_rows

        return answer_rows(model, tokenizer, rows, settings, first_row)

    def model_class(self, recipe: QARecipe) -> Any:
        from transformers import AutoModelForQuestionAnswering

        return AutoModelForQuestionAnswering

    def read_document(self, document: Any, path: Path) -> list[dict[str, Any]] | None:
        """SQuAD's nested JSON (DRCD, CMRC 2018): any JSON object is read as one."""
        from ssl_cli.tasks.qa.squad import flatten_squad

        return flatten_squad(document, path) if isinstance(document, dict) else None

    def read_split(self, ds: Any, source: str, recipe: QARecipe, info: dict[str, Any], role: str) -> Any:
        examples = canonicalise(ds, source)
        return self._drop_mismatched_answers(examples, source, recipe.data.strict) if role == "train" else examples

    def hold_out(self, train: Any, recipe: QARecipe, info: dict[str, Any]) -> tuple[Any, Any]:
        """Whole articles are held out: questions on one context in both sets would leak answers."""
        info["validation_held_out_percent"] = recipe.data.validation_split_percentage
        return split_by_group(train, recipe.data.validation_split_percentage, recipe.training.seed)

    def finish_splits(self, splits: Splits, recipe: QARecipe) -> Splits:
        for eval_set in splits.evals:
            eval_set.examples = _first_of_each_id(eval_set.examples, eval_set.info["source"])
            eval_set.info.update(self._scoring(eval_set.examples, eval_set.info, recipe))
        return splits

    def _drop_mismatched_answers(self, train: Any, source: str, strict: bool) -> Any:
        before = len(train)
        bad = answer_mismatches(train)
        if bad:
            first = train[bad[0]]
            message = (f"{source}: {len(bad)} training question(s) have an answer_start that does not match the "
                       f"context, e.g. id {first['id']} (answer {first['answers']['text'][0]!r} at "
                       f"{first['answers']['answer_start'][0]})")
            if strict:
                raise UserError(message + "; fix the offsets, or drop data.strict to skip them")
            from rich.console import Console

            Console(stderr=True, soft_wrap=True).print(f"[yellow]warning:[/] {message}; skipped for training "
                                                       "(scoring uses the text)")
            train = train.select(sorted(set(range(len(train))) - set(bad)))
        if len(train) == 0:
            why = (f"all {before} question(s) have an answer_start that does not match the context"
                   if before else "the file has no question")
            raise UserError(f"the training set is empty after filtering: {why}; check the answer offsets "
                            "(character positions in the context)")
        return train

    @staticmethod
    def _scoring(ds: Any, info: dict[str, Any], recipe: QARecipe) -> dict[str, Any]:
        """The scorer of one set: the recipe's, else the registered dataset's, else by script and no-answers."""
        has_no_answer = any(not a["text"] for a in ds["answers"])
        has_answers = any(a["text"] for a in ds["answers"])
        v2 = recipe.qa.version_2_with_negative
        if v2 is None:
            v2 = info.get("metric") == "squad_v2" or (has_no_answer and has_answers)
        metric = recipe.qa.metric
        if metric == "auto":
            metric = info.get("metric") or ("chinese" if _cjk_ratio(ds["context"][:200]) > 0.2 else "squad")
            if metric == "squad" and v2:
                metric = "squad_v2"
        return {"metric": metric, "scorer": metric, "version_2_with_negative": v2, "has_answers": has_answers}

    def write_sample_data(self, root: Path, seed: int = 1) -> dict[str, Path]:
        from ssl_cli.tasks.qa.data import write_demo_data

        return write_demo_data(root, n_train=120, n_dev=21, seed=seed)

    def training_texts(self, train: Any) -> Iterator[str]:
        for batch in train.iter(batch_size=1000):
            yield from batch["question"]
            yield from batch["context"]

    # ------------------------------------------------------------------ features

    def _check_lengths(self, questions: list[str], tokenizer: Any, recipe: QARecipe) -> None:
        """max_seq_length must leave room for the longest question, the special tokens and the stride.

        Checked batch by batch inside the tokenising ``map``, before the
        windows are cut (a tokenizer fails obscurely on a question that leaves
        the context no room): every question is checked, and a cached rerun,
        which skips the map, does not pay for it.
        """
        questions = [q.lstrip() for q in questions]
        longest = max((len(ids) for ids in tokenizer(questions, add_special_tokens=False)["input_ids"]), default=0)
        specials = tokenizer.num_special_tokens_to_add(pair=True)
        need = longest + specials + recipe.qa.doc_stride
        if need >= recipe.data.max_seq_length:
            raise UserError(
                f"max_seq_length {recipe.data.max_seq_length} is not larger than the longest question ({longest} tokens) "
                f"+ {specials} special tokens + doc_stride {recipe.qa.doc_stride}: raise --max-seq-length above {need} "
                "or lower --doc-stride"
            )

    def _tokenize(self, examples: dict[str, list], tokenizer: Any, recipe: QARecipe) -> tuple[Any, int]:
        return tokenize_windows(tokenizer, examples["question"], examples["context"], recipe.data.max_seq_length,
                                recipe.qa.doc_stride)

    def prepare_train(self, examples: Any, tokenizer: Any, recipe: QARecipe) -> Any:
        def features(batch: dict[str, list]) -> dict[str, list]:
            self._check_lengths(batch["question"], tokenizer, recipe)
            enc, context_id = self._tokenize(batch, tokenizer, recipe)
            starts, ends = label_windows(enc, batch["answers"], context_id, tokenizer.cls_token_id)
            return {
                "input_ids": enc["input_ids"],
                "attention_mask": enc["attention_mask"],
                **({"token_type_ids": enc["token_type_ids"]} if "token_type_ids" in enc else {}),
                "start_positions": starts,
                "end_positions": ends,
                "length": [len(ids) for ids in enc["input_ids"]],
            }

        return examples.map(
            features, batched=True, remove_columns=examples.column_names, num_proc=recipe.data.preprocessing_num_workers,
            load_from_cache_file=not recipe.data.overwrite_cache, desc="tokenizing train",
        )

    def prepare_eval(self, eval_set: EvalSet, tokenizer: Any, recipe: QARecipe) -> Any:
        examples = eval_set.examples

        def features(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
            self._check_lengths(batch["question"], tokenizer, recipe)
            enc, context_id = self._tokenize(batch, tokenizer, recipe)
            sample_map = enc["overflow_to_sample_mapping"]
            offsets = context_offsets(enc, context_id)
            return {
                "input_ids": enc["input_ids"],
                "attention_mask": enc["attention_mask"],
                **({"token_type_ids": enc["token_type_ids"]} if "token_type_ids" in enc else {}),
                "example_index": [indices[s] for s in sample_map],
                "offset_mapping": offsets,
                "length": [len(ids) for ids in enc["input_ids"]],
            }

        feats = examples.map(
            features, batched=True, with_indices=True, remove_columns=examples.column_names,
            num_proc=recipe.data.preprocessing_num_workers, load_from_cache_file=not recipe.data.overwrite_cache,
            desc=f"tokenizing {eval_set.name}",
        )
        return feats.add_column("feature_index", list(range(len(feats))))


    # ------------------------------------------------------------------ scoring

    def score(self, eval_set: EvalSet, outputs: dict[str, Any], recipe: QARecipe) -> tuple[dict[str, float], dict[str, Any]]:
        from ssl_cli.tasks.qa.metrics import best_null_threshold, score_qa

        examples, info = eval_set.examples, eval_set.info
        predictions, nbest, diffs = predict_answers(
            examples, eval_set.features, outputs["start_logits"], outputs["end_logits"],
            n_best_size=recipe.qa.n_best_size, max_answer_length=recipe.qa.max_answer_length,
            version_2_with_negative=info["version_2_with_negative"],
            null_score_diff_threshold=recipe.qa.null_score_diff_threshold,
        )
        artefacts = {"predictions": predictions, "nbest": nbest, "null_odds": diffs}
        if not info["has_answers"]:
            return {}, artefacts  # a test split without gold answers: predictions only
        columns = examples.with_format("arrow")
        references = {ex_id: answers["text"] for ex_id, answers in
                      zip(columns["id"].to_pylist(), columns["answers"].to_pylist(), strict=True)}
        metrics = score_qa(predictions, references, info["metric"])
        if info["version_2_with_negative"]:
            best_texts = {q: (c[0]["text"] if c else "") for q, c in nbest.items()}
            metrics["best_f1"], metrics["best_f1_thresh"] = best_null_threshold(best_texts, diffs, references, info["metric"])
        return metrics, artefacts

    def write_predictions(self, eval_set: EvalSet, artefacts: dict[str, Any], output_dir: str) -> list[str]:
        prefix = "eval" if eval_set.name == "eval" else eval_set.name
        files = {f"{prefix}_predictions.json": artefacts["predictions"], f"{prefix}_nbest_predictions.json": artefacts["nbest"]}
        if artefacts["null_odds"]:
            files[f"{prefix}_null_odds.json"] = artefacts["null_odds"]
        for name, content in files.items():
            Path(output_dir, name).write_text(json.dumps(content, ensure_ascii=False, indent=2), encoding="utf-8")
        return list(files)


def predict_answers(examples: Any, features: Any, start_logits: Any, end_logits: Any,
                    **options: Any) -> tuple[dict[str, str], dict[str, list[dict]], dict[str, float]]:
    """Answers for ``examples`` from the logits of their windows ``features`` (``postprocess_predictions``'s result).

    Columns are read whole from Arrow (ids, contexts, ``example_index``, the
    ``offset_mapping`` buffers): going through the Dataset row by row costs
    more than all the scoring. ``options`` go to ``postprocess_predictions``.
    """
    from ssl_cli.tasks.qa.postprocess import WindowOffsets, postprocess_predictions

    columns, windows = examples.with_format("arrow"), features.with_format("arrow")
    offsets = WindowOffsets.from_arrow(windows["offset_mapping"], start_logits.shape[1])
    return postprocess_predictions(columns["id"].to_pylist(), columns["context"].to_pylist(),
                                   windows["example_index"].to_numpy(), start_logits, end_logits, offsets, **options)


def tokenize_windows(tokenizer: Any, questions: list[str], contexts: list[str], max_seq_length: int,
                     doc_stride: int, padding: bool | str = False, return_tensors: str | None = None) -> tuple[Any, int]:
    """Question + context windows of ``max_seq_length`` overlapping by ``doc_stride`` tokens.

    Only the context is truncated (on whichever side the tokenizer pads), and
    offsets are kept so spans map back to characters. Returns the encoding and
    the sequence id of the context (1 when it comes second).
    """
    pad_on_right = tokenizer.padding_side == "right"
    questions = [q.lstrip() for q in questions]  # leading spaces waste window room (as run_qa.py)
    first, second = (questions, contexts) if pad_on_right else (contexts, questions)
    enc = tokenizer(
        first, second, truncation="only_second" if pad_on_right else "only_first", max_length=max_seq_length,
        stride=doc_stride, return_overflowing_tokens=True, return_offsets_mapping=True, padding=padding,
        return_tensors=return_tensors,
    )
    return enc, (1 if pad_on_right else 0)


def context_offsets(enc: Any, context_id: int) -> list[list[Any]]:
    """Per window, the character offsets of context tokens and None for question and special tokens."""
    mapping = enc["offset_mapping"]
    mapping = mapping.tolist() if hasattr(mapping, "tolist") else mapping  # tensors when return_tensors is set
    return [
        [off if seq == context_id else None for off, seq in zip(mapping[i], enc.sequence_ids(i), strict=True)]
        for i in range(len(mapping))
    ]


def label_windows(enc: Any, answers: list[dict[str, list]], context_id: int, cls_id: int) -> tuple[list[int], list[int]]:
    """Start/end token labels for every window; [CLS] when the answer is not fully inside it.

    Uses the window's offset mapping, so labels are exact at character level
    whatever the tokenizer does to the text (CJK per character, WordPiece).
    """
    starts, ends = [], []
    for i, offsets in enumerate(enc["offset_mapping"]):
        ids = enc["input_ids"][i]
        cls_index = ids.index(cls_id) if cls_id in ids else 0
        answer = answers[enc["overflow_to_sample_mapping"][i]]
        if not answer["text"]:
            starts.append(cls_index)
            ends.append(cls_index)
            continue
        start_char = answer["answer_start"][0]
        end_char = start_char + len(answer["text"][0])
        seq_ids = enc.sequence_ids(i)
        first = seq_ids.index(context_id)
        last = len(seq_ids) - 1 - seq_ids[::-1].index(context_id)
        if not (offsets[first][0] <= start_char and offsets[last][1] >= end_char):
            starts.append(cls_index)
            ends.append(cls_index)
            continue
        token_start = first
        while token_start <= last and offsets[token_start][0] <= start_char:
            token_start += 1
        token_end = last
        while token_end >= first and offsets[token_end][1] >= end_char:
            token_end -= 1
        starts.append(token_start - 1)
        ends.append(token_end + 1)
    return starts, ends


TASK = QATask()
