"""Run by ``accelerate launch`` with 2 processes (``test_token_budget_runs.py``): token-budget batches reach the
processes as many each and every row once, and their different row counts, weighted by ``loss.loss_weights``,
give the gradient of the mean over all their rows.

Prints ``shards OK`` when Accelerate's prepared loader gives both processes as many batches of a
``TokenBudgetSampler`` and every row at least once (the repeats only to even them out), ``weighted OK`` when the
real DDP gradient equals one process's gradient over all 8 rows, and whether the plain DDP mean of per-process
means (what equal batches would use) differs from it; ``accumulated OK`` when two accumulated batches per
process of different labelled tokens (``loss.AccumulationWeights``) give the gradient of the mean over all of them;
``master weights OK`` when bf16-weights' fp32 gradients (``master_weights.MasterWeights``, which DDP's own reduction
cannot see) reach both processes as their mean, and a parameter no process used keeps no gradient.
"""

from __future__ import annotations

import copy

import torch
from accelerate import Accelerator

from ssl_cli.engine.loss import AccumulationWeights, loss_weights
from ssl_cli.engine.master_weights import MasterWeights
from ssl_cli.engine.sampling import TokenBudgetSampler


def check_shards() -> None:
    from torch.utils.data import DataLoader

    acc = Accelerator(cpu=True)
    lengths = torch.randint(5, 60, (101,), generator=torch.Generator().manual_seed(0)).tolist()
    sampler = TokenBudgetSampler(lengths, 256, seed=0, num_processes=acc.num_processes)
    loader = acc.prepare(DataLoader(list(range(len(lengths))), batch_sampler=sampler,
                                    collate_fn=lambda rows: torch.tensor(rows)))
    mine = [batch.tolist() for batch in loader]
    counts = acc.gather(torch.tensor([len(mine)]))  # batches per process
    assert len(set(counts.tolist())) == 1 and len(mine) == len(sampler) // acc.num_processes, counts
    seen = torch.zeros(len(lengths))
    seen[[row for batch in mine for row in batch]] = 1
    assert (acc.reduce(seen, "sum") >= 1).all()  # every row trained somewhere
    print("shards OK")


def gradients(equal_rows: bool) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    acc = Accelerator(cpu=True)
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    reference = copy.deepcopy(model)
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    rows = (slice(0, 3), slice(3, 8))[acc.process_index]  # 3 rows on one process, 5 on the other
    part = {"input_ids": x[rows], "labels": y[rows]}
    wrapped = acc.prepare(model)
    _, scales = loss_weights([part], "rows", acc, equal_rows=equal_rows)
    loss = torch.nn.functional.cross_entropy(wrapped(part["input_ids"]), part["labels"])
    acc.backward(loss if scales[0] is None else loss * scales[0])
    torch.nn.functional.cross_entropy(reference(x), y).backward()
    return [p.grad for p in acc.unwrap_model(wrapped).parameters()], [p.grad for p in reference.parameters()]


def accumulated_gradients() -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """2 accumulated batches on each process, of 3 + 2 and 7 + 8 rows, some labels ignored (-100)."""
    acc = Accelerator(cpu=True, gradient_accumulation_steps=2)
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    reference = copy.deepcopy(model)
    x, y = torch.randn(20, 4), torch.randint(0, 3, (20,))
    y[torch.randperm(20)[:6]] = -100
    mine = ((slice(0, 3), slice(3, 5)), (slice(5, 12), slice(12, 20)))[acc.process_index]
    wrapped = acc.prepare(model)
    window = AccumulationWeights(acc, "tokens")
    for rows in mine:
        with acc.accumulate(wrapped):
            _, scales = window.weights([{"labels": y[rows]}])
            acc.backward(torch.nn.functional.cross_entropy(wrapped(x[rows]), y[rows]) * scales[0])
            if acc.sync_gradients:
                window.finish(list(wrapped.parameters()))
    torch.nn.functional.cross_entropy(reference(x), y).backward()
    return [p.grad for p in acc.unwrap_model(wrapped).parameters()], [p.grad for p in reference.parameters()]


class ThreeHeads(torch.nn.Module):
    """One head every process uses, one only the second process uses, one nobody uses."""

    def __init__(self) -> None:
        super().__init__()
        self.shared, self.second, self.unused = (torch.nn.Linear(4, 3) for _ in range(3))

    def forward(self, x: torch.Tensor, second: bool) -> torch.Tensor:
        return self.shared(x) + (self.second(x) if second else 0)


def master_weight_gradients() -> tuple[dict[str, torch.Tensor | None], dict[str, torch.Tensor | None]]:
    """Each process's bf16 gradient of its own rows, as the engine runs them (under ``no_sync``), and the mean of
    the processes' gradients worked out here from every process's plain bf16 backward."""
    acc = Accelerator(cpu=True)
    torch.manual_seed(0)
    model = ThreeHeads()
    reference = copy.deepcopy(model).bfloat16()
    x = torch.randn(8, 4)[(slice(0, 3), slice(3, 8))[acc.process_index]]
    second = acc.process_index == 1
    wrapped = acc.prepare(model)
    weights = MasterWeights(model, acc)
    weights.enter()
    with acc.no_sync(wrapped):
        acc.backward(wrapped(x.bfloat16(), second).float().square().mean())
    weights.finish()
    reference(x.bfloat16(), second).float().square().mean().backward()
    expected = {}
    for name, param in reference.named_parameters():
        mine = param.grad.float() if param.grad is not None else torch.zeros_like(param, dtype=torch.float32)
        expected[name] = acc.reduce(mine, "mean") if name.startswith(("shared", "second")) else None
    return {name: p.grad for name, p in model.named_parameters()}, expected


if __name__ == "__main__":
    check_shards()
    trained, expected = gradients(equal_rows=False)
    for got, want in zip(trained, expected, strict=True):
        torch.testing.assert_close(got, want)
    print("weighted OK")
    trained, expected = gradients(equal_rows=True)
    same = all(torch.allclose(got, want) for got, want in zip(trained, expected, strict=True))
    print(f"unweighted {'same' if same else 'differs'}")
    trained, expected = accumulated_gradients()
    for got, want in zip(trained, expected, strict=True):
        torch.testing.assert_close(got, want)
    print("accumulated OK")
    trained, expected = master_weight_gradients()
    for name, want in expected.items():
        got = trained[name]
        assert (got is None) if want is None else torch.equal(got, want), name
    print("master weights OK")
