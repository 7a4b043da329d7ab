"""LoRA against full fine-tuning, side by side, one process per row (``ssl finetune-glue``).

1. **Cost, at bert-base shapes**: a randomly initialised bert-base (12 x 768, MiniLM's
   vocabulary) saved as a pretrained folder, on SST-2 rows (length-grouped dynamic padding, seq
   128, batch 16, a fixed number of steps): training samples/s and peak RSS, full vs LoRA (r 8,
   auto targets, the head in full). Random weights cost what trained ones do.
2. **Quality, with a real pretrained model**: MiniLM-L6-H384 on a seeded 4,000-row SST-2 subset,
   1 epoch, batch 32, full dev: accuracy over seeds, full fine-tuning at lr 5e-5 (bench_glue's
   setting) and LoRA at lr 5e-4, LoRA's usual tenfold rate.

Results: benchmarks/results/lora.json and .md.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from bench_glue import subset_tsv
from common import SHARED_DATA, run_ssl, run_worker, start, write_results

BASE_SHAPES = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072}


def write_bert_base(minilm: Path, target: Path) -> Path:
    """bert-base's architecture with random weights, in a folder from_pretrained loads (MiniLM's tokenizer)."""
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    if not (target / "config.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(str(minilm))
        BertForMaskedLM(BertConfig(vocab_size=len(tokenizer), **BASE_SHAPES)).save_pretrained(str(target))
        tokenizer.save_pretrained(str(target))
    return target


def worker_ssl(args: argparse.Namespace) -> dict:
    out = Path(args.work) / f"ssl-{args.row}-{args.seed}"
    argv = ["finetune-glue", "--task", "sst2", "--model", args.model, "--train-file", args.train,
            "--validation-file", args.dev, "--output-dir", str(out), "--overwrite", "--max-seq-length", "128",
            "--per-device-train-batch-size", args.batch, "--learning-rate", args.lr, "--seed", str(args.seed),
            "--set", "training.eval_strategy=no", "--set", "training.save_strategy=no", "--set", "training.report_to=[none]",
            "--logging-steps", "50", *(["--max-steps", args.steps] if args.steps else ["--num-train-epochs", "1"]),
            *(["--peft", "lora"] if args.row.startswith("lora") else [])]
    results, wall = run_ssl(argv, out)
    return {"train_samples_per_second": results["train_samples_per_second"], "wall_time": wall,
            "accuracy": results["eval_accuracy"], "trainable_percent": results.get("trainable_percent", 100.0)}


def _cost_rows(script: str, base: Path, train: Path, dev: Path, work: Path) -> dict[str, dict]:
    common = ["--model", str(base), "--train", str(train), "--dev", str(dev), "--work", str(work), "--batch", "16",
              "--steps", "24"]
    return {row: run_worker(script, "ssl", ["--row", row, "--lr", "5e-5"], common) for row in ("full", "lora")}


def _quality_rows(script: str, minilm: Path, train: Path, dev: Path, work: Path, seeds: int) -> dict[str, list]:
    common = ["--model", str(minilm), "--train", str(train), "--dev", str(dev), "--work", str(work), "--batch", "32"]
    rates = {"full": "5e-5", "lora": "5e-4"}
    return {row: [run_worker(script, "ssl", ["--row", row, "--lr", rate, "--seed", str(seed)], common)
                  for seed in range(42, 42 + seeds)] for row, rate in rates.items()}


def _report(cost: dict[str, dict], quality: dict[str, list], seeds: int) -> list[str]:
    full, lora = cost["full"], cost["lora"]
    lines = ["# LoRA vs full fine-tuning (finetune-glue)", "",
             f"{os.cpu_count()} CPU cores, one process per row, side by side. Cost: random bert-base shapes on SST-2 "
             "rows, seq 128, batch 16, 24 steps. Quality: MiniLM-L6-H384 on a seeded 4,000-row SST-2 subset, "
             f"1 epoch, batch 32, full dev, seeds 42..{41 + seeds}; full at lr 5e-5, LoRA (r 8, alpha 16, auto "
             "targets, head in full) at lr 5e-4.", "",
             "| bert-base shapes | train samples/s | vs full | peak RSS (MB) | vs full | trainable |", "|---|---|---|---|---|---|"]
    for name, row in cost.items():
        lines.append(f"| {name} | {row['train_samples_per_second']:.2f} | "
                     f"{row['train_samples_per_second'] / full['train_samples_per_second']:.2f}x | "
                     f"{row['peak_rss_mb']:.0f} | {row['peak_rss_mb'] / full['peak_rss_mb']:.2f}x | "
                     f"{row['trainable_percent']:.2f}% |")
    lines += ["", "| MiniLM, SST-2 | accuracy per seed | mean | train samples/s (seed 42) |", "|---|---|---|---|"]
    for name, rows in quality.items():
        accuracies = [r["accuracy"] for r in rows]
        lines.append(f"| {name} | {', '.join(f'{a:.3f}' for a in accuracies)} | {sum(accuracies) / len(accuracies):.3f} | "
                     f"{rows[0]['train_samples_per_second']:.1f} |")
    gap = (sum(r["accuracy"] for r in quality["full"]) - sum(r["accuracy"] for r in quality["lora"])) / seeds
    lines += ["", f"LoRA at bert-base shapes: {lora['train_samples_per_second'] / full['train_samples_per_second']:.2f}x "
              f"the samples/s and {lora['peak_rss_mb'] / full['peak_rss_mb']:.2f}x the peak RSS of full fine-tuning; "
              f"mean accuracy {100 * gap:.1f} points below full on SST-2 (target: within ~1)."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("--worker", "--model", "--train", "--dev", "--work", "--row", "--lr", "--batch", "--steps"):
        parser.add_argument(name)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--seeds", type=int, default=3, help="seeds for the accuracy comparison")
    args = parser.parse_args()
    started = start(args, {"ssl": worker_ssl}, SHARED_DATA / "glue", "lora")
    if started is None:
        return
    minilm, work = started
    train, dev = subset_tsv("sst2", 4000, work)
    script = str(Path(__file__).resolve())
    cost = _cost_rows(script, write_bert_base(minilm, work / "bert-base-random"), train, dev, work)
    quality = _quality_rows(script, minilm, train, dev, work, args.seeds)
    write_results("lora", {"cost": cost, "quality": quality}, _report(cost, quality, args.seeds))


if __name__ == "__main__":
    main()
