"""Bad input: one line naming the problem and the fix, exit code 2, no traceback, nothing lost."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli


def assert_user_error(proc, *fragments):
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    message = proc.stderr.strip().splitlines()[-1]
    assert message.startswith("error:"), proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr.replace("\n", " "), (fragment, proc.stderr)


@pytest.fixture
def base(tmp_path, demo_data):
    return ["finetune-qa", "--recipe", "recipes/qa/tiny-zh-offline.yaml", "--output-dir", str(tmp_path / "out"),
            "--max-steps", "1"]


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_missing_data_file(base, tmp_path):
    assert_user_error(run_cli(*base, "--train-file", str(tmp_path / "nope.json")), "data file not found", "nope.json")


def test_directory_given_as_a_file(base, tmp_path):
    assert_user_error(run_cli(*base, "--train-file", str(tmp_path)), "is a directory")


def test_malformed_json(base, tmp_path):
    path = write(tmp_path, "bad.json", '{"data": [')
    assert_user_error(run_cli(*base, "--train-file", path), "is not valid JSON", "bad.json")


def test_squad_json_without_data(base, tmp_path):
    path = write(tmp_path, "nodata.json", json.dumps({"version": "1.1", "articles": []}))
    assert_user_error(run_cli(*base, "--train-file", path), "'data'", "nodata.json")


def test_schema_error_names_record_and_field(base, tmp_path):
    doc = {"data": [{"title": "t", "paragraphs": [{"context": "abc", "qas": [{"id": "1", "answers": []}]}]}]}
    path = write(tmp_path, "noq.json", json.dumps(doc))
    assert_user_error(run_cli(*base, "--train-file", path), "data[0].paragraphs[0].qas[0]", "'question'")


def test_flat_records_missing_field(base, tmp_path):
    path = write(tmp_path, "flat.jsonl", json.dumps({"id": "1", "context": "abc"}) + "\n")
    assert_user_error(run_cli(*base, "--train-file", path), "flat.jsonl", "question")


def _mismatched(tmp_path):
    qas = [{"id": "1", "question": "什麼？", "answers": [{"text": "臺北", "answer_start": 5}]}]
    doc = {"data": [{"title": "t", "paragraphs": [{"context": "他出生於臺北。", "qas": qas}]}]}
    return write(tmp_path, "mismatch.json", json.dumps(doc, ensure_ascii=False))


def test_empty_dataset_after_filtering(base, tmp_path, demo_data):
    proc = run_cli(*base, "--train-file", _mismatched(tmp_path), "--validation-file", str(demo_data["dev"]))
    assert_user_error(proc, "training set is empty")
    assert "1 training question(s) have an answer_start" in proc.stderr


def test_strict_mode_fails_on_answer_mismatch(base, tmp_path, demo_data):
    proc = run_cli(*base, "--train-file", _mismatched(tmp_path), "--validation-file", str(demo_data["dev"]),
                   "--set", "data.strict=true")
    assert_user_error(proc, "answer_start", "id 1")


def test_nonexistent_model_path(base, demo_data):
    proc = run_cli(*base, "--train-file", str(demo_data["train"]), "--model", "./no/such/model")
    assert_user_error(proc, "model path does not exist")


def test_hub_model_while_offline(base, demo_data):
    proc = run_cli(*base, "--train-file", str(demo_data["train"]), "--model", "bert-base-chinese")
    assert_user_error(proc, "bert-base-chinese", "Hub", "--model /path/to")


def test_registered_dataset_while_offline(base):
    assert_user_error(run_cli(*base, "--data", "drcd"), "offline", "--data DIR")


def test_unknown_dataset_name(base):
    assert_user_error(run_cli(*base, "--data", "drdc"), "did you mean 'drcd'")


def test_max_seq_length_too_small_for_question_plus_stride(base, demo_data):
    proc = run_cli(*base, "--train-file", str(demo_data["train"]), "--max-seq-length", "64", "--doc-stride", "60")
    assert_user_error(proc, "max_seq_length 64", "doc_stride 60", "--max-seq-length above")


def test_non_empty_output_dir_is_kept(base, tmp_path, demo_data):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    assert_user_error(run_cli(*base, "--train-file", str(demo_data["train"])), "not empty", "--overwrite")
    assert (out / "precious.txt").read_text() == "keep me"


def test_resume_without_checkpoint(base, demo_data):
    assert_user_error(run_cli(*base, "--train-file", str(demo_data["train"]), "--resume"), "nothing to resume")


def test_fp16_on_cpu(base, demo_data):
    assert_user_error(run_cli(*base, "--train-file", str(demo_data["train"]), "--mixed-precision", "fp16"), "bf16")


def test_unknown_scratch_spec(base, demo_data):
    assert_user_error(run_cli(*base, "--train-file", str(demo_data["train"]), "--model", "scratch:bert-tinny"),
                      "did you mean 'bert-tiny'")


def test_missing_recipe_file(tmp_path):
    assert_user_error(run_cli("finetune-qa", "--recipe", str(tmp_path / "r.yaml")), "recipe file not found")


def test_invalid_yaml_recipe(tmp_path):
    assert_user_error(run_cli("finetune-qa", "--recipe", write(tmp_path, "r.yaml", "training: [1, 2\n")), "not valid YAML")
