"""`wm bench`: every task file is valid, a tiny task runs end to end, and the report is rebuilt."""

import json
import sys

import pytest
import yaml

import worldmodels.train.bench as bench_module
from tests.conftest import TINY
from worldmodels.config import load_config
from worldmodels.errors import ConfigError, TrainingError
from worldmodels.train.bench import load_tasks, run_bench


def test_every_task_file_parses_and_its_config_resolves():
    tasks = load_tasks([])
    assert "latent_mlp-cartpole" in tasks
    for name, task in tasks.items():
        if task.script is None:
            overrides = [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in task.overrides.items()]
            load_config(task.preset, overrides)  # raises ConfigError on a bad preset or key
            assert task.steps > 0 and task.seeds, name


def test_tiny_benchmark_runs_and_writes_the_report(tmp_path, monkeypatch):
    bench = tmp_path / "benchmarks"
    bench.mkdir()
    overrides = dict(item.split("=", 1) for item in TINY)
    overrides["train.eval_every"] = "100"
    task = {
        "preset": "latent_mlp",
        "overrides": overrides,
        "steps": 200,
        "seeds": [0, 1],
        "goal": 50,
        "reference": {"score": 500, "source": "a test"},
        "description": "tiny",
    }
    (bench / "tiny.yaml").write_text(yaml.safe_dump(task))
    monkeypatch.setenv("WM_BENCHMARKS", str(bench))
    run_bench(["tiny"], seeds=None, jobs=2, out_root=tmp_path / "runs", report_only=False)
    result = json.loads((bench / "results" / "tiny.json").read_text())
    assert [r["seed"] for r in result["runs"]] == [0, 1]
    assert [step for step, _ in result["runs"][0]["curve"]] == [100, 200]
    report = (tmp_path / "BENCHMARKS.md").read_text()
    assert "| tiny | latent_mlp | 200 | 2 |" in report and "wm bench tiny" in report
    assert (bench / "results" / "tiny.png").stat().st_size > 0


def test_a_report_that_cannot_be_rebuilt_says_the_results_are_stored(tmp_path, monkeypatch):
    """The suites' fingerprints import the package: code changed on disk under a long benchmark can break
    that at its end; the results are already stored, and the message says how to rebuild the report."""
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    monkeypatch.setenv("WM_BENCHMARKS", str(tmp_path / "benchmarks"))

    def changed(_):
        raise ImportError("cannot import name 'load_dataset' from 'worldmodels.data.episodes'")

    monkeypatch.setattr(bench_module, "suite_report", changed)
    with pytest.raises(TrainingError, match="results are stored.*load_dataset.*wm bench --report"):
        bench_module.write_report(tmp_path / "benchmarks" / "results")


def test_a_script_task_runs_its_script_with_the_task_s_args(tmp_path, monkeypatch):
    """One script serves several tasks (`jepa_wm_goals.py` on TwoRoom and PointMaze) through their `args`."""
    bench = tmp_path / "benchmarks"
    bench.mkdir()
    (bench / "echo.py").write_text(
        "import json, sys\n"
        "out = sys.argv[sys.argv.index('--out') + 1]\n"
        "rows = [[' '.join(sys.argv[3:])]]\n"
        "json.dump({'description': 'echo', 'columns': ['args'], 'rows': rows, 'notes': ''}, open(out, 'w'))\n"
    )
    (bench / "echo_b.yaml").write_text(yaml.safe_dump({"script": "echo.py", "args": ["--env", "b"]}))
    monkeypatch.setenv("WM_BENCHMARKS", str(bench))
    run_bench(["echo_b"], seeds=None, jobs=1, out_root=tmp_path / "runs", report_only=False)
    result = json.loads((bench / "results" / "echo_b.json").read_text())
    assert result["rows"] == [["--env b"]] and result["command"] == "wm bench echo_b"


def test_peer_venv_hands_a_speed_script_the_peer_s_python_and_script(tmp_path, monkeypatch):
    """`wm bench TASK --peer-venv DIR` gives the script `--peer DIR/bin/python PEERS/SCRIPT` (the script runs
    the peer itself, beside its own figures); a venv without a python, or a missing peer script, is a
    ConfigError that says what to do, and tasks without a peer ignore the option."""
    bench, peers, venv = tmp_path / "benchmarks", tmp_path / "peers", tmp_path / "venv"
    bench.mkdir()
    peers.mkdir()
    (bench / "echo.py").write_text(
        "import json, sys\n"
        "out = sys.argv[sys.argv.index('--out') + 1]\n"
        "json.dump({'description': 'echo', 'columns': ['args'], 'rows': [sys.argv[3:]], 'notes': ''}, open(out, 'w'))\n"
    )
    (bench / "fast.yaml").write_text(yaml.safe_dump({"script": "echo.py", "peer": "peer_fast.py"}))
    (bench / "plain.yaml").write_text(yaml.safe_dump({"script": "echo.py"}))
    monkeypatch.setenv("WM_BENCHMARKS", str(bench))
    monkeypatch.setenv("WM_PEERS", str(peers))
    runs = tmp_path / "runs"
    with pytest.raises(ConfigError, match="no .*bin/python; make the venv as the header of peer_fast.py says"):
        run_bench(["fast"], seeds=None, jobs=1, out_root=runs, report_only=False, peer_venv=venv)
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    with pytest.raises(ConfigError, match="peer script .*peer_fast.py is missing; set WM_PEERS"):
        run_bench(["fast"], seeds=None, jobs=1, out_root=runs, report_only=False, peer_venv=venv)
    (peers / "peer_fast.py").write_text("")
    run_bench(["fast", "plain"], seeds=None, jobs=1, out_root=runs, report_only=False, peer_venv=venv)
    fast = json.loads((bench / "results" / "fast.json").read_text())
    assert fast["rows"] == [["--peer", str(venv / "bin" / "python"), str(peers / "peer_fast.py")]]
    assert fast["command"] == "wm bench fast --peer-venv PEER_VENV"
    assert json.loads((bench / "results" / "plain.json").read_text())["rows"] == [[]]
