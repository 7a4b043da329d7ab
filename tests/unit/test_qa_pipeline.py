"""``pipeline("question-answering")``, given back to transformers 5 by ``ssl_cli.tasks.qa.pipeline``, scores as
the 4.x pipeline did: checked against a brute-force computation of that definition over every span of every
window, on a real (randomly initialised) BERT and a real WordPiece tokenizer."""

from __future__ import annotations

import math

import pytest

CONTEXT = ("the old lighthouse keeper lived by the harbour for forty years and kept a small boat named "
           "blue heron . every morning he rowed out past the rocks to check the nets , and every evening "
           "he climbed the tower to light the lamp for the fishing boats coming home .")
QUESTION = "what was the name of the keeper ' s boat ?"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    import torch
    from transformers import BertConfig, BertForQuestionAnswering

    from ssl_cli.models import train_wordpiece_tokenizer

    out = tmp_path_factory.mktemp("qa-model")
    tokenizer = train_wordpiece_tokenizer(iter([CONTEXT, QUESTION] * 20), 200, 128)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    BertForQuestionAnswering(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _brute_force(model_dir, max_seq_length, doc_stride, max_answer_length):
    """Every (window, start, end) span's 4.x score, with plain loops: per window, softmax of the start (and of
    the end) logits over the context tokens and [CLS]; score = p_start x p_end, [CLS] never a span's end."""
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForQuestionAnswering.from_pretrained(model_dir).eval()
    enc = tokenizer([QUESTION], [CONTEXT], truncation="only_second", max_length=max_seq_length, stride=doc_stride,
                    return_overflowing_tokens=True, return_offsets_mapping=True, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                    token_type_ids=enc["token_type_ids"])
    spans = []
    for w in range(len(enc["input_ids"])):
        sequence = enc.sequence_ids(w)
        counted = [i for i, s in enumerate(sequence)
                   if s == 1 or enc["input_ids"][w][i].item() == tokenizer.cls_token_id]
        context = [i for i, s in enumerate(sequence) if s == 1]
        probabilities = []
        for logits in (out.start_logits[w], out.end_logits[w]):
            total = sum(math.exp(logits[i].item() - max(logits[j].item() for j in counted)) for i in counted)
            top = max(logits[j].item() for j in counted)
            probabilities.append({i: math.exp(logits[i].item() - top) / total for i in context})
        for s in context:
            for e in context:
                if s <= e < s + max_answer_length:
                    first, last = enc["offset_mapping"][w][s][0].item(), enc["offset_mapping"][w][e][1].item()
                    spans.append((probabilities[0][s] * probabilities[1][e], CONTEXT[first:last], first, last))
    return sorted(spans, key=lambda span: -span[0])


@pytest.mark.parametrize(("max_seq_length", "doc_stride"), [(128, 32), (40, 12)])
def test_question_answering_scores_are_the_4x_pipeline_definition(model_dir, max_seq_length, doc_stride):
    from transformers import pipeline

    import ssl_cli.tasks.qa.pipeline  # noqa: F401  (restores question-answering)

    qa = pipeline("question-answering", model=str(model_dir), device="cpu")
    got = qa(question=QUESTION, context=CONTEXT, top_k=5, max_seq_length=max_seq_length, doc_stride=doc_stride,
             max_answer_length=8)
    expected = _brute_force(model_dir, max_seq_length, doc_stride, 8)[:5]
    assert [g["score"] for g in got] == pytest.approx([e[0] for e in expected], rel=1e-5)
    assert [(g["answer"], g["start"], g["end"]) for g in got] == [e[1:] for e in expected]
    best = qa(question=QUESTION, context=CONTEXT, max_seq_length=max_seq_length, doc_stride=doc_stride,
              max_answer_length=8)
    assert best == got[0]


def test_extractive_question_answering_keeps_ssl_s_n_best_scores(model_dir):
    """The new name scores as finetune-qa's n-best files: a softmax over the best spans, summing to 1."""
    from transformers import pipeline

    import ssl_cli.tasks.qa.pipeline  # noqa: F401

    qa = pipeline("extractive-question-answering", model=str(model_dir), device="cpu")
    ranked = qa(question=QUESTION, context=CONTEXT, top_k=20, max_answer_length=8)
    assert sum(r["score"] for r in ranked) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("task", ["question-answering", "extractive-question-answering"])
def test_lists_of_questions_and_contexts_as_4x_took_them(model_dir, task):
    from transformers import pipeline

    import ssl_cli.tasks.qa.pipeline  # noqa: F401

    qa = pipeline(task, model=str(model_dir), device="cpu")
    other = "every evening he climbed the tower to light the lamp ."
    questions, contexts = [QUESTION, "who climbed the tower ?"], [CONTEXT, other]
    one_by_one = [qa(question=q, context=c) for q, c in zip(questions, contexts, strict=True)]
    assert qa(question=questions, context=contexts) == one_by_one
    assert qa(question=questions, context=contexts, batch_size=2) == one_by_one
    assert qa([{"question": q, "context": c} for q, c in zip(questions, contexts, strict=True)]) == one_by_one
    assert qa(question=questions, context=CONTEXT) == [one_by_one[0], qa(question=questions[1], context=CONTEXT)]
    assert qa(question=[QUESTION], context=[CONTEXT]) == one_by_one[0]  # a list of one: its answer, as 4.x
    with pytest.raises(ValueError, match="2 questions and 3 contexts"):
        qa(question=questions, context=[CONTEXT] * 3)
