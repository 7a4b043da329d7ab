"""Run by ``accelerate launch`` with 2 processes (``test_token_budget_runs.py``): batches of different row counts
on the two processes, weighted by ``loss.loss_weights``, give the gradient of the mean over all their rows.

Prints ``weighted OK`` when the real DDP gradient equals one process's gradient over all 8 rows, and whether the
plain DDP mean of per-process means (what equal batches would use) differs from it.
"""

from __future__ import annotations

import copy

import torch
from accelerate import Accelerator

from ssl_cli.engine.loss import loss_weights


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


if __name__ == "__main__":
    trained, expected = gradients(equal_rows=False)
    for got, want in zip(trained, expected, strict=True):
        torch.testing.assert_close(got, want)
    print("weighted OK")
    trained, expected = gradients(equal_rows=True)
    same = all(torch.allclose(got, want) for got, want in zip(trained, expected, strict=True))
    print(f"unweighted {'same' if same else 'differs'}")
