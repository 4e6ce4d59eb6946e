"""EDM (Karras et al. 2022), as DIAMOND uses it (Alonso et al. 2024, §2.2–3): a network F_θ wrapped so that

    D_θ(x; σ) = c_skip(σ) x + c_out(σ) F_θ(c_in(σ) x, c_noise(σ))
    c_skip = σ_d² / (σ² + σ_d²),  c_out = σ σ_d / √(σ² + σ_d²),  c_in = 1 / √(σ² + σ_d²),  c_noise = ¼ ln σ

trained on L = E‖F_θ(c_in x_σ, c_noise) − (x⁰ − c_skip x_σ) / c_out‖², x_σ = x⁰ + σ ε (plus an offset per
channel), ln σ ~ N(P_mean, P_std²); and sampled by Euler (or Heun) steps of dx/dσ = (x − D(x; σ)) / σ over
the Karras schedule σ_i = (σ_max^{1/ρ} + i/(n−1) (σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ, then σ_n = 0.

One wrapper for every network: `edm_unet` (the U-Net of `nn/unet.py`) and `dit` (`denoisers/dit.py`).
Frames `[N, C, H, W]` in [−1, 1]; the K context frames `[N, K, C, H, W]` (divided by σ_d) are stacked on
channels with the noisy one, and the K actions taken in them `[N, K, A]` condition the network.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from worldmodels.denoisers.conditioning import Conditioning, stack_context
from worldmodels.errors import ConfigError
from worldmodels.nn.unet import UNet, UNetConfig, check_halvings
from worldmodels.registry import DENOISERS
from worldmodels.schema import non_negative, positive
from worldmodels.spaces import ObsSpec


@dataclass
class EDMConfig:
    context: int = positive(4)
    """Frames (and their actions) the next frame is generated from (DIAMOND: 4)."""
    sigma_data: float = positive(0.5)
    p_mean: float = -0.4
    """Mean of ln σ in training (DIAMOND: −0.4)."""
    p_std: float = positive(1.2)
    sigma_min: float = positive(2e-3)
    sigma_max: float = positive(5.0)
    """The sampler's first σ (DIAMOND: 5; training σ is clipped to [σ_min, 20])."""
    rho: float = positive(7.0)
    offset_noise: float = non_negative(0.3)
    """Std of noise shared by all pixels of a channel, added in training (DIAMOND: 0.3)."""


def frame_of(obs_spec: ObsSpec, name: str) -> tuple[int, int, int]:
    """(C, H, W) of uint8 frames `[H, W, C]`, or a ConfigError naming the fix."""
    if len(obs_spec.shape) != 3 or obs_spec.dtype != "uint8":
        raise ConfigError(f"denoiser '{name}' takes uint8 frames [H, W, C], got {obs_spec}; use env.obs=pixels")
    H, W, C = obs_spec.shape
    return C, H, W


class EDMDenoiser(nn.Module):
    """EDM training and sampling around `self.network(x [N, (K+1)C, H, W], cond [N, D]) → [N, C, H, W]`."""

    samplers = ("euler", "heun")

    def __init__(self, cfg: EDMConfig, action_dim: int, cond_dim: int):
        super().__init__()
        self.cfg, self.context = cfg, cfg.context
        self.conditioning = Conditioning(cfg.context, action_dim, cond_dim)
        self.network: nn.Module

    def preconditioning(self, sigma: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(c_skip, c_out, c_in, c_noise) at σ `[N]` (module docstring)."""
        sd2, s2 = self.cfg.sigma_data**2, sigma**2
        return sd2 / (s2 + sd2), sigma * self.cfg.sigma_data / (s2 + sd2).sqrt(), 1 / (s2 + sd2).sqrt(), sigma.log() / 4

    def raw(self, noisy: torch.Tensor, sigma: torch.Tensor, context: torch.Tensor, action: torch.Tensor):
        """F_θ's output `[N, C, H, W]` and (c_skip, c_out) `[N, 1, 1, 1]`."""
        c_skip, c_out, c_in, c_noise = (c[:, None, None, None] for c in self.preconditioning(sigma))
        x = stack_context(context / self.cfg.sigma_data, noisy * c_in)
        return self.network(x, self.conditioning(c_noise.flatten(), action)), c_skip, c_out

    def denoise(self, noisy: torch.Tensor, sigma: torch.Tensor, context: torch.Tensor, action: torch.Tensor):
        """D_θ(x; σ) `[N, C, H, W]`."""
        out, c_skip, c_out = self.raw(noisy, sigma, context, action)
        return c_skip * noisy + c_out * out

    def loss(self, context_frames: torch.Tensor, context_actions: torch.Tensor, next_frame: torch.Tensor):
        """The EDM loss of `next_frame` `[N, C, H, W]` given the context; returns (loss, metrics)."""
        cfg, N = self.cfg, len(next_frame)
        sigma = (torch.randn(N, device=next_frame.device) * cfg.p_std + cfg.p_mean).exp().clamp(cfg.sigma_min, 20.0)
        offset = cfg.offset_noise * torch.randn(*next_frame.shape[:2], 1, 1, device=next_frame.device)
        noisy = next_frame + offset + sigma[:, None, None, None] * torch.randn_like(next_frame)
        out, c_skip, c_out = self.raw(noisy, sigma, context_frames, context_actions)
        loss = F.mse_loss(out, (next_frame - c_skip * noisy) / c_out)
        return loss, {"denoiser/sigma": sigma.mean().detach()}

    def schedule(self, steps: int, device: torch.device) -> torch.Tensor:
        """Karras σ_0 … σ_{n−1}, then 0: `[steps + 1]`."""
        cfg, r = self.cfg, 1 / self.cfg.rho
        ramp = torch.linspace(0, 1, steps, device=device)
        sigma = (cfg.sigma_max**r + ramp * (cfg.sigma_min**r - cfg.sigma_max**r)) ** cfg.rho
        return torch.cat([sigma, sigma.new_zeros(1)])

    @torch.no_grad()
    def sample(self, context_frames: torch.Tensor, context_actions: torch.Tensor, steps: int, sampler: str = "euler"):
        """The next frame `[N, C, H, W]` in [−1, 1] after `steps` Euler or Heun steps from pure noise."""
        if sampler not in self.samplers:
            raise ConfigError(f"EDM samples with {' or '.join(self.samplers)}, not '{sampler}'")
        N, _, C, H, W = context_frames.shape
        sigmas = self.schedule(steps, context_frames.device)
        x = torch.randn(N, C, H, W, device=context_frames.device) * sigmas[0]

        def slope(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            return (x - self.denoise(x, sigma.expand(N), context_frames, context_actions)) / sigma

        for sigma, after in zip(sigmas[:-1], sigmas[1:]):
            d = slope(x, sigma)
            moved = x + (after - sigma) * d
            if sampler == "heun" and after > 0:  # the trapezoid rule with the slope at the end of the step
                moved = x + (after - sigma) * (d + slope(moved, after)) / 2
            x = moved
        return x.clamp(-1, 1)


@dataclass
class EDMUNetConfig(UNetConfig, EDMConfig):
    pass


@DENOISERS.register("edm_unet")
class EDMUNet(EDMDenoiser):
    """EDM around the U-Net of `nn/unet.py` (DIAMOND's denoiser)."""

    Config = EDMUNetConfig

    def __init__(self, cfg: EDMUNetConfig, obs_spec: ObsSpec, action_dim: int):
        super().__init__(cfg, action_dim, cfg.cond_dim)
        C, H, W = frame_of(obs_spec, "edm_unet")
        check_halvings(cfg, H, W)
        self.network = UNet(cfg, (cfg.context + 1) * C, C)
