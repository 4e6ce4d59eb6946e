"""Plan2Explore's intrinsic reward (`agents/novelty.py`): the ensemble's disagreement is larger on transitions
it has not seen, it enters the imagined rewards, and every agent that learns in imagination trains it and
resumes it exactly."""

import json
import math

import pytest
import torch

from tests.conftest import TINY, assert_resumes_exactly
from tests.test_dreamer import TINY_DREAMER
from worldmodels.agents.behaviour import ActorCritic, BehaviourConfig, Replayed
from worldmodels.config import load_all, load_config
from worldmodels.schema import parse
from worldmodels.spaces import ActSpec
from worldmodels.train import Trainer

load_all()
NOVELTY = ["agent.novelty.name=ensemble", "agent.novelty.probabilistic=false", "agent.novelty.hidden=32"]


def behaviour(scale: float = 1.0) -> ActorCritic:
    cfg = parse(
        BehaviourConfig,
        {"novelty": {"name": "ensemble", "probabilistic": False, "hidden": 32, "layers": 2}, "novelty_scale": scale},
    )
    return ActorCritic(cfg, feat_dim=2, act_spec=ActSpec(False, 1))


def windows(n: int, low: float, high: float) -> Replayed:
    """`n` windows of 8 steps in one episode each: a point moving by a tenth of its action, inside [low, high]²."""
    g = torch.Generator().manual_seed(0)
    action = torch.rand(n, 8, 1, generator=g) * 2 - 1
    start = low + (high - low) * torch.rand(n, 1, 2, generator=g)
    feats = start + 0.1 * torch.cumsum(torch.cat([torch.zeros(n, 1, 1), action[:, 1:]], 1), 1)
    first = torch.zeros(n, 8, dtype=torch.bool)
    first[:, 0] = True
    return Replayed(feats, action, torch.zeros(n, 8), torch.zeros(n, 8), first)


def test_the_disagreement_is_larger_where_the_ensemble_has_not_seen_the_transitions():
    torch.manual_seed(0)
    model = behaviour()
    seen = windows(64, 0.0, 1.0)
    for _ in range(300):
        model.novelty.update(seen.features, seen.action, seen.first)
    far = windows(64, 3.0, 4.0)
    near = model.novelty.reward(seen.features[:, :-1], seen.action[:, 1:]).mean()
    away = model.novelty.reward(far.features[:, :-1], far.action[:, 1:]).mean()
    assert away > 5 * near > 0


def test_the_disagreement_is_added_to_the_imagined_rewards_at_its_scale():
    """The same dream with the scale at 0 and at 1: the mean return differs by the logged novelty reward's
    λ-return, here with γ = 0 exactly the reward itself."""
    returns = []
    for scale in (0.0, 1.0):
        torch.manual_seed(0)
        model = behaviour(scale)
        model.cfg.gamma = 0.0
        dream = torch.randn(4, 3, 2), torch.randn(3, 3, 1)  # features [H+1, N, F], actions [H, N, A]
        metrics = model.learn(
            lambda actor, rsample, dream=dream: dream, lambda f: (torch.zeros(3, 3), torch.ones(3, 3)), torch.ones(3)
        )
        returns.append((float(metrics["behaviour/return"]), float(metrics.get("novelty/reward", 0.0))))
    (plain, none), (curious, bonus) = returns
    assert none == 0 and bonus > 0
    assert curious == pytest.approx(plain + bonus, rel=1e-5)


@pytest.mark.parametrize("preset, tiny", [("dreamerv3", TINY_DREAMER), ("latent_mlp", TINY)])
def test_agents_train_the_novelty_ensemble_and_resume_it_exactly(tmp_path, preset, tiny):
    overrides = [*tiny, *NOVELTY, "env.id=CartPole-v1", "env.max_episode_steps=40", "train.eval_every=0"]
    overrides += ["train.prefill=40", "train.batch_size=2", "train.seq_len=8", "train.ratio=16", "train.threads=1"]
    trainer = Trainer(load_config(preset, [*overrides, "train.steps=120"]), tmp_path / "run")
    trainer.run()
    trainer.close()
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    logged = [(m["loss/novelty"], m["novelty/reward"]) for m in lines if "loss/critic" in m]
    assert logged and all(math.isfinite(a) and b > 0 for a, b in logged)
    assert_resumes_exactly(preset, overrides, tmp_path, 120)
