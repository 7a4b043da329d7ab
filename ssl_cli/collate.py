"""Dynamic padding: each batch is padded to its own longest feature.

Padding every feature to ``max_seq_length`` (Hugging Face's QA default) spends
most of the compute on pad tokens; padding per batch, combined with
length-grouped batches, removes nearly all of it. On TPU (XLA) shapes must be
static, so the engine asks for a fixed length instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class PaddingCollator:
    """Pads sequence columns, stacks scalar columns, into torch tensors."""

    def __init__(
        self,
        sequence_columns: Sequence[str],
        scalar_columns: Sequence[str] = (),
        *,
        pad_token_id: int = 0,
        label_pad_id: int = -100,
        pad_to_multiple_of: int | None = None,
        fixed_length: int | None = None,
    ) -> None:
        self.sequence_columns = list(sequence_columns)
        self.scalar_columns = list(scalar_columns)
        self.pad_values = {"input_ids": pad_token_id, "labels": label_pad_id}
        self.pad_to_multiple_of = pad_to_multiple_of
        self.fixed_length = fixed_length

    def target_length(self, longest: int) -> int:
        if self.fixed_length is not None:
            return max(self.fixed_length, longest)
        if self.pad_to_multiple_of:
            return -(-longest // self.pad_to_multiple_of) * self.pad_to_multiple_of
        return longest

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        batch: dict[str, Any] = {}
        present = [c for c in self.sequence_columns if c in rows[0]]
        longest = max(len(row[present[0]]) for row in rows) if present else 0
        length = self.target_length(longest)
        for column in present:
            pad = self.pad_values.get(column, 0)
            data = torch.full((len(rows), length), pad, dtype=torch.long)
            for i, row in enumerate(rows):
                values = row[column]
                data[i, : len(values)] = torch.as_tensor(values, dtype=torch.long)
            batch[column] = data
        for column in self.scalar_columns:
            if column in rows[0]:
                values = [row[column] for row in rows]
                dtype = torch.float if isinstance(values[0], float) else torch.long
                batch[column] = torch.tensor(values, dtype=dtype)
        return batch
