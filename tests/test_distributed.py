"""Data-parallel training on 2 gloo ranks on the CPU: the same weights as one rank on the global batch,
gradients and batch statistics agreeing across ranks, and a run that loses a rank and resumes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.test_dreamer import TINY_DREAMER
from tests.test_muzero import TINY_MUZERO as MUZERO_TINY
from tests.test_pets import TINY as PETS_TINY
from tests.test_world_models import TINY as WORLD_MODELS_TINY
from worldmodels import distributed
from worldmodels.agents.base import raise_if_non_finite
from worldmodels.cli import main
from worldmodels.config import load_config
from worldmodels.data import Replay
from worldmodels.errors import ConfigError, TrainingError
from worldmodels.nn import dists
from worldmodels.spaces import ActSpec, ObsSpec
from worldmodels.train import Trainer
from worldmodels.train.checkpoint import latest_checkpoint, load_checkpoint
from worldmodels.train.loop import build_agent

UPDATES = 3
BATCH = 8

AGENTS = {
    "dreamerv3": (
        [
            *TINY_DREAMER,
            "agent.actor_lr=1e-3",  # steps big enough that a wrong average would show
            "agent.critic_lr=1e-3",
            "agent.world_model_lr=1e-3",
        ],
        ObsSpec((4,), "float32"),
        ActSpec(True, 2),
        8,
    ),
    "tdmpc2": (
        [
            "agent.encoder={vector: {hidden: 16, layers: 1}}",
            "agent.latent=16",
            "agent.hidden=16",
            "agent.num_q=2",  # the TD target's two heads are then both, whatever the draw
            "agent.dropout=0",
        ],
        ObsSpec((3,), "float32"),
        ActSpec(False, 1),
        4,  # its horizon + 1
    ),
}


@contextlib.contextmanager
def _deterministic() -> Iterator[None]:
    """Inside: the random draws of an update are functions of each sample alone (categorical samples are
    their mode, Gaussian noise is zero), so that one rank on the global batch and 2 ranks on its halves
    draw the same, and what is left to differ is how the ranks combine gradients and batch statistics."""
    saved = torch.multinomial, dists.sample_index, torch.randn_like, torch.distributions.Normal.rsample
    torch.multinomial = lambda probs, n, *args, **kwargs: probs.argmax(-1, keepdim=True)
    dists.sample_index = lambda probs, *args, **kwargs: probs.argmax(-1)
    torch.randn_like = lambda x, *args, **kwargs: torch.zeros_like(x)
    torch.distributions.Normal.rsample = lambda self, shape=(): self.loc.expand(self._extended_shape(shape)).clone()
    try:
        yield
    finally:
        torch.multinomial, dists.sample_index, torch.randn_like, torch.distributions.Normal.rsample = saved


def _batch(act_spec: ActSpec, obs_dim: int, seq: int) -> dict[str, torch.Tensor]:
    """A global batch `[BATCH, seq, ...]` of made-up steps, with an episode seam and a terminal state."""
    rng = np.random.default_rng(0)
    if act_spec.discrete:
        action = np.eye(act_spec.dim, dtype=np.float32)[rng.integers(act_spec.dim, size=(BATCH, seq))]
    else:
        action = rng.uniform(-1, 1, (BATCH, seq, act_spec.dim)).astype(np.float32)
    is_first = np.zeros((BATCH, seq), bool)
    is_first[:, 0] = True
    is_first[1, 3] = True  # an episode seam inside a window
    is_terminal = np.zeros((BATCH, seq), bool)
    is_terminal[1, 2] = True
    batch = {
        "obs": rng.normal(size=(BATCH, seq, obs_dim)).astype(np.float32),
        "action": action,
        "reward": rng.normal(size=(BATCH, seq)).astype(np.float32),
        "is_first": is_first,
        "is_terminal": is_terminal,
    }
    return {k: torch.as_tensor(v) for k, v in batch.items()}


def _trained(preset: str, rank: int, world: int) -> dict[str, torch.Tensor]:
    """The agent's weights after `UPDATES` updates on rank `rank`'s part of the global batch."""
    overrides, obs_spec, act_spec, seq = AGENTS[preset]
    torch.manual_seed(0)
    agent = build_agent(load_config(preset, [*overrides, "device=cpu"]), obs_spec, act_spec)
    batch = _batch(act_spec, obs_spec.shape[0], seq)
    part = BATCH // world
    mine = {k: v[rank * part : (rank + 1) * part] for k, v in batch.items()}
    with _deterministic():
        for _ in range(UPDATES):
            agent.update(mine)
    return {k: v.detach().clone() for k, v in agent.state_dict().items()}


def _rank(rank: int, world: int, init: str, preset: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        torch.save(_trained(preset, rank, world), Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("preset", sorted(AGENTS))
def test_two_ranks_on_halves_of_a_batch_end_with_the_weights_of_one_rank_on_all_of_it(preset, tmp_path):
    mp.spawn(_rank, args=(2, f"file://{tmp_path / 'rendezvous'}", preset, str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    one = _trained(preset, 0, 1)
    moved = [k for k in one if one[k].is_floating_point() and not torch.equal(one[k], _initial(preset)[k])]
    assert moved, "the updates changed no weight"
    for key, value in one.items():
        assert torch.equal(ranks[0][key], ranks[1][key]), f"{key}: the ranks disagree"
        torch.testing.assert_close(ranks[0][key], value, atol=1e-5, rtol=0, msg=f"{key}: not the 1-rank weights")


def _initial(preset: str) -> dict[str, torch.Tensor]:
    overrides, obs_spec, act_spec, _ = AGENTS[preset]
    torch.manual_seed(0)
    return build_agent(load_config(preset, [*overrides, "device=cpu"]), obs_spec, act_spec).state_dict()


TINY_RUN = [
    "agent.encoder.vector.hidden=16",
    "agent.decoder.vector.hidden=16",
    "agent.dynamics.hidden=16",
    "agent.reward.hidden=16",
    "agent.cont.hidden=16",
    "agent.discrete_actor.hidden=16",
    "agent.critic.hidden=16",
    "agent.representation.latent_dim=8",
    "agent.imagination_horizon=3",
    "env.id=CartPole-v1",
    "train.batch_size=4",
    "train.seq_len=8",
    "train.prefill=100",
    "train.ratio=8",
    "train.eval_every=0",
    "train.eval_episodes=1",
    "train.log_every=100",
    "train.threads=1",
]


def _wm(*args: str, **popen) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen([sys.executable, "-m", "worldmodels.cli", "train", *args], env=env, text=True, **popen)


def _rank_pid(parent: int, rank: int) -> int | None:
    """The process below `parent` that torchrun started as `rank` (read from its environment)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    todo = list(children.get(parent, []))
    while todo:
        pid = todo.pop()
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in environ:
            return pid
        todo += children.get(pid, [])
    return None


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the rank's process through /proc")
def test_a_killed_rank_stops_the_run_with_one_line_and_it_resumes_on_fewer_or_more_ranks(tmp_path):
    run_dir = tmp_path / "run"
    run = _wm(
        "latent_mlp",
        *TINY_RUN,
        "train.steps=100000",
        "train.checkpoint_every=100",
        "--run-dir",
        str(run_dir),
        "--nproc",
        "2",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 240
    while latest_checkpoint(run_dir / "checkpoints") is None:
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()
        time.sleep(0.5)
    os.kill(_rank_pid(run.pid, 1), signal.SIGKILL)
    _, err = run.communicate(timeout=120)
    errors = [line for line in err.splitlines() if line.strip()]
    assert run.returncode == 1
    assert errors == [errors[-1]] and errors[-1].startswith("error: rank 1 of 2 was killed by SIGKILL"), err
    ckpt = latest_checkpoint(run_dir / "checkpoints")
    state = load_checkpoint(ckpt).state  # intact: every file matches its manifest
    assert state["world_size"] == 2 and len(state["shards"]) == 1

    # on 1 rank: rank 0 takes both shards' replay
    counts = [part["phases"]["learn"]["replay"]["count"] for part in (state, state["shards"][0])]
    steps = state["step"] + 100
    alone = _wm("--resume", str(run_dir), f"train.steps={steps}", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = alone.communicate(timeout=240)
    assert alone.returncode == 0, err
    assert "written by 2 ranks, this run has 1: the replay shards are dealt out again" in err
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    last = [row for row in rows if "replay/size" in row][-1]
    assert last["step"] == steps and last["replay/size"] >= sum(map(sum, counts)) + 100
    assert not (run_dir / "replay" / "rank1").exists()  # no kept checkpoint needs rank 1's chunks any more

    # and on 2 ranks again: rank 1 starts a new shard
    steps += 100
    resumed = _wm(
        "--resume", str(run_dir), f"train.steps={steps}", "--nproc", "2", stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, err
    assert "written by 1 rank, this run has 2" in err
    assert f'"step": {steps}' in out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train_rank(
    rank: int, world: int, port: int, preset: str, overrides: list[str], run_dir: str, resume: bool
) -> None:
    """Rank `rank` of a run as torchrun would start it (its environment variables), training to the end."""
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    trainer = Trainer(load_config(preset, overrides), Path(run_dir), resume=resume)
    try:
        summary = trainer.run()
        torch.save(trainer.agent.state_dict(), Path(run_dir) / f"weights{rank}.pt")
        (Path(run_dir) / f"summary{rank}.json").write_text(json.dumps(summary))
    finally:
        trainer.close()
        distributed.shutdown()


def _train_ranks(
    overrides: list[str], run_dir: Path, resume: bool = False, preset: str = "latent_mlp"
) -> list[dict[str, torch.Tensor]]:
    mp.spawn(_train_rank, args=(2, _free_port(), preset, overrides, str(run_dir), resume), nprocs=2)
    return [torch.load(run_dir / f"weights{r}.pt") for r in range(2)]


def test_two_ranks_resume_exactly_from_their_shards(tmp_path):
    """A 2-rank run checkpointed halfway, stopped and resumed ends with the weights of one that ran
    straight: each rank got back its replay shard, environments and random states."""
    steps, overrides = 400, [*TINY_RUN, "train.checkpoint_every=200"]
    straight = _train_ranks([*overrides, f"train.steps={steps}"], tmp_path / "straight")
    _train_ranks([*overrides, f"train.steps={steps // 2}"], tmp_path / "resumed")
    assert (tmp_path / "resumed" / "replay" / "rank1").is_dir()
    resumed = _train_ranks([*overrides, f"train.steps={steps}"], tmp_path / "resumed", resume=True)
    for key, value in straight[0].items():
        assert torch.equal(straight[1][key], value) and torch.equal(resumed[0][key], value), key


def test_world_models_shares_its_stages_over_two_ranks(tmp_path):
    """Rollouts recorded by both ranks into one folder, V and M fitted data-parallel, the CMA-ES candidates
    scored half by each rank: the whole pipeline runs, with rank 0's figures and checkpoints."""
    run = tmp_path / "run"
    proc = _wm(
        "world_models",
        *WORLD_MODELS_TINY,
        "--run-dir",
        str(run),
        "--nproc",
        "2",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    summary = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    assert summary["phases_done"] == ["collect", "vae", "mdrnn", "controller"]
    assert len(list((run / "rollouts").glob("episode_*.npz"))) == 6
    assert (run / "reconstructions.png").exists() and (run / "latents.npz").exists()


LOCKSTEP = {  # agents with their own kinds of state: normalisers, priorities and reanalyse, three streams
    "pets": ["env.id=wm/DummyContinuous-v0", *PETS_TINY, "train.steps=120"],
    "muzero": [
        *MUZERO_TINY,
        "env.num_envs=2",
        "train.batch_size=4",
        "train.seq_len=7",
        "train.ratio=28",
        "train.steps=80",
    ],
    "iris_tiny": ["env.num_envs=1", "train.steps=120"],
}


@pytest.mark.parametrize("preset", sorted(LOCKSTEP))
def test_the_ranks_of_every_kind_of_agent_keep_the_same_weights(preset, tmp_path):
    overrides = [*LOCKSTEP[preset], "train.eval_every=0", "train.eval_episodes=1", "train.threads=1"]
    ranks = _train_ranks(overrides, tmp_path, preset=preset)
    assert json.loads((tmp_path / "summary0.json").read_text())["updates"] > 0
    for key, value in ranks[0].items():
        assert torch.equal(ranks[1][key], value), key


def _nan_rank(rank: int, world: int, init: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    overrides, obs_spec, act_spec, seq = AGENTS["tdmpc2"]
    torch.manual_seed(0)
    agent = build_agent(load_config("tdmpc2", [*overrides, "device=cpu"]), obs_spec, act_spec)
    batch = {k: v[rank * 4 : (rank + 1) * 4] for k, v in _batch(act_spec, obs_spec.shape[0], seq).items()}
    if rank == 1:
        batch["reward"][0, 1] = float("nan")
    agent.update(batch)  # both ranks get through the all-reduce
    try:
        raise_if_non_finite(agent.optimizers.values())
        message = ""
    except TrainingError as err:
        message = str(err)
    finite = all(torch.isfinite(v).all() for v in agent.state_dict().values() if v.is_floating_point())
    torch.save({"message": message, "finite": finite, "weights": agent.state_dict()}, Path(out) / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_a_nan_on_one_rank_stops_every_rank_with_the_same_line(tmp_path):
    mp.spawn(_nan_rank, args=(2, f"file://{tmp_path / 'rendezvous'}", str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert ranks[0]["message"] and ranks[0]["message"] == ranks[1]["message"]
    assert "became nan" in ranks[0]["message"] and "the last checkpoint is intact" in ranks[0]["message"]
    assert ranks[0]["finite"] and ranks[1]["finite"]
    for key, value in ranks[0]["weights"].items():
        assert torch.equal(ranks[1]["weights"][key], value), key


def test_one_process_is_rank_0_of_one_and_errors_name_the_fix(monkeypatch):
    assert distributed.rank() == 0 and distributed.world_size() == 1 and not distributed.active()
    assert distributed.rank_seed(7, 0) == 7 and distributed.rank_seed(7, 1) not in (7, distributed.rank_seed(7, 2))
    assert distributed.part(5) == slice(0, 5) and distributed.local_batch(6) == 6
    x = torch.arange(6.0).reshape(3, 2)
    count, mean, var = distributed.moments(x)
    assert count == 3 and torch.equal(mean, x.mean(0)) and torch.equal(var, x.var(0, correction=0))
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "3")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ConfigError, match=r"local rank 3 has no GPU: this machine shows 2; .*--nproc 2"):
        distributed.local_device("cuda")
    assert distributed.local_device("cpu") == torch.device("cpu")


def test_a_batch_that_does_not_split_over_the_ranks_is_one_line(tmp_path, capsys):
    assert main(["train", "latent_mlp", "train.batch_size=4", "--run-dir", str(tmp_path), "--nproc", "3"]) == 2
    assert capsys.readouterr().err == (
        "error: train.batch_size=4 does not split over --nproc 3 (it is the global batch); use a multiple of 3\n"
    )
    assert not any(tmp_path.iterdir())


def test_a_replay_extended_by_another_keeps_their_episodes_apart():
    def filled(start: float, rows: int) -> Replay:
        replay = Replay(100, 2, 0)
        for t in range(rows):
            step = {
                "obs": np.full((2, 1), start + t, np.float32),
                "action": np.ones((2, 1), np.float32),
                "reward": np.zeros(2, np.float32),
                "is_first": np.full(2, t == 0),
                "is_terminal": np.zeros(2, bool),
            }
            replay.add(step, np.arange(2))
        return replay

    mine, other = filled(0.0, 5), filled(100.0, 3)
    mine.extend(other)
    assert len(mine) == 16
    rows = mine._rows(1, 0, 8)
    assert rows["obs"][:, 0].tolist() == [0, 1, 2, 3, 4, 100, 101, 102]
    assert rows["is_first"].tolist() == [True, False, False, False, False, True, False, False]
    assert rows["action"][5, 0] == 0 and rows["action"][6, 0] == 1
