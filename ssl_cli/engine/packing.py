"""Several sequences in one training row, for losses over tokens (tag-pos).

A random batch of sentences, padded to its longest, is mostly padding (UD
English: 21 real tokens per row of about 55). Length-sorted micro-batches
(``collate.plan_microbatches``) compute less padding, but each one is a
forward and backward pass of its own. Packing instead puts the batch's
sentences end to end in a few rows as long as its longest sentence, so the
batch is one pass over rows that are nearly all real tokens. Each token
attends only to its own sentence (a block-diagonal 4D attention mask) and
positions restart at every sentence, so each token's output, and the loss over
the batch's labelled tokens, is what the unpacked batch gives: the batches stay
random and the gradient the same.

Whether a model honours the mask and the position ids is not assumed: before
training, ``packing_position_offset`` runs a few sentences both ways and packing
is used only if the outputs agree (models that number positions after the
padding index, like RoBERTa, agree at an offset; DeBERTa, whose relative
positions come from the row, MPNet, and any model on eager attention, which
adds a boolean mask instead of selecting with it, never do, and train unpacked).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ssl_cli.engine.collate import WrappingCollator

#: Entries of a packed batch that count what it holds; they are not model inputs (see ``model_inputs``).
PACKED_EXAMPLES, PACKED_TOKENS = "packed_examples", "packed_tokens"


def first_fit_decreasing(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Indices of ``lengths`` grouped into rows of at most ``capacity`` tokens, longest sequences placed first.

    First-fit decreasing uses at most 11/9 of the optimal number of rows plus
    one; on batches of 32 sentences its rows are over 90% full.
    """
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for r, free in enumerate(room):
            if lengths[i] <= free:
                rows[r].append(i)
                room[r] -= lengths[i]
                break
        else:
            rows.append([i])
            room.append(capacity - lengths[i])
    return rows


def model_inputs(batch: dict[str, Any]) -> dict[str, Any]:
    """The batch without a packed batch's counts."""
    if PACKED_EXAMPLES not in batch:
        return batch
    return {k: v for k, v in batch.items() if k not in (PACKED_EXAMPLES, PACKED_TOKENS)}


def batch_examples(batch: dict[str, Any]) -> int:
    """The examples in one collated batch: a packed (or padding-free) batch counts them, as its rows do not."""
    if PACKED_EXAMPLES in batch:
        return batch[PACKED_EXAMPLES]
    return len(next(iter(batch.values())))


def batch_counts(batch: dict[str, Any]) -> tuple[int, Any, int]:
    """Examples, real tokens (a tensor or int) and computed tokens of one collated batch (packed or not)."""
    if PACKED_EXAMPLES in batch:
        return batch[PACKED_EXAMPLES], batch[PACKED_TOKENS], batch["input_ids"].numel()
    mask = batch.get("attention_mask")
    return batch_examples(batch), (mask.sum() if mask is not None else 0), (mask.numel() if mask is not None else 0)


def position_offsets(config: Any) -> list[int]:
    """The position offsets a model may number a sequence's tokens from: 0 (BERT, ELECTRA, ALBERT...) and its
    padding index + 1 (RoBERTa, XLM-R)."""
    pad = getattr(config, "pad_token_id", None)
    return list(dict.fromkeys([0] + ([pad + 1] if isinstance(pad, int) else [])))


def plan_packs(lengths: Sequence[int], max_capacity: int, hidden_size: int) -> list[list[int]]:
    """The cheapest packing of ``lengths``: rows (lists of indices) from ``first_fit_decreasing``.

    Row width runs from the longest sequence up to twice that (capped by
    ``max_capacity``, the model's positions) in eighths: wider rows fit more
    sequences but attention costs more per token. The cost weighed is padded
    tokens times (1 + width / (6 x hidden)), attention's FLOPs per token over
    the weights' (12 x width x hidden against 72 x hidden^2 per layer).
    """
    longest = max(lengths)
    widths = sorted({min(max_capacity, longest + longest * k // 8) for k in range(9)} | {longest})
    plans = [first_fit_decreasing(lengths, width) for width in widths if width >= longest]
    return min(plans, key=lambda rows: _cost(rows, lengths, hidden_size))


def _cost(rows: list[list[int]], lengths: Sequence[int], hidden_size: int) -> float:
    """Padded tokens of ``rows``, each as wide as the fullest, weighted by attention's share of the FLOPs."""
    width = max(sum(lengths[i] for i in row) for row in rows)
    return len(rows) * width * (1 + width / (6 * hidden_size))


class SequencePacker(WrappingCollator):
    """Collates a batch as packed rows (see the module docstring); ``inner`` pads the concatenated rows.

    ``max_capacity``: the longest row the model takes (its position
    embeddings); ``hidden_size`` prices attention in ``plan_packs``.
    """

    def __init__(self, inner: Any, position_offset: int, max_capacity: int, hidden_size: int) -> None:
        super().__init__(inner)
        self.position_offset = position_offset
        self.max_capacity = max_capacity
        self.hidden_size = hidden_size

    def __call__(self, rows: list[dict[str, Any]]) -> Any:
        if not rows or "input_ids" not in rows[0]:
            return self.inner(rows)
        packs = plan_packs([len(row["input_ids"]) for row in rows], self.max_capacity, self.hidden_size)
        if len(packs) == len(rows):
            return self.inner(rows)
        return pack_rows(self.inner, rows, packs, self.position_offset)


def pack_rows(inner: Any, rows: list[dict[str, Any]], packs: list[list[int]], position_offset: int) -> dict[str, Any]:
    """``rows`` laid out as ``packs`` (lists of row indices, one per packed row), padded by ``inner``."""
    import torch

    sequence_columns = [c for c, v in rows[0].items() if isinstance(v, (list, tuple))]
    merged = [{c: [v for i in pack for v in rows[i][c]] for c in sequence_columns} for pack in packs]
    batch = dict(inner(merged))
    width = batch["input_ids"].shape[1]
    segments = torch.zeros(len(packs), width, dtype=torch.long)  # 0: padding, which attends to padding only
    positions = torch.full((len(packs), width), position_offset, dtype=torch.long)
    for r, pack in enumerate(packs):
        start = 0
        for s, i in enumerate(pack, start=1):
            n = len(rows[i]["input_ids"])
            segments[r, start:start + n] = s
            positions[r, start:start + n] = torch.arange(position_offset, position_offset + n)
            start += n
    batch["attention_mask"] = (segments[:, None, :, None] == segments[:, None, None, :])
    batch["position_ids"] = positions
    batch[PACKED_EXAMPLES] = len(rows)
    batch[PACKED_TOKENS] = int((segments > 0).sum())
    return batch


def packing_position_offset(model: Any, inner: Any, rows: list[dict[str, Any]]) -> int | None:
    """The position offset at which ``model`` gives packed ``rows`` the outputs it gives them unpacked; None if none.

    Tries 0 (BERT, ELECTRA, ALBERT...) and the padding index + 1 (RoBERTa,
    XLM-R), all ``rows`` in one packed row, in eval mode (no dropout, no
    random draws). A model whose forward rejects the mask or the position ids
    fails the check.
    """
    import torch

    rows = [row for row in rows if len(row["input_ids"]) > 1][:4]
    if len(rows) < 2:
        return None
    candidates = position_offsets(model.config)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            device = next(model.parameters()).device
            plain = model(**on_device(inner(rows), device)).logits
            for offset in candidates:
                try:
                    packed = model(**on_device(model_inputs(pack_rows(inner, rows, [list(range(len(rows)))], offset)),
                                         device)).logits
                except (TypeError, ValueError, RuntimeError):
                    return None
                if _same_outputs(plain, packed[0], [len(row["input_ids"]) for row in rows]):
                    return offset
    finally:
        model.train(was_training)
    return None


def _same_outputs(plain: Any, packed_row: Any, lengths: list[int]) -> bool:
    import torch

    start = 0
    for i, n in enumerate(lengths):
        if not torch.allclose(plain[i, :n].float(), packed_row[start:start + n].float(), rtol=1e-3, atol=1e-4):
            return False
        start += n
    return True


def on_device(batch: dict[str, Any], device: Any) -> dict[str, Any]:
    """``batch`` with its tensors on ``device`` (counts and other plain values as they are)."""
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}
