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
from tests.conftest import ROOT, tiny_task_args

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


DRIVER = textwrap.dedent('''
    import json, sys
    from ssl_cli.cli import main

    codes = []
    for argv in json.loads(sys.argv[1]):
        try:
            main(argv)
            codes.append(0)
        except SystemExit as exit:
            codes.append(exit.code or 0)
    print(json.dumps(codes))
''')


def test_no_subcommand_touches_the_network_offline(guarded_env, tmp_path):
    """Every subcommand, then ``ssl generate`` on the CLM run, in one guarded interpreter (one start-up, not
    one per command): the guard sees every connection any of them tries."""
    import subprocess

    env, record = guarded_env
    commands = sorted(all_tasks())
    runs = [[*tiny_task_args(command, tmp_path / command / "data"), "--max-steps", "2",
             "--output-dir", str(tmp_path / command / "out")] for command in commands]
    runs.append(["generate", "--model", str(tmp_path / "pretrain-clm" / "out"), "--prompt", "the",
                 "--max-new-tokens", "3"])
    proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(runs)], cwd=ROOT, capture_output=True, text=True,
                          env={**__import__("os").environ, **env}, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    codes = json.loads(proc.stdout.strip().splitlines()[-1])
    assert codes == [0] * len(runs), (dict(zip([*commands, "generate"], codes, strict=True)), proc.stderr[-3000:])
    for command in commands:
        results = json.loads((tmp_path / command / "out" / "all_results.json").read_text())
        assert results["train_steps"] == 2, command
    assert not record.exists(), record.read_text()
