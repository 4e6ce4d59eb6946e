"""Transposed-convolution decoder for frames, the mirror of the CNN encoder."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from worldmodels.decoders.prediction import ImagePrediction, squared_error
from worldmodels.encoders.cnn import ChannelNorm, ConvConfig, conv_stages
from worldmodels.errors import ConfigError
from worldmodels.nn import activation
from worldmodels.nn.precision import precision
from worldmodels.registry import DECODERS
from worldmodels.spaces import ObsSpec


@DECODERS.register("cnn")
class CNNDecoder(nn.Module):
    """`[..., in_dim]` → a prediction of the frame `[..., H, W, C]`."""

    @dataclass
    class Config(ConvConfig):
        pass

    def __init__(self, cfg: Config, in_dim: int, obs_spec: ObsSpec):
        super().__init__()
        if not obs_spec.is_image:
            raise ConfigError(f"decoder 'cnn' predicts uint8 frames [H, W, C], got {obs_spec}")
        height, width, channels = obs_spec.shape
        stages = conv_stages(height, width, cfg.min_res)
        self.start = (cfg.depth * 2 ** (stages - 1), height >> stages, width >> stages)
        self.proj = nn.Linear(in_dim, self.start[0] * self.start[1] * self.start[2])
        layers: list[nn.Module] = []
        dim = self.start[0]
        for i in reversed(range(stages)):
            last = i == 0
            out = channels if last else cfg.depth * 2 ** (i - 1)
            layers += [nn.ConvTranspose2d(dim, out, 4, 2, 1, bias=last or not cfg.norm)]
            if not last:
                layers += [ChannelNorm(out)] if cfg.norm else []
                layers += [activation(cfg.act)]
            dim = out
        self.net = nn.Sequential(*layers)
        self.precision = cfg.precision
        self.loss_kernel = squared_error

    def compile(self, *args, **kwargs) -> None:
        """`torch.compile` the forward pass and the loss of its predictions (once per input shape)."""
        super().compile(*args, **kwargs)
        self.loss_kernel = torch.compile(squared_error, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> ImagePrediction:
        batch = x.shape[:-1]
        h = self.proj(x.reshape(-1, x.shape[-1])).reshape(-1, *self.start)
        with precision(self.precision, h.device):
            frames = self.net(h)
        frames = frames.float().permute(0, 2, 3, 1)  # [N, H, W, C]
        return ImagePrediction(frames.reshape(*batch, *frames.shape[1:]), self.loss_kernel)
