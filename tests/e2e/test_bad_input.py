"""The bad-input corpus: every malformed input gives one line naming the problem and the fix, exit code 2, no
traceback, and leaves no output behind (or, for a non-empty output dir, leaves it as it was).

One table, every subcommand: files, JSON, TSV/CSV, CoNLL-U, text, recipes, flags, labels, encodings, empty
and huge lines, conflicting flags, out-of-range values, models and checkpoints. docs/reliability.md publishes
the same table; a test keeps the two in step.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from ssl_cli.tasks import all_tasks
from ssl_cli.tasks.glue.data import sentiment, write_table
from ssl_cli.tasks.pretraining.data import write_text_corpus
from ssl_cli.tasks.tagging.data import english_pos, write_conllu
from tests.conftest import ROOT, run_cli, task_args

QA = ["finetune-qa", "--recipe", "recipes/qa/tiny-zh-offline.yaml"]
GLUE = ["finetune-glue", "--recipe", "recipes/glue/tiny-en-offline.yaml"]
NLI = ["nli", "--recipe", "recipes/nli/tiny-en-offline.yaml"]
POS = ["tag-pos", "--recipe", "recipes/pos/tiny-en-offline.yaml"]
MLM = ["pretrain-mlm", "--recipe", "recipes/pretrain/tiny-mlm-offline.yaml"]
CLM = ["pretrain-clm", "--recipe", "recipes/pretrain/tiny-clm-offline.yaml"]


@dataclass(frozen=True)
class Case:
    id: str
    command: str
    problem: str
    argv: Callable[[Path, dict], list[str]]  # (scratch dir, valid data) -> arguments after `ssl`
    expect: tuple[str, ...] | Callable[[dict], tuple[str, ...]]  # fragments of the error line (or: valid data -> them)


def _file(tmp: Path, name: str, content: str | bytes) -> str:
    path = tmp / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return str(path)


def _squad(context: str = "他出生於臺北。", answer_start: int = 3, **question) -> dict:
    qa = {"id": "1", "question": "在哪裡？", "answers": [{"text": "臺北", "answer_start": answer_start}], **question}
    return {"data": [{"title": "t", "paragraphs": [{"context": context, "qas": [qa]}]}]}


def _sst(tmp: Path, name: str, rows: list[dict]) -> str:
    return str(write_table(rows, tmp / name))


def _qa(d: dict, train: str | None = None) -> list[str]:
    return [*QA, "--train-file", train or d["qa_train"], "--validation-file", d["qa_dev"], "--max-steps", "1"]


def _glue(d: dict, train: str | None = None, dev: str | None = None) -> list[str]:
    return [*GLUE, "--task", "sst2", "--train-file", train or d["glue_train"], "--validation-file", dev or d["glue_dev"],
            "--max-steps", "1"]


def _mlm(train: str, *extra: str) -> list[str]:
    return [*MLM, "--train-file", train, "--max-steps", "1", *extra]


def _pos(d: dict, train: str | None = None, *extra: str) -> list[str]:
    return [*POS, "--train-file", train or d["pos_train"], "--max-steps", "1", *extra]


def _conllu_with(d: dict, tmp: Path, edit: Callable[[list[str]], None]) -> str:
    lines = Path(d["pos_train"]).read_text(encoding="utf-8").splitlines()
    edit(lines)
    return _file(tmp, "bad.conllu", "\n".join(lines) + "\n")


def _replace_line(index: int, new: str) -> Callable[[list[str]], None]:
    def edit(lines: list[str]) -> None:
        lines[index] = new
    return edit


def _recipe(tmp: Path, text: str) -> str:
    return _file(tmp, "recipe.yaml", text)


def _bin_only_model(tmp: Path) -> str:
    """A model directory with pytorch_model.bin (pickle) weights and no safetensors: never loaded by default."""
    import torch
    from transformers import BertConfig, BertForQuestionAnswering

    from ssl_cli.models import train_wordpiece_tokenizer

    model_dir = tmp / "bin-model"
    config = BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    config.save_pretrained(model_dir)
    torch.save(BertForQuestionAnswering(config).state_dict(), model_dir / "pytorch_model.bin")
    train_wordpiece_tokenizer(["他出生於臺北。在哪裡？"] * 3, 100, 128).save_pretrained(model_dir)
    return str(model_dir)


def _deberta_model(tmp: Path, data: dict) -> str:
    """A tiny local DeBERTa-v2: its relative positions come from the row, so it cannot train on packed rows."""
    from transformers import DebertaV2Config, DebertaV2Model

    from ssl_cli.models import train_wordpiece_tokenizer

    model_dir = tmp / "deberta"
    words = Path(data["pos_train"]).read_text(encoding="utf-8").split()
    tokenizer = train_wordpiece_tokenizer([" ".join(words)] * 3, 200, 128)
    config = DebertaV2Config(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=32, max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id)
    DebertaV2Model(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    return str(model_dir)


def _tiny_model(tmp: Path, name: str, architecture: str = "BertForQuestionAnswering", positions: int = 128,
                weights: str = "safetensors", tokenizer: bool = True, num_labels: int = 2) -> str:
    """A small local model directory: its weights as safetensors, as pickle (.bin) or none at all."""
    import torch
    import transformers
    from transformers import BertConfig, GPT2Config

    from ssl_cli.models import train_wordpiece_tokenizer

    model_dir = tmp / name
    gpt = architecture.startswith("GPT2")
    config = GPT2Config(vocab_size=100, n_embd=16, n_layer=1, n_head=2, n_positions=positions) if gpt else \
        BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                   max_position_embeddings=positions, num_labels=num_labels)
    model = getattr(transformers, architecture)(config)
    if weights == "safetensors":
        model.save_pretrained(model_dir)
    else:
        config.architectures = [architecture]
        config.save_pretrained(model_dir)
        if weights == "bin":
            torch.save(model.state_dict(), model_dir / "pytorch_model.bin")
    if tokenizer:
        train_wordpiece_tokenizer(["他出生於臺北。在哪裡？ hello world"] * 3, 100, positions).save_pretrained(model_dir)
    return str(model_dir)


def _tokenizer_broken(tmp: Path, name: str, content: bytes, architecture: str = "BertForQuestionAnswering") -> str:
    """A complete small model whose tokenizer file ``name`` is replaced by ``content`` (without tokenizer.json, for
    a vocab.txt to be read at all)."""
    model_dir = Path(_tiny_model(tmp, "broken-tokenizer", architecture))
    if name != "tokenizer.json":
        (model_dir / "tokenizer.json").unlink()
    (model_dir / name).write_bytes(content)
    return str(model_dir)


def _non_empty_dir(tmp: Path) -> str:
    out = tmp / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    return str(out)


_POS_LINE = 3  # a token line of the generated CoNLL-U (after "# sent_id", "# text" and the first token)

CASES = [
    # ------------------------------------------------------------------ files
    Case("device-as-data-file", "tag-pos", "/dev/null (a character device) as --train-file",
         lambda t, d: _pos(d, "/dev/null"), ("/dev/null is a character device", "not a regular file")),
    Case("socket-as-data-file", "pretrain-mlm", "a Unix socket as --train-file",
         lambda t, d: _mlm(_socket(t)), ("is a socket", "not a regular file")),
    Case("unsupported-format", "finetune-glue", "a .xml file",
         lambda t, d: _glue(d, _file(t, "train.xml", "<a/>")), ("unsupported data format '.xml'",)),
    Case("glob-matches-nothing", "pretrain-mlm", "a shard pattern that matches no file",
         lambda t, d: _mlm(str(t / "none-*.txt")), ("no file matches",)),
    Case("unreadable-file", "finetune-glue", "a training file without read permission",
         lambda t, d: _glue(d, _unreadable(t)), ("not readable", "permissions")),
    # ------------------------------------------------------------------ JSON
    Case("truncated-json", "finetune-qa", "a JSON document cut short",
         lambda t, d: _qa(d, _file(t, "bad.json", '{"data": [')), ("is not valid JSON", "bad.json")),
    Case("squad-without-data", "finetune-qa", "SQuAD-style JSON without its 'data' list",
         lambda t, d: _qa(d, _file(t, "nodata.json", json.dumps({"version": "1.1", "articles": []}))), ("'data'",)),
    Case("question-missing", "finetune-qa", "a SQuAD record without its question",
         lambda t, d: _qa(d, _file(t, "noq.json", json.dumps({"data": [{"title": "t", "paragraphs": [
             {"context": "abc", "qas": [{"id": "1", "answers": []}]}]}]}))),
         ("data[0].paragraphs[0].qas[0]", "'question'")),
    Case("flat-record-missing-field", "finetune-qa", "a JSON-lines record without question/answers",
         lambda t, d: _qa(d, _file(t, "flat.jsonl", json.dumps({"id": "1", "context": "abc"}) + "\n")),
         ("flat.jsonl", "question")),
    Case("answer-start-mismatch", "finetune-qa", "every answer_start points at other text",
         lambda t, d: _qa(d, _file(t, "mismatch.json", json.dumps(_squad(answer_start=5), ensure_ascii=False))),
         ("training set is empty", "answer_start")),
    Case("answer-start-mismatch-strict", "finetune-qa", "a wrong answer_start with data.strict",
         lambda t, d: [*_qa(d, _file(t, "mismatch.json", json.dumps(_squad(answer_start=5), ensure_ascii=False))),
                       "--set", "data.strict=true"], ("answer_start", "id 1")),
    Case("json-scalar", "finetune-glue", "a JSON file holding a number",
         lambda t, d: _glue(d, _file(t, "train.json", "42")), ("expected a JSON list of records",)),
    Case("jsonl-broken-line", "nli", "a JSON-lines file with a broken line",
         lambda t, d: [*NLI, "--train-file", _file(t, "train.jsonl", '{"premise": "a", "hypothesis": "b", "label": '
                                                                     '"neutral"}\n{"premise": \n'), "--max-steps", "1"],
         ("train.jsonl:2", "not valid JSON")),
    Case("jsonl-record-not-an-object", "finetune-glue", "a JSON-lines line holding a list, not an object",
         lambda t, d: _glue(d, _file(t, "train.jsonl", '["good", 1]\n' + json.dumps({"sentence": "bad", "label": 0})
                                    + "\n")), ("train.jsonl:1", "must be an object")),
    Case("qa-answer-lists-differ", "finetune-qa", "flat QA answers with 2 texts and 1 answer_start",
         lambda t, d: _qa(d, _file(t, "flat.jsonl", json.dumps({"id": "1", "question": "q", "context": "ab ab", "answers": {
             "text": ["ab", "ab"], "answer_start": [0]}}) + "\n")), ("flat.jsonl record 0", "one length")),
    Case("tokens-a-string", "tag-pos", "a JSON-lines sentence whose tokens are one string, not a list",
         lambda t, d: _pos(d, _file(t, "train.jsonl", json.dumps({"tokens": "the cat", "tags": ["DET", "NOUN"]}) + "\n")),
         ("row 0", "'tokens' is a string", "a list of strings")),
    # ------------------------------------------------------------------ TSV / CSV, labels
    Case("label-not-in-set", "finetune-glue", "a dev label outside the task's labels",
         lambda t, d: _glue(d, dev=_sst(t, "dev.jsonl", [*sentiment(5, 2), {"sentence": "fine", "label": "maybe"}])),
         ("label 'maybe' is not one of the labels",)),
    Case("label-column-missing", "finetune-glue", "no label column",
         lambda t, d: _glue(d, _sst(t, "train.jsonl", [{"sentence": r["sentence"], "polarity": r["label"]}
                                                        for r in sentiment(20, 1)])), ("no label column",)),
    Case("empty-sentence", "finetune-glue", "an empty sentence",
         lambda t, d: _glue(d, dev=_sst(t, "dev.jsonl", [*sentiment(5, 2), {"sentence": " ", "label": 1}])),
         ("empty text in column 'sentence'",)),
    Case("unknown-glue-task", "finetune-glue", "a misspelt task name",
         lambda t, d: [*_glue(d), "--task", "sst3"], ("unknown task 'sst3'",)),
    Case("empty-csv", "finetune-glue", "a CSV with a header and no rows",
         lambda t, d: _glue(d, _file(t, "train.csv", "sentence,label\n")), ("contains no records",)),
    Case("regression-label-not-a-number", "finetune-glue", "an STS-B score that is a word",
         lambda t, d: [*GLUE, "--task", "stsb", "--train-file", _sst(t, "train.jsonl", [
             {"sentence1": "a b", "sentence2": "a c", "label": "high"}] * 4), "--max-steps", "1"],
         ("label", "high", "number")),
    Case("nli-unknown-label", "nli", "an NLI label outside entailment/neutral/contradiction",
         lambda t, d: [*NLI, "--train-file", _sst(t, "train.jsonl", [
             {"premise": "a b", "hypothesis": "a", "label": "yes"}] * 4), "--max-steps", "1"], ("'yes'",)),
    # ------------------------------------------------------------------ CoNLL-U
    Case("conllu-wrong-field-count", "tag-pos", "a CoNLL-U token line with spaces for tabs",
         lambda t, d: _pos(d, _conllu_with(d, t, _replace_line(_POS_LINE, "1 the the DET _ _ 0 root _ _"))),
         ("bad.conllu:4: expected 10 tab-separated fields",)),
    Case("conllu-no-xpos", "tag-pos", "--tag-column xpos where every XPOS is '_'",
         lambda t, d: _pos(d, _file(t, "noxpos.conllu", "\n".join(
             "\t".join(f[:4] + ["_"] + f[5:]) if len(f := line.split("\t")) == 10 else line
             for line in Path(d["pos_train"]).read_text().splitlines()) + "\n"), "--tag-column", "xpos"),
         ("column 'xpos' has no tags", "--tag-column upos")),
    Case("tag-column-typo", "tag-pos", "a misspelt --tag-column",
         lambda t, d: _pos(d, None, "--tag-column", "upo"), ("no column 'upo' (did you mean 'upos'?)",)),
    Case("words-tags-length-mismatch", "tag-pos", "a JSON-lines row with more tags than words",
         lambda t, d: _pos(d, _file(t, "train.jsonl", json.dumps({"tokens": ["a", "b"], "tags": ["X", "Y"]}) + "\n"
                                    + json.dumps({"tokens": ["a", "b"], "tags": ["X", "Y", "Z"]}) + "\n")),
         ("row 1: 2 words but 3 tags",)),
    # ------------------------------------------------------------------ encodings, empty and huge lines
    Case("utf16-tsv", "finetune-glue", "a UTF-16 TSV",
         lambda t, d: _glue(d, _file(t, "train.tsv", "sentence\tlabel\ngood\t1\n".encode("utf-16"))),
         ("train.tsv", "UTF-8")),
    Case("blank-lines-only", "pretrain-clm", "a corpus of blank lines",
         lambda t, d: [*CLM, "--train-file", _file(t, "blank.txt", "\n  \n\t\n" * 20), "--max-steps", "1"],
         ("no text",)),
    Case("no-text-column", "pretrain-mlm", "JSON lines without a text column",
         lambda t, d: _mlm(_file(t, "corpus.jsonl", json.dumps({"body": "words here"}) + "\n")), ("no text column",)),
    # ------------------------------------------------------------------ recipes
    Case("recipe-missing", "finetune-qa", "--recipe names no file",
         lambda t, d: ["finetune-qa", "--recipe", str(t / "r.yaml")], ("recipe file not found",)),
    Case("recipe-invalid-yaml", "finetune-qa", "a recipe that is not valid YAML",
         lambda t, d: ["finetune-qa", "--recipe", _recipe(t, "training: [1, 2\n")], ("not valid YAML",)),
    Case("recipe-not-a-mapping", "nli", "a recipe that is a YAML list",
         lambda t, d: ["nli", "--recipe", _recipe(t, "- a\n- b\n")], ("must be a YAML mapping",)),
    Case("recipe-python-tag", "finetune-glue", "a recipe with a !!python/object tag (code execution attempt)",
         lambda t, d: ["finetune-glue", "--recipe", _recipe(t, f"task: !!python/object/apply:os.system ['touch {t}/pwned']\n")],
         ("not valid YAML",)),
    Case("recipe-unknown-key", "finetune-qa", "a misspelt recipe key",
         lambda t, d: ["finetune-qa", "--recipe", _recipe(t, "task: finetune-qa\ntraining:\n  num_train_epoch: 3\n")],
         ("unknown recipe key 'training.num_train_epoch'", "did you mean 'num_train_epochs'")),
    Case("recipe-other-task", "finetune-qa", "a tag-pos recipe given to finetune-qa",
         lambda t, d: ["finetune-qa", "--recipe", _recipe(t, "task: tag-pos\n")], ("tag-pos",)),
    Case("recipe-duplicate-key", "finetune-glue", "a recipe that gives one key twice (YAML keeps the last silently)",
         lambda t, d: ["finetune-glue", "--recipe", _recipe(t, "task: finetune-glue\ntraining:\n  seed: 1\n  seed: 2\n")],
         ("line 4", "'seed' is given twice")),
    Case("recipe-section-a-number", "nli", "a recipe whose training section is a number, with a flag under it",
         lambda t, d: ["nli", "--recipe", _recipe(t, "task: nli\ntraining: 5\n"), "--max-steps", "1"],
         ("recipe key 'training' is 5", "not a section")),
    Case("recipe-wrong-type", "pretrain-clm", "a learning rate that is a word",
         lambda t, d: ["pretrain-clm", "--recipe", _recipe(t, "task: pretrain-clm\ntraining:\n  learning_rate: fast\n")],
         ("training.learning_rate",)),
    # ------------------------------------------------------------------ flags, values, conflicts
    Case("set-without-equals", "finetune-qa", "--set without KEY=VALUE",
         lambda t, d: [*_qa(d), "--set", "novalue"], ("KEY=VALUE",)),
    Case("set-unknown-key", "tag-pos", "--set on a misspelt key",
         lambda t, d: [*_pos(d), "--set", "training.lerning_rate=1"], ("did you mean 'learning_rate'",)),
    Case("microbatches-not-a-choice", "tag-pos", "training.padding_microbatches neither auto nor a boolean",
         lambda t, d: [*_pos(d), "--set", "training.padding_microbatches=maybe"],
         ("training.padding_microbatches", "'auto', true or false")),
    Case("token-budget-below-the-longest-row", "tag-pos", "--per-device-train-tokens under the longest row",
         lambda t, d: [*_pos(d), "--per-device-train-tokens", "4"],
         ("per_device_train_tokens (4) cannot hold the longest training row", "raise it to at least")),
    Case("token-budget-on-a-stream", "pretrain-mlm", "--per-device-train-tokens on a streamed corpus",
         lambda t, d: _mlm(d["text_train"], "--streaming", "--set", "text.streaming_validation_documents=10",
                       "--per-device-train-tokens", "4096"),
         ("needs a dataset with lengths", "per_device_train_batch_size")),
    Case("loader-workers-negative", "tag-pos", "--dataloader-num-workers -1",
         lambda t, d: [*_pos(d), "--dataloader-num-workers", "-1"],
         ("'--dataloader-num-workers'", "whole number from 0 to 64")),
    Case("loader-workers-beyond-any-host", "tag-pos", "--dataloader-num-workers 99999",
         lambda t, d: [*_pos(d), "--dataloader-num-workers", "99999"],
         ("'--dataloader-num-workers'", "whole number from 0 to 64")),
    Case("tokenisation-workers-beyond-any-host", "tag-pos", "--preprocessing-num-workers 99999",
         lambda t, d: [*_pos(d), "--preprocessing-num-workers", "99999"],
         ("preprocessing_num_workers", "less than or equal to 256")),
    Case("prefetch-without-workers", "tag-pos", "--dataloader-prefetch-factor with no loader workers",
         lambda t, d: [*_pos(d), "--dataloader-num-workers", "0", "--dataloader-prefetch-factor", "4"],
         ("dataloader_prefetch_factor needs loader workers",)),
    Case("static-batches-without-a-budget", "tag-pos", "training.static_token_batches true with no token budget",
         lambda t, d: [*_pos(d), "--set", "training.static_token_batches=true"],
         ("static_token_batches", "--per-device-train-tokens N")),
    Case("static-batches-not-padding-free", "tag-pos", "training.static_token_batches true on CPU batches left padded",
         lambda t, d: [*_pos(d), "--per-device-train-tokens", "512", "--set", "training.static_token_batches=true"],
         ("static_token_batches is true", "not padding-free", "training.padding_free to true")),
    Case("static-batches-on-blocks", "pretrain-mlm", "training.static_token_batches true on fixed-length text blocks",
         lambda t, d: _mlm(d["text_train"], "--per-device-train-tokens", "4096", "--set", "training.padding_free=true",
                       "--set", "training.static_token_batches=true"),
         ("static_token_batches is true", "one shape already", "to auto")),
    Case("persistent-workers-with-epoch-masks", "pretrain-mlm", "persistent loader workers with per-epoch MLM masks",
         lambda t, d: _mlm(d["text_train"], "--dataloader-num-workers", "1", "--persistent-workers"),
         ("masks change every epoch", "--no-persistent-workers")),
    Case("packing-unsupported-model", "tag-pos", "training.pack_sequences true for a model that fails the packing check",
         lambda t, d: ["tag-pos", "--model", _deberta_model(t, d), "--train-file", d["pos_train"], "--max-steps", "1",
                       "--set", "training.pack_sequences=true"],
         ("training.pack_sequences is true", "DebertaV2ForTokenClassification", "auto or false")),
    Case("probability-out-of-range", "pretrain-mlm", "--mlm-probability 1.5",
         lambda t, d: _mlm(d["text_train"], "--mlm-probability", "1.5"), ("mlm.mlm_probability",)),
    Case("mask-shares-over-one", "pretrain-mlm", "mask + random replacement shares above 1",
         lambda t, d: _mlm(d["text_train"], "--set", "mlm.mask_replace_prob=0.9", "--set", "mlm.random_replace_prob=0.2"),
         ("must not exceed 1",)),
    Case("max-seq-length-too-small", "finetune-glue", "--max-seq-length 8 (below 16)",
         lambda t, d: [*_glue(d), "--max-seq-length", "8"], ("data.max_seq_length",)),
    Case("negative-learning-rate", "nli", "--learning-rate -1",
         lambda t, d: [*NLI, "--learning-rate", "-1"], ("training.learning_rate",)),
    Case("stride-too-large", "finetune-qa", "doc_stride that leaves no room for the context",
         lambda t, d: [*_qa(d), "--max-seq-length", "64", "--doc-stride", "60"],
         ("max_seq_length 64", "doc_stride 60", "--max-seq-length above")),
    Case("optimizer-ssl-lacks", "nli", "--optim adamw_bnb_8bit (a Trainer optimizer ssl does not build)",
         lambda t, d: [*NLI, "--optim", "adamw_bnb_8bit"], ("training.optim", "'adafactor'", "'sgd'")),
    Case("optim-args-misspelt", "nli", "--optim sgd --optim_args momentm=0.9",
         lambda t, d: [*NLI, "--optim", "sgd", "--optim_args", "momentm=0.9"],
         ("optim_args 'momentm' is not a setting of sgd", "did you mean 'momentum'")),
    Case("optim-args-infinite", "nli", "--optim_args momentum=1e400 (inf)",
         lambda t, d: [*NLI, "--optim", "sgd", "--optim_args", "momentum=1e400"],
         ("optim_args momentum=inf", "a finite number from 0 up")),
    Case("key-value-given-twice", "nli", "--optim_args momentum=0.9,momentum=0.5",
         lambda t, d: [*NLI, "--optim", "sgd", "--optim_args", "momentum=0.9,momentum=0.5"],
         ("'momentum' is given twice",)),
    Case("nesterov-without-momentum", "nli", "--optim sgd --optim_args nesterov=true",
         lambda t, d: [*NLI, "--optim", "sgd", "--optim_args", "nesterov=true"], ("needs momentum above 0",)),
    Case("fp16-on-cpu", "finetune-qa", "fp16 mixed precision on a CPU",
         lambda t, d: [*_qa(d), "--mixed-precision", "fp16"], ("bf16",)),
    Case("line-by-line-with-sop", "pretrain-mlm", "--line-by-line with --sentence-objective sop",
         lambda t, d: _mlm(d["text_train"], "--line-by-line", "--sentence-objective", "sop"),
         ("line_by_line", "sentence_objective")),
    Case("streaming-without-max-steps", "pretrain-clm", "--streaming without --max-steps",
         lambda t, d: [*CLM, "--train-file", d["text_train"], "--streaming"], ("needs training.max_steps",)),
    Case("best-model-strategy-conflict", "tag-pos", "--load-best-model-at-end with eval per epoch, save per steps",
         lambda t, d: [*_pos(d), "--set", "training.eval_strategy=epoch", "--save-steps", "5",
                       "--load-best-model-at-end"],
         ("load_best_model_at_end needs eval_strategy",)),
    # ------------------------------------------------------------------ models and data names
    Case("model-dir-without-config", "tag-pos", "--model names a directory without config.json",
         lambda t, d: [*_pos(d), "--model", str(t)], ("no config.json",)),
    Case("pickle-weights-only", "finetune-qa", "a model with only pytorch_model.bin (pickle) weights",
         lambda t, d: [*_qa(d), "--model", _bin_only_model(t)], ("safetensors",)),
    Case("hub-model-offline", "finetune-glue", "a Hub model id while offline",
         lambda t, d: [*_glue(d), "--model", "bert-base-chinese"], ("bert-base-chinese", "Hub")),
    Case("scratch-spec-typo", "pretrain-mlm", "scratch:bert-tinny",
         lambda t, d: [*_mlm(d["text_train"]), "--model", "scratch:bert-tinny"], ("did you mean 'bert-tiny'",)),
    Case("dataset-offline", "finetune-qa", "a registered Hub dataset while offline",
         lambda t, d: [*QA, "--data", "drcd"], ("offline", "--data DIR")),
    Case("dataset-name-typo", "finetune-qa", "--data drdc",
         lambda t, d: [*QA, "--data", "drdc"], ("did you mean 'drcd'",)),
    Case("generate-not-a-model", "generate", "ssl generate on a directory without a model",
         lambda t, d: ["generate", "--model", str(t), "--prompt", "hi"], ("not a model directory",)),
    Case("vocab-not-utf8", "finetune-qa", "a model whose vocab.txt is Latin-1 (no tokenizer.json)",
         lambda t, d: [*_qa(d), "--model", _tokenizer_broken(t, "vocab.txt", "caf\xe9\n".encode("latin-1"))],
         ("vocab.txt is not UTF-8",)),
    Case("tokenizer-json-invalid", "tag-pos", "a model whose tokenizer.json is not JSON",
         lambda t, d: [*_pos(d), "--model", _tokenizer_broken(t, "tokenizer.json", b"{ not json")],
         ("tokenizer.json is not valid JSON",)),
    Case("generate-tokenizer-not-utf8", "generate", "ssl generate on a model whose tokenizer_config.json is Latin-1",
         lambda t, d: ["generate", "--model", _tokenizer_broken(t, "tokenizer_config.json", '{"x": "\xe9"}'.encode(
             "latin-1"), "GPT2LMHeadModel"), "--prompt", "hi"], ("tokenizer_config.json is not UTF-8",)),
    Case("model-config-only", "finetune-qa", "a model directory with config.json and nothing else",
         lambda t, d: [*_qa(d), "--model", _tiny_model(t, "config-only", weights="none", tokenizer=False)],
         ("no tokenizer files",)),
    Case("model-without-weights", "finetune-qa", "a model directory with config and tokenizer but no weights",
         lambda t, d: [*_qa(d), "--model", _tiny_model(t, "no-weights", weights="none")],
         ("has no weights", "--init random")),
    Case("max-seq-length-over-positions", "finetune-qa", "--max-seq-length above the model's position embeddings",
         lambda t, d: [*_qa(d), "--model", _tiny_model(t, "short", positions=64), "--max-seq-length", "128"],
         ("max_seq_length 128", "64 position embeddings", "--max-seq-length 64")),
    Case("model-other-label-count", "finetune-glue", "--model a classifier fine-tuned with 3 labels, on 2-label data",
         lambda t, d: [*_glue(d), "--model", _tiny_model(t, "cls3", "BertForSequenceClassification", num_labels=3)],
         ("fine-tuned with 3 labels, this data has 2", "model.ignore_mismatched_sizes=true")),
    Case("output-dir-is-the-model", "finetune-qa", "--output-dir the model's own directory, with --overwrite",
         lambda t, d: [*_qa(d), "--model", (m := _tiny_model(t, "model")), "--output-dir", m, "--overwrite"],
         ("is the model's directory",)),
    # ------------------------------------------------------------------ strict values
    Case("learning-rate-boolean", "finetune-glue", "learning_rate: true in a recipe (read as 1.0 by a lax parser)",
         lambda t, d: [*_glue(d), "--recipe", _recipe(t, "task: finetune-glue\ntraining:\n  learning_rate: true\n")],
         ("training.learning_rate", "boolean, not a number")),
    Case("seed-negative", "nli", "--seed -1",
         lambda t, d: [*NLI, "--seed", "-1"], ("training.seed",)),
    Case("recipe-not-utf8", "finetune-qa", "a recipe saved in Latin-1",
         lambda t, d: ["finetune-qa", "--recipe", _file(t, "r.yaml", "# caf\xe9\ntask: finetune-qa\n".encode("latin-1"))],
         ("not UTF-8",)),
    Case("regression-label-nan", "finetune-glue", "an STS-B score of nan",
         lambda t, d: [*GLUE, "--task", "stsb", "--train-file", _sst(t, "train.jsonl", [
             {"sentence1": "a b", "sentence2": "a c", "label": 1.0}] * 3 + [
             {"sentence1": "a b", "sentence2": "b c", "label": "nan"}]), "--max-steps", "1"],
         ("label 'nan' is not a finite number",)),
    Case("answer-start-not-a-number", "finetune-qa", "a SQuAD answer_start that is a word",
         lambda t, d: _qa(d, _file(t, "start.json", json.dumps(_squad(answer_start="three"), ensure_ascii=False))),
         ("answer_start is 'three'", "whole number")),
    Case("qas-not-a-list", "finetune-qa", "a SQuAD paragraph whose qas is a string",
         lambda t, d: _qa(d, _file(t, "qas.json", json.dumps({"data": [{"title": "t", "paragraphs": [
             {"context": "abc", "qas": "oops"}]}]}))), ("qas must be a list",)),
    # ------------------------------------------------------------------ generate
    Case("generate-greedy-several", "generate", "--temperature 0 with --num-return-sequences 2",
         lambda t, d: ["generate", "--model", str(t), "--prompt", "hi", "--temperature", "0",
                       "--num-return-sequences", "2"], ("--temperature 0", "--num-return-sequences 1")),
    Case("generate-top-p-over-one", "generate", "ssl generate --top-p 2",
         lambda t, d: ["generate", "--model", str(t), "--prompt", "hi", "--top-p", "2"],
         ("'--top-p'", "less than or equal to 1", "ssl generate --help")),
    Case("seed-not-an-integer", "tag-pos", "--seed 1.5",
         lambda t, d: [*_pos(d), "--seed", "1.5"], ("'--seed'", "valid integer")),
    Case("generate-seed-out-of-range", "generate", "ssl generate --seed -1",
         lambda t, d: ["generate", "--model", str(t), "--prompt", "hi", "--seed", "-1"], ("--seed -1", "out of range")),
    Case("generate-classifier", "generate", "ssl generate on a fine-tuned classifier",
         lambda t, d: ["generate", "--model", _tiny_model(t, "cls", "BertForSequenceClassification"), "--prompt", "hi"],
         ("BertForSequenceClassification", "no trained causal-LM head")),
    Case("generate-pickle-only", "generate", "ssl generate on a causal LM with only pytorch_model.bin",
         lambda t, d: ["generate", "--model", _tiny_model(t, "gpt-bin", "GPT2LMHeadModel", weights="bin"),
                       "--prompt", "hi"], ("no safetensors weights",)),
    Case("generate-prompt-too-long", "generate", "a prompt longer than the model's positions",
         lambda t, d: ["generate", "--model", _tiny_model(t, "gpt", "GPT2LMHeadModel", positions=16), "--prompt",
                       "hello world " * 20], ("over the model's 16 positions",)),
    # ------------------------------------------------------------------ output and checkpoints
    Case("output-dir-is-a-file", "nli", "--output-dir names a file",
         lambda t, d: [*NLI, "--output-dir", _file(t, "out", "x")], ("is a file",)),
    Case("resume-from-missing-checkpoint", "finetune-qa", "resume_from_checkpoint names no directory",
         lambda t, d: [*_qa(d), "--set", f"training.resume_from_checkpoint={t}/checkpoint-9"], ("checkpoint not found",)),
]


# ---------------------------------------------------------------------- every task in the registry
# Each class of bad input below is tried on every task's own sample data (Task.write_sample_data), so a new task
# is covered without an edit here.


@dataclass(frozen=True)
class TaskClass:
    id: str
    problem: str
    argv: Callable[[Path, str, dict[str, Path]], list[str]]  # (scratch dir, command, sample files) -> arguments
    expect: Callable[[dict[str, Path]], tuple[str, ...]]  # sample files -> fragments of the error line


def _task_run(command: str, sample: dict[str, Path], train: str | None = None, dev: str | None = None,
              *extra: str) -> list[str]:
    return [*task_args(command, sample, train, dev), "--max-steps", "1", *extra]


def _suffix(sample: dict[str, Path]) -> str:
    return sample["train"].suffix


def _not_utf8(tmp: Path, source: Path) -> str:
    """The sample file with one Latin-1 byte (é) in the middle: a file saved by a tool in another encoding."""
    data = source.read_bytes()
    middle = data.index(b"\n", len(data) // 2) if b"\n" in data[len(data) // 2 :] else len(data) // 2
    return _file(tmp, f"latin1{source.suffix}", data[:middle] + b" caf\xe9" + data[middle:])


def _fifo_named(tmp: Path, suffix: str) -> str:
    path = tmp / f"pipe{suffix}"
    os.mkfifo(path)
    return str(path)


TASK_CLASSES = [
    TaskClass("train-file-missing", "the training file does not exist",
              lambda t, c, s: _task_run(c, s, str(t / f"nope{_suffix(s)}")), lambda s: ("data file not found",)),
    TaskClass("train-file-directory", "a directory passed as --train-file",
              lambda t, c, s: _task_run(c, s, str(t)), lambda s: ("is a directory",)),
    TaskClass("train-file-fifo", "a named pipe passed as --train-file",
              lambda t, c, s: _task_run(c, s, _fifo_named(t, _suffix(s))), lambda s: ("named pipe (FIFO)",)),
    TaskClass("train-file-nul-bytes", "a training file of NUL bytes in the task's format",
              lambda t, c, s: _task_run(c, s, _file(t, f"zeros{_suffix(s)}", bytes(1 << 20))),
              lambda s: ("NUL bytes",)),
    TaskClass("train-file-empty", "an empty training file in the task's format",
              lambda t, c, s: _task_run(c, s, _file(t, f"empty{_suffix(s)}", b"")), lambda s: (f"empty{_suffix(s)}",)),
    TaskClass("train-file-not-utf8", "a training file with a Latin-1 byte in the middle",
              lambda t, c, s: _task_run(c, s, _not_utf8(t, s["train"])),
              lambda s: (f"latin1{_suffix(s)}", "not UTF-8")),
    TaskClass("validation-file-not-utf8", "a validation file with a Latin-1 byte in the middle",
              lambda t, c, s: _task_run(c, s, None, _not_utf8(t, s["dev"])),
              lambda s: (f"latin1{s['dev'].suffix}", "not UTF-8")),
    TaskClass("recipe-key-typo", "--set on a misspelt training key",
              lambda t, c, s: _task_run(c, s, None, None, "--set", "training.num_train_epoch=2"),
              lambda s: ("training.num_train_epoch", "did you mean 'num_train_epochs'")),
    TaskClass("learning-rate-boolean", "--set training.learning_rate=true (a lax parser reads 1.0)",
              lambda t, c, s: _task_run(c, s, None, None, "--set", "training.learning_rate=true"),
              lambda s: ("training.learning_rate", "boolean, not a number")),
    TaskClass("option-typo", "a misspelt command-line option",
              lambda t, c, s: _task_run(c, s, None, None, "--lerning-rate", "1e-4"),
              lambda s: ("no such option --lerning-rate", "did you mean --learning-rate?", "--help")),
    TaskClass("learning-rate-infinite", "--learning-rate inf",
              lambda t, c, s: _task_run(c, s, None, None, "--learning-rate", "inf"),
              lambda s: ("training.learning_rate", "finite number")),
    TaskClass("seed-out-of-range", "--seed 2**32",
              lambda t, c, s: _task_run(c, s, None, None, "--seed", str(2**32)), lambda s: ("training.seed",)),
    TaskClass("output-dir-not-empty", "a non-empty output dir without --overwrite",
              lambda t, c, s: _task_run(c, s, None, None, "--output-dir", _non_empty_dir(t)),
              lambda s: ("not empty", "--overwrite")),
    TaskClass("output-dir-under-a-file", "--output-dir inside a path that is a file",
              lambda t, c, s: _task_run(c, s, None, None, "--output-dir", _file(t, "plain", "x") + "/run"),
              lambda s: ("cannot write output_dir",)),
    TaskClass("model-path-missing", "--model ./no/such/model",
              lambda t, c, s: _task_run(c, s, None, None, "--model", "./no/such/model"),
              lambda s: ("model path does not exist",)),
    TaskClass("model-invalid-config", "a model directory whose config.json is not JSON",
              lambda t, c, s: _task_run(c, s, None, None, "--model", str(Path(_file(t, "config.json", "{ x")).parent)),
              lambda s: ("config.json is not a valid config",)),
    TaskClass("resume-nothing", "--resume with no checkpoint",
              lambda t, c, s: _task_run(c, s, None, None, "--resume"), lambda s: ("nothing to resume",)),
]
CASES += [Case(f"{command}:{k.id}", command, k.problem, lambda t, d, k=k, c=command: k.argv(t, c, d["samples"][c]),
               lambda d, k=k, c=command: k.expect(d["samples"][c])) for command in all_tasks() for k in TASK_CLASSES]


def _socket(tmp: Path) -> str:
    """A listening Unix socket's path (kept open for the test's lifetime by the module's list)."""
    import socket

    path = tmp / "corpus.txt"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    _OPEN_SOCKETS.append(server)
    return str(path)


_OPEN_SOCKETS: list = []


def _unreadable(tmp: Path) -> str:
    path = Path(_file(tmp, "secret.tsv", "sentence\tlabel\ngood\t1\n"))
    path.chmod(0)
    return str(path)


@pytest.fixture(scope="module")
def valid(tmp_path_factory, demo_data):
    root = tmp_path_factory.mktemp("valid")
    text = write_text_corpus(root / "text", n_train=60, n_dev=10, seed=1)
    pos = write_conllu(english_pos(20, 1), root / "pos.conllu")
    return {"qa_train": str(demo_data["train"]), "qa_dev": str(demo_data["dev"]),
            "glue_train": _sst(root, "train.jsonl", sentiment(20, 1)), "glue_dev": _sst(root, "dev.jsonl", sentiment(5, 2)),
            "text_train": str(text["train"]), "pos_train": str(pos),
            "samples": {command: task.write_sample_data(root / command) for command, task in all_tasks().items()}}


def test_the_corpus_is_large_and_covers_every_subcommand():
    assert len(CASES) >= 40 and len({c.id for c in CASES}) == len(CASES)
    assert {c.command for c in CASES} == {*all_tasks(), "generate"}
    assert all(f"{command}:{k.id}" in {c.id for c in CASES} for command in all_tasks() for k in TASK_CLASSES)


# These run as real subprocesses too (exit status and stderr of a real process); the rest run the same CLI entry
# point in this process, which spares each case the ~3 s of importing torch and transformers.
# generate-prompt-too-long loads a model: in this process transformers' loading log would write to a stream an
# earlier test's capture has closed, when no training case has quieted it first (pytest -k generate).
IN_A_SUBPROCESS = {"truncated-json", "recipe-python-tag", "pickle-weights-only", "generate-prompt-too-long",
                   "generate-tokenizer-not-utf8"}


def _run_in_process(argv: list[str], capsys) -> tuple[int, str]:
    """``ssl ARGV`` through the console-script entry point, here: (exit code, stderr). Any exception other than
    SystemExit escapes and fails the test, as a traceback would."""
    from ssl_cli.cli import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    return stopped.value.code, capsys.readouterr().err


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(case, valid, tmp_path, capsys):
    import os

    if case.id == "unreadable-file" and os.geteuid() == 0:
        pytest.skip("root reads any file")
    argv = case.argv(tmp_path, valid)
    out = tmp_path / "out"
    existed = out.exists()
    before = sorted(p.name for p in out.iterdir()) if existed and out.is_dir() else None
    if "--output-dir" not in argv and argv[0] != "generate":
        argv = [*argv, "--output-dir", str(out)]
    if case.id in IN_A_SUBPROCESS:
        proc = run_cli(*argv, fresh=True)
        code, stderr = proc.returncode, proc.stderr
    else:
        code, stderr = _run_in_process(argv, capsys)
    assert code == 2, (code, stderr[-3000:])
    assert "Traceback" not in stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    for fragment in case.expect(valid) if callable(case.expect) else case.expect:
        assert fragment in errors[0], (fragment, errors[0])
    if before is not None:
        assert sorted(p.name for p in out.iterdir()) == before  # nothing of the user's lost or added
    elif not existed:
        assert not out.exists(), sorted(p.name for p in out.rglob("*"))  # no partial output
    assert not (tmp_path / "pwned").exists()


# Columns no task reads: a wrong type there is not an error.
METADATA_COLUMNS = {"id", "title", "idx", "sent_id", "is_impossible", "xpos", "lemma", "feats", "head", "deprel", "deps",
                    "misc"}


@pytest.mark.parametrize("command", sorted(all_tasks()))
def test_a_wrong_json_type_in_any_column_is_one_line(command, valid, tmp_path, capsys):
    """Every column the task reads, taken from its own sample data written as JSON lines, with the first record's
    value of another JSON type (an object where a string belongs, a string where a list or an object does): one
    line naming the column and the record."""
    from ssl_cli.data.files import load_data_file

    sample = valid["samples"][command]
    records = load_data_file(sample["train"], read_document=all_tasks()[command].read_document).to_list()
    columns = [c for c in records[0] if c not in METADATA_COLUMNS]
    assert columns
    for column in columns:
        first = {**records[0], column: "a string" if isinstance(records[0][column], (list, dict)) else {"oops": 1}}
        path = Path(_file(tmp_path, f"{column}.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n"
                                                                for r in [first, *records[1:]])))
        out = tmp_path / f"out-{column}"
        code, stderr = _run_in_process([*_task_run(command, sample, str(path)), "--output-dir", str(out)], capsys)
        errors = [line for line in stderr.splitlines() if line.startswith("error:")]
        assert code == 2 and "Traceback" not in stderr and len(errors) == 1, (column, code, stderr[-2000:])
        assert column in errors[0] and ("row 0" in errors[0] or "record 0" in errors[0]), (column, errors[0])
        assert not out.exists()


def test_huge_and_empty_lines_are_handled(valid, tmp_path):
    """Not errors: a 2-million-character sentence is truncated like any long one (it once stalled the scratch
    tokenizer's trainer for hours), and empty lines in a text corpus are skipped."""
    rows = [*sentiment(20, 1), {"sentence": "x" * 2_000_000, "label": 1}, {"sentence": "good " * 200_000, "label": 1}]
    out = tmp_path / "glue"
    run_cli(*_glue(valid, _sst(tmp_path, "train.jsonl", rows)), "--output-dir", str(out), check=True, timeout=300)
    assert json.loads((out / "all_results.json").read_text())["train_steps"] == 1
    corpus = _file(tmp_path, "corpus.txt", "\n\n" + "words and more words " * 100_000 + "\n\n\nshort line\n")
    out = tmp_path / "mlm"
    run_cli(*_mlm(corpus), "--set", "training.do_eval=false", "--output-dir", str(out), check=True, timeout=300)
    assert json.loads((out / "all_results.json").read_text())["train_steps"] == 1


@pytest.mark.parametrize("suffix", [".tsv", ".csv", ".jsonl", ".json", ".txt", ".conllu"])
def test_a_utf8_byte_order_mark_is_not_data(tmp_path, suffix):
    """Files saved by Windows tools start with U+FEFF: it must not become part of a column name or a text."""
    from ssl_cli.data.files import load_data_file

    body = {".tsv": "sentence\tlabel\ngood\t1\n", ".csv": "sentence,label\ngood,1\n",
            ".jsonl": json.dumps({"sentence": "good", "label": 1}) + "\n",
            ".json": json.dumps([{"sentence": "good", "label": 1}]), ".txt": "good\n",
            ".conllu": "# text = good\n1\tgood\tgood\tADJ\t_\t_\t0\troot\t_\t_\n\n"}[suffix]
    path = tmp_path / f"bom{suffix}"
    path.write_text("\ufeff" + body, encoding="utf-8")
    row = load_data_file(path)[0]
    first_column = "text" if suffix == ".txt" else "tokens" if suffix == ".conllu" else "sentence"
    assert first_column in row, row
    assert row[first_column] in ("good", ["good"]), row


def test_the_published_table_lists_every_case():
    doc = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    assert markdown_table() in doc, "docs/reliability.md's table is out of date: run `python -m tests.e2e.test_bad_input`"


def markdown_table() -> str:
    """The table docs/reliability.md publishes: the classes tried on every task, then the task-specific cases."""
    rows = ["| case | command | malformed input | the error names |", "|---|---|---|---|"]
    for k in TASK_CLASSES:
        rows.append(f"| `TASK:{k.id}` | every task | {k.problem} | {_fragments(k.expect({'train': Path('FILE.sfx'), 'dev': Path('FILE.sfx')}))} |")
    for c in CASES:
        if ":" not in c.id:
            rows.append(f"| `{c.id}` | {c.command} | {c.problem} | {_fragments(c.expect)} |")
    return "\n".join(rows)


def _fragments(expect: tuple[str, ...]) -> str:
    return " / ".join(f"`{e}`" for e in expect)


if __name__ == "__main__":
    print(markdown_table())
