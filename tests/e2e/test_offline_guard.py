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

from ssl_cli.tasks import all_tasks
from tests.conftest import ROOT, run_cli, tiny_task_args

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


def test_the_guard_catches_a_download(guarded_env, tmp_path):
    import subprocess

    env, record = guarded_env
    code = "import urllib.request\ntry:\n    urllib.request.urlopen('https://huggingface.co', timeout=5)\nexcept Exception:\n    pass"
    subprocess.run([sys.executable, "-c", code], env={**__import__("os").environ, **env}, check=True)
    assert "huggingface.co" in record.read_text()
    record.unlink()


@pytest.mark.parametrize("command", sorted(all_tasks()))
def test_no_subcommand_touches_the_network_offline(guarded_env, tmp_path, command):
    env, record = guarded_env
    out = tmp_path / "out"
    proc = run_cli(*tiny_task_args(command, tmp_path / "data"), "--max-steps", "2", "--output-dir", str(out), env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((out / "all_results.json").read_text())["train_steps"] == 2
    if command == "pretrain-clm":  # and the generation command on its output
        generated = run_cli("generate", "--model", str(out), "--prompt", "the", "--max-new-tokens", "3", env=env)
        assert generated.returncode == 0, generated.stderr[-2000:]
    assert not record.exists(), record.read_text()
