"""Preprocessing: QA training features, ssl's task code against run_qa.py's ``datasets.map`` pipeline.

Input: SQuAD v1.1 dev part 1 (5,696 questions; the same examples for every
row), canonicalised once and saved to disk, because ``datasets`` caches a
``map`` result next to the files of the dataset it maps: an in-memory
dataset would never cache. Every row maps a fresh copy of those files (an
empty cache), then maps the same copy again (the cached rerun, what a second
run with the same data and settings pays). Rows, each in its own process:

- ``run_qa.py``: ``prepare_train_features`` (windows of 384, stride 128,
  padded to 384: its default), ``num_proc`` None;
- ``ssl``: ``QATask.prepare_train`` (dynamic padding, a ``length`` column for
  grouping), ``num_proc`` None, and ``num_proc`` 2.

The tokenizer is MiniLM's fast (Rust) tokenizer, which already encodes a
batch on several threads; forked ``num_proc`` workers switch that off.

Results: benchmarks/results/tokenize.json and .md.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from common import SHARED_DATA, run_worker, start, write_results

DATA = SHARED_DATA / "qa" / "squad_v1.1_dev_part1.json"
MAX_LEN, STRIDE = 384, 128
ROWS = {"run_qa.py (padded, num_proc None)": ["--impl", "run_qa"],
        "ssl (num_proc None)": ["--impl", "ssl"],
        "ssl (num_proc 2)": ["--impl", "ssl", "--num-proc", "2"]}


def run_qa_features(tokenizer):
    """run_qa.py's prepare_train_features, as its default configuration runs it (pad_to_max_length)."""
    from ssl_cli.tasks.qa.task import label_windows, tokenize_windows

    def prepare_train_features(batch):
        enc, _ = tokenize_windows(tokenizer, batch["question"], batch["context"], MAX_LEN, STRIDE, padding="max_length")
        enc["start_positions"], enc["end_positions"] = label_windows(enc, batch["answers"], 1, tokenizer.cls_token_id)
        enc.pop("offset_mapping")
        enc.pop("overflow_to_sample_mapping")
        return enc

    return prepare_train_features


def worker(args: argparse.Namespace) -> dict:
    """Map a fresh copy of the saved examples twice: (first run, cached rerun) seconds, features, cache MB."""
    import datasets
    from transformers import AutoTokenizer

    copy = Path(args.work) / f"examples-{args.impl}-{args.num_proc}"
    shutil.copytree(args.saved, copy)
    examples = datasets.load_from_disk(str(copy))
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    if args.impl == "run_qa":
        function = run_qa_features(tokenizer)

        def build():
            return examples.map(function, batched=True, remove_columns=examples.column_names, num_proc=args.num_proc)
    else:
        from ssl_cli.recipe_files import resolve_recipe
        from ssl_cli.tasks import all_tasks

        task = all_tasks()["finetune-qa"]
        recipe = resolve_recipe(task.recipe_cls, task.default_recipe(), None, [], {
            "model.name_or_path": args.model, "data.max_seq_length": MAX_LEN, "qa.doc_stride": STRIDE,
            "data.preprocessing_num_workers": args.num_proc})

        def build():
            return task.prepare_train(examples, tokenizer, recipe)
    timings = []
    for _ in range(2):
        start = time.perf_counter()
        features = build()
        timings.append(time.perf_counter() - start)
    cache_mb = sum(p.stat().st_size for p in copy.glob("cache-*.arrow")) / 2**20
    tokens = sum(sum(mask) for mask in features["attention_mask"])
    return {"first_run_s": timings[0], "cached_rerun_s": timings[1], "examples": len(examples),
            "features": len(features), "examples_per_second": len(examples) / timings[0], "cache_mb": cache_mb,
            "padding_fraction": 1 - tokens / sum(len(ids) for ids in features["input_ids"])}


def save_examples(work: Path) -> Path:
    from ssl_cli.data.files import load_data_file
    from ssl_cli.tasks.qa.task import TASK, canonicalise

    saved = work / "examples"
    canonicalise(load_data_file(str(DATA), read_document=TASK.read_document), str(DATA)).save_to_disk(str(saved))
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("--worker", "--model", "--work", "--saved", "--impl"):
        parser.add_argument(name)
    parser.add_argument("--num-proc", type=int)
    args = parser.parse_args()
    started = start(args, {"map": worker}, DATA, "tokenize")
    if started is None:
        return
    model, work = started
    common = ["--model", str(model), "--work", str(work), "--saved", str(save_examples(work))]
    rows = {name: run_worker(__file__, "map", extra, common) for name, extra in ROWS.items()}
    base = rows["run_qa.py (padded, num_proc None)"]
    lines = [f"# Preprocessing: QA training features ({base['examples']:,} SQuAD questions, MiniLM tokenizer)", "",
             "| pipeline | first run s | examples/s | vs run_qa.py | cached rerun s | features | padding | cache MB |",
             "|---|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['first_run_s']:.2f} | {row['examples_per_second']:,.0f} | "
                     f"{base['first_run_s'] / row['first_run_s']:.2f}x | {row['cached_rerun_s']:.2f} | "
                     f"{row['features']:,} | {row['padding_fraction']:.0%} | {row['cache_mb']:.0f} |")
    write_results("tokenize", {"rows": rows}, lines)


if __name__ == "__main__":
    main()
