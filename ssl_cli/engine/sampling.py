"""Batch samplers: random or length-grouped, deterministic per (seed, epoch).

Determinism per epoch is what makes ``--resume`` exact: the resumed run
rebuilds the same epoch order and skips the batches already trained on.
The epoch is set with ``use_epoch`` (not ``set_epoch``, which Accelerate's
data loader would call with its own iteration counter).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

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


class TokenBudgetSampler:
    """Batches of whole sequences that fill a token budget (``training.per_device_train_tokens``), as fairseq's
    ``--max-tokens`` forms them.

    A batch takes rows while rows x their longest length stays within ``budget``: that is what padded
    batches compute, and what a padding-free batch's heads read (they see the padded layout). Rows are sorted
    by length inside random megabatches, so a batch's rows are of similar length and the budget is mostly real
    tokens. The batches are formed once per run and only their order is shuffled per epoch: every epoch then
    has the same number of batches, which the schedule and ``--resume`` count on. The batch that costs the most
    goes first, so an out-of-memory error shows at step one. Their number is made a multiple of
    ``num_processes`` by repeating the first ones (as Accelerate evens out a last batch), so that every process
    gets as many; rows per batch then differ between processes (``loss.loss_weights`` weighs them).
    """

    batch_size = None  # batches of varying size, for Accelerate's BatchSamplerShard
    drop_last = False

    def __init__(self, lengths: Sequence[int], budget: int, *, seed: int, num_processes: int = 1,
                 megabatch_factor: int = 50) -> None:
        self.lengths = np.asarray(lengths)
        self.budget = budget
        self.seed = seed
        self.epoch = 0
        self._batches = self._form(np.random.default_rng([seed]), megabatch_factor)
        formed = len(self._batches)
        self._batches += [self._batches[i % formed] for i in range(-formed % num_processes)] if formed else []
        costs = [len(batch) * int(self.lengths[batch].max()) for batch in self._batches]
        self._costliest = int(np.argmax(costs)) if costs else 0  # fixed, as the batches are

    def _form(self, rng: np.random.Generator, megabatch_factor: int) -> list[list[int]]:
        order = rng.permutation(len(self.lengths))
        typical = max(1, int(np.median(self.lengths)) if len(self.lengths) else 1)
        mega = max(1, megabatch_factor * self.budget // typical)
        batches: list[list[int]] = []
        for start in range(0, len(order), mega):
            chunk = order[start : start + mega]
            batch: list[int] = []
            longest = 0
            for index in chunk[np.argsort(-self.lengths[chunk], kind="stable")].tolist():
                longest = max(longest, int(self.lengths[index]))
                if batch and (len(batch) + 1) * longest > self.budget:
                    batches.append(batch)
                    batch, longest = [], int(self.lengths[index])
                batch.append(index)
            if batch:
                batches.append(batch)
        return batches

    def use_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self._batches)

    def most_rows(self) -> int:
        return max(map(len, self._batches), default=1)

    def most_tokens(self) -> int:
        """The real tokens of the fullest batch (at most the budget)."""
        return max((int(self.lengths[batch].sum()) for batch in self._batches), default=1)

    def mean_rows(self) -> float:
        return sum(map(len, self._batches)) / max(1, len(self._batches))

    def batches(self) -> list[list[int]]:
        if len(self._batches) < 2:
            return list(self._batches)
        rest = [b for i, b in enumerate(self._batches) if i != self._costliest]
        order = np.random.default_rng([self.seed, self.epoch]).permutation(len(rest))
        return [self._batches[self._costliest]] + [rest[i] for i in order]

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.batches()


def training_sampler(cfg: Any, lengths: Sequence[int], num_processes: int) -> BatchSampler | TokenBudgetSampler:
    """The run's training batches: a token budget (``per_device_train_tokens``) or a number of rows."""
    if cfg.per_device_train_tokens:
        return TokenBudgetSampler(lengths, cfg.per_device_train_tokens, seed=cfg.sampling_seed,
                                  num_processes=num_processes)
    return BatchSampler(lengths, cfg.per_device_train_batch_size, seed=cfg.sampling_seed, shuffle=True,
                        group_by_length=cfg.group_by_length)


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
