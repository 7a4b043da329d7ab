"""The training line's ETA counts the evaluations still to come, at the pace they have run."""

from __future__ import annotations

from types import SimpleNamespace

from ssl_cli.engine import logging as engine_logging
from ssl_cli.engine.logging import Progress, evaluations_left


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_eta_adds_the_evaluations_left(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(engine_logging.time, "perf_counter", clock)
    progress = Progress(100, 0, enabled=False, evaluations_left=lambda step: 4)
    for step in range(1, 11):  # 1 s per step
        clock.now += 1.0
        progress.update(step, 0.5, 1e-4, 10.0)
    assert progress._eta(10) == "0:01:30"  # 90 steps, no evaluation timed yet
    with progress.evaluating(3) as advance:
        clock.now += 30.0  # an evaluation takes 30 s
        advance()
    clock.now += 1.0
    progress.update(11, 0.5, 1e-4, 10.0)
    assert progress._eta(11) == "0:03:29"  # 89 steps of 1 s (the evaluation's time is not a step's) + 4 x 30 s


def test_evaluations_left_by_cadence():
    steps = SimpleNamespace(eval_strategy="steps", eval_steps=10, gradient_accumulation_steps=1)
    assert evaluations_left(steps, 95, 0, True)(0) == 10  # 10, 20, ..., 90, and the final at 95
    assert evaluations_left(steps, 95, 0, True)(90) == 1
    assert evaluations_left(steps, 95, 0, False)(0) == 0
    epochs = SimpleNamespace(eval_strategy="epoch", eval_steps=None, gradient_accumulation_steps=2)
    assert evaluations_left(epochs, 30, 20, True)(0) == 3  # 10 steps an epoch
    assert evaluations_left(epochs, 30, 20, True)(25) == 1
