"""TD-MPC2: SimNorm, two-hot Q targets against hand values, planning with the policy prior and a warm start,
a smoke run from states and from pixels, and exact resume."""

import json
import math

import pytest
import torch

from tests.conftest import assert_resumes_exactly
from worldmodels.agents.tdmpc2 import TDMPC2Agent
from worldmodels.config import load_config
from worldmodels.errors import ConfigError
from worldmodels.losses.twohot import two_hot
from worldmodels.nn.simnorm import SimNorm
from worldmodels.planners.protocol import Model
from worldmodels.spaces import ActSpec, ObsSpec
from worldmodels.train import Trainer

TINY = [
    "agent.encoder={vector: {hidden: 16, layers: 1}, image: {depth: 4}}",
    "agent.latent=16",
    "agent.hidden=16",
    "agent.policy_trajectories=4",
    "agent.planner={population: 16, iterations: 2, elites: 4}",
]
TRAIN = [
    "env.id=wm/DummyContinuous-v0",
    "env.action_repeat=1",
    "train.prefill=40",
    "train.batch_size=4",
    "train.ratio=16",
    "train.eval_episodes=1",
    "train.eval_every=0",
    "train.log_every=20",
    "train.threads=1",
]


def agent(*overrides: str) -> TDMPC2Agent:
    torch.manual_seed(0)
    cfg = load_config("tdmpc2", [*TINY, *overrides]).agent.cfg
    return TDMPC2Agent(cfg, ObsSpec((3,), "float32"), ActSpec(False, 1))


def fixed_values(heads: torch.nn.ModuleList, values: list[float], bins: torch.Tensor) -> None:
    """Make head k predict exactly `values[k]` for every input: a zero last layer whose bias is the log of
    the two-hot encoding of symlog(value)."""
    for head, value in zip(heads, values):
        last = head[-1]
        last.weight.data.zero_()
        target = two_hot(torch.sign(torch.tensor(value)) * math.log1p(abs(value)), bins)
        last.bias.data.copy_(torch.log(target + 1e-30))


def test_simnorm_puts_each_group_on_the_simplex():
    x = torch.tensor([[0.0, math.log(3.0), 5.0, 5.0]])
    assert torch.allclose(SimNorm(2)(x), torch.tensor([[0.25, 0.75, 0.5, 0.5]]))
    y = SimNorm(8)(torch.randn(3, 5, 64))
    assert y.shape == (3, 5, 64) and (y >= 0).all()
    assert torch.allclose(y.reshape(3, 5, 8, 8).sum(-1), torch.ones(3, 5, 8))


def test_latents_of_the_encoder_and_the_dynamics_are_simnormed():
    td = agent()
    z = td.encoder(torch.randn(6, 3))
    nxt = td.next(z, torch.rand(6, 1))
    for latent in (z, nxt):
        assert latent.shape == (6, 16) and torch.allclose(latent.reshape(6, 2, 8).sum(-1), torch.ones(6, 2))


def test_two_hot_bins_and_q_loss_against_hand_values():
    td = agent()
    assert td.bins.shape == (101,) and torch.allclose(
        td.bins[[0, 50, 51, -1]], torch.tensor([-10.0, 0.0, 0.2, 10.0]), atol=1e-6
    )
    target = math.expm1(0.3)  # symlog(target) = 0.3: halfway between the bins at 0.2 and 0.4
    weights = two_hot(torch.tensor(0.3), td.bins)
    assert torch.allclose(weights[[51, 52]], torch.tensor([0.5, 0.5])) and weights.sum() == 1
    q = td.q(torch.zeros(1, 16), torch.zeros(1, 1))[0]  # zero-initialised output: uniform over the bins
    assert torch.allclose(q.mean, torch.zeros(1), atol=1e-6)
    assert torch.allclose(q.loss(torch.tensor([target])), torch.tensor([math.log(101)]))


def test_td_target_is_the_reward_plus_the_discounted_min_of_two_random_target_heads():
    td = agent("agent.discount=0.5")
    values = [4.0, 1.0, 3.0, 5.0, 2.0]
    fixed_values(td.target_qs, values, td.bins)
    next_z = td.encoder(torch.randn(8, 3))
    reward, alive = torch.full((8,), 2.0), torch.tensor([1.0] * 7 + [0.0])  # the last transition ended the episode
    torch.manual_seed(1)
    target = td.td_target(next_z, reward, alive)
    torch.manual_seed(1)
    td.policy(next_z)  # the same random draws: the policy's sample, then the two heads
    pick = torch.randperm(5)[:2].tolist()
    expected = 2.0 + 0.5 * min(values[k] for k in pick)
    assert torch.allclose(target[:7], torch.full((7,), expected), atol=1e-4)
    assert torch.allclose(target[7], torch.tensor(2.0))
    minima = set()
    for seed in range(20):  # over draws, every pair's min appears, never the max of all five
        torch.manual_seed(seed)
        minima.add(round(td.td_target(next_z[:1], reward[:1], alive[:1]).item(), 3))
    assert minima == {2.0 + 0.5 * v for v in (1.0, 2.0, 3.0, 4.0)}


def test_policy_prior_samples_stay_in_bounds_with_a_finite_log_probability():
    td = agent()
    action, log_prob = td.policy(td.encoder(torch.randn(32, 3)))
    assert action.shape == (32, 1) and action.abs().max() < 1 and torch.isfinite(log_prob).all()


def test_acting_plans_with_the_policy_prior_and_warm_starts_from_the_last_plan():
    td = agent()
    seen = []
    optimize = td.planner.optimize

    def spy(objective, x0, reuse=None, prior=None):
        seen.append((x0.clone(), prior.shape))
        return optimize(objective, x0, reuse, prior=prior)

    td.planner.optimize = spy
    obs, first = torch.randn(2, 3), torch.ones(2, dtype=torch.bool)
    action, state, _ = td.act(obs, first, None, explore=True)
    assert action.shape == (2, 1) and action.abs().max() <= 1 and state["centre"].shape == (2, 3, 1)
    td.act(obs, torch.tensor([False, True]), state, explore=False)
    (x0, prior), (warm, _) = seen
    assert prior == (2, 4, 3, 1)  # 4 policy rollouts over H = 3 per environment
    assert torch.equal(x0, torch.zeros(2, 3, 1))
    assert torch.equal(warm[0, :2], state["centre"][0, 1:]) and warm[0, 2, 0] == 0  # shifted a step
    assert torch.equal(warm[1], torch.zeros(3, 1))  # a new episode starts uninformed


def test_planning_finds_the_action_the_model_rewards():
    """With the reward r(z, a) = −(a − 0.6)² and no value, the plan's first action is 0.6."""
    td = agent("agent.planner={population: 64, iterations: 4, elites: 8}")
    td.model = lambda: Model(lambda z, a: (z, -((a[..., 0] - 0.6) ** 2)))
    action, _, _ = td.act(torch.randn(3, 3), torch.ones(3, dtype=torch.bool), None, explore=False)
    assert torch.allclose(action, torch.full((3, 1), 0.6), atol=0.05)


def test_explore_std_floors_the_collection_noise_and_falls_linearly_to_the_planner_s_own():
    """Where the planner's std has collapsed (a sharp reward at a = 0), collected actions spread by the
    schedule's floor: 0.5 at the first update, 0.25 half-way, the planner's own narrow spread after."""
    td = agent(
        "agent.explore_std=0.5",
        "agent.explore_std_updates=100",
        "agent.planner={population: 64, iterations: 6, elites: 4}",
    )
    td.model = lambda: Model(lambda z, a: (z, -100 * a[..., 0] ** 2))
    obs, first = torch.randn(2000, 3), torch.ones(2000, dtype=torch.bool)
    for updates, floor in [(0, 0.5), (50, 0.25), (100, 0.0)]:
        td.updates = updates
        assert torch.equal(td.explore_std(torch.full((2, 1), 0.025)), torch.full((2, 1), max(floor, 0.025)))
        torch.manual_seed(1)
        spread = float(td.act(obs, first, None, explore=True).action.std())
        assert spread == pytest.approx(floor, rel=0.1) if floor else spread < 0.1
    assert torch.equal(agent().explore_std(torch.full((2, 1), 0.025)), torch.full((2, 1), 0.025))  # off by default


def test_mismatched_settings_are_refused():
    with pytest.raises(ConfigError, match="agent.planner.horizon=3"):
        agent("agent.planner.horizon=5")
    with pytest.raises(ConfigError, match="multiple of agent.simnorm_dim"):
        agent("agent.latent=20")
    with pytest.raises(ConfigError, match="continuous actions"):
        TDMPC2Agent(load_config("tdmpc2", TINY).agent.cfg, ObsSpec((3,), "float32"), ActSpec(True, 3))


def test_smoke_run_from_states_updates_once_per_step_with_finite_losses(tmp_path):
    cfg = load_config("tdmpc2", [*TINY, *TRAIN, "train.steps=100"])
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.run()
    trainer.close()
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r for r in rows if "loss/consistency" in r]
    assert losses and all(math.isfinite(r["loss/model"]) and math.isfinite(r["loss/pi"]) for r in losses)
    assert trainer.agent.updates >= 60  # one update of 4 × 4 steps per env step at train.ratio 16
    assert any("eval/return" in r for r in rows)


def test_smoke_run_from_pixels(tmp_path):
    cfg = load_config("tdmpc2_pixels", [*TINY, *TRAIN, "train.steps=60", "train.prefill=50"])
    assert cfg.env.obs == "pixels"
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.run()
    trainer.close()
    frames = torch.zeros(1, 64, 64, 3, dtype=torch.uint8)
    assert trainer.agent.updates > 0 and trainer.agent.encoder(frames).shape == (1, 16)


def test_resumes_exactly_with_its_plan_and_target_heads(tmp_path):
    def plan_survives(trainer):
        assert trainer.phases[0].collector.state is not None and trainer.phases[0].collector.state["centre"].shape == (
            1,
            3,
            1,
        )

    assert_resumes_exactly("tdmpc2", [*TINY, *TRAIN], tmp_path, steps=120, on_resume=plan_survives)


def test_coloured_collection_noise_resumes_exactly_with_each_environment_s_sequence(tmp_path):
    def noise_survives(trainer):
        sequences, position = trainer.phases[0].collector.state["noise"]
        assert sequences.shape == (1, 1, 1000) and 0 < int(position[0]) <= 1000

    overrides = [*TINY, *TRAIN, "agent.noise_colour=1.0"]
    assert_resumes_exactly("tdmpc2", overrides, tmp_path, steps=120, on_resume=noise_survives)


def test_an_episode_seam_inside_a_window_cuts_the_model_losses_there():
    """A window whose second episode starts at step 2: the consistency, reward and value losses read only the
    steps before the seam, so anything from step 2 on (frames, actions, rewards, terminations) leaves them
    unchanged, while the same change without a seam changes them."""
    cfg = load_config("tdmpc2", TINY)
    H = cfg.agent.cfg.horizon
    torch.manual_seed(0)
    agent = TDMPC2Agent(cfg.agent.cfg, ObsSpec((3,), "float32"), ActSpec(False, 2))
    B, T = 4, H + 1
    batch = {
        "obs": torch.randn(B, T, 3),
        "action": torch.rand(B, T, 2) * 2 - 1,
        "reward": torch.randn(B, T),
        "is_terminal": torch.zeros(B, T, dtype=torch.bool),
        "is_first": torch.zeros(B, T, dtype=torch.bool),
    }
    later = {k: v.clone() for k, v in batch.items()}
    later["obs"][:, 2:] += 5.0
    later["action"][:, 2:] *= -1
    later["reward"][:, 2:] += 3.0
    later["is_terminal"][:, 3] = True
    keys = ("loss/consistency", "loss/reward", "loss/value")

    def losses(b: dict, seam: bool) -> list[float]:
        b = {k: v.clone() for k, v in b.items()}
        b["is_first"][:, 2] = seam
        copy_ = TDMPC2Agent(cfg.agent.cfg, ObsSpec((3,), "float32"), ActSpec(False, 2))
        copy_.load_state_dict(agent.state_dict())
        torch.manual_seed(1)  # the same dropout masks in every call
        metrics = copy_.update(b)
        return [float(metrics[k]) for k in keys]

    assert losses(batch, seam=True) == pytest.approx(losses(later, seam=True), rel=1e-6)
    assert losses(batch, seam=False) != pytest.approx(losses(later, seam=False), rel=1e-6)


def test_continue_head_learns_terminations_and_weights_the_planned_rewards_and_q():
    """Transitions whose action is positive end the episode: the head on z' = d(z, a) learns it, and the
    planner's model carries it; with `episodic` off the model has no continue."""
    td = agent()
    B, T = 32, td.cfg.horizon + 1
    for _ in range(60):
        action = torch.rand(B, T, 1) * 2 - 1
        batch = {
            "obs": torch.randn(B, T, 3),
            "action": action,
            "reward": torch.zeros(B, T),
            "is_terminal": action[..., 0] > 0,  # action t is the one that led into obs t
            "is_first": torch.zeros(B, T, dtype=torch.bool),
        }
        metrics = td.update(batch)
    assert "loss/cont" in metrics
    z = td.encoder(torch.randn(64, 3))
    model = td.model()
    ended = model.cont(td.next(z, torch.full((64, 1), 0.8)))
    going = model.cont(td.next(z, torch.full((64, 1), -0.8)))
    assert ended.mean() < 0.2 and going.mean() > 0.8
    assert agent("agent.episodic=false").model().cont is None
