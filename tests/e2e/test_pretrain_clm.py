"""ssl pretrain-clm end to end on generated text: a scratch GPT-2, falling loss, perplexity; ssl generate."""

from __future__ import annotations

import json
import math

import pytest

from ssl_cli.tasks.pretraining.data import write_text_corpus
from tests.conftest import run_cli

TINY = ["pretrain-clm", "--recipe", "recipes/pretrain/tiny-clm-offline.yaml"]


@pytest.fixture(scope="module")
def clm_run(tmp_path_factory):
    data = write_text_corpus(tmp_path_factory.mktemp("text"), n_train=1500, n_dev=150, seed=1)
    out = tmp_path_factory.mktemp("run") / "clm"
    run_cli(*TINY, "--train-file", str(data["train"]), "--validation-file", str(data["dev"]), "--output-dir", str(out),
            check=True)
    return out


def test_clm_learns_and_the_output_generates(clm_run):
    from transformers import AutoModelForCausalLM, pipeline

    out = clm_run
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


def test_generate_command_sampling_is_seeded(clm_run):
    common = ["generate", "--model", str(clm_run), "--prompt", "the old dog", "--max-new-tokens", "12"]
    first = run_cli(*common, "--seed", "3", "--num-return-sequences", "2", check=True).stdout
    assert first == run_cli(*common, "--seed", "3", "--num-return-sequences", "2", check=True).stdout
    assert first.count("--- sample") == 2 and "the old dog" in first
    assert first != run_cli(*common, "--seed", "4", "--num-return-sequences", "2", check=True).stdout
    greedy = run_cli(*common, "--temperature", "0", check=True).stdout
    assert greedy.startswith("the old dog") and greedy == run_cli(*common, "--temperature", "0", "--seed", "9", check=True).stdout


def test_few_shot_prompt_and_bad_input(clm_run, tmp_path):
    from ssl_cli.tasks.pretraining.generate import few_shot_prompt

    examples = tmp_path / "shots.jsonl"
    examples.write_text("".join(json.dumps({"input": f"q{i}", "output": f"a{i}"}) + "\n" for i in range(4)))
    prompt = few_shot_prompt(examples, 2, "q9", "Answer.")
    assert prompt == "Answer.\n\ninput: q0\noutput: a0\n\ninput: q1\noutput: a1\n\ninput: q9\noutput:"
    proc = run_cli("generate", "--model", str(clm_run), "--prompt", "q9", "--examples", str(examples), "--shots", "2",
                   "--max-new-tokens", "4", check=True)
    assert proc.stdout.strip() and "input: q0" not in proc.stdout  # only the continuation is printed
    proc = run_cli("generate", "--model", str(clm_run), "--prompt", "q", "--examples", str(examples), "--shots", "9")
    assert proc.returncode == 2 and "fewer than --shots 9" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("generate", "--model", str(tmp_path), "--prompt", "x")
    assert proc.returncode == 2 and "not a model directory" in proc.stderr
