"""``ssl evaluate`` and ``ssl predict`` on trained models, and the Python API: the scores and answers are the
training run's own, the model directory is never changed, and raw input needs no data files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from ssl_cli.tasks import all_tasks
from tests.conftest import run_cli, tiny_task_args


def _digest(directory: Path) -> dict[str, str]:
    """Every file of ``directory`` (not in its eval-* dirs) by content."""
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file() and not p.relative_to(directory).parts[0].startswith("eval-")}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, tuple[Path, dict[str, Path]]]:
    """A tiny model per served task, with the sample data it was trained and scored on."""
    root = tmp_path_factory.mktemp("trained")
    models = {}
    for command in ("finetune-glue", "tag-pos", "finetune-qa", "pretrain-clm"):
        args = tiny_task_args(command, root / command / "data")
        out = root / command / "model"
        run_cli(*args, "--output-dir", str(out), "--set", "training.eval_strategy=no", "--max-steps", "10", check=True)
        models[command] = (out, all_tasks()[command].write_sample_data(root / command / "data"))
    return models


def _results(out: Path) -> dict:
    return json.loads((out / "all_results.json").read_text())


@pytest.mark.parametrize("command", ["finetune-glue", "tag-pos", "finetune-qa", "pretrain-clm"])
def test_evaluate_scores_as_training_did_and_leaves_the_model_alone(trained, command, tmp_path):
    model, data = trained[command]
    before = _digest(model)
    proc = run_cli("evaluate", "--model", str(model), "--validation-file", str(data["dev"]), check=True)
    evaluation = model / f"eval-{Path(data['dev']).stem}"
    metric = f"eval_{all_tasks()[command].main_metric}"
    assert _results(evaluation)[metric] == pytest.approx(_results(model)[metric]), proc.stdout
    assert _digest(model) == before  # nothing copied over, changed or deleted
    assert not (evaluation / "model.safetensors").exists() and not (evaluation / "config.json").exists()
    card = (evaluation / "README.md").read_text()
    assert card.startswith(f"# {evaluation.name}\n\nEvaluation of") and "Trained with" not in card
    other = tmp_path / "elsewhere"
    run_cli("evaluate", "--model", str(model), "--validation-file", str(data["dev"]), "--output-dir", str(other),
            "--max-eval-samples", "5", check=True)
    assert _results(other)["eval_samples"] == 5


def test_evaluate_without_data_uses_the_models_own_validation_set(trained):
    model, data = trained["finetune-glue"]
    run_cli("evaluate", "--model", str(model), "--output-dir", str(model.parent / "own"), check=True)
    assert _results(model.parent / "own")["eval_samples"] == _results(model)["eval_samples"]


def test_evaluate_refuses_what_is_not_a_model(tmp_path):
    proc = run_cli("evaluate", "--model", str(tmp_path))
    assert proc.returncode == 2 and "no config.json" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_predict_classification_gives_the_evaluations_labels(trained, tmp_path):
    model, _ = trained["finetune-glue"]
    evaluated = _jsonl(model / "eval_predictions.jsonl")
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"text": row["text"]}) + "\n" for row in evaluated))
    proc = run_cli("predict", "--model", str(model), "--input", str(source), "--output", str(tmp_path / "out.jsonl"),
                   "--batch-size", "7", check=True)
    predicted = _jsonl(tmp_path / "out.jsonl")
    assert [p["label"] for p in predicted] == [e["prediction"] for e in evaluated]
    assert all(p["score"] == pytest.approx(e["probabilities"][e["prediction"]], abs=1e-4)
               for p, e in zip(predicted, evaluated, strict=True))
    assert f"predicted {len(evaluated)} rows" in proc.stderr and "rows/s" in proc.stderr


def test_predict_tags_raw_sentences_and_writes_conllu(trained, tmp_path):
    model, _ = trained["tag-pos"]
    evaluated = _jsonl(model / "eval_predictions.jsonl")
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"text": " ".join(row["tokens"])}) + "\n" for row in evaluated[:10]))
    run_cli("predict", "--model", str(model), "--input", str(source), "--output", str(tmp_path / "out.jsonl"),
            check=True)
    predicted = _jsonl(tmp_path / "out.jsonl")
    assert [p["tokens"] for p in predicted] == [e["tokens"] for e in evaluated[:10]]  # words split on whitespace
    assert [p["tags"] for p in predicted] == [e["predictions"] for e in evaluated[:10]]
    run_cli("predict", "--model", str(model), "--input", str(source), "--output", str(tmp_path / "out.conllu"),
            check=True)
    lines = (tmp_path / "out.conllu").read_text(encoding="utf-8").splitlines()
    words = [line.split("\t") for line in lines if line and not line.startswith("#")]
    assert len(words) == sum(len(e["tokens"]) for e in evaluated[:10]) and all(len(w) == 10 for w in words)
    assert [w[3] for w in words] == [t for e in evaluated[:10] for t in e["predictions"]]


def test_predict_tags_every_word_of_a_sentence_longer_than_the_window(trained, tmp_path):
    from ssl_cli.prediction import run_prediction

    model, _ = trained["tag-pos"]
    words = ["the", "cat", "sat", "on", "a", "mat"] * 60  # several times the tiny recipe's 64 tokens
    rows = [{"tokens": words}, {"tokens": []}, {"text": "   "}]
    (long, empty, blank), _ = run_prediction(model, all_tasks()["tag-pos"], rows, 2, None)
    labels = set(json.loads((model / "config.json").read_text())["id2label"].values())
    assert len(long["tags"]) == len(words) and set(long["tags"]) <= labels
    assert "O" not in labels  # UPOS: a word the windows missed would show as "O"
    assert empty["tags"] == [] and blank == {"text": "   ", "tokens": [], "tags": []}


def test_predict_splits_chinese_sentences_into_words(trained, tmp_path):
    model, _ = trained["tag-pos"]
    source = tmp_path / "in.txt"
    source.write_text("我们今天去北京\n", encoding="utf-8")
    proc = run_cli("predict", "--model", str(model), "--input", str(source), check=True)
    [row] = [json.loads(line) for line in proc.stdout.splitlines()]
    assert "".join(row["tokens"]) == "我们今天去北京" and 1 < len(row["tokens"]) < 7 and len(row["tags"]) == len(row["tokens"])


def test_predict_answers_as_evaluation_did(trained, tmp_path):
    model, data = trained["finetune-qa"]
    evaluated = json.loads((model / "eval_predictions.json").read_text())
    dev = json.loads(Path(data["dev"]).read_text())
    rows = [{"id": qa["id"], "question": qa["question"], "context": paragraph["context"]}
            for article in dev["data"] for paragraph in article["paragraphs"] for qa in paragraph["qas"]]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    run_cli("predict", "--model", str(model), "--input", str(source), "--output", str(tmp_path / "out.jsonl"),
            check=True)
    predicted = _jsonl(tmp_path / "out.jsonl")
    assert {p["id"]: p["answer"] for p in predicted} == {r["id"]: evaluated[r["id"]] for r in rows}
    assert all(p["context"][p["start"]:p["end"]] == p["answer"] for p in predicted)


@pytest.mark.parametrize(("content", "expected"), [
    ("not json\n", "line 1 is not JSON"), ("[1, 2]\n", "line 1 is not a JSON object"), ("", "is empty"),
    ('{"txt": "a"}\n', 'row 1 has no text'), ('{"text": 5}\n', "its text is int 5, not a string"),
])
def test_predict_bad_input_is_one_line(trained, tmp_path, content, expected):
    model, _ = trained["finetune-glue"]
    source = tmp_path / "in.jsonl"
    source.write_text(content)
    proc = run_cli("predict", "--model", str(model), "--input", str(source))
    assert proc.returncode == 2 and expected in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_predict_output_that_cannot_be_a_file_is_one_line(trained, tmp_path):
    model, _ = trained["finetune-glue"]
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "a"}\n')
    for output, expected in ((tmp_path, "is a directory"), (source / "out.jsonl", "is a file, not a directory")):
        proc = run_cli("predict", "--model", str(model), "--input", str(source), "--output", str(output))
        assert proc.returncode == 2 and expected in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert source.read_text() == '{"text": "a"}\n'


def test_python_api_twice_in_one_process(tmp_path):
    """finetune, evaluate and predict as a notebook calls them, twice over in one process."""
    from ssl_cli import evaluate, finetune, predict
    from ssl_cli.tasks.glue.data import write_task

    files = write_task("sentiment", tmp_path / "data", 300, 40)
    runs = [finetune("finetune-glue", recipe="recipes/glue/tiny-en-offline.yaml", train_file=str(files["train"]),
                     validation_file=str(files["dev"]), output_dir=str(tmp_path / f"run{i}"),
                     set={"training.seed": 40 + i}) for i in range(2)]
    assert [r.output_dir for r in runs] == [tmp_path / "run0", tmp_path / "run1"]
    assert all(r.metrics["eval_samples"] == 40 and "eval_accuracy" in r.metrics for r in runs)
    recipe = {"model": {"name_or_path": "scratch:bert-tiny", "scratch_vocab_size": 500},
              "training": {"num_train_epochs": 1, "report_to": ["none"], "learning_rate": 1e-3}}
    third = finetune("finetune-glue", recipe=recipe, train_file=str(files["train"]),
                     validation_file=str(files["dev"]), output_dir=str(tmp_path / "run2"))
    assert third.metrics["epoch"] == 1
    scored = evaluate(runs[0].output_dir, validation_file=str(files["dev"]))
    assert scored.metrics["eval_accuracy"] == pytest.approx(runs[0].metrics["eval_accuracy"])
    assert scored.output_dir == runs[0].output_dir / "eval-dev"
    labels = predict(runs[0].output_dir, [{"text": "a b c"}, {"text": "d e"}])
    assert [set(r) for r in labels] == [{"text", "label", "score"}] * 2


def test_predict_refuses_a_task_it_does_not_serve(trained, tmp_path):
    model, _ = trained["pretrain-clm"]
    (tmp_path / "in.jsonl").write_text('{"text": "a"}\n')
    proc = run_cli("predict", "--model", str(model), "--input", str(tmp_path / "in.jsonl"))
    assert proc.returncode == 2 and "ssl predict does not serve pretrain-clm models" in proc.stderr


def test_python_api_errors_are_user_errors():
    from ssl_cli import finetune
    from ssl_cli.errors import UserError

    with pytest.raises(UserError, match="did you mean 'learning_rate'"):
        finetune("finetune-glue", lerning_rate=1e-4)
    with pytest.raises(UserError, match="did you mean 'finetune-glue'"):
        finetune("finetune-glu")
