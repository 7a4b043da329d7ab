"""Batch samplers: random or length-grouped, deterministic per (seed, epoch).

Determinism per epoch is what makes ``--resume`` exact: the resumed run
rebuilds the same epoch order and skips the batches already trained on.
The epoch is set with ``use_epoch`` (not ``set_epoch``, which Accelerate's
data loader would call with its own iteration counter).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np


class BatchSampler:
    """Yields lists of dataset indices.

    ``group_by_length`` sorts features by length inside random "megabatches"
    of ``megabatch_factor`` batches, so that each batch holds features of
    similar length (little padding) while the order stays random. The
    longest batch goes first, so an out-of-memory error shows at step one.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        *,
        seed: int,
        shuffle: bool = True,
        group_by_length: bool = False,
        megabatch_factor: int = 50,
        drop_last: bool = False,
    ) -> None:
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.group_by_length = group_by_length
        self.megabatch_factor = megabatch_factor
        self.drop_last = drop_last
        self.epoch = 0

    def use_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self.lengths)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def batches(self) -> list[list[int]]:
        n = len(self.lengths)
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        if self.group_by_length:
            order = self._grouped(order, rng)
        batches = [order[i : i + self.batch_size].tolist() for i in range(0, n, self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        if self.group_by_length and self.shuffle and len(batches) > 1:
            longest = int(np.argmax([self.lengths[b].max() for b in batches]))
            rest = [b for i, b in enumerate(batches) if i != longest]
            perm = rng.permutation(len(rest))
            batches = [batches[longest]] + [rest[i] for i in perm]
        return batches

    def _grouped(self, order: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        mega = self.batch_size * self.megabatch_factor
        chunks = [order[i : i + mega] for i in range(0, len(order), mega)]
        # stable sort, longest first, inside each megabatch
        return np.concatenate([c[np.argsort(-self.lengths[c], kind="stable")] for c in chunks]) if chunks else order

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.batches()


class EvalBatches(list):
    """A fixed list of batches that Accelerate can shard evenly across processes.

    ``BatchSamplerShard`` needs ``batch_size``/``drop_last`` to complete an uneven
    last batch; with a bare list, processes would gather tensors of different sizes.
    """

    def __init__(self, batches: list[list[int]], batch_size: int) -> None:
        super().__init__(batches)
        self.batch_size = batch_size
        self.drop_last = False


def sorted_eval_order(lengths: Sequence[int], batch_size: int) -> EvalBatches:
    """Evaluation batches sorted by length (outputs are re-ordered by feature index afterwards)."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return EvalBatches([order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)], batch_size)
