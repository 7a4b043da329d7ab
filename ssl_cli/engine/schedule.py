"""The learning-rate schedule: any of transformers', stepped on the step count or, for the metric schedules,
on each evaluation."""

from __future__ import annotations

from typing import Any

#: Schedules that move on the evaluation metric, not on the step count (stepped after each evaluation, as the
#: Trainer does).
METRIC_SCHEDULES = ("reduce_lr_on_plateau", "greedy")


def make_scheduler(cfg: Any, optimizer: Any, warmup_steps: int, total_steps: int, greater_is_better: bool) -> Any:
    """transformers' ``get_scheduler`` for any of its schedules, with the arguments some need filled in where the
    user gave none: the Trainer raises on ``cosine_with_min_lr`` without ``min_lr_rate`` and on
    ``warmup_stable_decay`` without ``num_decay_steps``; a metric schedule follows the best-model metric's
    direction. Steps are counted per process step (a prepared scheduler steps once per process)."""
    from transformers import get_scheduler

    kwargs = dict(cfg.lr_scheduler_kwargs)
    name = cfg.lr_scheduler_type
    if name in ("cosine_with_min_lr", "cosine_warmup_with_min_lr") and not {"min_lr", "min_lr_rate"} & set(kwargs):
        kwargs["min_lr_rate"] = 0.1
    if name == "warmup_stable_decay":
        kwargs.setdefault("num_decay_steps", max(1, total_steps // 10))
    if name in METRIC_SCHEDULES:
        kwargs.setdefault("mode", "max" if greater_is_better else "min")
        return _scheduler_or_error(get_scheduler, name, optimizer, None, None, kwargs)
    return _scheduler_or_error(get_scheduler, name, optimizer, warmup_steps, total_steps, kwargs)


def _scheduler_or_error(factory: Any, name: str, optimizer: Any, warmup: int | None, total: int | None,
                        kwargs: dict[str, Any]) -> Any:
    from ssl_cli.errors import UserError

    try:
        return factory(name, optimizer, num_warmup_steps=warmup, num_training_steps=total,
                       scheduler_specific_kwargs=kwargs)
    except (TypeError, ValueError) as err:
        raise UserError(f"lr_scheduler_type {name} cannot take lr_scheduler_kwargs {kwargs}: "
                        f"{str(err).splitlines()[0][:200]}") from None


def follows_metric(scheduler: Any) -> bool:
    """Whether ``scheduler`` (an Accelerate-prepared one) steps on an evaluation metric."""
    inner = getattr(scheduler, "scheduler", scheduler)
    return type(inner).__name__ in ("ReduceLROnPlateau", "GreedyLR")


def step_scheduler(scheduler: Any) -> None:
    """The step-count schedules move after every optimizer step; the metric ones wait for an evaluation."""
    if not follows_metric(scheduler):
        scheduler.step()


def step_on_metric(scheduler: Any, metrics: dict[str, Any], metric_name: str) -> None:
    """After an evaluation, a metric schedule takes the best-model metric, once (not once per process)."""
    if scheduler is None or not follows_metric(scheduler):
        return
    value = metrics.get(metric_name, metrics.get(f"eval_{metric_name}"))
    if isinstance(value, (int, float)):
        getattr(scheduler, "scheduler", scheduler).step(value)
