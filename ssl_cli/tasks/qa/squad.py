"""SQuAD's nested JSON (data[].paragraphs[].qas[]), as DRCD and CMRC 2018 distribute it too, as flat records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ssl_cli.data.schema import answer_start_of, answer_text_of
from ssl_cli.errors import UserError


def flatten_squad(document: dict[str, Any], path: Path) -> list[dict[str, Any]]:
    """SQuAD nested JSON -> flat records (id, title, context, question, answers, is_impossible)."""
    if "data" not in document or not isinstance(document["data"], list):
        raise UserError(
            f"{path}: SQuAD-style JSON needs a top-level 'data' list of articles "
            "(data[].paragraphs[].qas[]); for flat records use JSON lines"
        )
    records = []
    for a, article in enumerate(document["data"]):
        title = article.get("title", "") if isinstance(article, dict) else ""
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise UserError(f"{path}: data[{a}] has no 'paragraphs' list")
        for p, paragraph in enumerate(paragraphs):
            where = f"data[{a}].paragraphs[{p}]"
            context = paragraph.get("context") if isinstance(paragraph, dict) else None
            if not isinstance(context, str):
                raise UserError(f"{path}: {where} has no 'context' string")
            questions = paragraph.get("qas", [])
            if not isinstance(questions, list):
                raise UserError(f"{path}: {where}.qas must be a list of questions, not {type(questions).__name__}")
            for q, qa in enumerate(questions):
                records.append(_flat_qa(qa, context, title, f"{where}.qas[{q}]", path))
    return records


def _flat_qa(qa: dict[str, Any], context: str, title: str, where: str, path: Path) -> dict[str, Any]:
    if not isinstance(qa, dict):
        raise UserError(f"{path}: {where} must be an object with id, question and answers, not {type(qa).__name__}")
    for key in ("question", "id"):
        if key not in qa:
            raise UserError(f"{path}: {where} has no '{key}' field")
    answers = qa.get("answers", [])
    if not isinstance(answers, list):
        raise UserError(f"{path}: {where}.answers must be a list of {{text, answer_start}}")
    texts, starts = [], []
    for n, answer in enumerate(answers):
        if not isinstance(answer, dict) or "text" not in answer or "answer_start" not in answer:
            raise UserError(f"{path}: {where}.answers[{n}] needs 'text' and 'answer_start'")
        texts.append(answer_text_of(answer["text"], f"{path}: {where}.answers[{n}]"))
        starts.append(answer_start_of(answer["answer_start"], f"{path}: {where}.answers[{n}]"))
    return {
        "id": str(qa["id"]),
        "title": str(title),
        "context": context,
        "question": qa["question"],  # its type is checked with the flat records' (ssl_cli.tasks.qa.task.canonicalise)
        "answers": {"text": texts, "answer_start": starts},
        "is_impossible": bool(qa.get("is_impossible", False)) or not texts,
    }
