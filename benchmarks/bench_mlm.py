"""`make bench`: ssl pretrain-mlm against a transformers.Trainer baseline set up like run_mlm.py
(``--objective clm``: ssl pretrain-clm against one set up like run_clm.py).

Text: the first lines of ../shared/data/text/zh_mlm_corpus_simplified.txt
(train) and the lines after them (eval). Both rows start from the *same*
randomly initialised checkpoint (a BERT of ``--size`` with a per-character
WordPiece vocabulary trained on the training text, saved once), pack the text
into blocks of 128 tokens and train one epoch with the same batch size,
learning rate and seed:
- ``trainer``: run_mlm.py's recipe: lines tokenised with special tokens,
  ``group_texts`` (the remainder dropped), ``DataCollatorForLanguageModeling``
  (15%, 80/10/10), Trainer with its defaults;
- ``ssl``: ``ssl pretrain-mlm --model <that checkpoint>`` with its defaults.

Throughput is trained tokens per second. Quality is the held-out MLM loss
after that one epoch (each side's own evaluation, 15% masking of the same
eval text), repeated over seeds.

With ``--objective clm`` the checkpoint is a GPT-2 of the same size with a
byte-level BPE vocabulary, the baseline is run_clm.py's recipe (lines
tokenised without special tokens, ``group_texts`` with labels, the default
collator) and ``ssl pretrain-clm`` runs with its defaults.

Results: benchmarks/results/mlm.{json,md} (clm.{json,md}).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from common import SHARED_DATA, device_results_name, run_ssl, run_worker, start, train_baseline, write_results

DATA = SHARED_DATA / "text" / "zh_mlm_corpus_simplified.txt"
BLOCK, BATCH, LR = 128, 32, 5e-4
SIZES = {"mini": {"num_hidden_layers": 4, "hidden_size": 256, "num_attention_heads": 4, "intermediate_size": 1024},
         "tiny": {"num_hidden_layers": 2, "hidden_size": 128, "num_attention_heads": 2, "intermediate_size": 512}}


def prepare(work: Path, train_lines: int, eval_lines: int, size: str, objective: str) -> tuple[Path, Path, Path]:
    """train.txt, dev.txt and the shared random checkpoint (seed 0)."""
    import torch
    from transformers import BertConfig, BertForMaskedLM, GPT2Config, GPT2LMHeadModel

    from ssl_cli.models import train_bytelevel_tokenizer, train_wordpiece_tokenizer

    lines = []
    with DATA.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                lines.append(line.strip())
            if len(lines) >= train_lines + eval_lines:
                break
    train, dev = work / "train.txt", work / "dev.txt"
    train.write_text("\n".join(lines[:train_lines]) + "\n", encoding="utf-8")
    dev.write_text("\n".join(lines[train_lines:]) + "\n", encoding="utf-8")
    torch.manual_seed(0)
    if objective == "clm":
        tokenizer = train_bytelevel_tokenizer(iter(lines[:train_lines]), 8000, 512)
        shape = SIZES[size]
        model = GPT2LMHeadModel(GPT2Config(
            vocab_size=len(tokenizer), n_positions=512, n_layer=shape["num_hidden_layers"], n_embd=shape["hidden_size"],
            n_head=shape["num_attention_heads"], n_inner=shape["intermediate_size"], bos_token_id=tokenizer.eos_token_id,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    else:
        tokenizer = train_wordpiece_tokenizer(iter(lines[:train_lines]), 8000, 512)
        model = BertForMaskedLM(BertConfig(vocab_size=len(tokenizer), max_position_embeddings=512,
                                           pad_token_id=tokenizer.pad_token_id, **SIZES[size]))
    checkpoint = work / "init"
    model.save_pretrained(checkpoint)
    tokenizer.save_pretrained(checkpoint)
    return train, dev, checkpoint


def worker_ssl(args: argparse.Namespace) -> dict:
    out = Path(args.work) / f"ssl-{args.seed}"
    argv = [f"pretrain-{args.objective}", "--model", args.model, "--train-file", args.train, "--validation-file", args.dev,
            "--output-dir", str(out), "--overwrite", "--max-seq-length", str(BLOCK),
            "--per-device-train-batch-size", str(BATCH), "--learning-rate", str(LR), "--num-train-epochs", "1",
            "--seed", str(args.seed), "--set", "training.eval_strategy=no", "--set", "training.save_strategy=no",
            "--set", "training.report_to=[none]", "--logging-steps", "50"]
    results, wall = run_ssl(argv, out)
    return {"train_tokens_per_second": results["train_tokens_per_second"], "train_samples_per_second":
            results["train_samples_per_second"], "wall_time": wall, "eval_loss": results["eval_loss"],
            "train_tokens": results["train_tokens_per_second"] * results["train_runtime"]}


def worker_trainer(args: argparse.Namespace) -> dict:
    """run_mlm.py: tokenize lines (with [CLS]/[SEP]), group_texts into BLOCK, random 15% masking in the collator.
    run_clm.py: tokenize lines, group_texts into BLOCK with labels = input_ids, the default collator."""
    import datasets
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer, DataCollatorForLanguageModeling, set_seed

    set_seed(args.seed)
    clm = args.objective == "clm"
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = (AutoModelForCausalLM if clm else AutoModelForMaskedLM).from_pretrained(args.model)

    def group_texts(examples):
        concatenated = {k: sum(examples[k], []) for k in examples}
        total = (len(concatenated["input_ids"]) // BLOCK) * BLOCK
        result = {k: [t[i : i + BLOCK] for i in range(0, total, BLOCK)] for k, t in concatenated.items()}
        if clm:
            result["labels"] = result["input_ids"].copy()
        return result

    def blocks(path: str) -> datasets.Dataset:
        raw = datasets.load_dataset("text", data_files={"data": path}, split="data")
        tokenized = raw.map(lambda b: tokenizer(b["text"], return_special_tokens_mask=not clm), batched=True,
                            remove_columns=["text"])
        return tokenized.map(group_texts, batched=True)

    train, dev = blocks(args.train), blocks(args.dev)
    collator = None if clm else DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)
    trainer, metrics, wall = train_baseline(model, tokenizer, train, padded=clm, output_dir=Path(args.work) / f"trainer-{args.seed}",
                                            batch=BATCH, eval_batch=64, learning_rate=LR, seed=args.seed,
                                            dynamic_collator=collator)
    eval_loss = trainer.evaluate(dev)["eval_loss"]
    tokens = len(train) * BLOCK
    return {"train_tokens_per_second": tokens / metrics["train_runtime"], "train_samples_per_second":
            metrics["train_samples_per_second"], "wall_time": wall, "eval_loss": eval_loss, "train_tokens": tokens}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("--worker", "--model", "--train", "--dev", "--work"):
        parser.add_argument(name)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--train-lines", type=int, default=4000)
    parser.add_argument("--eval-lines", type=int, default=300)
    parser.add_argument("--size", default="mini", choices=sorted(SIZES))
    parser.add_argument("--seeds", type=int, default=3, help="seeds for the eval-loss comparison (the first is 42)")
    parser.add_argument("--objective", default="mlm", choices=["mlm", "clm"])
    args = parser.parse_args()

    started = start(args, {"ssl": worker_ssl, "trainer": worker_trainer}, DATA, args.objective)
    if started is None:
        return
    _, work = started
    train, dev, checkpoint = prepare(work, args.train_lines, args.eval_lines, args.size, args.objective)
    script = str(Path(__file__).resolve())
    common = ["--model", str(checkpoint), "--train", str(train), "--dev", str(dev), "--work", str(work),
              "--objective", args.objective]
    rows = {name: run_worker(script, name, [], common) for name in ("trainer", "ssl")}
    losses = {name: [rows[name]["eval_loss"]] for name in rows}
    for seed in range(43, 42 + args.seeds):
        for name in rows:
            losses[name].append(run_worker(script, name, ["--seed", str(seed)], common)["eval_loss"])
    ours, base = rows["ssl"], rows["trainer"]
    mean = {name: sum(v) / len(v) for name, v in losses.items()}
    speedup = ours["train_tokens_per_second"] / base["train_tokens_per_second"]
    model = (f"GPT-2 ({args.size} shape) from one shared random checkpoint, byte-level BPE vocabulary trained on the text"
             if args.objective == "clm" else
             f"BERT-{args.size} from one shared random checkpoint, per-character WordPiece vocabulary trained on the text")
    setup = (f"{model}; "
             f"zh_mlm_corpus_simplified.txt: {args.train_lines} train / {args.eval_lines} eval lines; blocks of {BLOCK}, "
             f"1 epoch, batch {BATCH}, lr {LR}; {os.cpu_count()} CPU cores; one process per row, run side by side.")
    lines = [f"# pretrain-{args.objective} benchmark", "", setup, "",
             "| config | train tokens/s | vs trainer | tokens trained | peak RSS (MB) | eval loss (seed 42) |", "|---|---|---|---|---|---|"]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['train_tokens_per_second']:.0f} | "
                     f"{row['train_tokens_per_second'] / base['train_tokens_per_second']:.2f}x | {row['train_tokens']:.0f} | "
                     f"{row['peak_rss_mb']:.0f} | {row['eval_loss']:.3f} |")
    lines += ["", "Eval loss over seeds 42, 43, ...:", ""]
    lines += [f"- {name}: {', '.join(f'{v:.3f}' for v in values)} (mean {mean[name]:.3f})" for name, values in losses.items()]
    checks = [(f"train tokens/s >= 1.3x the run_{args.objective}.py-style Trainer", speedup >= 1.3, f"{speedup:.2f}x"),
              ("mean eval loss no worse than the baseline's (after the same tokens)", mean["ssl"] <= mean["trainer"] + 0.02,
               f"{mean['ssl']:.3f} vs {mean['trainer']:.3f}")]
    lines += ["", "Targets:", ""] + [f"- [{'x' if ok else ' '}] {name}: {value}" for name, ok, value in checks]
    write_results(device_results_name(args.objective), {"setup": setup, "rows": rows, "eval_losses": losses}, lines)


if __name__ == "__main__":
    main()
