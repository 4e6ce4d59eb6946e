"""RSSM shapes for both latent types, KL weights of each Dreamer version, gradient isolation between
the world model and the actor, a smoke run of every Dreamer preset, and the decoder-free Dreamer (a
representation learner training the encoder): no decoder, its config errors, exact resume."""

import warnings

import pytest
import torch

from tests.conftest import assert_resumes_exactly
from worldmodels.agents.base import frozen
from worldmodels.agents.dreamer import KLConfig
from worldmodels.config import load_config
from worldmodels.decoders.cnn import CNNDecoder
from worldmodels.decoders.prediction import squared_error
from worldmodels.errors import ConfigError
from worldmodels.losses.twohot import KERNELS
from worldmodels.registry import RSSMS
from worldmodels.spaces import ActSpec, ObsSpec
from worldmodels.train import Trainer
from worldmodels.train.loop import build_agent

B, T, E, A = 3, 6, 10, 2


@pytest.mark.parametrize("classes, stoch_dim", [(0, 8), (4, 32)], ids=["gaussian", "categorical"])
def test_rssm_shapes(classes, stoch_dim):
    rssm = RSSMS.build(
        "rssm",
        {"deter": 16, "hidden": 12, "stoch": 8, "classes": classes, "backbone": {"blocks": 4}},
        embed_dim=E,
        action_dim=A,
    )
    is_first = torch.zeros(B, T, dtype=torch.bool)
    is_first[1, 3] = True
    post, prior = rssm.observe(torch.randn(B, T, E), torch.randn(B, T, A), is_first)
    for state in (post, prior):
        assert state["deter"].shape == (B, T, 16) and state["stoch"].shape == (B, T, stoch_dim)
        assert rssm.features(state).shape == (B, T, 16 + stoch_dim) == (B, T, rssm.feat_dim)
    if classes:
        assert post["logits"].shape == (B, T, 8, classes)
        assert set(post["stoch"].unique().tolist()) <= {0.0, 1.0}  # one-hot samples
        assert torch.allclose(post["stoch"].view(B, T, 8, classes).sum(-1), torch.ones(B, T, 8))
    else:
        assert post["std"].min() >= 0.1  # min std
    start = {k: v[:, -1] for k, v in post.items()}
    feats, actions = rssm.imagine(start, lambda f: torch.distributions.Normal(f[..., :A], 1.0), 5, rsample=True)
    assert feats.shape == (6, B, rssm.feat_dim) and actions.shape == (5, B, A)


def test_compiled_rssm_steps_match_the_eager_ones():
    """`compile: true` runs the same step: equal deterministic states, logits and gradients."""
    torch.manual_seed(0)
    rssm = RSSMS.build(
        "rssm",
        {"deter": 16, "hidden": 12, "stoch": 4, "classes": 3, "backbone": {"blocks": 2}},
        embed_dim=E,
        action_dim=A,
    )
    state = {k: v.detach() for k, v in rssm.initial(B).items()}
    action, embed = torch.randn(B, A), torch.randn(B, E)
    eager = rssm.obs_step(state, action, embed, torch.zeros(B, dtype=torch.bool))
    eager_grad = torch.autograd.grad(eager[0]["logits"].sum(), rssm.post_net[1].weight)
    rssm.compile_steps()
    compiled = rssm.obs_step(state, action, embed, torch.zeros(B, dtype=torch.bool))
    compiled_grad = torch.autograd.grad(compiled[0]["logits"].sum(), rssm.post_net[1].weight)
    for a, b in zip(eager, compiled):
        assert torch.allclose(a["deter"], b["deter"], atol=1e-5) and torch.allclose(a["logits"], b["logits"], atol=1e-5)
    assert torch.allclose(eager_grad[0], compiled_grad[0], atol=1e-5)
    agent = build_agent(load_config("dreamerv3", ["agent.compile=true"]), ObsSpec((4,), "float32"), ActSpec(True, 2))
    assert agent.rssm._kernels["img"] is not RSSMS.build("rssm", {}, embed_dim=E, action_dim=A)._kernels["img"]


def test_a_compiled_update_on_frames_matches_the_eager_one():
    """`compile: true` also compiles the two-hot losses and means and the frame encoder and decoder: one
    update from the same weights on the same batch gives the same losses and the same weights."""
    obs, act = ObsSpec((16, 16, 3), "uint8"), ActSpec(True, 2)
    B, T = 2, 5
    batch = {
        "obs": torch.randint(0, 256, (B, T, 16, 16, 3), dtype=torch.uint8),
        "action": torch.nn.functional.one_hot(torch.randint(2, (B, T)), 2).float(),
        "reward": torch.randn(B, T),
        "is_first": torch.zeros(B, T, dtype=torch.bool),
        "is_terminal": torch.zeros(B, T, dtype=torch.bool),
    }
    runs = []
    for compiled in (False, True):
        torch.manual_seed(0)
        agent = build_agent(load_config("dreamerv3", [*TINY_DREAMER, f"agent.compile={compiled}"]), obs, act)
        torch.manual_seed(1)
        metrics = {**agent.update(batch), **agent.learn_behaviour(batch)}
        runs.append((metrics, agent.state_dict()))
    assert agent.reward.kernels is not KERNELS and agent.behaviour.critic.kernels is not KERNELS
    assert next(m for m in agent.decoder.modules() if isinstance(m, CNNDecoder)).loss_kernel is not squared_error
    (eager, eager_weights), (compiled, compiled_weights) = runs
    for key in ("world_model/recon", "world_model/reward", "loss/critic", "loss/actor"):
        assert torch.allclose(torch.as_tensor(eager[key]), torch.as_tensor(compiled[key]), rtol=1e-4, atol=1e-5), key
    for key, weight in eager_weights.items():
        assert torch.allclose(weight, compiled_weights[key], atol=1e-5), key


def test_rssm_resets_at_episode_starts():
    """A state that starts an episode does not depend on what came before it."""
    rssm = RSSMS.build("rssm", {"deter": 16, "hidden": 12, "stoch": 4, "classes": 0}, embed_dim=E, action_dim=A)
    embed, action = torch.randn(1, 4, E), torch.randn(1, 4, A)
    is_first = torch.tensor([[True, False, True, False]])
    torch.manual_seed(0)
    post, _ = rssm.observe(embed, action, is_first)
    other = embed.clone()
    other[:, :2] = torch.randn(1, 2, E)  # a different previous episode
    torch.manual_seed(0)
    post_other, _ = rssm.observe(other, action, is_first)
    assert torch.allclose(post["deter"][:, 2:], post_other["deter"][:, 2:])
    assert not torch.allclose(post["deter"][:, 1], post_other["deter"][:, 1])


def test_kl_weights_of_each_version():
    assert KLConfig(dyn_scale=0.5, rep_scale=0.1).weights() == (0.5, 0.1)  # V3
    dyn, rep = KLConfig(balance=0.8, scale=1.0).weights()  # V2: α = 0.8
    assert (dyn, rep) == pytest.approx((0.8, 0.2))
    assert KLConfig(balance=0.5, scale=1.0, free_bits=3.0).weights() == (0.5, 0.5)  # V1: one plain KL


def _batch(obs_dim=4):
    batch = {
        "obs": torch.randn(2, 8, obs_dim),
        "action": torch.nn.functional.one_hot(torch.randint(2, (2, 8)), 2).float(),
        "reward": torch.randn(2, 8),
        "is_first": torch.zeros(2, 8, dtype=torch.bool),
        "is_terminal": torch.zeros(2, 8, dtype=torch.bool),
    }
    batch["is_first"][:, 0] = True
    return batch


TINY_DREAMER = [
    "agent.rssm.deter=32",
    "agent.rssm.hidden=16",
    "agent.rssm.stoch=4",
    "agent.imagination_horizon=4",
    "agent.encoder.vector.hidden=16",
    "agent.decoder.vector.hidden=16",
    "agent.reward.hidden=16",
    "agent.cont.hidden=16",
    "agent.discrete_actor.hidden=16",
    "agent.continuous_actor.hidden=16",
    "agent.critic.hidden=16",
    "agent.encoder.image.depth=4",
    "agent.decoder.image.depth=4",
]


def _snapshot(module: torch.nn.Module, behaviour: bool) -> dict[str, torch.Tensor]:
    """Copies of the behaviour (actor, critic) or of the world-model parameters of an agent."""
    return {n: p.detach().clone() for n, p in module.named_parameters() if n.startswith("behaviour.") == behaviour}


def _changed(module: torch.nn.Module, before: dict[str, torch.Tensor]) -> list[str]:
    return [n for n, p in module.named_parameters() if n in before and not torch.equal(p, before[n])]


@pytest.mark.parametrize("discrete", [True, False], ids=["reinforce", "dynamics-backprop"])
def test_actor_loss_never_updates_the_world_model_and_world_model_loss_never_the_actor(discrete):
    torch.manual_seed(0)
    cfg = load_config("dreamerv3", [*TINY_DREAMER, "agent.rssm.classes=4", "agent.rssm.backbone.blocks=1"])
    agent = build_agent(cfg, ObsSpec((4,), "float32"), ActSpec(discrete, 2))
    batch = _batch()
    if not discrete:
        batch["action"] = torch.rand(2, 8, 2) * 2 - 1

    behaviour, world = _snapshot(agent, True), _snapshot(agent, False)
    post, _ = agent._world_model_step(batch)
    assert _changed(agent, world) and not _changed(agent, behaviour)

    # continuous actions send the actor's gradient through the dynamics, which must still not change
    behaviour, world = _snapshot(agent, True), _snapshot(agent, False)
    start = {k: v.detach().flatten(0, 1) for k, v in post.items()}
    with frozen(*agent.world_model):
        agent.behaviour.learn(
            lambda actor, rsample: agent.rssm.imagine(start, actor, 4, rsample), agent._reward_cont, torch.ones(16)
        )
    assert not _changed(agent, world)
    assert any(n.startswith("behaviour.actor.") for n in _changed(agent, behaviour))


def test_cont_scale_weighs_the_continue_heads_loss_and_nothing_else():
    grads = {}
    for scale in (1.0, 3.0):
        torch.manual_seed(0)
        cfg = load_config("dreamerv3", [*TINY_DREAMER, f"agent.cont_scale={scale}", "agent.grad_clip=1e9"])
        agent = build_agent(cfg, ObsSpec((4,), "float32"), ActSpec(True, 2))
        torch.manual_seed(1)
        batch = _batch()
        batch["is_terminal"][:, -1] = True
        agent._world_model_step(batch)
        grads[scale] = {n: p.grad.clone() for n, p in agent.named_parameters() if p.grad is not None}
    for name, grad in grads[1.0].items():
        if name.startswith("cont."):  # the head sees its loss alone: its gradient scales exactly
            torch.testing.assert_close(grads[3.0][name], 3 * grad)
        elif name.startswith("reward."):
            torch.testing.assert_close(grads[3.0][name], grad)


@pytest.mark.parametrize("discrete", [True, False], ids=["discrete", "continuous"])
def test_bfloat16_updates_follow_float32_with_float32_weights_and_distributions(discrete):
    """`agent.precision: bfloat16` runs the updates' matmuls in bfloat16 under autocast: the same seed's
    losses differ from float32's, but only by bfloat16's rounding, over a few updates; weights, gradients,
    Adam's moments and the latent distributions stay float32."""
    batch = _batch()
    if not discrete:
        batch["action"] = torch.rand(2, 8, 2) * 2 - 1
    runs = {}
    for arithmetic in ("float32", "bfloat16"):
        torch.manual_seed(0)
        cfg = load_config("dreamerv3", [*TINY_DREAMER, f"agent.precision={arithmetic}"])
        agent = build_agent(cfg, ObsSpec((4,), "float32"), ActSpec(discrete, 2))
        with warnings.catch_warnings():  # a CPU without native bfloat16 warns that it is slow
            warnings.simplefilter("ignore")
            runs[arithmetic] = [agent.update(batch) for _ in range(3)]
        state = [v for opt in agent.optimizers.values() for s in opt.state.values() for v in s.values()]
        assert all(p.dtype == torch.float32 for p in agent.parameters())
        assert all(t.dtype == torch.float32 for t in state if t.is_floating_point() and t.dim() > 0)
        post = agent.posterior
        assert post["logits"].dtype == torch.float32 and post["deter"].dtype == torch.float32
    losses = ("loss/world_model", "world_model/recon", "world_model/kl", "loss/critic", "loss/actor")
    for name in losses:
        exact = torch.stack([m[name] for m in runs["float32"]])
        rounded = torch.stack([m[name] for m in runs["bfloat16"]])
        torch.testing.assert_close(rounded, exact, rtol=0.03, atol=1e-3)
    assert any(not torch.equal(runs["float32"][-1][n], runs["bfloat16"][-1][n]) for n in losses)


@pytest.mark.parametrize(
    "preset, env",
    [
        ("dreamerv1", "Pendulum-v1"),
        ("dreamerv2", "CartPole-v1"),
        ("dreamerv3", "wm/DummyContinuous-v0"),
        ("dreamerv3_storm", "CartPole-v1"),
    ],
)
def test_every_dreamer_preset_trains(tmp_path, preset, env):
    overrides = [
        *TINY_DREAMER,
        "train.steps=120",
        "train.prefill=60",
        "train.batch_size=2",
        "train.seq_len=8",
        "train.ratio=16",
        "train.eval_episodes=1",
        "train.eval_every=0",
        "train.threads=1",
        "env.max_episode_steps=40",
        f"env.id={env}",
    ]
    cfg = load_config(preset, overrides)
    assert cfg.agent.name == "dreamer"
    trainer = Trainer(cfg, tmp_path / "run")
    summary = trainer.run()
    trainer.close()
    assert summary["updates"] > 0 and "eval/return" in summary
    agent = trainer.agent  # dreams 7 steps after 5 observed ones
    obs, action = torch.randn(12, *agent.obs_spec.shape), torch.zeros(12, agent.act_spec.dim)
    dreamed = agent.open_loop(obs, action, context=5)
    assert dreamed.obs.shape == obs.shape and torch.isfinite(dreamed.obs).all()
    assert dreamed.reward.shape == (12,) and torch.isfinite(dreamed.reward).all()


def test_world_model_pretraining_is_the_start_of_the_behaviour_stream(tmp_path):
    """Dreamer's streams: the world model on every batch, actor and critic from its 6th update on, the
    open-loop report on every 4th."""
    overrides = [*TINY_DREAMER, "agent.world_model_pretrain_steps=5", "agent.report_every=4", "env.id=wm/Dummy-v0"]
    overrides += ["train.steps=120", "train.prefill=40", "train.batch_size=2", "train.seq_len=8", "train.ratio=16"]
    trainer = Trainer(load_config("dreamerv3", [*overrides, "train.eval_every=0", "train.threads=1"]), tmp_path)
    summary = trainer.run()
    trainer.close()
    updates = summary["updates/world_model"]
    assert updates == summary["updates"] > 5
    assert summary["updates/behaviour"] == updates - 5
    assert summary["updates/report"] == len(range(0, updates, 4))


RESUME = ["train.prefill=40", "train.batch_size=2", "train.seq_len=8", "train.ratio=16", "train.eval_every=0"]
RESUME += ["train.threads=1", "env.id=wm/Dummy-v0"]


def test_dreamer_resumes_exactly_with_its_recurrent_state(tmp_path):
    assert_resumes_exactly("dreamerv3", [*TINY_DREAMER, *RESUME], tmp_path, steps=160)


def test_dreamerv1_explores_with_additive_gaussian_noise():
    cfg = load_config("dreamerv1", TINY_DREAMER)
    agent = build_agent(cfg, ObsSpec((4,), "float32"), ActSpec(False, 1))
    noisy, _ = agent.explore(torch.zeros(20000, 1), torch.ones(20000, dtype=torch.bool), None)
    assert noisy.std().item() == pytest.approx(0.3, rel=0.05)
    obs, first = torch.zeros(2000, 4), torch.ones(2000, dtype=torch.bool)
    torch.manual_seed(0)
    explored, _, _ = agent.act(obs, first, None, explore=True)
    agent.cfg.explore_noise = 0.0
    torch.manual_seed(0)
    sampled, _, _ = agent.act(obs, first, None, explore=True)
    assert explored.abs().max() <= 1.0 and not torch.equal(explored, sampled)


def test_imagination_starts_a_random_subset_of_the_posterior_states():
    cfg = load_config("dreamerv3", [*TINY_DREAMER, "agent.imagination_starts=5", "agent.imagination_horizon=3"])
    agent = build_agent(cfg, ObsSpec((4,), "float32"), ActSpec(True, 2))
    pick = agent.behaviour.starts(16, torch.device("cpu"))
    assert pick.shape == (5,) and len(set(pick.tolist())) == 5 and pick.max() < 16
    assert torch.equal(agent.behaviour.starts(4, torch.device("cpu")), torch.arange(4))  # never more than there are
    seen = []
    agent.behaviour.learn = lambda imagine, reward_cont, start_cont, replayed: seen.append(start_cont.shape) or {}
    agent.update(_batch())
    assert seen == [(5,)]


@pytest.mark.parametrize("preset, sampled", [("dreamerv3", True), ("dreamerv2", False)])
def test_evaluation_samples_the_actor_in_v3_and_takes_its_mode_in_v2(preset, sampled):
    """DreamerV3 evaluates the stochastic policy it learnt; V1/V2 act by its mode. An untrained actor is
    near uniform over 3 actions: 300 evaluation steps from one model state take them all, or one."""
    agent = build_agent(load_config(preset, TINY_DREAMER), ObsSpec((4,), "float32"), ActSpec(True, 3))
    torch.manual_seed(0)
    action, _ = agent.behaviour.act(torch.zeros(300, agent.rssm.feat_dim), False, torch.zeros(300, dtype=bool), None)
    assert len(set(action.argmax(-1).tolist())) == (3 if sampled else 1)
    agent.act(torch.zeros(3, 4), torch.ones(3, dtype=torch.bool), None, explore=False)  # the path act takes


DECODER_FREE = [*TINY_DREAMER, "agent.representation_learner.embed_dim=8"]


def _decoder_free(learner: str, *overrides: str):
    cfg = load_config(
        "dreamerv3_decoder_free", [f"agent.representation_learner.name={learner}", *DECODER_FREE, *overrides]
    )
    return build_agent(cfg, ObsSpec((4,), "float32"), ActSpec(True, 2))


@pytest.mark.parametrize("learner", ["jepa", "contrastive"])
def test_decoder_free_dreamer_has_no_decoder_and_its_learner_trains_the_encoder(learner):
    """One update moves every encoder weight and the learner's target; without the learner's loss
    (`representation_coef=0`) the same update leaves the encoder as it was: the learner alone trains it."""
    batch = _batch()
    batch["is_first"][1, 5] = True  # a new episode inside a window

    def updated(coef: float) -> tuple[torch.nn.Module, dict]:
        torch.manual_seed(0)
        agent = _decoder_free(learner, f"agent.representation_coef={coef}")
        torch.manual_seed(1)
        return agent, agent.update(batch)

    torch.manual_seed(0)
    fresh = _decoder_free(learner).representation_learner
    agent, metrics = updated(1.0)
    assert agent.decoder is None  # nothing decodes observations
    assert agent.embed(batch["obs"]).shape == (2, 8, 8)  # the RSSM filters the learner's 8-dim embedding
    assert {"repr/loss", "repr/embed_std", "repr/effective_rank"} <= set(metrics)
    assert "world_model/recon" not in metrics and "world_model/reward" in metrics
    # the state predicts the embedding in the decoder's place
    feats = torch.zeros(3, agent.rssm.feat_dim)
    assert agent.embedding_decoder(feats).mean.shape == (3, 8) and metrics["world_model/embedding"] > 0
    learner_now = agent.representation_learner
    for (name, before), after in zip(fresh.encoder.named_parameters(), learner_now.encoder.parameters()):
        assert not torch.equal(before, after), name
    assert not torch.equal(fresh.target.net[-1].weight, learner_now.target.net[-1].weight)  # the EMA moved it
    without, _ = updated(0.0)
    for before, after in zip(fresh.encoder.parameters(), without.representation_learner.encoder.parameters()):
        assert torch.equal(before, after)


def test_decoder_free_dreamer_without_a_learner_or_with_two_encoders_is_a_config_error():
    spec = (ObsSpec((4,), "float32"), ActSpec(True, 2))
    with pytest.raises(ConfigError, match="nothing but the reward and continue losses would train the encoder"):
        build_agent(load_config("dreamerv3", [*TINY_DREAMER, "agent.use_reconstruction=false"]), *spec)
    with pytest.raises(ConfigError, match="set agent.encoder instead"):
        _decoder_free("jepa", "agent.representation_learner.encoder.vector.hidden=8")
    with pytest.raises(ConfigError, match="unknown representation_learner 'jepq'.*did you mean 'jepa'"):
        load_config("dreamerv3", ["agent.representation_learner.name=jepq"])
    beside = _decoder_free("vae", "agent.use_reconstruction=true")  # reconstruction and a learner's loss together
    assert beside.decoder is not None and "repr/kl" in beside.update(_batch())


def test_decoder_free_dreamer_resumes_exactly_from_pixels(tmp_path):
    """With the contrastive learner, whose random shifts draw from the resumed random state."""
    learner = ["agent.representation_learner.name=contrastive", *DECODER_FREE, "agent.representation_learner.shift=2"]
    pixels = ["env.obs=pixels", "env.size=[16, 16]"]
    assert_resumes_exactly("dreamerv3_decoder_free", [*learner, *RESUME, *pixels], tmp_path, steps=160)
