"""JEPA, a joint-embedding predictive architecture (LeCun 2022; action-conditioned as in PLDM and DINO-WM),
as a representation learner: a context encoder f_θ, a target encoder f_θ̄ (an exponential moving average
of f_θ) and a predictor g of the next embedding given the action. From each window's first step the
predictor rolls the embedding forward open loop with the actions taken, and every prediction is regressed
onto the target encoder's embedding of the step it reached:

    ẑ_0 = f_θ(o_0),   ẑ_t = g(ẑ_{t−1}, a_t),   L_pred = 1/(T−1) Σ_{t=1}^{T−1} ‖ẑ_t − sg(f_θ̄(o_t))‖² / D

The rollout starts again from f_θ(o_t) every `horizon` steps (a long window, such as Dreamer's 64 steps,
then holds several rollouts) and at a new episode's first step (`is_first`), where the prediction into it,
across the seam, is left out of the mean.

L_pred alone is minimised by mapping every observation to one point. The anti-collapse term, on the context
embeddings f_θ(o_t) of every step, is `regulariser`: `vicreg` (variance + covariance, Bardes et al. 2022),
`sigreg` (LeJEPA's sketched isotropic Gaussian regulariser) or `none` (to show the collapse).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from worldmodels.losses.collapse import random_directions, sigreg, vicreg_covariance, vicreg_variance
from worldmodels.registry import REPRESENTATION_LEARNERS
from worldmodels.representations.embedding import Metrics, TargetEncoderConfig, TargetEncoderLearner, monitors
from worldmodels.schema import non_negative, positive
from worldmodels.spaces import Obs, ObsSpec


@REPRESENTATION_LEARNERS.register("jepa")
class JEPALearner(TargetEncoderLearner):
    """Observations `[..., *obs]` → f_θ(o) `[..., embed_dim]`; `predict` and `rollout` move embeddings by actions."""

    @dataclass
    class Config(TargetEncoderConfig):
        horizon: int = non_negative(0)
        """Open-loop steps of one rollout before it starts again from the context embedding (0: one rollout
        per window)."""
        regulariser: Literal["vicreg", "sigreg", "none"] = "vicreg"
        """The anti-collapse term on the context embeddings."""
        variance_coef: float = non_negative(1.0)
        """VICReg: weight of the variance hinge (std below `variance_target` is penalised)."""
        variance_target: float = positive(1.0)
        covariance_coef: float = non_negative(0.04)
        """VICReg: weight of the off-diagonal covariance."""
        sigreg_coef: float = non_negative(0.05)
        """SIGReg: weight of the Epps–Pulley statistic."""
        sigreg_directions: int = positive(256)
        """SIGReg: random directions drawn for each update."""
        sigreg_knots: int = positive(17)
        """SIGReg: quadrature points of the integral over t ∈ [0, 3]."""

    def __init__(self, cfg: Config, obs_spec: ObsSpec, action_dim: int):
        super().__init__(cfg, obs_spec, action_dim)
        self.register_buffer("knots", torch.linspace(0.0, 3.0, cfg.sigreg_knots), persistent=False)

    def predict(self, z: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """The embedding `[..., D]` after taking `action` `[..., A]` from embedding `z` `[..., D]`."""
        return self.predictor(z, action)

    def rollout(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Open-loop predictions `[B, H, D]` from embeddings `[B, D]` under actions `[B, H, A]`."""
        out = []
        for t in range(actions.shape[1]):
            z = self.predict(z, actions[:, t])
            out.append(z)
        return torch.stack(out, 1)

    def anti_collapse(self, z: torch.Tensor) -> tuple[torch.Tensor, Metrics]:
        """The anti-collapse term of embeddings `[N, D]` and its parts."""
        cfg = self.cfg
        if cfg.regulariser == "vicreg":
            variance, covariance = vicreg_variance(z, cfg.variance_target), vicreg_covariance(z)
            term = cfg.variance_coef * variance + cfg.covariance_coef * covariance
            return term, {"repr/variance": variance.detach(), "repr/covariance": covariance.detach()}
        if cfg.regulariser == "sigreg":
            statistic = sigreg(z, random_directions(z.shape[-1], cfg.sigreg_directions, z.device), self.knots)
            return cfg.sigreg_coef * statistic, {"repr/sigreg": statistic.detach()}
        return z.new_zeros(()), {}

    def loss(
        self, obs: Obs, action: torch.Tensor, is_first: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, Metrics]:
        """L_pred of the open-loop rollouts through windows `[B, T, *obs]` plus the anti-collapse term."""
        z = self.encoder(obs)  # [B, T, D]
        with torch.no_grad():
            target = self.target(obs)  # [B, T, D]
        B, T = action.shape[:2]
        first = torch.zeros(B, T, dtype=torch.bool, device=z.device) if is_first is None else is_first
        restart = first.clone()
        if self.cfg.horizon:
            restart[:, :: self.cfg.horizon] = True
        predicted, z_hat = [], z[:, 0]
        for t in range(1, T):
            z_hat = self.predict(z_hat, action[:, t].float())
            predicted.append(z_hat)
            z_hat = torch.where(restart[:, t, None], z[:, t], z_hat)
        error = (torch.stack(predicted, 1) - target[:, 1:]).pow(2).mean(-1)  # [B, T-1]
        kept = ~first[:, 1:]
        prediction = (error * kept).sum() / kept.sum().clamp(min=1)
        flat = z.flatten(0, 1)
        regulariser, metrics = self.anti_collapse(flat)
        loss = prediction + regulariser
        metrics |= {"repr/loss": loss.detach(), "repr/prediction": prediction.detach()}
        return loss, metrics | monitors(flat)
