"""`make experiment-pretrain` (part 2): our own Chinese MLM pretraining, then fine-tuning against random weights.

1. ``ssl pretrain-mlm``: a 4-layer, 256-hidden BERT (``scratch:bert-mini``)
   with a per-character WordPiece vocabulary trained on
   ../shared/data/text/zh_mlm_corpus_simplified.txt, jieba whole-word masking,
   blocks of 128, one epoch (the first 3% of lines held out). Its held-out MLM
   loss is compared with a character-frequency model: the cross-entropy of
   the held-out tokens under the training text's unigram distribution (masked
   positions are a uniform sample of tokens, so this is what a model that
   ignores context scores).
2. Fine-tuning, the pretrained encoder against the same architecture and
   tokenizer with random weights (``--model <mlm run> --init random``):
   - UD Chinese-GSDSimp UPOS (500 sentences, split in file order 400 / 100),
     with all 400 training sentences and with 100 (few labels);
   - OCNLI (../shared/data/nli: 10,000 training pairs, the 2,950 graded dev pairs),
     with all of them and with 1,000.

Results: benchmarks/results/experiment-pretrain/zh.{json,md} and zh.png.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

from common import RESULTS, SHARED_DATA
from experiment_pretrain import plot, run

OUT = RESULTS / "experiment-pretrain"
CORPUS = SHARED_DATA / "text" / "zh_mlm_corpus_simplified.txt"
POS = SHARED_DATA / "pos" / "zh_gsdsimp-ud-dev.conllu"
OCNLI = SHARED_DATA / "nli"


def split_corpus(work: Path, held_out_share: float = 0.03) -> tuple[Path, Path]:
    lines = [line for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    cut = int(len(lines) * (1 - held_out_share))
    train, dev = work / "zh-train.txt", work / "zh-dev.txt"
    train.write_text("\n".join(lines[:cut]) + "\n", encoding="utf-8")
    dev.write_text("\n".join(lines[cut:]) + "\n", encoding="utf-8")
    return train, dev


def unigram_cross_entropy(tokenizer_dir: Path, train: Path, dev: Path) -> float:
    """Mean -log p(token) of the held-out tokens under add-one-smoothed training token frequencies."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))

    def tokens(path: Path) -> list[int]:
        lines = path.read_text(encoding="utf-8").splitlines()
        ids: list[int] = []
        for start in range(0, len(lines), 1000):
            for row in tokenizer(lines[start:start + 1000], add_special_tokens=False)["input_ids"]:
                ids.extend(row)
        return ids

    counts = Counter(tokens(train))
    total, vocab = sum(counts.values()), len(tokenizer)
    held = tokens(dev)
    return sum(-math.log((counts[t] + 1) / (total + vocab)) for t in held) / len(held)


def split_pos(work: Path, train_sentences: int) -> tuple[Path, Path]:
    """The first 400 sentences (or fewer) to train, the last 100 to evaluate: in file order, so one article's
    sentences stay together."""
    blocks = [b.strip("\n") for b in POS.read_text(encoding="utf-8").split("\n\n") if b.strip()]
    train, dev = work / f"pos-train-{train_sentences}.conllu", work / "pos-dev.conllu"
    train.write_text("\n\n".join(blocks[:400][:train_sentences]) + "\n\n", encoding="utf-8")
    dev.write_text("\n\n".join(blocks[400:]) + "\n\n", encoding="utf-8")
    return train, dev


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mlm-epochs", type=float, default=1.0)
    parser.add_argument("--mlm-run", help="reuse this finished pretrain-mlm output instead of training one")
    args = parser.parse_args()
    missing = [p for p in (CORPUS, POS, OCNLI / "ocnli_train.10k.json") if not p.exists()]
    if missing:
        print(f"experiment skipped: {missing[0]} is not there (../shared/data is needed)")
        return
    work = Path(tempfile.mkdtemp(prefix="ssl-experiment-zh-"))
    OUT.mkdir(parents=True, exist_ok=True)
    train, dev = split_corpus(work)
    mlm_out = Path(args.mlm_run) if args.mlm_run else work / "mlm"
    report: dict = {"cpu_cores": os.cpu_count()}
    if not args.mlm_run:
        print("pretrain-mlm ...", file=sys.stderr, flush=True)
        report["mlm"] = run(["pretrain-mlm", "--train-file", str(train), "--validation-file", str(dev),
                             "--max-seq-length", "128", "--per-device-train-batch-size", "32", "--learning-rate", "5e-4",
                             "--num-train-epochs", str(args.mlm_epochs), "--masking", "whole_word",
                             "--set", "model.scratch_vocab_size=8000", "--set", "training.eval_strategy=no"],
                            Path("scratch:bert-mini"), mlm_out)
    mlm_results = json.loads((mlm_out / "all_results.json").read_text())
    frequency = unigram_cross_entropy(mlm_out, train, dev)
    report["mlm_eval_loss"], report["unigram_cross_entropy"] = mlm_results["eval_loss"], frequency

    downstream = {}
    for sentences in (400, 100):
        pos_train, pos_dev = split_pos(work, sentences)
        downstream[f"UPOS, {sentences} sentences"] = (
            ["tag-pos", "--train-file", str(pos_train), "--validation-file", str(pos_dev), "--max-seq-length", "128",
             "--per-device-train-batch-size", "16", "--learning-rate", "1e-4", "--num-train-epochs", "10",
             "--eval-steps", str(max(5, sentences // 16))], "eval_accuracy")
    for pairs in (10000, 1000):
        downstream[f"OCNLI, {pairs} pairs"] = (
            ["nli", "--train-file", str(OCNLI / "ocnli_train.10k.json"), "--validation-file", str(OCNLI / "ocnli_dev.json"),
             "--max-train-samples", str(pairs), "--max-seq-length", "128", "--per-device-train-batch-size", "32",
             "--learning-rate", "1e-4", "--num-train-epochs", "3", "--eval-steps", str(max(10, pairs // 160))],
            "eval_accuracy")
    lines = ["# Chinese: our MLM pretraining, then fine-tuning vs random initialisation", "",
             f"`scratch:bert-mini` (4 layers, 256 hidden), per-character WordPiece (8,000), jieba whole-word masking, "
             f"{args.mlm_epochs:g} epoch(s) of {CORPUS.name} (3% of lines held out); {os.cpu_count()} CPU cores.", "",
             f"- held-out MLM loss: **{mlm_results['eval_loss']:.3f}** (perplexity {mlm_results['perplexity']:.1f}, "
             f"masked-token accuracy {mlm_results['eval_accuracy']:.3f});",
             f"- character-frequency model on the same held-out tokens: **{frequency:.3f}**;",
             f"- trained tokens: {mlm_results['train_tokens_per_second'] * mlm_results['train_runtime']:,.0f} at "
             f"{mlm_results['train_tokens_per_second']:,.0f} tokens/s ({mlm_results['train_runtime'] / 60:.1f} min).", "",
             "| task | metric | pretrained (ours) | random | difference |", "|---|---|---|---|---|"]
    report["tasks"] = {}
    for name, (argv, metric) in downstream.items():
        rows = {}
        for init in ("pretrained", "random"):
            print(f"{name}: {init} ...", file=sys.stderr, flush=True)
            extra = ["--init", "random"] if init == "random" else []
            rows[init] = run([*argv, *extra], mlm_out, work / f"{name.replace(' ', '_').replace(',', '')}-{init}")
        final = {init: row["results"][metric] for init, row in rows.items()}
        report["tasks"][name] = {"argv": argv, "metric": metric, "rows": rows}
        lines.append(f"| {name} | {metric.removeprefix('eval_')} | {final['pretrained']:.4f} | {final['random']:.4f} | "
                     f"{final['pretrained'] - final['random']:+.4f} |")
        slug = "zh-" + "-".join(name.lower().replace(",", "").split()[:2])  # zh-upos-400, zh-ocnli-10000
        plot(slug, {"title": name, "metric": metric}, rows, model="BERT-mini pretrained here")
        (OUT / "zh.json").write_text(json.dumps(report, indent=2) + "\n")
    (OUT / "zh.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
