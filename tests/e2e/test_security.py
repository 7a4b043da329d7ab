"""Safe by default: no remote code unless asked (and then a warning), names from data cannot place files outside
the output dir. (Pickle weights and YAML tags are in the bad-input table: tests/e2e/test_bad_input.py.)"""

from __future__ import annotations

import json

import pytest

from ssl_cli.errors import UserError
from ssl_cli.tasks.glue.data import sentiment, write_table
from tests.conftest import run_cli

EVIL = """
from pathlib import Path
Path({marker!r}).write_text("the model's own code ran")
from transformers import BertConfig
class EvilConfig(BertConfig):
    model_type = "evil-bert"
"""


@pytest.fixture
def remote_code_model(tmp_path):
    """A local model whose config asks for its own Python code (as Hub repos with auto_map do)."""
    from transformers import BertConfig, BertForSequenceClassification

    from ssl_cli.models import train_wordpiece_tokenizer

    model_dir = tmp_path / "model"
    config = BertConfig(vocab_size=60, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    BertForSequenceClassification(config).save_pretrained(model_dir)
    train_wordpiece_tokenizer([r["sentence"] for r in sentiment(50, 0)], 60, 128).save_pretrained(model_dir)
    saved = json.loads((model_dir / "config.json").read_text())
    saved["auto_map"] = {"AutoConfig": "configuration_evil.EvilConfig"}
    (model_dir / "config.json").write_text(json.dumps(saved))
    (model_dir / "configuration_evil.py").write_text(EVIL.format(marker=str(model_dir / "CODE_RAN")))
    return model_dir


def _glue_args(tmp_path, model_dir):
    train = write_table(sentiment(20, 1), tmp_path / "train.jsonl")
    return ["finetune-glue", "--recipe", "recipes/glue/tiny-en-offline.yaml", "--task", "sst2", "--model", str(model_dir),
            "--train-file", str(train), "--validation-file", str(train), "--max-steps", "1"]


def test_remote_code_never_runs_unless_asked(remote_code_model, tmp_path):
    proc = run_cli(*_glue_args(tmp_path, remote_code_model), "--output-dir", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr[-2000:]  # trained as the plain BERT its config also describes
    assert not (remote_code_model / "CODE_RAN").exists()
    assert "warning: trust_remote_code is on" not in proc.stderr


def test_asking_for_remote_code_warns(remote_code_model, tmp_path):
    proc = run_cli(*_glue_args(tmp_path, remote_code_model), "--set", "model.trust_remote_code=true",
                   "--output-dir", str(tmp_path / "out"))
    assert "warning: trust_remote_code is on: Python code shipped with" in proc.stderr, proc.stderr[-2000:]
    assert (remote_code_model / "CODE_RAN").exists()  # so the fixture's code does run when allowed


@pytest.mark.parametrize("name", ["../outside", "/etc/passwd", ".hidden", "a/b", ""])
def test_evaluation_set_names_cannot_leave_the_output_dir(name):
    from ssl_cli.tasks.base import EvalSet

    with pytest.raises(UserError, match="cannot name output files"):
        EvalSet(name, examples=None)
    assert EvalSet("validation_matched.v2", examples=None).name  # split names datasets allows stay valid
    assert EvalSet("开发集", examples=None).name  # letters of any script
