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
import time

import numpy as np
from common import write_results
from datasets import Dataset

from ssl_cli.tasks.qa.task import predict_answers

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


def hf_utils_qa(examples, features, all_start_logits, all_end_logits, n_best_size=20, max_answer_length=30):
    """utils_qa.postprocess_qa_predictions (SQuAD v1 branch), line for line less logging, tqdm and file writing.

    ``examples`` and ``features`` are whatever run_qa.py hands it: ``datasets``
    Datasets (features carry ``example_id`` and ``offset_mapping``), or here
    also plain lists of dicts, the loop's best case.
    """
    example_id_to_index = {k: i for i, k in enumerate(examples["id"])}
    features_per_example = collections.defaultdict(list)
    for i, feature in enumerate(features):
        features_per_example[example_id_to_index[feature["example_id"]]].append(i)
    all_predictions = collections.OrderedDict()
    all_nbest_json = collections.OrderedDict()
    for example_index, example in enumerate(examples):
        feature_indices = features_per_example[example_index]
        prelim_predictions = []
        for feature_index in feature_indices:
            start_logits = all_start_logits[feature_index]
            end_logits = all_end_logits[feature_index]
            offset_mapping = features[feature_index]["offset_mapping"]
            token_is_max_context = features[feature_index].get("token_is_max_context", None)
            start_indexes = np.argsort(start_logits)[-1 : -n_best_size - 1 : -1].tolist()
            end_indexes = np.argsort(end_logits)[-1 : -n_best_size - 1 : -1].tolist()
            for start_index in start_indexes:
                for end_index in end_indexes:
                    if (start_index >= len(offset_mapping) or end_index >= len(offset_mapping)
                            or offset_mapping[start_index] is None or len(offset_mapping[start_index]) < 2
                            or offset_mapping[end_index] is None or len(offset_mapping[end_index]) < 2):
                        continue
                    if end_index < start_index or end_index - start_index + 1 > max_answer_length:
                        continue
                    if token_is_max_context is not None and not token_is_max_context.get(str(start_index), False):
                        continue
                    prelim_predictions.append({
                        "offsets": (offset_mapping[start_index][0], offset_mapping[end_index][1]),
                        "score": start_logits[start_index] + end_logits[end_index],
                        "start_logit": start_logits[start_index],
                        "end_logit": end_logits[end_index],
                    })
        predictions = sorted(prelim_predictions, key=lambda x: x["score"], reverse=True)[:n_best_size]
        context = example["context"]
        for pred in predictions:
            offsets = pred.pop("offsets")
            pred["text"] = context[offsets[0] : offsets[1]]
        if len(predictions) == 0 or (len(predictions) == 1 and predictions[0]["text"] == ""):
            predictions.insert(0, {"text": "empty", "start_logit": 0.0, "end_logit": 0.0, "score": 0.0})
        scores = np.array([pred.pop("score") for pred in predictions])
        exp_scores = np.exp(scores - np.max(scores))
        probs = exp_scores / exp_scores.sum()
        for prob, pred in zip(probs, predictions, strict=True):
            pred["probability"] = prob
        all_predictions[example["id"]] = predictions[0]["text"]
        all_nbest_json[example["id"]] = [
            {k: (float(v) if isinstance(v, (np.float16, np.float32, np.float64)) else v) for k, v in pred.items()}
            for pred in predictions
        ]
    return all_predictions


def containers(ids, contexts, owners, offsets):
    """The same windows three ways: run_qa.py's Datasets, plain lists, and ssl's eval features."""
    windows = len(owners)
    model_inputs = {"input_ids": [[0] * SEQ] * windows, "token_type_ids": [[0] * SEQ] * windows,
                    "attention_mask": [[1] * SEQ] * windows}
    examples = Dataset.from_dict({"id": ids, "context": contexts})
    example_ids = [ids[o] for o in owners]
    hf_features = Dataset.from_dict({**model_inputs, "offset_mapping": offsets, "example_id": example_ids})
    hf_features.set_format(type=None, columns=list(hf_features.features))  # as run_qa.py before post-processing
    listed_examples = [{"id": i, "context": c} for i, c in zip(ids, contexts, strict=True)]
    listed_features = [{"example_id": e, "offset_mapping": o} for e, o in zip(example_ids, offsets, strict=True)]
    ssl_features = Dataset.from_dict({**model_inputs, "example_index": owners.tolist(), "offset_mapping": offsets,
                                      "length": [SEQ] * windows, "feature_index": list(range(windows))})
    return (examples, hf_features), (_ListDataset(listed_examples, "id"), listed_features), (examples, ssl_features)


class _ListDataset(list):
    """A list of example dicts that also answers ``examples["id"]`` as a Dataset does."""

    def __init__(self, rows, *columns):
        super().__init__(rows)
        self._columns = {name: [row[name] for row in rows] for name in columns}

    def __getitem__(self, key):
        return self._columns[key] if isinstance(key, str) else super().__getitem__(key)


def ssl_score_path(examples, features, start_logits, end_logits):
    """What ssl's finetune-qa scoring runs (``QATask.score`` less the metric)."""
    return predict_answers(examples, features, start_logits, end_logits)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    ids, contexts, owners, start_logits, end_logits, offsets = synthetic(args.examples, seed=0)
    hf_data, listed, ssl_data = containers(ids, contexts, owners, offsets)
    runs = {
        "utils_qa, Datasets (as run_qa.py)": lambda: hf_utils_qa(*hf_data, start_logits, end_logits),
        "utils_qa, plain lists (its best case)": lambda: hf_utils_qa(*listed, start_logits, end_logits),
        "ssl (Arrow offsets, all windows at once)": lambda: ssl_score_path(*ssl_data, start_logits, end_logits),
    }
    timings: dict[str, list[float]] = {name: [] for name in runs}
    answers = {}
    for _ in range(args.repeats):  # alternated, best of each
        for name, run in runs.items():
            t = time.perf_counter()
            answers[name] = run()
            timings[name].append(time.perf_counter() - t)
    best = {name: min(values) for name, values in timings.items()}
    windows = len(owners)
    baseline, listed_name, ours = runs
    agree = sum(answers[baseline][i] == answers[ours][i] for i in ids) / len(ids)
    speedup, speedup_lists = best[baseline] / best[ours], best[listed_name] / best[ours]
    rows = {name: {"seconds": best[name], "windows_per_second": windows / best[name]} for name in best}
    lines = [f"# QA post-processing ({args.examples} examples, {windows} windows of {SEQ}, best of {args.repeats})", "",
             "| implementation | seconds | windows/s | ssl is |", "|---|---|---|---|"]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['seconds']:.3f} | {row['windows_per_second']:,.0f} | "
                     f"{row['seconds'] / best[ours]:.1f}x faster |")
    lines += ["", f"Same answer as utils_qa for {agree:.1%} of the examples (ssl searches every valid span, utils_qa "
              "only the top-20 x top-20 pairs, so where they differ ssl's span scores at least as high).", "",
              f"- [{'x' if speedup >= 10 else ' '}] at least 10x the per-feature Python loop as run_qa.py runs it: "
              f"{speedup:.1f}x ({speedup_lists:.1f}x its best case on plain lists)"]
    write_results("postprocess", {"examples": args.examples, "windows": windows, "rows": rows, "agreement": agree,
                                  "speedup": speedup, "speedup_vs_lists": speedup_lists}, lines)


if __name__ == "__main__":
    main()
