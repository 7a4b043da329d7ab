"""A warm start for the suite's CLI runs: one process per pytest worker imports torch, transformers, datasets and
accelerate once, then forks a child for each ``ssl`` run.

Why: a one-step run of a tiny model is almost all imports (about 10 of its 11 seconds on a CI core), and the
suite starts a few hundred runs. Each child is still a process of its own, started the way ``python -m ssl_cli``
starts, with its own arguments, environment, working directory, standard streams, exit code and a real SIGKILL
when a fail point fires; only the imports are shared.

What a child does not get, so ``tests.conftest.run_cli`` starts a fresh interpreter instead when it matters:
environment variables that libraries read when they are imported (only ``SAFE_ENV`` may differ from the
zygote's), and a hash seed of its own (every child shares the zygote's, so the exact-resume tests that must hold
across hash seeds use fresh processes). OpenMP's threads cannot survive a fork: the zygote is used only with
``OMP_NUM_THREADS=1``, as ``make test`` runs, and it never runs a tensor operation itself.

Protocol (one JSON object a line, over the zygote's standard input and output): the test sends
``{"argv", "env", "cwd", "stdout", "stderr"}`` (the last two: files for the child's streams), the zygote answers
``{"pid"}`` once the child runs, then ``{"status"}`` (as ``subprocess`` gives it: negative for a signal).
"""

from __future__ import annotations

import json
import os
import sys

SAFE_ENV = frozenset({"SSL_FAILPOINT"})  # read at run time, never at import


def _warm_imports() -> None:
    import accelerate  # noqa: F401
    import datasets  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401
    from transformers.models.bert import modeling_bert  # noqa: F401
    from transformers.models.gpt2 import modeling_gpt2  # noqa: F401

    import ssl_cli.cli  # noqa: F401
    import ssl_cli.engine  # noqa: F401
    import ssl_cli.run  # noqa: F401
    from ssl_cli.tasks import all_tasks

    all_tasks()


def _child(request: dict, protocol: tuple[int, int]) -> None:
    """In the forked child: become ``python -m ssl_cli ARGV`` and never return."""
    code = 1
    try:
        for fd in protocol:
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        stdin = os.open(os.devnull, os.O_RDONLY)
        os.dup2(stdin, 0)
        for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
            target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(target, fd)
            os.close(target)
        import ssl_cli.__main__ as entry

        sys.argv = [entry.__file__, *request["argv"]]
        sys.orig_argv = [sys.executable, "-m", "ssl_cli", *request["argv"]]
        try:
            entry.main()
            code = 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 0 if stop.code is None else 1
            if not isinstance(stop.code, int) and stop.code is not None:
                print(stop.code, file=sys.stderr)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        try:
            import atexit

            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve() -> None:
    """Answer requests until the test process closes standard input."""
    requests = os.fdopen(os.dup(0), "r")
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(devnull, fd)
    _warm_imports()
    replies.write(json.dumps({"ready": True}) + "\n")
    for line in requests:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(request, (requests.fileno(), replies.fileno()))
        replies.write(json.dumps({"pid": pid}) + "\n")
        _, status = os.waitpid(pid, 0)
        replies.write(json.dumps({"status": os.waitstatus_to_exitcode(status)}) + "\n")


if __name__ == "__main__":
    serve()
