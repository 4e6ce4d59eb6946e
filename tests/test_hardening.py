"""What an outside check found breaking (issue 12): kills during checkpoint writes, a full disk, faulty
environments, damaged checkpoints and replay chunks, and errors that must be one line."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from tests.conftest import TINY, assert_resumes_exactly
from tests.test_dreamer import TINY_DREAMER
from tests.test_muzero import TINY_MUZERO
from tests.test_pets import TINY as TINY_PETS
from worldmodels.cli import main
from worldmodels.config import load_config
from worldmodels.data.files import sha256
from worldmodels.errors import CheckpointError, ConfigError, EnvError, process_failure
from worldmodels.train import Trainer
from worldmodels.train import checkpoint as ckpt_module
from worldmodels.train.checkpoint import Payload, latest_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint


def _one_line_error(capsys, argv: list[str], code: int) -> str:
    assert main(argv) == code
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def _train(tiny, run_dir, *overrides: str, resume: bool = False) -> Trainer:
    trainer = Trainer(tiny(*overrides), run_dir, resume=resume)
    trainer.run()
    trainer.close()
    return trainer


# ---------------------------------------------------------------------------------------------- kills


class Killed(BaseException):
    """The process dying: from the first injected fault on, every file operation fails, cleanup included."""


def _payload(step: int) -> Payload:
    return Payload(
        weights={"w": torch.full((64,), float(step))},
        torch_state={"optimizers": {"step": torch.tensor(step)}},
        arrays={"envs": {"a": np.arange(8) + step}},
        state={"step": step},
    )


def _kill_at(monkeypatch, k: int) -> dict[str, int]:
    """Kill the writer at its `k`-th file operation; an interrupted rmtree deletes one file first."""
    calls = {"n": 0, "dead": 0}

    def hit() -> None:
        calls["n"] += 1
        if calls["dead"] or calls["n"] == k:
            calls["dead"] = 1
            raise Killed

    def wrap(fn):
        def wrapped(*args, **kwargs):
            hit()
            return fn(*args, **kwargs)

        return wrapped

    real_rmtree = shutil.rmtree

    def rmtree(path, ignore_errors=False):
        try:
            hit()
        except Killed:
            files = sorted(p for p in path.iterdir() if p.is_file())
            if files and calls["n"] == k:
                files[0].unlink()  # killed midway through the deletion
            raise
        real_rmtree(path, ignore_errors=ignore_errors)

    monkeypatch.setattr(ckpt_module, "_write", wrap(ckpt_module._write))
    monkeypatch.setattr(ckpt_module.np, "savez", wrap(np.savez))
    monkeypatch.setattr(ckpt_module.os, "fsync", wrap(ckpt_module.os.fsync))
    monkeypatch.setattr(ckpt_module.os, "rename", wrap(ckpt_module.os.rename))
    monkeypatch.setattr(ckpt_module.shutil, "rmtree", rmtree)
    monkeypatch.setattr(ckpt_module.Path, "unlink", wrap(ckpt_module.Path.unlink))
    return calls


def test_a_kill_at_any_instant_of_a_write_or_re_save_leaves_a_loadable_checkpoint(tmp_path, monkeypatch):
    root = tmp_path / "checkpoints"
    save_checkpoint(root, 100, _payload(100), keep=1)
    save_checkpoint(root, 200, _payload(200), keep=1)  # the step saved again (a resumed finished run) ...
    k = 1
    while True:  # ... and killed at its first, second, ... file operation
        case = tmp_path / f"kill{k}"
        shutil.copytree(root, case)
        calls = _kill_at(monkeypatch, k)
        with contextlib.suppress(Killed):
            save_checkpoint(case, 200, _payload(201), keep=1)
        monkeypatch.undo()
        payload = load_checkpoint(latest_checkpoint(case))
        assert payload.state["step"] in (200, 201), k
        if not calls["dead"]:
            break  # the write ran to its end: every instant was tried
        k += 1
    assert k > 10  # the writes, fsyncs, renames and deletions were all reached
    assert [p.name for p in list_checkpoints(case)] == ["step_000000000200.1"]


def test_re_saving_a_finished_run_keeps_every_checkpoint_loadable(tiny, tmp_path):
    overrides = ("train.steps=200", "train.checkpoint_every=100", "train.eval_every=0")
    _train(tiny, tmp_path / "r", *overrides)  # saves step 200 in the loop and again at its end
    names = [p.name for p in list_checkpoints(tmp_path / "r" / "checkpoints")]
    assert names == ["step_000000000200", "step_000000000200.1"]
    resumed = _train(tiny, tmp_path / "r", *overrides, resume=True)  # a resume of a finished run saves again
    assert resumed.step == 200
    for path in list_checkpoints(tmp_path / "r" / "checkpoints"):
        load_checkpoint(path)


def test_the_newest_of_many_saves_of_one_step_is_the_latest_checkpoint(tmp_path):
    """Saves of one step (a phase redone at the step its run stopped: a save when it starts and one per
    chunk) once wrote `step_N` again after the oldest was deleted, and deleted it at once as the oldest."""
    root = tmp_path / "checkpoints"
    for k in range(5):
        save_checkpoint(root, 7, _payload(k), keep=2)
        assert load_checkpoint(latest_checkpoint(root)).state["step"] == k
    assert [p.name for p in list_checkpoints(root)] == ["step_000000000007.3", "step_000000000007.4"]


def test_temporary_folders_of_killed_writes_are_removed_at_the_next_start(tiny, tmp_path):
    _train(tiny, tmp_path / "r", "train.steps=120", "train.eval_every=0")
    for i in range(3):
        (tmp_path / "r" / "checkpoints" / f".tmp-killed{i}").mkdir()
    Trainer(tiny("train.steps=240"), tmp_path / "r", resume=True).close()
    assert not list((tmp_path / "r" / "checkpoints").glob(".tmp-*"))

    (tmp_path / "new" / "checkpoints" / ".tmp-killed").mkdir(parents=True)  # killed before its first checkpoint
    Trainer(tiny("train.steps=120"), tmp_path / "new").close()
    assert not list((tmp_path / "new" / "checkpoints").glob(".tmp-*"))


def test_a_restart_after_a_kill_before_the_first_checkpoint_starts_the_log_afresh(tiny, tmp_path, monkeypatch):
    overrides = ("train.steps=300", "train.eval_every=100", "train.log_every=50")

    def killed(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        _train(tiny, tmp_path / "r", *overrides)
    monkeypatch.undo()
    assert latest_checkpoint(tmp_path / "r" / "checkpoints") is None
    _train(tiny, tmp_path / "r", *overrides)
    steps = [json.loads(line)["step"] for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps[-1] == 300
    assert (tmp_path / "r" / "metrics.before-restart.jsonl").exists()  # the killed start's log, moved aside


# ---------------------------------------------------------------------------------------------- full disk


@pytest.mark.parametrize("name", ["weights.safetensors", "optim.pt"])
def test_a_full_disk_is_one_line_and_keeps_the_previous_checkpoint(tmp_path, capsys, monkeypatch, name):
    """The second checkpoint's `name` meets a full disk: the kernel's own ENOSPC, from writing to /dev/full
    (where torch's own file writer raises a RuntimeError, "unexpected pos ...")."""
    real_write, calls = ckpt_module._write, {"n": 0}

    def write(path, data):
        if path.name == name:
            calls["n"] += 1
            if calls["n"] == 2:
                return real_write(Path("/dev/full"), data)
        return real_write(path, data)

    monkeypatch.setattr(ckpt_module, "_write", write)
    run = tmp_path / "r"
    argv = ["train", "latent_mlp", *TINY, "train.steps=300", "train.checkpoint_every=150", "train.eval_every=0"]
    err = _one_line_error(capsys, [*argv, "--run-dir", str(run)], 1)
    assert f"no space left on the disk of '{run}'" in err and "MiB free" in err
    monkeypatch.undo()
    assert load_checkpoint(latest_checkpoint(run / "checkpoints")).state["step"] == 150


# ---------------------------------------------------------------------------------------------- faulty envs


class _Faulty(gym.Wrapper):
    """CartPole that returns a NaN in `field` from its 130th step on."""

    def __init__(self, field: str):
        super().__init__(gym.make("CartPole-v1"))
        self.field, self.steps = field, 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        if self.steps >= 130:
            if self.field == "obs":
                obs = obs.copy()
                obs[2] = np.nan
            else:
                reward = float("inf")
        return obs, reward, terminated, truncated, info


gym.register("wm_test/NanObs-v0", entry_point=lambda **_: _Faulty("obs"))
gym.register("wm_test/InfReward-v0", entry_point=lambda **_: _Faulty("reward"))


@pytest.mark.parametrize(
    ("env_id", "field", "value"), [("NanObs", "observation", "nan"), ("InfReward", "reward", "inf")]
)
def test_a_non_finite_observation_or_reward_stops_the_run_naming_it(tmp_path, capsys, env_id, field, value):
    run = tmp_path / "r"
    argv = ["train", "latent_mlp", *TINY, f"env.id=wm_test/{env_id}-v0", "train.steps=400"]
    argv += ["train.checkpoint_every=100", "train.eval_every=0", "--run-dir", str(run)]
    err = _one_line_error(capsys, argv, 1)
    assert f"environment 'wm_test/{env_id}-v0' returned a non-finite {field} ({value})" in err
    assert "after 129 env steps of the run; its last checkpoint is intact" in err
    assert load_checkpoint(latest_checkpoint(run / "checkpoints")).state["step"] == 100
    with pytest.raises(EnvError, match="non-finite"):
        Trainer(load_config("latent_mlp", [*TINY, f"env.id=wm_test/{env_id}-v0"]), tmp_path / "t").run()


# ---------------------------------------------------------------------------------------------- damage


@pytest.fixture
def finished(tiny, tmp_path):
    """A run of 1,100 steps (a replay chunk of 1,024 rows on disk) and its latest checkpoint."""
    _train(tiny, tmp_path / "r", "train.steps=1100", "train.ratio=1", "train.eval_every=0")
    return tmp_path / "r", latest_checkpoint(tmp_path / "r" / "checkpoints")


def _resume_error(tiny, run) -> str:
    with pytest.raises(CheckpointError) as err:
        Trainer(tiny("train.steps=1200", "train.ratio=1"), run, resume=True)
    assert "\n" not in str(err.value)
    return str(err.value)


def _rehash(path, name: str) -> None:
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["files"][name] = sha256(path / name)
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_a_corrupt_or_forged_replay_chunk_is_named(tiny, finished):
    run, path = finished
    chunk = next((run / "replay").glob("*.npz"))
    good = chunk.read_bytes()
    chunk.write_bytes(good[:-10] + bytes(10))
    message = _resume_error(tiny, run)
    assert f"replay chunk '{chunk}' is corrupt" in message and "overrides" not in message

    chunk.write_bytes(b"PK\x03\x04 not a zip")  # a broken zip with its sha256 fixed up in state.json
    state = json.loads((path / "state.json").read_text())
    state["phases"]["learn"]["replay"]["chunks"][0][0]["sha256"] = sha256(chunk)
    (path / "state.json").write_text(json.dumps(state))
    _rehash(path, "state.json")
    assert f"'{chunk}' cannot be read (BadZipFile" in _resume_error(tiny, run)

    chunk.unlink()
    assert f"replay chunk '{chunk}' is missing" in _resume_error(tiny, run)


def test_self_consistent_damage_to_a_checkpoint_is_one_checkpoint_error(tiny, finished):
    run, path = finished
    manifest = (path / "manifest.json").read_text()
    renamed = json.loads(manifest)
    renamed["filez"] = renamed.pop("files")
    (path / "manifest.json").write_text(json.dumps(renamed))
    assert f"'{path / 'manifest.json'}' has no table of files" in _resume_error(tiny, run)
    (path / "manifest.json").write_text(manifest)

    state = (path / "state.json").read_text()
    damaged = json.loads(state)
    del damaged["phases"]["learn"]["streams"]
    (path / "state.json").write_text(json.dumps(damaged))
    _rehash(path, "state.json")
    assert f"'{path / 'state.json'}' cannot be read (KeyError: 'streams')" in _resume_error(tiny, run)
    (path / "state.json").write_text(state)
    (path / "manifest.json").write_text(manifest)

    with zipfile.ZipFile(path / "envs.npz", "w") as z:  # a valid zip that holds no arrays of ours
        z.writestr("notes.txt", "hello")
    _rehash(path, "envs.npz")
    assert f"'{path / 'envs.npz'}' cannot be read (KeyError: 'episodes')" in _resume_error(tiny, run)


def test_a_pickle_and_a_model_changing_override_are_one_line_each(tiny, tmp_path, capsys):
    _train(tiny, tmp_path / "r", "train.steps=150", "train.eval_every=0")
    path = latest_checkpoint(tmp_path / "r" / "checkpoints")
    err = _one_line_error(capsys, ["train", "--resume", str(tmp_path / "r"), "agent.critic.hidden=48"], 1)
    assert "size mismatch for" in err and "in current model is torch.Size([48" in err

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"optimizers": Evil()}, path / "optim.pt")
    _rehash(path, "optim.pt")
    for argv in (["eval", str(tmp_path / "r")], ["train", "--resume", str(tmp_path / "r"), "train.steps=300"]):
        err = _one_line_error(capsys, argv, 1)
        assert f"'{path / 'optim.pt'}' cannot be read (it holds objects other than tensors" in err
        assert "weights_only=False" not in err and "pwned" not in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------- the CLI


def test_train_preset_with_resume_accepts_the_run_s_own_preset(tiny, tmp_path, capsys):
    run = tmp_path / "r"
    assert main(["train", "latent_mlp", *TINY, "train.steps=120", "train.eval_every=0", "--run-dir", str(run)]) == 0
    assert main(["train", "latent_mlp", "--resume", str(run), "train.steps=240"]) == 0
    assert "error" not in capsys.readouterr().err
    err = _one_line_error(capsys, ["train", "dreamerv3", "--resume", str(run)], 2)
    assert f"'{run}' was made from preset 'latent_mlp', not 'dreamerv3'" in err


@pytest.mark.parametrize(
    ("preset", "swap", "fits"),
    [
        (
            "planet",
            "agent.planner.name=mcts",
            "planner 'mcts' at 'agent.planner.name'; valid: cem, gradient, icem, mppi",
        ),
        ("muzero", "agent.search.name=cem", "search 'cem' at 'agent.search.name'; valid: mcts"),
        ("dreamerv3", "agent.rssm.name=ensemble", "rssm 'ensemble' at 'agent.rssm.name'; valid: rssm"),
        (
            "pets",
            "agent.dynamics.name=latent_mlp",
            "dynamics 'latent_mlp' cannot fill 'agent.dynamics' (no method propagate()",
        ),
        (
            "pets",
            "agent.dynamics.name=rssm",
            "unknown dynamics 'rssm' at 'agent.dynamics.name'; valid: ensemble",
        ),
    ],
)
def test_a_component_that_cannot_fill_its_slot_is_exit_2_naming_those_that_can(tmp_path, capsys, preset, swap, fits):
    err = _one_line_error(capsys, ["train", preset, swap, "--run-dir", str(tmp_path / "r")], 2)
    assert fits in err
    assert not (tmp_path / "r").exists()


def test_a_new_component_name_on_the_command_line_drops_the_old_one_s_options():
    cfg = load_config("planet", ["agent.planner.iterations=7", "agent.planner.name=gradient"])  # preset: cem
    assert cfg.agent.cfg.planner.name == "gradient" and cfg.agent.cfg.planner.cfg.iterations == 7
    with pytest.raises(ConfigError, match="'agent.planner.elites' is not an option of planner 'gradient'"):
        load_config("planet", ["agent.planner.name=gradient", "agent.planner.elites=3"])


# ---------------------------------------------------------------------------------------------- resume


DREAMER = [
    *TINY_DREAMER,
    "train.prefill=40",
    "train.batch_size=2",
    "train.seq_len=8",
    "train.ratio=16",
    "env.id=wm/Dummy-v0",
]
COMMON = ["train.eval_every=0", "train.threads=1"]


@pytest.mark.parametrize(
    ("preset", "overrides"),
    [
        ("dreamerv1", DREAMER),
        ("dreamerv2", [*DREAMER, "agent.rssm.classes=4"]),
        ("pets", [*TINY_PETS, "env.id=wm/DummyContinuous-v0", "train.prefill=40"]),
        (  # with held exploratory actions: their state crosses the checkpoint
            "muzero",
            [*TINY_MUZERO, "train.prefill=40", "train.batch_size=4", "train.seq_len=7", "train.ratio=28"]
            + ["agent.hold_probabilities=[0.3]", "agent.hold_entropy=0.0"],
        ),
    ],
    ids=["dreamerv1", "dreamerv2", "pets", "muzero"],
)
def test_every_agent_resumes_exactly(tmp_path, preset, overrides):
    assert_resumes_exactly(preset, [*overrides, *COMMON], tmp_path, steps=120)


# ---------------------------------------------------------------------------------------------- slow CPU runs


def test_a_run_that_would_take_hours_on_a_cpu_names_a_setting_that_learned(tmp_path):
    trainer = Trainer(load_config("dreamerv3", [*DREAMER, "train.steps=1000000"]), tmp_path / "r")
    lines: list[str] = []

    class Bar:
        def write(self, text: str) -> None:
            lines.append(text)

    learn = trainer.phases[0]
    trainer.step = trainer.cfg.train.prefill + 100
    learn.pace.since = {"time": time.perf_counter() - 61, "step": trainer.cfg.train.prefill}  # 100 steps a minute
    learn.pace.check(Bar())
    learn.pace.check(Bar())  # once only
    trainer.close()
    assert len(lines) == 1 and "about 169 more hours on this CPU" in lines[0]
    assert "`wm train dreamerv3 train.ratio=64` learned in `wm bench dreamerv3-cartpole`" in lines[0]


def test_a_child_killed_from_outside_names_the_signal_not_an_empty_list():
    """A suite cell's or benchmark's process stopped by SIGKILL writes nothing on stderr."""
    killed = subprocess.run(
        [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"],
        capture_output=True,
        text=True,
    )
    err = str(process_failure("benchmark cell", killed.returncode, killed.stderr))
    assert err.startswith("benchmark cell failed: stopped by signal 9") and "[]" not in err
    said = subprocess.run(
        [sys.executable, "-c", "raise SystemExit('no such preset\\nfix: ...')"], capture_output=True, text=True
    )
    assert str(process_failure("cell", said.returncode, said.stderr)) == "cell failed: fix: ..."
