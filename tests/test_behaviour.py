"""The actor and critic losses of `ActorCritic.learn` against values computed by hand on a 2-step dream; the
critic's replay loss by hand, alone, and in every agent that learns behaviour in imagination."""

import json
import math

import pytest
import torch

from tests.conftest import TINY
from tests.test_dreamer import TINY_DREAMER
from tests.test_tdmpc2 import TINY as TINY_TDMPC2
from worldmodels.agents.behaviour import ActorCritic, BehaviourConfig, Replayed
from worldmodels.config import load_all, load_config
from worldmodels.data.windows import Ends
from worldmodels.schema import parse
from worldmodels.spaces import ActSpec, ObsSpec
from worldmodels.train import Trainer
from worldmodels.train.loop import build_agent

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


def test_replay_critic_regresses_lambda_returns_of_the_replayed_window_by_hand():
    """One window of 4 steps: rewards on arriving (0, 1, 1, 5), the third state terminal, a new episode at
    the fourth; γ = 0.5, λ = 1, a critic (and bootstrap) predicting 0:
        R_0 = r_1 + γ R_1 = 1 + 0.5 · 1 = 1.5,   R_1 = r_2 = 1 (the state it reaches is terminal)
        state 2 is terminal and state 3 is the window's last: no targets.  loss = (1.5² + 1²) / 2"""
    cfg = parse(
        BehaviourConfig,
        {"gamma": 0.5, "lambda_return": 1.0, "use_ema_critic": False, "critic": {"name": "mlp", "use_symlog": False}},
    )
    behaviour = ActorCritic(cfg, feat_dim=3, act_spec=ActSpec(True, 2))
    replayed = Replayed(
        features=torch.randn(1, 4, 3),
        action=torch.zeros(1, 4, 2),
        reward=torch.tensor([[0.0, 1.0, 1.0, 5.0]]),
        terminal=torch.tensor([[False, False, True, False]]),
        first=torch.tensor([[True, False, False, True]]),
    )
    loss = behaviour.replay_loss(replayed, behaviour.critic)
    assert loss.item() == pytest.approx((1.5**2 + 1.0**2) / 2, rel=1e-5)


def test_replay_critic_alone_teaches_values_that_fall_towards_a_termination():
    """Episodes of 8 steps, reward 1 per step, each ending in a termination, laid end to end in windows that
    cross episodes; a state's features say how many steps are left. Trained by the replay loss alone, the
    two-hot critic's value falls with the steps left: the termination reached it from real data."""
    cfg = parse(BehaviourConfig, {"gamma": 0.9, "lambda_return": 0.95, "critic": {"name": "twohot", "hidden": 32}})
    torch.manual_seed(0)
    behaviour = ActorCritic(cfg, feat_dim=8, act_spec=ActSpec(True, 2))
    optim = torch.optim.Adam(behaviour.critic.parameters(), 3e-3)
    steps = torch.arange(64) % 8  # 8 episodes per window
    for _ in range(300):
        shift = torch.randint(0, 8, (16, 1))
        t = (steps[None] + shift) % 8  # [B, T] step within its episode
        replayed = Replayed(
            features=torch.nn.functional.one_hot(7 - t, 8).float(),
            action=torch.zeros(16, 64, 2),
            reward=(t > 0).float(),
            terminal=t == 7,
            first=t == 0,
        )
        loss = behaviour.replay_loss(replayed, behaviour.critic)
        optim.zero_grad()
        loss.backward()
        optim.step()
    values = behaviour.critic(torch.eye(8)).mean  # by steps left, 0..7
    truth = torch.tensor([(1 - 0.9**k) / (1 - 0.9) for k in range(8)])
    assert (values[2:].diff() > 0).all(), values  # more steps left, more value
    assert torch.allclose(values[1:], truth[1:], atol=0.3), (values, truth)


@pytest.mark.parametrize("preset, tiny", [("dreamerv3", TINY_DREAMER), ("latent_mlp", TINY)])
def test_replay_critic_trains_the_critic_on_the_replayed_windows(tmp_path, preset, tiny):
    """Every agent that learns behaviour in imagination honours `agent.replay_critic`: the behaviour update
    logs the critic's replay loss, finite, whenever it logs the critic's."""
    overrides = [*tiny, "agent.replay_critic=0.3", "env.id=CartPole-v1", "env.max_episode_steps=40"]
    overrides += ["train.steps=120", "train.prefill=40", "train.batch_size=2", "train.seq_len=8", "train.ratio=16"]
    trainer = Trainer(load_config(preset, [*overrides, "train.eval_every=0", "train.threads=1"]), tmp_path)
    trainer.run()
    trainer.close()
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    logged = [m["loss/critic_replay"] for m in lines if "loss/critic" in m]
    assert logged and all(math.isfinite(v) and v > 0 for v in logged)


@pytest.mark.parametrize(
    "preset, tiny", [("dreamerv3", TINY_DREAMER), ("latent_mlp", TINY), ("tdmpc2", TINY_TDMPC2), ("pets", ())]
)
def test_terminal_windows_make_a_share_of_the_world_models_batches_end_at_terminations(preset, tiny):
    for share, ends in ((0.5, Ends(0.5)), (0.0, None)):  # 0: every window alike
        cfg = load_config(preset, [*tiny, f"agent.terminal_windows={share}"])
        agent = build_agent(cfg, ObsSpec((4,), "float32"), ActSpec(preset != "tdmpc2", 2))
        sample = agent.phases(cfg.train)[0].streams[0].sample
        assert sample.ends == ends
        assert sample.seq_len == (cfg.agent.cfg.horizon + 1 if preset == "tdmpc2" else cfg.train.seq_len)


@pytest.mark.parametrize("eval_policy", ["mode", "sample"])
def test_evaluation_acts_by_the_actors_mode_or_by_samples_of_it(eval_policy):
    """`explore=False` gives the continuous actor's mode (the same action every call) with `mode`, and draws
    from the actor, as collection does, with `sample`."""
    cfg = parse(BehaviourConfig, {"eval_policy": eval_policy})
    behaviour = ActorCritic(cfg, feat_dim=3, act_spec=ActSpec(False, 2))
    features = torch.randn(64, 3)
    none = torch.zeros(64, dtype=torch.bool)
    (first, _), (second, _) = (behaviour.act(features, False, none, None) for _ in range(2))
    mode = behaviour.actor(features).mode
    if eval_policy == "mode":
        assert torch.equal(first, mode) and torch.equal(second, mode)
    else:
        assert not torch.equal(first, second) and not torch.equal(first, mode)
        assert first.abs().max() <= 1.0


def test_latent_mlp_and_dreamerv3_evaluate_by_sampling_and_dreamerv1_by_the_mode():
    policies = {p: load_config(p).agent.cfg.eval_policy for p in ("latent_mlp", "dreamerv3", "dreamerv1", "dreamerv2")}
    assert policies == {"latent_mlp": "sample", "dreamerv3": "sample", "dreamerv1": "mode", "dreamerv2": "mode"}


def collected(preset: str, act_spec: ActSpec, envs: int, steps: int, *overrides: str) -> torch.Tensor:
    """The actions `[steps, envs, A]` an untrained tiny `preset` collects through `act` from a fixed
    observation, each step's state carried to the next."""
    tiny = TINY_DREAMER if preset == "dreamerv3" else TINY
    agent = build_agent(load_config(preset, [*tiny, *overrides]), ObsSpec((4,), "float32"), act_spec)
    torch.manual_seed(0)
    state, taken = None, []
    for t in range(steps):
        acted = agent.act(torch.zeros(envs, 4), torch.full((envs,), t == 0), state, explore=True)
        state = acted.state
        taken.append(acted.action)
    return torch.stack(taken)


@pytest.mark.parametrize("preset, default", [("latent_mlp", 0.0), ("dreamerv3", 1.0)])
def test_held_exploration_reaches_collection_through_act(preset, default):
    """With `hold_probability` 1 an untrained (undecided) actor's collection actions are held over steps, the
    holds carried in the state `act` returns; off, the actor's own samples change action ~2 steps in 3.
    DreamerV3 holds by default, `latent_mlp` does not."""

    def changes(*overrides: str) -> float:
        taken = collected(preset, ActSpec(True, 3), 4, 60, *overrides).argmax(-1)
        return (taken.diff(dim=0) != 0).float().mean().item()

    assert load_config(preset).agent.cfg.hold_probability == default
    assert changes("agent.hold_probability=0") > 0.5
    assert changes("agent.hold_probability=1.0", "agent.hold_max=10") < 0.35


def test_held_exploration_leaves_a_continuous_actor_to_its_own_noise():
    """With `hold_probability` 1, a continuous actor's collection actions are its own samples."""
    behaviour = ActorCritic(parse(BehaviourConfig, {"hold_probability": 1.0}), feat_dim=3, act_spec=ActSpec(False, 2))
    features = torch.randn(64, 3)
    torch.manual_seed(0)
    action, holds = behaviour.act(features, True, torch.ones(64, dtype=torch.bool), None)
    torch.manual_seed(0)
    assert holds is None and torch.equal(action, behaviour.actor(features).sample())


@pytest.mark.parametrize("preset", ["latent_mlp", "dreamerv3"])
def test_coloured_noise_reaches_a_continuous_actor_s_collection_through_act(preset):
    """With `noise_colour` 1 a continuous actor's collection actions are its distribution's samples drawn
    with pink noise carried in the state `act` returns: consecutive actions move together, where white
    noise (the default) leaves them nearly independent around the same mode."""

    def lag_one(*overrides: str) -> float:
        x = collected(preset, ActSpec(False, 1), 64, 200, *overrides)[..., 0].T  # [64 environments, 200 steps]
        x = x - x.mean(1, keepdim=True)
        return ((x[:, 1:] * x[:, :-1]).mean() / x.pow(2).mean()).item()

    assert load_config(preset).agent.cfg.noise_colour == 0.0
    assert abs(lag_one()) < 0.1 and lag_one("agent.noise_colour=1.0") > 0.5
