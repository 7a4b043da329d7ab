"""How cost grows: finetune-qa time and memory at 1x, 2x, 4x the data and at max_seq_length 128/256/384/512.

MiniLM on SQuAD v1.1 dev part 1 (the first N questions as training data, a
fixed 64 for evaluation), 1 epoch, batch 12, ssl's defaults; ``doc_stride`` is
a third of ``max_seq_length`` (128 at 384, as run_qa.py), since a stride of
128 does not fit a window of 128. Each row is a fresh process.

Per row: wall time (process start to results), training time, windows,
real tokens, time per 1,000 real training tokens, and peak RSS. Linear
growth keeps the per-token time flat; the table's last columns show it
against the 1x / 384 row.

Results: benchmarks/results/scaling.json and .md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench_ceiling import SHAPES, train_flops_per_token
from common import SHARED_DATA, run_ssl, run_worker, start, write_results

DATA = SHARED_DATA / "qa" / "squad_v1.1_dev_part1.json"
BASE_QUESTIONS = 300
ROWS = {f"{scale}x data, seq 384": (scale * BASE_QUESTIONS, 384) for scale in (1, 2, 4)}
ROWS.update({f"1x data, seq {seq}": (BASE_QUESTIONS, seq) for seq in (128, 256, 512)})


def worker(args: argparse.Namespace) -> dict:
    out = Path(args.work) / f"run-{args.questions}-{args.seq}"
    argv = ["finetune-qa", "--model", args.model, "--train-file", str(DATA), "--validation-file", str(DATA),
            "--max-train-samples", str(args.questions), "--max-eval-samples", "64", "--max-seq-length", str(args.seq),
            "--doc-stride", str(args.seq // 3), "--per-device-train-batch-size", "12", "--num-train-epochs", "1",
            "--output-dir", str(out), "--overwrite", "--set", "training.eval_strategy=no", "--set",
            "training.save_strategy=no", "--set", "training.report_to=[none]", "--seed", "42"]
    results, wall = run_ssl(argv, out)
    return {"wall_s": wall, "train_runtime_s": results["train_runtime"], "windows": results["train_features"],
            "train_tokens": results["train_tokens_per_second"] * results["train_runtime"],
            "tokens_per_second": results["train_tokens_per_second"],
            "mean_window_tokens": results["train_tokens_per_second"] / results["train_samples_per_second"],
            "train_peak_rss_mb": results["train_peak_rss_mb"], "f1": results.get("eval_f1")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("--worker", "--model", "--work"):
        parser.add_argument(name)
    parser.add_argument("--questions", type=int)
    parser.add_argument("--seq", type=int)
    args = parser.parse_args()
    started = start(args, {"ssl": worker}, DATA, "scaling")
    if started is None:
        return
    model, work = started
    common = ["--model", str(model), "--work", str(work)]
    rows = {name: run_worker(__file__, "ssl", ["--questions", str(q), "--seq", str(s)], common)
            for name, (q, s) in ROWS.items()}
    base = rows["1x data, seq 384"]
    per_k = {name: 1000 / row["tokens_per_second"] for name, row in rows.items()}
    lines = ["# How cost grows (finetune-qa, MiniLM, SQuAD)", "",
             "| row | questions | windows | real tokens | mean tokens/window | train s | wall s | s per 1k tokens | "
             "vs 1x/384 | FLOPs/token vs 1x/384 | peak RSS MB |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        questions, _ = ROWS[name]
        flops = train_flops_per_token(SHAPES["MiniLM-L6-H384"], row["mean_window_tokens"])
        base_flops = train_flops_per_token(SHAPES["MiniLM-L6-H384"], base["mean_window_tokens"])
        lines.append(f"| {name} | {questions:,} | {row['windows']:,} | {row['train_tokens']:,.0f} | "
                     f"{row['mean_window_tokens']:.0f} | {row['train_runtime_s']:.1f} | {row['wall_s']:.1f} | "
                     f"{per_k[name]:.3f} | {per_k[name] / per_k['1x data, seq 384']:.2f}x | {flops / base_flops:.2f}x | "
                     f"{row['train_peak_rss_mb']:.0f} |")
    write_results("scaling", {"rows": rows}, lines)


if __name__ == "__main__":
    main()
