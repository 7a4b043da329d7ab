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
E2E = Path(__file__).resolve().parent / "e2e"


#: The files that take longest, run first: ``-n 2 --dist loadfile`` hands out whole files in collection order, and
#: one of these handed out last would leave the other worker idle while it runs.
LONGEST_FILES = ("test_kill_resume.py", "test_launch_configs.py", "test_multiprocess.py", "test_finetune_qa.py",
                 "test_multiprocess_tasks.py", "test_output_safety.py", "test_token_budget_runs.py",
                 "test_cpu_levers.py", "test_streaming.py", "test_pretrain_mlm.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything under tests/e2e drives the CLI and most of it trains: slow, so that ``make test-fast``
    (tests/unit) trains nothing. A unit test lives in tests/unit. The longest files go first (``LONGEST_FILES``)."""
    for item in items:
        if E2E in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.slow)
    rank = {name: i for i, name in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(Path(str(item.fspath)).name, len(rank)))  # stable: in-file order kept


def run_cli(*args: str, check: bool = False, env: dict[str, str] | None = None, timeout: int = 600,
            fresh: bool = False) -> subprocess.CompletedProcess:
    """Run ``ssl ARGS`` as a user would: a process of its own, with real imports and a real exit code.

    The process is forked from this worker's warm zygote (``tests.zygote``) unless ``fresh`` asks for a new
    interpreter, or ``env`` sets what only a new interpreter reads, or threads are not limited to one.
    """
    full_env = {**os.environ, **(env or {})}
    if fresh or not _zygote_can_run(env):
        proc = subprocess.run([sys.executable, "-m", "ssl_cli", *args], cwd=ROOT, capture_output=True, text=True,
                              env=full_env, timeout=timeout)
    else:
        proc = _ZYGOTE.run(list(args), full_env, timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"ssl {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def _zygote_can_run(env: dict[str, str] | None) -> bool:
    from tests.zygote import SAFE_ENV

    changed = {key for key, value in (env or {}).items() if os.environ.get(key) != value}  # the rest is as it is
    return (os.environ.get("OMP_NUM_THREADS") == "1" and os.environ.get("SSL_TEST_ZYGOTE", "1") != "0"
            and changed <= SAFE_ENV)


class _Zygote:
    """This worker's zygote process, started on first use and stopped when the worker exits."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.env_delta: dict[str, str] = {}

    def _start(self) -> None:
        import atexit

        from ssl_cli.allocator import allocator_environment

        plan = allocator_environment(os.environ) or {}  # tcmalloc preloaded already: no child re-executes itself
        self.env_delta = {k: v for k, v in plan.items() if os.environ.get(k) != v}
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.zygote"], cwd=ROOT, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env={**os.environ, **self.env_delta}, text=True, bufsize=1)
        if "ready" not in self.proc.stdout.readline():
            raise RuntimeError("the test zygote did not start")
        atexit.register(self.proc.stdin.close)

    def run(self, argv: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
        import json
        import select
        import signal

        if self.proc is None or self.proc.poll() is not None:
            self._start()
        with tempfile.TemporaryDirectory(prefix="ssl-run-") as tmp:
            streams = {"stdout": os.path.join(tmp, "stdout"), "stderr": os.path.join(tmp, "stderr")}
            request = {"argv": argv, "env": {**env, **self.env_delta}, "cwd": str(ROOT), **streams}
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            pid = json.loads(self.proc.stdout.readline())["pid"]
            finished, _, _ = select.select([self.proc.stdout], [], [], timeout)
            if not finished:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:  # it ended, and the zygote reaped it, after select gave up: in time
                    finished = [self.proc.stdout]
            status = json.loads(self.proc.stdout.readline())["status"]
            out, err = (Path(streams[name]).read_text(errors="replace") for name in ("stdout", "stderr"))
        if not finished:
            raise subprocess.TimeoutExpired(["ssl", *argv], timeout, out, err)
        return subprocess.CompletedProcess(["ssl", *argv], status, out, err)


_ZYGOTE = _Zygote()


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> dict[str, Path]:
    """The generated Traditional-Chinese QA set (small: fast tests)."""
    from ssl_cli.tasks.qa.data import write_demo_data

    return write_demo_data(tmp_path_factory.mktemp("demo-data"), n_train=120, n_dev=20, seed=1)


@pytest.fixture(scope="session")
def tiny_run_args(demo_data) -> list[str]:
    """Flags for a seconds-long training run on the generated data."""
    return [
        "finetune-qa", "--recipe", "recipes/qa/tiny-zh-offline.yaml",
        "--train-file", str(demo_data["train"]), "--validation-file", str(demo_data["dev"]),
        "--max-steps", "6", "--per-device-train-batch-size", "8", "--logging-steps", "2",
    ]


def one_line_error(proc) -> str:
    """A refused run's one ``error:`` line: exit code 2, no traceback, nothing else reported as an error."""
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def results_of(run: Path) -> dict:
    """A run's all_results.json."""
    import json

    return json.loads((run / "all_results.json").read_text())


#: dropout off, for runs compared across batch layouts, which draw different masks
NO_DROPOUT = ["--config-overrides", "hidden_dropout_prob=0,attention_probs_dropout_prob=0"]


def assert_same_weights(a: Path, b: Path, atol: float = 0.0) -> None:
    """The two runs' saved weights are bit for bit the same (or within ``atol``, relative to each weight's size)."""
    import torch
    from safetensors.torch import load_file

    left, right = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert left.keys() == right.keys()
    for key in left:
        if atol:
            torch.testing.assert_close(left[key], right[key], rtol=atol, atol=atol, msg=key)
        else:
            assert (left[key] == right[key]).all(), key


def copy_cut_back(full: Path, cut: Path, later: list[str]) -> None:
    """``full`` copied to ``cut`` as a kill would leave it before the ``later`` checkpoints: those and the final
    files are gone."""
    import shutil

    shutil.copytree(full, cut)
    for name in later:
        shutil.rmtree(cut / name)
    for name in ("model.safetensors", "all_results.json", "train_log.jsonl"):
        (cut / name).unlink()


def run_then_resume(common: list[str], tmp_path: Path, keep: str, later: list[str]) -> tuple[Path, Path, dict]:
    """Run to the end, copy the run back to checkpoint ``keep`` (deleting the ``later`` ones and the final files),
    resume it, and check the resumed weights equal the uninterrupted run's. Returns both dirs and ``keep``'s state."""
    import json

    full, cut = tmp_path / "full", tmp_path / "cut"
    run_cli(*common, "--output-dir", str(full), check=True)
    copy_cut_back(full, cut, later)
    state = json.loads((cut / keep / "trainer_state.json").read_text())
    proc = run_cli(*common, "--output-dir", str(cut), "--resume", check=True)
    assert "resumed from" in proc.stderr
    assert_same_weights(full, cut)
    return full, cut, state


def tiny_task_args(command: str, root: Path) -> list[str]:
    """``command`` with its tiny offline recipe and the task's own small generated train/dev set, written under
    ``root`` (about 120 training examples and 21 evaluation ones; text: 300 / 21 documents)."""
    from ssl_cli.tasks import all_tasks

    return task_args(command, all_tasks()[command].write_sample_data(root))


def task_args(command: str, data: dict[str, Path], train: str | None = None, dev: str | None = None) -> list[str]:
    """``command`` with its tiny offline recipe on ``data`` (a task's sample files), or on other ``train``/``dev``."""
    from ssl_cli.tasks import all_tasks

    task = all_tasks()[command]
    return [command, "--recipe", task.tiny_recipe, *task.sample_args, "--train-file", train or str(data["train"]),
            "--validation-file", dev or str(data["dev"])]
