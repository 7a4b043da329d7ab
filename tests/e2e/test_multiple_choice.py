"""ssl multiple-choice end to end: SWAG rows, C3 and RACE files, Hub layouts, questions with fewer choices."""

from __future__ import annotations

import json

import pytest

from ssl_cli.errors import UserError
from ssl_cli.tasks.multiple_choice.data import as_c3, as_race, questions, write_swag_task
from ssl_cli.tasks.multiple_choice.formats import label_index
from tests.conftest import run_cli

RECIPE = ["multiple-choice", "--recipe", "recipes/multiple-choice/tiny-en-offline.yaml"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One run on SWAG rows, scored also on the same dev questions as a C3 file and as a RACE file."""
    root = tmp_path_factory.mktemp("mc")
    paths = write_swag_task(root, n_train=400, n_dev=60, seed=3)
    dev = questions(60, 3 + 1000)  # the rows write_swag_task wrote to dev.jsonl
    (root / "c3.json").write_text(json.dumps(as_c3(dev), ensure_ascii=False), encoding="utf-8")
    (root / "race.json").write_text(json.dumps(as_race(dev)), encoding="utf-8")
    out = root / "out"
    run_cli(*RECIPE, "--train-file", str(paths["train"]), "--validation-file", str(paths["dev"]),
            "--eval-data", f"{root / 'c3.json'},{root / 'race.json'}", "--output-dir", str(out), check=True)
    return root, out, json.loads((out / "all_results.json").read_text())


def test_swag_rows_train_above_chance_and_write_predictions(trained):
    _, out, results = trained
    assert results["eval_samples"] == 60
    assert results["eval_accuracy"] > 0.4, results  # chance is 1/4; the unrelated endings alone give 1/2
    lines = [json.loads(line) for line in (out / "eval_predictions.jsonl").read_text().splitlines()]
    assert len(lines) == 60 and {"idx", "prediction", "prediction_text", "label"} <= set(lines[0])
    right = sum(line["prediction"] == line["label"] for line in lines)
    assert right / 60 == pytest.approx(results["eval_accuracy"])


def test_c3_and_race_files_score_the_same_questions(trained):
    """The dev questions as a C3 file (the answer given as its text) and as a RACE passage (letters, cloze
    blanks filled with the choice) are read as 60 questions each and scored."""
    _, _, results = trained
    assert results["eval_c3_samples"] == 60 and results["eval_race_samples"] == 60
    assert 0.0 <= results["eval_c3_accuracy"] <= 1.0 and 0.0 <= results["eval_race_accuracy"] <= 1.0


def test_the_output_loads_as_a_multiple_choice_model(trained):
    import torch
    from transformers import AutoModelForMultipleChoice, AutoTokenizer

    _, out, _ = trained
    model = AutoModelForMultipleChoice.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    enc = tokenizer(["the film was superb ."] * 2, ["so i loved it .", "so i hated it ."], return_tensors="pt",
                    padding=True)
    with torch.no_grad():
        logits = model(**{k: v.unsqueeze(0) for k, v in enc.items()}).logits
    assert logits.shape == (1, 2)
    card = (out / "README.md").read_text()
    assert "pipeline_tag: multiple-choice" in card and "AutoModelForMultipleChoice.from_pretrained" in card


def test_questions_with_fewer_choices_never_get_a_padding_choice(tmp_path):
    """C3 mixes 2- to 4-choice questions: every question is padded to the most, and a padding choice is never
    predicted, whatever the model thinks of it."""
    rows = questions(40, 5)
    for row in rows[::2]:  # half the questions keep two choices: the right one and one other
        keep = sorted({row["label"], (row["label"] + 1) % 4})
        endings = [row[f"ending{i}"] for i in keep]
        row.update({"label": keep.index(row["label"])})
        for i in range(4):
            row.pop(f"ending{i}")
        row["choices"] = [f"{row['sent2']} {e}" for e in endings]
    mixed = [{"context": r["sent1"], "question": "", "choices": r.get("choices") or
              [f"{r['sent2']} {r[f'ending{i}']}" for i in range(4)], "label": r["label"]} for r in rows]
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in mixed))
    out = tmp_path / "out"
    run_cli(*RECIPE, "--train-file", str(path), "--validation-file", str(path), "--num-train-epochs", "1",
            "--output-dir", str(out), check=True)
    predictions = [json.loads(line) for line in (out / "eval_predictions.jsonl").read_text().splitlines()]
    for row, line in zip(mixed, predictions, strict=True):
        assert line["prediction"] < len(row["choices"])


def test_hub_layouts_of_race_and_c3_are_read(tmp_path):
    """RACE on the Hub (article, question, options, answer letter) and C3 on the Hub (documents, a questions
    dict of lists), saved with save_to_disk as on a machine that downloaded them."""
    import datasets

    rows = questions(30, 7)
    race = datasets.Dataset.from_list([{"example_id": str(n), "article": r["sent1"], "question": "so i _",
                                        "options": [r[f"ending{i}"] for i in range(4)], "answer": "ABCD"[r["label"]]}
                                       for n, r in enumerate(rows)])
    c3 = datasets.Dataset.from_list([{"documents": [r["sent1"]], "document_id": str(n),
                                      "questions": {"question": ["how ?"], "answer": [r[f"ending{r['label']}"]],
                                                    "choice": [[r[f"ending{i}"] for i in range(4)]]}}
                                     for n, r in enumerate(rows)])
    for name, ds in (("race", race), ("c3", c3)):
        datasets.DatasetDict({"train": ds, "validation": ds}).save_to_disk(str(tmp_path / name))
        out = tmp_path / f"{name}-out"
        run_cli(*RECIPE, "--data", str(tmp_path / name), "--max-steps", "2", "--output-dir", str(out), check=True)
        results = json.loads((out / "all_results.json").read_text())
        assert results["eval_samples"] == 30, (name, results)


@pytest.mark.parametrize(("value", "choices", "index"), [
    (2, ["a", "b", "c"], 2), ("1", ["a", "b"], 1), ("B", ["x", "y", "z"], 1), ("c", ["x", "y", "z"], 2),
    ("y", ["x", "y", "z"], 1), (1.0, ["a", "b"], 1), ("A", ["A", "B"], 0),
])
def test_a_label_is_an_index_a_letter_or_the_choice_text(value, choices, index):
    assert label_index(value, choices, "f: row 0") == index


@pytest.mark.parametrize("value", [4, "E", "nothing like it", True, None, -1])
def test_a_label_that_points_at_no_choice_is_refused(value):
    with pytest.raises(UserError, match="f: row 0"):
        label_index(value, ["a", "b", "c", "d"], "f: row 0")


def test_a_question_with_one_choice_is_one_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"context": "c", "question": "q", "choices": ["only"], "label": 0}) + "\n")
    proc = run_cli(*RECIPE, "--train-file", str(path), "--validation-file", str(path), "--output-dir",
                   str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stderr
    assert "row 0: the choices must be a list of at least 2 strings" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()


def test_named_columns_override_the_defaults(tmp_path):
    """--choices-column and --label-column name columns the defaults do not know; a misspelt one is one line
    with a hint."""
    rows = [{"story": r["sent1"], "candidates": [r[f"ending{i}"] for i in range(4)], "gold": r["label"],
             "ending0": "a decoy SWAG column"} for r in questions(40, 9)]
    path = tmp_path / "named.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    common = [*RECIPE, "--train-file", str(path), "--validation-file", str(path), "--max-steps", "2"]
    run_cli(*common, "--context-column", "story", "--choices-column", "candidates", "--output-dir",
            str(tmp_path / "out"), check=True)
    predictions = (tmp_path / "out" / "eval_predictions.jsonl").read_text().splitlines()
    assert len(predictions) == 40 and "decoy" not in predictions[0]
    proc = run_cli(*common, "--context-column", "story", "--choices-column", "candidatez", "--output-dir",
                   str(tmp_path / "bad"))
    assert proc.returncode == 2 and "no column 'candidatez'" in proc.stderr and "candidates" in proc.stderr


@pytest.mark.parametrize(("name", "body", "message"), [
    ("c3.json", '[[1, 2], [3]]', "item 0: a C3 item is a list of the passage lines, its questions and an id"),
    ("c3.json", '[[["p"], [{"question": "q", "choice": "ab", "answer": "a"}], "1"]]',
     "row 0: the choices must be a list of at least 2 strings"),
    ("race.json", '{"article": "a", "questions": ["q"], "options": [["x", "y"]], "answers": ["Z"]}',
     "row 0: label 'Z' points at choice 25, but there are 2 choices"),
    ("race.json", '{"article": "a", "questions": ["q", "r"], "options": [["x", "y"]]}',
     "RACE-style 'questions' and 'options' must be lists of one length"),
    ("empty.jsonl", "", "empty.jsonl is empty: give it at least one record"),
])
def test_a_malformed_c3_race_or_empty_file_is_one_line(tmp_path, name, body, message):
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"context": "c", "question": "q", "choices": ["a", "b"], "label": 0}) + "\n")
    proc = run_cli(*RECIPE, "--train-file", str(path), "--validation-file", str(good), "--output-dir",
                   str(tmp_path / "out"))
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()
