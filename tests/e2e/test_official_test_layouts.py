"""Official GLUE, CLUE and FewCLUE test files (no label) read as --test-file for --do-predict.

Each task's train/dev files are written in the column layout of its official
distribution, and its test file in the official *test* layout: GLUE's
``index`` column and text columns, CLUE's JSON lines with an ``id`` and no
label. Reading them is checked in-process for every task (the columns and the
row count that reach the model); CoLA, whose train/dev TSVs have no header but
whose test TSV has one, also runs end to end into its submission file.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from ssl_cli.tasks.glue.data import colour_match, overlap, sentiment, write_table
from tests.conftest import run_cli

N_TEST = 7


def _pairs(n: int, seed: int) -> list[dict]:
    return colour_match(n, seed)


def _binary_pairs(n: int, seed: int) -> list[dict]:
    return [{**row, "label": int(row["label"] == "entailment")} for row in colour_match(n, seed)]


def _glue_rows(task: str, n: int, seed: int, test: bool) -> list[dict]:
    """Rows with the columns of GLUE's train/dev (labelled) or test (``index`` first, no label) TSVs."""
    rows = []
    if task in ("sst2", "cola"):
        for i, r in enumerate(sentiment(n, seed)):
            rows.append({"index": i, "sentence": r["sentence"]} if test else
                        {"sentence": r["sentence"], "label": r["label"]} if task == "sst2" else
                        {"source": "gj04", "label": r["label"], "original_label": "", "sentence": r["sentence"]})
    elif task == "mrpc":
        for i, r in enumerate(_binary_pairs(n, seed)):
            ids = {"#1 ID": 100 + i, "#2 ID": 200 + i, "#1 String": r["sentence1"], "#2 String": r["sentence2"]}
            rows.append({"index": i, **ids} if test else {"Quality": r["label"], **ids})
    elif task == "qqp":
        for i, r in enumerate(_binary_pairs(n, seed)):
            rows.append({"id": i, "question1": r["sentence1"], "question2": r["sentence2"]} if test else
                        {"id": i, "qid1": 2 * i, "qid2": 2 * i + 1, "question1": r["sentence1"],
                         "question2": r["sentence2"], "is_duplicate": r["label"]})
    elif task == "stsb":
        for i, r in enumerate(overlap(n, seed)):
            row = {"index": i, "genre": "main-captions", "filename": "MSRvid", "year": "2012test", "old_index": i,
                   "source1": "none", "source2": "none", "sentence1": r["sentence1"], "sentence2": r["sentence2"]}
            rows.append(row if test else {**row, "score": r["label"]})
    elif task == "mnli":
        for i, r in enumerate(_pairs(n, seed)):
            row = {"index": i, "promptID": 1000 + i, "pairID": f"{1000 + i}e", "genre": "fiction",
                   "sentence1_binary_parse": "( x )", "sentence2_binary_parse": "( y )",
                   "sentence1_parse": "(ROOT x)", "sentence2_parse": "(ROOT y)",
                   "sentence1": r["sentence1"], "sentence2": r["sentence2"]}
            rows.append(row if test else {**row, "label1": r["label"], "gold_label": r["label"]})
    elif task == "qnli":
        for i, r in enumerate(_pairs(n, seed)):
            label = "entailment" if r["label"] == "entailment" else "not_entailment"
            row = {"index": i, "question": r["sentence2"], "sentence": r["sentence1"]}
            rows.append(row if test else {**row, "label": label})
    else:  # rte, wnli: index, sentence1, sentence2[, label]
        for i, r in enumerate(_pairs(n, seed)):
            label = ("entailment" if r["label"] == "entailment" else "not_entailment") if task == "rte" \
                else int(r["label"] == "entailment")
            row = {"index": i, "sentence1": r["sentence1"], "sentence2": r["sentence2"]}
            rows.append(row if test else {**row, "label": label})
    return rows


GLUE_TASKS = ["cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli"]


def write_glue(task: str, folder: Path) -> dict[str, Path]:
    header = task != "cola"  # CoLA's train/dev TSVs have no header; its test TSV has one
    paths = {"train": folder / "train.tsv", "dev": folder / "dev.tsv", "test": folder / "test.tsv"}
    write_table(_glue_rows(task, 40, 1, False), paths["train"], header=header)
    write_table(_glue_rows(task, 10, 2, False), paths["dev"], header=header)
    write_table(_glue_rows(task, N_TEST, 3, True), paths["test"])
    return paths


def _clue_rows(task: str, n: int, seed: int, test: bool) -> list[dict]:
    """CLUE / FewCLUE JSON-lines records: train/dev with a label, test with an ``id`` and no label."""
    rows = []
    for i, (s, p) in enumerate(zip(sentiment(n, seed), _pairs(n, seed), strict=True)):
        if task in ("afqmc", "bustm"):
            row = {"id": i, "sentence1": p["sentence1"], "sentence2": p["sentence2"]}
            label = {"label": str(int(p["label"] == "entailment"))}
        elif task in ("ocnli", "cmnli"):
            row = {"sentence1": p["sentence1"], "sentence2": p["sentence2"], "id": i}
            label = {"label": p["label"]}
        elif task in ("tnews", "tnews_fc"):
            row = {"id": i, "sentence": s["sentence"], "keywords": "影视,明星"}
            label = {"label": str(100 + s["label"]), "label_desc": ["news_story", "news_culture"][s["label"]]}
        elif task in ("iflytek", "iflytek_fc"):
            row = {"id": i, "sentence": s["sentence"]}
            label = {"label": str(s["label"]), "label_des": ["打车", "地图导航"][s["label"]]}
        elif task in ("csl", "csl_fc"):
            row = {"id": i, "abst": p["sentence1"], "keyword": p["sentence2"].split()}
            label = {"label": str(int(p["label"] == "entailment"))}
        elif task == "eprstmt":
            row = {"id": i, "sentence": s["sentence"]}
            label = {"label": ["Negative", "Positive"][s["label"]]}
        else:  # csldcp
            row = {"content": s["sentence"], "id": i}
            label = {"label": ["材料科学与工程", "作物学"][s["label"]]}
        rows.append(row if test else {**row, **label})
    return rows


CLUE_TASKS = ["afqmc", "tnews", "iflytek", "ocnli", "cmnli", "csl", "eprstmt", "bustm", "csldcp", "tnews_fc",
              "iflytek_fc", "csl_fc"]


def write_clue(task: str, folder: Path) -> dict[str, Path]:
    """CLUE names its JSON-lines files .json."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, n, seed, test in (("train", 40, 1, False), ("dev", 10, 2, False), ("test", N_TEST, 3, True)):
        paths[split] = folder / f"{split}.json"
        paths[split].write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in _clue_rows(task, n, seed, test)),
                                encoding="utf-8")
    return paths


def _splits(task: str, paths: dict[str, Path], command: str = "finetune-glue"):
    from ssl_cli.recipe_files import resolve_recipe
    from ssl_cli.tasks import all_tasks

    runner = all_tasks()[command]
    recipe = resolve_recipe(runner.recipe_cls, runner.default_recipe(), None, [], {
        "classification.task_name": task, "data.train_file": str(paths["train"]),
        "data.validation_file": str(paths["dev"]), "data.test_file": str(paths["test"]), "training.do_predict": True})
    return runner.load_splits(recipe)


def _test_set(splits):
    (test,) = [e for e in splits.evals if e.name == "test"]
    return test.examples


@pytest.mark.parametrize("task", GLUE_TASKS)
def test_glue_official_test_tsv_is_read_for_prediction(task, tmp_path):
    test = _test_set(_splits(task, write_glue(task, tmp_path / task)))
    assert len(test) == N_TEST and "label" not in test.column_names
    assert all(text.strip() for text in test["text"])
    pair = task not in ("cola", "sst2")
    assert ("text_pair" in test.column_names) == pair


@pytest.mark.parametrize("task", CLUE_TASKS)
def test_clue_and_fewclue_test_json_is_read_for_prediction(task, tmp_path):
    test = _test_set(_splits(task, write_clue(task, tmp_path / task)))
    assert len(test) == N_TEST and "label" not in test.column_names
    assert all(text.strip() for text in test["text"])
    assert test["idx"] == list(range(N_TEST))


def test_ocnli_test_json_is_read_by_nli(tmp_path):
    test = _test_set(_splits("ocnli", write_clue("ocnli", tmp_path / "ocnli"), command="nli"))
    assert len(test) == N_TEST and "text_pair" in test.column_names


@pytest.mark.slow
def test_cola_official_test_tsv_end_to_end(tmp_path):
    """The reported failure ("row 0: empty text in column 'sentence'"): CoLA trained on its headerless TSVs,
    then predicted on the official test.tsv into the leaderboard's CoLA.tsv."""
    paths = write_glue("cola", tmp_path / "CoLA")
    out = tmp_path / "out"
    run_cli("finetune-glue", "--recipe", "recipes/glue/tiny-en-offline.yaml", "--task", "cola",
            "--train-file", str(paths["train"]), "--validation-file", str(paths["dev"]), "--test-file", str(paths["test"]),
            "--do-predict", "--max-steps", "2", "--output-dir", str(out), check=True)
    with (out / "CoLA.tsv").open() as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    assert rows[0] == ["index", "prediction"] and [r[0] for r in rows[1:]] == [str(i) for i in range(N_TEST)]
    assert {r[1] for r in rows[1:]} <= {"0", "1"}
