"""Memory across processes: one training process against two (gloo), on one dataset, with no copy of it per process.

MiniLM finetune-glue on all of SST-2's training set (67,349 sentences), 60
optimizer steps of a global batch of 32: one process, then two processes of
16 under ``accelerate launch`` (each with one thread, as the launcher sets).
Per row: training samples/s, the largest process's peak RSS, and the
training features' memory in each process (``train_dataset_*_mb``, the
largest over the processes): ``mapped``, resident pages of the
memory-mapped Arrow cache, which live once in the OS page cache however many
processes map them; ``copied``, pages of those maps a process wrote to, its
own copy. Every process reads the same cache file, so ``copied`` is 0 and
only the model, its gradients and optimizer state are per process.

Results: benchmarks/results/processes.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, SHARED_DATA, run_worker, start, write_results

DATA = SHARED_DATA / "glue" / "SST-2"
STEPS, GLOBAL_BATCH = 60, 32


def worker(args: argparse.Namespace) -> dict:
    """One row: ssl in a child process (or two under accelerate launch); its results and the largest peak RSS."""
    out = Path(args.work) / f"run-{args.processes}"
    argv = ["finetune-glue", "--model", args.model, "--task", "sst2", "--train-file", str(DATA / "train.tsv"),
            "--validation-file", str(DATA / "dev.tsv"), "--max-eval-samples", "64", "--max-steps", str(STEPS),
            "--per-device-train-batch-size", str(GLOBAL_BATCH // args.processes), "--output-dir", str(out),
            "--overwrite", "--seed", "42", "--set", "training.eval_strategy=no", "--set", "training.save_strategy=no",
            "--set", "training.report_to=[none]"]
    launcher = [sys.executable, "-m", "ssl_cli"] if args.processes == 1 else [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(args.processes),
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "ssl_cli"]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    started = time.perf_counter()
    proc = subprocess.run([*launcher, *argv], cwd=ROOT, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    results = json.loads((out / "all_results.json").read_text())
    return {"processes": results["num_processes"], "wall_s": time.perf_counter() - started,
            "train_samples_per_second": results["train_samples_per_second"],
            "largest_process_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            "dataset_mapped_mb": results.get("train_dataset_mapped_mb"),
            "dataset_copied_mb": results.get("train_dataset_copied_mb"), "train_features": results["train_features"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("--worker", "--model", "--work"):
        parser.add_argument(name)
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args()
    started = start(args, {"ssl": worker}, DATA, "processes")
    if started is None:
        return
    model, work = started
    rows = {f"{n} process{'es' if n > 1 else ''}": run_worker(__file__, "ssl", ["--processes", str(n)],
                                                                 ["--model", str(model), "--work", str(work)])
            for n in (1, 2)}
    lines = ["# Memory across processes (finetune-glue, MiniLM, all of SST-2 train)", "",
             f"{STEPS} steps of a global batch of {GLOBAL_BATCH}; the training features' memory is per process, "
             "the largest over the processes.", "",
             "| row | features | train samples/s | largest process peak RSS MB | dataset mapped MB (shared) | "
             "dataset copied MB |", "|---|---|---|---|---|---|"]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['train_features']:,} | {row['train_samples_per_second']:.1f} | "
                     f"{row['largest_process_peak_rss_mb']:.0f} | {row['dataset_mapped_mb']:.1f} | "
                     f"{row['dataset_copied_mb']:.1f} |")
    write_results("processes", {"steps": STEPS, "global_batch": GLOBAL_BATCH, "rows": rows}, lines)


if __name__ == "__main__":
    main()
