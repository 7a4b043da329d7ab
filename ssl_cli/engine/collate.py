"""Dynamic padding: each batch is padded to its own longest feature.

Padding every feature to ``max_seq_length`` (Hugging Face's QA default) spends
most of the compute on pad tokens; padding per batch, combined with
length-grouped batches, removes nearly all of it. On TPU (XLA) shapes must be
static, so the engine asks for a fixed length instead.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np


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
            batch[column] = torch.from_numpy(pad_rows([row[column] for row in rows], length, self.pad_values.get(column, 0)))
        return self.add_scalars(batch, rows)

    def add_scalars(self, batch: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
        """The scalar columns stacked into ``batch``: float for float values (regression), else int64."""
        import torch

        for column in self.scalar_columns:
            if column in rows[0]:
                values = [row[column] for row in rows]
                dtype = torch.float if isinstance(values[0], float) else torch.long
                batch[column] = torch.tensor(values, dtype=dtype)
        return batch


def pad_rows(rows: Sequence[Sequence[int]], length: int, pad: int) -> np.ndarray:
    """``rows`` left-aligned in one int64 array of ``length`` columns, the rest ``pad``.

    The values go in with one copy of all of them, not one tensor per row.
    Collation runs on the training loop's thread; on a GPU, where a small
    model's step takes a few milliseconds of host time, a tensor per row is a
    visible share of the loop.
    """
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    data = np.full((len(rows), length), pad, dtype=np.int64)
    # a boolean mask assigns in row-major order: row 0's values, then row 1's, as the chain yields them
    data[np.arange(length) < lengths[:, None]] = np.fromiter(
        itertools.chain.from_iterable(rows), dtype=np.int64, count=int(lengths.sum()))
    return data


# ----------------------------------------------------------------------------- length-sorted micro-batches

#: What one extra forward and backward pass costs on CPU, in padded tokens' worth of compute: mostly gradient
#: writes, whose size is the model's, not the batch's, so one figure holds from BERT-small to bert-base, down
#: to the size below (docs/performance.md, "Micro-batches").
CPU_PASS_OVERHEAD_TOKENS = 64
#: Below this many non-embedding parameters, a pass's fixed Python dispatch outweighs its arithmetic, and a
#: pass costs more tokens' worth.
SMALL_MODEL_PARAMETERS = 3_000_000


def cpu_pass_overhead_tokens(non_embedding_parameters: int) -> int:
    """``CPU_PASS_OVERHEAD_TOKENS``, scaled up for models so small that dispatch, not arithmetic, sets their cost."""
    scale = SMALL_MODEL_PARAMETERS / max(1, non_embedding_parameters)
    return max(CPU_PASS_OVERHEAD_TOKENS, round(CPU_PASS_OVERHEAD_TOKENS * scale))


def plan_microbatches(lengths: Sequence[int], pass_overhead: int) -> list[list[int]]:
    """Split a batch into runs of its rows sorted by length, each run to be padded to its own longest row.

    A random batch of sentences is padded to its longest one: on UD English
    with batches of 32, two thirds of the tokens are padding. Run as a few
    length-sorted micro-batches, it computes far fewer pad tokens, while the
    batch (and so the gradient) stays the same. The runs minimise padded
    tokens plus ``pass_overhead`` per run (dynamic programming over the
    sorted lengths: one run when the lengths are close). Returns row indices,
    one list per run, shortest run first.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    if not order or lengths[order[0]] == lengths[order[-1]]:
        return [list(range(len(lengths)))]
    sorted_lengths = [lengths[i] for i in order]
    # cost[j]: the cheapest plan for the j shortest rows; start[j]: where its last run starts
    cost, start = [0] * (len(order) + 1), [0] * (len(order) + 1)
    for j in range(1, len(order) + 1):
        longest = sorted_lengths[j - 1]
        cost[j], start[j] = min((cost[i] + pass_overhead + (j - i) * longest, i) for i in range(j))
    runs, j = [], len(order)
    while j:
        runs.append(order[start[j]:j])
        j = start[j]
    return runs[::-1] if len(runs) > 1 else [list(range(len(lengths)))]


class MicroBatches(list):
    """One training batch as its micro-batches (a list of model input dicts): the engine sums their gradients."""


class WrappingCollator:
    """A collator that lays a batch's rows out its own way and collates them with ``inner`` (padding, masking...).

    Attributes it lacks (``set_epoch`` and the like) reach the inner collator.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


class MicroBatchingCollator(WrappingCollator):
    """Collates each run of ``plan_microbatches`` with ``inner`` (padding, masking...); one run gives a plain batch."""

    def __init__(self, inner: Any, pass_overhead: int) -> None:
        super().__init__(inner)
        self.pass_overhead = pass_overhead

    def __call__(self, rows: list[dict[str, Any]]) -> Any:
        if not rows or "input_ids" not in rows[0]:
            return self.inner(rows)
        runs = plan_microbatches([len(row["input_ids"]) for row in rows], self.pass_overhead)
        if len(runs) == 1:
            return self.inner(rows)
        return MicroBatches(self.inner([rows[i] for i in run]) for run in runs)
