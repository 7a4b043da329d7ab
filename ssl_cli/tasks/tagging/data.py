"""Small, learnable tagging sets the project generates itself: English and Chinese POS grammars with ambiguous
words, and English NER with multi-word entities, as CoNLL-U or CoNLL-2003 files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

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
