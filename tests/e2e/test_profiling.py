"""``training.profile_steps``: a torch.profiler record of training steps in the output dir, read back."""

from __future__ import annotations

import json

from tests.conftest import run_cli, tiny_task_args


def test_profile_steps_records_those_steps_and_says_where_their_time_went(tmp_path):
    out = tmp_path / "run"
    run_cli(*tiny_task_args("finetune-glue", tmp_path / "data"), "--max-steps", "5", "--set",
            "training.profile_steps=2", "--set", "training.eval_strategy=no", "--output-dir", str(out), check=True)
    summary = json.loads((out / "profile" / "summary.json").read_text())
    assert summary["profiled_steps"] == 2 and summary["mean_step_ms"] > 0
    names = [op["name"] for op in summary["top_operators"]]
    assert any(name in ("aten::mm", "aten::addmm", "aten::bmm") for name in names), names
    assert "device_busy_fraction" not in summary  # a CPU run: no device to be busy
    trace = json.loads((out / "profile" / "trace.json").read_text())
    steps = {e["name"] for e in trace["traceEvents"] if e.get("name", "").startswith("ProfilerStep")}
    assert len(steps) == 2, steps
    assert "aten::mm" in (out / "profile" / "operators.txt").read_text()
