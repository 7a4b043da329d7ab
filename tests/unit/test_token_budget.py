"""Token-budget batches (``training.per_device_train_tokens``): whole rows, within the budget, the same batches
every epoch in a new order, as many for every process."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from ssl_cli.engine.batch_size import check_token_budget
from ssl_cli.engine.sampling import TokenBudgetSampler
from ssl_cli.errors import UserError


def _lengths(n: int = 500, seed: int = 0) -> list[int]:
    return np.random.default_rng(seed).integers(5, 120, size=n).tolist()


@pytest.mark.parametrize("budget", [120, 512, 4096])
def test_every_row_once_each_batch_within_the_budget(budget):
    lengths = _lengths()
    sampler = TokenBudgetSampler(lengths, budget, seed=3)
    batches = sampler.batches()
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    assert all(len(batch) * max(lengths[i] for i in batch) <= budget for batch in batches)
    assert len(sampler) == len(batches)
    assert sampler.mean_rows() == pytest.approx(len(lengths) / len(batches))


def test_rows_of_a_batch_are_of_similar_length():
    """The budget is mostly real tokens: rows are sorted by length inside megabatches."""
    lengths = _lengths(2000)
    batches = TokenBudgetSampler(lengths, 1024, seed=0).batches()
    real = sum(lengths)
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    assert real / padded > 0.9


def test_the_same_batches_every_epoch_in_a_new_order_costliest_first():
    lengths = _lengths()
    sampler = TokenBudgetSampler(lengths, 600, seed=1)
    first = sampler.batches()
    sampler.use_epoch(1)
    second = sampler.batches()
    assert sorted(map(tuple, first)) == sorted(map(tuple, second)) and first != second
    for batches in (first, second):
        costs = [len(b) * max(lengths[i] for i in b) for b in batches]
        assert costs[0] == max(costs)
    again = TokenBudgetSampler(lengths, 600, seed=1)
    again.use_epoch(1)
    assert again.batches() == second  # a pure function of (seed, epoch): what --resume relies on
    assert TokenBudgetSampler(lengths, 600, seed=2).batches() != first


def test_as_many_batches_for_every_process():
    lengths = _lengths(50)
    alone = TokenBudgetSampler(lengths, 300, seed=0)
    shared = TokenBudgetSampler(lengths, 300, seed=0, num_processes=3)
    assert len(shared) % 3 == 0 and 0 <= len(shared) - len(alone) < 3
    formed = sorted(map(tuple, alone.batches()))
    assert all(tuple(batch) in formed for batch in shared.batches())  # the extra ones repeat formed batches


def test_a_budget_must_hold_the_longest_row_and_a_stream_has_no_lengths():
    cfg = SimpleNamespace(per_device_train_tokens=100)
    assert check_token_budget(cfg, [40, 100, 7]) == 100
    with pytest.raises(UserError, match=r"cannot hold the longest training row \(101 tokens\): raise it to at least 101"):
        check_token_budget(cfg, [40, 101])
    with pytest.raises(UserError, match="streamed"):
        check_token_budget(cfg, None)


@pytest.mark.parametrize("budget", [None, 600])
def test_data_seed_alone_orders_the_batches(budget):
    """``training.data_seed`` (the Trainer's --data_seed) decides the batch order whatever ``seed`` is; unset,
    ``seed`` does."""
    from ssl_cli.config import TrainingConfig
    from ssl_cli.engine.sampling import training_sampler

    def order(**settings) -> list[list[int]]:
        cfg = TrainingConfig(per_device_train_batch_size=8, per_device_train_tokens=budget, **settings)
        return [list(map(int, batch)) for batch in training_sampler(cfg, _lengths(), 1)]

    assert order(seed=1, data_seed=7) == order(seed=2, data_seed=7)
    assert order(seed=1, data_seed=7) != order(seed=1, data_seed=8)
    assert order(seed=1) == order(seed=5, data_seed=1) != order(seed=2)
