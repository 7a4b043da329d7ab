"""Small, learnable sentence(-pair) tasks the project generates itself (tests, offline recipes).

* ``sentiment``: a review with filler words and one or two opinion words;
  the label follows the opinion words (single sentence, 2 classes).
* ``colour_match``: a premise naming three colours and a hypothesis
  "something is <word>": entailment when the premise names that colour,
  contradiction when it names other colours only, neutral when the word is a
  shape (pairs, 3 classes: telling the first two apart needs both sentences).
  A from-scratch bert-tiny learns neutral within a few epochs but not the
  comparison (accuracy plateaus at 0.65; measured up to 15 epochs).
* ``overlap``: two word lists; the score is 5 x the share of words they have
  in common (regression, like STS-B's 0-5 scale).

Rows are dicts with GLUE's column names; ``write_table`` writes TSV (as GLUE
distributes it), CSV, JSONL or JSON.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

FILLER = ("the", "movie", "story", "was", "and", "a", "film", "plot", "actors", "really", "quite", "this", "it", "of",
          "music", "scenes", "ending", "very", "with", "some", "we", "saw", "for", "hours", "cast")
POSITIVE = ("great", "wonderful", "brilliant", "moving", "superb", "delightful", "charming", "excellent")
NEGATIVE = ("awful", "boring", "terrible", "dull", "clumsy", "painful", "tedious", "dreadful")
OBJECTS = ("car", "house", "bird", "lamp", "boat", "kite", "chair", "door", "cup", "hat")
COLOURS = ("red", "blue", "green", "yellow", "black", "white", "purple", "orange")
SHAPES = ("round", "square", "flat", "tall", "long", "tiny")


def sentiment(n: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        label = int(rng.integers(2))
        words = list(rng.choice(FILLER, size=int(rng.integers(5, 14))))
        for _ in range(int(rng.integers(1, 3))):
            words.insert(int(rng.integers(len(words) + 1)), str(rng.choice(POSITIVE if label else NEGATIVE)))
        rows.append({"sentence": " ".join(words), "label": label})
    return rows


def colour_match(n: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        seen = list(rng.choice(COLOURS, size=3, replace=False))
        premise = f"the {rng.choice(OBJECTS)} is {seen[0]} , the {rng.choice(OBJECTS)} is {seen[1]} and the " \
                  f"{rng.choice(OBJECTS)} is {seen[2]}"
        label = str(rng.choice(["entailment", "contradiction", "neutral"]))
        if label == "entailment":  # a colour the premise mentions
            hypothesis = f"something is {rng.choice(seen)}"
        elif label == "contradiction":  # a colour it does not
            hypothesis = f"something is {rng.choice([c for c in COLOURS if c not in seen])}"
        else:  # not about colour at all
            hypothesis = f"something is {rng.choice(SHAPES)}"
        rows.append({"sentence1": premise, "sentence2": hypothesis, "label": label})
    return rows


def overlap(n: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        first = list(rng.choice(FILLER + POSITIVE, size=6, replace=False))
        shared = int(rng.integers(0, 7))
        second = first[:shared] + [w for w in rng.choice(NEGATIVE + OBJECTS, size=6 - shared, replace=False)]
        rng.shuffle(second)
        rows.append({"sentence1": " ".join(first), "sentence2": " ".join(second), "label": round(5 * shared / 6, 3)})
    return rows


def write_table(rows: list[dict[str, Any]], path: str | Path, header: bool = True) -> Path:
    """Rows to ``path`` by suffix: .tsv (no quoting, as GLUE), .csv, .jsonl or .json."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix in (".tsv", ".csv"):
        with path.open("w", encoding="utf-8", newline="") as handle:
            tsv = path.suffix == ".tsv"
            writer = csv.writer(handle, delimiter="\t" if tsv else ",", quoting=csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL,
                                escapechar="\\" if tsv else None, lineterminator="\n")
            if header:
                writer.writerow(rows[0].keys())
            writer.writerows([row.values() for row in rows])
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    else:
        path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return path


GENERATORS = {"sentiment": sentiment, "colour_match": colour_match, "overlap": overlap}


def write_task(name: str, out_dir: str | Path, n_train: int, n_dev: int, seed: int = 0, suffix: str = ".tsv") -> dict[str, Path]:
    """train/dev files of one generated task."""
    make = GENERATORS[name]
    out = Path(out_dir)
    return {"train": write_table(make(n_train, seed), out / f"train{suffix}"),
            "dev": write_table(make(n_dev, seed + 1000), out / f"dev{suffix}")}


# ----------------------------------------------------------------------------- tagging (tag-pos)

EN_WORDS = {
    "DET": ("the", "a", "this", "every", "some"),
    "ADJ": ("old", "red", "quiet", "happy", "small", "bright", "heavy"),
    "NOUN": ("dog", "teacher", "garden", "river", "city", "letter", "window", "child"),
    "VERB": ("sees", "finds", "likes", "paints", "opens", "visits", "carries"),
    "PRON": ("she", "they", "we", "he"),
    "ADP": ("in", "near", "under", "with"),
}
# Tagged NOUN after a determiner or adjective and VERB after the subject: the context decides.
EN_AMBIGUOUS = ("watch", "light", "plant", "ring", "walk")
ZH_WORDS = {
    "DET": ("这", "那", "每"),
    "ADJ": ("红", "大", "新", "旧", "安静"),
    "NOUN": ("学生", "老师", "苹果", "城市", "电脑", "花园", "书"),
    "VERB": ("喜欢", "看见", "买", "写", "打开", "参观"),
    "PRON": ("他", "她", "我们"),
    "NUM": ("一", "两", "三"),
}
PERSONS = (("anna",), ("li", "wei"), ("maria", "lopez"), ("tom",), ("sara", "kim"), ("omar",))
PLACES = (("paris",), ("new", "york"), ("berlin",), ("hong", "kong"), ("lima",), ("cairo",))
NER_FILLER = ("visited", "met", "left", "saw", "in", "with", "and", "yesterday", "today", "the", "friends", "of")


def _noun_phrase(rng: np.random.Generator, words: dict[str, tuple[str, ...]], ambiguous: tuple[str, ...]) -> list[tuple[str, str]]:
    phrase = [(str(rng.choice(words["DET"])), "DET")]
    if rng.random() < 0.5:
        phrase.append((str(rng.choice(words["ADJ"])), "ADJ"))
    pool = words["NOUN"] + ambiguous
    phrase.append((str(rng.choice(pool)), "NOUN"))
    return phrase


def english_pos(n: int, seed: int) -> list[list[tuple[str, str]]]:
    """Sentences of (word, UPOS): 'the old watch sees a river near the city .' with words that are NOUN or VERB by position."""
    rng = np.random.default_rng(seed)
    sentences = []
    for _ in range(n):
        subject = [(str(rng.choice(EN_WORDS["PRON"])), "PRON")] if rng.random() < 0.3 else _noun_phrase(rng, EN_WORDS, EN_AMBIGUOUS)
        verb = str(rng.choice(EN_WORDS["VERB"] + EN_AMBIGUOUS))
        sentence = [*subject, (verb, "VERB"), *_noun_phrase(rng, EN_WORDS, EN_AMBIGUOUS)]
        if rng.random() < 0.5:
            sentence += [(str(rng.choice(EN_WORDS["ADP"])), "ADP"), *_noun_phrase(rng, EN_WORDS, EN_AMBIGUOUS)]
        sentences.append([*sentence, (".", "PUNCT")])
    return sentences


def chinese_pos(n: int, seed: int) -> list[list[tuple[str, str]]]:
    """Sentences of (word, UPOS) in Simplified Chinese: 这 个 安静 的 老师 喜欢 三 本 书 。 (words of 1-2 characters)."""
    rng = np.random.default_rng(seed)
    sentences = []
    for _ in range(n):
        sentence: list[tuple[str, str]] = []
        if rng.random() < 0.3:
            sentence.append((str(rng.choice(ZH_WORDS["PRON"])), "PRON"))
        else:
            sentence += [(str(rng.choice(ZH_WORDS["DET"])), "DET"), ("个", "NOUN")]
            if rng.random() < 0.5:
                sentence += [(str(rng.choice(ZH_WORDS["ADJ"])), "ADJ"), ("的", "PART")]
            sentence.append((str(rng.choice(ZH_WORDS["NOUN"])), "NOUN"))
        sentence.append((str(rng.choice(ZH_WORDS["VERB"])), "VERB"))
        if rng.random() < 0.5:
            sentence += [(str(rng.choice(ZH_WORDS["NUM"])), "NUM"), ("本", "NOUN")]
        sentence += [(str(rng.choice(ZH_WORDS["NOUN"])), "NOUN"), ("。", "PUNCT")]
        sentences.append(sentence)
    return sentences


def english_ner(n: int, seed: int) -> list[list[tuple[str, str]]]:
    """Sentences of (word, BIO tag) with PER and LOC entities of one or two words among filler words."""
    rng = np.random.default_rng(seed)
    sentences = []
    for _ in range(n):
        sentence: list[tuple[str, str]] = []
        for _ in range(int(rng.integers(2, 5))):
            if rng.random() < 0.4:
                kind, names = ("PER", PERSONS) if rng.random() < 0.5 else ("LOC", PLACES)
                name = names[int(rng.integers(len(names)))]
                sentence += [(word, ("B-" if i == 0 else "I-") + kind) for i, word in enumerate(name)]
            else:
                sentence.append((str(rng.choice(NER_FILLER)), "O"))
        sentences.append([*sentence, (".", "O")])
    return sentences


def write_conllu(sentences: list[list[tuple[str, str]]], path: str | Path, tags: bool = True) -> Path:
    """CoNLL-U with comments; every fifth sentence gets a multi-word token range and an empty node (skipped by readers).

    ``tags=False`` writes ``_`` for UPOS, as an unannotated test file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for s, sentence in enumerate(sentences):
        lines += [f"# sent_id = s{s + 1}", "# text = " + " ".join(w for w, _ in sentence)]
        for i, (word, tag) in enumerate(sentence, start=1):
            if s % 5 == 0 and i == 1 and len(sentence) > 2:
                lines.append(f"1-2\t{sentence[0][0]}{sentence[1][0]}\t_\t_\t_\t_\t_\t_\t_\t_")
            lines.append(f"{i}\t{word}\t{word}\t{tag if tags else '_'}\tX{tag if tags else '_'}\t_\t{i - 1}\tdep\t_\t_")
            if s % 5 == 0 and i == 2:
                lines.append(f"2.1\t{word}\t_\t_\t_\t_\t_\t_\t2:dep\t_")
        lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_conll2003(sentences: list[list[tuple[str, str]]], path: str | Path) -> Path:
    """CoNLL-2003 layout: ``token POS chunk NER`` per line, ``-DOCSTART-`` every 50 sentences."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for s, sentence in enumerate(sentences):
        if s % 50 == 0:
            lines += ["-DOCSTART- -X- -X- O", ""]
        lines += [f"{word} {'NNP' if tag != 'O' else 'NN'} {'I-NP' if tag != 'O' else 'O'} {tag}" for word, tag in sentence]
        lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


TAGGING_GENERATORS = {"en_pos": english_pos, "zh_pos": chinese_pos, "en_ner": english_ner}


def write_tagging_task(name: str, out_dir: str | Path, n_train: int, n_dev: int, seed: int = 0) -> dict[str, Path]:
    """train/dev(/test) files of one generated tagging task: CoNLL-U for POS, CoNLL-2003 columns for NER."""
    make, out = TAGGING_GENERATORS[name], Path(out_dir)
    train, dev = make(n_train, seed), make(n_dev, seed + 1000)
    if name == "en_ner":
        return {"train": write_conll2003(train, out / "train.conll"), "dev": write_conll2003(dev, out / "dev.conll")}
    return {"train": write_conllu(train, out / "train.conllu"), "dev": write_conllu(dev, out / "dev.conllu"),
            "test": write_conllu(dev, out / "test.conllu", tags=False)}


# ----------------------------------------------------------------------------- unlabelled text (pretraining)


def text_corpus(n: int, seed: int, language: str = "en") -> list[str]:
    """Passages of 2-4 generated sentences (the tagging grammars): predictable enough that a tiny model's LM loss falls."""
    make = english_pos if language == "en" else chinese_pos
    joiner = " " if language == "en" else ""
    rng = np.random.default_rng(seed)
    sentences = make(4 * n, seed)
    passages, position = [], 0
    for _ in range(n):
        count = int(rng.integers(2, 5))
        passages.append(joiner.join(joiner.join(w for w, _ in s) for s in sentences[position : position + count]))
        position += count
    return passages


ORDER_MARKERS = ("first", "then", "later", "finally")
STORY_VERBS = ("rolls", "waits", "shines", "falls", "turns", "stops", "moves", "breaks")


def story_corpus(n: int, seed: int) -> list[str]:
    """Documents of 2-4 sentences about one object, in marked order ("first the kite ... then the kite ...").

    Built for the sentence-level objectives: sentence order is learnable from
    the markers (SOP), and a segment from another document is learnable from
    its different object (NSP).
    """
    rng = np.random.default_rng(seed)
    documents = []
    for _ in range(n):
        thing, count = str(rng.choice(OBJECTS)), int(rng.integers(2, 5))
        markers = sorted(rng.choice(len(ORDER_MARKERS), size=count, replace=False))
        documents.append(" ".join(f"{ORDER_MARKERS[m]} the {COLOURS[int(rng.integers(len(COLOURS)))]} {thing} "
                                  f"{rng.choice(STORY_VERBS)} ." for m in markers))
    return documents


def write_text_corpus(out_dir: str | Path, n_train: int, n_dev: int, seed: int = 0, language: str = "en") -> dict[str, Path]:
    """train.txt / dev.txt, one passage per line (language "story": ``story_corpus``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, n, offset in (("train", n_train, 0), ("dev", n_dev, 1000)):
        paths[name] = out / f"{name}.txt"
        passages = story_corpus(n, seed + offset) if language == "story" else text_corpus(n, seed + offset, language)
        paths[name].write_text("\n".join(passages) + "\n", encoding="utf-8")
    return paths
