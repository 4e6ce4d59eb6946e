"""Representation learners: the anti-collapse terms and collapse monitors against hand values, the one EMA
target update shared by the learners, Dreamer's critic and TD-MPC2, every learner's shapes and metrics, and
the collapse of JEPA on TwoRoom frames with its anti-collapse term off (and not with it on), and the
predictions that stop at episode starts."""

import math

import numpy as np
import pytest
import torch

from tests.test_tdmpc2 import agent as tdmpc2_agent
from worldmodels.agents import behaviour, tdmpc2
from worldmodels.config import EnvConfig, load_all
from worldmodels.envs import make_env
from worldmodels.losses.collapse import (
    effective_rank,
    embedding_std,
    random_directions,
    sigreg,
    vicreg_covariance,
    vicreg_variance,
)
from worldmodels.nn import ema_update
from worldmodels.registry import REPRESENTATION_LEARNERS
from worldmodels.representations import embedding as embedding_module
from worldmodels.schema import parse
from worldmodels.spaces import ActSpec, ObsSpec

load_all()

IMAGE, VECTOR = ObsSpec((16, 16, 3), "uint8"), ObsSpec((5,), "float32")
BOTH = ObsSpec(parts=(("image", IMAGE), ("state", VECTOR)))
SMALL = {"encoder": {"image": {"depth": 4}, "vector": {"hidden": 16, "layers": 1}}, "embed_dim": 8}


def test_vicreg_terms_match_hand_values():
    """z = [[0, 0], [2, 0]]: Var = (2, 0), std = (√2.0001, 0.01); variance = (0 + 0.99) / 2.
    z = [[1, 2], [-1, -2], [0, 0]]: mean 0, C = [[1, 2], [2, 4]]; covariance = (2² + 2²) / 2."""
    assert vicreg_variance(torch.tensor([[0.0, 0.0], [2.0, 0.0]])) == pytest.approx(0.495)
    assert vicreg_variance(torch.tensor([[0.0, 0.0], [2.0, 0.0]]), gamma=2.0) == pytest.approx(
        (2 - math.sqrt(2.0001) + 2 - 0.01) / 2
    )
    assert vicreg_covariance(torch.tensor([[1.0, 2.0], [-1.0, -2.0], [0.0, 0.0]])) == pytest.approx(4.0)


def test_sigreg_matches_a_hand_value_and_prefers_a_gaussian():
    """z = (1, −1) on the direction 1, knots (0, 1): φ_N(t) = cos t, so the error is 0 at t = 0 and
    (cos 1 − e^{−1/2})² at t = 1; weighted by e^{−1/2}, trapezoid (0 + that) / 2, doubled, times N = 2."""
    z, direction, knots = torch.tensor([[1.0], [-1.0]]), torch.ones(1, 1), torch.tensor([0.0, 1.0])
    hand = 2 * (math.cos(1) - math.exp(-0.5)) ** 2 * math.exp(-0.5)
    assert sigreg(z, direction, knots) == pytest.approx(hand, rel=1e-5)
    torch.manual_seed(0)
    knots, directions = torch.linspace(0, 3, 17), random_directions(8, 64)
    assert directions.norm(dim=0) == pytest.approx(torch.ones(64))
    gaussian = sigreg(torch.randn(512, 8), directions, knots)
    collapsed = sigreg(0.01 * torch.randn(512, 8) + 1.0, directions, knots)
    assert gaussian < 2.0 < 100 * 2.0 < collapsed


def test_collapse_monitors_match_hand_values():
    assert embedding_std(torch.tensor([[0.0, 1.0], [2.0, 1.0]])) == pytest.approx(math.sqrt(2) / 2)
    assert effective_rank(3 * torch.eye(2)) == pytest.approx(2.0, rel=1e-5)
    assert effective_rank(torch.tensor([[1.0, 0.0], [1.0, 0.0]])) == pytest.approx(1.0, rel=1e-4)
    entropy = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))  # singular values (2, 1)
    assert effective_rank(torch.tensor([[2.0, 0.0], [0.0, 1.0]])) == pytest.approx(math.exp(entropy), rel=1e-5)


def test_ema_update_moves_the_target_by_the_rate():
    torch.manual_seed(0)
    online, target = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    before = [p.clone() for p in target.parameters()]
    ema_update(target, online, 0.25)
    for slow, old, fast in zip(target.parameters(), before, online.parameters()):
        assert torch.allclose(slow, old + 0.25 * (fast - old))
    ema_update(target, online, 1.0)
    assert all(torch.equal(s, f) for s, f in zip(target.parameters(), online.parameters()))


def test_tdmpc2_targets_the_dreamer_slow_critic_and_jepa_s_target_move_by_the_one_ema_update(monkeypatch):
    calls = []

    def spy(target, online, rate):
        calls.append((target, online, rate))
        ema_update(target, online, rate)

    for module in (behaviour, tdmpc2):
        monkeypatch.setattr(module, "ema_update", spy)

    td = tdmpc2_agent()
    B, T = 4, td.cfg.horizon + 1
    no = torch.zeros(B, T, dtype=torch.bool)
    td.update({"obs": torch.randn(B, T, 3), "action": torch.rand(B, T, 1), "reward": torch.randn(B, T),
               "is_terminal": no, "is_first": no})  # fmt: skip
    assert calls == [(td.target_qs, td.qs, td.cfg.tau)]

    cfg = parse(behaviour.BehaviourConfig, {"critic_ema": 0.9})
    actor_critic = behaviour.ActorCritic(cfg, feat_dim=3, act_spec=ActSpec(True, 2))
    feats, actions = torch.randn(3, 1, 3), torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])  # [H+1, N, F], [H, N, A]
    actor_critic.learn(lambda actor, rsample: (feats, actions), lambda f: (torch.ones(2, 1),) * 2, torch.ones(1))
    assert calls[1:] == [(actor_critic.slow_critic, actor_critic.critic, pytest.approx(0.1))]

    monkeypatch.setattr(embedding_module, "ema_update", spy)  # where the learners with a target call it
    jepa = REPRESENTATION_LEARNERS.build("jepa", SMALL | {"tau": 0.3}, obs_spec=VECTOR, action_dim=2)
    jepa.update_target()
    assert calls[2:] == [(jepa.target, jepa.encoder, 0.3)]


def _obs(spec: ObsSpec, *lead: int):
    if spec.parts:
        return {key: _obs(part, *lead) for key, part in spec.parts}
    if spec.is_image:
        return torch.randint(0, 256, (*lead, *spec.shape), dtype=torch.uint8)
    return torch.randn(*lead, *spec.shape)


@pytest.mark.parametrize("spec", [IMAGE, VECTOR, BOTH], ids=["image", "vector", "dict"])
@pytest.mark.parametrize("name", REPRESENTATION_LEARNERS.names())
def test_every_learner_encodes_learns_and_logs_its_collapse_monitors(name, spec):
    torch.manual_seed(0)
    learner = REPRESENTATION_LEARNERS.build(name, SMALL, obs_spec=spec, action_dim=2)
    assert learner.embed_dim == 8 and learner.encode(_obs(spec, 3, 4)).shape == (3, 4, 8)
    loss, metrics = learner.loss(_obs(spec, 3, 4), torch.rand(3, 4, 2) * 2 - 1)
    assert loss.shape == () and torch.isfinite(loss)
    assert {"repr/loss", "repr/embed_std", "repr/effective_rank"} <= set(metrics)
    assert all(not v.requires_grad for v in metrics.values())
    loss.backward()
    trainable = [p for p in learner.parameters() if p.requires_grad]
    assert all(p.grad is not None for p in trainable)
    frozen = [p for p in learner.parameters() if not p.requires_grad]
    assert (name == "vae") == (not frozen)  # jepa and contrastive keep an EMA target encoder


def test_contrastive_embeddings_lie_on_the_sphere_of_radius_root_d():
    # InfoNCE leaves the norm free; what an RSSM or a planner reads is scaled to about 1 per dimension
    learner = REPRESENTATION_LEARNERS.build("contrastive", SMALL, obs_spec=IMAGE, action_dim=2)
    norms = learner.encode(_obs(IMAGE, 3, 4)).norm(dim=-1)
    assert torch.allclose(norms, torch.full_like(norms, 8**0.5))


def test_jepa_regulariser_is_switchable_and_rollout_chains_the_predictor():
    obs, action = _obs(VECTOR, 6, 3), torch.rand(6, 3, 2)
    seen = {}
    for regulariser in ("vicreg", "sigreg", "none"):
        torch.manual_seed(0)
        jepa = REPRESENTATION_LEARNERS.build(
            "jepa", SMALL | {"regulariser": regulariser}, obs_spec=VECTOR, action_dim=2
        )
        seen[regulariser] = set(jepa.loss(obs, action)[1])
    assert {"repr/variance", "repr/covariance"} <= seen["vicreg"] and "repr/sigreg" in seen["sigreg"]
    assert not seen["none"] & {"repr/variance", "repr/sigreg"}
    z = jepa.encode(obs[:, 0])
    rolled = jepa.rollout(z, action[:, 1:])
    assert torch.allclose(rolled[:, 1], jepa.predict(jepa.predict(z, action[:, 1]), action[:, 2]))


@pytest.fixture(scope="module")
def two_room_windows():
    """8 random-walk episodes of 51 steps of 32×32 TwoRoom frames and their actions."""
    env = make_env(EnvConfig(id="wm/TwoRoom-v0", obs="pixels", size=(32, 32)))
    rng = np.random.default_rng(0)
    frames, actions = [], []
    for episode in range(8):
        frame, _ = env.reset(seed=episode)
        steps, taken = [frame], [np.zeros(2, np.float32)]
        for _ in range(50):
            taken.append(rng.uniform(-1, 1, 2).astype(np.float32))
            steps.append(env.step(taken[-1])[0])
        frames.append(np.stack(steps))
        actions.append(np.stack(taken))
    return torch.as_tensor(np.stack(frames)), torch.as_tensor(np.stack(actions))


@pytest.mark.parametrize("regulariser", ["none", "vicreg", "sigreg"])
def test_jepa_collapses_without_its_anti_collapse_term_and_not_with_it(regulariser, two_room_windows):
    """120 updates on windows of 4 steps: without a regulariser the embeddings shrink to nearly one point
    (here std 0.018, effective rank 2.4 of 16); VICReg keeps them spread (0.93, 9.9), and SIGReg (0.78, 11.1)."""
    frames, actions = two_room_windows
    torch.manual_seed(0)
    cfg = {"encoder": {"image": {"depth": 4}}, "embed_dim": 16, "predictor_hidden": 32, "regulariser": regulariser}
    jepa = REPRESENTATION_LEARNERS.build(
        "jepa", cfg | {"sigreg_directions": 64}, obs_spec=ObsSpec((32, 32, 3), "uint8"), action_dim=2
    )
    optimiser = torch.optim.Adam([p for p in jepa.parameters() if p.requires_grad], lr=1e-3)
    for _ in range(120):
        episode, start = torch.randint(0, 8, (16, 1)), torch.randint(0, 48, (16, 1))
        steps = start + torch.arange(4)
        loss, metrics = jepa.loss(frames[episode, steps], actions[episode, steps])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        jepa.update_target()
    with torch.no_grad():
        z = jepa.encode(frames[:, ::5].flatten(0, 1))
    std, rank = embedding_std(z), effective_rank(z)
    assert metrics["repr/embed_std"] == pytest.approx(float(std), rel=0.5)
    if regulariser == "none":
        assert std < 0.05 and rank < 3.5
    else:
        assert std > 0.4 and rank > 6.0


@pytest.mark.parametrize("name", ["jepa", "contrastive"])
def test_no_prediction_crosses_an_episode_start(name):
    """A new episode at step 3 of each window: the action into it (the replay stores zeros there) changes
    the loss only when nothing marks the seam."""
    obs, action = _obs(VECTOR, 4, 6), torch.rand(4, 6, 2)
    other = action.clone()
    other[:, 3] = -other[:, 3]
    is_first = torch.zeros(4, 6, dtype=torch.bool)
    is_first[:, 3] = True
    torch.manual_seed(0)
    learner = REPRESENTATION_LEARNERS.build(name, SMALL, obs_spec=VECTOR, action_dim=2)

    def loss(taken, first):
        torch.manual_seed(1)  # the same random views and directions
        return learner.loss(obs, taken, first)[0]

    assert loss(action, is_first) == loss(other, is_first)
    assert loss(action, None) != loss(other, None)


def test_jepa_predictions_average_over_its_restarted_rollouts():
    """Without a regulariser, L_pred of a window restarted at an episode start (step 3 of 7) or every 3
    steps is the mean over every prediction of the pieces' rollouts, here each piece's loss by its length."""
    torch.manual_seed(0)
    jepa = REPRESENTATION_LEARNERS.build("jepa", SMALL | {"regulariser": "none"}, obs_spec=VECTOR, action_dim=2)
    obs, action = _obs(VECTOR, 4, 7), torch.rand(4, 7, 2)
    first = torch.zeros(4, 7, dtype=torch.bool)
    first[:, 3] = True

    def loss(steps: slice, is_first: torch.Tensor | None = None) -> float:
        with torch.no_grad():
            return float(jepa.loss(obs[:, steps], action[:, steps], is_first)[0])

    piece = [loss(slice(0, 3)), loss(slice(3, 7)), loss(slice(0, 4))]
    assert loss(slice(0, 7), first) == pytest.approx((2 * piece[0] + 3 * piece[1]) / 5, rel=1e-5)
    jepa.cfg.horizon = 3  # rollouts 0 → 1, 2, 3 and 3 → 4, 5, 6
    assert loss(slice(0, 7)) == pytest.approx((piece[2] + piece[1]) / 2, rel=1e-5)
