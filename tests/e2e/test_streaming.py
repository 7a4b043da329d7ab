"""Pretraining on a stream (``--streaming``): no cache of the corpus, exact resume, shards, errors, both commands."""

from __future__ import annotations

import json

import pytest

from ssl_cli.tasks.pretraining.data import write_text_corpus
from tests.conftest import run_cli, run_then_resume

MLM = ["pretrain-mlm", "--recipe", "recipes/pretrain/tiny-mlm-offline.yaml"]
CLM = ["pretrain-clm", "--recipe", "recipes/pretrain/tiny-clm-offline.yaml"]


def _results(out):
    return json.loads((out / "all_results.json").read_text())


def _cache_bytes(root):
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file())


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_text_corpus(tmp_path_factory.mktemp("text"), n_train=3000, n_dev=100, seed=4)


def test_streaming_trains_without_caching_the_corpus(corpus, tmp_path):
    """The stream learns as the cached path does, while the datasets cache holds none of the training text."""
    common = [*MLM, "--train-file", str(corpus["train"]), "--validation-file", str(corpus["dev"]), "--max-steps", "60"]
    caches = {}
    for mode in ("cached", "streamed"):
        cache = tmp_path / f"cache-{mode}"
        flags = ["--streaming"] if mode == "streamed" else []
        run_cli(*common, *flags, "--output-dir", str(tmp_path / mode), check=True, env={"HF_DATASETS_CACHE": str(cache)})
        caches[mode] = _cache_bytes(cache)
    cached, streamed = _results(tmp_path / "cached"), _results(tmp_path / "streamed")
    corpus_bytes = corpus["train"].stat().st_size
    assert caches["cached"] > corpus_bytes  # the text and its packed blocks, as Arrow files
    assert caches["streamed"] < corpus_bytes / 5, caches  # the small validation file only
    # Same steps, same model: the loss falls as far either way (the data order differs, not the learning).
    assert streamed["eval_loss"] == pytest.approx(cached["eval_loss"], abs=0.25), (streamed, cached)
    losses = [r["loss"] for r in map(json.loads, (tmp_path / "streamed" / "train_log.jsonl").read_text().splitlines())
              if "loss" in r]
    assert losses[-1] < losses[0] - 1.0, losses
    assert streamed["train_steps"] == 60 and 59 * 32 < streamed["train_samples"] <= 60 * 32  # a pass may end short


def test_streaming_resume_reproduces_the_uninterrupted_run(tmp_path):
    """Resumed mid-pass, the stream skips the blocks already trained on and continues into the next, reshuffled,
    pass: the final weights equal the uninterrupted run's bit for bit."""
    data = write_text_corpus(tmp_path / "text", n_train=120, n_dev=10, seed=6)
    common = [*MLM, "--train-file", str(data["train"]), "--validation-file", str(data["dev"]), "--streaming",
              "--per-device-train-batch-size", "8", "--max-steps", "12", "--save-steps", "5", "--save-total-limit", "5",
              "--set", "text.shuffle_buffer_size=40", "--set", "model.dropout=0.1",
              "--set", "training.load_best_model_at_end=false"]
    full, cut, state = run_then_resume(common, tmp_path, keep="checkpoint-5", later=["checkpoint-10"])
    assert state["global_step"] == 5 and state["epoch"] == 0 and state["batches_in_epoch"] == 5
    assert _results(full)["epoch"] >= 1  # the resumed part crosses into a new pass over the stream
    assert _results(cut)["eval_loss"] == _results(full)["eval_loss"]


def test_streaming_reads_shards_and_holds_out_its_first_documents(corpus, tmp_path):
    lines = corpus["train"].read_text(encoding="utf-8").splitlines()
    shards = tmp_path / "shards"
    shards.mkdir()
    for i in range(3):
        (shards / f"part-{i:02d}.txt").write_text("\n".join(lines[i * 400:(i + 1) * 400]) + "\n", encoding="utf-8")
    out = tmp_path / "run"
    run_cli(*MLM, "--train-file", str(shards / "part-*.txt"), "--streaming", "--max-steps", "5",
            "--set", "text.streaming_validation_documents=50", "--output-dir", str(out), check=True)
    results = _results(out)
    assert results["eval_samples"] == 50 and results["eval_tokens"] > 0


@pytest.mark.parametrize("variant", ["clm", "sop"])
def test_streaming_runs_for_clm_and_sentence_pairs(tmp_path, variant):
    if variant == "clm":
        data = write_text_corpus(tmp_path / "text", n_train=300, n_dev=20, seed=7)
        args = [*CLM]
    else:
        from ssl_cli.tasks.pretraining.data import story_corpus

        (tmp_path / "stories.txt").write_text("\n".join(story_corpus(300, seed=7)) + "\n", encoding="utf-8")
        (tmp_path / "dev.txt").write_text("\n".join(story_corpus(20, seed=8)) + "\n", encoding="utf-8")
        data = {"train": tmp_path / "stories.txt", "dev": tmp_path / "dev.txt"}
        args = [*MLM, "--sentence-objective", "sop"]
    out = tmp_path / "run"
    run_cli(*args, "--train-file", str(data["train"]), "--validation-file", str(data["dev"]), "--streaming",
            "--max-steps", "6", "--output-dir", str(out), check=True)
    results = _results(out)
    assert results["train_steps"] == 6 and results["eval_loss"] > 0
    if variant == "sop":
        assert 0 <= results["eval_sentence_accuracy"] <= 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "text.streaming needs training.max_steps"),
        (["--max-steps", "5", "--set", "text.streaming_validation_documents=100000"], "all held out for evaluation"),
    ],
)
def test_streaming_errors_are_one_line(corpus, tmp_path, extra, message):
    proc = run_cli(*MLM, "--train-file", str(corpus["train"]), "--streaming", *extra, "--output-dir", str(tmp_path / "o"))
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_a_glob_that_matches_nothing_or_mixed_formats_is_a_one_line_error(tmp_path):
    (tmp_path / "a.txt").write_text("some text\n", encoding="utf-8")
    (tmp_path / "b.jsonl").write_text('{"text": "more"}\n', encoding="utf-8")
    for pattern, message in ((tmp_path / "none-*.txt", "no file matches"), (tmp_path / "*", "shards must all be one of")):
        proc = run_cli(*MLM, "--train-file", str(pattern), "--max-steps", "2", "--output-dir", str(tmp_path / "o"))
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_each_pass_over_a_stream_is_reshuffled_and_a_resumed_pass_skips_exactly(tmp_path):
    """The engine's pass over a stream: a new order each epoch (a prepared loader would reset it to epoch 0), a
    resumed pass is the same pass less its first batches, and torch's global RNG (dropout) is left untouched."""
    import datasets
    import torch

    from ssl_cli.config import TrainingConfig
    from ssl_cli.engine import Engine
    from ssl_cli.engine.batching import stream_loader

    engine = Engine(TrainingConfig(per_device_train_batch_size=4, report_to=["none"], seed=0), tmp_path)
    stream = datasets.Dataset.from_dict({"x": list(range(40))}).to_iterable_dataset().shuffle(seed=0, buffer_size=40)

    def batches(epoch, skip):
        collate = lambda rows: {"x": torch.tensor([row["x"] for row in rows])}  # noqa: E731
        loader = stream_loader(engine.accelerator, engine.cfg, stream, epoch, skip, collate,
                               torch.Generator().manual_seed(0))
        return [batch["x"].tolist() for batch in loader]

    torch.manual_seed(0)
    expected_draw = torch.rand(1)
    torch.manual_seed(0)
    first, second = batches(0, 0), batches(1, 0)
    assert torch.rand(1) == expected_draw
    assert sorted(sum(first, [])) == sorted(sum(second, [])) == list(range(40))
    assert first != second
    assert batches(1, 3) == second[3:]
