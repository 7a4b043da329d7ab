"""Registered tagging datasets: any Universal Dependencies treebank by ``ud/<treebank>``, from its official files."""

from __future__ import annotations

from ssl_cli.data.registry import DatasetSource

# Universal Dependencies treebanks: ``ud/<code>`` -> the official GitHub repository's CoNLL-U files.
_UD = "https://raw.githubusercontent.com/UniversalDependencies"
UD_LANGUAGES = {
    "af": "Afrikaans", "ar": "Arabic", "bg": "Bulgarian", "ca": "Catalan", "cs": "Czech", "cy": "Welsh", "da": "Danish",
    "de": "German", "el": "Greek", "en": "English", "es": "Spanish", "et": "Estonian", "eu": "Basque", "fa": "Persian",
    "fi": "Finnish", "fr": "French", "ga": "Irish", "gl": "Galician", "he": "Hebrew", "hi": "Hindi", "hr": "Croatian",
    "hu": "Hungarian", "hy": "Armenian", "id": "Indonesian", "is": "Icelandic", "it": "Italian", "ja": "Japanese",
    "ko": "Korean", "la": "Latin", "lt": "Lithuanian", "lv": "Latvian", "nl": "Dutch", "no": "Norwegian", "pl": "Polish",
    "pt": "Portuguese", "ro": "Romanian", "ru": "Russian", "sk": "Slovak", "sl": "Slovenian", "sr": "Serbian",
    "sv": "Swedish", "ta": "Tamil", "th": "Thai", "tr": "Turkish", "ug": "Uyghur", "uk": "Ukrainian", "ur": "Urdu",
    "vi": "Vietnamese", "wo": "Wolof", "yue": "Cantonese", "zh": "Chinese",
}
# Repository suffixes whose spelling is not simply the upper-cased code.
UD_TREEBANK_NAMES = {"gsdsimp": "GSDSimp", "gum": "GUM", "gumreddit": "GUMReddit", "partut": "ParTUT",
                     "sequoia": "Sequoia", "rhapsodie": "Rhapsodie", "ancora": "AnCora", "bosque": "Bosque",
                     "pud": "PUD", "lines": "LinES", "talbanken": "Talbanken", "alksnis": "ALKSNIS", "pdt": "PDT",
                     "bokmaal": "Bokmaal", "nynorsk": "Nynorsk", "kaist": "Kaist", "taiga": "Taiga", "syntagrus": "SynTagRus"}


def ud_source(name: str) -> DatasetSource | None:
    """``ud/en_ewt`` -> UD_English-EWT's train/dev/test CoNLL-U files; None when the code cannot be a treebank."""
    code = name.lower().removeprefix("ud/")
    language, _, treebank = code.partition("_")
    if language not in UD_LANGUAGES or not treebank.isalnum():
        return None
    repository = f"UD_{UD_LANGUAGES[language]}-{UD_TREEBANK_NAMES.get(treebank, treebank.upper())}"
    base = f"{_UD}/{repository}/master/{code}-ud"
    files = {"train": f"{base}-train.conllu", "validation": f"{base}-dev.conllu", "test": f"{base}-test.conllu"}
    return DatasetSource(f"ud/{code}", "tag-pos", language, "accuracy",
                         f"Universal Dependencies {repository} (UPOS/XPOS), official CoNLL-U files", files=files)


CONLL2003 = DatasetSource("conll2003", "tag-pos", "en", "f1", "CoNLL-2003 English NER (ner_tags; pos_tags and "
                          "chunk_tags with --tag-column)", hub_id="eriktks/conll2003")

DATASETS = (*(ud_source(f"ud/{code}") for code in ("en_ewt", "en_gum", "zh_gsd", "zh_gsdsimp", "ja_gsd", "ko_kaist",
                                                   "fr_gsd", "de_gsd")), CONLL2003)
