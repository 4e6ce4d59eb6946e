"""Gaussian noise coloured in time: iCEM's action sequences and the continuous agents' exploration."""

from __future__ import annotations

import torch


def coloured_noise(
    beta: float, shape: tuple[int, ...], horizon: int, device: torch.device, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Unit-variance Gaussian noise `[*shape, horizon]` whose power spectrum along the last axis is ∝ 1/f^β
    (drawn from `generator`, else torch's global one)."""
    freqs = torch.fft.rfftfreq(horizon, device=device)  # [F]
    freqs[0] = freqs[1] if horizon > 1 else 1.0  # the constant component gets the lowest frequency's power
    scale = freqs ** (-beta / 2)
    spectrum = torch.complex(
        torch.randn(*shape, len(freqs), device=device, generator=generator),
        torch.randn(*shape, len(freqs), device=device, generator=generator),
    )
    x = torch.fft.irfft(spectrum * scale, n=horizon)
    # irfft keeps only the real part of the constant (and, for even H, the Nyquist) term
    power = scale[0] ** 2 + 4 * (scale[1:] ** 2).sum()
    if horizon % 2 == 0 and horizon > 1:
        power = power - 3 * scale[-1] ** 2
    return x * (horizon / power.sqrt())
