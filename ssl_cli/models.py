"""Models and tokenizers: a Hub id, a local directory, or a from-scratch spec.

``scratch:bert-tiny`` (and -mini, -small, -base) builds a randomly initialised
BERT plus a WordPiece tokenizer trained on the run's own training text, with
BERT's normalisation (CJK characters are split one per token, as in Google's
Chinese BERT). It is the offline default, the tests' model, and the "random
initialisation" baseline against pretrained checkpoints.

Only safetensors weights are loaded, and ``trust_remote_code`` stays off
unless the recipe asks for it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ssl_cli.compat import swap_module_class
from ssl_cli.errors import UserError, did_you_mean

SCRATCH_SPECS: dict[str, dict[str, int]] = {
    "bert-tiny": {"num_hidden_layers": 2, "hidden_size": 128, "num_attention_heads": 2, "intermediate_size": 512},
    "bert-mini": {"num_hidden_layers": 4, "hidden_size": 256, "num_attention_heads": 4, "intermediate_size": 1024},
    "bert-small": {"num_hidden_layers": 4, "hidden_size": 512, "num_attention_heads": 8, "intermediate_size": 2048},
    "bert-base": {"num_hidden_layers": 12, "hidden_size": 768, "num_attention_heads": 12, "intermediate_size": 3072},
    # GPT-2 family (pretrain-clm): byte-level BPE tokenizer trained on the corpus
    "gpt2-tiny": {"n_layer": 2, "n_embd": 128, "n_head": 2},
    "gpt2-mini": {"n_layer": 4, "n_embd": 256, "n_head": 4},
    "gpt2-small": {"n_layer": 12, "n_embd": 768, "n_head": 12},
}
GPT2_SPECIAL_TOKENS = ["<|endoftext|>", "<|pad|>"]
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@dataclass(frozen=True)
class ModelSource:
    kind: str  # "scratch", "local" or "hub"
    name: str  # spec name, path or Hub id


def classify_model(name_or_path: str) -> ModelSource:
    """Decide how ``--model`` is loaded; a path that does not exist is an error, not a Hub id."""
    if name_or_path.startswith("scratch:"):
        spec = name_or_path.split(":", 1)[1]
        if spec not in SCRATCH_SPECS:
            raise UserError(
                f"unknown scratch model '{spec}'{did_you_mean(spec, SCRATCH_SPECS)}; choose from "
                + ", ".join(f"scratch:{s}" for s in SCRATCH_SPECS)
            )
        return ModelSource("scratch", spec)
    path = Path(name_or_path).expanduser()
    if path.exists():
        if (path / "adapter_config.json").is_file() and not (path / "config.json").is_file():
            return ModelSource("adapter", str(path))  # a LoRA run's output: its base model plus the adapter
        if not (path / "config.json").is_file():
            raise UserError(f"{path} is not a model directory (no config.json): pass a directory saved by save_pretrained")
        check_config_file(path / "config.json")
        return ModelSource("local", str(path))
    looks_like_path = name_or_path.startswith(("/", ".", "~")) or name_or_path.count("/") > 1 or "\\" in name_or_path
    if looks_like_path:
        raise UserError(f"model path does not exist: {name_or_path} (check the path, or pass a Hub id / scratch:bert-tiny)")
    return ModelSource("hub", name_or_path)


def check_config_file(config_file: Path) -> dict[str, Any]:
    """The parsed config.json; an unreadable one is named as such, before a tokenizer or weights error could
    hide it."""
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise UserError(f"{config_file} is not a valid config (not JSON: {str(err)[:80]}); re-save the model with "
                        "save_pretrained") from None
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
        raise UserError(f"{config_file} is not a valid config (no 'model_type'); re-save the model with save_pretrained")
    return config


def check_weights(model_dir: str) -> None:
    """Pretrained weights must be there as safetensors; pickle files are never loaded (they can run code)."""
    path = Path(model_dir)
    if any(path.glob("*.safetensors")):
        return
    if any(path.glob("*.bin")) or any(path.glob("*.pt")):
        raise UserError(f"{model_dir} has no safetensors weights, only pickle ones (.bin/.pt), which ssl never loads: "
                        "convert them with save_pretrained(..., safe_serialization=True)")
    raise UserError(f"{model_dir} has no weights (model.safetensors): pass a complete model directory (training "
                    "commands can also start its architecture from random weights: --init random)")


MAX_WORD_CHARS = 100  # WordPiece's max_input_chars_per_word


def train_wordpiece_tokenizer(texts: Iterable[str], vocab_size: int, model_max_length: int):
    """A BERT WordPiece tokenizer trained on ``texts`` (CJK split per character), the same on every run.

    The `tokenizers` trainer creates the ``##x`` continuation pieces while iterating a hash map, so their
    ids, and through merge tie-breaking the vocabulary itself, change from run to run (tokenizers#1794):
    a from-scratch demo scored F1 80 on one run and 87 on the next. Declaring every continuation piece
    up front, in sorted order, fixes their ids; they are then turned back into ordinary vocabulary.
    """
    from tokenizers import trainers

    tok = _bert_wordpiece()
    texts, continued = _short_word_texts(tok, texts)
    pieces = [f"##{c}" for c in sorted(continued)]
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS + pieces, min_frequency=1)
    tok.train_from_iterator(texts, trainer)
    tok = _bert_wordpiece(tok.get_vocab(with_added_tokens=False))  # the ## pieces as ordinary vocabulary
    tok.add_special_tokens(SPECIAL_TOKENS)
    return _as_bert_tokenizer(tok, model_max_length)


def _bert_wordpiece(vocab: dict[str, int] | None = None) -> Any:
    """A WordPiece ``tokenizers.Tokenizer`` with BERT's lower-casing normaliser (CJK split per character)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]") if vocab is not None else models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return tok


def _short_word_texts(tok: Any, texts: Iterable[str], continuations: bool = True) -> tuple[list[str], set[str]]:
    """``texts`` less their words over 100 characters, and (with ``continuations``) the characters that occur
    inside a kept word after its first one (those get a ``##`` piece): one normalisation and pre-tokenisation of
    each text for both. Without ``continuations`` a text too short to hold a long word is not cut into words.

    Long words encode as [UNK] anyway (WordPiece's limit), and one word of a million characters (a line of base64,
    a corrupt field) stalls the trainers' merge loop for hours: 200,000 characters took byte-level BPE 38 s, and
    the time grows faster than the length."""
    kept, continued = [], set()
    for text in texts:
        if not continuations and len(text) <= MAX_WORD_CHARS:
            kept.append(text)
            continue
        words = _words(tok, text)
        short = [word for word in words if len(word) <= MAX_WORD_CHARS]
        for word in short:
            continued.update(word[1:])
        kept.append(text if len(short) == len(words) else " ".join(short))
    return kept, continued


def _words(tok: Any, text: str) -> list[str]:
    """The words ``tok``'s normaliser and pre-tokeniser cut ``text`` into."""
    normalized = tok.normalizer.normalize_str(text) if tok.normalizer is not None else text
    return [word for word, _ in tok.pre_tokenizer.pre_tokenize_str(normalized)]


def _as_bert_tokenizer(tok: Any, model_max_length: int):
    """The trained WordPiece model with BERT's [CLS] A [SEP] B [SEP] template, as a transformers tokenizer."""
    from tokenizers import decoders, processors
    from transformers import BertTokenizerFast

    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tok.decoder = decoders.WordPiece()
    return BertTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=model_max_length,
        do_lower_case=True,
        tokenize_chinese_chars=True,
    )


def _offline_hint(name: str) -> str:
    return (
        f"cannot load model '{name}' from the Hugging Face Hub (unreachable or offline): download it elsewhere "
        f"and pass --model /path/to/{name.split('/')[-1]}, or use --model scratch:bert-base"
    )


TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "tokenizer.model", "spiece.model",
                   "sentencepiece.bpe.model", "merges.txt")


TOKENIZER_JSON_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                        "vocab.json")
TOKENIZER_TEXT_FILES = ("vocab.txt", "merges.txt")


def tokenizer_load_error(model_dir: Path, err: Exception) -> UserError:
    """The one line for a local tokenizer that would not load: the file at fault where one is not UTF-8 or not
    JSON (the Rust tokenizers library reports a Latin-1 vocab.txt as "stream did not contain valid UTF-8", naming
    no file), else the library's own reason. The files are read only after a failure: a good tokenizer is
    parsed once, by the library."""
    check_tokenizer_files(model_dir)
    return UserError(f"cannot load the tokenizer in {model_dir}: {str(err).splitlines()[0][:200]}; re-save it "
                     "with tokenizer.save_pretrained")


def check_tokenizer_files(model_dir: Path) -> None:
    """Each tokenizer file a model dir holds is UTF-8, and JSON where it should be."""
    for name in (*TOKENIZER_JSON_FILES, *TOKENIZER_TEXT_FILES):
        path = model_dir / name
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise UserError(f"{path} is not UTF-8 text: re-save the tokenizer with tokenizer.save_pretrained, or "
                            "convert the file (iconv -f latin1 -t utf-8)") from None
        if name in TOKENIZER_JSON_FILES:
            try:
                json.loads(text)
            except ValueError as err:
                raise UserError(f"{path} is not valid JSON ({str(err)[:80]}); re-save the tokenizer with "
                                "tokenizer.save_pretrained") from None


def load_tokenizer(source: ModelSource, model_cfg: Any, pretokenized: bool = False):
    """The model's fast tokenizer. ``pretokenized``: the task feeds words (tag-pos), so a byte-level BPE
    tokenizer (RoBERTa, GPT-2, DeBERTa) is loaded with ``add_prefix_space``, as run_ner.py does."""
    from transformers import AutoTokenizer

    kwargs = {"revision": model_cfg.revision, "trust_remote_code": model_cfg.trust_remote_code}
    if source.kind in ("local", "adapter") and not any((Path(source.name) / name).is_file() for name in TOKENIZER_FILES):
        # transformers 5 would build an empty tokenizer (special tokens only) and every word would be [UNK]
        raise UserError(f"no tokenizer files in {source.name} ({', '.join(TOKENIZER_FILES[:3])}, ...); save the "
                        "tokenizer with the model (tokenizer.save_pretrained)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.name, **kwargs)
        if pretokenized and needs_prefix_space(tokenizer):
            tokenizer = AutoTokenizer.from_pretrained(source.name, add_prefix_space=True, **kwargs)
            if needs_prefix_space(tokenizer):  # a generic class that does not rebuild its pre-tokenizer
                _set_prefix_space(tokenizer)
    except OSError:
        if source.kind == "hub":
            raise UserError(_offline_hint(source.name)) from None
        check_tokenizer_files(Path(source.name))
        raise UserError(f"no tokenizer files in {source.name} (tokenizer.json or vocab.txt); save the tokenizer with the model") from None
    except Exception as err:  # tokenizers and transformers raise plain Exceptions for files they cannot parse
        if source.kind == "hub":
            raise
        raise tokenizer_load_error(Path(source.name), err) from None
    if not getattr(tokenizer, "is_fast", False):
        raise UserError(f"{source.name} has no fast tokenizer; offset mappings need one (add tokenizer.json)")
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token  # decoder-only models (GPT-2): batches pad with EOS, as run_glue.py users set
    return tokenizer


def _byte_level_parts(spec: dict[str, Any]) -> list[dict[str, Any]]:
    pre = spec.get("pre_tokenizer") or {}
    return [part for part in pre.get("pretokenizers") or [pre] if part.get("type") == "ByteLevel"]


def needs_prefix_space(tokenizer: Any) -> bool:
    """A byte-level pre-tokenizer that does not add a space before each word: given words one by one,
    it would encode every word as if it started the text."""
    import json

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return False
    return any(not part.get("add_prefix_space") for part in _byte_level_parts(json.loads(backend.to_str())))


def _set_prefix_space(tokenizer: Any) -> None:
    """Turn on ``add_prefix_space`` in the Rust pre-tokenizer itself (saved with the tokenizer)."""
    import json

    from tokenizers import Tokenizer

    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    for part in _byte_level_parts(spec):
        part["add_prefix_space"] = True
    tokenizer.backend_tokenizer.pre_tokenizer = Tokenizer.from_str(json.dumps(spec)).pre_tokenizer
    tokenizer.add_prefix_space = True


def scratch_config(spec: str, vocab_size: int, max_positions: int, model_cfg: Any, training_on_cpu: bool = False,
                   **kwargs: Any):
    from transformers import BertConfig, GPT2Config

    if spec.startswith("gpt2"):
        config = GPT2Config(vocab_size=vocab_size, n_positions=max_positions, **SCRATCH_SPECS[spec], **kwargs)
    else:
        config = BertConfig(vocab_size=vocab_size, max_position_embeddings=max_positions, **SCRATCH_SPECS[spec], **kwargs)
    _apply_dropout(config, model_cfg, training_on_cpu)
    return config


def train_scratch_tokenizer(spec: str, texts: Iterator[str], vocab_size: int, model_max_length: int):
    """The tokenizer a scratch: model is built with: WordPiece for BERT, byte-level BPE for GPT-2."""
    if spec.startswith("gpt2"):
        return train_bytelevel_tokenizer(texts, vocab_size, model_max_length)
    return train_wordpiece_tokenizer(texts, vocab_size, model_max_length)


def train_bytelevel_tokenizer(texts: Iterator[str], vocab_size: int, model_max_length: int):
    """A GPT-2-style byte-level BPE tokenizer trained on ``texts`` (no unknown tokens, any script)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    texts, _ = _short_word_texts(tok, texts, continuations=False)
    trainer = trainers.BpeTrainer(vocab_size=max(vocab_size, 300), special_tokens=GPT2_SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    eos, pad = GPT2_SPECIAL_TOKENS
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=eos, eos_token=eos, unk_token=eos, pad_token=pad,
                                   model_max_length=model_max_length)


HIDDEN_DROPOUT_ATTRS = ("hidden_dropout_prob", "dropout", "resid_pdrop", "embd_pdrop")
ATTENTION_DROPOUT_ATTRS = ("attention_probs_dropout_prob", "attention_dropout", "attn_pdrop")


def resolve_attention_dropout(model_cfg: Any, training_on_cpu: bool) -> float | None:
    """The attention dropout to set on the config, or None to keep the config's own.

    ``auto`` drops it to 0 for CPU training: PyTorch's fused CPU attention has
    no dropout, so any attention dropout sends every layer down the unfused
    path, which stores the full (heads x seq x seq) probabilities for backward.
    """
    value = model_cfg.attention_dropout
    if value == "auto":
        if model_cfg.dropout is not None:
            return model_cfg.dropout
        return 0.0 if training_on_cpu else None
    return model_cfg.dropout if value is None else value


def _apply_dropout(config: Any, model_cfg: Any, training_on_cpu: bool) -> None:
    overrides = {attr: model_cfg.dropout for attr in HIDDEN_DROPOUT_ATTRS}
    attention = resolve_attention_dropout(model_cfg, training_on_cpu)
    overrides.update({attr: attention for attr in ATTENTION_DROPOUT_ATTRS})
    for attr, value in overrides.items():
        if value is not None and hasattr(config, attr):
            setattr(config, attr, value)


def use_fast_cpu_dropout(model: Any) -> int:
    """Swap every ``nn.Dropout`` of ``model`` for one that draws its mask from 16-bit random integers; the count swapped.

    Why: on CPU, ``nn.Dropout`` draws its mask with ``bernoulli_``, one
    double (two Mersenne Twister draws) per element on one thread, a visible
    share of a small model's step. Four 16-bit draws come from each 64-bit
    one, so a mask costs an eighth of the generator's work, and it saves a
    1-byte mask for backward
    where ``bernoulli_`` saves a 4-byte one. The drop rate is rounded to a
    multiple of 1/65536 (0.1 becomes 0.100006) and the scaling uses the
    rounded rate, so the expected activation is unchanged. Masks come from
    torch's global generator, which checkpoints save and resume restores.
    Dropout has no weights, so checkpoints are unchanged. Only exact
    ``nn.Dropout`` instances are swapped (subclasses may do more).
    """
    import torch

    global _FAST_DROPOUT
    if _FAST_DROPOUT is None:

        class FastDropout(torch.nn.Dropout):
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                if not self.training or self.p == 0:
                    return x
                dropped = round(self.p * 65536)  # of 65536 equally likely 16-bit values
                if dropped >= 65536:
                    return torch.zeros_like(x)
                bits = torch.empty((x.numel() + 3) // 4, dtype=torch.int64).random_(-(2**63), None)
                kept = bits.view(torch.int16)[: x.numel()].view(x.shape) >= dropped - 32768
                # x * mask saves only the bool mask for backward; mul_ in place adds no third tensor.
                return (x * kept).mul_(65536 / (65536 - dropped))

        _FAST_DROPOUT = FastDropout
    swapped = 0
    for module in model.modules():
        if type(module) is torch.nn.Dropout:
            swap_module_class(module, _FAST_DROPOUT)
            swapped += 1
    return swapped


_FAST_DROPOUT: Any = None


def load_model(source: ModelSource, model_cfg: Any, auto_cls: Any, tokenizer: Any, max_positions: int,
               training_on_cpu: bool = False, max_seq_length: int | None = None, **model_kwargs: Any):
    """Instantiate the task head (random for scratch:, else from safetensors weights)."""
    from transformers import AutoConfig

    if source.kind == "adapter":
        from ssl_cli.adapters import adapter_base, load_adapter, trained_head

        base = load_model(classify_model(adapter_base(source.name)), model_cfg, auto_cls, tokenizer, max_positions,
                          training_on_cpu, max_seq_length, **{**model_kwargs, **trained_head(source.name)})
        return load_adapter(base, source.name)
    if source.kind == "scratch":
        special = {"pad_token_id": tokenizer.pad_token_id}
        if source.name.startswith("gpt2"):
            special.update(bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
        config = scratch_config(source.name, len(tokenizer), max_positions, model_cfg, training_on_cpu,
                                **special, **model_kwargs)
        apply_config_overrides(config, model_cfg.config_overrides, source.name)
        return auto_cls.from_config(config)
    common = {"revision": model_cfg.revision, "trust_remote_code": model_cfg.trust_remote_code}
    try:
        config = AutoConfig.from_pretrained(source.name, **common, **model_kwargs)
    except OSError:
        if source.kind == "hub":
            raise UserError(_offline_hint(source.name)) from None
        raise
    except ValueError as err:
        raise UserError(f"cannot load the config of {source.name}: {str(err).splitlines()[0]}") from None
    _apply_dropout(config, model_cfg, training_on_cpu)
    apply_config_overrides(config, model_cfg.config_overrides, source.name)
    _check_positions(config, max_seq_length, source.name)
    if not model_cfg.ignore_mismatched_sizes and model_cfg.init != "random":
        _check_label_count(source.name, auto_cls, model_kwargs.get("num_labels"), common)
    try:
        if model_cfg.init == "random":  # the engine has seeded torch: the same weights for the same seed
            return auto_cls.from_config(config, trust_remote_code=model_cfg.trust_remote_code)
        if source.kind == "local":
            check_weights(source.name)
        model, loading = auto_cls.from_pretrained(source.name, config=config, use_safetensors=True,
                                                  ignore_mismatched_sizes=model_cfg.ignore_mismatched_sizes,
                                                  output_loading_info=True, **common)
        model.newly_initialised = sorted(loading.get("missing_keys") or [])  # LoRA trains and saves these in full
        return model
    except ValueError as err:
        if "Unrecognized configuration class" not in str(err):
            raise
        import re

        head = "-".join(re.findall(r"[A-Z][a-z]+|LM", auto_cls.__name__.removeprefix("AutoModelFor"))).lower()
        raise UserError(f"{source.name} ({config.model_type}) has no {head} head in transformers: pick a model "
                        "whose architecture has one (BERT, RoBERTa, GPT-2, Llama...)") from None
    except OSError as err:
        if source.kind == "hub":
            raise UserError(_offline_hint(source.name)) from None
        raise UserError(
            f"cannot load weights from {source.name}: {str(err).splitlines()[0][:200]} "
            "(only model.safetensors is loaded; convert .bin weights with save_pretrained)"
        ) from None


def _check_label_count(model_name: str, auto_cls: Any, wanted: int | None, common: dict[str, Any]) -> None:
    """A model saved with this head for another number of labels (a fine-tuned classifier) cannot load its
    head for this data: say so, and which option starts a new head, instead of a size-mismatch traceback."""
    from transformers import AutoConfig

    if not wanted:
        return
    saved = AutoConfig.from_pretrained(model_name, **common)
    head = auto_cls.__name__.removeprefix("AutoModel")  # ForSequenceClassification, ForTokenClassification
    if any(a.endswith(head) for a in saved.architectures or []) and saved.num_labels != wanted:
        raise UserError(f"{model_name} was fine-tuned with {saved.num_labels} labels, this data has {wanted}: pass "
                        "--ignore_mismatched_sizes (or --set model.ignore_mismatched_sizes=true) to train a new head, or give the same labels")


def position_embeddings(config: Any) -> int | None:
    """How many positions the model has (BERT-style ``max_position_embeddings``, GPT-2's ``n_positions``)."""
    return next((getattr(config, name) for name in ("max_position_embeddings", "n_positions")
                 if isinstance(getattr(config, name, None), int)), None)


def _check_positions(config: Any, max_seq_length: int | None, model_name: str) -> None:
    """A feature longer than the position embeddings fails deep inside the model: refuse it here."""
    positions = position_embeddings(config)
    if max_seq_length and positions and max_seq_length > positions:
        raise UserError(f"max_seq_length {max_seq_length} is above {model_name}'s {positions} position embeddings: "
                        f"pass --max-seq-length {positions} or less")


def apply_config_overrides(config: Any, overrides: dict[str, Any], model_name: str) -> None:
    """Set ``model.config_overrides`` on the config; an attribute the config does not have is a one-line error."""
    known = set(config.to_dict())
    for key, value in overrides.items():
        if key not in known:
            raise UserError(f"config_overrides: {model_name}'s {type(config).__name__} has no attribute "
                            f"'{key}'{did_you_mean(key, sorted(known))}")
        setattr(config, key, value)


def warn_remote_code(name: str, trusted: bool) -> None:
    """One warning line when ``trust_remote_code`` is on: the model's own Python code will run here."""
    if trusted:
        import sys

        print(f"warning: trust_remote_code is on: Python code shipped with {name} will run on this machine; use it "
              "only for a model whose code you have read", file=sys.stderr)


def hub_timeouts() -> None:
    """Fail fast rather than hang when the Hub is unreachable (users can raise these)."""
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "30")
