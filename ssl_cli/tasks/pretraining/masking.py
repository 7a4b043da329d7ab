"""BERT-style masking for masked-language-model pretraining: token, whole-word and span masking.

Every example is masked from its own random generator, seeded by (run seed,
epoch, example index). Masks therefore change every epoch (dynamic masking, as
RoBERTa), are identical across processes, restarts and data-loader prefetching
(Accelerate collates one batch ahead, so a global RNG would shift after a
``--resume``), and an evaluation set is masked the same way every time.

Of the chosen positions, ``mask_replace_prob`` become ``[MASK]``,
``random_replace_prob`` a random token, and the rest keep their token (BERT's
80/10/10). Special tokens ([CLS], [SEP], padding) are never chosen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

IGNORE = -100


@dataclass(frozen=True)
class MaskingPlan:
    """What to mask and how; mirrors the recipe's ``mlm`` section."""

    probability: float = 0.15
    mask_replace_prob: float = 0.8
    random_replace_prob: float = 0.1
    unit: str = "token"  # token | whole_word | span
    mean_span_words: float = 3.0
    max_span_words: int = 10


def example_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, index])


def word_groups(word_starts: Sequence[int], special: Sequence[int]) -> list[list[int]]:
    """Positions grouped into words: a word starts at a ``word_starts`` position and runs to the next start."""
    groups: list[list[int]] = []
    for position, (start, is_special) in enumerate(zip(word_starts, special, strict=True)):
        if is_special:
            continue
        if start or not groups or groups[-1][-1] != position - 1:
            groups.append([position])
        else:
            groups[-1].append(position)
    return groups


def choose_positions(plan: MaskingPlan, special: np.ndarray, word_starts: np.ndarray | None,
                     rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of the positions to predict."""
    candidates = ~special
    if plan.unit == "token" or word_starts is None:
        return candidates & (rng.random(len(special)) < plan.probability)
    groups = word_groups(word_starts.tolist(), special.tolist())
    budget = max(1, round(int(candidates.sum()) * plan.probability)) if candidates.any() else 0
    chosen = np.zeros(len(special), dtype=bool)
    if plan.unit == "whole_word":
        covered = 0
        for g in rng.permutation(len(groups)):
            group = groups[g]
            if covered + len(group) > budget:
                continue
            chosen[group] = True
            covered += len(group)
            if covered >= budget:
                break
        return chosen
    return _choose_spans(plan, groups, budget, rng, chosen)


def _choose_spans(plan: MaskingPlan, groups: list[list[int]], budget: int, rng: np.random.Generator,
                  chosen: np.ndarray) -> np.ndarray:
    """SpanBERT: spans of whole words, lengths geometric (clipped), until the budget of tokens is reached."""
    covered, attempts = 0, 0
    p = 1.0 / plan.mean_span_words
    while covered < budget and attempts < 10 * max(1, len(groups)):
        attempts += 1
        length = min(int(rng.geometric(p)), plan.max_span_words, len(groups))
        first = int(rng.integers(0, len(groups) - length + 1))
        positions = [pos for group in groups[first : first + length] for pos in group]
        new = [pos for pos in positions if not chosen[pos]]
        if not new or covered + len(new) > budget * 1.1 + 1:
            continue
        chosen[new] = True
        covered += len(new)
    return chosen


def mask_example(input_ids: Sequence[int], special: Sequence[int], word_starts: Sequence[int] | None, plan: MaskingPlan,
                 rng: np.random.Generator, mask_token_id: int, vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(masked input ids, labels): labels hold the original token where chosen and -100 elsewhere."""
    ids = np.asarray(input_ids, dtype=np.int64)
    special_mask = np.asarray(special, dtype=bool)
    starts = np.asarray(word_starts, dtype=bool) if word_starts is not None else None
    chosen = choose_positions(plan, special_mask, starts, rng)
    labels = np.where(chosen, ids, IGNORE)
    draw = rng.random(len(ids))
    replace_mask = chosen & (draw < plan.mask_replace_prob)
    replace_random = chosen & (draw >= plan.mask_replace_prob) & (draw < plan.mask_replace_prob + plan.random_replace_prob)
    masked = ids.copy()
    masked[replace_mask] = mask_token_id
    masked[replace_random] = rng.integers(0, vocab_size, int(replace_random.sum()))
    return masked, labels


class MaskingCollator:
    """Masks each example (its own seeded generator), then pads the batch: the engine's collate_fn for MLM.

    ``set_epoch`` is called by the engine at the start of every epoch; an
    evaluation collator stays at epoch 0, so eval masks never change.
    """

    def __init__(self, padder: Any, plan: MaskingPlan, seed: int, mask_token_id: int, vocab_size: int) -> None:
        self.padder, self.plan, self.seed = padder, plan, seed
        self.mask_token_id, self.vocab_size = mask_token_id, vocab_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        masked_rows = []
        for row in rows:
            rng = example_rng(self.seed, self.epoch, int(row["example_index"]))
            ids, labels = mask_example(row["input_ids"], row["special_tokens_mask"], row.get("word_starts"), self.plan,
                                       rng, self.mask_token_id, self.vocab_size)
            kept = {k: v for k, v in row.items() if k not in ("special_tokens_mask", "word_starts", "example_index")}
            masked_rows.append({**kept, "input_ids": ids.tolist(), "labels": labels.tolist()})
        return self.padder(masked_rows)
