"""`ssl finetune-qa` end to end: CLI in, files and metrics out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_cli, run_then_resume

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_run_args, demo_data):
    """One short run with an extra eval set and a test split (shared by the checks below)."""
    from ssl_cli.tasks.qa.data import write_demo_data

    simplified = write_demo_data(tmp_path_factory.mktemp("simplified"), n_train=4, n_dev=6, seed=5, simplified=True)
    out = tmp_path_factory.mktemp("run") / "qa"
    proc = run_cli(*tiny_run_args, "--output-dir", str(out), "--eval-data", str(simplified["dev"]),
                   "--test-file", str(demo_data["dev"]), "--do-predict", check=True)
    return out, proc


def test_output_dir_has_hugging_face_layout(trained):
    out, _ = trained
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "all_results.json",
                 "eval_results.json", "train_results.json", "recipe.yaml", "README.md", "train_log.jsonl",
                 "eval_predictions.json", "eval_nbest_predictions.json", "test_predictions.json"):
        assert (out / name).is_file(), name
    assert not list(out.glob("*.bin")), "weights must be safetensors only"


def test_results_have_eval_keys_and_process_count(trained):
    out, _ = trained
    results = json.loads((out / "all_results.json").read_text())
    assert results["num_processes"] == 1
    assert results["train_steps"] == 6
    assert 0 <= results["eval_f1"] <= 100 and 0 <= results["eval_exact_match"] <= results["eval_f1"] + 1e-9
    assert results["eval_samples"] == 20 * 8
    assert "eval_dev_f1" in results, "the --eval-data set gets its own metrics"
    assert "predict_samples" in results
    assert 100 < results["train_peak_rss_mb"] < 64_000  # MB: a process with torch loaded, not bytes or KiB


def test_logs_every_logging_step(trained):
    out, _ = trained
    steps = [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6]


def test_predictions_cover_every_question_and_come_from_the_context(trained, demo_data):
    out, _ = trained
    predictions = json.loads((out / "eval_predictions.json").read_text())
    dev = json.loads(demo_data["dev"].read_text())
    for article in dev["data"]:
        paragraph = article["paragraphs"][0]
        for qa in paragraph["qas"]:
            assert predictions[qa["id"]] in paragraph["context"]
    nbest = json.loads((out / "eval_nbest_predictions.json").read_text())
    first = next(iter(nbest.values()))
    assert {"text", "probability", "start_logit", "end_logit"} <= set(first[0])


def test_saved_recipe_reruns_as_a_recipe(trained):
    out, _ = trained
    saved = yaml.safe_load((out / "recipe.yaml").read_text())
    assert saved["task"] == "finetune-qa" and saved["training"]["max_steps"] == 6
    proc = run_cli("finetune-qa", "--recipe", str(out / "recipe.yaml"), "--dry-run", check=True)
    assert "max_steps: 6" in proc.stdout


def test_model_card_names_data_metrics_and_command(trained):
    out, _ = trained
    card = (out / "README.md").read_text()
    assert "pipeline_tag: question-answering" in card and "eval_f1" in card and "ssl finetune-qa" in card


def test_automodel_and_pipeline_load_the_output(trained, demo_data):
    from transformers import AutoModelForQuestionAnswering, pipeline

    import ssl_cli.tasks.qa.pipeline  # noqa: F401  (registers extractive-question-answering, restores question-answering)

    out, _ = trained
    model = AutoModelForQuestionAnswering.from_pretrained(out)
    assert model.config.architectures == ["BertForQuestionAnswering"]
    qa = pipeline("extractive-question-answering", model=str(out), device="cpu")
    record = json.loads(Path(demo_data["dev"]).read_text())["data"][0]["paragraphs"][0]
    context, question = record["context"], record["qas"][0]["question"]
    answer = qa(question=question, context=context)
    assert answer["answer"] == context[answer["start"]:answer["end"]] and answer["answer"]
    assert 0 < answer["score"] <= 1
    # small windows: the answer still maps back into the full context, and top_k lists the best first
    ranked = qa({"question": question, "context": context}, top_k=3, max_seq_length=64, doc_stride=16)
    assert len(ranked) == 3 and ranked[0]["score"] >= ranked[1]["score"] >= ranked[2]["score"]
    assert all(r["answer"] == context[r["start"]:r["end"]] for r in ranked)
    # the pipeline and the CLI's evaluation agree on the answer
    predictions = json.loads((out / "eval_predictions.json").read_text())
    assert answer["answer"] == predictions[record["qas"][0]["id"]]
    # and the 4.x task name works again: the same answer, scored as 4.x did (tests/unit/test_qa_pipeline.py)
    legacy = pipeline("question-answering", model=str(out), device="cpu")(question=question, context=context)
    assert (legacy["answer"], legacy["start"], legacy["end"]) == (answer["answer"], answer["start"], answer["end"])
    assert 0 < legacy["score"] <= 1


def test_refuses_to_overwrite_without_flag(trained, tiny_run_args):
    out, _ = trained
    before = sorted(p.name for p in out.iterdir())
    proc = run_cli(*tiny_run_args, "--output-dir", str(out))
    assert proc.returncode == 2 and "--overwrite" in proc.stderr and "Traceback" not in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == before


def test_resume_mid_epoch_reproduces_the_uninterrupted_run(tmp_path, tiny_run_args):
    """Stop after checkpoint-3 (of 6 steps, mid-epoch), resume: identical final weights."""
    common = [*tiny_run_args, "--save-steps", "3", "--save-total-limit", "5", "--set", "model.dropout=0.1",
              "--set", "training.eval_strategy=no", "--set", "training.load_best_model_at_end=false"]
    full, cut, state = run_then_resume(common, tmp_path, keep="checkpoint-3", later=["checkpoint-6"])
    assert state["global_step"] == 3 and state["batches_in_epoch"] == 3
    assert json.loads((cut / "all_results.json").read_text())["eval_f1"] == json.loads(
        (full / "all_results.json").read_text())["eval_f1"]


def test_no_half_written_checkpoints_are_left(tmp_path, tiny_run_args):
    out = tmp_path / "ck"
    run_cli(*tiny_run_args, "--save-steps", "2", "--save-total-limit", "2", "--set", "training.eval_strategy=no",
            "--set", "training.load_best_model_at_end=false", "--output-dir", str(out), check=True)
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-4", "checkpoint-6"]
    assert not list(out.glob(".checkpoint-*"))


def test_best_checkpoint_survives_rotation(tmp_path, tiny_run_args):
    out = tmp_path / "best"
    run_cli(*tiny_run_args, "--eval-steps", "2", "--save-steps", "2", "--save-total-limit", "1", "--output-dir", str(out),
            check=True)
    evals = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines() if "eval_f1" in line]
    assert [e["step"] for e in evals] == [2, 4, 6]
    # the first of equal scores is the best: only a strictly better score replaces it
    best_step = next(e["step"] for e in evals if e["eval_f1"] == max(x["eval_f1"] for x in evals))
    kept = sorted(p.name for p in out.glob("checkpoint-*"))
    assert f"checkpoint-{best_step}" in kept and "checkpoint-6" in kept


def test_learns_the_generated_task(tmp_path):
    """The demo set is learnable: a short from-scratch run lands far above chance."""
    from ssl_cli.tasks.qa.data import write_demo_data

    data = write_demo_data(tmp_path / "data", n_train=300, n_dev=25, seed=3)
    out = tmp_path / "learn"
    run_cli("finetune-qa", "--recipe", "recipes/qa/tiny-zh-offline.yaml", "--train-file", str(data["train"]),
            "--validation-file", str(data["dev"]), "--output-dir", str(out), "--num-train-epochs", "4", check=True)
    results = json.loads((out / "all_results.json").read_text())
    assert results["eval_f1"] > 50, results
