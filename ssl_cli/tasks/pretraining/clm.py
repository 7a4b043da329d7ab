"""``ssl pretrain-clm``: GPT-style next-token pretraining, from scratch or continued.

Documents are packed into blocks of ``max_seq_length`` tokens with the end-of-text
token between them (run_clm.py's ``group_texts``, keeping each batch's tail
block). The labels are the inputs; the model shifts them by one. Evaluation
reports ``eval_loss``, ``perplexity`` and next-token ``eval_accuracy`` on
held-out text. ``scratch:gpt2-tiny|mini|small`` builds a random GPT-2 with a
byte-level BPE tokenizer trained on the corpus.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ssl_cli.config import Recipe
from ssl_cli.tasks.base import Traits
from ssl_cli.tasks.pretraining.common import TEXT_FLAGS, PretrainingTask, TextConfig


class CLMRecipe(Recipe):
    text: TextConfig = Field(default_factory=TextConfig)


class CausalCollator:
    """Labels are the input ids (padding -100); the bookkeeping columns are dropped before padding."""

    def __init__(self, padder: Any) -> None:
        self.padder = padder

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        kept = [{**{k: v for k, v in row.items() if k not in ("special_tokens_mask", "example_index")},
                 "labels": row["input_ids"]} for row in rows]
        return self.padder(kept)


class CLMTask(PretrainingTask):
    name = "pretrain-clm"
    recipe_cls = CLMRecipe
    flags = TEXT_FLAGS
    traits = Traits(inputs=("input_ids", "attention_mask"), labels=("labels",), token_labels=("labels",),
                    collator_reads=("special_tokens_mask", "example_index"), outputs=PretrainingTask.traits.outputs,
                    loss_weighting="predicted_tokens", pipeline_tag="text-generation", summary_aliases=("perplexity",))
    tiny_recipe = "recipes/pretrain/tiny-clm-offline.yaml"
    model_heads = ("ForCausalLM", "LMHeadModel")
    separator_attr = "eos_token_id"
    wraps_blocks = False
    shift_labels = True

    def default_recipe(self) -> dict[str, Any]:
        return {"task": self.name, "model": {"name_or_path": "scratch:gpt2-tiny"},
                "data": {"max_seq_length": 128},
                "training": {"learning_rate": 5e-4}}

    def model_class(self, recipe: CLMRecipe) -> Any:
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM

    def collator(self, tokenizer: Any, recipe: CLMRecipe, training: bool, fixed_length: int | None) -> Any:
        return CausalCollator(super().collator(tokenizer, recipe, training, fixed_length))


TASK = CLMTask()
