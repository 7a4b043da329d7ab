"""The multiple-choice layouts ``ssl multiple-choice`` reads, each turned into one row per question.

- SWAG (``run_swag.py``'s input, and the Hub's ``swag``): ``sent1``, ``sent2``,
  ``ending0`` ... ``endingN``, ``label``; a choice is ``sent2 + " " + ending``.
- Rows with a list of choices: ``context`` / ``article`` / ``passage``,
  ``question``, ``choices`` / ``options`` / ``endings``, and ``label`` (an
  index) or ``answer`` (an index, a letter A-Z, or the answer's text). RACE on
  the Hub has this shape (``article``, ``question``, ``options``, ``answer``).
- RACE files as distributed: one object per passage, ``article`` with lists
  ``questions``, ``options`` and ``answers`` (letters).
- C3 files as distributed: a JSON list of ``[passage lines, questions, id]``,
  each question ``{question, choice: [...], answer: "the choice's text"}``; and
  the Hub's ``c3`` (``documents`` and a ``questions`` dict of lists).

Canonical rows: ``context``, ``question``, ``choices`` (a list of strings),
``label`` (the right choice's index; absent in an unlabelled test set) and
``idx`` (the question's position in its source).
"""

from __future__ import annotations

import re
from typing import Any

from ssl_cli.errors import UserError

CONTEXT_COLUMNS = ("context", "article", "passage", "sent1", "startphrase", "premise")
QUESTION_COLUMNS = ("question", "sent2", "query")
CHOICE_COLUMNS = ("choices", "options", "endings", "choice")
LABEL_COLUMNS = ("label", "answer", "labels", "gold")
ENDING = re.compile(r"ending(\d+)")


def read_document(document: Any, path: Any) -> list[dict[str, Any]] | None:
    """A C3 or RACE file (not a list of records) as one record per question; None: not one of these."""
    if isinstance(document, dict) and "article" in document and "questions" in document:
        return passage_questions(document, str(path))
    if isinstance(document, list) and document and all(isinstance(item, list) for item in document):
        return [record for n, item in enumerate(document) for record in c3_questions(item, f"{path}: item {n}")]
    return None


def passage_questions(passage: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """RACE: one passage, parallel lists of questions, options and answers."""
    questions, options, answers = passage.get("questions"), passage.get("options"), passage.get("answers", [])
    if not isinstance(questions, list) or not isinstance(options, list) or len(questions) != len(options):
        raise UserError(f"{where}: RACE-style 'questions' and 'options' must be lists of one length")
    if answers and len(answers) != len(questions):
        raise UserError(f"{where}: {len(questions)} questions but {len(answers)} answers")
    return [{"context": passage["article"], "question": q, "choices": o, **({"answer": answers[i]} if answers else {})}
            for i, (q, o) in enumerate(zip(questions, options, strict=True))]


def c3_questions(item: list[Any], where: str) -> list[dict[str, Any]]:
    """C3: ``[passage lines, [{question, choice, answer}...], id]``."""
    if len(item) < 2 or not isinstance(item[0], list) or not isinstance(item[1], list):
        raise UserError(f"{where}: a C3 item is a list of the passage lines, its questions and an id")
    context = "\n".join(str(line) for line in item[0])
    records = []
    for q, question in enumerate(item[1]):
        if not isinstance(question, dict) or "question" not in question or "choice" not in question:
            raise UserError(f"{where}: question {q} needs 'question' and 'choice'")
        records.append({"context": context, "question": question["question"], "choices": question["choice"],
                        **({"answer": question["answer"]} if "answer" in question else {})})
    return records


def choice_layout(columns: list[str], source: str, named: dict[str, str] | None = None) -> dict[str, Any]:
    """Which columns hold the context, the question, the choices (one list column, or SWAG's endings) and the
    label, for a table with ``columns``; ``named`` holds the ones the user named (already checked to exist)."""
    named = named or {}
    endings = [] if "choices" in named else sorted((c for c in columns if ENDING.fullmatch(c)),
                                                   key=lambda c: int(ENDING.fullmatch(c)[1]))
    choices = named.get("choices") or next((c for c in CHOICE_COLUMNS if c in columns), None)
    if not endings and choices is None:
        raise UserError(f"{source}: no choices (looked for {', '.join(CHOICE_COLUMNS)} or ending0, ending1 ...); "
                        f"columns: {', '.join(columns)}; name it with --choices-column")
    context = named.get("context") or next((c for c in CONTEXT_COLUMNS if c in columns), None)
    question = named.get("question") or next((c for c in QUESTION_COLUMNS if c in columns), None)
    if context is None and question is None:
        raise UserError(f"{source}: no context or question column (looked for {', '.join(CONTEXT_COLUMNS)}, "
                        f"{', '.join(QUESTION_COLUMNS)}); columns: {', '.join(columns)}; name one with "
                        "--context-column or --question-column")
    label = named.get("label") or next((c for c in LABEL_COLUMNS if c in columns), None)
    return {"context": context, "question": question, "choices": choices, "endings": endings, "label": label}


def label_index(value: Any, choices: list[str], where: str) -> int:
    """The right choice's index from an index, a letter (A = 0) or the choice's own text."""
    if isinstance(value, bool):
        raise UserError(f"{where}: label {value!r} is not a choice index, letter or text")
    if isinstance(value, int) or isinstance(value, float) and value.is_integer():
        index = int(value)
    elif isinstance(value, str) and value.strip().isdigit():
        index = int(value.strip())
    elif isinstance(value, str) and len(value.strip()) == 1 and value.strip().isalpha() and value.strip() not in choices:
        index = ord(value.strip().upper()) - ord("A")
    elif isinstance(value, str) and value in choices:
        index = choices.index(value)
    else:
        raise UserError(f"{where}: label {str(value)[:40]!r} is neither a choice's index, letter nor text")
    if not 0 <= index < len(choices):
        raise UserError(f"{where}: label {value!r} points at choice {index}, but there are {len(choices)} choices")
    return index
