"""``batching.loader_options``: what ``dataloader_num_workers: auto`` and the other loader settings become per
device (the CUDA side is a rule on this machine's CPU count: there is no GPU here to run it on)."""

from __future__ import annotations

import os

import pytest

from ssl_cli.config import TrainingConfig
from ssl_cli.engine.batching import AUTO_GPU_WORKERS, loader_options


def _cfg(**settings) -> TrainingConfig:
    return TrainingConfig(**settings)


def test_auto_means_no_workers_on_cpu_and_for_a_stream():
    assert loader_options(_cfg(), "cpu") == {"num_workers": 0, "pin_memory": False}
    assert loader_options(_cfg(), "cuda", streamed=True)["num_workers"] == 0


@pytest.mark.parametrize("local_processes", ["1", "2", "8"])
def test_auto_on_cuda_leaves_each_process_a_core(monkeypatch, local_processes):
    monkeypatch.setenv("LOCAL_WORLD_SIZE", local_processes)
    cpus = len(os.sched_getaffinity(0))
    options = loader_options(_cfg(), "cuda")
    assert options["num_workers"] == max(0, min(AUTO_GPU_WORKERS, cpus // int(local_processes) - 1))
    assert options["pin_memory"] is True


def test_given_settings_are_kept_and_prefetch_goes_with_workers():
    options = loader_options(_cfg(dataloader_num_workers=3, dataloader_prefetch_factor=4,
                                  dataloader_persistent_workers=True, dataloader_pin_memory=False), "cuda")
    assert options == {"num_workers": 3, "pin_memory": False, "persistent_workers": True, "prefetch_factor": 4}
    assert loader_options(_cfg(dataloader_num_workers=0), "cuda") == {"num_workers": 0, "pin_memory": True}


@pytest.mark.parametrize("value", [-1, "some", 1.5, True, 65, 99999])
def test_a_worker_count_is_a_whole_number_or_auto(value):
    with pytest.raises(ValueError, match="whole number from 0 to 64, or auto"):
        _cfg(dataloader_num_workers=value)
    assert _cfg(dataloader_num_workers=" AUTO ").dataloader_num_workers == "auto"
    assert _cfg(dataloader_num_workers=64).dataloader_num_workers == 64
