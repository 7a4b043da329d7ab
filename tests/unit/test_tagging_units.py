"""The tricky parts of tag-pos: the CoNLL readers and writer, windows, subword alignment, stitching, metrics."""

from __future__ import annotations

import random

import pytest

from ssl_cli.data.conll import read_columns, read_conllu, write_with_tags
from ssl_cli.errors import UserError
from ssl_cli.tasks.tagging.metrics import detect_scheme, entities, entity_scores, macro_f1, tag_report, word_accuracy
from ssl_cli.tasks.tagging.task import (
    IGNORE,
    continuation_labels,
    plan_windows,
    stitch_predictions,
    tokenize_sentences,
)

CONLLU = """\
# newdoc id = d1
# sent_id = first
# text = I can't go.
1\tI\tI\tPRON\tPRP\t_\t4\tnsubj\t_\t_
2-3\tcan't\t_\t_\t_\t_\t_\t_\t_\t_
2\tca\tcan\tAUX\tMD\t_\t4\taux\t_\t_
3\tn't\tnot\tPART\tRB\t_\t4\tadvmod\t_\t_
4\tgo\tgo\tVERB\tVB\t_\t0\troot\t_\tSpaceAfter=No
4.1\tgo\t_\t_\t_\t_\t_\t_\t0:root\t_
5\t.\t.\tPUNCT\t.\t_\t4\tpunct\t_\t_

# sent_id = second
1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_
"""  # no blank line after the last sentence: still read


def test_conllu_reader_skips_comments_ranges_and_empty_nodes(tmp_path):
    path = tmp_path / "a.conllu"
    path.write_text(CONLLU, encoding="utf-8")
    first, second = read_conllu(path)
    assert first == {"sent_id": "first", "tokens": ["I", "ca", "n't", "go", "."],
                     "upos": ["PRON", "AUX", "PART", "VERB", "PUNCT"], "xpos": ["PRP", "MD", "RB", "VB", "."]}
    assert second["sent_id"] == "second" and second["tokens"] == ["Hi"]


@pytest.mark.parametrize(
    ("bad_line", "line_number", "message"),
    [
        ("2 ca can AUX MD _ 4 aux _ _", 6, "expected 10 tab-separated fields"),
        ("7\tca\tcan\tAUX\tMD\t_\t4\taux\t_\t_", 6, "word ID '7' where 2 was expected"),
        ("x\tca\tcan\tAUX\tMD\t_\t4\taux\t_\t_", 6, "word ID 'x'"),
        ("2\t\tcan\tAUX\tMD\t_\t4\taux\t_\t_", 6, "empty FORM"),
    ],
)
def test_conllu_reader_names_the_bad_line(tmp_path, bad_line, line_number, message):
    lines = CONLLU.splitlines()
    lines[line_number - 1] = bad_line
    path = tmp_path / "bad.conllu"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=f"bad.conllu:{line_number}: {message}"):
        read_conllu(path)


def test_column_reader_conll2003_layout(tmp_path):
    path = tmp_path / "ner.conll"
    path.write_text("-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter NNP B-NP B-PER\n", encoding="utf-8")
    first, second = read_columns(path)
    assert first["tokens"] == ["EU", "rejects"] and first["ner_tags"] == ["B-ORG", "O"] and first["pos_tags"] == ["NNP", "VBZ"]
    assert second["chunk_tags"] == ["B-NP"]
    (tmp_path / "two.conll").write_text("a X\nb Y\n", encoding="utf-8")
    assert read_columns(tmp_path / "two.conll")[0]["tags"] == ["X", "Y"]
    (tmp_path / "bad.conll").write_text("a X\nb\n", encoding="utf-8")
    with pytest.raises(UserError, match="bad.conll:2: 1 columns where the file's first word line has 2"):
        read_columns(tmp_path / "bad.conll")


def test_writer_reproduces_the_file_with_gold_tags_and_changes_only_the_tag_column(tmp_path):
    source = tmp_path / "a.conllu"
    source.write_text(CONLLU, encoding="utf-8")
    gold = [s["upos"] for s in read_conllu(source)]
    same = tmp_path / "same.conllu"
    assert write_with_tags(source, same, "upos", gold)
    assert same.read_text(encoding="utf-8") == CONLLU
    changed = tmp_path / "changed.conllu"
    write_with_tags(source, changed, "xpos", [["A"] * 5, ["B"]])
    for before, after in zip(CONLLU.splitlines(), changed.read_text(encoding="utf-8").splitlines(), strict=True):
        b, a = before.split("\t"), after.split("\t")
        if len(b) == 10 and b[0].isdigit():
            assert a[:4] + a[5:] == b[:4] + b[5:] and a[4] in ("A", "B")
        else:
            assert after == before  # comments, ranges, empty nodes, blank lines: untouched
    first_only = tmp_path / "first.conllu"
    write_with_tags(source, first_only, "upos", gold[:1])
    assert "second" not in first_only.read_text(encoding="utf-8")


def test_writer_keeps_column_file_spacing(tmp_path):
    text = "-DOCSTART- -X- O\n\nEU\tNNP  B-ORG\n  rejects VBZ O\n\n"
    source = tmp_path / "a.conll"
    source.write_text(text, encoding="utf-8")
    target = tmp_path / "b.conll"
    write_with_tags(source, target, "column_2", [["I-ORG", "B-X"]])
    assert target.read_text(encoding="utf-8") == text.replace("B-ORG", "I-ORG").replace("VBZ O", "VBZ B-X")
    assert not write_with_tags(source, target, "upos", [["x", "y"]])  # no such column: nothing written


# ----------------------------------------------------------------------------- windows


@pytest.mark.parametrize("seed", range(30))
def test_windows_cover_every_word_within_budget(seed):
    rng = random.Random(seed)
    counts = [rng.randint(1, 4) for _ in range(rng.randint(1, 60))]
    body, stride = rng.randint(4, 20), rng.randint(0, 8)
    windows = plan_windows(counts, body, stride)
    assert windows[0][0] == 0 and windows[-1][1] == len(counts)
    for (start, end), (next_start, _) in zip(windows, windows[1:], strict=False):
        assert start < next_start <= end  # progress, and no gap
        assert sum(counts[next_start:end]) <= stride  # overlap within the stride
    for start, end in windows:
        assert end - start == 1 or sum(counts[start:end]) <= body


def test_a_word_longer_than_the_window_gets_a_window_of_its_own():
    assert plan_windows([1, 50, 1], body=10, stride=4) == [(0, 1), (1, 2), (2, 3)]
    assert plan_windows([2, 2, 2], body=10, stride=4) == [(0, 3)]
    assert plan_windows([3, 3, 3, 3], body=6, stride=3) == [(0, 2), (1, 3), (2, 4)]


@pytest.fixture(scope="module")
def tokenizer():
    from ssl_cli.models import train_wordpiece_tokenizer

    texts = ["the quick brown fox jumps over the lazy dog", "new york is big", "学生 喜欢 苹果"] * 20
    return train_wordpiece_tokenizer(iter(texts), vocab_size=60, model_max_length=512)


def test_first_piece_carries_the_label_and_the_rest_are_ignored(tokenizer):
    words = [["the", "quickest", "fox", "\u200b", "学生"]]  # unseen word -> several pieces; zero-width space -> no piece
    out = tokenize_sentences(words, tokenizer, 64, 8, example_indices=[0], tag_ids=[[0, 1, 2, 3, 4]])
    word_ids, labels = out["word_ids"][0], out["labels"][0]
    assert [w for w in word_ids if w >= 0] == [0, 1, 2, 3, 4]  # every word, the zero-width one too (as [UNK])
    assert [label for label in labels if label != IGNORE] == [0, 1, 2, 3, 4]
    assert labels[0] == IGNORE and labels[-1] == IGNORE  # [CLS], [SEP]
    assert len(labels) > 7  # "quickest" and 学生 (two characters) have continuation pieces, ignored
    assert all(label == IGNORE for w, label in zip(word_ids, labels, strict=True) if w < 0)


def test_label_all_tokens_turns_b_into_i_on_later_pieces(tokenizer):
    labels = ["B-LOC", "I-LOC", "O"]
    continuation = continuation_labels(labels)
    assert continuation == [1, 1, 2]
    out = tokenize_sentences([["newyorkers", "big"]], tokenizer, 64, 8, example_indices=[0], tag_ids=[[0, 2]],
                             label_all_tokens=True, continuation=continuation)
    word_ids, labels = out["word_ids"][0], out["labels"][0]
    first, second = [p for p, w in enumerate(word_ids) if w >= 0]
    assert second - first > 1  # "newyorkers" is several pieces
    assert labels[first] == 0 and set(labels[first + 1 : second]) == {1}  # B-LOC, then I-LOC
    assert set(labels[second:-1]) == {2} and labels[-1] == IGNORE


def test_long_sentences_become_windows_and_every_word_is_stitched_back(tokenizer):
    sentence = ("the quick brown fox jumps over the lazy dog " * 6).split()
    out = tokenize_sentences([sentence, ["big"]], tokenizer, 16, 4, example_indices=[0, 1])
    assert out["example_index"].count(0) > 3 and out["example_index"].count(1) == 1
    assert max(out["length"]) <= 16
    # a fake model that predicts each token's window number: stitching must take the most central window
    predictions = [[f] * len(ids) for f, ids in enumerate(out["word_ids"])]
    stitched = stitch_predictions([len(sentence), 1], out, predictions)
    assert len(stitched[0]) == len(sentence) and stitched[1] == [len(out["word_ids"]) - 1]
    for w, window in enumerate(stitched[0]):
        start, end = out["window_start"][window], out["window_end"][window]
        score = min(w - start, end - 1 - w)
        rivals = [min(w - s, e - 1 - w) for s, e, x in zip(out["window_start"], out["window_end"], out["example_index"],
                                                             strict=True) if x == 0 and s <= w < e]
        assert score == max(rivals)


# ----------------------------------------------------------------------------- metrics


def test_word_accuracy_and_tag_report_by_hand():
    gold = [["DET", "NOUN", "VERB"], ["PRON", "VERB"]]
    pred = [["DET", "VERB", "VERB"], ["PRON", "NOUN"]]
    assert word_accuracy(gold, pred) == pytest.approx(3 / 5)
    report = tag_report(gold, pred)
    assert report["VERB"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert report["NOUN"] == pytest.approx({"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1})
    assert macro_f1(report) == pytest.approx((1 + 0 + 0.5 + 1) / 4)
    with pytest.raises(ValueError, match="sentence 1: 1 predicted tags for 2 words"):
        word_accuracy(gold, [pred[0], ["PRON"]])


def test_entities_follow_conlleval_rules():
    assert entities(["B-PER", "I-PER", "O", "I-LOC", "I-LOC", "B-LOC"]) == [("PER", 0, 1), ("LOC", 3, 4), ("LOC", 5, 5)]
    assert entities(["B-PER", "I-LOC"]) == [("PER", 0, 0), ("LOC", 1, 1)]  # a type change ends and starts
    assert entities(["S-PER", "B-LOC", "E-LOC", "O"]) == [("PER", 0, 0), ("LOC", 1, 2)]
    scores = entity_scores([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "O", "O", "B-LOC"]])
    assert scores["overall_precision"] == 0.5 and scores["overall_recall"] == 0.5 and scores["LOC"]["f1"] == 1.0
    assert scores["PER"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "number": 1}
    assert scores["overall_accuracy"] == 0.75


@pytest.mark.parametrize("seed", range(5))
def test_entity_scores_match_seqeval(seed):
    seqeval = pytest.importorskip("seqeval.metrics")
    rng = random.Random(seed)
    tags = ["O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "I-MISC", "E-LOC", "S-PER"]
    gold = [[rng.choice(tags) for _ in range(rng.randint(1, 15))] for _ in range(40)]
    pred = [[t if rng.random() < 0.7 else rng.choice(tags) for t in sentence] for sentence in gold]
    ours = entity_scores(gold, pred)
    assert ours["overall_f1"] == pytest.approx(seqeval.f1_score(gold, pred))
    assert ours["overall_precision"] == pytest.approx(seqeval.precision_score(gold, pred))
    assert ours["overall_recall"] == pytest.approx(seqeval.recall_score(gold, pred))
    report = seqeval.classification_report(gold, pred, output_dict=True)
    for type_ in ("PER", "LOC", "MISC"):
        assert ours[type_]["f1"] == pytest.approx(report[type_]["f1-score"]) and ours[type_]["number"] == report[type_]["support"]


def test_scheme_detection_and_evaluate_module():
    assert detect_scheme(["ADJ", "NOUN", "VERB"]) == "none"
    assert detect_scheme(["B-PER", "I-PER", "O"]) == "bio"
    assert detect_scheme(["B-PER", "E-PER", "S-LOC", "O"]) == "bioes"
    assert detect_scheme(["O", "I-PER"]) == "none"  # IOB1 without B: not a scheme we can score as entities
    from ssl_cli.tasks.tagging.metrics import load_metric

    result = load_metric().compute(predictions=[["B-PER", "O"]], references=[["B-PER", "I-PER"]])
    assert result["overall_f1"] == 0.0 and result["overall_accuracy"] == 0.5


# ----------------------------------------------------------------------------- ud/<treebank> sources


def test_ud_names_resolve_to_the_official_repositories():
    from ssl_cli.data.registry import lookup

    ewt = lookup("ud/en_ewt", "tag-pos")
    assert ewt.files["validation"] == ("https://raw.githubusercontent.com/UniversalDependencies/UD_English-EWT/master/"
                                       "en_ewt-ud-dev.conllu")
    assert "UD_Chinese-GSDSimp/master/zh_gsdsimp-ud-train.conllu" in lookup("ud/zh_gsdsimp", "tag-pos").files["train"]
    assert "UD_French-Sequoia/master/fr_sequoia-ud-test.conllu" in lookup("ud/fr_sequoia", "tag-pos").files["test"]
    assert lookup("ud/xx_nothing", "tag-pos") is None


def test_a_downloaded_treebank_is_read_by_its_url_suffix(tmp_path, monkeypatch):
    """The real download path over HTTP on localhost: the cache names files by hash, the reader needs .conllu."""
    import functools
    import http.server
    import threading

    import datasets

    from ssl_cli.data.files import download_file, load_data_file
    from ssl_cli.tasks.tagging.data import english_pos, write_conllu

    served = tmp_path / "served"
    write_conllu(english_pos(5, 1), served / "en_ewt-ud-dev.conllu")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    try:
        path = download_file(f"http://127.0.0.1:{server.server_port}/en_ewt-ud-dev.conllu")
    finally:
        server.shutdown()
    assert path.suffix == ".conllu"
    loaded = load_data_file(path)
    assert len(loaded) == 5 and "upos" in loaded.column_names


def test_byte_level_tokenizers_get_a_prefix_space_for_words(tmp_path):
    """RoBERTa-style byte-level BPE encodes a word differently at the start of a text: run_ner.py's add_prefix_space."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from ssl_cli.config import ModelConfig
    from ssl_cli.models import ModelSource, load_tokenizer, needs_prefix_space

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.train_from_iterator(["the dog sees the river", "a dog and a cat"] * 10,
                                trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<pad>"],
                                                    initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>").save_pretrained(tmp_path)
    plain = load_tokenizer(ModelSource("local", str(tmp_path)), ModelConfig())
    assert needs_prefix_space(plain)
    words = load_tokenizer(ModelSource("local", str(tmp_path)), ModelConfig(), pretokenized=True)
    assert not needs_prefix_space(words)
    # with the prefix space, a word reads the same at the start of a sentence and inside it
    first = words(["dog"], is_split_into_words=True)["input_ids"]
    inner = words(["the", "dog"], is_split_into_words=True)["input_ids"]
    assert inner[-len(first):] == first


def test_a_loss_counts_rows_labelled_tokens_or_predicted_tokens():
    """What each weighting counts in a batch: rows; labels other than -100; those labels a next token predicts
    (the first position of each row predicts nothing)."""
    import torch

    from ssl_cli.engine.loss import counted

    batch = {"input_ids": torch.ones(2, 4, dtype=torch.long),
             "labels": torch.tensor([[IGNORE, 1, 2, IGNORE], [3, 3, IGNORE, IGNORE]])}
    assert counted(batch, "rows") == 2
    assert int(counted(batch, "labelled_tokens")) == 4
    assert int(counted(batch, "predicted_tokens")) == 3  # 1, 2 and the second 3: the leading 3 is no prediction
