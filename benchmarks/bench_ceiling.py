"""This machine's ceiling and the CPU levers, measured side by side at BERT shapes.

Three parts, each row in its own process (allocators are chosen at process
start; a fresh process also gives every row its own page faults and peak RSS):

- **ceiling**: dense matmul throughput (fp32 and bf16) at the GEMM shapes of
  a BERT layer, forward and backward, for bert-base (H 768, FFN 3072) and
  MiniLM-L6-H384 (H 384, FFN 1536). This is the denominator of every MFU in
  RESULTS.md: what the matmul units deliver at these shapes, not a datasheet
  peak.
- **levers**: a bert-base question-answering training step (batch 8 x 384
  tokens, AdamW), timed after warm-up, under: glibc's default allocator;
  glibc as ``ssl`` tunes it (``tune_cpu_allocator``: no mmap for activations,
  one arena); jemalloc and tcmalloc preloaded (Debian's libjemalloc2 and
  libtcmalloc-minimal4, when present); bf16 autocast; bf16 weights with fp32
  masters (``--mixed-precision bf16-weights``, and compiled where bf16 is
  native); ``torch.compile``.
  Each row reports step time, MFU against the fp32 ceiling, minor page
  faults and kernel CPU time per step, and peak RSS.
- **eval**: the same model's forward pass under ``torch.no_grad`` and
  ``torch.inference_mode`` (what ``ssl`` evaluates with), alternated.

Results: benchmarks/results/ceiling.json and .md. Needs no data and no
model download (random weights at the real shapes).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

from common import peak_rss_mb, run_worker, write_results

from ssl_cli.engine import tune_cpu_allocator

SHAPES = {"bert-base": {"hidden": 768, "ffn": 3072, "layers": 12, "heads": 12},
          "MiniLM-L6-H384": {"hidden": 384, "ffn": 1536, "layers": 6, "heads": 12}}
LEVER_BATCH, LEVER_SEQ = 8, 384
JEMALLOC_KEEP_PAGES = "oversize_threshold:1,background_thread:true,metadata_thp:auto,dirty_decay_ms:-1,muzzy_decay_ms:-1"
ALLOCATORS = {"jemalloc": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
              "tcmalloc": "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"}


def layer_gemms(hidden: int, ffn: int, tokens: int) -> list[tuple[int, int, int]]:
    """(m, k, n) of every matmul of one encoder layer's training step: forward, input grads, weight grads."""
    forward = [(tokens, hidden, hidden)] * 4 + [(tokens, hidden, ffn), (tokens, ffn, hidden)]
    input_grads = [(m, n, k) for m, k, n in forward]
    weight_grads = [(k, m, n) for m, k, n in forward]
    return forward + input_grads + weight_grads


def matmul_ceiling(hidden: int, ffn: int, tokens: int, dtype_name: str, seconds: float = 3.0) -> float:
    """FLOP/s over a layer's GEMMs at these shapes: total FLOPs / total time (best of repeated passes)."""
    import torch

    dtype = getattr(torch, dtype_name)
    gemms = layer_gemms(hidden, ffn, tokens)
    pairs = [(torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)) for m, k, n in gemms]
    flops = sum(2 * m * k * n for m, k, n in gemms)
    for a, b in pairs:  # warm-up: first calls pick kernels and fault in pages
        torch.mm(a, b)
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        for a, b in pairs:
            torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return flops / best


def train_flops_per_token(shape: dict, seq: float) -> float:
    """Training FLOPs of one real token: 6 x encoder weights, plus attention scores and mixing over ``seq`` tokens.

    Embeddings are lookups (no FLOPs); the task head is a few thousand
    weights and left out, as in the usual MFU accounting (PaLM, appendix B).
    """
    h, ffn, layers = shape["hidden"], shape["ffn"], shape["layers"]
    weights = layers * (4 * h * h + 2 * h * ffn)
    return 6 * weights + 12 * layers * h * seq


def bert_base_qa():
    import torch
    from transformers import BertConfig, BertForQuestionAnswering

    torch.manual_seed(0)
    model = BertForQuestionAnswering(BertConfig())
    batch = {"input_ids": torch.randint(1000, 30000, (LEVER_BATCH, LEVER_SEQ)),
             "attention_mask": torch.ones(LEVER_BATCH, LEVER_SEQ, dtype=torch.long),
             "start_positions": torch.randint(0, LEVER_SEQ, (LEVER_BATCH,)),
             "end_positions": torch.randint(0, LEVER_SEQ, (LEVER_BATCH,))}
    return model, batch


def worker_ceiling(_: argparse.Namespace) -> dict:
    import torch

    tokens = LEVER_BATCH * LEVER_SEQ
    rows = {name: {dtype: matmul_ceiling(shape["hidden"], shape["ffn"], tokens, dtype) / 1e9
                   for dtype in ("float32", "bfloat16")} for name, shape in SHAPES.items()}
    return {"gflops": rows, "tokens_per_gemm": tokens, "threads": torch.get_num_threads(), "cpu": cpu_facts()}


def cpu_facts() -> dict:
    """Which CPU the ceiling was measured on, and whether its bf16 is native: a bf16 figure far below fp32's
    means a CPU without AVX512-BF16 or AMX, where torch emulates bf16 matmuls."""
    import platform

    import torch

    from ssl_cli.compat import cpu_has_native_bf16

    flags: set[str] = set()
    model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    return {"model": model, "isa": sorted(flags & {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}),
            "torch_capability": torch.backends.cpu.get_cpu_capability(), "native_bf16": cpu_has_native_bf16()}


def worker_lever(args: argparse.Namespace) -> dict:
    """Training steps of bert-base QA under one lever; per-step time, faults and kernel time after warm-up."""
    import torch

    if args.lever in ("ssl-glibc", "bf16", "compile", *BF16_WEIGHTS_LEVERS):
        tune_cpu_allocator()
    model, batch = bert_base_qa()
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    step_model = torch.compile(model) if args.lever in ("compile", "bf16-weights-compile") else model
    weights = master_weights(model) if args.lever in BF16_WEIGHTS_LEVERS else None

    def step() -> None:
        if weights is not None:
            weights.enter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.lever == "bf16"):
            loss = step_model(**batch).loss
        loss.backward()
        if weights is not None:
            weights.finish()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    start = time.perf_counter()
    step()
    first_step = time.perf_counter() - start
    step()
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = (time.perf_counter() - start) / args.steps
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {"seconds_per_step": seconds, "first_step_seconds": first_step,
            "minor_faults_per_step": (after.ru_minflt - before.ru_minflt) / args.steps,
            "kernel_cpu_share": (after.ru_stime - before.ru_stime) / max(
                (after.ru_stime - before.ru_stime) + (after.ru_utime - before.ru_utime), 1e-9),
            "tokens_per_second": LEVER_BATCH * LEVER_SEQ / seconds, "peak_rss_mb": peak_rss_mb()}


BF16_WEIGHTS_LEVERS = ("bf16-weights", "bf16-weights-compile")


def master_weights(model):
    """``--mixed-precision bf16-weights``' bf16 copies and fp32 masters, as the engine keeps them."""
    from accelerate import Accelerator

    from ssl_cli.engine.master_weights import MasterWeights

    return MasterWeights(model, Accelerator(cpu=True))


def worker_eval(args: argparse.Namespace) -> dict:
    """bert-base forward passes, no_grad and inference_mode alternated (best of each)."""
    import torch

    tune_cpu_allocator()
    model, batch = bert_base_qa()
    model.eval()
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask")}
    modes = {"no_grad": torch.no_grad, "inference_mode": torch.inference_mode}
    best = dict.fromkeys(modes, float("inf"))
    for _ in range(args.steps + 1):
        for name, mode in modes.items():
            start = time.perf_counter()
            with mode():
                model(**inputs)
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: {"seconds_per_batch": s, "tokens_per_second": LEVER_BATCH * LEVER_SEQ / s} for name, s in best.items()}


WORKERS = {"ceiling": worker_ceiling, "lever": worker_lever, "eval": worker_eval}


def run_row(kind: str, extra: list[str], env: dict[str, str] | None = None) -> dict:
    return run_worker(__file__, kind, extra, [], env=env)


def lever_rows(steps: int) -> dict[str, dict]:
    rows = {"glibc default": run_row("lever", ["--lever", "glibc", "--steps", str(steps)]),
            "glibc tuned by ssl (no tcmalloc)": run_row("lever", ["--lever", "ssl-glibc", "--steps", str(steps)])}
    for name, library in ALLOCATORS.items():
        if not Path(library).exists():
            print(f"  {name}: {library} not installed (apt-get install "
                  f"{'libjemalloc2' if name == 'jemalloc' else 'libtcmalloc-minimal4'}); row skipped", file=sys.stderr)
            continue
        lever = ["--lever", name, "--steps", str(steps)]
        label = f"{name} preloaded" + (" (ssl's choice when installed)" if name == "tcmalloc" else "")
        rows[label] = run_row("lever", lever, env={"LD_PRELOAD": library})
        if name == "jemalloc":  # its default hands pages back within seconds; PyTorch's CPU tuning guide keeps them
            rows["jemalloc, pages kept (MALLOC_CONF)"] = run_row(
                "lever", lever, env={"LD_PRELOAD": library, "MALLOC_CONF": JEMALLOC_KEEP_PAGES})
    rows["bf16 autocast (ssl glibc)"] = run_row("lever", ["--lever", "bf16", "--steps", str(steps)])
    rows["torch.compile (ssl glibc)"] = run_row("lever", ["--lever", "compile", "--steps", str(steps)])
    rows["bf16 weights, fp32 masters (ssl glibc)"] = run_row("lever", ["--lever", "bf16-weights", "--steps", str(steps)])
    if cpu_facts()["native_bf16"]:  # emulated bf16 (no AMX, no AVX512-BF16) is matmul-bound: compiling fuses little
        rows["bf16 weights, torch.compile (ssl glibc)"] = run_row(
            "lever", ["--lever", "bf16-weights-compile", "--steps", str(steps)])
    return rows


def report(ceiling: dict, levers: dict[str, dict], evaluation: dict) -> list[str]:
    base = ceiling["gflops"]["bert-base"]
    per_token = train_flops_per_token(SHAPES["bert-base"], LEVER_SEQ)
    lines = [f"# Ceiling and CPU levers ({ceiling['threads']} threads)", "",
             f"Matmul ceiling at a BERT layer's training GEMMs ({ceiling['tokens_per_gemm']} tokens), GFLOP/s:", "",
             "| shapes | fp32 | bf16 | bf16 / fp32 |", "|---|---|---|---|"]
    for name, row in ceiling["gflops"].items():
        lines.append(f"| {name} | {row['float32']:.1f} | {row['bfloat16']:.1f} | {row['bfloat16'] / row['float32']:.2f}x |")
    cpu = ceiling.get("cpu")
    if cpu:
        native = "native (AVX512-BF16 or AMX)" if cpu["native_bf16"] else "emulated (no AVX512-BF16, no AMX)"
        lines += ["", f"CPU: {cpu['model']}; ISA {', '.join(cpu['isa']) or 'unknown'}; torch kernels "
                  f"{cpu['torch_capability']}; bf16 matmuls {native}."]
    reference = levers["glibc tuned by ssl (no tcmalloc)"]["seconds_per_step"]
    lines += ["", f"bert-base QA training step, batch {LEVER_BATCH} x {LEVER_SEQ} tokens, AdamW "
              f"({per_token / 1e6:.0f} MFLOP per token):", "",
              "| lever | s/step | vs tuned glibc | MFU (fp32 ceiling) | first step s | minor faults/step | kernel CPU | "
              "peak RSS MB |", "|---|---|---|---|---|---|---|---|"]
    for name, row in levers.items():
        mfu = row["tokens_per_second"] * per_token / (base["float32"] * 1e9)
        lines.append(f"| {name} | {row['seconds_per_step']:.2f} | {reference / row['seconds_per_step']:.2f}x | "
                     f"{mfu:.0%} | {row['first_step_seconds']:.1f} | {row['minor_faults_per_step']:,.0f} | "
                     f"{row['kernel_cpu_share']:.1%} | {row['peak_rss_mb']:.0f} |")
    ng, im = evaluation["no_grad"]["seconds_per_batch"], evaluation["inference_mode"]["seconds_per_batch"]
    lines += ["", f"Evaluation forward, same batch: no_grad {ng:.2f} s, inference_mode {im:.2f} s ({ng / im:.2f}x)."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=sorted(WORKERS))
    parser.add_argument("--lever", default="ssl-glibc")
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(WORKERS[args.worker](args)))
        return
    ceiling = run_row("ceiling", [])
    levers = lever_rows(args.steps)
    evaluation = run_row("eval", ["--steps", str(args.steps)])
    lines = report(ceiling, levers, evaluation)
    write_results("ceiling", {"ceiling": ceiling, "levers": levers, "eval": evaluation, "lever_batch": [LEVER_BATCH, LEVER_SEQ],
                              "train_mflops_per_token": train_flops_per_token(SHAPES["bert-base"], LEVER_SEQ) / 1e6}, lines)


if __name__ == "__main__":
    main()
