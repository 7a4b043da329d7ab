"""ssl pretrain-clm end to end on generated text: a scratch GPT-2, falling loss, perplexity, generation."""

from __future__ import annotations

import json
import math

from ssl_cli.synthetic import write_text_corpus
from tests.conftest import run_cli

TINY = ["pretrain-clm", "--recipe", "recipes/pretrain/tiny-clm-offline.yaml"]


def test_clm_learns_and_the_output_generates(tmp_path):
    from transformers import AutoModelForCausalLM, pipeline

    data = write_text_corpus(tmp_path, n_train=1500, n_dev=150, seed=1)
    out = tmp_path / "clm"
    run_cli(*TINY, "--train-file", str(data["train"]), "--validation-file", str(data["dev"]), "--output-dir", str(out),
            check=True)
    results = json.loads((out / "all_results.json").read_text())
    assert abs(results["perplexity"] - math.exp(results["eval_loss"])) < 1e-6 * results["perplexity"]
    losses = [r["loss"] for r in map(json.loads, (out / "train_log.jsonl").read_text().splitlines()) if "loss" in r]
    assert losses[-1] < 0.6 * losses[0], losses  # the generated grammar leaves ~1 nat per token of real choice
    assert results["eval_accuracy"] > 0.1, results  # chance is 1/500
    model = AutoModelForCausalLM.from_pretrained(str(out))
    assert model.config.model_type == "gpt2"
    generate = pipeline("text-generation", model=str(out), device="cpu")
    text = generate("the old dog", max_new_tokens=8, do_sample=False)[0]["generated_text"]
    assert text.startswith("the old dog") and len(text) > len("the old dog")
