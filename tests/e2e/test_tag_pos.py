"""ssl tag-pos end to end on generated, learnable tagged data: English and Chinese UPOS, NER, CoNLL-U round trip."""

from __future__ import annotations

import json

import pytest

from ssl_cli.tasks.tagging.data import EN_AMBIGUOUS, chinese_pos, english_pos, write_conllu, write_tagging_task
from tests.conftest import run_cli

TINY = ["tag-pos", "--recipe", "recipes/pos/tiny-en-offline.yaml"]


def _results(out):
    return json.loads((out / "all_results.json").read_text())


def _predictions(out, name="eval"):
    return [json.loads(line) for line in (out / f"{name}_predictions.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def english_run(tmp_path_factory):
    data = write_tagging_task("en_pos", tmp_path_factory.mktemp("en-pos"), n_train=1500, n_dev=200, seed=1)
    out = tmp_path_factory.mktemp("run") / "en"
    run_cli(*TINY, "--train-file", str(data["train"]), "--validation-file", str(data["dev"]), "--test-file", str(data["test"]),
            "--do-predict", "--output-dir", str(out), check=True)
    return out, data


def test_english_upos_learns_from_context(english_run):
    out, _ = english_run
    results = _results(out)
    assert results["eval_accuracy"] > 0.97, results
    assert {"eval_macro_f1", "eval_samples", "train_features"} <= results.keys() and "eval_f1" not in results
    # the same words are NOUN after a determiner and VERB after a subject: only context tells them apart
    by_role = {"NOUN": [0, 0], "VERB": [0, 0]}
    for row in _predictions(out):
        for word, gold, predicted in zip(row["tokens"], row["tags"], row["predictions"], strict=True):
            if word in EN_AMBIGUOUS:
                by_role[gold][0] += gold == predicted
                by_role[gold][1] += 1
    assert all(total > 20 and right / total > 0.9 for right, total in by_role.values()), by_role
    report = json.loads((out / "eval_tag_report.json").read_text())
    assert set(report["tags"]) == {"ADJ", "ADP", "DET", "NOUN", "PRON", "PUNCT", "VERB"}


def test_predicted_conllu_is_the_input_with_new_tags(english_run):
    out, data = english_run
    source = data["test"].read_text(encoding="utf-8").splitlines()
    written = (out / "test_predictions.conllu").read_text(encoding="utf-8").splitlines()
    assert len(written) == len(source)
    labels = set(json.loads((out / "config.json").read_text())["label2id"])
    words = 0
    for before, after in zip(source, written, strict=True):
        b, a = before.split("\t"), after.split("\t")
        if len(b) == 10 and b[0].isdigit():
            assert a[:3] + a[4:] == b[:3] + b[4:] and b[3] == "_" and a[3] in labels
            words += 1
        else:
            assert after == before  # comments, ranges 1-2, empty nodes 2.1, blank lines
    assert words == sum(len(r["tokens"]) for r in _predictions(out, "test"))
    assert (out / "eval_predictions.conllu").is_file()


def test_upos_equals_the_conll_2018_evaluator(english_run):
    """ud_eval.py (../shared/reference) reads the predicted CoNLL-U without a format error and scores the same UPOS."""
    import importlib.util

    from tests.conftest import ROOT

    script = ROOT.parent / "shared" / "reference" / "ud_eval.py"
    if not script.is_file():
        pytest.skip(f"{script} is absent")
    spec = importlib.util.spec_from_file_location("ud_eval_official", script)
    ud_eval = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ud_eval)
    out, data = english_run
    scores = ud_eval.evaluate(ud_eval.load_conllu_file(str(data["dev"])),
                              ud_eval.load_conllu_file(str(out / "eval_predictions.conllu")))
    assert scores["Words"].f1 == 1.0  # the same words, sentence for sentence
    assert scores["UPOS"].aligned_accuracy == pytest.approx(_results(out)["eval_accuracy"], abs=1e-12)
    assert scores["XPOS"].aligned_accuracy == 1.0 and scores["UAS"].f1 == 1.0  # only the UPOS column was changed


def test_output_dir_loads_in_transformers(english_run):
    import transformers

    out, _ = english_run
    model = transformers.AutoModelForTokenClassification.from_pretrained(str(out))
    assert model.config.id2label[0] == "ADJ" and model.config.num_labels == 7
    try:
        tagger = transformers.pipeline("token-classification", model=str(out), device="cpu")
    except KeyError as err:  # a transformers version without this pipeline
        pytest.skip(str(err))
    tags = [t["entity"] for t in tagger("the old dog sees a river .")]
    assert tags[:4] == ["DET", "ADJ", "NOUN", "VERB"], tags


def test_chinese_words_split_into_characters_and_windows(tmp_path):
    """Two sentences joined (20-30 characters) at max_seq_length 16: windows; every word still gets one prediction."""
    def joined(n: int, seed: int) -> list:
        sentences = chinese_pos(2 * n, seed)
        return [first + second for first, second in zip(sentences[::2], sentences[1::2], strict=True)]

    train = write_conllu(joined(800, 3), tmp_path / "train.conllu")
    dev = write_conllu(joined(150, 4), tmp_path / "dev.conllu")
    out = tmp_path / "zh"
    run_cli(*TINY, "--train-file", str(train), "--validation-file", str(dev), "--max-seq-length", "16",
            "--set", "tagging.stride=6", "--num-train-epochs", "4", "--output-dir", str(out), check=True)
    results = _results(out)
    assert results["train_features"] > 1.5 * 800, results  # windows: more features than sentences
    assert results["eval_accuracy"] > 0.9, results
    rows = _predictions(out)
    assert len(rows) == 150 and all(len(r["predictions"]) == len(r["tokens"]) for r in rows)
    assert any(len(word) > 1 for r in rows for word in r["tokens"])  # multi-character words, one tag each


def test_ner_from_conll2003_columns_with_entity_f1(tmp_path):
    data = write_tagging_task("en_ner", tmp_path, n_train=1500, n_dev=200, seed=2)
    out = tmp_path / "ner"
    run_cli(*TINY, "--train-file", str(data["train"]), "--validation-file", str(data["dev"]), "--label-all-tokens",
            "--num-train-epochs", "4", "--output-dir", str(out), check=True)
    results = _results(out)
    assert {"eval_precision", "eval_recall", "eval_f1", "eval_accuracy"} <= results.keys()
    assert results["eval_f1"] > 0.9, results
    config = json.loads((out / "config.json").read_text())
    assert set(config["label2id"]) == {"B-LOC", "B-PER", "I-LOC", "I-PER", "O"}  # ner_tags, not the POS column
    report = json.loads((out / "eval_tag_report.json").read_text())
    assert {"LOC", "PER"} <= set(report["entities"])
    written = (out / "eval_predictions.conll").read_text(encoding="utf-8").splitlines()
    assert written[0] == "-DOCSTART- -X- -X- O" and len(written) == len(data["dev"].read_text().splitlines())


def test_xpos_and_a_jsonl_table(tmp_path):
    """--tag-column xpos; a JSON-lines table with tokens and tags columns."""
    sentences = english_pos(300, 5)
    rows = [{"tokens": [w for w, _ in s], "pos": [t for _, t in s]} for s in sentences]
    table = tmp_path / "train.jsonl"
    table.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "table"
    run_cli(*TINY, "--train-file", str(table), "--tag-column", "pos", "--max-steps", "3", "--output-dir", str(out), check=True)
    assert json.loads((out / "config.json").read_text())["id2label"]["0"] == "ADJ"
    conllu = write_conllu(sentences, tmp_path / "x.conllu")
    out = tmp_path / "xpos"
    run_cli(*TINY, "--train-file", str(conllu), "--tag-column", "xpos", "--max-steps", "3", "--output-dir", str(out),
            check=True)
    assert json.loads((out / "config.json").read_text())["id2label"]["0"] == "XADJ"


def test_registered_treebank_while_offline_is_one_line(tmp_path):
    proc = run_cli(*TINY, "--data", "ud/en_ewt", "--output-dir", str(tmp_path / "out"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "cannot download https://raw.githubusercontent.com/UniversalDependencies/UD_English-EWT/master/" in proc.stderr


def test_class_label_ids_from_a_parquet_table_become_tag_names(tmp_path):
    """Hub-style data: tags stored as ClassLabel ids (conll2003's ner_tags) are read back as their names."""
    import datasets

    from ssl_cli.tasks.tagging.data import english_ner

    names = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    sentences = english_ner(200, 8)
    features = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                                  "ner_tags": datasets.Sequence(datasets.ClassLabel(names=names))})
    table = datasets.Dataset.from_dict({"tokens": [[w for w, _ in s] for s in sentences],
                                        "ner_tags": [[names.index(t) for _, t in s] for s in sentences]}, features=features)
    table.to_parquet(str(tmp_path / "train.parquet"))
    out = tmp_path / "parquet"
    run_cli(*TINY, "--train-file", str(tmp_path / "train.parquet"), "--max-steps", "2", "--output-dir", str(out), check=True)
    assert set(json.loads((out / "config.json").read_text())["label2id"]) == set(names)
    assert "eval_f1" in _results(out)  # BIO names, so entity scores
