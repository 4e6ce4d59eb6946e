"""`wm play`: play a Genie model by choosing its latent actions: from a prompt frame, each action in a
script generates the next frame; the frames are written as a GIF in the run folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from worldmodels.errors import ConfigError
from worldmodels.train.dream import rgb


def parse_script(text: str, actions: int) -> list[int]:
    """'0,3,3,1' → [0, 3, 3, 1], each a latent action in 0 … `actions` − 1."""
    try:
        script = [int(part) for part in text.split(",")]
    except ValueError:
        raise ConfigError(f"--actions takes latent actions separated by commas, e.g. 0,3,3,1; got '{text}'") from None
    wrong = [a for a in script if not 0 <= a < actions]
    if wrong:
        raise ConfigError(f"--actions: latent action {wrong[0]} does not exist; the model has 0 … {actions - 1}")
    return script


@torch.no_grad()
def play(agent, prompt: np.ndarray, script: list[int], out: Path) -> np.ndarray:
    """Generate a frame per latent action of `script` after the uint8 `prompt` frame `[H, W, C]`; write them
    (the prompt's reconstruction first) to the GIF `out` and return them, `[1 + n, H, W, C]` uint8."""
    import imageio.v2 as imageio

    first = torch.as_tensor(prompt, device=agent.device)[None, None]
    actions = torch.as_tensor([script], device=agent.device)
    frames = agent.generate(first, actions)[0].round().to(torch.uint8).cpu().numpy()
    scale = max(3, 64 // frames.shape[1])  # small frames (MinAtar's 10×10) made visible
    shown = [np.kron(frame, np.ones((scale, scale, 1), np.uint8)) for frame in rgb(frames)]
    imageio.mimsave(out, shown, duration=250, loop=0)
    return frames
