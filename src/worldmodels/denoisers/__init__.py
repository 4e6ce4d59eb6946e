"""Denoisers: the next frame generated from the last frames and actions (DIAMOND's EDM U-Net; DDPM; DiT)."""

from worldmodels.denoisers.ddpm import DDPMUNet
from worldmodels.denoisers.dit import EDMDiT
from worldmodels.denoisers.edm import EDMUNet

__all__ = ["DDPMUNet", "EDMDiT", "EDMUNet"]
