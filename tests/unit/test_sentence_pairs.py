"""NSP/SOP pair construction: sentence splitting, labels, contiguity, trimming, feature layout, and the loss the
pretraining heads get."""

from __future__ import annotations

import numpy as np
import pytest

from ssl_cli.tasks.pretraining.sentence_pairs import (
    NSP_IS_NEXT,
    NSP_RANDOM_NEXT,
    SOP_IN_ORDER,
    SOP_SWAPPED,
    Segment,
    document_pairs,
    split_sentences,
    trim_pair,
)


@pytest.mark.parametrize(("text", "expected"), [
    ("今天天气很好。我们去公园吧！你说呢？“好的。”他说。", ["今天天气很好。", "我们去公园吧！", "你说呢？", "“好的。”", "他说。"]),
    ("It rained. We stayed in!  Did you? Yes", ["It rained.", "We stayed in!", "Did you?", "Yes"]),
    ("no end mark at all", ["no end mark at all"]),
])
def test_split_sentences(text, expected):
    assert split_sentences(text) == expected


def _document(doc: int, sentences: int, rng: np.random.Generator) -> list[Segment]:
    """Sentences whose token ids encode (document, position): every token says where it came from."""
    tokens, position = [], 0
    for _ in range(sentences):
        length = int(rng.integers(3, 12))
        tokens.append(Segment([doc * 10_000 + position + i for i in range(length)], [1] * length))
        position += length
    return tokens


def _is_contiguous(ids: list[int]) -> bool:
    return all(b == a + 1 for a, b in zip(ids, ids[1:], strict=False))


def _pairs(objective: str, documents: int = 1000, target: int = 40, short_seq_prob: float = 0.1):
    rng = np.random.default_rng(0)
    docs = [_document(d, int(rng.integers(1, 9)), rng) for d in range(documents)]
    out = []
    for d, sentences in enumerate(docs):
        def other(d=d):
            return docs[(d + 1 + int(rng.integers(documents - 1))) % documents]
        out += [(d, p) for p in document_pairs(sentences, objective, target, short_seq_prob, rng, other)]
    return out


def test_sop_pairs_are_consecutive_segments_of_one_document_half_swapped():
    pairs = _pairs("sop")
    labels = [p.label for _, p in pairs]
    assert 0.45 < np.mean(labels) < 0.55 and len(pairs) > 1000
    for d, pair in pairs:
        assert {t // 10_000 for t in pair.first.ids + pair.second.ids} == {d}  # never another document
        first, second = (pair.first.ids, pair.second.ids) if pair.label == SOP_IN_ORDER else (pair.second.ids,
                                                                                                pair.first.ids)
        assert first[-1] < second[0]  # in order once unswapped
        assert len(pair.first) + len(pair.second) <= 40 and len(pair.first) and len(pair.second)


def test_nsp_pairs_continue_or_come_from_another_document():
    pairs = _pairs("nsp")
    labels = [p.label for _, p in pairs]
    assert 0.42 < np.mean(labels) < 0.58
    for d, pair in pairs:
        assert {t // 10_000 for t in pair.first.ids} == {d}
        owners = {t // 10_000 for t in pair.second.ids}
        if pair.label == NSP_IS_NEXT:
            assert owners == {d} and pair.first.ids[-1] < pair.second.ids[0]
        else:
            assert pair.label == NSP_RANDOM_NEXT and d not in owners


def test_without_another_document_every_nsp_pair_is_a_real_continuation():
    rng = np.random.default_rng(1)
    pairs = document_pairs(_document(0, 30, rng), "nsp", 40, 0.0, rng, None)
    assert pairs and all(p.label == NSP_IS_NEXT for p in pairs)


def test_a_single_sentence_is_split_inside_and_targets_are_filled():
    rng = np.random.default_rng(2)
    long = _document(0, 40, rng)
    pairs = document_pairs(long, "sop", 64, 0.0, rng, None)
    lengths = [len(p.first) + len(p.second) for p in pairs]
    assert min(lengths[:-1]) >= 50 and max(lengths) <= 64  # chunks reach the target; trimming keeps them inside
    single = document_pairs([Segment(list(range(7)), [1] * 7)], "sop", 64, 0.0, rng, None)
    assert len(single) == 1 and sorted(single[0].first.ids + single[0].second.ids) == list(range(7))


def test_trim_pair_cuts_the_longer_segment_and_restarts_words():
    rng = np.random.default_rng(3)
    first, second = Segment(list(range(10)), [1, 0] * 5), Segment([100, 101], [1, 1])
    trim_pair(first, second, 6, rng)
    assert len(first) == 4 and second.ids == [100, 101] and first.starts[0] == 1
    assert _is_contiguous(first.ids)


def test_pair_features_layout():
    from ssl_cli.models import train_wordpiece_tokenizer
    from ssl_cli.tasks.pretraining.data import story_corpus
    from ssl_cli.tasks.pretraining.sentence_pairs import pair_features

    texts = story_corpus(40, 0)
    tokenizer = train_wordpiece_tokenizer(iter(texts), 200, 64)
    out = pair_features(texts, list(range(40)), tokenizer, "whitespace", "sop", 32, 0.0, 0,
                        set(tokenizer.all_special_ids), "sentence_order_label")
    assert len(out["input_ids"]) >= 40 and set(out["sentence_order_label"]) == {SOP_IN_ORDER, SOP_SWAPPED}
    for ids, types, special, starts in zip(out["input_ids"], out["token_type_ids"], out["special_tokens_mask"],
                                           out["word_starts"], strict=True):
        assert len(ids) <= 32 and len(types) == len(ids) == len(special) == len(starts)
        first_sep = ids.index(tokenizer.sep_token_id)
        assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
        assert types == [0] * (first_sep + 1) + [1] * (len(ids) - first_sep - 1)
        assert [i for i, s in enumerate(special) if s] == [0, first_sep, len(ids) - 1]


@pytest.mark.parametrize("family", ["bert", "albert"])
@pytest.mark.parametrize("sparse", [True, False])
def test_training_forward_gives_the_pretraining_models_own_loss(family, sparse):
    """MLM + pair loss through our forward equals the *ForPreTraining model's own total loss."""
    import torch
    import transformers

    from ssl_cli.tasks.pretraining.mlm import install_training_forward

    size = {"vocab_size": 97, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
            "intermediate_size": 64, "max_position_embeddings": 64, "hidden_dropout_prob": 0.0,
            "attention_probs_dropout_prob": 0.0}
    config = transformers.BertConfig(**size) if family == "bert" else transformers.AlbertConfig(
        embedding_size=16, classifier_dropout_prob=0.0, **size)
    torch.manual_seed(0)
    reference = transformers.AutoModelForPreTraining.from_config(config)
    ours = transformers.AutoModelForPreTraining.from_config(config)
    ours.load_state_dict(reference.state_dict())
    assert install_training_forward(ours, sparse=sparse)
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(5, 97, (4, 16), generator=generator)
    token_type_ids = torch.cat([torch.zeros(4, 8, dtype=torch.long), torch.ones(4, 8, dtype=torch.long)], dim=1)
    labels = torch.full_like(input_ids, -100)
    labels[:, 3] = input_ids[:, 3]
    labels[1, 10] = input_ids[1, 10]
    pair_label = torch.tensor([0, 1, 1, 0])
    key = "next_sentence_label" if family == "bert" else "sentence_order_label"
    inputs = {"input_ids": input_ids, "token_type_ids": token_type_ids, "labels": labels, key: pair_label}
    reference.train(), ours.train()
    torch.testing.assert_close(ours(**inputs).loss, reference(**inputs).loss, rtol=1e-5, atol=1e-6)
