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

The rows run in #23's priority order (``ROWS``), each in its own process,
and the results are saved after every row. ``--budget-s`` starts no row
that would end past it, by the mean row so far, and lists the rest as
skipped: a lent GPU has minutes. A row that fails is recorded with its
error, and the others go on. ``--rows`` runs some rows only.
``--cpu-check`` runs every row where no GPU is, on tiny models in fp32: it
checks that each row's arguments run, not their speed. The whole
accelerator run, set-up included, is ``benchmarks/device_run.sh``.

Results: benchmarks/results/gpu.json and .md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench_ceiling import SHAPES, layer_gemms, train_flops_per_token
from bench_mfu import commands
from common import SHARED_DATA, run_worker, write_results

BASE = SHAPES["bert-base"]
# CUDA graphs: one replay per step instead of a launch per kernel, recorded once per new shape
CUDA_GRAPHS = ["--torch-compile", "--set", "training.torch_compile_mode=reduce-overhead"]
PADDED = ["--set", "training.padding_free=false"]
PROFILED = ["--set", "training.profile_steps=10"]


@dataclass(frozen=True)
class Row:
    """One process launch: a subcommand from bench_mfu's commands with extra ssl arguments.

    ``steps``: its own step count (big batches reach a steady rate sooner);
    ``whole_data``: train on every row of the file, not ``steps`` x the
    recipe's batch, so that a batch larger than the recipe's still gets many
    steps per epoch.
    """

    command: str
    extra: tuple[str, ...] = ()
    steps: int | None = None
    whole_data: bool = False


# In priority order: when the time budget (--budget-s) runs out, the rows still to come are skipped, so #23's
# targets come first: MFU at the recipe's batch and at batches the device's memory allows (QA >= 50%, glue >= 35%),
# then the profiler's step breakdown, the other subcommands, CUDA graphs, and each lever against its alternative.
ROWS = {
    "finetune-qa": Row("finetune-qa"),
    "finetune-glue": Row("finetune-glue"),
    # padding-free rows in tokens: per_device_train_batch_size auto searches the largest token budget that fits
    "finetune-qa, batch auto": Row("finetune-qa", ("--per-device-train-batch-size", "auto"), 40, True),
    "finetune-qa, 98,304 tokens per batch": Row("finetune-qa", ("--per-device-train-tokens", "98304"), 40, True),
    "finetune-glue, batch auto": Row("finetune-glue", ("--per-device-train-batch-size", "auto"), 40, True),
    "finetune-glue, 16,384 tokens per batch": Row("finetune-glue", ("--per-device-train-tokens", "16384"), 60, True),
    # the step breakdown: torch.profiler's record of 10 steps, padding-free and padded (docs/performance.md)
    "finetune-qa, profiled": Row("finetune-qa", tuple(PROFILED)),
    "finetune-qa, padded, profiled": Row("finetune-qa", (*PROFILED, *PADDED)),
    "nli": Row("nli"),
    "tag-pos": Row("tag-pos"),
    "pretrain-mlm": Row("pretrain-mlm"),
    "pretrain-clm": Row("pretrain-clm"),
    # static token batches: every batch one shape, so CUDA graphs record once (training.static_token_batches:
    # auto turns them on here)
    "finetune-qa, 16,384 static tokens, CUDA graphs": Row("finetune-qa", (
        "--per-device-train-tokens", "16384", "--set", "training.padding_free=true", *CUDA_GRAPHS), whole_data=True),
    "finetune-glue, 16,384 static tokens, CUDA graphs": Row("finetune-glue", (
        "--per-device-train-tokens", "16384", "--set", "training.padding_free=true", *CUDA_GRAPHS), whole_data=True),
    # padding-free rows (training.padding_free: auto, on here) against the padded batches they replace
    "finetune-qa, padded": Row("finetune-qa", tuple(PADDED)),
    "finetune-glue, padded": Row("finetune-glue", tuple(PADDED)),
    "tag-pos, padded": Row("tag-pos", tuple(PADDED)),
    # loader workers (dataloader_num_workers: auto, up to 4 on CUDA) against collating in the loop
    "finetune-qa, no loader workers": Row("finetune-qa", ("--dataloader-num-workers", "0")),
    "tag-pos, packed rows": Row("tag-pos", ("--set", "training.pack_sequences=true")),
    "finetune-qa, fp32": Row("finetune-qa", ("--mixed-precision", "no")),
    "tag-pos, fp32": Row("tag-pos", ("--mixed-precision", "no")),
    "finetune-qa, torch.compile": Row("finetune-qa", ("--torch-compile",)),
    "finetune-glue, torch.compile": Row("finetune-glue", ("--torch-compile",)),
    "finetune-glue, torch.compile reduce-overhead": Row("finetune-glue", tuple(CUDA_GRAPHS)),
    "tag-pos, torch.compile reduce-overhead": Row("tag-pos", tuple(CUDA_GRAPHS)),
    "tag-pos, micro-batches (pass = 1,024 tokens)": Row("tag-pos", (
        "--set", "training.padding_microbatches=true", "--set", "training.microbatch_pass_overhead=1024")),
}
FIRST_ROW_ESTIMATE_S = 40.0  # until a row has run: process start, tokenising, model set-up and the steps


def row_argv(row: Row, steps: int, cpu_check: bool) -> list[str]:
    """The ssl arguments of ``row``: bench_mfu's command at its step count, the row's extras, and bf16 (or, to
    check the rows where no GPU is, fp32 on a tiny model: emulated bf16 would take hours)."""
    argv = commands(steps if cpu_check else row.steps or steps)[row.command]
    if row.whole_data:
        at = argv.index("--max-train-samples")
        argv = argv[:at] + argv[at + 2:]
    if cpu_check:
        argv = [("scratch:bert-tiny" if a == "scratch:bert-base" else "scratch:gpt2-tiny" if a == "scratch:gpt2-small"
                 else a) for a in argv]
    return [*argv, "--mixed-precision", "no" if cpu_check else "bf16", *row.extra]


def rows_to_run(selected: str | None) -> list[str]:
    """``--rows`` (names separated by semicolons, since names hold commas; in the order given) or every row, in
    priority order."""
    if not selected:
        return list(ROWS)
    names = [name.strip() for name in selected.split(";") if name.strip()]
    unknown = [name for name in names if name not in ROWS]
    if unknown:
        raise SystemExit(f"no such row: {', '.join(unknown)} (rows: {'; '.join(ROWS)})")
    return names


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

    out = Path(args.work) / "".join(c if c.isalnum() else "_" for c in args.command)
    argv = [*row_argv(ROWS[args.command], args.steps, args.cpu_check), "--output-dir", str(out), "--overwrite"]
    results, wall = run_ssl(argv, out)
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines() if '"loss"' in line]
    batch = results["global_batch_size"]
    steady_samples = results["train_samples_per_second"]  # under two logged steps: the whole run's rate
    if len(log) > 1:
        # the log's examples_per_second is the mean since training started: elapsed(step) = step x batch / it
        first, last = log[0], log[-1]
        elapsed = [entry["step"] * batch / entry["examples_per_second"] for entry in (first, last)]
        steady_samples = (last["step"] - first["step"]) * batch / (elapsed[1] - elapsed[0])
    mean_length = results["train_tokens_per_second"] / results["train_samples_per_second"]
    profile = out / "profile" / "summary.json"
    return {"profile": json.loads(profile.read_text()) if profile.is_file() else None,
            "per_device_train_batch_size": results.get("per_device_train_batch_size"),
            "per_device_train_tokens": results.get("per_device_train_tokens"),
            "global_batch_size": batch, "mean_real_length": mean_length, "steady_samples_per_second": steady_samples,
            "steady_tokens_per_second": steady_samples * mean_length,
            "train_tokens_per_second": results["train_tokens_per_second"], "train_runtime": results["train_runtime"],
            "train_steps": results["train_steps"], "wall_time": wall, "mixed_precision": results.get("mixed_precision"),
            "train_padding_fraction": results.get("train_padding_fraction"),
            "train_passes_per_batch": results.get("train_passes_per_batch")}


def report_lines(ceiling: dict, steps: int, rows: dict[str, dict], skipped: list[str]) -> list[str]:
    lines = [f"# On the accelerator: {ceiling['device']} (torch {ceiling['torch']}), "
             f"{ceiling.get('precision', 'bf16 autocast')}, "
             f"{steps} steps each (big-batch rows as named)", "", "bf16 matmul throughput, TFLOP/s:", "",
             "| shapes | TFLOP/s |", "|---|---|",
             *(f"| {name} | {value:.3g} |" for name, value in ceiling["bf16_tflops"].items()), "",
             "| row | batch (rows, mean) | real tokens/s (steady) | mean real length | TFLOP/s | useful-token MFU vs "
             "8192-cube peak | padding | passes per batch |", "|---|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        if "error" in row:
            lines.append(f"| {name} | failed: {row['error'].splitlines()[-1][:200]} | | | | | | |")
            continue
        lines.append(f"| {name} | {row['global_batch_size']:.4g} | {row['steady_tokens_per_second']:,.0f} | "
                     f"{row['mean_real_length']:.0f} | {row['steady_tflops']:.1f} | {row['mfu']:.1%} | "
                     f"{row['train_padding_fraction'] or 0:.0%} | {row['train_passes_per_batch'] or 1:.2f} |")
    if skipped:
        lines += ["", f"Not run (past --budget-s): {'; '.join(skipped)}."]
    profiled = {name: row["profile"] for name, row in rows.items() if row.get("profile")}
    if profiled:
        lines += ["", "Step breakdown (training.profile_steps=10):", "",
                  "| row | mean step ms | device busy | top operators by self time |", "|---|---|---|---|"]
        for name, summary in profiled.items():
            top = ", ".join(f"{op['name']} {op['self_ms']:.0f} ms" for op in summary["top_operators"][:4])
            lines.append(f"| {name} | {summary['mean_step_ms']:.1f} | {summary.get('device_busy_fraction', 0):.0%} | "
                         f"{top} |")
    return lines


def cpu_ceiling() -> dict:
    """``--cpu-check``'s stand-in for the GPU ceiling: this CPU's fp32 matmul rate (MFU figures then mean little:
    the check is that every row runs)."""
    import time

    import torch

    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    torch.mm(a, b)
    start = time.perf_counter()
    for _ in range(5):
        torch.mm(a, b)
    rate = 5 * 2 * 1024**3 / (time.perf_counter() - start)
    return {"device": "CPU check (tiny models)", "torch": torch.__version__, "precision": "fp32",
            "bf16_tflops": {"8192 x 8192 x 8192": rate / 1e12}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=["ceiling", "ssl"])
    parser.add_argument("--command", default="finetune-qa")
    parser.add_argument("--work")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rows", help="row names separated by ';', run in that order (default: every row)")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="start no row that would end past this many seconds (by the mean row so far)")
    parser.add_argument("--cpu-check", action="store_true",
                        help="where no GPU is: run every row on tiny models in fp32, to check that the rows run")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps({"ceiling": worker_ceiling, "ssl": worker_ssl}[args.worker](args)))
        return
    import torch

    if not torch.cuda.is_available() and not args.cpu_check:
        print("bench skipped: no CUDA device here (run it on a machine with a GPU)")
        return
    if not SHARED_DATA.exists():
        print(f"bench skipped: {SHARED_DATA} is not there (set SSL_BENCH_DATA to a copy of ../shared/data)")
        return
    started = time.monotonic()
    ceiling = cpu_ceiling() if args.cpu_check else run_worker(__file__, "ceiling", [], [])
    peak = ceiling["bf16_tflops"]["8192 x 8192 x 8192"] * 1e12
    work = tempfile.mkdtemp(prefix="ssl-bench-gpu-")
    flags = ["--work", work, "--steps", str(args.steps), *(["--cpu-check"] if args.cpu_check else [])]
    rows: dict[str, dict] = {}
    names = rows_to_run(args.rows)
    walls: list[float] = []
    for at, name in enumerate(names):
        estimate = sum(walls) / len(walls) if walls else FIRST_ROW_ESTIMATE_S
        if args.budget_s is not None and time.monotonic() - started + estimate > args.budget_s:
            skipped = names[at:]
            break
        row_started = time.monotonic()
        try:  # one failed row must not lose the others: its error is the row
            row = run_worker(__file__, "ssl", ["--command", name], flags)
            flops = train_flops_per_token(BASE, row["mean_real_length"])
            row["steady_tflops"] = row["steady_tokens_per_second"] * flops / 1e12
            row["mfu"] = row["steady_tokens_per_second"] * flops / peak
        except RuntimeError as error:
            row = {"error": str(error)[-3000:]}
        walls.append(time.monotonic() - row_started)
        rows[name] = row
        print(f"  {name} ({walls[-1]:.0f} s): {json.dumps({k: v for k, v in row.items() if k != 'profile'})}",
              flush=True)
        write_results("gpu", {"ceiling": ceiling, "steps": args.steps, "rows": rows},
                      report_lines(ceiling, args.steps, rows, []), echo=False)
    else:
        skipped = []
    write_results("gpu", {"ceiling": ceiling, "steps": args.steps, "rows": rows, "skipped": skipped},
                  report_lines(ceiling, args.steps, rows, skipped))


if __name__ == "__main__":
    main()
