"""Test set-up: offline, isolated caches, and helpers that drive the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# Offline and isolated before anything imports huggingface_hub/datasets (they read these at import).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="ssl-test-hf-"))
os.environ.pop("ACCELERATE_MIXED_PRECISION", None)

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, check: bool = False, env: dict[str, str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``ssl ARGS`` as a user would (a fresh process: real imports, real exit code)."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "ssl_cli", *args], cwd=ROOT, capture_output=True, text=True, env=full_env, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"ssl {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> dict[str, Path]:
    """The generated Traditional-Chinese QA set (small: fast tests)."""
    from ssl_cli.demo import write_demo_data

    return write_demo_data(tmp_path_factory.mktemp("demo-data"), n_train=120, n_dev=20, seed=1)


@pytest.fixture(scope="session")
def tiny_run_args(demo_data) -> list[str]:
    """Flags for a seconds-long training run on the generated data."""
    return [
        "finetune-qa", "--recipe", "recipes/qa/tiny-zh-offline.yaml",
        "--train-file", str(demo_data["train"]), "--validation-file", str(demo_data["dev"]),
        "--max-steps", "6", "--per-device-train-batch-size", "8", "--logging-steps", "2",
    ]


def run_then_resume(common: list[str], tmp_path: Path, keep: str, later: list[str]) -> tuple[Path, Path, dict]:
    """Run to the end, copy the run back to checkpoint ``keep`` (deleting the ``later`` ones and the final files),
    resume it, and check the resumed weights equal the uninterrupted run's. Returns both dirs and ``keep``'s state."""
    import json
    import shutil

    from safetensors.torch import load_file

    full, cut = tmp_path / "full", tmp_path / "cut"
    run_cli(*common, "--output-dir", str(full), check=True)
    shutil.copytree(full, cut)
    for name in later:
        shutil.rmtree(cut / name)
    for name in ("model.safetensors", "all_results.json", "train_log.jsonl"):
        (cut / name).unlink()
    state = json.loads((cut / keep / "trainer_state.json").read_text())
    proc = run_cli(*common, "--output-dir", str(cut), "--resume", check=True)
    assert "resumed from" in proc.stderr
    a, b = load_file(full / "model.safetensors"), load_file(cut / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert (a[key] == b[key]).all(), key
    return full, cut, state


TINY_RECIPES = {
    "finetune-qa": "recipes/qa/tiny-zh-offline.yaml",
    "finetune-glue": "recipes/glue/tiny-en-offline.yaml",
    "nli": "recipes/nli/tiny-en-offline.yaml",
    "tag-pos": "recipes/pos/tiny-en-offline.yaml",
    "pretrain-mlm": "recipes/pretrain/tiny-mlm-offline.yaml",
    "pretrain-clm": "recipes/pretrain/tiny-clm-offline.yaml",
}


def tiny_task_args(command: str, root: Path) -> list[str]:
    """``command`` with its tiny offline recipe and a small generated train/dev set written under ``root``
    (120 training examples, about 20 evaluation ones; text: 300 / 21 documents)."""
    from ssl_cli.demo import write_demo_data
    from ssl_cli.synthetic import write_tagging_task, write_task, write_text_corpus

    if command == "finetune-qa":
        data = write_demo_data(root, n_train=120, n_dev=20, seed=1)
    elif command == "finetune-glue":
        data = write_task("sentiment", root, n_train=120, n_dev=21, seed=1)
    elif command == "nli":
        data = write_task("colour_match", root, n_train=120, n_dev=21, seed=1, suffix=".jsonl")
    elif command == "tag-pos":
        data = write_tagging_task("en_pos", root, n_train=120, n_dev=21, seed=1)
    else:
        data = write_text_corpus(root, n_train=300, n_dev=21, seed=1)
    task = ["--task", "sst2"] if command == "finetune-glue" else []
    return [command, "--recipe", TINY_RECIPES[command], *task, "--train-file", str(data["train"]),
            "--validation-file", str(data["dev"])]

