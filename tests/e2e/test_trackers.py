"""Trackers for real: a run's metrics read back from tensorboard's, mlflow's and wandb's own files; a tracker asked
for but absent, a wandb without a login and a push to an unreachable Hub are one line before anything is written."""

from __future__ import annotations

import importlib.util
import json

import pytest

from tests.conftest import run_cli, tiny_task_args


@pytest.fixture(scope="module")
def base_args(tmp_path_factory):
    return [*tiny_task_args("finetune-glue", tmp_path_factory.mktemp("glue")), "--max-steps", "6"]


@pytest.fixture(scope="module")
def glue_args(base_args):
    return [*base_args, "--eval-strategy", "steps", "--eval-steps", "3", "--save-strategy", "no",
            "--no-load-best-model-at-end", "--logging-steps", "2"]


def _installed(*names: str) -> list[str]:
    return [name for name in names if importlib.util.find_spec(name) is not None]


def test_metrics_reach_every_tracker_s_own_files(tmp_path, glue_args, monkeypatch):
    trackers = _installed("tensorboard", "mlflow", "wandb", "trackio")
    out, mlruns, wandb_dir, trackio_dir = tmp_path / "run", tmp_path / "mlruns", tmp_path / "wandb", tmp_path / "trackio"
    wandb_dir.mkdir()
    env = {"MLFLOW_TRACKING_URI": mlruns.as_uri(), "WANDB_MODE": "offline", "WANDB_DIR": str(wandb_dir),
           "WANDB_SILENT": "true", "TRACKIO_DIR": str(trackio_dir)}
    run_cli(*glue_args, "--report_to", ",".join(trackers), "--project", "sst-tiny", "--run-name", "first",
            "--output-dir", str(out), check=True, env=env)
    logged = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    accuracy = [r["eval_accuracy"] for r in logged if "eval_accuracy" in r]
    assert len(accuracy) == 2  # steps 3 and 6

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "runs" / "sst-tiny")).Reload()
    assert [round(e.value, 6) for e in events.Scalars("eval/accuracy")] == [round(a, 6) for a in accuracy]
    assert [e.step for e in events.Scalars("eval/accuracy")] == [3, 6]

    if "mlflow" in trackers:
        from mlflow.tracking import MlflowClient

        monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # what ssl sets for its file store
        client = MlflowClient(tracking_uri=mlruns.as_uri())
        experiment = client.get_experiment_by_name("sst-tiny")
        (run,) = client.search_runs([experiment.experiment_id])
        assert run.info.run_name == "first"
        history = client.get_metric_history(run.info.run_id, "eval/accuracy")
        assert [h.value for h in history] == pytest.approx(accuracy)
        assert run.data.params["training.learning_rate"] == "0.001"  # the recipe as hyper-parameters
    if "wandb" in trackers:
        (run_file,) = list(wandb_dir.glob("wandb/offline-run-*/run-*.wandb"))
        records = list(_wandb_records(run_file))
        (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
        assert (run.project, run.display_name) == ("sst-tiny", "first")
        logged_accuracy = [json.loads(item.value_json) for r in records if r.WhichOneof("record_type") == "history"
                           for item in r.history.item if (item.key or "/".join(item.nested_key)) == "eval/accuracy"]
        assert logged_accuracy == pytest.approx(accuracy)
    if "trackio" in trackers:
        monkeypatch.setenv("TRACKIO_DIR", str(trackio_dir))  # trackio reads it when imported
        from trackio.sqlite_storage import SQLiteStorage

        logs = SQLiteStorage.get_logs("sst-tiny", "first")
        assert [row["eval/accuracy"] for row in logs if "eval/accuracy" in row] == pytest.approx(accuracy)


def _wandb_records(path):
    """The protobuf records of a wandb run file: the LevelDB log layout wandb writes (a 7-byte file header, 32 KiB
    blocks, records of checksum, length and type, split across blocks as first/middle/last parts)."""
    import struct

    from wandb.proto import wandb_internal_pb2

    data, block, pos, parts = path.read_bytes(), 32768, 7, b""
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        left = block - pos % block
        _checksum, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if left < 7 or (length == 0 and kind == 0):  # the rest of a block is padding
            pos += left
            continue
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        parts = chunk if kind in (1, 2) else parts + chunk
        if kind in (1, 4):  # a whole record, or its last part
            record = wandb_internal_pb2.Record()
            record.ParseFromString(parts)
            yield record


def test_mlflow_defaults_to_a_file_store_in_the_working_directory(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from ssl_cli.engine.logging import tracker_settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    project, kwargs = tracker_settings(SimpleNamespace(project=None, run_name=None), tmp_path / "out", ["mlflow"])
    import os

    assert os.environ["MLFLOW_TRACKING_URI"] == (tmp_path / "mlruns").as_uri()
    assert project == "ssl" and kwargs == {"mlflow": {"run_name": "out"}}
    monkeypatch.setenv("WANDB_PROJECT", "from-env")
    assert tracker_settings(SimpleNamespace(project=None, run_name="r"), tmp_path, ["wandb"])[0] == "from-env"


def _one_line_before_anything(proc, out, expected: str) -> None:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    assert expected in lines[0] and "Traceback" not in proc.stderr
    assert not out.exists()


def test_a_tracker_that_is_not_installed_is_one_line(tmp_path, base_args):
    missing = next(name for name in ("comet_ml", "aim", "clearml", "trackio") if not _installed(name))
    out = tmp_path / "run"
    proc = run_cli(*base_args, "--report_to", f"tensorboard,{missing}", "--output-dir", str(out))
    _one_line_before_anything(proc, out, f"{missing} is not installed: pip install")


@pytest.mark.skipif(not _installed("wandb"), reason="wandb is not installed")
def test_wandb_without_a_login_is_one_line(tmp_path, base_args):
    out = tmp_path / "run"
    env = {"WANDB_MODE": "", "WANDB_API_KEY": "", "NETRC": str(tmp_path / "no-netrc")}
    proc = run_cli(*base_args, "--report_to", "wandb", "--output-dir", str(out), env=env)
    _one_line_before_anything(proc, out, "WANDB_MODE=offline")


@pytest.mark.parametrize("env, args, expected", [
    ({}, [], "HF_HUB_OFFLINE is set"),
    ({"HF_HUB_OFFLINE": "0", "HF_TOKEN": ""}, [], "needs a Hugging Face login"),
    ({"HF_HUB_OFFLINE": "0", "HF_TOKEN": "hf_not_a_real_token", "HF_ENDPOINT": "http://127.0.0.1:9"}, [],
     "the Hugging Face Hub does not answer"),
    ({}, ["--hub-model-id", "a/b/c"], "is not a Hub repository id"),
])
def test_push_to_hub_fails_before_training_when_it_could_not_succeed(tmp_path, base_args, env, args, expected):
    out = tmp_path / "run"
    proc = run_cli(*base_args, "--push-to-hub", *args, "--output-dir", str(out), env=env)
    _one_line_before_anything(proc, out, expected)
