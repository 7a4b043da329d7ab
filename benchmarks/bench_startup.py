"""Start-up: wall time of ``ssl --help`` and ``ssl <cmd> --dry-run``, each a fresh process, as a user types them.

Also the import time of the CLI module alone (``python -X importtime``'s
top entries are what to cut when the figure regresses). Best and median of
``--repeats`` runs, alternated.

Results: benchmarks/results/startup.json and .md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, write_results

TARGETS = {"ssl --help": 0.3, "ssl finetune-qa --dry-run": 2.0}


def ssl_executable() -> list[str]:
    """The installed ``ssl`` console script next to this Python, else ``python -m ssl_cli``."""
    script = Path(sys.executable).with_name("ssl")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ssl_cli"]


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, capture_output=True, check=True,
                   env={**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "100"})
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    ssl = ssl_executable()
    runs = {
        "python (interpreter alone)": [sys.executable, "-c", "pass"],
        "import ssl_cli.cli": [sys.executable, "-c", "import ssl_cli.cli"],
        "ssl --help": [*ssl, "--help"],
        "ssl finetune-qa --help": [*ssl, "finetune-qa", "--help"],
        "ssl finetune-qa --dry-run": [*ssl, "finetune-qa", "--dry-run"],
    }
    for command in runs.values():  # warm the page cache and .pyc files
        timed(command)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, command in runs.items():
            times[name].append(timed(command))
    rows = {name: {"best_s": min(t), "median_s": statistics.median(t)} for name, t in times.items()}
    lines = [f"# Start-up (fresh process each, {args.repeats} runs alternated)", "",
             "| command | best s | median s | target |", "|---|---|---|---|"]
    for name, row in rows.items():
        target = f"< {TARGETS[name]} s" if name in TARGETS else ""
        lines.append(f"| {name} | {row['best_s']:.3f} | {row['median_s']:.3f} | {target} |")
    lines += [""] + [f"- [{'x' if rows[name]['median_s'] < limit else ' '}] {name} under {limit} s (median "
                     f"{rows[name]['median_s']:.2f} s)" for name, limit in TARGETS.items()]
    write_results("startup", {"repeats": args.repeats, "rows": rows}, lines)


if __name__ == "__main__":
    main()
