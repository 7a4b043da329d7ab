"""An extractive question-answering pipeline for models trained with ``ssl finetune-qa``.

transformers 5 removed the ``question-answering`` pipeline task (its error
points to chat models). Extractive QA models still need one, so importing
this module registers ``extractive-question-answering`` with the same windows
(``max_seq_length``/``doc_stride``) and the same exact span search that
``ssl finetune-qa`` scores with::

    import ssl_cli.tasks.qa.pipeline  # registers the task
    from transformers import pipeline

    qa = pipeline("extractive-question-answering", model="outputs/drcd")
    qa(question="...", context="...")  # {"answer", "score", "start", "end"}

The import also gives ``question-answering`` back to transformers 5 (4.x's
task name, which 5.x lists as removed), so
``pipeline("question-answering", model="outputs/drcd")`` works as it used to,
with 4.x's scores: start x end probability, each a softmax within its window
(``QuestionAnsweringPipeline``). ``extractive-question-answering`` scores as
``ssl finetune-qa``'s n-best files do: a softmax over the best spans' logit sums.

Windows and the answer-length limit default to those in the ``recipe.yaml``
saved with the model, so answers match ``ssl finetune-qa``'s evaluation.
Where transformers still ships ``question-answering`` (4.x), that task works
on the same output directories too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from transformers import AutoModelForQuestionAnswering
from transformers.pipelines import PIPELINE_REGISTRY, Pipeline

from ssl_cli.compat import unremove_pipeline_task
from ssl_cli.tasks.qa.postprocess import postprocess_predictions
from ssl_cli.tasks.qa.task import context_offsets, tokenize_windows

TASK = "extractive-question-answering"


class ExtractiveQAPipeline(Pipeline):
    """Question + context -> the best span of the context (or the ``top_k`` best)."""

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.settings = {"max_seq_length": 384, "doc_stride": 128, "max_answer_length": 30,
                         **recipe_settings(Path(str(getattr(self.model, "name_or_path", ""))))}

    def __call__(self, inputs: Any = None, *, question: str | list[str] | None = None,
                 context: str | list[str] | None = None, **kwargs: Any):
        """``qa(question=..., context=...)``, ``qa({"question": ..., "context": ...})``, or many at once as the 4.x
        pipeline took them: lists of questions and contexts (paired in order; one context or one question is
        shared by all), or a list of dicts. Many give a list of answers; a list of one gives its answer alone,
        as in 4.x. Each question's windows are one forward pass, whatever ``batch_size`` says."""
        kwargs.pop("batch_size", None)  # the windows of one question are its batch (they vary in number)
        if inputs is None:
            inputs = question_context_pairs(question, context)
        if isinstance(inputs, (list, tuple)) and len(inputs) == 1:
            inputs = inputs[0]
        return super().__call__(list(inputs) if isinstance(inputs, tuple) else inputs, **kwargs)

    def _sanitize_parameters(self, max_seq_length: int | None = None, doc_stride: int | None = None,
                             max_answer_length: int | None = None, top_k: int | None = None, **_: Any):
        preprocess = {k: v for k, v in (("max_seq_length", max_seq_length), ("doc_stride", doc_stride)) if v is not None}
        postprocess = {k: v for k, v in (("max_answer_length", max_answer_length), ("top_k", top_k)) if v is not None}
        return preprocess, {}, postprocess

    def preprocess(self, inputs: dict[str, str], max_seq_length: int | None = None,
                   doc_stride: int | None = None) -> dict[str, Any]:
        if not isinstance(inputs, dict) or not {"question", "context"} <= inputs.keys():
            raise ValueError("each input needs 'question' and 'context'")
        max_seq_length = min(max_seq_length or self.settings["max_seq_length"], self.tokenizer.model_max_length)
        doc_stride = doc_stride or self.settings["doc_stride"]
        question = len(self.tokenizer(inputs["question"], add_special_tokens=False)["input_ids"])
        room = max_seq_length - question - self.tokenizer.num_special_tokens_to_add(pair=True)
        if doc_stride >= room:  # a short model (or a long question) leaves the default overlap no room
            doc_stride = max(1, room // 2)
        enc, context_id = tokenize_windows(self.tokenizer, [inputs["question"]], [inputs["context"]], max_seq_length,
                                           doc_stride, padding=True, return_tensors="pt")
        model_inputs = {name: enc[name] for name in self.tokenizer.model_input_names if name in enc}
        return {"model_inputs": model_inputs, "offsets": context_offsets(enc, context_id), "context": inputs["context"]}

    def _forward(self, inputs: dict[str, Any]) -> dict[str, Any]:
        out = self.model(**inputs["model_inputs"])
        return {"start_logits": out.start_logits, "end_logits": out.end_logits, "offsets": inputs["offsets"],
                "context": inputs["context"], "input_ids": inputs["model_inputs"]["input_ids"]}

    def postprocess(self, outputs: dict[str, Any], max_answer_length: int | None = None, top_k: int = 1):
        max_answer_length = max_answer_length or self.settings["max_answer_length"]
        start = outputs["start_logits"].float().cpu().numpy()
        end = outputs["end_logits"].float().cpu().numpy()
        _, nbest, _ = postprocess_predictions(
            ["q"], [outputs["context"]], np.zeros(len(start), dtype=int), start, end, outputs["offsets"],
            n_best_size=max(top_k, 20), max_answer_length=max_answer_length,  # scores: softmax over the 20 best
        )
        answers = [{"answer": c["text"], "score": c["probability"], "start": c["offsets"][0], "end": c["offsets"][1]}
                   for c in nbest["q"][:top_k]]
        if not answers:
            answers = [{"answer": "", "score": 0.0, "start": 0, "end": 0}]
        return answers[0] if top_k == 1 else answers


class QuestionAnsweringPipeline(ExtractiveQAPipeline):
    """``question-answering`` as transformers 4.x scored it: in each window, a softmax of the start logits and
    one of the end logits over the context tokens and [CLS]; a span's score is start probability x end
    probability ([CLS] itself is never an answer), and the answer is the best-scored span of any window.

    The spans searched are ``ExtractiveQAPipeline``'s (the same windows and length limit); 4.x's
    ``align_to_words`` widening of an answer to whole words is not applied: the answer is the span's own text.
    """

    def postprocess(self, outputs: dict[str, Any], max_answer_length: int | None = None, top_k: int = 1):
        limit = max_answer_length or self.settings["max_answer_length"]
        start = outputs["start_logits"].float().cpu().numpy()
        end = outputs["end_logits"].float().cpu().numpy()
        ids = outputs["input_ids"].cpu().numpy()
        candidates = []
        for window, offsets in enumerate(outputs["offsets"]):
            in_context = np.array([o is not None for o in offsets] + [False] * (start.shape[1] - len(offsets)))
            for score, s, e in v4_span_scores(start[window], end[window], in_context,
                                              ids[window] == self.tokenizer.cls_token_id, limit, top_k):
                first, last = offsets[s][0], offsets[e][1]
                candidates.append({"answer": outputs["context"][first:last], "score": score, "start": first,
                                   "end": last})
        candidates.sort(key=lambda c: -c["score"])
        answers = candidates[:top_k] or [{"answer": "", "score": 0.0, "start": 0, "end": 0}]
        return answers[0] if top_k == 1 else answers


def question_context_pairs(question: str | list[str] | None, context: str | list[str] | None) -> Any:
    """The pipeline's inputs for ``question=``/``context=``: one dict, or a list of them."""
    if question is None or context is None:
        raise ValueError("give question= and context= (or a dict / list of dicts with those keys)")
    if isinstance(question, str) and isinstance(context, str):
        return {"question": question, "context": context}
    questions = [question] if isinstance(question, str) else list(question)
    contexts = [context] if isinstance(context, str) else list(context)
    if len(questions) != len(contexts) and 1 not in (len(questions), len(contexts)):
        raise ValueError(f"{len(questions)} questions and {len(contexts)} contexts: give as many of each, or one "
                         "context (or one question) for all")
    count = max(len(questions), len(contexts))
    questions, contexts = questions * (count // len(questions)), contexts * (count // len(contexts))
    return [{"question": q, "context": c} for q, c in zip(questions, contexts, strict=True)]


def v4_span_scores(start: np.ndarray, end: np.ndarray, in_context: np.ndarray, is_cls: np.ndarray,
                   max_answer_length: int, top_k: int) -> list[tuple[float, int, int]]:
    """The ``top_k`` best (score, start, end) of one window, as 4.x's ``select_starts_ends`` + ``decode_spans``:
    softmaxes over the context and [CLS], [CLS]'s probabilities then zeroed, spans within the context."""
    counted = in_context | is_cls
    probabilities = []
    for logits in (start, end):
        masked = np.where(counted, logits.astype(np.float64), -10000.0)
        exp = np.exp(masked - masked.max())
        probabilities.append(np.where(is_cls, 0.0, exp / exp.sum()))
    outer = np.triu(np.outer(*probabilities))
    outer = np.tril(outer, max_answer_length - 1) * np.outer(in_context, in_context)
    best = np.argsort(-outer, axis=None)[:top_k]
    return [(float(outer.flat[i]), *map(int, np.unravel_index(i, outer.shape))) for i in best if outer.flat[i] > 0]


def recipe_settings(model_dir: Path) -> dict[str, int]:
    """Window and answer-length settings from the ``recipe.yaml`` that ``ssl`` saved with the model, if any."""
    import yaml

    path = model_dir / "recipe.yaml"
    if not path.is_file():
        return {}
    try:
        recipe = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError:
        return {}
    data, qa = recipe.get("data") or {}, recipe.get("qa") or {}
    found = {"max_seq_length": data.get("max_seq_length"), "doc_stride": qa.get("doc_stride"),
             "max_answer_length": qa.get("max_answer_length")}
    return {key: value for key, value in found.items() if isinstance(value, int)}


PIPELINE_REGISTRY.register_pipeline(TASK, pipeline_class=ExtractiveQAPipeline, pt_model=AutoModelForQuestionAnswering,
                                    type="text")


def _restore_question_answering_task() -> None:
    """Give ``pipeline("question-answering", ...)`` back its 4.x meaning: extractive QA over a context.

    transformers 5 lists the task as removed (pointing users to chat models).
    Only that entry is taken out, and only when no ``question-answering``
    pipeline is registered, so a transformers that still ships one keeps its own.
    """
    if "question-answering" in PIPELINE_REGISTRY.get_supported_tasks():
        return
    if unremove_pipeline_task("question-answering"):
        PIPELINE_REGISTRY.register_pipeline("question-answering", pipeline_class=QuestionAnsweringPipeline,
                                            pt_model=AutoModelForQuestionAnswering, type="text")


_restore_question_answering_task()
