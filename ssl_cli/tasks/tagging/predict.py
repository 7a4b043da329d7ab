"""``ssl predict`` for tag-pos models: raw sentences (or word lists) -> a tag per word; CoNLL-U out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ssl_cli.errors import UserError


def split_words(text: str) -> list[str]:
    """Words of a raw sentence: jieba's for Chinese (each character where jieba is not installed), whitespace's
    otherwise."""
    from ssl_cli.data.text import is_mostly_chinese

    if not is_mostly_chinese([text]):
        return text.split()
    try:
        import jieba
    except ImportError:
        return [ch for ch in text if not ch.isspace()]
    jieba.setLogLevel(60)
    return [w for w in jieba.cut(text, HMM=True) if w.strip()]


def words_of(row: dict[str, Any], number: int, settings: dict[str, Any]) -> list[str]:
    named = (settings.get("tagging") or {}).get("tokens_column")
    for key in (named, "tokens", "words"):
        if key and key in row:
            if not isinstance(row[key], list) or not all(isinstance(w, str) for w in row[key]):
                raise UserError(f"input row {number}: \"{key}\" must be a list of words (strings), e.g. "
                                '["The", "cat"]; a raw sentence goes in "text"')
            return list(row[key])
    if isinstance(row.get("text"), str):
        return split_words(row["text"])
    raise UserError(f"input row {number} has neither \"text\" (a sentence) nor \"tokens\" (a list of words); it has "
                    f"{sorted(row)}")


def windows(words: list[str], tokenizer: Any, room: int) -> list[tuple[int, int]]:
    """(start, end) word ranges whose subword tokens fit in ``room`` (a longer sentence is tagged window by
    window; a word longer than the room alone is cut by truncation)."""
    counts = [max(1, len(ids)) for ids in tokenizer(words, add_special_tokens=False)["input_ids"]] if words else []
    spans, start, used = [], 0, 0
    for i, count in enumerate(counts):
        if used + count > room and i > start:
            spans.append((start, i))
            start, used = i, 0
        used += count
    spans.append((start, len(words)))
    return spans


def tag_rows(model: Any, tokenizer: Any, rows: list[dict[str, Any]], settings: dict[str, Any],
             first_row: int) -> list[dict[str, Any]]:
    """Each row with ``tokens`` (its words) and ``tags`` (one per word, from its first subword)."""
    max_length = min((settings.get("data") or {}).get("max_seq_length") or 512, tokenizer.model_max_length)
    room = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    sentences = [words_of(row, number, settings) for number, row in enumerate(rows, first_row)]
    pieces = [(n, s, e) for n, words in enumerate(sentences) for s, e in windows(words, tokenizer, room)]
    encoded = tokenizer([sentences[n][s:e] for n, s, e in pieces], is_split_into_words=True, truncation=True,
                        max_length=max_length, padding=True, return_tensors="pt")
    predicted = model(**{k: v.to(model.device) for k, v in encoded.items()}).logits.argmax(-1).tolist()
    tags: list[list[str]] = [["O"] * len(words) for words in sentences]
    names = model.config.id2label
    for piece, (n, start, _) in enumerate(pieces):
        seen = set()
        for position, word in enumerate(encoded.word_ids(piece)):
            if word is not None and word not in seen:
                seen.add(word)
                tags[n][start + word] = names.get(predicted[piece][position], str(predicted[piece][position]))
    return [{**row, "tokens": words, "tags": t} for row, words, t in zip(rows, sentences, tags, strict=True)]


def write_conllu_rows(rows: list[dict[str, Any]], path: Path) -> bool:
    """CoNLL-U for a .conllu path: each sentence's words with their tags in the UPOS column."""
    if path.suffix != ".conllu":
        return False
    lines = []
    for number, row in enumerate(rows, 1):
        lines += [f"# sent_id = {row.get('id', number)}", f"# text = {row.get('text', ' '.join(row['tokens']))}"]
        lines += [f"{i}\t{word}\t_\t{tag}\t_\t_\t_\t_\t_\t_" for i, (word, tag) in
                  enumerate(zip(row["tokens"], row["tags"], strict=True), 1)]
        lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return True
