import torch
import torch.nn.functional as F

from worldmodels.nn.augment import random_shift


def crops(frame: torch.Tensor, pad: int) -> list[torch.Tensor]:
    """Every crop the size of `frame` `[H, W, C]` of it padded by `pad`, the edge repeated."""
    h, w, _ = frame.shape
    padded = F.pad(frame.permute(2, 0, 1)[None].float(), (pad,) * 4, mode="replicate")[0]
    return [padded[:, i : i + h, j : j + w].permute(1, 2, 0) for i in range(2 * pad + 1) for j in range(2 * pad + 1)]


def test_random_shift_crops_a_replicate_padded_frame():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (5, 8, 8, 3), dtype=torch.uint8)
    assert torch.equal(random_shift(images, 0), images)
    shifted = random_shift(images, 2)
    for n in range(5):
        assert any(torch.equal(shifted[n].float(), c) for c in crops(images[n], 2))


def test_random_shift_moves_every_frame_of_a_clip_by_one_offset():
    torch.manual_seed(0)
    clips = torch.randint(0, 256, (6, 4, 8, 8, 3), dtype=torch.uint8)
    shifted = random_shift(clips, 1)
    offsets = set()
    for n in range(6):
        found = [
            [k for k, c in enumerate(crops(clips[n, t], 1)) if torch.equal(shifted[n, t].float(), c)] for t in range(4)
        ]
        assert all(f == found[0] and len(f) == 1 for f in found)  # one offset, the same for every frame
        offsets.add(found[0][0])
    assert len(offsets) > 1  # the clips are not all moved alike
