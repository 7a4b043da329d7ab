"""The private torch and transformers APIs ``ssl_cli.compat`` relies on still behave as it expects: each test
names the API, so a new release that changes one fails here, loudly, not as a slower or silently different run."""

from __future__ import annotations

from pathlib import Path

import pytest

from ssl_cli import compat


def test_torch_still_has_the_cpu_bf16_probes():
    """torch.cpu._is_avx512_bf16_supported and _is_amx_tile_supported (torch._C._cpu in older releases)."""
    probes = compat.cpu_probes()
    assert probes is not None, f"no torch module has {compat.CPU_BF16_PROBES}: mixed_precision auto would never pick bf16"
    for name in compat.CPU_BF16_PROBES:
        assert isinstance(getattr(probes, name)(), bool), f"{probes.__name__}.{name}() changed"
    cpuinfo = Path("/proc/cpuinfo")
    flags = cpuinfo.read_text() if cpuinfo.exists() else ""
    if " avx512_bf16" in flags or " amx_bf16" in flags:
        assert compat.cpu_has_native_bf16(), "this CPU lists avx512_bf16/amx_bf16 but torch's probes say no"


def test_foreach_norm_gives_each_tensors_norm():
    import torch

    tensors = [torch.randn(5, 3), torch.randn(7)]
    norms = compat.foreach_norm(tensors)
    assert all(torch.allclose(n, torch.linalg.vector_norm(t)) for n, t in zip(norms, tensors, strict=True))


def test_foreach_scale_multiplies_every_tensor_by_a_device_scalar():
    import torch

    tensors = [torch.randn(5, 3), torch.randn(7)]
    expected = [t * 0.25 for t in tensors]
    compat.foreach_scale(tensors, torch.tensor(0.25))
    assert all(torch.equal(t, e) for t, e in zip(tensors, expected, strict=True))


def test_fused_adamw_divides_gradients_by_the_grad_scale_slot():
    """A fused AdamW step with a divisor of 4 in ``grad_scale`` equals a step on gradients divided by 4."""
    import torch

    def step(divide_in_kernel: bool) -> torch.Tensor:
        torch.manual_seed(0)
        weight = torch.nn.Parameter(torch.randn(4, 4))
        optimizer = torch.optim.AdamW([weight], lr=0.1, fused=True)
        weight.grad = torch.full((4, 4), 8.0) if divide_in_kernel else torch.full((4, 4), 2.0)
        if divide_in_kernel:
            compat.set_fused_grad_divisor(optimizer, torch.tensor(4.0))
        optimizer.step()
        compat.clear_fused_grad_divisor(optimizer)
        assert "grad_scale" not in vars(optimizer)
        return weight.detach().clone()

    # AdamW's update is scale-free in the gradient, so compare the moments: a second step would show a stale slot
    torch.manual_seed(0)
    weight = torch.nn.Parameter(torch.randn(4, 4))
    optimizer = torch.optim.AdamW([weight], lr=0.1, fused=True)
    weight.grad = torch.full((4, 4), 8.0)
    compat.set_fused_grad_divisor(optimizer, torch.tensor(4.0))
    optimizer.step()
    compat.clear_fused_grad_divisor(optimizer)
    assert torch.allclose(optimizer.state[weight]["exp_avg"], torch.full((4, 4), 0.1 * 2.0)), \
        "fused AdamW no longer reads the grad_scale slot (torch.optim.adamw._fused_adamw)"
    assert torch.equal(step(True), step(False))


def test_swapping_a_modules_class_keeps_the_object_and_changes_its_forward():
    import torch

    class Doubling(torch.nn.Identity):
        def forward(self, x):
            return 2 * x

    model = torch.nn.Sequential(torch.nn.Identity())
    layer = model[0]
    compat.swap_module_class(layer, Doubling)
    assert model[0] is layer and torch.equal(model(torch.ones(2)), torch.full((2,), 2.0))
    with pytest.raises(TypeError):
        compat.swap_module_class(torch.nn.ReLU(), Doubling)


def test_an_instance_forward_is_what_calling_the_module_runs():
    import torch

    layer = torch.nn.Linear(2, 2)
    compat.replace_forward(layer, lambda self, x: x + 1)
    assert torch.equal(layer(torch.zeros(2)), torch.ones(2))
    assert set(layer.state_dict()) == {"weight", "bias"}  # the weights, and so the checkpoint, are untouched


def test_question_answering_is_a_pipeline_task_again():
    """transformers 5 lists question-answering in pipelines.REMOVED_TASKS; ssl takes it off and registers its
    extractive pipeline under it (and under extractive-question-answering)."""
    import transformers.pipelines as pipelines
    from transformers.pipelines import PIPELINE_REGISTRY

    import ssl_cli.tasks.qa.pipeline  # noqa: F401  (registers on import)

    assert "question-answering" not in getattr(pipelines, "REMOVED_TASKS", {})
    supported = PIPELINE_REGISTRY.get_supported_tasks()
    assert "question-answering" in supported and "extractive-question-answering" in supported
    assert compat.unremove_pipeline_task("no-such-task") is False

