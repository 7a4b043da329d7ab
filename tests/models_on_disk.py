"""Tiny models saved as the Hub holds them (config.json, model.safetensors, a real fast tokenizer), for the tests
that need a pretrained base: LoRA, decoder models in every task. The decoders' tokenizers have no padding token,
as gpt2's and Llama's on the Hub do not: ssl must set one itself."""

from __future__ import annotations

from pathlib import Path

TEXTS = [
    "the film was a delight from start to end", "a dull and tired story", "great acting and a fine score",
    "i would not watch it again", "the cat sat on the mat", "dogs run in the park every morning",
    "she reads books about history", "we cooked dinner for our friends", "the weather is cold today",
    "he plays the piano very well", "this is the best day", "nothing works as it should",
] * 20


def _bpe_tokenizer(bos: str, eos: str):
    """A byte-level BPE trained on TEXTS: no unknown tokens, no padding token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = list(dict.fromkeys([bos, eos]))
    tok.train_from_iterator(TEXTS, trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos, unk_token=eos,
                                   model_max_length=128)


def write_tiny_model(kind: str, root: Path) -> Path:
    """``kind`` (bert, gpt2 or llama) saved under ``root/kind`` with random weights; returns the directory."""
    import torch
    import transformers

    torch.manual_seed(0)
    target = root / kind
    if kind == "bert":
        from ssl_cli.models import train_wordpiece_tokenizer

        tokenizer = train_wordpiece_tokenizer(iter(TEXTS), 300, 128)
        config = transformers.BertConfig(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2,
                                         num_attention_heads=2, intermediate_size=128, max_position_embeddings=128)
        model = transformers.BertForMaskedLM(config)
    elif kind == "gpt2":
        tokenizer = _bpe_tokenizer("<|endoftext|>", "<|endoftext|>")
        config = transformers.GPT2Config(vocab_size=len(tokenizer), n_embd=64, n_layer=2, n_head=2, n_positions=128,
                                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
        model = transformers.GPT2LMHeadModel(config)
    elif kind == "llama":
        tokenizer = _bpe_tokenizer("<s>", "</s>")
        config = transformers.LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                                          num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                                          max_position_embeddings=128, bos_token_id=tokenizer.bos_token_id,
                                          eos_token_id=tokenizer.eos_token_id)
        model = transformers.LlamaForCausalLM(config)
    else:
        raise ValueError(kind)
    model.save_pretrained(str(target))
    tokenizer.save_pretrained(str(target))
    return target
