"""Image augmentation shared by the components that need one."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_shift(images: torch.Tensor, pad: int) -> torch.Tensor:
    """uint8 frames `[N, ..., H, W, C]` (a frame, or a clip of them, per item), each item shifted by its own
    random offset of up to `pad` pixels in each direction (every frame of an item by the same one), the
    border repeating the edge: the same shape."""
    n, *lead, h, w, c = images.shape
    x = images.reshape(n, -1, h, w, c).permute(0, 1, 4, 2, 3).reshape(n, -1, h, w).float()  # [N, M·C, H, W]
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    dy, dx = torch.randint(0, 2 * pad + 1, (2, n, 1), device=images.device)
    rows = dy + torch.arange(h, device=images.device)  # [N, H]
    cols = dx + torch.arange(w, device=images.device)  # [N, W]
    batch = torch.arange(n, device=images.device)[:, None, None]
    shifted = padded[batch, :, rows[:, :, None], cols[:, None, :]]  # [N, H, W, M·C]
    return shifted.reshape(n, h, w, -1, c).permute(0, 3, 1, 2, 4).reshape(images.shape).to(torch.uint8)
