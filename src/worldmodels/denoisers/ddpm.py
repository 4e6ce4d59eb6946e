"""DDPM (Ho et al. 2020) with the same U-Net as `edm_unet`, for DIAMOND's EDM-vs-DDPM comparison (§5.1):

    x_t = √ᾱ_t x⁰ + √(1 − ᾱ_t) ε,   L = E‖ε_θ(x_t, t) − ε‖²,   ᾱ_t = ∏_{s≤t} (1 − β_s)
    β linear from 1e-4 to 0.02 over T steps, or cosine: ᾱ_t = f(t) / f(0), f(t) = cos²((t/T + s) / (1 + s) · π/2)

sampled on `steps` evenly spaced timesteps τ_n > … > τ_1 with x⁰̂ = (x − √(1 − ᾱ) ε_θ) / √ᾱ and either the
ancestral step (the posterior q(x_{τ_{i−1}} | x_{τ_i}, x⁰̂), Ho et al. eq. 7 on the respaced schedule) or DDIM's
deterministic one (Song et al. 2021, η = 0). Frames and conditioning as in `denoisers/edm.py`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from worldmodels.denoisers.conditioning import Conditioning, stack_context
from worldmodels.denoisers.edm import frame_of
from worldmodels.errors import ConfigError
from worldmodels.nn.unet import UNet, UNetConfig, check_halvings
from worldmodels.registry import DENOISERS
from worldmodels.schema import positive
from worldmodels.spaces import ObsSpec


def alpha_bar(schedule: str, T: int) -> torch.Tensor:
    """ᾱ_1 … ᾱ_T `[T]` of the `linear` or `cosine` schedule (module docstring)."""
    if schedule == "linear":
        return torch.cumprod(1 - torch.linspace(1e-4, 0.02, T, dtype=torch.float64), 0).float()
    s, t = 0.008, torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    beta = (1 - f[1:] / f[:-1]).clamp(max=0.999)  # clipped as Nichol & Dhariwal do, near t = T
    return torch.cumprod(1 - beta, 0).float()


@dataclass
class DDPMConfig(UNetConfig):
    context: int = positive(4)
    timesteps: int = positive(1000)
    """T, the training noise levels."""
    schedule: Literal["linear", "cosine"] = "linear"


@DENOISERS.register("ddpm_unet")
class DDPMUNet(nn.Module):
    samplers = ("ancestral", "ddim")

    Config = DDPMConfig

    def __init__(self, cfg: DDPMConfig, obs_spec: ObsSpec, action_dim: int):
        super().__init__()
        C, H, W = frame_of(obs_spec, "ddpm_unet")
        check_halvings(cfg, H, W)
        self.cfg, self.context = cfg, cfg.context
        self.conditioning = Conditioning(cfg.context, action_dim, cfg.cond_dim)
        self.network = UNet(cfg, (cfg.context + 1) * C, C)
        self.register_buffer("alpha_bar", alpha_bar(cfg.schedule, cfg.timesteps), persistent=False)

    def eps(self, noisy: torch.Tensor, t: torch.Tensor, context: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """ε_θ(x_t, t) `[N, C, H, W]` for timesteps t `[N]` in 0 … T − 1."""
        return self.network(stack_context(context, noisy), self.conditioning(t / self.cfg.timesteps, action))

    def loss(self, context_frames: torch.Tensor, context_actions: torch.Tensor, next_frame: torch.Tensor):
        t = torch.randint(0, self.cfg.timesteps, (len(next_frame),), device=next_frame.device)
        a = self.alpha_bar[t][:, None, None, None]
        noise = torch.randn_like(next_frame)
        noisy = a.sqrt() * next_frame + (1 - a).sqrt() * noise
        return F.mse_loss(self.eps(noisy, t, context_frames, context_actions), noise), {}

    @torch.no_grad()
    def sample(self, context_frames: torch.Tensor, context_actions: torch.Tensor, steps: int, sampler: str = "ddim"):
        """The next frame `[N, C, H, W]` in [−1, 1] after `steps` ancestral or DDIM steps."""
        if sampler not in self.samplers:
            raise ConfigError(f"DDPM samples with {' or '.join(self.samplers)}, not '{sampler}'")
        N, _, C, H, W = context_frames.shape
        times = torch.linspace(self.cfg.timesteps - 1, 0, steps, device=context_frames.device).round().long()
        x = torch.randn(N, C, H, W, device=context_frames.device)
        for i, t in enumerate(times):
            a = self.alpha_bar[t]
            a_prev = self.alpha_bar[times[i + 1]] if i + 1 < steps else a.new_ones(())
            eps = self.eps(x, t.expand(N), context_frames, context_actions)
            x0 = ((x - (1 - a).sqrt() * eps) / a.sqrt()).clamp(-1, 1)
            if sampler == "ddim":
                eps = (x - a.sqrt() * x0) / (1 - a).sqrt()  # the noise consistent with the clipped x⁰̂
                x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
            else:
                beta = 1 - a / a_prev
                mean = (a_prev.sqrt() * beta * x0 + (1 - beta).sqrt() * (1 - a_prev) * x) / (1 - a)
                x = mean + (beta * (1 - a_prev) / (1 - a)).sqrt() * torch.randn_like(x) * (i + 1 < steps)
        return x.clamp(-1, 1)
