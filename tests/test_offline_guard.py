"""With HF_HUB_OFFLINE=1 no code path of any subcommand opens a network connection.

Each command runs in a fresh process whose ``sitecustomize`` replaces
``socket.socket.connect``/``connect_ex`` and ``socket.getaddrinfo``: any
attempt is written to a file (and refused). A control run proves the guard
catches a real download attempt, so an empty record means something.
"""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from ssl_cli.synthetic import write_tagging_task, write_task, write_text_corpus
from tests.conftest import ROOT, run_cli

GUARD = textwrap.dedent('''
    import os, socket

    _record = os.environ["SSL_SOCKET_LOG"]

    def _refuse(what, target):
        with open(_record, "a", encoding="utf-8") as handle:
            handle.write(f"{what} {target!r}\\n")
        raise OSError(f"network access blocked by the offline guard: {what} {target!r}")

    _connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def connect(self, address):
        if self.family == socket.AF_UNIX:
            return _connect(self, address)
        _refuse("connect", address)

    def connect_ex(self, address):
        if self.family == socket.AF_UNIX:
            return _connect_ex(self, address)
        _refuse("connect_ex", address)

    def getaddrinfo(host, *args, **kwargs):
        _refuse("getaddrinfo", host)

    socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
''')


@pytest.fixture(scope="module")
def guarded_env(tmp_path_factory):
    root = tmp_path_factory.mktemp("guard")
    (root / "sitecustomize.py").write_text(GUARD, encoding="utf-8")
    record = root / "connections.log"
    return {"PYTHONPATH": f"{root}:{ROOT}", "SSL_SOCKET_LOG": str(record), "HF_HUB_OFFLINE": "1"}, record


@pytest.fixture(scope="module")
def data(tmp_path_factory, demo_data):
    root = tmp_path_factory.mktemp("guard-data")
    return {"qa": demo_data, "glue": write_task("sentiment", root / "sst", n_train=60, n_dev=20, seed=1),
            "nli": write_task("colour_match", root / "nli", n_train=60, n_dev=20, seed=1, suffix=".jsonl"),
            "pos": write_tagging_task("en_pos", root / "pos", n_train=60, n_dev=20, seed=1),
            "text": write_text_corpus(root / "text", n_train=200, n_dev=20, seed=1)}


def _commands(data, out):
    files = lambda d: ["--train-file", str(d["train"]), "--validation-file", str(d["dev"])]  # noqa: E731
    short = ["--max-steps", "2", "--output-dir", str(out)]
    return {
        "finetune-qa": ["finetune-qa", "--recipe", "recipes/qa/tiny-zh-offline.yaml", *files(data["qa"]), *short],
        "finetune-glue": ["finetune-glue", "--recipe", "recipes/glue/tiny-en-offline.yaml", "--task", "sst2",
                          *files(data["glue"]), *short],
        "nli": ["nli", "--recipe", "recipes/nli/tiny-en-offline.yaml", *files(data["nli"]), *short],
        "tag-pos": ["tag-pos", "--recipe", "recipes/pos/tiny-en-offline.yaml", *files(data["pos"]), *short],
        "pretrain-mlm": ["pretrain-mlm", "--recipe", "recipes/pretrain/tiny-mlm-offline.yaml", *files(data["text"]),
                         *short],
        "pretrain-clm": ["pretrain-clm", "--recipe", "recipes/pretrain/tiny-clm-offline.yaml", *files(data["text"]),
                         *short],
    }


def test_the_guard_catches_a_download(guarded_env, tmp_path):
    import subprocess

    env, record = guarded_env
    code = "import urllib.request\ntry:\n    urllib.request.urlopen('https://huggingface.co', timeout=5)\nexcept Exception:\n    pass"
    subprocess.run([sys.executable, "-c", code], env={**__import__("os").environ, **env}, check=True)
    assert "huggingface.co" in record.read_text()
    record.unlink()


@pytest.mark.parametrize("command", ["finetune-qa", "finetune-glue", "nli", "tag-pos", "pretrain-mlm", "pretrain-clm"])
def test_no_subcommand_touches_the_network_offline(guarded_env, data, tmp_path, command):
    env, record = guarded_env
    out = tmp_path / "out"
    proc = run_cli(*_commands(data, out)[command], env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((out / "all_results.json").read_text())["train_steps"] == 2
    if command == "pretrain-clm":  # and the generation command on its output
        generated = run_cli("generate", "--model", str(out), "--prompt", "the", "--max-new-tokens", "3", env=env)
        assert generated.returncode == 0, generated.stderr[-2000:]
    assert not record.exists(), record.read_text()
