"""The launcher's allocator choice (tcmalloc for training commands when installed, never for quick ones); torch.compile."""

from __future__ import annotations

import json

import pytest

from ssl_cli.allocator import ENV, find_tcmalloc, preload_plan
from ssl_cli.errors import UserError
from tests.conftest import run_cli, tiny_task_args

TRAIN = ["finetune-qa", "--model", "scratch:bert-tiny"]


def lib(tmp_path):
    path = tmp_path / "libtcmalloc_minimal.so.4"
    path.write_bytes(b"\x7fELF")
    return str(path)


def test_training_commands_preload_the_library_found(tmp_path):
    library = lib(tmp_path)
    env = preload_plan(TRAIN, {"PATH": "/bin"}, platform="linux", find=lambda: library)
    assert env["LD_PRELOAD"] == library and env["PATH"] == "/bin"
    assert int(env["TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD"]) >= 1 << 40  # no stderr line per 1 GB tensor
    kept = preload_plan(TRAIN, {"LD_PRELOAD": "/opt/libtrace.so"}, platform="linux", find=lambda: library)
    assert kept["LD_PRELOAD"] == f"{library}:/opt/libtrace.so"  # the user's own preloads stay


@pytest.mark.parametrize("argv", [[], ["--help"], ["env"], ["finetune-qa", "--help"], ["finetune-qa", "--dry-run"],
                                  ["--version"]])
def test_quick_commands_start_without_a_re_exec(argv, tmp_path):
    library = lib(tmp_path)
    assert preload_plan(argv, {}, platform="linux", find=lambda: library) is None


def test_nothing_to_do_when_not_wanted_not_found_or_already_chosen(tmp_path):
    library = lib(tmp_path)
    assert preload_plan(TRAIN, {ENV: "system"}, platform="linux", find=lambda: library) is None
    assert preload_plan(TRAIN, {}, platform="darwin", find=lambda: library) is None
    assert preload_plan(TRAIN, {}, platform="linux", find=lambda: None) is None
    for chosen in (library, "/usr/lib/libjemalloc.so.2"):  # ours after the re-exec (no loop), or the user's
        assert preload_plan(TRAIN, {"LD_PRELOAD": chosen}, platform="linux", find=lambda: library) is None


def test_an_explicit_library_path_is_used_or_refused(tmp_path):
    library = lib(tmp_path)
    env = preload_plan(TRAIN, {ENV: library}, platform="linux", find=lambda: None)
    assert env["LD_PRELOAD"] == library
    with pytest.raises(UserError, match="not a library file"):
        preload_plan(TRAIN, {ENV: str(tmp_path / "missing.so")}, platform="linux")
    proc = run_cli(*TRAIN, env={ENV: str(tmp_path / "missing.so")})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [f"error: {ENV}={tmp_path / 'missing.so'} is not a library file: set "
                                                "it to auto, system, or the path of an allocator (e.g. "
                                                "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4)"]


@pytest.mark.skipif(find_tcmalloc() is None, reason="tcmalloc is not installed (apt-get install libtcmalloc-minimal4)")
def test_a_real_run_trains_on_tcmalloc_unless_told_otherwise(tmp_path):
    """End to end: the re-executed process really runs on tcmalloc, and SSL_ALLOCATOR=system keeps glibc."""
    args = tiny_task_args("finetune-glue", tmp_path / "data")
    for choice, expected in (("auto", "tcmalloc"), ("system", "glibc")):
        out = tmp_path / choice
        proc = run_cli(*args, "--max-steps", "2", "--output-dir", str(out), env={ENV: choice}, check=True)
        assert json.loads((out / "all_results.json").read_text())["allocator"] == expected
        assert "large alloc" not in proc.stderr


def test_torch_compile_trains_like_eager_and_saves_plain_weights(tmp_path):
    """--torch-compile (regional, dynamic shapes): the same losses as eager, and an output dir without compile wrappers."""
    from safetensors import safe_open

    args = tiny_task_args("finetune-glue", tmp_path / "data")
    losses = {}
    for name, flags in (("eager", []), ("compiled", ["--torch-compile"])):
        out = tmp_path / name
        run_cli(*args, "--max-steps", "3", "--output-dir", str(out), *flags, check=True)
        losses[name] = json.loads((out / "all_results.json").read_text())["train_loss"]
    assert losses["compiled"] == pytest.approx(losses["eager"], rel=1e-3)
    assert "torch_compile: true" in (tmp_path / "compiled" / "recipe.yaml").read_text()
    with safe_open(str(tmp_path / "compiled" / "model.safetensors"), "pt") as weights:
        assert not any("_orig_mod" in key for key in weights.keys())  # noqa: SIM118 (safe_open has no __iter__)
