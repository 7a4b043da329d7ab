"""finetune-glue / nli data as it is distributed: MNLI's matched and mismatched sets (GLUE folder, Hub layout),
CLUE ClassLabel ids, FewCLUE folders, and what the registered names resolve to."""

from __future__ import annotations

import csv
import json

import pytest

from ssl_cli.tasks.glue.data import colour_match, sentiment, write_table
from tests.conftest import run_cli

TINY = ["finetune-glue", "--recipe", "recipes/glue/tiny-en-offline.yaml"]
NLI_LABELS = ["entailment", "neutral", "contradiction"]


def mnli_tsv_rows(n: int, seed: int, genre: str, labelled: bool = True) -> list[dict]:
    """Rows in the column layout of GLUE's MNLI TSVs (parses and annotator labels included)."""
    rows = []
    for i, row in enumerate(colour_match(n, seed)):
        record = {"index": i, "promptID": 1000 + i, "pairID": f"{1000 + i}e", "genre": genre,
                  "sentence1_binary_parse": "( x )", "sentence2_binary_parse": "( y )",
                  "sentence1_parse": "(ROOT x)", "sentence2_parse": "(ROOT y)",
                  "sentence1": row["sentence1"], "sentence2": row["sentence2"]}
        if labelled:
            record.update(label1=row["label"], gold_label=row["label"])
        rows.append(record)
    return rows


def read_submission(path) -> list[list[str]]:
    with path.open() as handle:
        return list(csv.reader(handle, delimiter="\t"))


def test_mnli_folder_as_glue_distributes_it(tmp_path):
    """train.tsv, dev_matched/dev_mismatched, test_matched/test_mismatched: both dev sets scored (matched as
    eval_*, as run_glue.py reports it), both test sets predicted into MNLI-m.tsv and MNLI-mm.tsv."""
    folder = tmp_path / "MNLI"
    write_table(mnli_tsv_rows(1200, 1, "fiction"), folder / "train.tsv")
    write_table(mnli_tsv_rows(90, 2, "fiction"), folder / "dev_matched.tsv")
    write_table(mnli_tsv_rows(70, 3, "letters"), folder / "dev_mismatched.tsv")
    write_table(mnli_tsv_rows(30, 4, "fiction", labelled=False), folder / "test_matched.tsv")
    write_table(mnli_tsv_rows(20, 5, "letters", labelled=False), folder / "test_mismatched.tsv")
    out = tmp_path / "out"
    run_cli(*TINY, "--data", str(folder), "--task", "mnli", "--do-predict", "--num-train-epochs", "5",
            "--output-dir", str(out), check=True)
    results = json.loads((out / "all_results.json").read_text())
    assert results["eval_samples"] == 90 and results["eval_mismatched_samples"] == 70, results
    assert results["predict_samples"] == 30 and results["predict_mismatched_samples"] == 20, results
    assert results["eval_accuracy"] > 0.5 and results["eval_mismatched_accuracy"] > 0.5, results  # chance 1/3
    assert json.loads((out / "config.json").read_text())["label2id"] == {n: i for i, n in enumerate(NLI_LABELS)}
    matched, mismatched = read_submission(out / "MNLI-m.tsv"), read_submission(out / "MNLI-mm.tsv")
    assert matched[0] == ["index", "prediction"] and len(matched) == 31 and len(mismatched) == 21
    assert {row[1] for row in matched[1:] + mismatched[1:]} <= set(NLI_LABELS)


def hub_style_mnli(tmp_path, n_train: int = 600):
    """What ``load_dataset("nyu-mll/glue", "mnli").save_to_disk(DIR)`` writes: ClassLabel ids, -1 on test rows."""
    import datasets

    features = datasets.Features({"premise": datasets.Value("string"), "hypothesis": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=NLI_LABELS), "idx": datasets.Value("int32")})

    def split(n: int, seed: int, labelled: bool = True) -> datasets.Dataset:
        rows = colour_match(n, seed)
        return datasets.Dataset.from_dict(
            {"premise": [r["sentence1"] for r in rows], "hypothesis": [r["sentence2"] for r in rows],
             "label": [NLI_LABELS.index(r["label"]) if labelled else -1 for r in rows], "idx": list(range(n))},
            features=features)

    saved = tmp_path / "glue-mnli"
    datasets.DatasetDict({"train": split(n_train, 1), "validation_matched": split(60, 2),
                          "validation_mismatched": split(40, 3), "test_matched": split(12, 4, False),
                          "test_mismatched": split(8, 5, False)}).save_to_disk(str(saved))
    return saved, split


@pytest.mark.parametrize("command", ["finetune-glue", "nli"])
def test_hub_layout_mnli_saved_to_disk(tmp_path, command):
    """A Hub dataset saved on a machine with the network: its split names and ClassLabel ids are understood."""
    saved, split = hub_style_mnli(tmp_path)
    out = tmp_path / "out"
    recipe = "recipes/glue/tiny-en-offline.yaml" if command == "finetune-glue" else "recipes/nli/tiny-en-offline.yaml"
    run_cli(command, "--recipe", recipe, "--data", str(saved), *(["--task", "mnli"] if command == "finetune-glue" else []),
            "--do-predict", "--max-steps", "6", "--output-dir", str(out), check=True)
    results = json.loads((out / "all_results.json").read_text())
    assert (results["eval_samples"], results["eval_mismatched_samples"]) == (60, 40), results
    assert (results["predict_samples"], results["predict_mismatched_samples"]) == (12, 8), results
    gold = [NLI_LABELS[i] for i in split(60, 2)["label"]]
    predictions = [json.loads(line) for line in (out / "eval_predictions.jsonl").read_text().splitlines()]
    assert [p["label"] for p in predictions] == gold  # ids were read back as names, in the dataset's own order


def test_clue_classlabel_ids_become_the_datasets_label_names(tmp_path):
    """CLUE TNEWS on the Hub stores ids 0..14 for the codes "100".."116" (105 and 111 unused)."""
    import datasets

    codes = [str(c) for c in range(100, 117) if c not in (105, 111)]
    rows = sentiment(300, 3)
    features = datasets.Features({"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=codes),
                                  "idx": datasets.Value("int32")})
    table = {"sentence": [r["sentence"] for r in rows], "label": [r["label"] * 3 for r in rows],  # ids 0 and 3
             "idx": list(range(300))}
    saved = tmp_path / "clue-tnews"
    full = datasets.Dataset.from_dict(table, features=features)
    datasets.DatasetDict({"train": full.select(range(250)), "validation": full.select(range(250, 300))}).save_to_disk(
        str(saved))
    out = tmp_path / "out"
    run_cli(*TINY, "--data", str(saved), "--task", "tnews", "--max-steps", "4", "--output-dir", str(out), check=True)
    config = json.loads((out / "config.json").read_text())
    assert config["label2id"] == {"100": 0, "103": 1}  # the codes, as CLUE's JSON files spell them


def test_fewclue_folder(tmp_path):
    """FewCLUE's files: train_few_all/dev_few_all are the splits, test_public is the labelled test set."""
    def eprstmt(n: int, seed: int) -> list[dict]:
        return [{"id": i, "sentence": r["sentence"], "label": ["Negative", "Positive"][r["label"]]}
                for i, r in enumerate(sentiment(n, seed))]

    folder = tmp_path / "eprstmt"
    write_table(eprstmt(20, 1), folder / "train_0.json")  # one of the five small partitions: not picked
    write_table(eprstmt(1000, 2), folder / "train_few_all.json")
    write_table(eprstmt(80, 3), folder / "dev_few_all.json")
    write_table(eprstmt(40, 4), folder / "test_public.json")
    write_table([{"id": r["id"], "sentence": r["sentence"]} for r in eprstmt(10, 5)], folder / "test.json")
    out = tmp_path / "out"
    run_cli(*TINY, "--data", str(folder), "--task", "eprstmt", "--do-predict", "--num-train-epochs", "5",
            "--output-dir", str(out), check=True)
    results = json.loads((out / "all_results.json").read_text())
    assert results["eval_samples"] == 80 and results["predict_samples"] == 40, results
    assert results["eval_accuracy"] > 0.9 and results["predict_accuracy"] > 0.9, results
    assert json.loads((out / "config.json").read_text())["label2id"] == {"Negative": 0, "Positive": 1}


@pytest.mark.parametrize(("task", "spec"), [("tnews_fc", "tnews"), ("ocnlifc", "ocnli"), ("csldcp", "csldcp"),
                                            ("MNLI", "mnli"), ("sts-b", "stsb")])
def test_task_names_and_fewclue_variants(task, spec):
    from ssl_cli.tasks.glue.task import TASK

    assert TASK.spec_named(task).name == spec


@pytest.mark.parametrize(("name", "hub_id", "config"), [
    ("glue/mnli", "nyu-mll/glue", "mnli"), ("glue/stsb", "nyu-mll/glue", "stsb"), ("clue/tnews", "clue/clue", "tnews"),
    ("clue/csl", "clue/clue", "csl")])
def test_registered_glue_and_clue_names_resolve_to_hub_sources(name, hub_id, config):
    from ssl_cli.data.registry import lookup

    source = lookup(name, "finetune-glue")
    assert (source.hub_id, source.hub_config) == (hub_id, config)


def test_registered_clue_name_offline_is_one_line(tmp_path):
    proc = run_cli(*TINY, "--data", "clue/afqmc", "--output-dir", str(tmp_path / "out"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "clue/clue" in proc.stderr and "offline" in proc.stderr
