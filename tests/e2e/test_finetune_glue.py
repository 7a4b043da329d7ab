"""ssl finetune-glue end to end on generated, learnable tasks: classification, pairs, regression, GLUE files."""

from __future__ import annotations

import csv
import json

import pytest

from ssl_cli.tasks.glue.data import colour_match, sentiment, write_table, write_task
from tests.conftest import run_cli

TINY = ["finetune-glue", "--recipe", "recipes/glue/tiny-en-offline.yaml"]


@pytest.fixture(scope="module")
def sentiment_run(tmp_path_factory):
    data = write_task("sentiment", tmp_path_factory.mktemp("sst"), n_train=1500, n_dev=200, seed=1)
    test = write_table([{"index": i, "sentence": r["sentence"]} for i, r in enumerate(sentiment(30, 77))],
                       tmp_path_factory.mktemp("sst-test") / "test.tsv")
    out = tmp_path_factory.mktemp("run") / "sst"
    run_cli(*TINY, "--task", "sst2", "--train-file", str(data["train"]), "--validation-file", str(data["dev"]),
            "--test-file", str(test), "--do-predict", "--output-dir", str(out), check=True)
    return out


def test_single_sentence_classification_learns(sentiment_run):
    results = json.loads((sentiment_run / "all_results.json").read_text())
    assert results["eval_accuracy"] > 0.9, results
    assert results["eval_samples"] == 200


def test_labels_and_pipeline(sentiment_run):
    from transformers import pipeline

    config = json.loads((sentiment_run / "config.json").read_text())
    assert config["id2label"] == {"0": "0", "1": "1"} and config["problem_type"] == "single_label_classification"
    classify = pipeline("text-classification", model=str(sentiment_run), device="cpu")
    assert classify("the film was wonderful and superb")[0]["label"] == "1"
    assert classify("the film was awful and boring")[0]["label"] == "0"


def test_predictions_and_glue_submission_file(sentiment_run):
    rows = [json.loads(line) for line in (sentiment_run / "eval_predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 200 and set(rows[0]) == {"idx", "text", "prediction", "probabilities", "label"}
    assert abs(sum(rows[0]["probabilities"].values()) - 1) < 1e-4
    with (sentiment_run / "SST-2.tsv").open() as handle:
        submission = list(csv.reader(handle, delimiter="\t"))
    assert submission[0] == ["index", "prediction"] and len(submission) == 31
    assert {row[1] for row in submission[1:]} <= {"0", "1"}


def test_pairs_with_string_labels_learn_and_drop_ungraded_rows(tmp_path):
    train = colour_match(1500, 3)
    train[0]["label"] = "-"  # no gold label, as in MNLI/SNLI/OCNLI: dropped and counted
    data = {"train": write_table(train, tmp_path / "train.jsonl"),
            "dev": write_table(colour_match(150, 4), tmp_path / "dev.jsonl")}
    out = tmp_path / "pairs"
    proc = run_cli(*TINY, "--train-file", str(data["train"]), "--validation-file", str(data["dev"]),
                   "--num-train-epochs", "6", "--output-dir", str(out), check=True)
    assert "dropped 1 row(s) without a gold label" in proc.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["label2id"] == {"contradiction": 0, "entailment": 1, "neutral": 2}  # sorted, from the data
    results = json.loads((out / "all_results.json").read_text())
    assert results["eval_accuracy"] > 0.5, results  # chance is 1/3 (bert-tiny learns neutral; see tasks/glue/data.py)


def test_regression_is_inferred_from_float_labels(tmp_path):
    data = write_task("overlap", tmp_path, n_train=1200, n_dev=150, seed=5, suffix=".csv")
    out = tmp_path / "reg"
    run_cli(*TINY, "--train-file", str(data["train"]), "--validation-file", str(data["dev"]), "--output-dir", str(out),
            check=True)
    config = json.loads((out / "config.json").read_text())
    assert config["problem_type"] == "regression" and len(config["id2label"]) == 1  # one output
    results = json.loads((out / "all_results.json").read_text())
    assert {"eval_pearson", "eval_spearmanr", "eval_mse"} <= results.keys()
    assert results["eval_pearson"] > 0.5, results


def test_cola_tsv_without_header_and_its_metric(tmp_path):
    def cola_rows(n, seed):
        return [{"source": "gj04", "label": r["label"], "original_label": "", "sentence": r["sentence"]}
                for r in sentiment(n, seed)]

    train = write_table(cola_rows(300, 1), tmp_path / "train.tsv", header=False)
    dev = write_table(cola_rows(50, 2), tmp_path / "dev.tsv", header=False)
    out = tmp_path / "cola"
    run_cli(*TINY, "--task", "cola", "--train-file", str(train), "--validation-file", str(dev), "--max-steps", "5",
            "--output-dir", str(out), check=True)
    results = json.loads((out / "all_results.json").read_text())
    assert "eval_matthews_correlation" in results and "eval_accuracy" not in results
    assert results["eval_samples"] == 50  # the first row was not eaten as a header


def test_string_labels_in_a_glue_tsv_become_ids(tmp_path):
    """RTE as distributed: a TSV whose labels are words; they must reach the model as ids, not strings."""
    names = ["entailment", "not_entailment"]
    rows = [{"index": i, "sentence1": r["sentence"], "sentence2": "it was good", "label": names[1 - r["label"]]}
            for i, r in enumerate(sentiment(64, 9))]
    train, dev = write_table(rows[:48], tmp_path / "train.tsv"), write_table(rows[48:], tmp_path / "dev.tsv")
    out = tmp_path / "rte"
    run_cli(*TINY, "--task", "rte", "--train-file", str(train), "--validation-file", str(dev), "--max-steps", "2",
            "--output-dir", str(out), check=True)
    predictions = [json.loads(line) for line in (out / "eval_predictions.jsonl").read_text().splitlines()]
    assert [p["label"] for p in predictions] == [r["label"] for r in rows[48:]]
    assert json.loads((out / "config.json").read_text())["label2id"] == {"entailment": 0, "not_entailment": 1}
