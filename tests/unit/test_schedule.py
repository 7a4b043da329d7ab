"""Every learning-rate schedule transformers offers runs, with the arguments some need filled in, and the
metric schedules move on evaluations (as the Trainer steps them)."""

from __future__ import annotations

import pytest
import torch

from ssl_cli.config import LR_SCHEDULES, TrainingConfig
from ssl_cli.engine.schedule import follows_metric, make_scheduler, step_on_metric, step_scheduler
from ssl_cli.errors import UserError

PEAK = 1e-3


def schedule(name: str, total: int = 100, warmup: int = 10, greater: bool = True, **kwargs):
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=PEAK)
    cfg = TrainingConfig(lr_scheduler_type=name, lr_scheduler_kwargs=kwargs, learning_rate=PEAK)
    return optimizer, make_scheduler(cfg, optimizer, warmup, total, greater)


def run(optimizer, scheduler, steps: int) -> list[float]:
    rates = []
    for _ in range(steps):
        optimizer.step()
        step_scheduler(scheduler)
        rates.append(optimizer.param_groups[0]["lr"])
    return rates


@pytest.mark.parametrize("name", LR_SCHEDULES)
def test_every_schedule_builds_and_steps(name):
    optimizer, scheduler = schedule(name)
    rates = run(optimizer, scheduler, 100)
    assert all(0 <= lr <= PEAK * 1.0001 for lr in rates)
    if not follows_metric(scheduler) and name not in ("constant",):
        assert rates[0] < PEAK  # warming up


def test_min_lr_schedules_end_at_a_tenth_unless_told():
    assert run(*schedule("cosine_with_min_lr"), 100)[-1] == pytest.approx(PEAK * 0.1, rel=1e-3)
    assert run(*schedule("cosine_with_min_lr", min_lr_rate=0.5), 100)[-1] == pytest.approx(PEAK * 0.5, rel=1e-3)


def test_warmup_stable_decay_decays_over_the_last_tenth():
    rates = run(*schedule("warmup_stable_decay"), 100)
    assert rates[20] == pytest.approx(PEAK) and rates[88] == pytest.approx(PEAK) and rates[-1] < PEAK * 0.05


def test_plateau_lowers_the_rate_after_evaluations_without_improvement():
    optimizer, scheduler = schedule("reduce_lr_on_plateau", greater=True, patience=1)
    run(optimizer, scheduler, 5)
    assert optimizer.param_groups[0]["lr"] == PEAK  # steps alone do not move it
    for accuracy in (0.5, 0.5, 0.5):
        step_on_metric(scheduler, {"eval_accuracy": accuracy}, "accuracy")
    assert optimizer.param_groups[0]["lr"] == pytest.approx(PEAK * 0.1)


def test_wrong_schedule_arguments_are_one_line():
    with pytest.raises(UserError, match="lr_scheduler_type cosine cannot take"):
        schedule("cosine", bogus=1)
