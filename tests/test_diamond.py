"""DIAMOND: EDM's preconditioning and σ schedule and DDPM's ᾱ against the papers' formulas; an EDM U-Net
learns a tiny known distribution; the DiT's shapes; an exact resume of three update streams; open-loop
frames of the right shape."""

from __future__ import annotations

import math

import pytest
import torch

from tests.conftest import assert_resumes_exactly
from worldmodels.config import load_config
from worldmodels.denoisers.ddpm import alpha_bar
from worldmodels.errors import ConfigError
from worldmodels.registry import DENOISERS
from worldmodels.spaces import ActSpec, ObsSpec
from worldmodels.train.loop import build_agent

FRAME = ObsSpec((10, 10, 4), "uint8")


def _edm(**cfg) -> torch.nn.Module:
    small = {"channels": [16], "blocks": 1, "halvings": 0, "cond_dim": 32, "context": 1, **cfg}
    return DENOISERS.build("edm_unet", small, obs_spec=ObsSpec((4, 4, 1), "uint8"), action_dim=2)


def test_edm_preconditioning_is_the_paper_s():
    """c_skip = σ_d²/(σ²+σ_d²), c_out = σσ_d/√(σ²+σ_d²), c_in = 1/√(σ²+σ_d²), c_noise = ¼ ln σ, at σ_d = 0.5."""
    got = _edm(sigma_data=0.5).preconditioning(torch.tensor([0.5, 2.0]))
    hand = [(0.5, 0.0588235), (0.3535534, 0.4850713), (1.4142136, 0.4850713), (-0.1732868, 0.1732868)]
    for c, want in zip(got, hand):
        torch.testing.assert_close(c, torch.tensor(want), atol=1e-6, rtol=0)


def test_the_karras_schedule_runs_from_sigma_max_to_sigma_min_then_zero():
    sigmas = _edm(sigma_max=5.0, sigma_min=2e-3, rho=7.0).schedule(3, torch.device("cpu"))
    middle = ((5.0 ** (1 / 7) + 2e-3 ** (1 / 7)) / 2) ** 7
    torch.testing.assert_close(sigmas, torch.tensor([5.0, middle, 2e-3, 0.0]), atol=1e-5, rtol=1e-5)


def test_ddpm_alpha_bar_of_the_linear_and_cosine_schedules():
    linear = alpha_bar("linear", 1000)
    beta2 = 1e-4 + 0.0199 / 999  # the second of 1000 betas spaced from 1e-4 to 0.02
    torch.testing.assert_close(linear[:2], torch.tensor([0.9999, 0.9999 * (1 - beta2)]), atol=1e-7, rtol=0)
    assert linear[-1].item() == pytest.approx(4.04e-5, rel=0.01)  # ∏(1 − β) over the whole schedule

    def f(t: float) -> float:
        return math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2

    cosine = alpha_bar("cosine", 1000)
    for t in (1, 250, 500, 900):  # ᾱ_t = f(t) / f(0) where no β is clipped
        assert cosine[t - 1].item() == pytest.approx(f(t) / f(0), rel=1e-4)


def test_an_edm_unet_learns_which_pattern_each_action_brings():
    """Next frames are one of two fixed 4×4 patterns, chosen by the action alone; after training, 3 Euler
    steps give the right pattern for each action."""
    torch.manual_seed(0)
    model = _edm()
    patterns = torch.stack([torch.ones(4, 4).triu(), torch.ones(4, 4).tril()])[:, None] * 2 - 1  # [2, 1, 4, 4]
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(300):
        action = torch.randint(0, 2, (32,))
        context = torch.rand(32, 1, 1, 4, 4) * 2 - 1
        loss, _ = model.loss(context, torch.eye(2)[action][:, None], patterns[action])
        opt.zero_grad()
        loss.backward()
        opt.step()
    action = torch.arange(2).repeat(8)
    sample = model.sample(torch.rand(16, 1, 1, 4, 4) * 2 - 1, torch.eye(2)[action][:, None], 3, "euler")
    assert (sample.sign() == patterns[action]).float().mean() > 0.95


@pytest.mark.parametrize("patch", [2, 5])
def test_dit_predicts_and_samples_frames_of_the_input_s_shape(patch):
    torch.manual_seed(0)
    cfg = {"layers": 1, "heads": 2, "dim": 16, "patch": patch, "context": 3}
    dit = DENOISERS.build("dit", cfg, obs_spec=FRAME, action_dim=4)
    context, action = torch.rand(5, 3, 4, 10, 10) * 2 - 1, torch.eye(4)[torch.randint(0, 4, (5, 3))]
    assert dit.network(torch.zeros(5, 16, 10, 10), torch.zeros(5, 16)).shape == (5, 4, 10, 10)
    loss, _ = dit.loss(context, action, torch.rand(5, 4, 10, 10) * 2 - 1)
    assert loss.ndim == 0 and torch.isfinite(loss)
    sample = dit.sample(context, action, 2, "heun")
    assert sample.shape == (5, 4, 10, 10) and sample.abs().max() <= 1
    with pytest.raises(ConfigError, match="does not divide"):
        DENOISERS.build("dit", {**cfg, "patch": 3}, obs_spec=FRAME, action_dim=4)


TINY_DIAMOND = ["train.eval_every=0", "env.num_envs=1"]


def test_diamond_resumes_exactly_with_three_streams(tmp_path):
    def check(trainer):  # all three streams ran before the checkpoint
        counts = trainer.phases[0].streams.counts
        assert counts["denoiser"] > 0 and counts["reward_end"] > 0 and counts["actor_critic"] > 0

    assert_resumes_exactly("diamond_tiny", TINY_DIAMOND, tmp_path, steps=160, on_resume=check)


def test_open_loop_returns_frames_and_rewards_and_bad_settings_are_refused():
    torch.manual_seed(0)
    cfg = load_config("diamond_tiny", [])
    agent = build_agent(cfg, FRAME, ActSpec(True, 3))
    frames = (torch.rand(12, 10, 10, 4) < 0.2).to(torch.uint8) * 255
    dream = agent.open_loop(frames, torch.eye(3)[torch.randint(0, 3, (12,))], context=1)
    assert dream.obs.shape == (12, 10, 10, 4) and dream.obs.dtype == torch.uint8
    assert torch.equal(dream.obs[:1], frames[:1])
    assert dream.reward.shape == (12,) and (dream.reward[:1] == 0).all()
    assert set(dream.reward.tolist()) <= {-1.0, 0.0, 1.0}
    with pytest.raises(ConfigError, match="discrete action spaces only"):
        build_agent(cfg, FRAME, ActSpec(False, 2))
    with pytest.raises(ConfigError, match="env.obs=pixels"):
        build_agent(cfg, ObsSpec((4,), "float32"), ActSpec(True, 2))
    with pytest.raises(ConfigError, match="agent.sampler 'ddim'"):
        build_agent(load_config("diamond_tiny", ["agent.sampler=ddim"]), FRAME, ActSpec(True, 3))
