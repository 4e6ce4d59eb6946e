"""MuZero: the h(x) support transform, the networks' shapes, hand-computed targets, and a smoke run."""

import numpy as np
import pytest
import torch

from worldmodels.config import load_config
from worldmodels.dynamics.muzero import scale_gradient, scale_hidden
from worldmodels.errors import ConfigError, TrainingError
from worldmodels.losses.support import h, h_inverse, scalar_to_support, support_loss, support_to_scalar
from worldmodels.registry import AGENTS, NETWORKS
from worldmodels.spaces import ActSpec, ObsSpec
from worldmodels.train import Trainer


def test_h_transform_round_trips_and_matches_hand_values():
    x = torch.linspace(-5000, 5000, 20001, dtype=torch.float64)
    torch.testing.assert_close(h_inverse(h(x)), x, rtol=1e-9, atol=1e-8)
    assert h(torch.tensor(3.0)).item() == pytest.approx(1.0 + 0.003)  # √4 − 1 + 0.001·3
    assert h(torch.tensor(-3.0)).item() == pytest.approx(-1.003)


def test_support_two_hot_encodes_and_decodes():
    x = h_inverse(torch.tensor([1.25, -2.0, 0.0], dtype=torch.float64))
    probs = scalar_to_support(x, 5)  # bins −5 … 5; h(x) = 1.25 → 0.75 on bin 1, 0.25 on bin 2
    assert probs[0, 6].item() == pytest.approx(0.75) and probs[0, 7].item() == pytest.approx(0.25)
    assert probs[1, 3].item() == pytest.approx(1.0) and probs[2, 5].item() == pytest.approx(1.0)
    torch.testing.assert_close(support_to_scalar(probs.log()), x)
    clipped = scalar_to_support(torch.tensor([1e9, -1e9]), 5)
    assert clipped[0, -1] == 1 and clipped[1, 0] == 1
    # cross-entropy against a two-hot target is minimal at the target's own logits
    logits = torch.randn(3, 11, dtype=torch.float64, requires_grad=True)
    assert (support_loss(probs.clamp(min=1e-12).log(), x) < support_loss(logits, x)).all()


def test_gradient_scaling_and_hidden_scaling():
    x = torch.ones(3, requires_grad=True)
    y = scale_gradient(x * 2, 0.5)
    y.sum().backward()
    assert torch.equal(y, torch.full((3,), 2.0)) and torch.equal(x.grad, torch.ones(3))
    s = scale_hidden(torch.tensor([[1.0, 3.0, 2.0], [5.0, 5.0, 5.0]]))
    assert torch.equal(s[0], torch.tensor([0.0, 1.0, 0.5])) and torch.equal(s[1], torch.zeros(3))


@pytest.mark.parametrize(
    "name,obs_shape,cfg",
    [
        ("muzero_mlp", (4,), {"hidden": 16, "state_dim": 8}),
        ("muzero_resnet", (4, 32, 32), {"channels": 8, "blocks": 1, "value_support": 20, "reward_support": 5}),
        ("muzero_resnet", (32, 32, 3), {"channels": 8, "blocks": 1}),
    ],
)
def test_networks_shapes_and_initial_predictions(name, obs_shape, cfg):
    net = NETWORKS.build(name, cfg, obs_shape=obs_shape, action_dim=3)
    obs = torch.randint(0, 255, (5, *obs_shape), dtype=torch.uint8) if len(obs_shape) > 1 else torch.randn(5, 4)
    s = net.represent(obs)
    assert s.min() >= 0 and s.max() <= 1
    s2, reward = net.dynamics(s, torch.eye(3)[[0, 1, 2, 0, 1]])
    policy, value = net.predict(s2)
    assert s2.shape == s.shape and policy.shape == (5, 3)
    assert reward.shape == (5, 2 * net.cfg.reward_support + 1) and value.shape == (5, 2 * net.cfg.value_support + 1)
    # zero-initialised heads: reward and value start at 0, the policy uniform
    assert support_to_scalar(value).abs().max() < 1e-4 and torch.equal(policy, torch.zeros(5, 3))


def _agent(**cfg):
    cfg = {"unroll_steps": 1, "td_steps": 2, "search": {"num_simulations": 4, "discount": 0.5}, **cfg}
    return AGENTS.build("muzero", cfg, obs_spec=ObsSpec((4,), "float32"), act_spec=ActSpec(True, 2))


def _window(is_first, terminal, reward, values, acted):
    T = len(reward)
    policy = np.zeros((1, T, 2), np.float32)
    policy[0, np.asarray(acted, bool)] = [0.25, 0.75]
    return {
        "is_first": torch.tensor([is_first], dtype=torch.bool),
        "is_terminal": torch.tensor([terminal], dtype=torch.bool),
        "reward": torch.tensor([reward], dtype=torch.float32),
        "search_value": torch.tensor([values], dtype=torch.float32),
        "search_policy": torch.from_numpy(policy),
    }


def _close(x, expected) -> bool:
    return torch.allclose(x, torch.tensor(expected), atol=1e-4)


def test_targets_by_hand():
    """K = 1, n = 2, γ = 0.5; row j+1 holds the search made at row j. Untrained values are 0 (to 1e-4)."""
    agent = _agent()
    obs = torch.zeros(1, 5, 4)
    # no episode end: z_0 = r1 + γ r2 + γ² ν2 = 1 + 1 + 0.25·30, z_1 = r2 + γ r3 + γ² ν3 = 2 + 1.5 + 0.25·40
    t = agent._targets(_window([1, 0, 0, 0, 0], [0] * 5, [0, 1, 2, 3, 4], [0, 10, 20, 30, 40], [0, 1, 1, 1, 1]), obs)
    assert _close(t["value"], [[9.5, 13.5]]) and t["reward"].tolist() == [[0.0, 1.0]]
    assert t["mask"].tolist() == [[1, 1]] and t["policy_mask"].tolist() == [[1, 1]]
    assert t["policy"][0, :, 1].tolist() == [0.75, 0.75]
    # terminal at row 2: no bootstrap past it, z_0 = 1 + 0.5·2, z_1 = 2; a new episode starts at row 3
    t = agent._targets(
        _window([1, 0, 0, 1, 0], [0, 0, 1, 0, 0], [0, 1, 2, 0, 5], [0, 10, 20, 0, 40], [0, 1, 1, 0, 1]), obs
    )
    assert _close(t["value"], [[2.0, 2.0]]) and t["mask"].tolist() == [[1, 1]]
    # terminal at row 1: step 1 is the terminal state itself (reward 1, value 0, no policy)
    t = agent._targets(
        _window([1, 0, 1, 0, 0], [0, 1, 0, 0, 0], [0, 1, 7, 7, 7], [0, 10, 0, 7, 7], [0, 1, 0, 1, 1]), obs
    )
    assert _close(t["value"], [[1.0, 0.0]]) and t["reward"].tolist() == [[0.0, 1.0]]
    assert t["policy_mask"].tolist() == [[1, 0]] and t["observed"].tolist() == [[1, 1]]  # o_1 is the last one
    # time limit after row 1 (row 2 starts a new episode, no terminal): step 0 bootstraps from the
    # network's value of row 1 (0 untrained); step 1 (row 1, still in the episode) bootstraps from itself
    t = agent._targets(_window([1, 0, 1, 0, 0], [0] * 5, [0, 1, 7, 7, 7], [0, 10, 0, 7, 7], [0, 1, 0, 1, 1]), obs)
    assert _close(t["value"], [[1.0, 0.0]]) and t["mask"].tolist() == [[1, 1]]
    assert t["policy_mask"].tolist() == [[1, 0]]
    # a window starting in the last row of an episode cut by the time limit: nothing after it is trained
    t = agent._targets(_window([0, 1, 0, 0, 0], [0] * 5, [0, 1, 1, 1, 1], [0, 0, 5, 5, 5], [0, 0, 1, 1, 1]), obs)
    assert t["mask"].tolist() == [[1, 0]] and t["policy_mask"].tolist() == [[0, 0]]
    assert t["observed"].tolist() == [[1, 0]]  # row 1 is another episode's first observation


def test_consistency_teaches_the_state_where_rewards_and_policies_are_the_same_everywhere():
    """EfficientZero's consistency: off by default (no extra parameters, so same-seed runs are unchanged);
    on, it is the only loss with a gradient to give when rewards are constant and the visits uniform, and
    the unrolled states learn to match the states of the observations they stand for."""
    assert _agent().projection is None
    torch.manual_seed(0)
    agent = _agent(unroll_steps=3, td_steps=1, consistency_weight=2.0, consistency_dim=32)
    T = 6
    gen = torch.Generator().manual_seed(1)
    batch = {
        **_window([1] + [0] * (T - 1), [0] * T, [-1.0] * T, [-5.0] * T, [0] + [1] * (T - 1)),
        "obs": torch.randn(8, T, 4, generator=gen).cumsum(1),  # a drift the action does not tell
        "action": torch.nn.functional.one_hot(torch.randint(0, 2, (8, T), generator=gen), 2).float(),
    }
    batch = {k: v.expand(8, *v.shape[1:]) if len(v) == 1 else v for k, v in batch.items()}
    batch["search_policy"] = torch.full_like(batch["search_policy"], 0.5)
    losses = [agent.update(batch)["model/consistency"].item() for _ in range(150)]
    assert min(losses) >= -1.0 and max(losses) <= 1.0
    assert losses[-1] < losses[0] - 0.2, losses[::30]


def test_clear_errors():
    with pytest.raises(ConfigError, match="discrete"):
        AGENTS.build("muzero", {}, obs_spec=ObsSpec((3,), "float32"), act_spec=ActSpec(False, 1))
    with pytest.raises(ConfigError, match="one more entry"):
        _agent(temperatures=[1.0], temperature_updates=[10])
    with pytest.raises(ConfigError, match="hold_probabilities needs one entry, or one per entry"):
        _agent(hold_probabilities=[1.0, 0.5])
    agent = _agent()
    batch = {**_window([1, 0, 0], [0] * 3, [0, 1, 2], [0, 1, 2], [0, 1, 1]), "obs": torch.zeros(1, 3, 4)}
    batch["action"] = torch.zeros(1, 3, 2)
    with pytest.raises(ConfigError, match="seq_len"):
        agent.update(batch)


def test_a_nan_loss_is_reported_before_its_priorities_reach_the_replay(tmp_path):
    """The priorities come to the host after every update; NaN ones mean a NaN loss, reported as such."""
    run = ["env.num_envs=2", "train.steps=120", "train.batch_size=4", "train.seq_len=7", "train.ratio=28"]
    trainer = Trainer(load_config("muzero", [*TINY_MUZERO, *run, "train.eval_every=0"]), tmp_path / "run")
    original = trainer.agent.net.represent

    def poisoned(obs):  # in updates only: acting and the targets run without gradients
        out = original(obs)
        return out * float("nan") if torch.is_grad_enabled() else out

    trainer.agent.net.represent = poisoned
    with pytest.raises(TrainingError, match="^the model loss became nan"):
        trainer.run()
    trainer.close()
    assert trainer.agent.updates == 1


def test_presets_parse():
    assert load_config("muzero", []).agent.name == "muzero"
    atari = load_config("muzero_atari", [])
    assert atari.agent.cfg.network.name == "muzero_resnet"


TINY_MUZERO = [
    "agent.network.hidden=16",
    "agent.network.state_dim=8",
    "agent.search.num_simulations=4",
    "agent.unroll_steps=2",
    "agent.td_steps=3",
    "agent.reanalyse=0.5",
]


def test_smoke_run_trains_and_stores_its_search_policies(tmp_path):
    cfg = load_config(
        "muzero",
        [
            *TINY_MUZERO,
            "env.num_envs=2",
            "train.steps=120",
            "train.batch_size=4",
            "train.seq_len=7",
            "train.ratio=28",
            "train.eval_every=0",
            "train.eval_episodes=1",
            "train.checkpoint_every=0",
        ],
    )
    trainer = Trainer(cfg, tmp_path / "run")
    summary = trainer.run()
    trainer.close()
    assert summary["updates"] > 50 and np.isfinite(summary["eval/return"])
    assert (
        trainer.phases[0].collector.replay.data["search_policy"].sum() > 0
    )  # search policies were stored beside the actions


def test_muzero_self_play_holds_actions_through_act_and_does_not_by_default():
    """`agents/holds.py` is tested on its own; here MuZero's `act` carries the holds in its state."""
    cfg = load_config("muzero", [*TINY_MUZERO, "agent.hold_probabilities=[1.0]", "agent.hold_max=10"]).agent.cfg
    agent = AGENTS.build("muzero", cfg, obs_spec=ObsSpec((4,), "float32"), act_spec=ActSpec(True, 5))
    torch.manual_seed(0)
    off = load_config("muzero", TINY_MUZERO).agent.cfg
    assert off.hold_probabilities == [0.0]  # the paper's self-play is the default

    # through `act`, as the collector calls it: the state it returns carries the holds to the next step (the
    # gate is open: an untrained network's prior is near uniform, whatever the visits of its search)
    obs, state, taken = torch.zeros(4, 4), None, []
    for t in range(60):
        acted = agent.act(obs, torch.full((4,), t == 0), state, explore=True)
        state = acted.state
        taken.append(acted.action.argmax(-1))
    changes = (torch.stack(taken).diff(dim=0) != 0).float().mean()
    assert changes < 0.5  # holds of ~2.9 steps on average, 4 in 5 new ones a change: ~0.27 a step; uniform: 0.8
