"""Representation collapse: the terms that prevent it and the monitors that show it, on a batch of
embeddings `[N, D]`.

Anti-collapse terms (added to a self-supervised loss):
    VICReg (Bardes et al. 2022)  variance  (1/D) Σ_d max(0, γ − √(Var z_d + ε))        every dimension keeps spread
                                 covariance (1/D) Σ_{i≠j} Cov(z)_ij²                  dimensions decorrelate
    SIGReg (LeJEPA, Balestriero & LeCun 2025)  the Epps–Pulley statistic of projections of z onto random
                                 directions against N(0, 1): z is pushed toward an isotropic Gaussian
Monitors (logged by every representation learner):
    per-dimension std            std of each dimension over the batch, averaged: → 0 when embeddings collapse
    effective rank (RankMe, Garrido et al. 2023; Roy & Vetterli 2007)   exp of the entropy of the normalised
                                 singular values: D for spread embeddings, → 1 when they collapse to a point or a line
"""

from __future__ import annotations

import torch


def vicreg_variance(z: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    """(1/D) Σ_d max(0, γ − √(Var z_d + ε)) of embeddings `[N, D]` (unbiased variance over the batch): `[]`."""
    std = torch.sqrt(z.var(0) + eps)
    return torch.relu(gamma - std).mean()


def vicreg_covariance(z: torch.Tensor) -> torch.Tensor:
    """(1/D) Σ_{i≠j} C_ij², C the unbiased covariance of embeddings `[N, D]` over the batch: `[]`."""
    n, d = z.shape
    centred = z - z.mean(0)
    cov = centred.T @ centred / (n - 1)  # [D, D]
    off_diagonal = cov - torch.diag(torch.diagonal(cov))
    return off_diagonal.pow(2).sum() / d


def sigreg(z: torch.Tensor, directions: torch.Tensor, knots: torch.Tensor) -> torch.Tensor:
    """SIGReg of embeddings `[N, D]`: for each unit direction `[D, M]` the Epps–Pulley statistic of the
    projections x = z·u against N(0, 1),

        N ∫ |φ_N(t) − e^{−t²/2}|² e^{−t²/2} dt,    φ_N(t) = (1/N) Σ_n e^{i t x_n},

    integrated by the trapezoid rule over `knots` `[K]` (t ≥ 0, from 0: the integrand is even, so the
    integral is twice that over t ≥ 0), averaged over the M directions: `[]`."""
    x = z @ directions  # [N, M]
    tx = x[..., None] * knots  # [N, M, K]
    gaussian = torch.exp(-0.5 * knots**2)  # [K]: the characteristic function of N(0, 1), also the weight
    error = (tx.cos().mean(0) - gaussian) ** 2 + tx.sin().mean(0) ** 2  # [M, K]
    statistic = 2 * torch.trapezoid(error * gaussian, knots, dim=-1)  # [M]
    return len(z) * statistic.mean()


def random_directions(dim: int, count: int, device: torch.device | None = None) -> torch.Tensor:
    """`count` directions drawn uniformly on the unit sphere of R^dim: `[dim, count]`."""
    u = torch.randn(dim, count, device=device)
    return u / u.norm(dim=0, keepdim=True)


def embedding_std(z: torch.Tensor) -> torch.Tensor:
    """The std of each dimension of embeddings `[N, D]` over the batch, averaged over dimensions: `[]`."""
    return z.std(0).mean()


def effective_rank(z: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """exp(−Σ p_k log p_k), p = σ / Σσ + ε, σ the singular values of embeddings `[N, D]` (not centred, as
    RankMe: a collapse to one point gives rank 1): `[]`, between 1 and min(N, D)."""
    s = torch.linalg.svdvals(z.float())
    p = s / (s.sum() + eps) + eps
    return torch.exp(-(p * p.log()).sum())
