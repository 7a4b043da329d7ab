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


def test_compiled_static_token_batches_compile_the_layers_for_one_shape(tmp_path):
    """Static token batches under --torch-compile: the encoder layers compile once for training (PyTorch's
    recompile log shows no new shape for them), and the losses are eager's."""
    args = [*tiny_task_args("finetune-glue", tmp_path / "data"), "--max-steps", "5", "--per-device-train-tokens", "512",
            "--set", "training.padding_free=true", "--set", "training.static_token_batches=true",
            "--set", "training.eval_strategy=no", "--set", "training.do_eval=false"]
    losses = {}
    for name, flags in (("eager", []), ("compiled", ["--torch-compile"])):
        proc = run_cli(*args, *flags, "--output-dir", str(tmp_path / name), env={"TORCH_LOGS": "recompiles"},
                       check=True)
        losses[name] = json.loads((tmp_path / name / "all_results.json").read_text())["train_loss"]
    recompiles = [line for line in proc.stderr.splitlines() if "Recompiling function" in line]
    assert not [line for line in recompiles if "modeling_layers.py" in line], recompiles  # the layers' frame
    assert losses["compiled"] == pytest.approx(losses["eager"], rel=1e-3)


@pytest.mark.parametrize("max_norm", [0.05, 1e6], ids=["clipping", "under-the-limit"])
def test_clipping_folded_into_fused_adamw_updates_as_clip_grad_norm_does(tmp_path, max_norm):
    """The engine folds clipping's scaling pass into fused AdamW's read of each gradient: the same norm is
    returned, the same weights come out (clipped or not), and the divisor is gone after the step."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from ssl_cli.compat import clear_fused_grad_divisor
    from ssl_cli.config import TrainingConfig
    from ssl_cli.engine import Engine

    torch.manual_seed(0)
    config = BertConfig(vocab_size=60, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    models = [BertForSequenceClassification(config) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    optimizers = [torch.optim.AdamW(m.parameters(), lr=1e-2, fused=True) for m in models]
    batch = {"input_ids": torch.randint(5, 60, (4, 7)), "labels": torch.tensor([0, 1, 1, 0])}
    for model in models:
        model(**batch).loss.backward()
    expected_norm = torch.nn.utils.clip_grad_norm_(models[0].parameters(), max_norm)
    optimizers[0].step()
    engine = Engine(TrainingConfig(report_to=["none"], seed=0), tmp_path)
    from ssl_cli.engine.optim import clip_gradients

    norm = clip_gradients(engine.accelerator, models[1], optimizers[1], max_norm, list(models[1].parameters()))
    optimizers[1].step()
    clear_fused_grad_divisor(optimizers[1])
    torch.testing.assert_close(norm, expected_norm)
    assert (norm > max_norm) == (max_norm < 1)
    assert not hasattr(optimizers[1], "grad_scale")
    for (name, want), got in zip(models[0].state_dict().items(), models[1].state_dict().values(), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7, msg=name)


@pytest.mark.parametrize("dtypes", [("float32",), ("bfloat16",), ("float32", "bfloat16")],
                         ids=["fp32-dot-products", "bf16-foreach-norm", "mixed-grouped"])
def test_gradient_norm_matches_get_total_norm_on_every_path(dtypes):
    """fp32 on CPU takes the dot products; one other dtype the single _foreach_norm; a mix get_total_norm."""
    import torch

    from ssl_cli.engine import gradient_norm

    generator = torch.Generator().manual_seed(0)
    grads = [torch.randn(shape, generator=generator).to(getattr(torch, dtypes[i % len(dtypes)]))
             for i, shape in enumerate([(7, 5), (5,), (64, 33), (1,)])]
    expected = torch.nn.utils.get_total_norm(grads)
    got = gradient_norm(grads)
    assert got.dtype == expected.dtype
    torch.testing.assert_close(got.float(), expected.float(), rtol=1e-2 if "bfloat16" in dtypes else 1e-5, atol=0)


@pytest.mark.parametrize(("compile_on", "mode", "device", "expected"), [
    (True, "reduce-overhead", "cuda", True), (True, "max-autotune", "cuda", True), (True, "default", "cuda", False),
    (False, "reduce-overhead", "cuda", False), (True, "reduce-overhead", "cpu", False)])
def test_cuda_graph_steps_are_marked_only_where_graphs_replay(compile_on, mode, device, expected):
    """Only those modes on a GPU replay CUDA graphs (and need each step marked: an H200 run without the mark
    stopped with 'accessing tensor output of CUDAGraphs that has been overwritten')."""
    import torch

    from ssl_cli.config import TrainingConfig
    from ssl_cli.engine import replays_cuda_graphs

    training = TrainingConfig(torch_compile=compile_on, torch_compile_mode=mode)
    assert replays_cuda_graphs(training, torch.device(device)) is expected


def test_the_gradient_norm_is_logged(tmp_path):
    """Like Trainer's log: each logged step carries the gradient norm before clipping."""
    out = tmp_path / "out"
    run_cli(*tiny_task_args("finetune-glue", tmp_path / "data"), "--max-steps", "4", "--logging-steps", "2",
            "--output-dir", str(out), check=True)
    logged = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines() if '"loss"' in line]
    assert [r["step"] for r in logged] == [2, 4]
    assert all(r["grad_norm"] > 0 for r in logged)
