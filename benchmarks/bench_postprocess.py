"""QA post-processing: ssl's vectorised span search against Hugging Face's per-feature Python loop.

The baseline is ``postprocess_qa_predictions`` of the example scripts'
``utils_qa.py`` (SQuAD v1 path), restated here without its logging: for every
window, the top-20 start and top-20 end logits are paired in two nested Python
loops, invalid pairs skipped, the rest collected, sorted, and the best taken.
``ssl``'s ``postprocess_predictions`` scores every valid span of every window
(not only top-20 pairs) with numpy.

Input: synthetic but shaped like DRCD dev at seq 384 / stride 128: examples
with a 1,000-2,500-character context cut into up to 3 windows of 384 tokens
(64 question tokens, the rest context, one character per token), random
logits. Both functions get the same arrays.

Results: benchmarks/results/postprocess.json and .md.
"""

from __future__ import annotations

import argparse
import collections
import json
import time

import numpy as np
from common import RESULTS

from ssl_cli.metrics.qa_postprocess import postprocess_predictions

SEQ, QUESTION = 384, 64


def synthetic(examples: int, seed: int):
    """Example ids, contexts, window -> example index, logits and offset mappings."""
    rng = np.random.default_rng(seed)
    ids, contexts, owners, offsets = [], [], [], []
    body = SEQ - QUESTION - 1
    for e in range(examples):
        length = int(rng.integers(1000, 2500))
        contexts.append("".join(rng.choice(list("abcdefghij"), size=length)))
        ids.append(str(e))
        start = 0
        for _ in range(3):  # up to 3 windows of `body` characters, overlapping by 128
            end = min(start + body, length)
            offsets.append([None] * QUESTION + [(c, c + 1) for c in range(start, end)] + [None] * (SEQ - QUESTION - (end - start)))
            owners.append(e)
            if end == length:
                break
            start = end - 128
    windows = len(owners)
    start_logits = rng.normal(size=(windows, SEQ)).astype(np.float32)
    end_logits = rng.normal(size=(windows, SEQ)).astype(np.float32)
    return ids, contexts, np.array(owners), start_logits, end_logits, offsets


def hf_utils_qa(ids, contexts, owners, start_logits, end_logits, offsets, n_best_size=20, max_answer_length=30):
    """utils_qa.postprocess_qa_predictions, SQuAD v1 branch, as the example scripts run it."""
    features_per_example = collections.defaultdict(list)
    for i, example_index in enumerate(owners):
        features_per_example[int(example_index)].append(i)
    predictions = collections.OrderedDict()
    for example_index, example_id in enumerate(ids):
        prelim = []
        for feature_index in features_per_example[example_index]:
            start, end, offset = start_logits[feature_index], end_logits[feature_index], offsets[feature_index]
            start_indexes = np.argsort(start)[-1 : -n_best_size - 1 : -1].tolist()
            end_indexes = np.argsort(end)[-1 : -n_best_size - 1 : -1].tolist()
            for s in start_indexes:
                for e in end_indexes:
                    if s >= len(offset) or e >= len(offset) or offset[s] is None or len(offset[s]) < 2 \
                            or offset[e] is None or len(offset[e]) < 2:
                        continue
                    if e < s or e - s + 1 > max_answer_length:
                        continue
                    prelim.append({"offsets": (offset[s][0], offset[e][1]), "score": start[s] + end[e]})
        best = sorted(prelim, key=lambda x: x["score"], reverse=True)[:n_best_size]
        context = contexts[example_index]
        predictions[example_id] = context[best[0]["offsets"][0]:best[0]["offsets"][1]] if best else ""
    return predictions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    data = synthetic(args.examples, seed=0)
    timings = {"hf_utils_qa": [], "ssl": []}
    for _ in range(args.repeats):  # alternated, best of each
        t = time.perf_counter()
        baseline = hf_utils_qa(*data)
        timings["hf_utils_qa"].append(time.perf_counter() - t)
        t = time.perf_counter()
        ours, _, _ = postprocess_predictions(*data)
        timings["ssl"].append(time.perf_counter() - t)
    best = {name: min(values) for name, values in timings.items()}
    windows = len(data[2])
    agree = sum(baseline[i] == ours[i] for i in data[0]) / len(data[0])
    speedup = best["hf_utils_qa"] / best["ssl"]
    rows = {name: {"seconds": best[name], "windows_per_second": windows / best[name]} for name in best}
    lines = [f"# QA post-processing ({args.examples} examples, {windows} windows of {SEQ}, best of {args.repeats})", "",
             "| implementation | seconds | windows/s | vs utils_qa |", "|---|---|---|---|"]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['seconds']:.2f} | {row['windows_per_second']:.0f} | "
                     f"{best['hf_utils_qa'] / row['seconds']:.1f}x |")
    lines += ["", f"Same answer as utils_qa for {agree:.1%} of the examples (ssl searches every valid span, utils_qa "
              "only the top-20 x top-20 pairs, so where they differ ssl's span scores at least as high).", "",
              f"- [{'x' if speedup >= 10 else ' '}] at least 10x a per-feature Python loop: {speedup:.1f}x"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "postprocess.json").write_text(json.dumps({"examples": args.examples, "windows": windows, "rows": rows,
                                                           "agreement": agree, "speedup": speedup}, indent=2) + "\n")
    (RESULTS / "postprocess.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
