"""The actor and critic losses of `ActorCritic.learn` against values computed by hand on a 2-step dream."""

import math

import pytest
import torch

from worldmodels.agents.behaviour import ActorCritic, BehaviourConfig
from worldmodels.config import load_all
from worldmodels.schema import parse
from worldmodels.spaces import ActSpec

load_all()


@pytest.mark.parametrize("entropy", [0.0, 0.1])
def test_reinforce_actor_loss_and_critic_loss_match_the_hand_computed_ones(entropy):
    """H = 2, one start, rewards (1, 2), continues (1, 0.5), γ = 0.9, λ = 0.5, a critic that predicts 0 and a
    uniform actor over 2 actions:
        R_1 = r_1 + γ c_1 (λ·0 + (1−λ)·0) = 2,   R_0 = r_0 + γ c_0 ((1−λ) v_1 + λ R_1) = 1 + 0.9 · 0.5 · 2 = 1.9
        weights (1, c_0) = (1, 1)
        actor  −mean_t(log π(a_t) (R_t − v_t) + η H[π]) = ln 2 · (1.9 + 2) / 2 − η ln 2
        critic mean_t (v_t − R_t)² = (1.9² + 2²) / 2"""
    cfg = parse(
        BehaviourConfig,
        {
            "gamma": 0.9,
            "lambda_return": 0.5,
            "entropy": entropy,
            "return_norm": False,
            "use_ema_critic": False,
            "critic": {"name": "mlp", "use_symlog": False},
        },
    )
    behaviour = ActorCritic(cfg, feat_dim=3, act_spec=ActSpec(True, 2))
    with torch.no_grad():
        for p in behaviour.actor.parameters():
            p.zero_()  # logits 0: uniform
    feats = torch.randn(3, 1, 3)  # [H+1, N, F]
    actions = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])  # [H, N, A]
    rewards, conts = torch.tensor([[1.0], [2.0]]), torch.tensor([[1.0], [0.5]])
    metrics = behaviour.learn(lambda actor, rsample: (feats, actions), lambda f: (rewards, conts), torch.ones(1))
    assert metrics["loss/actor"] == pytest.approx(math.log(2) * (1.9 + 2.0) / 2 - entropy * math.log(2), rel=1e-5)
    assert metrics["loss/critic"] == pytest.approx((1.9**2 + 2.0**2) / 2, rel=1e-5)
    assert metrics["behaviour/return"] == pytest.approx((1.9 + 2.0) / 2, rel=1e-6)
