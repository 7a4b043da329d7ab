"""``ssl pretrain-mlm``: BERT-style masked-language-model pretraining, from scratch or continued.

15% of the tokens are chosen (80% become [MASK], 10% a random token, 10% stay),
all configurable; ``mlm.masking`` chooses single tokens, whole words (English
by the tokenizer's word boundaries, Chinese by jieba's segmentation, no
reference file needed) or SpanBERT-style spans of words. Masks are drawn per
example from a seeded generator each epoch (see ``ssl_cli.masking``).

The output directory is a ``*ForMaskedLM`` checkpoint with its tokenizer: it
loads straight into ``finetune-qa``, ``finetune-glue``, ``tag-pos`` and ``nli``
with ``--model DIR`` (the task heads are initialised there).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from ssl_cli.config import Recipe, Section
from ssl_cli.errors import UserError
from ssl_cli.tasks._pretraining import PretrainingTask, TextConfig
from ssl_cli.tasks.base import Flag


class MLMConfig(Section):
    mlm_probability: float = Field(0.15, gt=0, lt=1, description="Share of tokens chosen for prediction.")
    mask_replace_prob: float = Field(0.8, ge=0, le=1, description="Of the chosen tokens, the share replaced by [MASK].")
    random_replace_prob: float = Field(
        0.1, ge=0, le=1, description="Of the chosen tokens, the share replaced by a random token (the rest stay unchanged)."
    )
    masking: Literal["token", "whole_word", "span"] = Field(
        "token", description="token: tokens independently; whole_word: all pieces of a word together; span: runs of "
        "whole words with geometric lengths (SpanBERT).",
    )
    word_segmentation: Literal["auto", "whitespace", "jieba"] = Field(
        "auto", description="Word boundaries for whole_word/span masking: whitespace uses the tokenizer's words; jieba "
        "segments Chinese; auto picks jieba when the text is mostly Chinese.",
    )
    mean_span_words: float = Field(3.0, ge=1, description="Mean span length in words for span masking.")

    @model_validator(mode="after")
    def _shares_fit(self) -> MLMConfig:
        if self.mask_replace_prob + self.random_replace_prob > 1:
            raise ValueError("mask_replace_prob + random_replace_prob must not exceed 1")
        return self


class MLMRecipe(Recipe):
    text: TextConfig = Field(default_factory=TextConfig)
    mlm: MLMConfig = Field(default_factory=MLMConfig)


class MLMTask(PretrainingTask):
    name = "pretrain-mlm"
    help = "Masked-language-model pretraining (BERT): from scratch with a tokenizer trained on the corpus, or continued."
    recipe_cls = MLMRecipe
    flags = (
        Flag("mlm-probability", "mlm.mlm_probability", float),
        Flag("masking", "mlm.masking"),
        Flag("line-by-line", "text.line_by_line", bool),
        Flag("text-column", "text.text_column"),
    )
    tiny_recipe = "recipes/pretrain/tiny-mlm-offline.yaml"

    def default_recipe(self) -> dict[str, Any]:
        return {"task": self.name, "data": {"max_seq_length": 128}, "training": {"learning_rate": 1e-4}}

    def auto_model_class(self) -> Any:
        from transformers import AutoModelForMaskedLM

        return AutoModelForMaskedLM

    def word_segmentation(self, recipe: MLMRecipe, examples: Any) -> str | None:
        cfg = recipe.mlm
        if cfg.masking == "token":
            return None
        if cfg.word_segmentation != "auto":
            return cfg.word_segmentation
        from ssl_cli.data.text import is_mostly_chinese

        sample = examples.select(range(min(200, len(examples))))["text"]
        return "jieba" if is_mostly_chinese(sample) else "whitespace"

    def wrap_collator(self, padder: Any, tokenizer: Any, recipe: MLMRecipe) -> Any:
        from ssl_cli.masking import MaskingCollator, MaskingPlan

        if tokenizer.mask_token_id is None:
            raise UserError("the tokenizer has no mask token: masked-LM pretraining needs one (e.g. [MASK])")
        cfg = recipe.mlm
        plan = MaskingPlan(probability=cfg.mlm_probability, mask_replace_prob=cfg.mask_replace_prob,
                           random_replace_prob=cfg.random_replace_prob, unit=cfg.masking, mean_span_words=cfg.mean_span_words)
        return MaskingCollator(padder, plan, recipe.training.seed, tokenizer.mask_token_id, len(tokenizer))

    def collator_columns(self) -> list[str]:
        return ["special_tokens_mask", "word_starts", "example_index"]


TASK = MLMTask()
