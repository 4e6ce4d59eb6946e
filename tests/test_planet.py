"""PlaNet: planning through the shared planners in the RSSM's latent space, exploration within bounds,
the recurrent state carried between steps, a smoke run, exact resume and dreaming."""

import json
import math
from types import SimpleNamespace

import pytest
import torch

from tests.conftest import assert_resumes_exactly
from worldmodels.agents.planet import PlaNetAgent
from worldmodels.config import load_config
from worldmodels.errors import ConfigError
from worldmodels.planners.cem import CEM
from worldmodels.planners.protocol import rollout_objective
from worldmodels.spaces import ActSpec, ObsSpec
from worldmodels.train import Trainer

TINY_PLANET = [
    "agent.encoder.vector.hidden=16",
    "agent.decoder.vector.hidden=16",
    "agent.encoder.image.depth=4",
    "agent.decoder.image.depth=4",
    "agent.rssm={deter: 16, hidden: 16, stoch: 4, classes: 0, act: elu, norm: false}",
    "agent.reward.hidden=16",
    "agent.cont.hidden=16",
    "agent.planner={name: cem, horizon: 4, population: 32, elites: 4, iterations: 2, momentum: 0.0}",
]

TRAIN = [
    "env.action_repeat=1",
    "train.prefill=40",
    "train.batch_size=2",
    "train.seq_len=8",
    "train.ratio=16",
    "train.eval_episodes=1",
    "train.eval_every=0",
    "train.threads=1",
]

PLANNERS = {
    "cem": "{name: cem, horizon: 3, population: 64, elites: 8, iterations: 4, momentum: 0.0}",
    "mppi": "{name: mppi, horizon: 3, population: 64, iterations: 4, temperature: 0.05}",
    "icem": "{name: icem, horizon: 3, population: 64, elites: 8, iterations: 4}",
}


def agent(*overrides, obs_dim=3, discrete=False, action_dim=1) -> PlaNetAgent:
    torch.manual_seed(0)
    cfg = load_config("planet", [*TINY_PLANET, *overrides]).agent.cfg
    return PlaNetAgent(cfg, ObsSpec((obs_dim,), "float32"), ActSpec(discrete, action_dim))


def fake_prior(planet: PlaNetAgent, target: float) -> None:
    """Make the prior remember the last action in z and reward −(a − target)², so the best plan is known."""

    def img_step(state, action):
        stoch = action.mean(-1, keepdim=True).expand_as(state["stoch"])
        return {"deter": state["deter"], "stoch": stoch, "mean": stoch, "std": torch.ones_like(stoch)}

    planet.rssm.img_step = img_step
    planet.reward.forward = lambda feats: SimpleNamespace(mean=-((feats[..., -1] - target) ** 2))


@pytest.mark.parametrize("name", list(PLANNERS))
def test_plans_the_best_action_through_the_shared_planner(name):
    planet = agent(f"agent.planner={PLANNERS[name]}")
    fake_prior(planet, target=0.5)
    calls = []
    optimize = planet.planner.optimize

    def spy(objective, x0, reuse=None):
        calls.append(x0.shape)
        return optimize(objective, x0, reuse)

    planet.planner.optimize = spy
    action, state, _ = planet.act(torch.randn(2, 3), torch.ones(2, dtype=torch.bool), None, explore=False)
    assert calls == [(2, 3, 1)]  # one batched optimisation for both environments
    assert action.shape == (2, 1) and state["plan"].shape == (2, 3, 1)
    assert torch.allclose(action, torch.full((2, 1), 0.5), atol=0.1)


@pytest.mark.parametrize("use_continue, expected", [(True, 1 + 0.5 + 0.25), (False, 3.0)])
def test_imagined_rewards_are_weighted_by_the_predicted_continues(use_continue, expected):
    planet = agent(f"agent.use_continue={str(use_continue).lower()}")
    planet.reward.forward = lambda feats: SimpleNamespace(mean=torch.ones(len(feats)))
    planet.cont.forward = lambda feats: SimpleNamespace(mean=torch.full((len(feats),), 0.5))
    returns = rollout_objective(planet.model(), planet.rssm.initial(2))(torch.zeros(2, 5, 3, 1))  # [B, P], H = 3
    assert returns.shape == (2, 5) and torch.allclose(returns, torch.full((2, 5), expected))


def test_actions_stay_within_bounds_even_when_the_model_wants_more():
    planet = agent()
    fake_prior(planet, target=3.0)  # best reachable action: the upper bound
    for explore in (False, True):
        for _ in range(5):
            action, _, _ = planet.act(torch.randn(4, 3), torch.ones(4, dtype=torch.bool), None, explore=explore)
            assert action.abs().max() <= 1.0
    assert action.mean() > 0.5


def test_act_carries_the_filtered_latent_and_the_executed_action():
    planet = agent(obs_dim=3, action_dim=2)
    first = torch.ones(2, dtype=torch.bool)
    obs = torch.randn(2, 3)
    action, state, _ = planet.act(obs, first, planet.initial_state(2), explore=True)
    assert action.shape == (2, 2)
    assert planet.rssm.features(state["latent"]).shape == (2, 16 + 4)
    assert torch.equal(state["action"], action)  # the noisy action that was executed is the one carried
    torch.manual_seed(1)
    cont, _, _ = planet.act(obs, ~first, state, explore=False)
    latent_cont = planet.filter(obs, ~first, state)
    latent_new = planet.filter(obs, first, state)
    assert not torch.allclose(latent_cont["deter"], latent_new["deter"])  # the past matters unless an episode starts
    assert cont.shape == (2, 2)


def test_exploration_noise_is_gaussian_with_the_configured_std_white_or_coloured_in_time():
    planned, first = torch.zeros(20000, 1), torch.ones(20000, dtype=torch.bool)
    noisy, carried = agent("agent.explore_noise=0.2").explore(planned, first, None)
    assert noisy.std().item() == pytest.approx(0.2, rel=0.05) and carried is None
    pink = agent("agent.explore_noise=0.2", "agent.noise_colour=1.0")
    steps, carried = [], None
    for t in range(2):
        noisy, carried = pink.explore(planned, first if t == 0 else ~first, carried)
        steps.append(noisy[:, 0])
    assert steps[0].std().item() == pytest.approx(0.2, rel=0.1)
    assert torch.corrcoef(torch.stack(steps))[0, 1] > 0.5  # consecutive steps move together


def test_discrete_actions_are_one_hot_and_icem_is_refused():
    planet = agent(obs_dim=2, discrete=True, action_dim=3)
    assert isinstance(planet.planner, CEM) and planet.planner.discrete
    action, state, _ = planet.act(torch.randn(2, 2), torch.ones(2, dtype=torch.bool), None, explore=True)
    assert action.shape == (2, 3) and action.sum(-1).eq(1).all() and state["plan"].shape == (2, 4, 3)
    with pytest.raises(ConfigError, match="icem plans continuous actions only"):
        agent(f"agent.planner={PLANNERS['icem']}", obs_dim=2, discrete=True, action_dim=3)


def test_categorical_latents_are_refused():
    with pytest.raises(ConfigError, match="planet's RSSM has Gaussian latents"):
        agent("agent.rssm={deter: 16, hidden: 16, stoch: 4, classes: 4}")


def test_open_loop_predicts_every_observation():
    planet = agent(obs_dim=3, action_dim=2)
    pred = planet.open_loop(torch.randn(10, 3), torch.rand(10, 2) * 2 - 1, context=4)
    assert pred.obs.shape == (10, 3) and torch.isfinite(pred.obs).all() and pred.reward.shape == (10,)


def test_smoke_run_trains_the_world_model(tmp_path):
    cfg = load_config("planet", [*TINY_PLANET, *TRAIN, "env.id=wm/DummyContinuous-v0", "train.steps=120"])
    trainer = Trainer(cfg, tmp_path / "run")
    before = {k: v.clone() for k, v in trainer.agent.rssm.state_dict().items()}
    summary = trainer.run()
    trainer.close()
    assert summary["updates"] > 0 and math.isfinite(summary["eval/return"])
    after = trainer.agent.rssm.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert {"world_model/kl", "world_model/reward", "world_model/recon"} <= set().union(*rows)


def test_resumes_exactly_with_its_recurrent_state(tmp_path):
    def warm_start_survives(trainer):
        assert "plan" in trainer.phases[0].collector.state  # the last plan is part of the checkpoint

    overrides = [*TINY_PLANET, *TRAIN, "env.id=wm/DummyContinuous-v0"]
    assert_resumes_exactly("planet", overrides, tmp_path, steps=120, on_resume=warm_start_survives)
