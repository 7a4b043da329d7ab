"""What ``pretrain-mlm`` and ``pretrain-clm`` share: unlabelled text in, packed blocks out, loss-based evaluation.

Text comes from plain-text files (one passage per line, or documents
separated by blank lines with ``data.text_sample_by: paragraph``), JSON lines,
CSV or Parquet with a text column, or a ``datasets`` name. Without a
validation file a share of the documents is held out.

Evaluation is the language-modelling loss over the held-out text, reduced per
block inside the evaluation loop (the full vocabulary logits of every block
are never gathered): ``eval_loss``, ``perplexity`` = exp(eval_loss), and
``eval_accuracy`` = the share of predicted tokens the model gets right.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from pydantic import Field

from ssl_cli.config import Section
from ssl_cli.errors import UserError
from ssl_cli.tasks.base import EvalSet, Splits, Task
from ssl_cli.tasks.classification import find_column

TEXT_CANDIDATES = ("text", "content", "sentence", "document", "passage")
IGNORE = -100


class TextConfig(Section):
    text_column: str | None = Field(None, description="Column with the text (tables). Null: text, content, sentence, document.")
    line_by_line: bool = Field(
        False, description="One document per example (truncated to max_seq_length) instead of packing documents into "
        "full blocks (run_mlm.py --line_by_line).",
    )


class PretrainingTask(Task):
    """Shared data handling, packing and loss-based evaluation of the two pretraining commands."""

    main_metric = "loss"
    greater_is_better = False
    output_names = ("loss_sum", "tokens", "correct")
    separator_attr = "sep_token_id"  # token between packed documents
    wraps_blocks = True  # [CLS] block [SEP] (MLM) or the bare block (CLM)
    shift_labels = False  # CLM scores token t+1 from position t

    # ------------------------------------------------------------------ data

    def load_splits(self, recipe: Any) -> Splits:
        from ssl_cli.data.loading import hold_out_validation, resolve_sources

        data, training = recipe.data, recipe.training
        raw, info = resolve_sources(data, self.name)
        train = None
        if training.do_train:
            if "train" not in raw:
                raise UserError("no training text: pass --data NAME|PATH or --train-file FILE (or set training.do_train: false)")
            train = self._texts(*raw["train"], recipe, data.max_train_samples)
        evals = []
        if training.do_eval:
            if "validation" in raw:
                evals.append(EvalSet("eval", self._texts(*raw["validation"], recipe, data.max_eval_samples)))
            elif train is not None:
                train, held = hold_out_validation(train, data, training.seed, info)
                evals.append(EvalSet("eval", held))
            else:
                raise UserError("do_eval needs validation text: pass --validation-file FILE, or set training.do_eval: false")
        return Splits(train=train, evals=evals, info=info)

    def _texts(self, ds: Any, source: str, recipe: Any, limit: int | None) -> Any:
        """One ``text`` column, empty documents removed."""
        column = find_column(ds.column_names, recipe.text.text_column, TEXT_CANDIDATES, "text", "--text-column", source)
        ds = ds.select_columns([column])
        if column != "text":
            ds = ds.rename_column(column, "text")
        ds = ds.filter(lambda batch: [bool(t and t.strip()) for t in batch["text"]], batched=True,
                       desc="dropping empty documents")
        if len(ds) == 0:
            raise UserError(f"{source}: no text (every document is empty)")
        return ds.select(range(min(limit, len(ds)))) if limit else ds

    def training_texts(self, train: Any) -> Iterator[str]:
        for batch in train.iter(batch_size=1000):
            yield from batch["text"]

    # ------------------------------------------------------------------ features

    def word_segmentation(self, recipe: Any, examples: Any) -> str | None:
        """How word starts are marked (None: not needed)."""
        return None

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

        blocks = examples.map(features, batched=True, remove_columns=examples.column_names,
                              num_proc=recipe.data.preprocessing_num_workers,
                              load_from_cache_file=not recipe.data.overwrite_cache, desc=f"tokenizing and packing {name}")
        blocks = blocks.add_column("example_index", list(range(len(blocks))))
        return blocks

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

    def model_input_columns(self) -> list[str]:
        return ["input_ids", "attention_mask"]

    def fixed_shape_batches(self, recipe: Any) -> bool:
        return not recipe.text.line_by_line  # packed: every block is max_seq_length long (but a tail)

    def label_columns(self) -> list[str]:
        return ["labels"]

    def sequence_label_columns(self) -> list[str]:
        return ["labels"]

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

    def model_kwargs(self, splits: Splits, recipe: Any) -> dict[str, Any]:
        return {}
