"""PETS: a smoke run with diagnostics, known rewards, discrete actions, bfloat16 planning and dreaming."""

import json
import math

import pytest
import torch

from worldmodels.agents.pets import KNOWN_TASKS, PETSAgent
from worldmodels.config import load_config
from worldmodels.spaces import ActSpec, ObsSpec
from worldmodels.train import Trainer

TINY = [
    "agent.dynamics.hidden=32",
    "agent.dynamics.layers=2",
    "agent.dynamics.members=2",
    "agent.reward.hidden=32",
    "agent.reward.layers=2",
    "agent.reward.members=2",
    "agent.particles=4",
    "agent.planner.population=16",
    "agent.planner.elites=4",
    "agent.planner.iterations=2",
    "agent.planner.horizon=5",
    "agent.known_task=none",
    "train.prefill=60",
    "train.ratio=16",
    "train.batch_size=8",
    "train.seq_len=4",
    "train.eval_episodes=1",
    "train.log_every=50",
    "train.threads=1",
]


def agent(*overrides, obs_dim=3, discrete=False, action_dim=1):
    cfg = load_config("pets", [*TINY, *overrides]).agent.cfg
    return PETSAgent(cfg, ObsSpec((obs_dim,), "float32"), ActSpec(discrete, action_dim))


def test_smoke_run_trains_the_ensemble_and_logs_held_out_error(tmp_path):
    cfg = load_config(
        "pets", [*TINY, "env.id=wm/DummyContinuous-v0", "train.steps=200", "train.eval_every=0", "agent.holdout=0.5"]
    )
    trainer = Trainer(cfg, tmp_path / "run")
    before = {k: v.clone() for k, v in trainer.agent.dynamics.state_dict().items()}
    summary = trainer.run()
    trainer.close()
    assert summary["updates"] > 0 and math.isfinite(summary["eval/return"])
    after = trainer.agent.dynamics.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    keys = set().union(*rows)
    assert {"model/nll", "model/reward_mse", "model/one_step_error", "model/multi_step_error"} <= keys


def test_pendulum_reward_matches_the_environment():
    import gymnasium as gym

    env = gym.make("Pendulum-v1")
    obs, _ = env.reset(seed=3)
    reward_fn, done_fn = KNOWN_TASKS["pendulum"]
    for a in (-1.0, 0.3, 1.0):
        nxt, r, *_ = env.step([2.0 * a])
        pred = reward_fn(torch.tensor(obs), torch.tensor([a]), torch.tensor(nxt))
        assert pred.item() == pytest.approx(r, abs=1e-4)
        obs = nxt
    assert done_fn is None


def test_known_termination_ends_the_planned_episode():
    pets = agent("agent.known_task=cartpole_balance", obs_dim=4)
    obs = torch.tensor([[0.0, 0.0, 0.5, 0.0], [0.0, 0.0, 0.0, 0.0]])[:, None].expand(2, 4, 4)  # fallen, upright
    model = pets.model()
    assert torch.equal(model.cont(obs), torch.tensor([[0.0] * 4, [1.0] * 4]))  # per particle
    nxt, reward = model.step(obs, torch.zeros(2, 1))
    assert reward.shape == (2, 4) and torch.equal(reward, model.cont(nxt))  # 1 unless the step ends it


def batch_ending_where_x_is_positive(B=16, T=4):
    """Windows inside one episode whose states with x > 0 are terminal: `[B, T, ...]`."""
    obs = torch.randn(B, T, 3)
    return {
        "obs": obs,
        "action": torch.rand(B, T, 1) * 2 - 1,
        "reward": torch.ones(B, T),
        "is_first": torch.zeros(B, T, dtype=torch.bool),
        "is_terminal": obs[..., 0] > 0,
        "holdout": torch.zeros(B, T),
    }


def test_continue_head_learns_the_terminations_and_the_planner_sees_it():
    torch.manual_seed(0)
    pets = agent()
    for _ in range(60):
        pets.update(batch_ending_where_x_is_positive())
    probe = torch.tensor([[[1.0, 0.0, 0.0]], [[-1.0, 0.0, 0.0]]])  # [N=2, K=1, S]: terminal, running
    cont = pets.model().cont(probe)
    assert cont.shape == (2, 1) and cont[0, 0] < 0.2 and cont[1, 0] > 0.8
    assert agent("agent.use_continue=false").model().cont is None
    assert agent("agent.known_task=pendulum").model().cont is None  # a known task that never ends


def test_continue_head_reads_states_in_units_of_their_spread():
    """A termination set by a dimension of small range (±0.01) beside one of large range (±100): the head
    tells the two sides of the boundary apart within 60 updates (on raw states it gave both 0.84)."""
    torch.manual_seed(0)
    pets = agent()
    scale = torch.tensor([0.01, 100.0, 1.0])
    for _ in range(60):
        batch = batch_ending_where_x_is_positive()
        batch["obs"] = batch["obs"] * scale
        batch["is_terminal"] = batch["obs"][..., 0] > 0.01
        pets.update(batch)
    probe = torch.randn(2, 64, 3) * scale  # [N=2, K=64, S]: beyond the boundary, inside it
    probe[0, :, 0], probe[1, :, 0] = 0.03, -0.03
    cont = pets.model().cont(probe).mean(1)
    assert cont[0] < 0.5 and cont[1] > 0.9


def test_each_particle_plans_with_its_own_members_reward():
    """TS∞ with a learned reward: particle k's planned reward is member (k mod E)'s reward of its own
    transition, as its next state is member (k mod E)'s, not the mean of every member."""
    torch.manual_seed(0)
    pets = agent("agent.dynamics.probabilistic=false")
    obs, action = torch.randn(3, 4, 3), torch.rand(3, 1) * 2 - 1  # N = 3 rows, K = 4 particles, E = 2
    nxt, reward = pets.model().step(obs, action)
    x = torch.cat([obs, action[:, None].expand(-1, 4, -1), nxt], -1)  # [N, K, 2S + A]
    every = pets.reward.members(x.reshape(1, 12, -1).expand(2, -1, -1)).view(2, 3, 4)  # [E, N, K]
    own = torch.stack([every[k % 2, :, k] for k in range(4)], 1)
    assert torch.allclose(reward, own, atol=1e-5) and not torch.allclose(reward, every.mean(0), atol=1e-3)


def test_a_reward_ensemble_of_another_size_plans_with_its_members_mean():
    """Particles are dealt to the dynamics' members; a reward ensemble of another size cannot follow that
    deal, so every particle's reward is the mean of the reward members."""
    torch.manual_seed(0)
    pets = agent("agent.dynamics.probabilistic=false", "agent.reward.members=3")
    obs, action = torch.randn(3, 4, 3), torch.rand(3, 1) * 2 - 1
    nxt, reward = pets.model().step(obs, action)
    x = torch.cat([obs, action[:, None].expand(-1, 4, -1), nxt], -1)
    assert torch.allclose(reward, pets.reward(x).mean, atol=1e-5)


def test_explore_bonus_adds_the_particles_spread_to_each_planned_reward_while_collecting():
    """β times the particles' std per state dimension, in units of replay's state spread, averaged over the
    dimensions; evaluation's plans (explore=False) are those of an agent without the bonus."""
    torch.manual_seed(0)
    pets = agent("agent.explore_bonus=2.0")
    pets.update(batch_ending_where_x_is_positive())  # the normalisers hold replay's spread
    obs, action = torch.randn(3, 4, 3), torch.rand(3, 1) * 2 - 1
    torch.manual_seed(1)
    nxt, plain = pets.model().step(obs, action)
    torch.manual_seed(1)
    same, bonused = pets.model(bonus=2.0).step(obs, action)
    spread = (nxt.std(1) / pets.dynamics.inputs.std[:3]).mean(-1, keepdim=True)  # [N, 1]
    assert torch.equal(nxt, same) and torch.allclose(bonused, plain + 2.0 * spread)

    without = agent()
    without.load_state_dict(pets.state_dict())
    start, first = torch.randn(2, 3), torch.ones(2, dtype=torch.bool)
    acts = []
    for who, explore in ((pets, False), (without, False), (pets, True), (without, True)):
        torch.manual_seed(2)
        acts.append(who.act(start, first, None, explore=explore).action)
    assert torch.equal(acts[0], acts[1]) and not torch.equal(acts[2], acts[3])


@pytest.mark.parametrize("planner", ["{name: cem, elites: 4}", "{name: mppi}"])
def test_discrete_actions_are_one_hot(planner):
    spec = planner[:-1] + ", population: 16, iterations: 2, horizon: 5}"
    pets = agent(f"agent.planner={spec}", obs_dim=2, discrete=True, action_dim=3)
    action, (plan, holdout), records = pets.act(torch.zeros(2, 2), torch.ones(2, dtype=torch.bool), None, explore=True)
    assert action.shape == (2, 3) and action.sum(-1).eq(1).all()
    assert plan["actions"].shape == (2, 5, 3) and holdout.shape == (2,)
    assert records["holdout"].shape == (2,)  # stored in replay beside the action


@pytest.mark.parametrize("propagation", ["ts1", "tsinf", "expectation"])
def test_planning_in_each_mode_and_precision(propagation):
    for precision in ("float32", "bfloat16"):
        pets = agent(f"agent.propagation={propagation}", f"agent.precision={precision}")
        action, state, _ = pets.act(torch.randn(3, 3), torch.ones(3, dtype=torch.bool), None, explore=False)
        assert action.shape == (3, 1) and action.dtype == torch.float32 and action.abs().max() <= 1
        action, _, _ = pets.act(torch.randn(3, 3), torch.zeros(3, dtype=torch.bool), state, explore=False)


def test_open_loop_shapes():
    pets = agent()
    pred = pets.open_loop(torch.randn(10, 3), torch.randn(10, 1), context=4)
    assert pred.obs.shape == (10, 3) and pred.reward is None
