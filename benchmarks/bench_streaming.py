"""`pretrain-mlm --streaming` against the cached path as the corpus grows: disk cache, peak memory, time to train.

The corpus is ../shared/data/text/zh_mlm_corpus_simplified.txt repeated 1x, 4x
and 16x (188 MB). Each row is a fresh process with an empty datasets cache, training
the same from-scratch BERT-tiny for the same number of steps on packed
128-token blocks (the scratch tokenizer is trained on the first 20,000 lines,
saved once, and shared, so both rows run the same model). The cached path
tokenizes and packs the whole corpus into Arrow files before its first step;
the stream tokenizes only the documents the steps consume.

Results: benchmarks/results/streaming.json and benchmarks/results/streaming.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import SHARED_DATA, write_results

DATA = SHARED_DATA / "text" / "zh_mlm_corpus_simplified.txt"
ROOT = Path(__file__).resolve().parents[1]


def _bytes(root: Path) -> int:
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) if root.exists() else 0


def prepare(work: Path, scales: list[int]) -> tuple[dict[int, Path], Path]:
    """The scaled corpora and a random BERT-tiny with its tokenizer (shared by every row)."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    from ssl_cli.models import train_wordpiece_tokenizer

    text = DATA.read_text(encoding="utf-8")
    corpora = {}
    for scale in scales:
        corpora[scale] = work / f"corpus-{scale}x.txt"
        corpora[scale].write_text(text * scale, encoding="utf-8")
    lines = [line for line in text.splitlines()[:20_000] if line.strip()]
    tokenizer = train_wordpiece_tokenizer(lines, 8000, 512)
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=len(tokenizer), num_hidden_layers=2, hidden_size=128,
                                       num_attention_heads=2, intermediate_size=512, pad_token_id=tokenizer.pad_token_id))
    init = work / "init"
    model.save_pretrained(init)
    tokenizer.save_pretrained(init)
    return corpora, init


def run_row(corpus: Path, init: Path, streamed: bool, steps: int, work: Path) -> dict:
    cache, out = work / "cache", work / "out"
    shutil.rmtree(cache, ignore_errors=True)
    argv = [sys.executable, "-m", "ssl_cli", "pretrain-mlm", "--model", str(init), "--train-file", str(corpus),
            "--max-steps", str(steps), "--per-device-train-batch-size", "32", "--set", "data.max_seq_length=128",
            "--set", "training.do_eval=false", "--set", "training.save_strategy=no", "--output-dir", str(out),
            "--overwrite", *(["--streaming"] if streamed else [])]
    env = {**os.environ, "HF_DATASETS_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    rss_file = work / "max_rss_kb"
    start = time.perf_counter()
    subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(rss_file), *argv], cwd=ROOT, env=env, check=True,
                   capture_output=True, text=True)
    wall = time.perf_counter() - start
    results = json.loads((out / "all_results.json").read_text())
    return {"wall_s": wall, "train_runtime_s": results["train_runtime"],
            "peak_rss_mb": int(rss_file.read_text().split()[-1]) / 1024,
            "cache_mb": _bytes(cache) / 2**20, "train_loss": results["train_loss"],
            "train_tokens_per_second": results["train_tokens_per_second"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--work", type=Path, default=Path("/tmp/ssl-bench-streaming"))
    args = parser.parse_args()
    if not DATA.is_file():
        sys.exit(f"skipped: {DATA} not found (benchmarks read ../shared/data)")
    args.work.mkdir(parents=True, exist_ok=True)
    corpora, init = prepare(args.work, args.scales)
    rows = {}
    for streamed in (True, False):
        for scale in args.scales:
            name = f"{'streamed' if streamed else 'cached'} {scale}x"
            rows[name] = {"corpus_mb": corpora[scale].stat().st_size / 2**20,
                          **run_row(corpora[scale], init, streamed, args.steps, args.work)}
            print(name, json.dumps(rows[name]), flush=True)
    lines = [f"# pretrain-mlm: streamed vs cached ({args.steps} steps of 32 x 128 tokens, BERT-tiny, 1 process)", "",
             "| row | corpus (MB) | wall (s) | training (s) | datasets cache (MB) | peak RSS (MB) |", "|---|---|---|---|---|---|"]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['corpus_mb']:.0f} | {row['wall_s']:.0f} | {row['train_runtime_s']:.0f} | "
                     f"{row['cache_mb']:.1f} | {row['peak_rss_mb']:.0f} |")
    write_results("streaming", {"steps": args.steps, "rows": rows}, lines)


if __name__ == "__main__":
    main()
