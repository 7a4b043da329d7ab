"""Padding-free batches (``training.padding_free``): the flattened layout, the variable-length attention against
per-sequence attention, and the check that decides per architecture, all on real transformers models on CPU."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import transformers
from transformers import DataCollatorWithPadding, PreTrainedTokenizerFast

from ssl_cli.engine.packing import model_inputs
from ssl_cli.engine.padding_free import (
    FILLER_SEQUENCE,
    LAYOUT,
    FlatteningCollator,
    PaddingFree,
    StaticTokenShape,
    flatten_batch,
    jagged_attention,
    padding_free_position_offset,
    varlen_attention,
)
from tests.models_on_disk import TEXTS, write_tiny_model


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    path = write_tiny_model("bert", tmp_path_factory.mktemp("models"))
    tokenizer = PreTrainedTokenizerFast.from_pretrained(path)
    rows = [dict(tokenizer(text)) for text in TEXTS[:6]]
    return path, tokenizer, rows


def test_a_flattened_batch_holds_only_real_tokens_and_restarts_positions():
    batch = {"input_ids": torch.tensor([[5, 6, 7], [8, 9, 0]]), "token_type_ids": torch.tensor([[0, 0, 1], [0, 1, 0]]),
             "attention_mask": torch.tensor([[1, 1, 1], [1, 1, 0]]), "labels": torch.tensor([[1, 2, 3], [4, 5, -100]])}
    flat = flatten_batch(batch, position_offset=2)
    assert flat["input_ids"].tolist() == [[5, 6, 7, 8, 9]]
    assert flat["token_type_ids"].tolist() == [[0, 0, 1, 0, 1]]
    assert flat["position_ids"].tolist() == [[2, 3, 4, 2, 3]]
    assert flat["cu_seq_lens_q"].tolist() == [0, 3, 5] and flat["max_length_q"] == 3
    assert flat["labels"].tolist() == [[1, 2, 3], [4, 5, -100]]  # the heads read the padded layout
    assert "attention_mask" not in flat
    assert (flat["packed_examples"], flat["packed_tokens"]) == (2, 5)


@pytest.mark.parametrize("path", ["varlen_attention", "jagged_attention"])  # a CPU's path, an accelerator's
@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors:UserWarning")  # torch's CPU kernel for it
def test_variable_length_attention_attends_within_each_sequence_only(path):
    torch.manual_seed(0)
    lengths, heads, size = [5, 9, 1, 3], 4, 16
    q, k, v = (torch.randn(1, heads, sum(lengths), size, requires_grad=True) for _ in range(3))
    offsets = torch.tensor([0, 5, 14, 15, 18], dtype=torch.int32)
    if path == "jagged_attention":  # the nested-tensor SDPA a GPU runs, here on its CPU kernel
        out = jagged_attention(q, k, v, offsets.long(), 0.0, size ** -0.5, 9)
    else:
        out, _ = varlen_attention(torch.nn.Module(), q, k, v, None, dropout=0.0, scaling=size ** -0.5,
                                  cu_seq_lens_q=offsets, cu_seq_lens_k=offsets, max_length_q=9, max_length_k=9)
    expected = torch.cat([F.scaled_dot_product_attention(q[:, :, a:b], k[:, :, a:b], v[:, :, a:b])
                          for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True)], dim=2)
    assert out.shape == (1, sum(lengths), heads, size)
    torch.testing.assert_close(out, expected.transpose(1, 2), rtol=1e-5, atol=1e-6)
    out.sum().backward()
    assert q.grad is not None and torch.isfinite(q.grad).all()


@pytest.mark.parametrize("head", ["AutoModelForSequenceClassification", "AutoModelForQuestionAnswering",
                                  "AutoModelForTokenClassification", "AutoModelForMaskedLM"])
def test_bert_passes_the_check_in_every_head_and_is_left_as_it_was(bert, head):
    path, tokenizer, rows = bert
    model = getattr(transformers, head).from_pretrained(path)
    assert padding_free_position_offset(model, DataCollatorWithPadding(tokenizer), rows) == 0
    assert model.config._attn_implementation == "sdpa"
    assert not model.base_model.encoder._forward_hooks and not model._forward_pre_hooks
    model.train()
    padding_free_position_offset(model, DataCollatorWithPadding(tokenizer), rows)
    assert model.training


def test_roberta_numbers_positions_after_its_padding_index(bert):
    _, tokenizer, rows = bert
    config = transformers.RobertaConfig(vocab_size=tokenizer.vocab_size + 4, hidden_size=32, num_hidden_layers=2,
                                        num_attention_heads=2, intermediate_size=64, pad_token_id=1,
                                        max_position_embeddings=130)
    model = transformers.RobertaForSequenceClassification(config)
    assert padding_free_position_offset(model, DataCollatorWithPadding(tokenizer), rows) == 2


def test_models_that_cannot_take_padding_free_rows_fail_the_check(bert, tmp_path):
    _, tokenizer, rows = bert
    deberta = transformers.DebertaV2ForSequenceClassification(transformers.DebertaV2Config(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128, relative_attention=True, position_buckets=32))
    assert padding_free_position_offset(deberta, DataCollatorWithPadding(tokenizer), rows) is None
    gpt2 = transformers.GPT2ForSequenceClassification(transformers.GPT2Config(
        vocab_size=tokenizer.vocab_size, n_embd=32, n_layer=2, n_head=2, pad_token_id=0))
    assert padding_free_position_offset(gpt2, DataCollatorWithPadding(tokenizer), rows) is None  # no encoder


@pytest.mark.parametrize("static", [False, True], ids=["as-flattened", "static-shape"])
def test_a_padding_free_step_gives_the_padded_steps_loss_and_gradients(bert, static):
    path, tokenizer, rows = bert
    torch.manual_seed(0)
    model = transformers.AutoModelForTokenClassification.from_pretrained(path, num_labels=3)
    model.eval()  # no dropout: the two layouts draw different masks
    labelled = [{**row, "labels": [i % 3 for i in range(len(row["input_ids"]))]} for row in rows]
    collate = transformers.DataCollatorForTokenClassification(tokenizer)
    padded = model(**collate(labelled)).loss
    padded.backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    switch = PaddingFree(model)
    flattening = FlatteningCollator(collate, 0)
    if static:  # filler sequences after the real tokens, dropped before the head
        flattening.shape = StaticTokenShape(sum(len(row["input_ids"]) for row in rows) + 7, len(rows) + 2, 40)
    flat = model(**model_inputs(flattening(labelled))).loss
    flat.backward()
    switch.restore()
    torch.testing.assert_close(flat, padded, rtol=1e-5, atol=1e-6)
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(parameter.grad, expected[name], rtol=1e-4, atol=1e-6, msg=name)


def test_static_shapes_are_one_shape_for_every_batch_with_short_fillers_that_are_never_empty():
    """Batches of any rows and lengths within the bounds fill out to the same tensors' shapes and the same
    longest length, whose fillers each hold 1 to FILLER_SEQUENCE tokens at the position offset."""
    torch.manual_seed(0)
    most_tokens, most_rows, longest = 900, 40, 60
    shape = StaticTokenShape(most_tokens, most_rows, longest)
    seen = set()
    for rows, width in ((1, 1), (1, 60), (40, 1), (15, 60), (40, 22), (3, 7)):
        lengths = torch.randint(1, width + 1, (rows,))
        lengths[0] = width
        mask = (torch.arange(width)[None, :] < lengths[:, None]).long()
        batch = {"input_ids": torch.randint(5, 99, (rows, width)) * mask, "token_type_ids": torch.zeros_like(mask),
                 "attention_mask": mask, "labels": torch.arange(rows)}
        real = int(mask.sum())
        if real > most_tokens:
            continue
        flat = flatten_batch(batch, position_offset=2, shape=shape)
        seen.add((tuple(flat["input_ids"].shape), tuple(flat["position_ids"].shape), tuple(flat["cu_seq_lens_q"].shape),
                  flat["max_length_q"], flat["max_length_k"]))
        offsets = flat["cu_seq_lens_q"]
        sizes = (offsets[1:] - offsets[:-1])
        assert offsets[-1] == shape.tokens and (sizes >= 1).all() and sizes.max() <= flat["max_length_q"]
        assert (sizes[rows:] <= FILLER_SEQUENCE).all() and sizes[:rows].tolist() == lengths.tolist()
        assert (flat["position_ids"][0, real:] == 2).all() and flat["input_ids"][0, :real].tolist() == \
            batch["input_ids"][mask.bool()].tolist()
        assert flat[LAYOUT] == (rows, width, real) and flat["labels"].tolist() == list(range(rows))
    assert len(seen) == 1, seen
