"""Best-model loading at the end of training says what the model now is: loaded, or the last step's when the best
checkpoint holds no weights ssl can read (a sharded layout it does not know), never "loaded" regardless."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ssl_cli.engine.checkpoint import Checkpointer
from ssl_cli.engine.state import TrainState
from ssl_cli.errors import UserError


class _Accelerator:
    """The one call load_weights makes of Accelerate on one process."""

    def wait_for_everyone(self) -> None:
        pass


def _checkpointer(tmp_path) -> Checkpointer:
    return Checkpointer(_Accelerator(), SimpleNamespace(save_on_each_node=False), tmp_path)


def test_a_checkpoint_without_weights_is_a_warning_not_loaded(tmp_path):
    best = tmp_path / "checkpoint-4"
    best.mkdir()
    (best / "optimizer.bin").write_bytes(b"")
    state = TrainState(best_checkpoint=str(best), best_metric=0.5)
    message = _checkpointer(tmp_path).load_best(model=None, state=state, metric_name="f1")
    assert message.startswith("warning:") and "last step's" in message and "loaded the best" not in message


def test_the_best_weights_are_loaded_and_said_so(tmp_path):
    import torch
    from safetensors.torch import save_file

    best = tmp_path / "checkpoint-4"
    best.mkdir()
    trained = torch.nn.Linear(3, 2)
    save_file(trained.state_dict(), str(best / "model.safetensors"))
    model = torch.nn.Linear(3, 2)
    state = TrainState(best_checkpoint=str(best), best_metric=0.75)
    message = _checkpointer(tmp_path).load_best(model, state, "accuracy")
    assert message == f"loaded the best model (accuracy = 0.75) from {best}"
    assert torch.equal(model.weight, trained.weight)


def test_weights_of_another_model_are_refused(tmp_path):
    import torch
    from safetensors.torch import save_file

    best = tmp_path / "checkpoint-4"
    best.mkdir()
    save_file({"other.weight": torch.zeros(2, 3)}, str(best / "model.safetensors"))
    with pytest.raises(UserError, match="belongs to another model"):
        _checkpointer(tmp_path).load_best(torch.nn.Linear(3, 2), TrainState(best_checkpoint=str(best)), "f1")
