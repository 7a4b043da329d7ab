"""``--overwrite`` sets the old run aside and deletes it only once the new run trains (``ssl_cli.output_dir``)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from ssl_cli.errors import UserError
from ssl_cli.output_dir import DISCARDED_DIR, LOCK_FILE, REPLACED_DIR, check_output_dir, claim


def _old_run(out: Path) -> dict[str, str]:
    (out / "checkpoint-2").mkdir(parents=True)
    (out / "checkpoint-2" / "model.safetensors").write_text("old weights")
    (out / "config.json").write_text("{}")
    return _files(out)


def _files(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): p.read_text() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name != LOCK_FILE}


def _training(out: Path, **overrides) -> SimpleNamespace:
    settings = {"output_dir": str(out), "overwrite": True, "resume": False, "resume_from_checkpoint": None}
    return SimpleNamespace(**{**settings, **overrides})


def test_put_back_replaces_what_the_new_run_wrote(tmp_path):
    out = tmp_path / "run"
    before = _old_run(out)
    held = claim(_training(out), resuming=False)
    assert _files(out) == {f"{REPLACED_DIR}/{name}": text for name, text in before.items()}
    (out / "scratch-tokenizer").mkdir()
    (out / "config.json").write_text("new")
    held.put_back_replaced()
    held.release()
    assert _files(out) == before and not (out / REPLACED_DIR).exists()


def test_discard_deletes_the_old_run_and_is_idempotent(tmp_path):
    out = tmp_path / "run"
    _old_run(out)
    held = claim(_training(out), resuming=False)
    (out / "model.safetensors").write_text("new weights")
    held.discard_replaced()
    held.discard_replaced()
    held.put_back_replaced()  # too late: training ran
    held.release()
    assert _files(out) == {"model.safetensors": "new weights"}
    assert {p.name for p in out.iterdir()} == {"model.safetensors", LOCK_FILE}


def test_a_resumed_run_sets_nothing_aside(tmp_path):
    out = tmp_path / "run"
    before = _old_run(out)
    held = claim(_training(out), resuming=True)
    assert held.replaced is None and _files(out) == before
    held.release()


def test_leftovers_of_a_killed_overwrite_are_cleared_before_the_checks(tmp_path, capsys):
    """Killed while set up: the old run comes back. Killed while deleting it: the deletion is finished."""
    out = tmp_path / "run"
    before = _old_run(out)
    claim(_training(out), resuming=False).release()  # as a kill -9 leaves it: the lock dropped, nothing put back
    (out / "scratch-tokenizer").mkdir()
    (out / DISCARDED_DIR).mkdir()
    (out / DISCARDED_DIR / "optimizer.bin").write_text("older run")
    with pytest.raises(UserError, match="is not empty"):
        check_output_dir(_training(out, overwrite=False), "bert-base-uncased")
    assert _files(out) == before
    assert "put back the run" in capsys.readouterr().err


def test_a_checkpoint_from_before_a_recipe_key_resumes_while_the_key_keeps_the_old_behaviour(tmp_path):
    """A fingerprint written before ``training.optim`` existed lacks it: that run trained AdamW, so resuming it
    with AdamW is no change, and with another optimizer it is one."""
    import json

    from ssl_cli.engine import STATE_FILE
    from ssl_cli.output_dir import check_resume_fingerprint

    older = {"training.learning_rate": 0.001}
    (tmp_path / STATE_FILE).write_text(json.dumps({"fingerprint": {"recipe": older, "data": {}}}))
    check_resume_fingerprint(tmp_path, {"recipe": {**older, "training.optim": "adamw_torch"}, "data": {}})
    check_resume_fingerprint(tmp_path, {"recipe": {**older, "training.data_seed": "None"}, "data": {}})
    with pytest.raises(UserError, match="training.optim None -> 'sgd'"):
        check_resume_fingerprint(tmp_path, {"recipe": {**older, "training.optim": "sgd"}, "data": {}})
    with pytest.raises(UserError, match="training.new_key None -> 1"):  # a key not listed as added is a change
        check_resume_fingerprint(tmp_path, {"recipe": {**older, "training.new_key": 1}, "data": {}})
