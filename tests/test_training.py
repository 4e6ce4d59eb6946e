"""Smoke runs of the loop, exact resume, and checkpoints that refuse to load when tampered with."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from tests.conftest import TINY
from worldmodels.api import load_agent, make_agent
from worldmodels.cli import main
from worldmodels.data.files import sha256
from worldmodels.errors import CheckpointError, ConfigError, TrainingError
from worldmodels.train import Trainer
from worldmodels.train import checkpoint as ckpt_module
from worldmodels.train.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint


@pytest.mark.parametrize("env", ["CartPole-v1", "Pendulum-v1"])
def test_smoke_run_writes_the_run_folder(tiny, tmp_path, env):
    cfg = tiny("train.steps=300", "train.eval_every=150", env=env)
    trainer = Trainer(cfg, tmp_path / "run")
    summary = trainer.run()
    trainer.close()
    run = tmp_path / "run"
    assert summary["step"] == 300 and summary["updates"] > 0
    for name in ("config.yaml", "metrics.jsonl", "curve.png", "tb"):
        assert (run / name).exists()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "eval/return" in r] == [150, 300]
    assert any("loss/world_model" in r for r in rows) and any("perf/updates_per_s" in r for r in rows)
    shares = [{k: v for k, v in r.items() if k.startswith("perf/share_")} for r in rows if "perf/share_update" in r]
    assert shares and all(abs(sum(line.values()) - 1) < 1e-6 for line in shares)  # where each line's time went
    assert all(
        max(line[f"perf/share_{part}"] for line in shares) > 0 for part in ("act", "env", "sample", "update", "eval")
    )
    assert latest_checkpoint(run / "checkpoints").name == "step_000000000300"


def test_train_ratio_counts_replayed_steps_per_agent_step_with_several_envs_and_action_repeat(tiny, tmp_path):
    """2 envs × action repeat 2: an agent step is 4 env steps, and adds 2 (streams) × ratio 16 replayed steps
    = one 4 × 8 batch once the 80-step prefill is reached: agent steps 20..100 of 100 (4..400 env steps),
    81 updates."""
    cfg = tiny(
        "env.num_envs=2",
        "env.action_repeat=2",
        "train.steps=400",
        "train.prefill=80",
        "train.ratio=16",
        "train.batch_size=4",
        "train.seq_len=8",
        "train.eval_every=0",
    )
    trainer = Trainer(cfg, tmp_path / "run")
    summary = trainer.run()
    trainer.close()
    assert summary["step"] == 400 and summary["updates"] == 81


def test_a_phase_named_alone_is_one_of_the_agents_and_learn_is_not_redone_in_place(tiny, tmp_path, capsys):
    run = tmp_path / "run"
    with pytest.raises(ConfigError, match="train.phase=lern: agent 'latent_mlp' has the phases learn"):
        Trainer(tiny("train.steps=100", "train.phase=lern"), run)
    assert not run.exists()
    trainer = Trainer(tiny("train.steps=100", "train.eval_every=0", "train.phase=learn"), run)  # a new run: fine
    trainer.run()
    trainer.close()
    assert main(["train", "--resume", str(run), "train.phase=learn"]) == 2
    assert "phase 'learn' cannot be redone inside a run; start a new --run-dir" in capsys.readouterr().err


def _weights(trainer):
    return {k: v.clone() for k, v in trainer.agent.state_dict().items()}


def test_resume_continues_exactly(tiny, tmp_path):
    """A run stopped at 200 steps and resumed to 400 ends bit-identical to one that ran 400 straight."""
    straight = Trainer(tiny("train.steps=400", "train.eval_every=200", "train.checkpoint_every=200"), tmp_path / "a")
    straight.run()
    straight.close()

    first = Trainer(tiny("train.steps=200", "train.eval_every=200", "train.checkpoint_every=200"), tmp_path / "b")
    first.run()
    learn = first.phases[0]
    counters = (first.step, first.agent.updates, learn.collector.episodes, len(learn.collector.replay))
    replay_before = {k: v.copy() for k, v in learn.collector.replay.data.items()}
    first.close()
    del first  # the "killed" run

    resumed = Trainer(
        tiny("train.steps=400", "train.eval_every=200", "train.checkpoint_every=200"), tmp_path / "b", resume=True
    )
    learn = resumed.phases[0]
    assert (resumed.step, resumed.agent.updates, learn.collector.episodes, len(learn.collector.replay)) == counters
    for key, value in replay_before.items():
        np.testing.assert_array_equal(learn.collector.replay.data[key], value)
    resumed.run()
    resumed.close()

    a, b = _weights(straight), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    np.testing.assert_array_equal(straight.phases[0].collector.replay.data["obs"], learn.collector.replay.data["obs"])
    metrics_a = (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()
    metrics_b = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    evals = [[json.loads(x)["eval/return"] for x in m if "eval/return" in x] for m in (metrics_a, metrics_b)]
    assert evals[0] == evals[1]


def test_killed_during_checkpoint_resumes_from_previous(tiny, tmp_path, monkeypatch):
    trainer = Trainer(tiny("train.steps=200", "train.checkpoint_every=100", "train.eval_every=0"), tmp_path / "r")
    real_savez = np.savez
    calls = {"n": 0}

    def dies_on_second_checkpoint(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # replay of the 2nd checkpoint: the process "dies" mid-write
            raise KeyboardInterrupt
        return real_savez(*args, **kwargs)

    monkeypatch.setattr(ckpt_module.np, "savez", dies_on_second_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    trainer.close()
    monkeypatch.undo()
    # a SIGKILL leaves the temporary folder behind: make one, as the dead process would have
    (tmp_path / "r" / "checkpoints" / ".tmp-leftover").mkdir()
    assert [p.name for p in list_checkpoints(tmp_path / "r" / "checkpoints")] == ["step_000000000100"]
    resumed = Trainer(
        tiny("train.steps=200", "train.checkpoint_every=100", "train.eval_every=0"), tmp_path / "r", resume=True
    )
    assert resumed.step == 100
    resumed.run()
    resumed.close()


def test_tampered_or_foreign_checkpoint_fails_cleanly(tiny, tmp_path, capsys):
    trainer = Trainer(tiny("train.steps=150", "train.eval_every=0"), tmp_path / "r")
    trainer.run()
    trainer.close()
    path = latest_checkpoint(tmp_path / "r" / "checkpoints")
    good = tmp_path / "good"
    shutil.copytree(path, good)

    weights = path / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="weights.safetensors does not match its sha256"):
        load_checkpoint(path)
    assert main(["eval", str(tmp_path / "r")]) == 1
    assert "corrupt or was modified" in capsys.readouterr().err

    # a pickle that would run code, with a manifest forged to match, is still refused
    shutil.rmtree(path)
    shutil.copytree(good, path)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"optimizers": Evil()}, path / "optim.pt")
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["files"]["optim.pt"] = sha256(path / "optim.pt")
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(path)
    assert "pwned" not in capsys.readouterr().out

    (path / "manifest.json").write_text("not json")
    with pytest.raises(CheckpointError, match="manifest.json is not valid JSON"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="no manifest.json"):
        load_checkpoint(tmp_path)


def test_checkpoint_that_does_not_fit_the_config_names_itself_and_the_fix(tiny, tmp_path, capsys):
    trainer = Trainer(tiny("train.steps=150", "train.eval_every=0"), tmp_path / "r")
    trainer.run()
    trainer.close()
    path, config = latest_checkpoint(tmp_path / "r" / "checkpoints"), tmp_path / "r" / "config.yaml"
    saved = config.read_text()
    with pytest.raises(CheckpointError, match=rf"checkpoint '{path}' does not fit this run's config \(RuntimeError"):
        Trainer(tiny("train.steps=300", "agent.critic.hidden=48"), tmp_path / "r", resume=True)
    assert main(["train", "--resume", str(tmp_path / "r"), "agent.critic.hidden=48"]) == 1
    assert "resume without overrides that change the model, replay or environments" in capsys.readouterr().err
    assert config.read_text() == saved  # a failed resume leaves the run's config as it was
    config.write_text(saved.replace("hidden: 32", "hidden: 40"))
    with pytest.raises(CheckpointError, match="load it with the config.yaml it was trained with"):
        load_agent(tmp_path / "r").evaluate(1)


def test_existing_run_dir_is_never_overwritten(tiny, tmp_path):
    trainer = Trainer(tiny("train.steps=120", "train.eval_every=0"), tmp_path / "r")
    trainer.run()
    trainer.close()
    with pytest.raises(ConfigError, match="already holds a run"):
        Trainer(tiny("train.steps=120"), tmp_path / "r")
    with pytest.raises(CheckpointError, match="holds no complete checkpoint"):
        Trainer(tiny("train.steps=120"), tmp_path / "empty", resume=True)


def test_non_finite_loss_stops_with_a_clear_error_and_keeps_the_checkpoint(tiny, tmp_path):
    trainer = Trainer(tiny("train.steps=400", "train.checkpoint_every=150", "train.eval_every=0"), tmp_path / "r")
    original = trainer.agent.reward.forward

    def poisoned(x):
        out = original(x)
        if trainer.step > 200:
            out.pred = out.pred * float("nan")
        return out

    trainer.agent.reward.forward = poisoned
    with pytest.raises(TrainingError, match="world_model loss became nan.*last checkpoint is intact"):
        trainer.run()
    trainer.close()
    assert latest_checkpoint(tmp_path / "r" / "checkpoints").name == "step_000000000150"
    assert (tmp_path / "r" / "metrics.jsonl").exists()


def test_a_nan_between_log_lines_is_caught_before_the_next_checkpoint(tiny, tmp_path):
    """One NaN world-model loss just after step 200 and no log line before the checkpoint at 300: the check
    before that checkpoint refuses it, and the zeroed gradient of that step left the weights finite."""
    cfg = tiny("train.steps=400", "train.checkpoint_every=150", "train.log_every=1000", "train.eval_every=0")
    trainer = Trainer(cfg, tmp_path / "r")
    original, poisoned = trainer.agent.reward.forward, []

    def once(x):
        out = original(x)
        if trainer.step > 200 and not poisoned:
            poisoned.append(trainer.step)
            out.pred = out.pred * float("nan")
        return out

    trainer.agent.reward.forward = once
    with pytest.raises(TrainingError, match="^the world_model loss became nan; the last checkpoint is intact"):
        trainer.run()
    trainer.close()
    assert poisoned and trainer.step == 300  # the updates after it ran, up to the refused checkpoint
    assert latest_checkpoint(tmp_path / "r" / "checkpoints").name == "step_000000000150"
    assert all(torch.isfinite(p).all() for p in trainer.agent.parameters())


def test_api_learn_predict_save_load(tiny, tmp_path):
    from worldmodels.config import to_dict

    overrides = {k: v for k, v in to_dict(tiny()).items() if k in ("agent", "train")}
    overrides["agent"]["eval_policy"] = "mode"  # deterministic predictions, so the loaded copy's can be compared
    agent = make_agent("latent_mlp", env="CartPole-v1", run_dir=tmp_path / "run", **overrides)
    summary = agent.learn(200)
    assert summary["step"] == 200
    action, _ = agent.predict(np.zeros(4, np.float32))
    assert action in (0, 1)
    batch, _ = agent.predict(np.zeros((3, 4), np.float32))
    assert batch.shape == (3,)
    agent.save(tmp_path / "saved")
    agent.close()

    loaded = load_agent(tmp_path / "saved")
    assert loaded.predict(np.zeros(4, np.float32))[0] == action
    env = loaded.make_env()
    obs, _ = env.reset(seed=0)
    env.step(loaded.predict(obs)[0])
    result = loaded.evaluate(episodes=2)
    assert result["episodes"] == 2 and np.isfinite(result["return_mean"])
    assert loaded.learn(100)["step"] == 300  # continues the saved run
    loaded.close()


def test_cli_train_eval_and_video(tmp_path, capsys):
    from tests.conftest import TINY

    run = tmp_path / "run"
    assert main(["train", "latent_mlp", *TINY, "train.steps=150", "train.eval_every=0", "--run-dir", str(run)]) == 0
    out = capsys.readouterr().out
    assert "curve" in out and str(run) in out
    assert main(["eval", str(run), "--episodes", "3", "--video"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    result = json.loads(line)
    assert set(result) == {"episodes", "return_mean", "return_std"} and result["episodes"] == 3
    assert (run / "eval.gif").stat().st_size > 0
    assert main(["train", "--resume", str(run), "train.steps=250"]) == 0
    assert latest_checkpoint(run / "checkpoints").name == "step_000000000250"


def test_stop_return_ends_the_run_at_the_first_good_evaluation(tiny, tmp_path):
    trainer = Trainer(tiny("train.steps=600", "train.eval_every=100", "train.stop_return=-1e9"), tmp_path / "r")
    summary = trainer.run()
    trainer.close()
    assert summary["step"] == 100  # the first evaluation already clears the bar
    assert latest_checkpoint(tmp_path / "r" / "checkpoints").name == "step_000000000100"


def test_ctrl_c_stops_training_with_a_checkpoint_that_resumes_exactly(tmp_path):
    """Ctrl-C (SIGINT to the whole process group, the env workers too) during `wm train`: the step under way
    finishes, a checkpoint is written there, the command says how to continue, and the continued run ends
    with the weights of a run that never stopped."""
    overrides = [*TINY, "env.num_envs=2", "env.vectorization=async", "train.eval_every=0"]
    overrides += ["train.checkpoint_every=1000000", "train.log_every=20"]
    run = tmp_path / "stopped"
    command = [sys.executable, "-m", "worldmodels.cli", "train", "latent_mlp", "--run-dir", str(run), *overrides]
    child = subprocess.Popen(
        [*command, "train.steps=1000000"], stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not _updating(run / "metrics.jsonl"):
            time.sleep(0.05)
        os.killpg(child.pid, signal.SIGINT)
        _, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    assert child.returncode == 130, err
    assert "SIGINT: stopping after this step with a checkpoint" in err
    assert f"continue with: wm train --resume {run}" in err
    (stopped_at,) = list_checkpoints(run / "checkpoints")  # the periodic ones are a million steps apart
    step = int(stopped_at.name.removeprefix("step_"))
    assert f"with a checkpoint at step {step:,}" in err and step >= 100

    assert main(["train", "--resume", str(run), f"train.steps={step + 40}"]) == 0
    assert (
        main(["train", "latent_mlp", "--run-dir", str(tmp_path / "straight"), *overrides, f"train.steps={step + 40}"])
        == 0
    )
    a = load_agent(run).agent.state_dict()
    b = load_agent(tmp_path / "straight").agent.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def _updating(metrics):
    return metrics.exists() and "loss/world_model" in metrics.read_text()
