"""The JEPA world model and the goal_success evaluation: planning to a goal's embedding reaches it where the
world is known, the evaluator's success against agents whose answer is known, held exploration, learning
and exact resume (offline and online)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import assert_resumes_exactly
from worldmodels.agents.base import Acted, Agent
from worldmodels.cli import main
from worldmodels.config import EnvConfig, load_config
from worldmodels.data.episodes import load_episode
from worldmodels.envs.record import HELD_STEPS
from worldmodels.envs.two_room import STEP, WALL_LEFT, TwoRoomEnv
from worldmodels.errors import ConfigError
from worldmodels.registry import AGENTS
from worldmodels.spaces import ActSpec, ObsSpec
from worldmodels.train import Trainer
from worldmodels.train.goals import GoalSuccess, GoalTask, Pairs
from worldmodels.train.loop import build_agent

TWO_ROOM = EnvConfig(id="wm/TwoRoom-v0")
STATE, MOVE = ObsSpec((2,), "float32"), ActSpec(False, 2)


class Oracle(Agent):
    """Acts toward (goal + `aim`) at full speed along each axis, from true positions (state observations)."""

    def __init__(self, aim: tuple[float, float] = (0.0, 0.0), moves: bool = True):
        super().__init__(STATE, MOVE)
        self.aim, self.moves = torch.tensor(aim), moves
        self.weight = nn.Parameter(torch.zeros(()))  # an agent has a device

    def phases(self, train):
        return []

    def goal_state(self, goal):
        return {"goal": goal + self.aim}

    def describe_planning(self):
        return "oracle"

    def act(self, obs, is_first, state, explore):
        action = ((state["goal"] - obs) / STEP).clamp(-1, 1) if self.moves else torch.zeros_like(obs)
        return Acted(action, state)


def test_success_is_the_environment_s_position_within_the_tolerance_beside_random_actions():
    task = GoalTask()
    oracle = GoalSuccess(Oracle(), TWO_ROOM, pairs=40, seed=1, task=task)
    for k, pairs in oracle.pairs.items():  # goals k held-action steps ahead, never nearer than min_distance
        gaps = np.linalg.norm(pairs.goals - pairs.starts, axis=1)
        assert (gaps >= task.min_distance * STEP).all() and (gaps <= k * STEP * np.sqrt(2) + 1e-6).all()
    metrics = oracle(0)
    assert metrics["eval/goal_success_k4"] >= 0.95 and metrics["eval/goal_success_k8"] >= 0.9
    assert metrics["eval/random_success_k4"] <= 0.15 and metrics["eval/random_success_k8"] <= 0.15
    assert GoalSuccess(Oracle(moves=False), TWO_ROOM, pairs=40, seed=1)(0)["eval/goal_success_k4"] == 0.0
    line = oracle.describe(metrics)
    assert "k=4" in line and "k=8" in line and "within 0.05 after k steps" in line and "oracle" in line


def test_success_of_hand_made_pairs():
    """Four steps at full speed from (0.2, 0.2) end at (0.4, 0.2): 0.04 from the first goal, 0.06 from the
    second; the third lies behind the wall the agent runs into."""
    evaluator = GoalSuccess(Oracle(), TWO_ROOM, pairs=3, seed=0, task=GoalTask(offsets=(4,)))
    starts = np.array([[0.2, 0.2], [0.2, 0.2], [0.3, 0.2]])
    goals = np.array([[0.44, 0.2], [0.46, 0.2], [0.6, 0.2]])
    evaluator.pairs = {4: Pairs(starts, goals, goals.astype(np.float32))}
    assert evaluator.reach(evaluator.pairs[4], 4).round(6).tolist() == [[0.4, 0.2], [0.4, 0.2], [WALL_LEFT, 0.2]]
    assert evaluator(0)["eval/goal_success_k4"] == pytest.approx(1 / 3)


def test_distances_count_steps_of_the_environment_and_it_must_start_where_told(monkeypatch):
    """The task's distances are in the environment's `step_size` times the action repeat; an environment that
    ignores the start it is given is refused, not judged from wherever it began."""
    evaluator = GoalSuccess(Oracle(), EnvConfig(id="wm/TwoRoom-v0", action_repeat=2), pairs=4, seed=0)
    assert evaluator.unit == 2 * STEP and evaluator.tolerance == 2 * STEP
    pairs = evaluator.pairs[4]
    assert (np.linalg.norm(pairs.goals - pairs.starts, axis=1) >= 4 * STEP).all()
    assert "within 0.1 after k steps: 2 and 1 steps of 0.1" in evaluator.describe(evaluator(0))
    reset = TwoRoomEnv.reset
    monkeypatch.setattr(TwoRoomEnv, "reset", lambda self, seed=None, options=None: reset(self, seed=seed))
    with pytest.raises(ConfigError, match="does not start where told"):
        evaluator(0)


def test_goal_success_refuses_an_agent_without_goals_and_an_environment_without_positions(tmp_path, capsys):
    with pytest.raises(ConfigError, match="does not act toward goals"):
        GoalSuccess(AGENTS.build("latent_mlp", {}, obs_spec=STATE, act_spec=MOVE), TWO_ROOM, pairs=2, seed=0)
    with pytest.raises(ConfigError, match=r"info\['position'\]"):
        GoalSuccess(Oracle(), EnvConfig(id="Pendulum-v1"), pairs=2, seed=0)
    assert main(["train", "jepa_wm_tiny", "agent.replan_every=5", "--run-dir", str(tmp_path / "run")]) == 2
    assert "agent.replan_every (5) is longer than a plan" in capsys.readouterr().err
    assert main(["train", "jepa_wm_tiny", "env.id=wm/Dummy-v0", "--run-dir", str(tmp_path / "run")]) == 2
    assert "jepa_wm plans continuous actions" in capsys.readouterr().err


class Moves(nn.Module):
    """The true step of TwoRoom away from the wall: z' = z + STEP·a."""

    def forward(self, z, action):
        return z + STEP * action


def test_planning_to_the_goal_embedding_reaches_the_goal_in_a_known_world():
    agent = build_agent(load_config("jepa_wm_tiny"), STATE, MOVE)
    agent.representation.encode = lambda obs: obs.float()  # the embedding is the position itself
    agent.predictor = Moves()
    torch.manual_seed(0)
    metrics = GoalSuccess(agent, TWO_ROOM, pairs=24, seed=2)(0)
    assert metrics["eval/goal_success_k4"] >= 0.9 and metrics["eval/goal_success_k8"] >= 0.85
    assert metrics["eval/random_success_k8"] < metrics["eval/goal_success_k8"] - 0.5


def test_acting_replans_every_few_steps_and_explores_with_held_actions_without_a_goal():
    agent = build_agent(load_config("jepa_wm_tiny"), STATE, MOVE)
    calls = []
    agent.plan = lambda obs, goal: calls.append(len(obs)) or torch.arange(8.0).reshape(1, 4, 2).expand(len(obs), 4, 2)
    obs, first = torch.zeros(3, 2), torch.ones(3, dtype=torch.bool)
    state = agent.goal_state(torch.ones(3, 2))
    actions = []
    for t in range(5):
        action, state, _ = agent.act(obs, first if t == 0 else ~first, state, False)
        actions.append(action[0].tolist())
    assert calls == [3, 3, 3]  # replan_every 2: at steps 0, 2 and 4
    assert actions == [[0, 1], [2, 3], [0, 1], [2, 3], [0, 1]]
    state, held = None, []
    for t in range(5):  # explore_hold 4
        action, state, _ = agent.act(obs, first if t == 0 else ~first, state, True)
        held.append(action)
    assert all(torch.equal(held[0], a) for a in held[1:4]) and not torch.equal(held[3], held[4])


@pytest.fixture(scope="module")
def held_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "tworoom"
    args = ["record", "wm/TwoRoom-v0", "--policy", "held", "--episodes", "4", "--max-steps", "30", "--out", str(out)]
    assert main(args) == 0
    return out


def test_the_held_policy_keeps_each_action_for_its_steps(held_dataset):
    actions = load_episode(held_dataset / "episode_000000.npz")["action"][1:]  # row 0 is no action
    blocks = actions[: len(actions) // HELD_STEPS * HELD_STEPS].reshape(-1, HELD_STEPS, 2)
    assert (blocks == blocks[:, :1]).all() and len({tuple(b[0]) for b in blocks}) == len(blocks)


def test_jepa_wm_learns_offline_and_online_and_resumes_exactly(held_dataset, tmp_path):
    cfg = load_config("jepa_wm_tiny", [f"train.offline={held_dataset}"])
    trainer = Trainer(cfg, tmp_path / "learn")
    spec = trainer.phases[0].spec.streams[0].sample
    losses = []
    for _ in range(60):
        batch = {k: torch.as_tensor(v) for k, v in trainer.offline.sample(spec).items()}
        losses.append(float(trainer.agent.update(batch)["loss/model"]))
    trainer.close()
    assert np.mean(losses[-10:]) < np.mean(losses[:10])
    assert_resumes_exactly("jepa_wm_tiny", [f"train.offline={held_dataset}"], tmp_path / "offline", steps=20)
    assert_resumes_exactly("jepa_wm_tiny", [], tmp_path / "online", steps=40)
