"""``ssl predict`` for finetune-glue and nli models: a text (and its pair) per row -> label and score."""

from __future__ import annotations

from typing import Any

from ssl_cli.errors import UserError

FIRST = ("text", "sentence", "sentence1", "premise", "question", "question1")
SECOND = ("text_pair", "sentence2", "hypothesis", "question2")


def _text_of(row: dict[str, Any], named: str | None, candidates: tuple[str, ...]) -> Any:
    if named and named in row:
        return row[named]
    return next((row[c] for c in candidates if c in row), None)


def classify_rows(model: Any, tokenizer: Any, rows: list[dict[str, Any]], settings: dict[str, Any],
                  first_row: int) -> list[dict[str, Any]]:
    """Each row with ``label`` (the model's label name) and ``score`` (its probability); a regression model's
    rows get ``score``, its prediction."""
    import torch

    columns = settings.get("classification") or {}
    texts, pairs = [], []
    for number, row in enumerate(rows, first_row):
        text = _text_of(row, columns.get("text_column"), FIRST)
        if text is not None and not isinstance(text, str):
            raise UserError(f"input row {number}: its text is {type(text).__name__} {text!r}, not a string")
        if not isinstance(text, str):
            raise UserError(f"input row {number} has no text: give each row a \"text\" (and, for pairs, "
                            f"\"text_pair\"); it has {sorted(row)}")
        texts.append(text)
        pairs.append(_text_of(row, columns.get("text_pair_column"), SECOND))
    if any(p is not None for p in pairs) and not all(isinstance(p, str) for p in pairs):
        raise UserError(f"input rows {first_row}..{first_row + len(rows) - 1}: some have a text_pair and some not; "
                        "give every row of a pair model both texts")
    max_length = (settings.get("data") or {}).get("max_seq_length") or tokenizer.model_max_length
    encoded = tokenizer(texts, pairs if pairs[0] is not None else None, truncation=True,
                        max_length=min(max_length, tokenizer.model_max_length), padding=True, return_tensors="pt")
    logits = model(**encoded.to(model.device)).logits.float()
    if logits.shape[-1] == 1:
        return [{**row, "score": float(v)} for row, v in zip(rows, logits[:, 0].tolist(), strict=True)]
    probabilities = torch.softmax(logits, dim=-1)
    best = probabilities.argmax(dim=-1).tolist()
    names = model.config.id2label
    return [{**row, "label": names.get(i, str(i)), "score": float(probabilities[n, i])}
            for n, (row, i) in enumerate(zip(rows, best, strict=True))]
