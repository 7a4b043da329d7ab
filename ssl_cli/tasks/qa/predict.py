"""``ssl predict`` for finetune-qa models: question + context per row -> answer span, score, offsets."""

from __future__ import annotations

from typing import Any

from ssl_cli.errors import UserError


def answer_rows(model: Any, tokenizer: Any, rows: list[dict[str, Any]], settings: dict[str, Any],
                first_row: int) -> list[dict[str, Any]]:
    """Each row with ``answer``, ``score``, ``start`` and ``end`` (character offsets into its context), found as
    finetune-qa's evaluation finds them (its windows, span search and n-best softmax)."""
    from ssl_cli.tasks.qa.pipeline import ExtractiveQAPipeline

    for number, row in enumerate(rows, first_row):
        if not (isinstance(row.get("question"), str) and isinstance(row.get("context"), str)):
            raise UserError(f"input row {number} needs \"question\" and \"context\" (strings); it has {sorted(row)}")
    qa = ExtractiveQAPipeline(model=model, tokenizer=tokenizer, device=model.device)
    answers = qa([{"question": row["question"], "context": row["context"]} for row in rows])
    answers = answers if isinstance(answers, list) else [answers]
    return [{**row, **answer} for row, answer in zip(rows, answers, strict=True)]
