"""Length-sorted micro-batches: the split plan, the collator, and the gradient they add up to (the whole batch's)."""

from __future__ import annotations

import itertools
import json
import random

import pytest

from ssl_cli.engine.collate import (
    CPU_PASS_OVERHEAD_TOKENS,
    MicroBatches,
    MicroBatchingCollator,
    PaddingCollator,
    cpu_pass_overhead_tokens,
    plan_microbatches,
)
from tests.conftest import run_cli, tiny_task_args


def plan_cost(lengths: list[int], runs: list[list[int]], overhead: int) -> int:
    return sum(overhead + len(run) * max(lengths[i] for i in run) for run in runs)


def cheapest_cost(lengths: list[int], overhead: int) -> int:
    """Brute force over every way to cut the sorted lengths into consecutive runs."""
    ordered = sorted(lengths)
    best = None
    for cuts in itertools.product([False, True], repeat=len(ordered) - 1):
        runs, run = [], [ordered[0]]
        for value, cut in zip(ordered[1:], cuts, strict=True):
            if cut:
                runs.append(run)
                run = []
            run.append(value)
        runs.append(run)
        cost = sum(overhead + len(r) * max(r) for r in runs)
        best = cost if best is None else min(best, cost)
    return best


@pytest.mark.parametrize("seed", range(30))
def test_the_plan_is_the_cheapest_split_and_covers_every_row_once(seed):
    rng = random.Random(seed)
    lengths = [rng.choice([rng.randint(3, 12), rng.randint(20, 90)]) for _ in range(rng.randint(2, 11))]
    overhead = rng.choice([0, 8, 64, 200])
    runs = plan_microbatches(lengths, overhead)
    assert sorted(i for run in runs for i in run) == list(range(len(lengths)))
    assert plan_cost(lengths, runs, overhead) == cheapest_cost(lengths, overhead)
    if len(runs) > 1:  # runs hold consecutive lengths: no run's rows are longer than the next run's shortest
        for shorter, longer in itertools.pairwise(runs):
            assert max(lengths[i] for i in shorter) <= min(lengths[i] for i in longer)


def test_the_plan_splits_only_when_it_pays():
    assert plan_microbatches([7] * 8, 0) == [list(range(8))], "one length: one run, in batch order"
    assert plan_microbatches([5, 90, 6, 4], 10_000) == [[0, 1, 2, 3]], "passes dearer than any padding"
    assert plan_microbatches([5, 90, 6, 4], 0) == [[3], [0], [2], [1]], "free passes: no padding at all"
    # a random batch of UD-like sentences: most short, a long tail
    lengths = [12, 9, 14, 60, 11, 10, 13, 8, 15, 12, 9, 48, 10, 11, 13, 12]
    runs = plan_microbatches(lengths, CPU_PASS_OVERHEAD_TOKENS)
    padded = sum(len(run) * max(lengths[i] for i in run) for run in runs)
    assert len(runs) >= 2 and padded < 0.5 * len(lengths) * max(lengths)


def test_small_models_weigh_a_pass_more():
    assert cpu_pass_overhead_tokens(85_000_000) == CPU_PASS_OVERHEAD_TOKENS  # bert-base
    assert cpu_pass_overhead_tokens(10_600_000) == CPU_PASS_OVERHEAD_TOKENS  # MiniLM-L6-H384
    assert cpu_pass_overhead_tokens(400_000) == 480  # BERT-tiny: Python's dispatch outweighs its arithmetic


class EpochCollator(PaddingCollator):
    epoch = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch


def test_each_micro_batch_is_padded_to_its_own_longest_row():
    rows = [{"input_ids": [1] * n, "attention_mask": [1] * n, "label": n % 2} for n in (4, 30, 5, 28, 3)]
    inner = EpochCollator(["input_ids", "attention_mask"], ["label"])
    collate = MicroBatchingCollator(inner, pass_overhead=8)
    parts = collate(rows)
    assert isinstance(parts, MicroBatches) and len(parts) == 2
    assert [tuple(p["input_ids"].shape) for p in parts] == [(3, 5), (2, 30)]
    assert [p["attention_mask"].sum(1).tolist() for p in parts] == [[3, 4, 5], [28, 30]], "shortest run first"
    assert [p["label"].tolist() for p in parts] == [[1, 0, 1], [0, 0]], "labels follow their rows"
    whole = MicroBatchingCollator(inner, pass_overhead=10_000)(rows)
    assert isinstance(whole, dict) and tuple(whole["input_ids"].shape) == (5, 30)
    assert whole["attention_mask"].sum(1).tolist() == [4, 30, 5, 28, 3], "one run keeps the batch's order"
    collate.set_epoch(3)  # per-epoch collators (MLM masks) still hear of the epoch
    assert inner.epoch == 3


def _engine(tmp_path):
    from ssl_cli.config import TrainingConfig
    from ssl_cli.engine import Engine

    return Engine(TrainingConfig(per_device_train_batch_size=8, report_to=["none"], seed=0), tmp_path)


def _gradients(model):
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


WEIGHTING = {"sequence": "rows", "token": "labelled_tokens", "mlm": "labelled_tokens", "clm": "predicted_tokens"}


@pytest.mark.parametrize("head", list(WEIGHTING))
def test_micro_batch_gradients_add_up_to_the_whole_batch(tmp_path, head):
    """Each head's loss is a mean over a different thing (rows, labelled tokens, predicted tokens): weighted by
    ``loss.loss_weights``, the parts' gradients and logged loss equal the padded whole batch's."""
    import torch
    from transformers import (
        BertConfig,
        BertForMaskedLM,
        BertForSequenceClassification,
        BertForTokenClassification,
    )

    torch.manual_seed(0)
    config = BertConfig(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_labels=3)
    model_cls = {"sequence": BertForSequenceClassification, "token": BertForTokenClassification, "mlm": BertForMaskedLM}
    if head == "clm":
        from transformers import GPT2Config, GPT2LMHeadModel

        model = GPT2LMHeadModel(GPT2Config(vocab_size=120, n_embd=32, n_layer=2, n_head=2, n_positions=64,
                                           resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0))
    else:
        model = model_cls[head](config)
    lengths = [5, 19, 6, 17, 4, 7, 18, 5]
    generator = random.Random(1)
    rows = []
    for n in lengths:
        row = {"input_ids": [generator.randrange(5, 120) for _ in range(n)], "attention_mask": [1] * n}
        if head == "sequence":
            row["labels"] = generator.randrange(3)
        elif head == "token":
            row["labels"] = [generator.choice([-100, 0, 1, 2]) for _ in range(n)]
        elif head == "mlm":
            row["labels"] = [t if generator.random() < 0.3 else -100 for t in row["input_ids"]]
        else:
            row["labels"] = list(row["input_ids"])  # the model shifts them: position t predicts token t + 1
        rows.append(row)
    sequence = ["input_ids", "attention_mask"] + ([] if head == "sequence" else ["labels"])
    padder = PaddingCollator(sequence, ["labels"] if head == "sequence" else [])
    whole, parts = padder(rows), MicroBatchingCollator(padder, pass_overhead=4)(rows)
    assert isinstance(parts, MicroBatches) and len(parts) >= 2
    engine = _engine(tmp_path)
    loss_whole = float(engine._backward(model, [whole], WEIGHTING[head]))
    expected = _gradients(model)
    model.zero_grad(set_to_none=True)
    loss_parts = float(engine._backward(model, list(parts), WEIGHTING[head]))
    got = _gradients(model)
    assert loss_parts == pytest.approx(loss_whole, rel=1e-5)
    assert expected.keys() == got.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-4, atol=1e-6, msg=name)


def _results(path) -> dict:
    return json.loads((path / "all_results.json").read_text())


def test_tag_pos_trains_the_same_with_and_without_micro_batches(tmp_path):
    """End to end: random batches (tag-pos's default) split into micro-batches train the same model (the tiny
    recipe has no dropout) while computing fewer pad tokens."""
    common = [*tiny_task_args("tag-pos", tmp_path / "data"), "--max-steps", "8", "--set", "training.pack_sequences=false"]
    run_cli(*common, "--output-dir", str(tmp_path / "split"), "--set", "training.microbatch_pass_overhead=0", check=True)
    run_cli(*common, "--output-dir", str(tmp_path / "whole"), "--set", "training.padding_microbatches=false", check=True)
    split, whole = _results(tmp_path / "split"), _results(tmp_path / "whole")
    assert split["train_passes_per_batch"] > 2 and whole["train_passes_per_batch"] == 1
    assert split["train_padding_fraction"] < 0.05 < whole["train_padding_fraction"]
    assert split["train_loss"] == pytest.approx(whole["train_loss"], rel=1e-4)
    assert split["eval_accuracy"] == pytest.approx(whole["eval_accuracy"], abs=1e-9)
    logged = [[json.loads(line)["loss"] for line in (tmp_path / name / "train_log.jsonl").read_text().splitlines()
               if '"loss"' in line] for name in ("split", "whole")]
    assert logged[0] and logged[0] == pytest.approx(logged[1], rel=1e-4)


SMAPS = """\
55d0c0a00000-55d0c0a21000 r--p 00000000 08:01 123 /usr/bin/python3.11
Rss:                 132 kB
Private_Dirty:        12 kB
7f0000000000-7f0000400000 r--s 00000000 08:01 456 /cache/glue/cache-0123.arrow
Rss:                2048 kB
Pss:                1024 kB
Private_Dirty:         0 kB
VmFlags: rd sh mr mw me ms sd
7f0000400000-7f0000500000 rw-p 00000000 08:01 457 /cache/glue/cache-0456.arrow
Rss:                1024 kB
Private_Dirty:       512 kB
7f0000500000-7f0000600000 rw-p 00000000 00:00 0
Rss:                1024 kB
Private_Dirty:      1024 kB
"""


def test_dataset_memory_counts_the_arrow_maps_only(tmp_path):
    from ssl_cli.engine import dataset_memory_mb

    smaps = tmp_path / "smaps"
    smaps.write_text(SMAPS)
    assert dataset_memory_mb(smaps) == {"mapped": 3.0, "copied": 0.5}
    assert dataset_memory_mb(tmp_path / "absent") == {}


@pytest.mark.parametrize("kind", ["lists", "numpy"])
def test_pad_rows_places_every_row_left_aligned_and_pads_the_rest(kind):
    """The one-copy padding (a boolean mask filled in row-major order) against a row-by-row build."""
    import numpy as np

    from ssl_cli.engine.collate import pad_rows

    rng = random.Random(0)
    rows = [[rng.randrange(1, 1000) for _ in range(n)] for n in (3, 0, 7, 1, 7, 2)]
    given = [np.asarray(r, dtype=np.int64) for r in rows] if kind == "numpy" else rows
    for length, pad in ((7, 0), (9, -100)):
        expected = np.full((len(rows), length), pad, dtype=np.int64)
        for i, row in enumerate(rows):
            expected[i, : len(row)] = row
        got = pad_rows(given, length, pad)
        assert got.dtype == np.int64 and got.shape == (len(rows), length)
        np.testing.assert_array_equal(got, expected)


def test_padding_collator_pads_each_column_with_its_own_value():
    collator = PaddingCollator(["input_ids", "attention_mask", "labels"], ["feature_index"], pad_token_id=3,
                               pad_to_multiple_of=4)
    batch = collator([{"input_ids": [5, 6, 7, 8, 9], "attention_mask": [1] * 5, "labels": [1, -100, 2, 2, 0], "feature_index": 0},
                      {"input_ids": [5], "attention_mask": [1], "labels": [4], "feature_index": 1}])
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9, 3, 3, 3], [5, 3, 3, 3, 3, 3, 3, 3]]
    assert batch["attention_mask"].tolist() == [[1] * 5 + [0] * 3, [1] + [0] * 7]
    assert batch["labels"].tolist() == [[1, -100, 2, 2, 0, -100, -100, -100], [4] + [-100] * 7]
    assert batch["feature_index"].tolist() == [0, 1]
