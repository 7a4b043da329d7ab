"""The accelerator run: bf16 matmul ceiling on the GPU and every subcommand's useful-token MFU against it.

Runs only where CUDA is available (the project's CI and its 2-core machine
have none: there it says so and writes nothing). The same workloads as
bench_mfu.py (``scratch:bert-base`` / ``scratch:gpt2-small``, real data,
batch 32 (QA 12), ssl's defaults, one process each) with bf16 autocast, for
``--steps`` optimizer steps.

- Ceiling: bf16 matmul throughput at a BERT layer's training GEMMs (forward,
  input and weight gradients) for 384, 4,096 and 16,384 tokens per GEMM, and
  one 8192 x 8192 x 8192 product as the chip's practical peak; each the best
  of repeated passes of 20 launches timed with CUDA events.
- MFU: real (non-padding) tokens per second x training FLOPs per token
  (bench_ceiling.train_flops_per_token) / the 8192-cube bf16 peak. The rate is
  the steady one, from the first logged step (20) to the last: a GPU's first
  steps include cuBLAS set-up and kernel selection, which a short run would
  otherwise count many times over.

Results: benchmarks/results/gpu.json and .md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from bench_ceiling import SHAPES, layer_gemms, train_flops_per_token
from bench_mfu import commands
from common import SHARED_DATA, run_worker, write_results

BASE = SHAPES["bert-base"]
# CUDA graphs: one replay per step instead of a launch per kernel, recorded once per new shape
CUDA_GRAPHS = ["--torch-compile", "--set", "training.torch_compile_mode=reduce-overhead"]
EXTRA_ROWS = {  # name: (subcommand, extra ssl arguments)
    # padding-free rows (training.padding_free: auto, on here) against the padded batches they replace, and the
    # batch the device's memory allows (per_device_train_batch_size: auto) against the recipe's
    "finetune-qa, padded": ("finetune-qa", ["--set", "training.padding_free=false"]),
    "finetune-glue, padded": ("finetune-glue", ["--set", "training.padding_free=false"]),
    "tag-pos, padded": ("tag-pos", ["--set", "training.padding_free=false"]),
    "finetune-qa, batch auto": ("finetune-qa", ["--per-device-train-batch-size", "auto"]),  # in tokens here
    "finetune-glue, 16,384 tokens per batch": ("finetune-glue", ["--per-device-train-tokens", "16384"]),
    # static token batches: every batch one shape, so CUDA graphs record once (training.static_token_batches:
    # auto turns them on here; padding_free auto is off under torch.compile)
    "finetune-glue, 16,384 static tokens, CUDA graphs": ("finetune-glue", [
        "--per-device-train-tokens", "16384", "--set", "training.padding_free=true", *CUDA_GRAPHS]),
    "finetune-qa, 16,384 static tokens, CUDA graphs": ("finetune-qa", [
        "--per-device-train-tokens", "16384", "--set", "training.padding_free=true", *CUDA_GRAPHS]),
    # loader workers (dataloader_num_workers: auto, up to 4 on CUDA) against collating in the loop
    "finetune-qa, no loader workers": ("finetune-qa", ["--dataloader-num-workers", "0"]),
    # the step breakdown: torch.profiler's record of 10 steps, padding-free and padded (docs/performance.md)
    "finetune-qa, profiled": ("finetune-qa", ["--set", "training.profile_steps=10"]),
    "finetune-qa, padded, profiled": ("finetune-qa", ["--set", "training.profile_steps=10",
                                                      "--set", "training.padding_free=false"]),
    "finetune-glue, batch auto": ("finetune-glue", ["--per-device-train-batch-size", "auto"]),
    "tag-pos, packed rows": ("tag-pos", ["--set", "training.pack_sequences=true"]),
    "finetune-qa, torch.compile": ("finetune-qa", ["--torch-compile"]),
    "finetune-qa, fp32": ("finetune-qa", ["--mixed-precision", "no"]),
    "tag-pos, fp32": ("tag-pos", ["--mixed-precision", "no"]),
    "finetune-glue, torch.compile": ("finetune-glue", ["--torch-compile"]),
    "finetune-glue, torch.compile reduce-overhead": ("finetune-glue", CUDA_GRAPHS),
    "tag-pos, torch.compile reduce-overhead": ("tag-pos", CUDA_GRAPHS),
    "tag-pos, micro-batches (pass = 1,024 tokens)": (
        "tag-pos", ["--set", "training.padding_microbatches=true", "--set", "training.microbatch_pass_overhead=1024"]),
}


def gemm_flops_per_second(shapes: list[tuple[int, int, int]], repeats: int = 20, passes: int = 10) -> float:
    """bf16 FLOP/s over these (m, k, n) products on the GPU: best pass of ``repeats`` rounds, CUDA events."""
    import torch

    pairs = [(torch.randn(m, k, dtype=torch.bfloat16, device="cuda"),
              torch.randn(k, n, dtype=torch.bfloat16, device="cuda")) for m, k, n in shapes]
    flops = repeats * sum(2 * m * k * n for m, k, n in shapes)
    best = float("inf")
    for attempt in range(passes + 2):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(repeats):
            for a, b in pairs:
                torch.mm(a, b)
        end.record()
        torch.cuda.synchronize()
        if attempt >= 2:  # two warm-up passes: kernel selection, clocks
            best = min(best, start.elapsed_time(end) / 1000)
    return flops / best


def worker_ceiling(_: argparse.Namespace) -> dict:
    import torch

    rows = {f"bert-base layer GEMMs, {tokens} tokens": gemm_flops_per_second(
        layer_gemms(BASE["hidden"], BASE["ffn"], tokens)) / 1e12 for tokens in (384, 4096, 16384)}
    rows["8192 x 8192 x 8192"] = gemm_flops_per_second([(8192, 8192, 8192)], repeats=5) / 1e12
    return {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "bf16_tflops": rows}


def worker_ssl(args: argparse.Namespace) -> dict:
    from common import run_ssl

    command, extra = (args.command, []) if args.command in commands(1) else EXTRA_ROWS[args.command]
    out = Path(args.work) / command.replace(" ", "_")
    argv = [*commands(args.steps)[command], "--mixed-precision", "bf16", *extra, "--output-dir", str(out),
            "--overwrite"]
    results, wall = run_ssl(argv, out)
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines() if '"loss"' in line]
    first, last = log[0], log[-1]
    # the log's examples_per_second is the mean since training started: elapsed(step) = step x batch / it
    batch = results["global_batch_size"]
    elapsed = [entry["step"] * batch / entry["examples_per_second"] for entry in (first, last)]
    steady_samples = (last["step"] - first["step"]) * batch / (elapsed[1] - elapsed[0])
    mean_length = results["train_tokens_per_second"] / results["train_samples_per_second"]
    profile = out / "profile" / "summary.json"
    return {"profile": json.loads(profile.read_text()) if profile.is_file() else None,
            "per_device_train_batch_size": results.get("per_device_train_batch_size"),
            "mean_real_length": mean_length, "steady_samples_per_second": steady_samples,
            "steady_tokens_per_second": steady_samples * mean_length,
            "train_tokens_per_second": results["train_tokens_per_second"], "train_runtime": results["train_runtime"],
            "train_steps": results["train_steps"], "wall_time": wall, "mixed_precision": results.get("mixed_precision"),
            "train_padding_fraction": results.get("train_padding_fraction"),
            "train_passes_per_batch": results.get("train_passes_per_batch")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=["ceiling", "ssl"])
    parser.add_argument("--command", default="finetune-qa")
    parser.add_argument("--work")
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps({"ceiling": worker_ceiling, "ssl": worker_ssl}[args.worker](args)))
        return
    import torch

    if not torch.cuda.is_available():
        print("bench skipped: no CUDA device here (run it on a machine with a GPU)")
        return
    if not SHARED_DATA.exists():
        print(f"bench skipped: {SHARED_DATA} is not there (set SSL_BENCH_DATA to a copy of ../shared/data)")
        return
    ceiling = run_worker(__file__, "ceiling", [], [])
    peak = ceiling["bf16_tflops"]["8192 x 8192 x 8192"] * 1e12
    work = tempfile.mkdtemp(prefix="ssl-bench-gpu-")
    rows = {}
    for name in [*commands(1), *EXTRA_ROWS]:
        row = run_worker(__file__, "ssl", ["--command", name], ["--work", work, "--steps", str(args.steps)])
        flops = train_flops_per_token(BASE, row["mean_real_length"])
        row["steady_tflops"] = row["steady_tokens_per_second"] * flops / 1e12
        row["mfu"] = row["steady_tokens_per_second"] * flops / peak
        rows[name] = row
        print(f"  {name}: {json.dumps(row)}", flush=True)
    lines = [f"# On the accelerator: {ceiling['device']} (torch {ceiling['torch']}), bf16 autocast, "
             f"{args.steps} steps each", "", "bf16 matmul throughput, TFLOP/s:", "",
             "| shapes | TFLOP/s |", "|---|---|",
             *(f"| {name} | {value:.0f} |" for name, value in ceiling["bf16_tflops"].items()), "",
             "| subcommand | batch | real tokens/s (steady) | mean real length | TFLOP/s | useful-token MFU vs 8192-cube "
             "peak | padding | passes per batch |", "|---|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['per_device_train_batch_size']} | {row['steady_tokens_per_second']:,.0f} | "
                     f"{row['mean_real_length']:.0f} | "
                     f"{row['steady_tflops']:.1f} | {row['mfu']:.1%} | {row['train_padding_fraction']:.0%} | "
                     f"{row['train_passes_per_batch']:.2f} |")
    profiled = {name: row["profile"] for name, row in rows.items() if row.get("profile")}
    if profiled:
        lines += ["", "Step breakdown (training.profile_steps=10):", "",
                  "| row | mean step ms | device busy | top operators by self time |", "|---|---|---|---|"]
        for name, summary in profiled.items():
            top = ", ".join(f"{op['name']} {op['self_ms']:.0f} ms" for op in summary["top_operators"][:4])
            lines.append(f"| {name} | {summary['mean_step_ms']:.1f} | {summary.get('device_busy_fraction', 0):.0%} | "
                         f"{top} |")
    write_results("gpu", {"ceiling": ceiling, "steps": args.steps, "rows": rows}, lines)


if __name__ == "__main__":
    main()
