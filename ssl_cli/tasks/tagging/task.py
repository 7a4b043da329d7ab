"""``ssl tag-pos``: token classification, one tag per word (UD part of speech, and NER with the same command).

Data: CoNLL-U treebanks (``--tag-column upos|xpos``), CoNLL-2003-style column
files, tables with a ``tokens`` list and a tags list (JSON lines, Parquet, Hub
datasets with ``ClassLabel`` tags), and ``ud/<treebank>`` by name.

Words become subword pieces; the first piece of each word carries its label
and the others are ignored (or, with ``--label-all-tokens``, carry it too, as
in ``run_ner.py``). Chinese words are split into characters by the tokenizer;
a word's prediction is read from its first piece. A sentence longer than
``max_seq_length`` is cut at word boundaries into overlapping windows, and
each word is predicted from the window where it has the most context on both
sides: no word is ever silently truncated away.

Scores: word accuracy and a per-tag precision/recall/F1 table; for BIO/BIOES
tags also entity-level precision/recall/F1 as seqeval computes them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from ssl_cli.config import Recipe, Section
from ssl_cli.data.columns import find_column
from ssl_cli.data.schema import TAGS, WORDS, require_column_type
from ssl_cli.errors import UserError
from ssl_cli.tasks.base import EvalSet, Flag, Splits, Task, Traits
from ssl_cli.tasks.tagging.datasets import DATASETS

TOKEN_CANDIDATES = ("tokens", "words", "form")
TAG_CANDIDATES = ("upos", "ner_tags", "tags", "pos_tags", "labels", "xpos")
IGNORE = -100


class TaggingConfig(Section):
    tokens_column: str | None = Field(None, description="Column with each sentence's list of words. Null: tokens, words or form.")
    tag_column: str | None = Field(
        None,
        description="Tags to learn: upos or xpos for CoNLL-U; ner_tags, pos_tags, chunk_tags (4-column CoNLL-2003 files) or "
        "tags (2 columns) for column files; any list column of a table. Null: upos, else ner_tags, tags, pos_tags, labels.",
    )
    label_all_tokens: bool = Field(
        False, description="Train every subword piece on its word's tag (B- becomes I- after the first piece), not only the first."
    )
    scheme: Literal["auto", "none", "bio", "bioes"] = Field(
        "auto", description="Entity scheme for entity-level F1: auto detects BIO/BIOES tags; none scores tags only (POS)."
    )
    stride: int = Field(32, ge=0, description="Tokens of context shared by consecutive windows of a sentence longer than max_seq_length.")
    label_list: list[str] | None = Field(None, description="Tags in id order. Null: the sorted distinct training tags.")


class TaggingRecipe(Recipe):
    tagging: TaggingConfig = Field(default_factory=TaggingConfig)


# ----------------------------------------------------------------------------- windows and labels


def plan_windows(piece_counts: Sequence[int], body: int, stride: int) -> list[tuple[int, int]]:
    """Word ranges [start, end) of the windows covering a sentence, each at most ``body`` pieces.

    Windows break between words. Consecutive windows share up to ``stride``
    pieces of whole words, so a word near a cut also appears with context on
    both sides. A single word longer than ``body`` gets a window of its own
    (the tokenizer truncates its tail; its first piece, the one predicted, stays).
    """
    windows: list[tuple[int, int]] = []
    n, start = len(piece_counts), 0
    while start < n:
        end, used = start, 0
        while end < n and used + piece_counts[end] <= body:
            used += piece_counts[end]
            end += 1
        end = max(end, start + 1)
        windows.append((start, end))
        if end >= n:
            break
        following, shared = end, 0
        while following - 1 > start and shared + piece_counts[following - 1] <= stride:
            following -= 1
            shared += piece_counts[following]
        start = following
    return windows


def context_score(word: int, start: int, end: int) -> int:
    """Words of context on the poorer side of ``word`` within the window [start, end)."""
    return min(word - start, end - 1 - word)


def continuation_labels(label_list: Sequence[str]) -> list[int]:
    """For --label-all-tokens: the id a later piece of a word takes (B-X -> I-X when I-X exists)."""
    ids = {label: i for i, label in enumerate(label_list)}
    return [ids.get("I-" + label[2:], i) if label.startswith("B-") else i for i, label in enumerate(label_list)]


def _piece_counts(tokenizer: Any, sentences: list[list[str]]) -> list[list[int]]:
    encoded = tokenizer(sentences, is_split_into_words=True, add_special_tokens=False)
    counts = []
    for i, words in enumerate(sentences):
        per_word = Counter(w for w in encoded.word_ids(i) if w is not None)
        counts.append([per_word.get(w, 0) for w in range(len(words))])
    return counts


def tokenize_sentences(
    sentences: list[list[str]], tokenizer: Any, max_seq_length: int, stride: int, *,
    example_indices: Sequence[int], tag_ids: list[list[int]] | None = None, label_all_tokens: bool = False,
    continuation: Sequence[int] = (),
) -> dict[str, list]:
    """Model features of tagged sentences: one per window, with per-token ``word_ids`` and (for training) ``labels``.

    ``word_ids`` holds the sentence word index at a word's first piece and -1
    elsewhere; ``window_start``/``window_end`` say which words the window holds.
    A word the tokenizer turns into no piece at all (a zero-width space, a
    control character) is fed as the unknown token, so it still gets a prediction.
    """
    sentences = [list(words) for words in sentences]
    counts = _piece_counts(tokenizer, sentences)
    for words, word_counts in zip(sentences, counts, strict=True):
        for w, count in enumerate(word_counts):
            if count == 0:
                words[w], word_counts[w] = tokenizer.unk_token, 1
    body = max_seq_length - tokenizer.num_special_tokens_to_add(pair=False)
    slices, owners = [], []
    for s, word_counts in enumerate(counts):
        for start, end in plan_windows(word_counts, body, stride):
            slices.append(sentences[s][start:end])
            owners.append((s, start, end))
    encoded = tokenizer(slices, is_split_into_words=True, truncation=True, max_length=max_seq_length)
    features: dict[str, list] = {name: encoded[name] for name in ("input_ids", "attention_mask", "token_type_ids") if name in encoded}
    features.update(example_index=[], window_start=[], window_end=[], word_ids=[], length=[])
    if tag_ids is not None:
        features["labels"] = []
    for j, (s, start, end) in enumerate(owners):
        word_ids, labels, previous = [], [], None
        for word in encoded.word_ids(j):
            first_piece = word is not None and word != previous
            word_ids.append(start + word if first_piece else -1)
            if tag_ids is not None:
                if word is None:
                    labels.append(IGNORE)
                elif first_piece:
                    labels.append(tag_ids[s][start + word])
                else:
                    labels.append(continuation[tag_ids[s][start + word]] if label_all_tokens else IGNORE)
            previous = word
        features["example_index"].append(example_indices[s])
        features["window_start"].append(start)
        features["window_end"].append(end)
        features["word_ids"].append(word_ids)
        features["length"].append(len(word_ids))
        if tag_ids is not None:
            features["labels"].append(labels)
    return features


def stitch_predictions(n_words: Sequence[int], features: Any, token_predictions: Any) -> list[list[int]]:
    """Per example, one predicted id per word, each from the window giving that word the most context."""
    best: list[list[tuple[int, int]]] = [[(-1, -1)] * n for n in n_words]
    for f, (example, start, end, word_ids) in enumerate(zip(
            features["example_index"], features["window_start"], features["window_end"], features["word_ids"], strict=True)):
        row = best[example]
        for position, word in enumerate(word_ids):
            if word < 0:
                continue
            score = context_score(word, start, end)
            if score > row[word][0]:
                row[word] = (score, int(token_predictions[f][position]))
    missing = [(e, w) for e, row in enumerate(best) for w, (score, _) in enumerate(row) if score < 0]
    if missing:
        raise RuntimeError(f"no prediction for word {missing[0][1]} of example {missing[0][0]} ({len(missing)} words in all)")
    return [[prediction for _, prediction in row] for row in best]


# ----------------------------------------------------------------------------- the task


def _note_unseen_tags(eval_set: EvalSet, label_list: list[str]) -> None:
    """A gold tag the model has no label for is always scored wrong: say which, rather than report a lower
    accuracy silently."""
    from ssl_cli.errors import note

    if "tags" not in eval_set.examples.column_names:
        return
    known = set(label_list)
    unseen = Counter(tag for row in eval_set.examples["tags"] for tag in row if tag not in known)
    if unseen:
        listed = ", ".join(f"{tag} ({count})" for tag, count in unseen.most_common(5))
        note(f"{eval_set.info.get('source', eval_set.name)}: tag(s) absent from the training data, always scored "
             f"wrong: {listed}{' ...' if len(unseen) > 5 else ''}")


class TaggingTask(Task):
    name = "tag-pos"
    recipe_cls = TaggingRecipe
    flags = (
        Flag("tag-column", "tagging.tag_column"),
        Flag("tokens-column", "tagging.tokens_column"),
        Flag("label-all-tokens", "tagging.label_all_tokens", bool),
        Flag("scheme", "tagging.scheme"),
    )
    flag_aliases = {"text-column-name": "tokens-column", "label-column-name": "tag-column"}  # run_ner.py's
    flag_help = {"data.max_seq_length": "Maximum subword tokens per window: a longer sentence becomes overlapping "
                                        "windows, and every word is still tagged."}
    model_heads = ("ForTokenClassification",)
    main_metric = "accuracy"
    traits = Traits(labels=("labels",), token_labels=("labels",), loss_weighting="labelled_tokens", packable=True,
                    pretokenized=True, pipeline_tag="token-classification")
    tiny_recipe = "recipes/pos/tiny-en-offline.yaml"
    datasets = DATASETS

    def default_recipe(self) -> dict[str, Any]:
        """Random batches: on UD English POS, length-grouped batches cost accuracy even with tokens weighted
        evenly (docs/performance.md, RESULTS.md). On CPU the engine runs each random
        batch as length-sorted micro-batches (``training.padding_microbatches``), which removes most of its
        padding and keeps its gradient."""
        return {"task": self.name, "data": {"max_seq_length": 128},
                "training": {"learning_rate": 5e-5, "group_by_length": False}}

    def model_class(self, recipe: TaggingRecipe) -> Any:
        from transformers import AutoModelForTokenClassification

        return AutoModelForTokenClassification

    def predict_rows(self, model: Any, tokenizer: Any, rows: list[dict[str, Any]], settings: dict[str, Any],
                     first_row: int = 1) -> list[dict[str, Any]]:
        from ssl_cli.tasks.tagging.predict import tag_rows

        return tag_rows(model, tokenizer, rows, settings, first_row)

    def write_predicted(self, rows: list[dict[str, Any]], path: Path) -> bool:
        from ssl_cli.tasks.tagging.predict import write_conllu_rows

        return write_conllu_rows(rows, path)

    def find_dataset(self, name: str) -> Any:
        """Any ``ud/<treebank>``, listed or not, and the listed others (conll2003)."""
        from ssl_cli.tasks.tagging.datasets import ud_source

        return ud_source(name) if name.lower().startswith("ud/") else super().find_dataset(name)

    def main_metric_for(self, splits: Splits) -> str:
        """Entity F1 for BIO/BIOES tags (as run_ner.py), word accuracy for POS."""
        return "f1" if splits.info.get("scheme", "none") != "none" else "accuracy"

    # ------------------------------------------------------------------ data

    def read_split(self, ds: Any, source: str, recipe: TaggingRecipe, info: dict[str, Any], role: str) -> Any:
        examples, info["tag_column"] = self._canonical(ds, source, recipe, needs_tags=role != "test")
        return examples

    def finish_splits(self, splits: Splits, recipe: TaggingRecipe) -> Splits:
        """Every set is scored against the training tags, and written back in its source's format."""
        info = splits.info
        info["label_list"] = self._label_list(recipe, splits.train)
        info["scheme"] = recipe.tagging.scheme if recipe.tagging.scheme != "auto" else _detect(info["label_list"])
        for eval_set in splits.evals:
            column = eval_set.info.get("tag_column") or info.get("tag_column") or recipe.tagging.tag_column or "upos"
            eval_set.info.update({**info, "source": eval_set.info["source"]}, tag_column=column)
            _note_unseen_tags(eval_set, info["label_list"])
        return splits

    def _label_list(self, recipe: TaggingRecipe, train: Any) -> list[str]:
        if recipe.tagging.label_list:
            return list(recipe.tagging.label_list)
        if train is None:
            trained = _trained_labels(recipe.model.name_or_path)
            if trained:
                return trained
            raise UserError("without training data the tags must be given: set tagging.label_list, "
                            "or pass --model a directory trained by ssl tag-pos (its config.json holds them)")
        tags = sorted({tag for sentence in train["tags"] for tag in sentence})
        if len(tags) < 2:
            raise UserError(f"tagging needs at least 2 distinct tags, the training data has {tags}; check --tag-column")
        return tags

    def _canonical(self, ds: Any, source: str, recipe: TaggingRecipe, needs_tags: bool) -> tuple[Any, str | None]:
        """Columns ``tokens``, ``tags`` (strings; absent for an untagged test set) and ``idx`` (row in the source),
        and the name of the tag column read."""
        cfg, names = recipe.tagging, ds.column_names
        tokens = find_column(names, cfg.tokens_column, TOKEN_CANDIDATES, "tokens", "--tokens-column", source)
        tag_column = self._tag_column(ds, source, cfg, needs_tags)
        tag_names = _class_label_names(ds, tag_column) if tag_column else None
        require_column_type(ds, tokens, WORDS, source)
        if tag_column:
            require_column_type(ds, tag_column, TAGS, source)

        def convert(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
            columns: dict[str, list] = {"tokens": [[str(w) for w in words] for words in batch[tokens]], "idx": indices}
            for i, words in zip(indices, columns["tokens"], strict=True):
                if not words:
                    raise UserError(f"{source}: row {i}: a sentence without words; remove it")
            if tag_column:
                tags = [[tag_names[t] if tag_names else str(t) for t in row] for row in batch[tag_column]]
                for i, words, row in zip(indices, columns["tokens"], tags, strict=True):
                    if len(words) != len(row):
                        raise UserError(f"{source}: row {i}: {len(words)} words but {len(row)} tags in '{tag_column}'")
                columns["tags"] = tags
            return columns

        import datasets

        features = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")), "idx": datasets.Value("int64")})
        if tag_column:
            features["tags"] = datasets.Sequence(datasets.Value("string"))
        converted = ds.map(convert, batched=True, with_indices=True, remove_columns=ds.column_names, features=features,
                           desc=f"reading {Path(source).name}")
        return converted, tag_column

    def _tag_column(self, ds: Any, source: str, cfg: TaggingConfig, needs_tags: bool) -> str | None:
        """The tag column, or None for an untagged test set (no tag column, or only ``_``)."""
        names = ds.column_names
        column = find_column(names, cfg.tag_column, TAG_CANDIDATES, "tag", "--tag-column", source, required=needs_tags)
        if column is None:
            return None
        sample = [t for row in ds.select(range(min(200, len(ds))))[column] for t in row]
        if sample and all(t == "_" for t in sample):
            if needs_tags:
                others = [c for c in ("upos", "xpos") if c != column and c in names]
                hint = f"choose --tag-column {others[0]}" if others else "fill the tag column"
                raise UserError(f"{source}: column '{column}' has no tags (every value is '_'); {hint}")
            return None
        return column

    def write_sample_data(self, root: Path, seed: int = 1) -> dict[str, Path]:
        from ssl_cli.tasks.tagging.data import write_tagging_task

        return write_tagging_task("en_pos", root, n_train=120, n_dev=21, seed=seed)

    def training_texts(self, train: Any) -> Iterator[str]:
        for batch in train.iter(batch_size=1000):
            yield from (" ".join(words) for words in batch["tokens"])

    def model_kwargs(self, splits: Splits, recipe: TaggingRecipe) -> dict[str, Any]:
        labels = splits.info["label_list"]
        return {"num_labels": len(labels), "id2label": dict(enumerate(labels)), "label2id": {t: i for i, t in enumerate(labels)}}

    # ------------------------------------------------------------------ features

    def prepare_train(self, examples: Any, tokenizer: Any, recipe: TaggingRecipe) -> Any:
        cfg = recipe.tagging
        label_list = self._label_list(recipe, examples)  # the same list load_splits put in config.json
        ids = {label: i for i, label in enumerate(label_list)}
        continuation = continuation_labels(label_list)

        def features(batch: dict[str, list]) -> dict[str, list]:
            tag_ids = []
            for idx, row in zip(batch["idx"], batch["tags"], strict=True):
                unknown = [t for t in row if t not in ids]
                if unknown:
                    raise UserError(f"training row {idx}: tag '{unknown[0]}' is not in tagging.label_list; add it or fix the data")
                tag_ids.append([ids[t] for t in row])
            encoded = tokenize_sentences(batch["tokens"], tokenizer, recipe.data.max_seq_length, cfg.stride,
                                         example_indices=batch["idx"], tag_ids=tag_ids,
                                         label_all_tokens=cfg.label_all_tokens, continuation=continuation)
            return {k: v for k, v in encoded.items() if k not in ("word_ids", "window_start", "window_end", "example_index")}

        return examples.map(features, batched=True, remove_columns=examples.column_names,
                            num_proc=recipe.data.preprocessing_num_workers,
                            load_from_cache_file=not recipe.data.overwrite_cache, desc="tokenizing train")

    def prepare_eval(self, eval_set: EvalSet, tokenizer: Any, recipe: TaggingRecipe) -> Any:
        examples = eval_set.examples

        def features(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
            return tokenize_sentences(batch["tokens"], tokenizer, recipe.data.max_seq_length, recipe.tagging.stride,
                                      example_indices=indices)

        feats = examples.map(features, batched=True, with_indices=True, remove_columns=examples.column_names,
                             num_proc=recipe.data.preprocessing_num_workers,
                             load_from_cache_file=not recipe.data.overwrite_cache, desc=f"tokenizing {eval_set.name}")
        return feats.add_column("feature_index", list(range(len(feats))))

    # ------------------------------------------------------------------ scoring

    def score(self, eval_set: EvalSet, outputs: dict[str, Any], recipe: TaggingRecipe):
        import numpy as np

        from ssl_cli.tasks.tagging.metrics import entity_scores, macro_f1, tag_report, word_accuracy

        label_list = eval_set.info["label_list"]
        token_predictions = np.asarray(outputs["logits"]).argmax(axis=-1)
        columns = eval_set.features.select_columns(["example_index", "window_start", "window_end", "word_ids"])
        ids = stitch_predictions([len(t) for t in eval_set.examples["tokens"]], columns[:], token_predictions)
        predicted = [[label_list[i] for i in row] for row in ids]
        artefacts: dict[str, Any] = {"predictions": predicted}
        if "tags" not in eval_set.examples.column_names:
            return {}, artefacts
        gold = eval_set.examples["tags"]
        report = tag_report(gold, predicted)
        metrics = {"accuracy": word_accuracy(gold, predicted), "macro_f1": macro_f1(report)}
        artefacts["tag_report"] = report
        if eval_set.info["scheme"] != "none":
            entities = entity_scores(gold, predicted)
            metrics.update(precision=entities["overall_precision"], recall=entities["overall_recall"], f1=entities["overall_f1"])
            artefacts["entity_report"] = {k: v for k, v in entities.items() if isinstance(v, dict)}
        return metrics, artefacts

    def write_predictions(self, eval_set: EvalSet, artefacts: dict[str, Any], output_dir: str) -> list[str]:
        """JSONL per sentence; the source file with predicted tags (CoNLL-U/columns); the per-tag report."""
        from ssl_cli.data.conll import is_conll_file, write_with_tags

        prefix = "eval" if eval_set.name == "eval" else eval_set.name
        out, written = Path(output_dir), []
        predicted = artefacts["predictions"]
        lines = []
        for row, tags in zip(eval_set.examples, predicted, strict=True):
            record = {"idx": row["idx"], "tokens": row["tokens"], "predictions": tags}
            if "tags" in row:
                record["tags"] = row["tags"]
            lines.append(json.dumps(record, ensure_ascii=False))
        (out / f"{prefix}_predictions.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        written.append(f"{prefix}_predictions.jsonl")
        source = Path(eval_set.info["source"])
        if source.is_file() and is_conll_file(source):  # not a held-out part of the training file
            target = out / f"{prefix}_predictions{source.suffix}"
            if write_with_tags(source, target, eval_set.info["tag_column"], predicted):
                written.append(target.name)
        if "tag_report" in artefacts:
            report = {"tags": artefacts["tag_report"], **({"entities": artefacts["entity_report"]}
                                                          if "entity_report" in artefacts else {})}
            (out / f"{prefix}_tag_report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n",
                                                           encoding="utf-8")
            written.append(f"{prefix}_tag_report.json")
            print_tag_report(artefacts["tag_report"], eval_set.name)
        return written


def print_tag_report(report: dict[str, dict[str, float]], name: str) -> None:
    """Per-tag precision/recall/F1/support as a rich table on stderr."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{name}: per-tag scores")
    for column in ("tag", "precision", "recall", "f1", "support"):
        table.add_column(column, justify="left" if column == "tag" else "right")
    for tag, row in report.items():
        table.add_row(tag, f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1']:.3f}", str(row["support"]))
    Console(stderr=True).print(table)


def _detect(label_list: list[str]) -> str:
    from ssl_cli.tasks.tagging.metrics import detect_scheme

    return detect_scheme(label_list)


def _trained_labels(model: str) -> list[str] | None:
    """The tags of a fine-tuned token-classification model directory (``id2label`` in its config.json)."""
    config = Path(model).expanduser() / "config.json"
    if not config.is_file():
        return None
    id2label = json.loads(config.read_text(encoding="utf-8")).get("id2label") or {}
    labels = [id2label.get(str(i)) for i in range(len(id2label))]
    return labels if labels and None not in labels and not labels[0].startswith("LABEL_") else None


def _class_label_names(ds: Any, column: str) -> list[str] | None:
    """Tag names of a ``Sequence(ClassLabel)`` column (Hub datasets store ids)."""
    feature = ds.features.get(column)
    inner = getattr(feature, "feature", None)
    return list(inner.names) if hasattr(inner, "names") else None


TASK = TaggingTask()
