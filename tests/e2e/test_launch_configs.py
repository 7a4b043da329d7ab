"""Launch configs: two machines (two launchers on this one, as SLURM would start them) train as two processes on
one machine do, write checkpoints once (or once per machine without a shared disk) and resume; FSDP and DeepSpeed
configs this machine cannot run are one line, never a silent fallback to DDP."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest

from tests.conftest import ROOT, run_cli, tiny_task_args
from tests.e2e.test_multiprocess import launch
from tests.models_on_disk import write_tiny_model


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch_two_machines(args: list[str], cwds: tuple = (ROOT, ROOT)) -> None:
    """Machine ranks 0 and 1, one process each, meeting at 127.0.0.1 (their output in files: no pipe fills up
    while the other is waited for)."""
    import tempfile

    port = _free_port()
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as logs:
        streams = [open(os.path.join(logs, f"rank{rank}.log"), "w+") for rank in (0, 1)]  # noqa: SIM115
        procs = [subprocess.Popen(
            [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_machines", "2",
             "--num_processes", "2", "--machine_rank", str(rank), "--main_process_ip", "127.0.0.1",
             "--main_process_port", str(port), "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "ssl_cli",
             *args], cwd=cwds[rank], env=env, stdout=streams[rank], stderr=subprocess.STDOUT) for rank in (0, 1)]
        codes = [proc.wait(timeout=900) for proc in procs]
        for code, stream in zip(codes, streams, strict=True):
            stream.seek(0)
            log = stream.read()
            stream.close()
            assert code == 0, log[-3000:]


@pytest.fixture(scope="module")
def common(tmp_path_factory):
    root = tmp_path_factory.mktemp("multinode")
    args = tiny_task_args("finetune-glue", root / "data")
    args[args.index("--recipe") + 1] = str(ROOT / args[args.index("--recipe") + 1])  # launchers in other folders
    return [*args, "--model", str(write_tiny_model("bert", root)), "--max-steps", "6", "--save-steps", "3",
            "--set", "training.group_by_length=false", "--per-device-train-batch-size", "4"]


@pytest.mark.multiprocess
def test_two_machines_train_as_two_processes_on_one_and_resume(tmp_path, common):
    from safetensors.torch import load_file

    nodes, single = tmp_path / "nodes", tmp_path / "single"
    _launch_two_machines([*common, "--output-dir", str(nodes)])
    proc = launch(*common, "--output-dir", str(single))
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = (json.loads((d / "all_results.json").read_text()) for d in (nodes, single))
    assert a["num_processes"] == b["num_processes"] == 2
    scores = ["train_loss", *(k for k in b if k.startswith("eval_") and isinstance(b[k], float))]
    assert "eval_accuracy" in scores
    for key in scores:
        assert a[key] == pytest.approx(b[key], abs=1e-6), key
    assert sorted(p.name for p in nodes.glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-6"]

    # resume on both machines from the first checkpoint: the same final weights
    cut = tmp_path / "cut"
    shutil.copytree(nodes, cut)
    shutil.rmtree(cut / "checkpoint-6")
    (cut / "model.safetensors").unlink()
    _launch_two_machines([*common, "--output-dir", str(cut), "--resume"])
    x, y = (load_file(str(d / "model.safetensors")) for d in (nodes, cut))
    assert all((x[k] == y[k]).all() for k in x)


@pytest.mark.multiprocess
def test_save_on_each_node_writes_every_machine_s_own_disk(tmp_path, common):
    """Two working directories stand for two machines' local disks: a relative output dir lands on each."""
    disks = (tmp_path / "node0", tmp_path / "node1")
    for disk in disks:
        disk.mkdir()
    _launch_two_machines([*common, "--output-dir", "run", "--save-on-each-node"], cwds=disks)
    from transformers import AutoModelForSequenceClassification

    for disk in disks:
        assert (disk / "run" / "model.safetensors").is_file() and (disk / "run" / "checkpoint-6").is_dir()
    first, second = (AutoModelForSequenceClassification.from_pretrained(str(d / "run")).state_dict() for d in disks)
    assert first.keys() == second.keys() and all((first[k] == second[k]).all() for k in first)  # one model, twice


@pytest.mark.parametrize("env, expected", [
    ({"ACCELERATE_USE_FSDP": "true"}, "asks for FSDP, which Accelerate runs on GPUs only"),
    ({"ACCELERATE_USE_DEEPSPEED": "true"}, "asks for DeepSpeed"),
])
def test_launch_configs_this_machine_cannot_run_are_one_line(tmp_path, env, expected):
    out = tmp_path / "run"
    proc = run_cli(*tiny_task_args("finetune-glue", tmp_path / "data"), "--output-dir", str(out), env=env)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and expected in lines[0], proc.stderr[-2000:]
    assert not out.exists()
