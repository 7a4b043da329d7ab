"""``ssl pretrain-mlm``: BERT-style masked-language-model pretraining, from scratch or continued.

15% of the tokens are chosen (80% become [MASK], 10% a random token, 10% stay),
all configurable; ``mlm.masking`` chooses single tokens, whole words (English
by the tokenizer's word boundaries, Chinese by jieba's segmentation, no
reference file needed) or SpanBERT-style spans of words. Masks are drawn per
example from a seeded generator each epoch (see ``ssl_cli.tasks.pretraining.masking``).

The output directory is a ``*ForMaskedLM`` checkpoint with its tokenizer: it
loads straight into ``finetune-qa``, ``finetune-glue``, ``tag-pos`` and ``nli``
with ``--model DIR`` (the task heads are initialised there).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from pydantic import Field, model_validator

from ssl_cli.compat import replace_forward
from ssl_cli.config import Recipe, Section
from ssl_cli.data import is_stream
from ssl_cli.errors import UserError
from ssl_cli.tasks.base import Flag, Traits
from ssl_cli.tasks.pretraining.common import TEXT_FLAGS, PretrainingTask, TextConfig


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
    sentence_objective: Literal["none", "nsp", "sop"] = Field(
        "none", description="A sentence-pair objective besides MLM: nsp (BERT's next sentence prediction: is segment B "
        "the real continuation or from another document) or sop (ALBERT's sentence order prediction: are two "
        "consecutive segments swapped). Examples become [CLS] A [SEP] B [SEP] pairs cut from each document instead of "
        "packed blocks; the model gets its pretraining heads (BERT, ALBERT).",
    )
    short_seq_prob: float = Field(
        0.1, ge=0, le=1, description="With a sentence objective, the share of pairs given a shorter random target "
        "length, so the model also sees short inputs (BERT's create_pretraining_data.py).",
    )
    sparse_prediction_head: bool = Field(
        True, description="In training, run the output head (the vocabulary projection) only at masked positions: "
        "the same loss, far less compute (BERT, RoBERTa, ALBERT, ELECTRA, DistilBERT; other families run in full).",
    )

    @model_validator(mode="after")
    def _shares_fit(self) -> MLMConfig:
        if self.mask_replace_prob + self.random_replace_prob > 1:
            raise ValueError("mask_replace_prob + random_replace_prob must not exceed 1")
        return self


@dataclass(frozen=True)
class Heads:
    """A pretraining model's heads by module path: the MLM head's modules applied in order to the encoder's hidden
    states, and the sentence-pair classifier on the pooled output (NSP/SOP), if the class has one."""

    mlm: tuple[str, ...]
    sentence: str | None = None


TRAINING_HEADS: dict[str, Heads] = {
    "BertForMaskedLM": Heads(("cls",)),
    "RobertaForMaskedLM": Heads(("lm_head",)),
    "XLMRobertaForMaskedLM": Heads(("lm_head",)),
    "CamembertForMaskedLM": Heads(("lm_head",)),
    "AlbertForMaskedLM": Heads(("predictions",)),
    "ElectraForMaskedLM": Heads(("generator_predictions", "generator_lm_head")),
    "DistilBertForMaskedLM": Heads(("vocab_transform", "activation", "vocab_layer_norm", "vocab_projector")),
    "BertForPreTraining": Heads(("cls.predictions",), "cls.seq_relationship"),
    "AlbertForPreTraining": Heads(("predictions",), "sop_classifier"),
}
SENTENCE_LABELS = {"nsp": "next_sentence_label", "sop": "sentence_order_label"}


def install_training_forward(model: Any, sparse: bool = True) -> bool:
    """Make ``model(**inputs, labels=..., next_sentence_label|sentence_order_label=...)`` compute the training loss
    our way; False (nothing changed) for a class whose heads are not known.

    Why: the MLM head's vocabulary projection costs hidden x vocab per
    position; for a 4-layer, 256-hidden BERT with the 21,128-token Chinese
    vocabulary that is more than the whole encoder. ``run_mlm.py``'s models
    project every position and then ignore the 85% that carry no label. With
    ``sparse`` the head runs only at labelled positions; the loss is the same
    mean cross-entropy over them. The sentence label of either objective goes
    to the class's own pair head (BERT's NSP head also learns SOP; ALBERT's
    SOP head also learns NSP) and its loss is added, as in the papers. Without
    labels (evaluation) the model's own forward runs, unchanged. The forward
    is replaced on this instance only, so a DDP wrapper still calls it and
    ``save_pretrained`` writes the ordinary checkpoint.
    """

    import torch
    from transformers.modeling_outputs import MaskedLMOutput

    heads = TRAINING_HEADS.get(type(model).__name__)
    base = getattr(model, model.base_model_prefix, None)
    if heads is None or base is None:
        return False
    mlm_modules = [model.get_submodule(path) for path in heads.mlm]
    sentence_head = model.get_submodule(heads.sentence) if heads.sentence else None
    full_forward = model.forward
    cross_entropy = torch.nn.functional.cross_entropy

    def forward(self: Any, labels: Any = None, next_sentence_label: Any = None, sentence_order_label: Any = None,
                **inputs: Any) -> Any:
        sentence_label = next_sentence_label if next_sentence_label is not None else sentence_order_label
        if labels is None:
            return full_forward(**inputs)
        encoded = base(**inputs, return_dict=True)
        states, targets = encoded.last_hidden_state, labels
        if sparse:
            selected = labels != -100
            states, targets = states[selected], labels[selected]
        for module in mlm_modules:
            states = module(states)
        # a sum over the labelled positions over their count: a batch without any gives 0, not NaN
        loss = cross_entropy(states.reshape(-1, states.shape[-1]).float(), targets.reshape(-1), reduction="sum")
        loss = loss / (targets != -100).sum().clamp(min=1)
        if sentence_label is not None:
            if sentence_head is None:
                raise ValueError(f"{type(self).__name__} has no sentence-pair head")
            loss = loss + cross_entropy(sentence_head(encoded.pooler_output).float(), sentence_label)
        return MaskedLMOutput(loss=loss, logits=states)

    replace_forward(model, forward)
    return True


class MLMRecipe(Recipe):
    text: TextConfig = Field(default_factory=TextConfig)
    mlm: MLMConfig = Field(default_factory=MLMConfig)

    @model_validator(mode="after")
    def _pairs_are_per_document(self) -> MLMRecipe:
        if self.mlm.sentence_objective != "none" and self.text.line_by_line:
            raise ValueError("text.line_by_line does not apply with mlm.sentence_objective: pairs are cut from each "
                             "document; drop one of the two")
        return self


class MLMTask(PretrainingTask):
    name = "pretrain-mlm"
    recipe_cls = MLMRecipe
    flags = (
        Flag("mlm-probability", "mlm.mlm_probability", float),
        Flag("masking", "mlm.masking"),
        Flag("sentence-objective", "mlm.sentence_objective"),
        *TEXT_FLAGS,
    )
    traits = Traits(labels=("labels", *SENTENCE_LABELS.values()), token_labels=("labels",),
                    collator_reads=("special_tokens_mask", "word_starts", "example_index"),
                    outputs=PretrainingTask.traits.outputs, loss_weighting="labelled_tokens", pipeline_tag="fill-mask",
                    summary_aliases=("perplexity",))
    tiny_recipe = "recipes/pretrain/tiny-mlm-offline.yaml"
    model_heads = ("ForMaskedLM", "ForPreTraining")

    def default_recipe(self) -> dict[str, Any]:
        return {"task": self.name, "data": {"max_seq_length": 128},
                "training": {"learning_rate": 1e-4}}

    def model_class(self, recipe: MLMRecipe) -> Any:
        """The masked-LM head, or BERT's pretraining heads (MLM plus a sentence-pair head) for NSP/SOP."""
        from transformers import AutoModelForMaskedLM, AutoModelForPreTraining

        return AutoModelForMaskedLM if recipe.mlm.sentence_objective == "none" else AutoModelForPreTraining

    def _blocks(self, examples: Any, tokenizer: Any, recipe: MLMRecipe, name: str) -> Any:
        """Packed blocks, or with a sentence objective [CLS] A [SEP] B [SEP] pairs and their labels."""
        objective = recipe.mlm.sentence_objective
        if objective == "none":
            return super()._blocks(examples, tokenizer, recipe, name)
        if tokenizer.cls_token_id is None or tokenizer.sep_token_id is None:
            raise UserError(f"mlm.sentence_objective {objective} needs a tokenizer with [CLS] and [SEP] tokens")
        from ssl_cli.tasks.pretraining.sentence_pairs import pair_features

        segmentation = self.word_segmentation(recipe, examples)
        special_ids = set(tokenizer.all_special_ids)

        def features(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
            return pair_features(batch["text"], indices, tokenizer, segmentation, objective, recipe.data.max_seq_length,
                                 recipe.mlm.short_seq_prob, recipe.training.seed, special_ids, SENTENCE_LABELS[objective])

        pairs = self._map_documents(examples, features, recipe, f"building {objective} pairs ({name})", with_indices=True)
        if not is_stream(pairs) and len(pairs) == 0:
            raise UserError(f"{name}: no sentence pair could be built (every document has under two tokens)")
        return self._indexed(pairs)

    def traits_for(self, recipe: MLMRecipe) -> Traits:
        traits = super().traits_for(recipe)  # sentence pairs vary in length
        return replace(traits, fixed_shapes=traits.fixed_shapes and recipe.mlm.sentence_objective == "none")

    def adapt_model_for_training(self, model: Any, recipe: MLMRecipe) -> None:
        objective = recipe.mlm.sentence_objective
        if objective != "none":
            heads = TRAINING_HEADS.get(type(model).__name__)
            if heads is None or heads.sentence is None:
                raise UserError(f"mlm.sentence_objective {objective} needs a model with a sentence-pair head (BERT or "
                                f"ALBERT); {type(model).__name__} has none")
            install_training_forward(model, sparse=recipe.mlm.sparse_prediction_head)
        elif recipe.mlm.sparse_prediction_head:
            install_training_forward(model, sparse=True)

    def eval_tensors(self, outputs: Any, labels: Any) -> dict[str, Any]:
        """The token-level sums of every pretraining task, plus the predicted sentence label of each pair."""
        logits = outputs.get("logits")
        tensors = super().eval_tensors({"logits": logits if logits is not None else outputs["prediction_logits"]}, labels)
        pair_logits = next((outputs[k] for k in ("seq_relationship_logits", "sop_logits") if outputs.get(k) is not None),
                           None)
        if pair_logits is not None:
            tensors["sentence_prediction"] = pair_logits.argmax(dim=-1).float()
        return tensors

    def score(self, eval_set: Any, outputs: dict[str, Any], recipe: MLMRecipe):
        metrics, artefacts = super().score(eval_set, outputs, recipe)
        if "sentence_prediction" in outputs:
            import numpy as np

            column = SENTENCE_LABELS[recipe.mlm.sentence_objective]
            gold = np.asarray(eval_set.features[column])
            metrics["sentence_accuracy"] = float((outputs["sentence_prediction"].astype(np.int64) == gold).mean())
        return metrics, artefacts

    def word_segmentation(self, recipe: MLMRecipe, examples: Any) -> str | None:
        cfg = recipe.mlm
        if cfg.masking == "token":
            return None
        if cfg.word_segmentation != "auto":
            return cfg.word_segmentation
        from ssl_cli.data.text import is_mostly_chinese

        return "jieba" if is_mostly_chinese(self.first_texts(examples, 200)) else "whitespace"

    def collator(self, tokenizer: Any, recipe: MLMRecipe, training: bool, fixed_length: int | None) -> Any:
        from ssl_cli.tasks.pretraining.masking import MaskingCollator, MaskingPlan

        if tokenizer.mask_token_id is None:
            raise UserError("the tokenizer has no mask token: masked-LM pretraining needs one (e.g. [MASK])")
        cfg = recipe.mlm
        plan = MaskingPlan(probability=cfg.mlm_probability, mask_replace_prob=cfg.mask_replace_prob,
                           random_replace_prob=cfg.random_replace_prob, unit=cfg.masking, mean_span_words=cfg.mean_span_words)
        padder = super().collator(tokenizer, recipe, training, fixed_length)
        return MaskingCollator(padder, plan, recipe.training.seed, tokenizer.mask_token_id, len(tokenizer))



TASK = MLMTask()
