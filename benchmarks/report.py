"""One report from every bench's results: benchmarks/RESULTS.md and benchmarks/RESULTS.json.

``make bench`` runs the benches (each writes results/<name>.json and .md)
and then this. It reads whatever results are there, so a single bench can
be rerun and the report rebuilt; a bench that has not run is listed as such.
The summary checks every target of issue #7 against the latest numbers.
"""

from __future__ import annotations

import json
from datetime import date

from bench_mfu import TARGET as MFU_TARGET
from bench_startup import TARGETS as STARTUP_TARGETS
from common import RESULTS, ROOT

BENCHES = ["ceiling", "mfu", "qa", "qa_precision", "glue", "pos", "mlm", "clm", "lora", "postprocess", "tokenize", "scaling",
           "processes", "streaming", "startup", "gpu", "gpu_qa_vs_grouped", "gpu_sst2_vs_grouped", "gpu_qa", "gpu_glue",
           "gpu_pos", "gpu_mlm", "gpu_clm"]
#: #23's useful-token MFU targets on the GPU (bf16, bert-base shapes), met by a subcommand's best row
GPU_MFU_TARGETS = {"finetune-qa": 0.50, "finetune-glue": 0.35}


def load() -> dict[str, dict]:
    return {name: json.loads((RESULTS / f"{name}.json").read_text())
            for name in BENCHES if (RESULTS / f"{name}.json").exists()}


FASTEST_TARGET = 1.2  # over the Trainer's fastest mode (the padded-default targets were 2-2.5x)


def _ratio(rows: dict, ours: str, baseline: str, speed: str = "train_samples_per_second") -> float:
    return rows[ours][speed] / rows[baseline][speed]


def _finetune_targets(results: dict) -> list[tuple[str, str, bool | None]]:
    """Speed-up over Trainer, padded and dynamic, per fine-tuning command."""
    out = []
    rows_of: dict[str, tuple[dict, str, float]] = {}
    if "qa" in results:
        rows_of["finetune-qa (SQuAD)"] = (results["qa"]["rows"], "ssl_fp32", 2.5)
    for task, data in results.get("glue", {}).get("tasks", {}).items():
        rows_of["nli (OCNLI)" if task == "ocnli" else f"finetune-glue ({task})"] = (data["rows"], "ssl", 2.0)
    if "pos" in results:
        rows_of["tag-pos (EWT)"] = (results["pos"]["rows"], "ssl", 2.0)
    for name, (rows, ours, target) in rows_of.items():
        padded, dynamic = _ratio(rows, ours, "trainer_padded"), _ratio(rows, ours, "trainer_dynamic")
        if "trainer_grouped" in rows:  # the headline: the Trainer's fastest mode, dynamic padding + grouping
            grouped = _ratio(rows, ours, "trainer_grouped")
            out.append((f"{name} >= {FASTEST_TARGET}x Trainer (dynamic + group_by_length)",
                        f"{grouped:.2f}x grouped, {dynamic:.2f}x dynamic, {padded:.2f}x padded",
                        grouped >= FASTEST_TARGET))
            continue
        out.append((f"{name} >= {target}x Trainer (padded default; rerun for the group_by_length row)",
                    f"{padded:.2f}x padded, {dynamic:.2f}x dynamic", padded >= target))
    for name in ("mlm", "clm"):
        if name in results:
            ratio = _ratio(results[name]["rows"], "ssl", "trainer", speed="train_tokens_per_second")
            out.append((f"pretrain-{name} >= 1.3x Trainer", f"{ratio:.2f}x (tokens/s)", ratio >= 1.3))
    return out


def _other_targets(results: dict) -> list[tuple[str, str, bool | None]]:
    out = []
    if "mfu" in results:
        for name, row in results["mfu"]["rows"].items():
            if not name.startswith("pretrain"):
                out.append((f"{name} useful-token MFU >= {MFU_TARGET:.0%} (fp32, bert-base)", f"{row['mfu']:.0%}",
                            row["mfu"] >= MFU_TARGET))
    if "postprocess" in results:
        speedup = results["postprocess"]["speedup"]
        out.append(("QA post-processing >= 10x utils_qa's loop", f"{speedup:.1f}x", speedup >= 10))
    if "processes" in results:
        rows = [row for row in results["processes"]["rows"].values() if row["processes"] > 1]
        copied = max((row["dataset_copied_mb"] for row in rows), default=None)
        out.append(("no copy of the dataset per process (2 training processes)",
                    "n/a" if copied is None else f"{copied:.1f} MB copied per process",
                    None if copied is None else copied == 0))
    if "lora" in results:
        quality = results["lora"]["quality"]
        gap = 100 * (sum(r["accuracy"] for r in quality["full"]) - sum(r["accuracy"] for r in quality["lora"])) \
            / len(quality["full"])
        out.append(("LoRA within ~1 point of full fine-tuning (SST-2, MiniLM, mean over seeds)",
                    f"{gap:.1f} points below full", gap <= 1.0))
    out += _gpu_targets(results)
    for target in results.get("qa_precision", {}).get("targets", []):  # #23's AMX check (bench_qa --only precision)
        out.append((f"finetune-qa {target['target']} (native bf16 CPU)", target["measured"], target["met"]))
    if "startup" in results:
        rows = results["startup"]["rows"]
        for name, limit in STARTUP_TARGETS.items():
            median = rows[name]["median_s"]
            out.append((f"`{name}` < {limit} s", f"{median:.2f} s (median)", median < limit))
    return out


def _gpu_targets(results: dict) -> list[tuple[str, str, bool | None]]:
    """#23 on the accelerator: each subcommand's best useful-token MFU, and MiniLM against the Trainer's best mode."""
    out = []
    rows = results.get("gpu", {}).get("rows", {})
    for command, target in GPU_MFU_TARGETS.items():
        measured = {name: row["mfu"] for name, row in rows.items()
                    if name.split(",")[0] == command and "mfu" in row}
        if measured:
            best = max(measured, key=measured.get)
            out.append((f"{command} useful-token MFU >= {target:.0%} on the GPU (bf16, bert-base; best row)",
                        f"{measured[best]:.1%} ({best})", measured[best] >= target))
    for name in ("gpu_qa_vs_grouped", "gpu_sst2_vs_grouped"):
        for target in results.get(name, {}).get("targets", []):
            out.append((f"{name.removeprefix('gpu_').removesuffix('_vs_grouped')} on the GPU: {target['target']}",
                        target["measured"], target["met"]))
    return out


def summary(results: dict) -> list[str]:
    lines = ["| target | measured | met |", "|---|---|---|"]
    for target, measured, met in _other_targets(results) + _finetune_targets(results):
        lines.append(f"| {target} | {measured} | {'yes' if met else 'no' if met is not None else 'n/a'} |")
    missing = [name for name in BENCHES if name not in results]
    if missing:
        lines += ["", "Not run yet (no results file): " + ", ".join(missing) + "."]
    return lines


def build(results: dict) -> list[str]:
    lines = ["# Benchmark results", "",
             f"Rebuilt {date.today().isoformat()} by `python benchmarks/report.py` from `benchmarks/results/` (`make "
             "bench` runs every bench, then this). Each section is its bench's latest run, and a bench can be rerun "
             "alone, so sections may come from different days and machines: each names its machine, where its "
             "results file records it. Every ratio is measured side by side in one run; what each bench compares and why is in benchmarks/README.md.",
             "", "## Targets", "", *summary(results)]
    for name in BENCHES:
        md = RESULTS / f"{name}.md"
        if name in results and md.exists():
            body = md.read_text(encoding="utf-8").strip().splitlines()
            title = body[0].lstrip("# ").strip() if body and body[0].startswith("#") else name
            if name.startswith("gpu_"):  # the same bench run where CUDA is: both sides bf16
                title = f"{title}, on the GPU (Trainer in bf16; ssl rows as named, bf16 by default there)"
            measured_on = [f"Measured on {results[name]['machine']}.", ""] if results[name].get("machine") else []
            text = "\n".join(body[1:]).strip().splitlines()
            lines += ["", f"## {title}", "", *measured_on, *(f"#{line}" if line.startswith("#") else line for line in text)]
    return lines


def main() -> None:
    results = load()
    lines = build(results)
    (ROOT / "benchmarks" / "RESULTS.md").write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    (ROOT / "benchmarks" / "RESULTS.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print("\n".join(lines[: lines.index("## Targets") + 3 + len(summary(results))]))


if __name__ == "__main__":
    main()
