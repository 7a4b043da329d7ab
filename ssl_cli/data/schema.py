"""Column types, checked once per file before any row is converted.

JSON carries types, and a record with a string where a list belongs (``"tokens": "a b"``) would otherwise be read
character by character, and a number where text belongs would fail deep inside a tokenizer. ``datasets`` has already
inferred each column's type while loading, so one look at ``features`` finds the problem without reading a row;
the row is then looked up only to name it in the error.
"""

from __future__ import annotations

from typing import Any

from ssl_cli.errors import UserError

TEXT = "text"  # a string
WORDS = "words"  # a list of strings
TAGS = "tags"  # a list of strings or class ids
TEXT_OR_WORDS = "text or a list of strings"  # CSL's keywords: a list joined into one text
LABEL = "label"  # one string, number or boolean

_EXPECTED = {TEXT: "a string", WORDS: "a list of strings", TAGS: "a list of tags (strings or class ids)",
             TEXT_OR_WORDS: "a string or a list of strings", LABEL: "one label (a string or a number)"}


def require_column_type(ds: Any, column: str, kind: str, source: str) -> None:
    """Refuse, in one line naming the column, the first offending row and the type wanted, a column whose values
    are not of ``kind``. A stream without inferred types is checked on its first record."""
    feature = (getattr(ds, "features", None) or {}).get(column)
    if feature is None:
        first = next(iter(ds.take(1)), None) if hasattr(ds, "take") else None
        if first is not None and not _value_fits(first.get(column), kind):
            raise UserError(_message(source, column, kind, 0, first.get(column)))
        return
    if _feature_fits(feature, kind):
        return
    offender = _first_offender(ds, column, kind)
    if offender is not None:  # else every value fits, in a mix of the allowed types (strings and lists of strings)
        raise UserError(_message(source, column, kind, *offender))


def _feature_fits(feature: Any, kind: str) -> bool:
    import datasets

    if kind == TEXT:
        return _is_string(feature)
    if kind == LABEL:
        return isinstance(feature, (datasets.Value, datasets.ClassLabel)) and feature.dtype not in ("null", "binary")
    inner = _list_item(feature)
    if kind == TEXT_OR_WORDS:
        return _is_string(feature) or (inner is not None and _is_string(inner))
    if inner is None:
        return False
    if kind == WORDS:
        return _is_string(inner)
    return _is_string(inner) or isinstance(inner, datasets.ClassLabel) or (
        isinstance(inner, datasets.Value) and inner.dtype.startswith(("int", "uint")))


def _list_item(feature: Any) -> Any | None:
    """The item type of a list column, in any ``datasets`` version (List in 4.x, Sequence or ``[item]`` before)."""
    import datasets

    if isinstance(feature, list) and len(feature) == 1:
        return feature[0]
    kinds = tuple(k for name in ("List", "LargeList", "Sequence") if isinstance(k := getattr(datasets, name, None), type))
    return feature.feature if isinstance(feature, kinds) else None


def _is_string(feature: Any) -> bool:
    import datasets

    return isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string")


def _value_fits(value: Any, kind: str) -> bool:
    if kind == TEXT:
        return isinstance(value, str)
    if kind == LABEL:
        return value is None or isinstance(value, (str, int, float))
    if isinstance(value, str):
        return kind == TEXT_OR_WORDS
    if not isinstance(value, list):
        return False
    if kind == TAGS:
        return all(isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool)) for v in value)
    return all(isinstance(v, str) for v in value)


STREAM_ROWS_CHECKED = 10_000  # a stream is checked on its start; later records are the reader's (``_non_empty``)


def _first_offender(ds: Any, column: str, kind: str) -> tuple[int, Any] | None:
    """The first row whose value does not fit, and the value, or None."""
    if not hasattr(ds, "__len__"):  # a stream whose reader declared types
        rows = (row[column] for row in ds.take(STREAM_ROWS_CHECKED))
    else:
        rows = (value for start in range(0, len(ds), 1000) for value in ds[start : start + 1000][column])
    return next(((row, value) for row, value in enumerate(rows) if not _value_fits(value, kind)), None)


def _message(source: str, column: str, kind: str, row: int, value: Any) -> str:
    return (f"{source}: row {row}: '{column}' is {_describe(value)}, not {_EXPECTED[kind]}; fix the data "
            f"(every record's '{column}' must be {_EXPECTED[kind]})")


def _describe(value: Any) -> str:
    if value is None:
        return "missing (null)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value[:30]!r})"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        odd = next((v for v in value if not isinstance(v, str)), None)
        return f"a list holding {_describe(odd)}" if odd is not None else "a list"
    return type(value).__name__


def answer_start_of(value: Any, where: str) -> int:
    """A QA answer's character offset: a whole number (or its digits, as some exports write it)."""
    if isinstance(value, bool) or not isinstance(value, int) and not (isinstance(value, str) and value.isdigit()):
        raise UserError(f"{where}: answer_start is {value!r}: it must be a whole number (the answer's character "
                        "offset in the context)")
    return int(value)


def answer_text_of(value: Any, where: str) -> str:
    """A QA answer's text: a string (a number is its digits, as some exports write a numeric answer)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise UserError(f"{where}: an answer's text is {_describe(value)}, not a string; fix the data")
    return str(value)
