"""CoNLL-U (Universal Dependencies) and CoNLL-2003-style column files: read, and write back with new tags.

Reading keeps only what tagging needs and is strict about the rest, because a
silently mis-read treebank gives plausible but wrong accuracies:

* CoNLL-U: comment lines (``#``) are skipped (``# sent_id`` is kept), and so
  are multi-word token ranges (``1-2``) and empty nodes (``1.1``): tags belong
  to syntactic words. A word line must have 10 tab-separated fields and the
  next integer ID; anything else is an error naming the file and line.
* Column files (CoNLL-2003 NER and friends): whitespace-separated columns,
  token first; blank lines end sentences; ``-DOCSTART-`` lines are skipped.
  Four columns are named as Hugging Face's conll2003 dataset names them
  (``pos_tags chunk_tags ner_tags``); two are ``tags``; otherwise ``column_1``...

``write_with_tags`` rewrites the source file line for line, changing only the
tag column of word lines, so predictions drop into UD tooling.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ssl_cli.errors import UserError, not_utf8

CONLLU_SUFFIXES = (".conllu",)
COLUMN_SUFFIXES = (".conll", ".conll03", ".iob", ".bio", ".bioes")
CONLLU_FIELDS = ("id", "form", "lemma", "upos", "xpos", "feats", "head", "deprel", "deps", "misc")
CONLLU_TAG_COLUMNS = {"upos": 3, "xpos": 4}
MISSING = "_"
_DOCSTART = "-DOCSTART-"
_CONLL2003_NAMES = ("pos_tags", "chunk_tags", "ner_tags")


def is_conll_file(path: Path) -> bool:
    return path.suffix.lower() in CONLLU_SUFFIXES + COLUMN_SUFFIXES


def read_conll(path: Path) -> list[dict[str, Any]]:
    """Sentences of a CoNLL-U or column file, by suffix: ``{"sent_id", "tokens", <tag columns>...}``."""
    if path.suffix.lower() in CONLLU_SUFFIXES:
        return read_conllu(path)
    return read_columns(path)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Numbered lines (a UTF-8 byte-order mark is dropped); text that is not UTF-8 is a one-line error."""
    with path.open(encoding="utf-8-sig") as handle:
        try:
            for number, line in enumerate(handle, start=1):
                yield number, line.rstrip("\r\n")
        except UnicodeDecodeError:
            raise UserError(not_utf8(str(path))) from None


def read_conllu(path: Path) -> list[dict[str, Any]]:
    """Sentences with ``tokens``, ``upos`` and ``xpos`` per syntactic word, and the ``sent_id`` comment."""
    sentences: list[dict[str, Any]] = []
    current: dict[str, Any] = _new_sentence()
    for number, line in _lines(path):
        if not line.strip():
            _close_sentence(current, sentences)
            current = _new_sentence()
            continue
        if line.startswith("#"):
            match = re.match(r"#\s*sent_id\s*=\s*(.*\S)", line)
            if match:
                current["sent_id"] = match.group(1)
            continue
        fields = line.split("\t")
        if len(fields) != len(CONLLU_FIELDS):
            raise UserError(f"{path}:{number}: expected 10 tab-separated fields (CoNLL-U), found {len(fields)}; "
                            "fix the line (spaces instead of tabs?) or name the file .conll for whitespace columns")
        word_id = fields[0]
        if re.fullmatch(r"\d+-\d+", word_id) or re.fullmatch(r"\d+\.\d+", word_id):
            continue  # multi-word token range or empty node: no tag of its own
        expected = len(current["tokens"]) + 1
        if not word_id.isdigit() or int(word_id) != expected:
            raise UserError(f"{path}:{number}: word ID '{word_id}' where {expected} was expected; "
                            "IDs must count 1, 2, 3... within a sentence (ranges 1-2 and empty nodes 1.1 are allowed)")
        if not fields[1]:
            raise UserError(f"{path}:{number}: empty FORM field; every word needs its text")
        current["tokens"].append(fields[1])
        current["upos"].append(fields[3])
        current["xpos"].append(fields[4])
    _close_sentence(current, sentences)
    _check_not_empty(sentences, path)
    return sentences


def _new_sentence() -> dict[str, Any]:
    return {"sent_id": None, "tokens": [], "upos": [], "xpos": []}


def _close_sentence(current: dict[str, Any], sentences: list[dict[str, Any]]) -> None:
    if current["tokens"]:
        current["sent_id"] = current["sent_id"] or str(len(sentences) + 1)
        sentences.append(current)


def _check_not_empty(sentences: list[dict[str, Any]], path: Path) -> None:
    if not sentences:
        raise UserError(f"{path} contains no sentences (expected CoNLL-U word lines or token/tag columns)")


def column_names(width: int) -> list[str]:
    """Names of a column file's tag columns (after the token column)."""
    if width == 4:
        return list(_CONLL2003_NAMES)
    if width == 2:
        return ["tags"]
    return [f"column_{i}" for i in range(1, width)]


def read_columns(path: Path) -> list[dict[str, Any]]:
    """Sentences of a whitespace-separated column file (token first, tags after)."""
    sentences: list[dict[str, Any]] = []
    rows: list[list[str]] = []
    width: int | None = None

    def close() -> None:
        if rows:
            names = column_names(width or 1)
            sentence: dict[str, Any] = {"sent_id": str(len(sentences) + 1), "tokens": [r[0] for r in rows]}
            sentence.update({name: [r[i + 1] for r in rows] for i, name in enumerate(names)})
            sentences.append(sentence)
            rows.clear()

    for number, line in _lines(path):
        fields = line.split()
        if not fields:
            close()
            continue
        if fields[0] == _DOCSTART:
            close()
            continue
        if width is None:
            width = len(fields)
            if width < 2:
                raise UserError(f"{path}:{number}: a token without a tag; column files need 'token tag' per line")
        if len(fields) != width:
            raise UserError(f"{path}:{number}: {len(fields)} columns where the file's first word line has {width}; "
                            "every word line needs the same columns")
        rows.append(fields)
    close()
    _check_not_empty(sentences, path)
    return sentences


def tag_field_index(path: Path, tag_column: str) -> int | None:
    """Which whitespace/tab field of a word line holds ``tag_column`` in this file (None: no such column)."""
    if path.suffix.lower() in CONLLU_SUFFIXES:
        return CONLLU_TAG_COLUMNS.get(tag_column)
    first = next((line.split() for _, line in _lines(path) if line.split() and line.split()[0] != _DOCSTART), [])
    names = column_names(len(first))
    return 1 + names.index(tag_column) if tag_column in names else None


def write_with_tags(source: Path, target: Path, tag_column: str, predictions: list[list[str]]) -> bool:
    """``source`` line for line with the tag column of each word line replaced; stops after the predicted sentences.

    Multi-word token ranges, empty nodes, comments and every other field are
    kept byte for byte, so UD's validators and evaluation scripts accept it.
    False (nothing written) when the file has no ``tag_column``.
    """
    conllu = source.suffix.lower() in CONLLU_SUFFIXES
    index = tag_field_index(source, tag_column)
    if index is None:
        return False
    out: list[str] = []
    sentence, word, in_sentence = 0, 0, False
    for _, line in _lines(source):
        if sentence >= len(predictions):
            break
        fields = line.split("\t") if conllu else re.split(r"(\s+)", line)
        is_word = _is_word_line(fields, conllu)
        if is_word:
            in_sentence = True
            leading = 2 if fields[0] == "" else 0  # a line indented with whitespace
            position = index if conllu else leading + 2 * index  # re.split keeps the separators between fields
            fields[position] = predictions[sentence][word]
            word += 1
            line = ("\t" if conllu else "").join(fields)
        elif in_sentence and (not line.strip() or (not conllu and line.split()[0] == _DOCSTART)):
            sentence, word, in_sentence = sentence + 1, 0, False
        out.append(line)
    target.write_text("\n".join(out) + "\n", encoding="utf-8")
    return True


def _is_word_line(fields: list[str], conllu: bool) -> bool:
    if conllu:
        return len(fields) == len(CONLLU_FIELDS) and fields[0].isdigit()
    tokens = [f for f in fields if f.strip()]
    return bool(tokens) and tokens[0] != _DOCSTART
