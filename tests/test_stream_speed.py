"""`benchmarks/stream_speed.py --quick`: every preset's update streams and dream are timed on the CPU."""

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "stream_speed.py"


def test_quick_run_times_every_stream_of_every_preset(tmp_path):
    out = tmp_path / "result.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, str(SCRIPT), "--out", str(out), "--quick", "--device", "cpu", "--repeats", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert set(result) == {"description", "columns", "rows", "notes"}
    rows = {(row[0], row[1]): dict(zip(result["columns"], row)) for row in result["rows"]}
    assert {stream for _, stream in rows} >= {
        "learn/tokenizer", "learn/world_model", "learn/actor_critic",  # IRIS
        "learn/behaviour",  # STORM, DreamerV3
        "learn/denoiser", "learn/reward_end",  # DIAMOND
        "tokenizer/tokenizer", "latent_actions/latent_actions", "dynamics/dynamics",  # Genie
        "open_loop, per dreamed frame",
    }  # fmt: skip
    assert len({preset for preset, _ in rows}) == 5
    for row in rows.values():
        assert isinstance(row["seconds"], float) and row["seconds"] > 0, row
        assert row["updates timed"] == 1
