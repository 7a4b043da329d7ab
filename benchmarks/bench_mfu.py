"""Useful-token MFU of every subcommand at bert-base shapes, against this machine's matmul ceiling.

Each subcommand trains ``scratch:bert-base`` (``scratch:gpt2-small`` for
pretrain-clm: the same 768/3072/12-layer shapes) on real data from
../shared/data for a few optimizer steps, with evaluation and checkpoints
off, in its own process, as a user would run it (fp32, ssl's defaults:
length-grouped dynamic padding, the tuned allocator).

On a CPU with native bf16 (AMX or AVX512-BF16, ``bench_ceiling.cpu_facts``), each fine-tuning subcommand
runs again with ``--mixed-precision bf16`` and ``bf16-weights``, their MFU against the bf16 matmul ceiling of the
same run.

useful-token MFU = (real, non-padding tokens trained per second) x (training
FLOPs per token) / (the fp32 matmul ceiling at a BERT layer's shapes,
measured in the same run by bench_ceiling's worker). FLOPs per token are
6 x encoder weights + 12 x layers x hidden x (mean real sequence length), for
the attention; embeddings and task heads are not counted, so the figure is a
lower bound. The runtime includes the first (warm-up) step. Fine-tuning rows
with short examples run more steps (``steps_for``): every row trains on at
least the real tokens of 10 QA steps (about 13,700).

Results: benchmarks/results/mfu.json and .md.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

from bench_ceiling import SHAPES, run_row, train_flops_per_token
from common import SHARED_DATA, run_worker, write_results

TARGET = 0.70
BASE = SHAPES["bert-base"]
NO_EVAL = ["--set", "training.eval_strategy=no", "--set", "training.save_strategy=no",
           "--set", "training.report_to=[none]", "--max-eval-samples", "16"]


#: Mean real tokens per training example in each fine-tuning bench's data (measured by this bench).
REAL_TOKENS_PER_EXAMPLE = {"finetune-qa": 114, "finetune-glue": 12, "nli": 39, "tag-pos": 21}


def steps_for(name: str, batch: int, steps: int) -> int:
    """``steps``, or more for a subcommand with short examples, so each row trains on at least the real tokens
    of ``steps`` QA steps: the one-time first step (thread pools, allocator warm-up) then weighs the same in
    every row, and a length-grouped row draws its batches from a pool of realistic size."""
    budget = steps * 12 * REAL_TOKENS_PER_EXAMPLE["finetune-qa"]
    return max(steps, math.ceil(budget / (batch * REAL_TOKENS_PER_EXAMPLE.get(name, budget))))


def commands(steps: int) -> dict[str, list[str]]:
    """Per subcommand: the ssl arguments (data, batch, length) for a short bert-base run."""
    squad, glue, nli = SHARED_DATA / "qa" / "squad_v1.1_dev_part1.json", SHARED_DATA / "glue" / "SST-2", SHARED_DATA / "nli"
    ewt, corpus = SHARED_DATA / "pos" / "en_ewt-ud-dev.conllu", SHARED_DATA / "text" / "zh_mlm_corpus_simplified.txt"

    def budget(name: str, batch: int) -> list[str]:
        n = steps_for(name, batch, steps)
        return ["--max-steps", str(n), "--max-train-samples", str(n * batch), "--per-device-train-batch-size", str(batch)]

    common = ["--seed", "42", *NO_EVAL]
    return {
        "finetune-qa": ["finetune-qa", "--model", "scratch:bert-base", "--train-file", str(squad), "--validation-file",
                        str(squad), "--max-seq-length", "384", *budget("finetune-qa", 12), *common],
        "finetune-glue": ["finetune-glue", "--model", "scratch:bert-base", "--task", "sst2", "--train-file",
                          str(glue / "train.tsv"), "--validation-file", str(glue / "dev.tsv"), "--max-seq-length", "128",
                          *budget("finetune-glue", 32), *common],
        "nli": ["nli", "--model", "scratch:bert-base", "--train-file", str(nli / "ocnli_train.10k.json"),
                "--validation-file", str(nli / "ocnli_dev.json"), "--max-seq-length", "128", *budget("nli", 32), *common],
        "tag-pos": ["tag-pos", "--model", "scratch:bert-base", "--train-file", str(ewt), "--validation-file", str(ewt),
                    "--max-seq-length", "128", *budget("tag-pos", 32), *common],
        "pretrain-mlm": ["pretrain-mlm", "--model", "scratch:bert-base", "--train-file", str(corpus),
                         "--max-seq-length", "128", "--per-device-train-batch-size", "32", "--max-steps", str(steps),
                         *common],
        "pretrain-clm": ["pretrain-clm", "--model", "scratch:gpt2-small", "--train-file", str(corpus),
                         "--max-seq-length", "128", "--per-device-train-batch-size", "32", "--max-steps", str(steps),
                         *common],
    }


def worker(args: argparse.Namespace) -> dict:
    """One subcommand in this process; its all_results.json speed figures."""
    from common import run_ssl

    out = Path(args.work) / f"{args.command}-{args.precision}"
    argv = [*commands(args.steps)[args.command], "--mixed-precision", args.precision, "--output-dir", str(out),
            "--overwrite"]
    results, wall = run_ssl(argv, out)
    return {"train_tokens_per_second": results["train_tokens_per_second"],
            "train_samples_per_second": results["train_samples_per_second"], "train_runtime": results["train_runtime"],
            "train_steps": results["train_steps"], "wall_time": wall, "train_peak_rss_mb": results["train_peak_rss_mb"]}


def mfu_row(result: dict, ceiling_gflops: float) -> dict:
    mean_length = result["train_tokens_per_second"] / result["train_samples_per_second"]
    flops = train_flops_per_token(BASE, mean_length)
    achieved = result["train_tokens_per_second"] * flops / 1e9
    return {**result, "mean_real_length": mean_length, "train_gflops_per_second": achieved,
            "mfu": achieved / ceiling_gflops}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=["ssl"])
    parser.add_argument("--command", default="finetune-qa")
    parser.add_argument("--work")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--precision", default="no", choices=["no", "bf16", "bf16-weights"], help=argparse.SUPPRESS)
    parser.add_argument("--only", nargs="*", help="subcommands to run (default: all)")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    if not SHARED_DATA.exists():
        print(f"bench skipped: {SHARED_DATA} is not there (../shared/data is needed for the bench)")
        return
    measured = run_row("ceiling", [])
    ceiling = measured["gflops"]["bert-base"]["float32"]
    work = tempfile.mkdtemp(prefix="ssl-bench-mfu-")
    rows = {}
    for name in args.only or commands(args.steps):
        result = _run(name, args.steps, work)
        rows[name] = mfu_row(result, ceiling)
    if measured.get("cpu", {}).get("native_bf16"):  # AMX or AVX512-BF16: bf16 rows against the bf16 ceiling
        for name in [n for n in args.only or commands(args.steps) if not n.startswith("pretrain")]:
            for precision in ("bf16", "bf16-weights"):
                result = _run(name, args.steps, work, precision)
                rows[f"{name}, {precision} (MFU against the bf16 ceiling)"] = mfu_row(
                    result, measured["gflops"]["bert-base"]["bfloat16"])
    lines = [f"# Useful-token MFU at bert-base shapes (fp32, at least {args.steps} steps each)", "",
             f"fp32 matmul ceiling at a BERT layer's training GEMMs, this run: {ceiling:.1f} GFLOP/s.", "",
             "| subcommand | steps | real tokens/s | mean real length | GFLOP/s | useful-token MFU | peak RSS MB |",
             "|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['train_steps']} | {row['train_tokens_per_second']:,.0f} | {row['mean_real_length']:.0f} | "
                     f"{row['train_gflops_per_second']:.0f} | {row['mfu']:.0%} | {row['train_peak_rss_mb']:.0f} |")
    fine_tuning = [n for n in rows if not n.startswith("pretrain")]
    lines += ["", *(f"- [{'x' if rows[n]['mfu'] >= TARGET else ' '}] {n}: {rows[n]['mfu']:.0%} "
                    f"(target {TARGET:.0%} for fine-tuning)" for n in fine_tuning)]
    write_results("mfu", {"ceiling_fp32_gflops": ceiling, "steps": args.steps, "rows": rows}, lines)


def _run(name: str, steps: int, work: str, precision: str = "no") -> dict:
    return run_worker(__file__, "ssl", ["--command", name, "--precision", precision],
                      ["--work", work, "--steps", str(steps)])


if __name__ == "__main__":
    main()
