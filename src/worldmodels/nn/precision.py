"""The arithmetic a module runs in: float32, or bfloat16 by autocast (weights, gradients and outputs stay
float32)."""

from __future__ import annotations

import contextlib
import functools
import warnings
from typing import Literal

import torch

Precision = Literal["float32", "bfloat16"]
_HALF = (torch.bfloat16, torch.float16)


@functools.cache
def cpu_has_bfloat16() -> bool:
    """Whether this CPU runs bfloat16 matmuls and convolutions natively (AVX-512 BF16 or AMX)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def precision(name: Precision, device: torch.device | str) -> contextlib.AbstractContextManager:
    """The context to run in at precision `name` on `device`: nothing for float32, bfloat16 autocast else.

    A CPU without native bfloat16 (AVX-512 BF16 or AMX) runs bfloat16 matmuls and convolutions in fallback
    code: on an AVX2 CPU a 1024 × 512 × 512 matmul took 401 ms in bfloat16 against 6 ms in float32. There
    it still computes the right numbers, so it warns (once per call site) rather than refuse."""
    if name == "float32":
        return contextlib.nullcontext()
    kind = torch.device(device).type
    if kind == "cpu" and not cpu_has_bfloat16():
        warnings.warn(
            "precision=bfloat16 on a CPU without native bfloat16 (AVX-512 BF16 or AMX) runs its matmuls and "
            "convolutions about 60x slower than float32; set the option's precision to float32",
            stacklevel=2,
        )
    return torch.autocast(kind, torch.bfloat16)


def widened(x: torch.Tensor) -> torch.Tensor:
    """`x` in float32 where autocast left it in a 16-bit type, else `x` itself: what distributions are built
    from, so that probabilities sum to 1 and log-probabilities and losses keep float32's resolution."""
    return x.float() if x.dtype in _HALF else x
