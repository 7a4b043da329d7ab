"""Column types are checked from what ``datasets`` inferred, and an offending row is named, for a dataset in
memory and for a stream alike (a stream has no length to scan by)."""

from __future__ import annotations

import json

import pytest

from ssl_cli.data.schema import TEXT, TEXT_OR_WORDS, WORDS, require_column_type
from ssl_cli.errors import UserError


@pytest.fixture
def mixed(tmp_path):
    import datasets

    path = tmp_path / "mixed.jsonl"
    rows = [{"text": "a", "words": ["a"]}, {"text": 5, "words": "b c"}, {"text": "b", "words": ["d"]}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"map": datasets.load_dataset("json", data_files=str(path), split="train"),
            "stream": datasets.load_dataset("json", data_files=str(path), split="train", streaming=True)}


@pytest.mark.parametrize("form", ["map", "stream"])
@pytest.mark.parametrize(("column", "kind", "found"), [("text", TEXT, "a number (5)"),
                                                        ("words", WORDS, "a string ('b c')")])
def test_the_first_offending_row_is_named(mixed, form, column, kind, found):
    with pytest.raises(UserError, match=rf"row 1: '{column}' is {found.replace('(', '[(]').replace(')', '[)]')}"):
        require_column_type(mixed[form], column, kind, "mixed.jsonl")


def test_a_mix_of_allowed_types_passes(tmp_path):
    """Strings and lists of strings are both text for classification (CSL's keywords): a column that mixes them
    (typed Json by datasets) passes, and a number among them does not."""
    import datasets

    path = tmp_path / "keywords.jsonl"
    path.write_text("".join(json.dumps({"keywords": v}) + "\n" for v in ["a b", ["c", "d"], "e"]))
    ds = datasets.load_dataset("json", data_files=str(path), split="train")
    require_column_type(ds, "keywords", TEXT_OR_WORDS, "keywords.jsonl")
    with pytest.raises(UserError, match="row 0: 'keywords' is a string"):
        require_column_type(ds, "keywords", WORDS, "keywords.jsonl")
