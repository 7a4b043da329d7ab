"""ssl nli end to end: canonical labels, label normalisation, several eval sets, confusion matrices."""

from __future__ import annotations

import json

from ssl_cli.tasks.glue.data import colour_match, write_table
from ssl_cli.tasks.glue.task import confusion_matrix
from tests.conftest import run_cli

CANONICAL = ["entailment", "neutral", "contradiction"]


def test_nli_trains_scores_several_sets_and_draws_confusion(tmp_path):
    train = colour_match(1500, 11)
    for row in train[:50]:
        row["label"] = row["label"].capitalize()  # "Entailment": spelling variants normalise
    train[60]["label"] = "-"
    dev = colour_match(150, 12)
    numeric = [{**row, "label": CANONICAL.index(row["label"])} for row in colour_match(90, 13)]  # 0/1/2 codes
    paths = {"train": write_table(train, tmp_path / "train.jsonl"), "dev": write_table(dev, tmp_path / "dev.jsonl"),
             "numeric": write_table(numeric, tmp_path / "numeric.jsonl")}
    out = tmp_path / "nli"
    proc = run_cli("nli", "--recipe", "recipes/nli/tiny-en-offline.yaml", "--train-file", str(paths["train"]),
                   "--validation-file", str(paths["dev"]), "--eval-data", str(paths["numeric"]), "--output-dir", str(out),
                   check=True)
    assert "dropped 1 row(s) without a gold label" in proc.stderr
    assert "confusion matrix" in proc.stderr  # the rich table
    config = json.loads((out / "config.json").read_text())
    assert [config["id2label"][str(i)] for i in range(3)] == CANONICAL
    results = json.loads((out / "all_results.json").read_text())
    assert results["eval_accuracy"] > 0.5, results  # chance is 1/3
    assert abs(results["eval_numeric_accuracy"] - results["eval_accuracy"]) < 0.15, results  # same task, numeric labels
    saved = json.loads((out / "eval_confusion_matrix.json").read_text())
    assert saved["labels"] == CANONICAL and sum(map(sum, saved["matrix"])) == 150
    diagonal = sum(saved["matrix"][i][i] for i in range(3))
    assert abs(diagonal / 150 - results["eval_accuracy"]) < 1e-9
    assert (out / "eval_confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "numeric_confusion_matrix.json").is_file()


def test_confusion_matrix_counts_gold_rows_predicted_columns():
    assert confusion_matrix([0, 0, 1, 2], [0, 1, 1, 0], 3) == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]


def test_registered_nli_dataset_offline_is_one_line(tmp_path):
    proc = run_cli("nli", "--data", "xnli/zh", "--output-dir", str(tmp_path / "x"))
    assert proc.returncode == 2 and "offline" in proc.stderr and "Traceback" not in proc.stderr
