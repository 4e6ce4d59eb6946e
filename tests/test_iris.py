"""IRIS: the token transformer's cached imagination equals recomputing the whole context; the VQ tokenizer's
straight-through gradient, commitment and dead-code revival; an exact resume of three update streams;
open-loop frames of the right shape."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import assert_resumes_exactly
from worldmodels.config import load_config
from worldmodels.errors import ConfigError
from worldmodels.registry import TOKEN_MODELS, TOKENIZERS
from worldmodels.spaces import ActSpec, ObsSpec
from worldmodels.train.loop import build_agent

FRAME = ObsSpec((10, 10, 4), "uint8")


def _model(context: int = 8, layers: int = 2) -> torch.nn.Module:
    cfg = {"layers": layers, "heads": 2, "dim": 16, "context": context, "reward": {"hidden": 8}, "cont": {"hidden": 8}}
    return TOKEN_MODELS.build("token_transformer", cfg, vocab=7, tokens=3, action_dim=2).eval()


def _sequence(n: int, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random tokens `[n, frames, 3]` and one-hot actions taken in each frame `[n, frames, 2]`."""
    return torch.randint(0, 7, (n, frames, 3)), torch.eye(2)[torch.randint(0, 2, (n, frames))]


def _frames(n: int) -> torch.Tensor:
    return (torch.rand(n, 10, 10, 4) < 0.2).to(torch.uint8) * 255


@pytest.mark.parametrize("seen", [1, 2])  # iris_atari imagines from one real frame
def test_cached_imagination_equals_recomputing_the_whole_context(seen):
    torch.manual_seed(0)
    model, (tokens, action) = _model(), _sequence(3, 6)
    with torch.no_grad():
        full = model(tokens, action)  # frames 1…5 from everything before them, in one pass
    ctx = model.start(tokens[:, :seen], action[:, : seen - 1], torch.ones(3, seen, dtype=torch.bool), room=6 - seen)
    for t in range(seen, 6):
        step = model.step(ctx, action[:, t - 1], tokens=tokens[:, t])  # one cached step per token
        torch.testing.assert_close(step.logits, full.logits[:, t - 1], atol=1e-5, rtol=0)
        torch.testing.assert_close(step.reward.mean, full.reward.mean[:, t - 1], atol=1e-5, rtol=0)
        torch.testing.assert_close(step.cont.mean, full.cont.mean[:, t - 1], atol=1e-5, rtol=0)


def test_padding_before_an_episode_start_is_not_attended_to():
    torch.manual_seed(0)
    model, (tokens, action) = _model(), _sequence(2, 4)
    padded = model.start(tokens[:, :3], action[:, :2], torch.tensor([[False, True, True]] * 2), room=1)
    alone = model.start(tokens[:, 1:3], action[:, 1:2], torch.ones(2, 2, dtype=torch.bool), room=1)
    a = model.step(padded, action[:, 2], tokens=tokens[:, 3])
    b = model.step(alone, action[:, 2], tokens=tokens[:, 3])
    torch.testing.assert_close(a.logits, b.logits, atol=1e-5, rtol=0)


def test_imagination_attends_over_the_context_frames_only():
    """Beyond `context` frames the oldest drop out of attention, as in the windows the model trains on (with
    one layer, whose keys and values depend on their own token alone, that equals starting afresh)."""
    torch.manual_seed(0)
    model, (tokens, action) = _model(context=3, layers=1), _sequence(2, 6)
    long = model.start(tokens[:, :5], action[:, :4], torch.ones(2, 5, dtype=torch.bool), room=1)
    short = model.start(tokens[:, 3:5], action[:, 3:4], torch.ones(2, 2, dtype=torch.bool), room=1)
    a = model.step(long, action[:, 4], tokens=tokens[:, 5])
    b = model.step(short, action[:, 4], tokens=tokens[:, 5])
    torch.testing.assert_close(a.logits, b.logits, atol=1e-5, rtol=0)


def _tokenizer(**cfg) -> torch.nn.Module:
    return TOKENIZERS.build("vq", {"vocab": 16, "embed_dim": 8, "channels": 8, "downsample": 1, **cfg}, obs_spec=FRAME)


def test_tokens_have_the_grid_s_shape_and_decode_to_frames():
    tokenizer = _tokenizer()
    tokens = tokenizer.encode(_frames(6).view(2, 3, 10, 10, 4))
    assert tokens.shape == (2, 3, 25) and tokens.dtype == torch.long
    assert tokenizer.decode(tokens).shape == (2, 3, 10, 10, 4)
    atari = TOKENIZERS.build("vq", {"channels": 8, "embed_dim": 8}, obs_spec=ObsSpec((64, 64, 3), "uint8"))
    assert atari.encode(torch.zeros(2, 64, 64, 3, dtype=torch.uint8)).shape == (2, 16)  # IRIS: 16 tokens


def test_the_straight_through_gradient_reaches_the_encoder():
    torch.manual_seed(0)
    tokenizer = _tokenizer(commitment=0.0, ema=True)  # nothing but the reconstruction reaches the encoder
    loss, _ = tokenizer.loss(_frames(8))
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in tokenizer.encoder.parameters())


def test_the_commitment_loss_moves_the_encoder_towards_its_codes():
    torch.manual_seed(0)
    tokenizer, frames = _tokenizer(commitment=100.0, revive=False), _frames(8)

    def distance() -> torch.Tensor:
        z = tokenizer.embed(frames)
        return (z - tokenizer.quantiser.codebook[tokenizer.quantiser.nearest(z)]).pow(2).sum(-1).mean()

    before = distance().item()
    loss, _ = tokenizer.loss(frames)
    opt = torch.optim.SGD(tokenizer.encoder.parameters(), lr=1e-3)
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert distance().item() < 0.9 * before


@pytest.mark.parametrize("ema", [False, True])
def test_a_dead_code_is_revived_to_an_encoder_output_and_reported(ema):
    torch.manual_seed(0)
    tokenizer, frames = _tokenizer(dead_after=2, ema=ema), _frames(8)
    with torch.no_grad():
        tokenizer.quantiser.codebook[3] = 1e3  # far from every encoder output: never chosen
    dead = [tokenizer.loss(frames)[1]["tokenizer/dead_codes"].item() for _ in range(2)]
    assert dead[0] == 0 and dead[1] >= 1
    z = tokenizer.embed(frames).flatten(0, 1)
    assert torch.cdist(tokenizer.quantiser.codebook[3:4].detach(), z).min() < 1e-5
    assert tokenizer.quantiser.unused[3] == 0


def test_without_revival_dead_codes_are_reported_and_left():
    tokenizer, frames = _tokenizer(dead_after=2, revive=False), _frames(8)
    with torch.no_grad():
        tokenizer.quantiser.codebook[3] = 1e3
    dead = [tokenizer.loss(frames)[1]["tokenizer/dead_codes"].item() for _ in range(3)]
    assert dead[0] == 0 and dead[2] >= 1 and (tokenizer.quantiser.codebook[3] == 1e3).all()


TINY_IRIS = ["train.eval_every=0", "env.num_envs=1"]


def test_iris_resumes_exactly_with_three_streams(tmp_path):
    def check(trainer):  # all three streams ran before the checkpoint
        counts = trainer.phases[0].streams.counts
        assert counts["tokenizer"] > 0 and counts["world_model"] > 0 and counts["actor_critic"] > 0

    assert_resumes_exactly("iris_tiny", TINY_IRIS, tmp_path, steps=160, on_resume=check)


def test_open_loop_returns_frames_and_continuous_actions_are_refused():
    torch.manual_seed(0)
    cfg = load_config("iris_tiny", [])
    agent = build_agent(cfg, FRAME, ActSpec(True, 3))
    action = torch.eye(3)[torch.randint(0, 3, (12,))]
    predicted = agent.open_loop(_frames(12), action, context=5)
    assert predicted.obs.shape == (12, 10, 10, 4) and predicted.obs.min() >= 0 and predicted.obs.max() <= 255
    assert predicted.reward.shape == (12,) and (predicted.reward[:5] == 0).all()
    assert 1 <= predicted.metrics["tokenizer/perplexity"] <= 12 * agent.tokenizer.tokens
    with pytest.raises(ConfigError, match="discrete action spaces only"):
        build_agent(cfg, FRAME, ActSpec(False, 2))
    with pytest.raises(ConfigError, match="env.obs=pixels"):
        build_agent(cfg, ObsSpec((4,), "float32"), ActSpec(True, 2))


def test_evaluation_samples_at_its_temperature_and_zero_is_the_mode():
    """IRIS evaluates with actions drawn from π^(1/T), T = 0.5 (its test collection); T = 0 takes the mode."""
    torch.manual_seed(0)
    frames, first = _frames(64), torch.ones(64, dtype=torch.bool)
    for temperature, distinct in ((0.0, 1), (0.5, 3)):
        cfg = load_config("iris_tiny", [f"agent.eval_temperature={temperature}"])
        agent = build_agent(cfg, FRAME, ActSpec(True, 3))
        same = frames[:1].expand(64, -1, -1, -1)  # one frame, 64 draws
        acted = agent.act(same, first, agent.initial_state(64), explore=False)
        assert len(acted.action.argmax(-1).unique()) == distinct, temperature
