"""What ``pretrain-mlm`` and ``pretrain-clm`` share: unlabelled text in, packed blocks out, loss-based evaluation.

Text comes from plain-text files (one passage per line, or documents
separated by blank lines with ``data.text_sample_by: paragraph``), JSON lines,
CSV or Parquet with a text column, a glob of such shards, or a ``datasets``
name. Without a validation file a share of the documents is held out.

With ``text.streaming`` the training text is a ``datasets.IterableDataset``:
documents are read, shuffled in a buffer, tokenized and packed as training
consumes them, so nothing is cached and memory stays flat however large the
corpus. A stream has no length: training runs ``max_steps`` steps, passes over
the stream as often as that takes (reshuffled each pass), and ``--resume``
skips the blocks already trained on without running them through the model.

Evaluation is the language-modelling loss over the held-out text, reduced per
block inside the evaluation loop (the full vocabulary logits of every block
are never gathered): ``eval_loss``, ``perplexity`` = exp(eval_loss), and
``eval_accuracy`` = the share of predicted tokens the model gets right.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import Field

from ssl_cli.config import Section
from ssl_cli.data import is_stream
from ssl_cli.data.columns import find_column
from ssl_cli.data.schema import TEXT, require_column_type
from ssl_cli.errors import UserError
from ssl_cli.tasks.base import EvalSet, Flag, Splits, Task, Traits

TEXT_CANDIDATES = ("text", "content", "sentence", "document", "passage")
IGNORE = -100
STREAM_TOKENIZER_DOCUMENTS = 100_000  # a scratch: tokenizer is trained on the stream's first documents


class TextConfig(Section):
    text_column: str | None = Field(None, description="Column with the text (tables). Null: text, content, sentence, document.")
    line_by_line: bool = Field(
        False, description="One document per example (truncated to max_seq_length) instead of packing documents into "
        "full blocks (run_mlm.py --line_by_line).",
    )
    streaming: bool = Field(
        False, description="Stream the training text (datasets streaming) instead of loading and caching it: documents "
        "are read, tokenized and packed as training consumes them, so a corpus larger than memory or disk trains in "
        "flat memory. Needs training.max_steps (a stream has no length); --resume skips the blocks already seen "
        "without running them through the model. A scratch: tokenizer is trained on the first 100,000 documents.",
    )
    shuffle_buffer_size: int = Field(
        10_000, ge=1, description="With streaming: documents are shuffled within a buffer of this many (and shards "
        "in order), reshuffled on every pass over the stream.",
    )
    streaming_validation_documents: int = Field(
        1_000, ge=1, description="With streaming and no validation text: the stream's first this many documents are "
        "held out for evaluation (a stream has no length to take a percentage of).",
    )


def _non_empty(batch: dict[str, list]) -> list[bool]:
    """Documents with text; a stream's later records are typed here, as they are read (the first one was checked
    up front)."""
    odd = next((t for t in batch["text"] if t is not None and not isinstance(t, str)), None)
    if odd is not None:
        raise UserError(f"a streamed record's text is {type(odd).__name__} {str(odd)[:30]!r}, not a string; fix the data")
    return [bool(t and t.strip()) for t in batch["text"]]


TEXT_FLAGS = (
    Flag("line-by-line", "text.line_by_line", bool),
    Flag("text-column", "text.text_column"),
    Flag("streaming", "text.streaming", bool),
)


class PretrainingTask(Task):
    """Shared data handling, packing and loss-based evaluation of the two pretraining commands."""

    main_metric = "loss"
    greater_is_better = False
    flag_aliases = {"block-size": "max-seq-length", "text-column-name": "text-column"}  # run_clm.py, run_mlm.py
    flag_help = {"data.max_seq_length": "Tokens per training block: the text is packed into blocks of this length "
                                        "(run_clm.py's block_size)."}
    traits = Traits(outputs=("loss_sum", "tokens", "correct"))  # per block (``eval_tensors``)
    separator_attr = "sep_token_id"  # token between packed documents
    wraps_blocks = True  # [CLS] block [SEP] (MLM) or the bare block (CLM)
    shift_labels = False  # CLM scores token t+1 from position t

    # ------------------------------------------------------------------ data

    def load_splits(self, recipe: Any) -> Splits:
        """As every task's, with the training text streamed when ``text.streaming`` asks (shuffled in a buffer)."""
        from ssl_cli.tasks.splits import assemble_splits

        streaming = recipe.text.streaming and recipe.training.do_train
        if streaming and not recipe.training.max_steps:
            raise UserError("text.streaming needs training.max_steps (--max-steps N): a stream has no length to count "
                            "epochs in")
        splits = assemble_splits(self, recipe, stream=frozenset({"train"} if streaming else ()))
        if streaming:
            splits.train = splits.train.shuffle(seed=recipe.training.sampling_seed, buffer_size=recipe.text.shuffle_buffer_size)
        return splits

    def read_split(self, ds: Any, source: str, recipe: Any, info: dict[str, Any], role: str) -> Any:
        return self._texts(ds, source, recipe)

    def hold_out(self, train: Any, recipe: Any, info: dict[str, Any]) -> tuple[Any, Any]:
        if is_stream(train):
            return self._hold_out_stream(train, recipe.text.streaming_validation_documents, info)
        return super().hold_out(train, recipe, info)

    @staticmethod
    def _hold_out_stream(train: Any, documents: int, info: dict[str, Any]) -> tuple[Any, Any]:
        """(the rest of the stream, its first ``documents`` documents in memory) for evaluation."""
        import datasets

        held = datasets.Dataset.from_list(list(train.take(documents)))
        rest = train.skip(documents)
        if next(iter(rest.take(1)), None) is None:
            raise UserError(f"the training stream has only {len(held)} documents, all held out for evaluation: lower "
                            "text.streaming_validation_documents or pass --validation-file")
        info["validation_held_out_documents"] = len(held)
        return rest, held

    def _texts(self, ds: Any, source: str, recipe: Any) -> Any:
        """One ``text`` column, empty documents removed."""
        streamed = is_stream(ds)
        columns = ds.column_names
        if streamed:
            first = next(iter(ds.take(1)), None)
            if first is None:
                raise UserError(f"{source}: no text (the file has no records)")
            columns = list(first)
        column = find_column(columns, recipe.text.text_column, TEXT_CANDIDATES, "text", "--text-column", source)
        require_column_type(ds, column, TEXT, source)
        ds = ds.select_columns([column])
        if column != "text":
            ds = ds.rename_column(column, "text")
        if streamed:
            ds = ds.filter(_non_empty, batched=True)
            if next(iter(ds.take(1)), None) is None:
                raise UserError(f"{source}: no text (every document is empty)")
            return ds
        ds = ds.filter(_non_empty, batched=True, desc="dropping empty documents")
        if len(ds) == 0:
            raise UserError(f"{source}: no text (every document is empty)")
        return ds

    def write_sample_data(self, root: Path, seed: int = 1) -> dict[str, Path]:
        from ssl_cli.tasks.pretraining.data import write_text_corpus

        return write_text_corpus(root, n_train=300, n_dev=21, seed=seed)

    def training_texts(self, train: Any) -> Iterator[str]:
        if is_stream(train):
            for row in train.take(STREAM_TOKENIZER_DOCUMENTS):
                yield row["text"]
            return
        for batch in train.iter(batch_size=1000):
            yield from batch["text"]

    def _map_documents(self, examples: Any, features: Any, recipe: Any, desc: str, **kwargs: Any) -> Any:
        """``examples.map(features, batched=True)`` replacing the text: cached, or lazily for a stream."""
        if is_stream(examples):
            return examples.map(features, batched=True, remove_columns=["text"], **kwargs)
        return examples.map(features, batched=True, remove_columns=examples.column_names,
                            num_proc=recipe.data.preprocessing_num_workers,
                            load_from_cache_file=not recipe.data.overwrite_cache, desc=desc, **kwargs)

    @staticmethod
    def _indexed(blocks: Any) -> Any:
        """``example_index``: the block's position (in its pass, for a stream), which seeds its masks."""
        if is_stream(blocks):
            return blocks.map(lambda batch, indices: {"example_index": indices}, batched=True, with_indices=True)
        return blocks.add_column("example_index", list(range(len(blocks))))

    # ------------------------------------------------------------------ features

    def word_segmentation(self, recipe: Any, examples: Any) -> str | None:
        """How word starts are marked (None: not needed)."""
        return None

    @staticmethod
    def first_texts(examples: Any, count: int) -> list[str]:
        """The first ``count`` documents' text (of a stream too), e.g. to tell the language."""
        if is_stream(examples):
            return [row["text"] for row in examples.take(count)]
        return examples.select(range(min(count, len(examples))))["text"]

    def _blocks(self, examples: Any, tokenizer: Any, recipe: Any, name: str) -> Any:
        from ssl_cli.data.text import pack, word_starts_of

        segmentation = self.word_segmentation(recipe, examples)
        prefix, suffix = self._block_ends(tokenizer)
        body = recipe.data.max_seq_length - len(prefix) - len(suffix)
        separator_id = getattr(tokenizer, self.separator_attr)
        if separator_id is None:
            raise UserError(f"the tokenizer has no {self.separator_attr.removesuffix('_id')} to separate packed documents")

        def features(batch: dict[str, list]) -> dict[str, list]:
            encoded = tokenizer(batch["text"], add_special_tokens=False, return_offsets_mapping=segmentation == "jieba")
            streams = {"input_ids": encoded["input_ids"]}
            if segmentation:
                streams["word_starts"] = [word_starts_of(encoded, i, text, segmentation) for i, text in enumerate(batch["text"])]
            if recipe.text.line_by_line:
                blocks = {k: [v[:body] for v in values] for k, values in streams.items()}
            else:
                blocks = pack(streams, body, {"input_ids": separator_id, "word_starts": 1})
            return self._wrap(blocks, prefix, suffix, set(tokenizer.all_special_ids))

        return self._indexed(self._map_documents(examples, features, recipe, f"tokenizing and packing {name}"))

    def _block_ends(self, tokenizer: Any) -> tuple[list[int], list[int]]:
        """Tokens before and after each block: [CLS] ... [SEP] (BERT; <s> ... </s> for RoBERTa) for MLM, none for CLM."""
        if not self.wraps_blocks:
            return [], []
        return ([tokenizer.cls_token_id] if tokenizer.cls_token_id is not None else [],
                [tokenizer.sep_token_id] if tokenizer.sep_token_id is not None else [])

    def _wrap(self, blocks: dict[str, list[list[int]]], prefix: list[int], suffix: list[int],
              special_ids: set[int]) -> dict[str, list]:
        """Special tokens around each block, the special-token mask (never masked), attention mask and length."""
        out: dict[str, list] = {"input_ids": [], "special_tokens_mask": [], "attention_mask": [], "length": []}
        if "word_starts" in blocks:
            out["word_starts"] = []
        for b, ids in enumerate(blocks["input_ids"]):
            full = [*prefix, *ids, *suffix]
            special = [1] * len(prefix) + [int(t in special_ids) for t in ids] + [1] * len(suffix)
            out["input_ids"].append(full)
            out["special_tokens_mask"].append(special)
            out["attention_mask"].append([1] * len(full))
            out["length"].append(len(full))
            if "word_starts" in blocks:
                out["word_starts"].append([1] * len(prefix) + blocks["word_starts"][b] + [1] * len(suffix))
        return out

    def prepare_train(self, examples: Any, tokenizer: Any, recipe: Any) -> Any:
        return self._blocks(examples, tokenizer, recipe, "train")

    def prepare_eval(self, eval_set: EvalSet, tokenizer: Any, recipe: Any) -> Any:
        blocks = self._blocks(eval_set.examples, tokenizer, recipe, eval_set.name)
        return blocks.add_column("feature_index", list(range(len(blocks))))

    def traits_for(self, recipe: Any) -> Traits:
        """Packed text: every block is max_seq_length long (but a tail); line by line, each line its own length."""
        return replace(self.traits, fixed_shapes=not recipe.text.line_by_line)

    # ------------------------------------------------------------------ scoring

    def eval_tensors(self, outputs: Any, labels: Any) -> dict[str, Any]:
        """Per block: summed token loss, predicted-token count, right predictions (the logits stay on device)."""
        import torch

        logits = outputs["logits"]
        if self.shift_labels:
            logits, labels = logits[:, :-1], labels[:, 1:]
        losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2).float(), labels, ignore_index=IGNORE,
                                                   reduction="none")
        scored = labels != IGNORE
        right = (logits.argmax(dim=-1) == labels) & scored
        return {"loss_sum": losses.sum(dim=1), "tokens": scored.sum(dim=1).float(), "correct": right.sum(dim=1).float()}

    def score(self, eval_set: EvalSet, outputs: dict[str, Any], recipe: Any):
        tokens = float(outputs["tokens"].sum())
        if tokens == 0:
            raise UserError(f"{eval_set.name}: no token to predict in the evaluation text (is it empty?)")
        loss = float(outputs["loss_sum"].sum()) / tokens
        metrics = {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), "accuracy": float(outputs["correct"].sum()) / tokens,
                   "tokens": tokens}
        return metrics, {}

