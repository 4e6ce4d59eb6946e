"""`wm bench --suite`: cells per fitting agent and task, stored one per file, rerun only when stale."""

import json
import math

import pytest
import yaml

from tests.conftest import TINY
from worldmodels.cli import build_parser
from worldmodels.config import load_config, set_dotted
from worldmodels.errors import ConfigError, TrainingError
from worldmodels.train.bench import bench_dir, write_report
from worldmodels.train.suite import _hundredths, code_modules, load_suite, plan_cells, run_suite, status


def test_the_public_suites_parse_and_every_agent_fits_some_task():
    for name in ("classic", "dmc"):
        suite = load_suite(bench_dir(), name)
        assert len(suite.tasks) == 5 and suite.agents, name
    suite = load_suite(bench_dir(), "classic")
    cells, skipped = plan_cells("classic", suite, bench_dir() / "results" / "suites" / "classic", [], [])
    rows = {c.row for c in cells}
    assert rows == {"random", *suite.agents}
    assert any("muzero × Pendulum-v1" in line and "discrete" in line for line in skipped)


def test_a_cells_code_is_its_agents_modules_not_every_registered_one():
    modules = code_modules({"worldmodels.agents.latent_mlp", "worldmodels.train.loop"})
    assert {"worldmodels.agents.base", "worldmodels.train.learn", "worldmodels.data.replay"} <= modules
    assert not modules & {"worldmodels.agents.muzero", "worldmodels.agents.tdmpc2", "worldmodels.train.bench"}


@pytest.fixture
def tiny_suite(tmp_path, monkeypatch):
    bench = tmp_path / "benchmarks"
    (bench / "suites").mkdir(parents=True)
    preset: dict = {"base": "latent_mlp"}
    for item in TINY:
        key, value = item.split("=", 1)
        set_dotted(preset, key, yaml.safe_load(value))
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(preset))
    suite = {
        "description": "a tiny suite",
        "steps": 200,
        "evaluations": 2,
        "eval_episodes": 2,
        "random_episodes": 3,
        "tasks": {"CartPole-v1": {"reference": {"score": 475, "source": "a test"}}, "Pendulum-v1": {}},
        "agents": {
            "tiny": str(tmp_path / "tiny.yaml"),
            "muzero": {"preset": "muzero", "steps": 100, "evaluations": 1, "eval_episodes": 1},
        },
    }
    (bench / "suites" / "tiny.yaml").write_text(yaml.safe_dump(suite))
    monkeypatch.setenv("WM_BENCHMARKS", str(bench))
    return bench


def test_a_suite_fills_its_cells_once_and_reruns_only_stale_ones(tiny_suite, tmp_path):
    bench = tiny_suite
    run_suite("tiny", bench, tmp_path / "runs", 2, ["random", "tiny"], ["CartPole-v1"], list_only=False)
    cell = json.loads((bench / "results" / "suites" / "tiny" / "tiny--CartPole-v1.json").read_text())
    assert [step for step, _ in cell["runs"][0]["curve"]] == [100, 200]
    args = build_parser().parse_args(cell["command"].split()[1:])  # the stored command reruns this cell
    assert (args.suite, args.tasks, args.agents) == ("tiny", ["CartPole-v1"], ["tiny"])
    floor = json.loads((bench / "results" / "suites" / "tiny" / "random--CartPole-v1.json").read_text())
    assert floor["runs"][0]["episodes"] == 3 and 8 < floor["final"] < 60

    # a cell whose result is missing but whose run left a checkpoint of the same code resumes from it
    (bench / "results" / "suites" / "tiny" / "tiny--CartPole-v1.json").unlink()
    run_suite("tiny", bench, tmp_path / "runs", 1, ["tiny"], ["CartPole-v1"], list_only=False)
    again = json.loads((bench / "results" / "suites" / "tiny" / "tiny--CartPole-v1.json").read_text())
    assert again["runs"][0]["resumed"] and again["runs"][0]["curve"] == cell["runs"][0]["curve"]
    assert not cell["runs"][0]["resumed"]

    suite = load_suite(bench, "tiny")
    cells, skipped = plan_cells("tiny", suite, bench / "results" / "suites" / "tiny", [], [])
    state = {(c.row, c.task): status(c) for c in cells}
    assert state[("tiny", "CartPole-v1")] == "fresh" and state[("tiny", "Pendulum-v1")] == "missing"
    assert ("muzero", "Pendulum-v1") not in state and any("muzero × Pendulum-v1" in s for s in skipped)
    by_cell = {(c.row, c.task): c.overrides for c in cells}  # a row's own budget and evaluations, else the suite's
    assert {"train.steps=100", "train.eval_every=100", "train.eval_episodes=1"} <= set(by_cell["muzero", "CartPole-v1"])
    assert {"train.steps=200", "train.eval_every=100", "train.eval_episodes=2"} <= set(by_cell["tiny", "CartPole-v1"])

    # a cell whose source changed is kept while its probe run still ends the same, and stale once it does not
    stored = bench / "results" / "suites" / "tiny" / "tiny--CartPole-v1.json"
    tiny = next(c for c in cells if (c.row, c.task) == ("tiny", "CartPole-v1"))
    stored.write_text(json.dumps({**again, "fingerprint": "older source"}))
    assert status(tiny) == "stale" and status(tiny, probe=True) == "fresh"
    assert json.loads(stored.read_text())["fingerprint"] == tiny.fingerprint  # the next check is quick
    stored.write_text(json.dumps({**again, "fingerprint": "older source", "behaviour": "another"}))
    assert status(tiny, probe=True) == "stale"
    # a cell that ran another command (the row now runs another preset) is stale without a probe
    stored.write_text(json.dumps({**again, "fingerprint": "older", "train_command": "wm train other_preset"}))
    tiny.key = None
    assert status(tiny, probe=True) == "stale" and tiny.key is None  # not probed
    stored.write_text(json.dumps(again))

    preset = yaml.safe_load((tmp_path / "tiny.yaml").read_text())
    preset["train"]["batch_size"] = 8
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(preset))
    cells, _ = plan_cells("tiny", suite, bench / "results" / "suites" / "tiny", ["tiny"], ["CartPole-v1"])
    assert [status(c) for c in cells] == ["stale"]  # the preset it ran has changed

    write_report(bench / "results")
    report = (tmp_path / "BENCHMARKS.md").read_text()
    normalised = (cell["final"] - floor["final"]) / (475 - floor["final"])
    shown = f"{math.floor(normalised * 100 + 1e-9) / 100:.2f}"
    assert "## Suite `tiny`" in report and f"| tiny | {shown} †<br>{cell['final']:.1f} | · |" in report
    assert "| muzero | · | n/a |" in report  # not run on CartPole; does not fit Pendulum's actions


def test_scores_show_rounded_down_so_a_cell_under_the_mark_never_reads_as_learned():
    assert [_hundredths(x) for x in (0.498, 0.5, 1.0633, 0.29, 0.57, -0.085)] == [
        "0.49", "0.50", "1.06", "0.29", "0.57", "-0.09"
    ]  # fmt: skip


def test_unknown_rows_and_suites_are_named(tiny_suite, tmp_path):
    with pytest.raises(ConfigError, match="no agent row 'tiny2'.*did you mean 'tiny'"):
        run_suite("tiny", tiny_suite, tmp_path, 1, ["tiny2"], [], list_only=True)
    with pytest.raises(ConfigError, match="unknown benchmark suite 'tinny'"):
        run_suite("tinny", tiny_suite, tmp_path, 1, [], [], list_only=True)
    # the task after --agents, which takes it for a second row
    args = build_parser().parse_args(["bench", "--suite", "tiny", "--agents", "tiny", "CartPole-v1"])
    with pytest.raises(ConfigError, match=r"task of suite 'tiny'.*wm bench --suite tiny CartPole-v1 --agents tiny\)"):
        run_suite("tiny", tiny_suite, tmp_path, 1, args.agents, args.tasks, list_only=True)


def test_a_cell_that_breaks_is_reported_and_the_cells_after_it_still_run(tiny_suite, tmp_path, monkeypatch):
    """An unattended suite: an unexpected error in one cell (here the first one run) is that cell's failure,
    named at the end, not the end of the suite."""
    import worldmodels.train.suite as suite_module

    real, calls = suite_module.train_run, []

    def breaks_first(*args, **kwargs):
        calls.append(args[3])
        if len(calls) == 1:
            raise IndexError("list index out of range")
        return real(*args, **kwargs)

    monkeypatch.setattr(suite_module, "train_run", breaks_first)
    with pytest.raises(TrainingError, match=r"1 suite cell\(s\) failed: tiny × CartPole-v1: IndexError"):
        run_suite("tiny", tiny_suite, tmp_path / "runs", 1, ["tiny"], [], list_only=False)
    stored = sorted(p.name for p in (tiny_suite / "results" / "suites" / "tiny").glob("*.json"))
    assert calls == ["tiny--CartPole-v1", "tiny--Pendulum-v1"] and stored == ["tiny--Pendulum-v1.json"]


def test_a_stored_probe_key_survives_new_and_removed_options_but_not_changed_values():
    """A cell keeps its probe key as the state hash and the config key by key: an option added since (a key
    it never stored) at its default, or removed since (one it stored at its default), does not make it stale
    while the state hash holds; a changed value, a new option set to another value (which a short probe may
    not reach) or another state does. A key of the older format (one hash) is compared with the legacy hash."""
    from worldmodels.train.suite import same_behaviour, stored_behaviour

    stored = {"state": "s1", "config": {"agent.search.discount": 0.997, "train.steps": 50000}}
    added = {"agent.encoder.image.precision": "float32"}
    now = {"state": "s1", "config": {**stored["config"], **added}, "defaults": added, "legacy": "l"}
    assert same_behaviour(stored, now) and stored_behaviour(now) == {"state": "s1", "config": now["config"]}
    assert not same_behaviour(stored, {**now, "defaults": {"agent.encoder.image.precision": "bfloat16"}})
    assert not same_behaviour(stored, {**now, "state": "s2"})
    assert not same_behaviour(stored, {**now, "config": {**now["config"], "train.steps": 40000}})
    assert same_behaviour(stored, {**now, "config": {"train.steps": 50000}})  # an option it stored is gone
    assert not same_behaviour(stored, {**now, "state": "s2", "config": {"train.steps": 50000}})
    assert same_behaviour("l", now) and not same_behaviour("another", now) and not same_behaviour(None, now)


def test_a_probe_moved_by_the_environment_keeps_the_cell_a_probe_moved_by_the_code_does_not(tmp_path, monkeypatch):
    """When a cell's probe no longer gives its stored key, the code of the commit that stored the key is
    probed in this environment: giving today's probe, the code behaves as it did and the cell is kept with
    the new key; giving the old one (or no commit found), the code changed it and the cell is stale."""
    import subprocess

    import worldmodels.train.suite as suite_module

    repo = tmp_path / "repo"
    repo.mkdir()
    git = lambda *a: subprocess.run(["git", *a], cwd=repo, check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    git("config", "user.email", "t@t")
    git("config", "user.name", "t")
    path = repo / "row--Task.json"
    result = {"final": 1.0, "fingerprint": "old", "behaviour": {"state": "s-old", "config": {"a": 1}}}
    path.write_text(json.dumps(result))
    git("add", ".")
    git("commit", "-qm", "stores s-old")
    first = git("rev-parse", "HEAD").stdout.decode().strip()
    path.write_text(json.dumps({**result, "final": 2.0}))
    git("commit", "-qam", "another result, the same key")
    assert suite_module.storing_commit(path, "s-old") == first
    assert suite_module.storing_commit(path, "s-never") is None

    now = {"state": "s-new", "config": {"a": 1}, "legacy": "x"}
    cell = suite_module.Cell("row", "Task", "preset", [], "new", path, [0], key=now)
    for storing_code_gives, expected in (("s-new", "fresh"), ("s-old", "stale")):
        path.write_text(json.dumps(result))
        then = {"state": storing_code_gives, "config": {"a": 1}, "legacy": "x"}
        monkeypatch.setattr(suite_module, "probe_of_storing_code", lambda c, s, then=then: then)
        assert suite_module.status(cell, probe=True) == expected
        kept = json.loads(path.read_text())
        assert kept["behaviour"]["state"] == ("s-new" if expected == "fresh" else "s-old")
        assert kept["fingerprint"] == ("new" if expected == "fresh" else "old") and kept["final"] == 1.0


def test_the_probe_gives_each_key_s_default_with_the_run_s_components():
    """`defaults` keeps the components a preset chose (their own options at their defaults) and puts every
    other key at its schema default, so a new option a preset sets reads as set."""
    from worldmodels.schema import to_dict
    from worldmodels.train.probe import defaults, dotted

    flat = dotted(to_dict(load_config("dreamerv1", ["agent.terminal_windows=0.25"])))
    plain = defaults(flat)
    assert plain.keys() == flat.keys() and plain["agent.name"] == "dreamer" and plain["agent.rssm.classes"] != 0
    assert (flat["agent.terminal_windows"], plain["agent.terminal_windows"]) == (0.25, 0.0)
    assert (flat["agent.rssm.classes"], flat["agent.actor_gradient"]) == (0, "dynamics")  # the preset's values
