"""Device settings the engine applies before training: TF32 on CUDA (the flags torch reads, set for real here
even without a GPU), and where padding-free batches are on by default."""

from __future__ import annotations

import pytest
import torch

from ssl_cli.config import TrainingConfig
from ssl_cli.engine.batching import wants_padding_free
from ssl_cli.engine.devices import set_compute_modes


@pytest.fixture
def restore_precision():
    before = torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision
    yield
    torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision = before


@pytest.mark.parametrize(("tf32", "expected"), [(None, "tf32"), (True, "tf32"), (False, "ieee")])
def test_cuda_runs_fp32_matmuls_as_tf32_unless_told_not_to(restore_precision, tf32, expected):
    set_compute_modes(TrainingConfig(tf32=tf32), torch.device("cuda"))
    assert torch.backends.cuda.matmul.fp32_precision == expected
    assert torch.backends.cudnn.conv.fp32_precision == expected


def test_a_cpu_run_leaves_the_cuda_flags_alone(restore_precision):
    torch.backends.cuda.matmul.fp32_precision = "ieee"
    set_compute_modes(TrainingConfig(tf32=True), torch.device("cpu"))
    assert torch.backends.cuda.matmul.fp32_precision == "ieee"


@pytest.mark.parametrize(("setting", "device", "static", "fixed", "on"), [
    ("auto", "cuda", False, False, True),
    ("auto", "xpu", False, False, True),
    ("auto", "cpu", False, False, False),  # a CPU's own levers are faster there
    (True, "cpu", False, False, True),
    (False, "cuda", False, False, False),
    ("auto", "xla", True, False, False),  # a TPU wants one shape
    (True, "cuda", False, True, False),  # packed blocks have no padding to drop
])
def test_padding_free_is_on_by_default_on_accelerators_only(setting, device, static, fixed, on):
    assert wants_padding_free(setting, device, static, fixed) is on


def test_padding_free_stays_off_by_default_under_torch_compile_unless_asked_for():
    assert not wants_padding_free("auto", "cuda", False, False, compiled=True)
    assert wants_padding_free(True, "cuda", False, False, compiled=True)
