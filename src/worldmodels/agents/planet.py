"""PlaNet: the Gaussian RSSM world model with model-predictive control in its latent space
(Hafner et al. 2019), no actor and no critic.

Model: the RSSM world model of `agents/rssm_agent.py` with Gaussian latents, trained on replayed sequences
with one KL term with free nats (paper eq. 3; F = 3), a Gaussian reward head and a decoder.

Acting: every step the posterior q(s_t | h_t, o_t) is filtered from the real observation (the recurrent
state carries h, z and the previous action), then a planner (CEM in the paper: horizon 12, 1000 candidates,
100 elites, 10 iterations) searches for the action sequence with the highest return imagined with the prior,
all candidates in one batch of B·P latent rollouts:

    a_t = argmax_{a_{t:t+H}} E_p[Σ_τ γ^τ c_{<τ} r(s_{τ+1})],      s_{τ+1} ~ p(s_{τ+1} | s_τ, a_τ)

where c_{<τ} is the product of predicted continue probabilities (1 on tasks that never end). The first
action is executed; during training it gets Gaussian exploration noise (σ = 0.3 in the paper).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from worldmodels.agents.base import Acted
from worldmodels.agents.rssm_agent import KLConfig, RSSMAgent, WorldModelConfig
from worldmodels.errors import ConfigError
from worldmodels.planners.protocol import Model, Plan, rollout_objective
from worldmodels.registry import AGENTS, PLANNERS, component
from worldmodels.schema import Spec, positive, unit
from worldmodels.spaces import ActSpec, ObsSpec


@AGENTS.register("planet")
class PlaNetAgent(RSSMAgent):
    @dataclass
    class Config(WorldModelConfig):
        rssm: Spec = component(
            "rssm", "rssm", deter=200, stoch=30, classes=0, hidden=200, act="elu", norm=False, learned_initial=False
        )
        """Gaussian RSSM (PlaNet: deter 200, stoch 30, hidden 200, episodes start from h = 0)."""
        reward: Spec = component("reward", "mlp", use_symlog=False)
        """Gaussian (squared-error) reward head."""
        planner: Spec = component(
            "planner", "cem", horizon=12, population=1000, elites=100, iterations=10, momentum=0.0
        )
        """Optimiser of the action sequence (`cem`, `mppi`, `icem`, `gradient`); defaults are the paper's CEM."""
        kl: KLConfig = field(default_factory=lambda: KLConfig(free_bits=3.0, balance=0.5, scale=1.0))
        """One KL with 3 free nats (β_dyn = β_rep = ½)."""
        world_model_lr: float = positive(1e-3)
        adam_eps: float = positive(1e-4)
        grad_clip: float = positive(1000.0)
        """Gradient-norm clip of the world model."""
        explore_noise: float = unit(0.3)
        """Exploration noise while collecting (the paper's 0.3; see `WorldModelConfig.explore_noise`)."""
        discount: float = unit(1.0)
        """γ of the imagined return (the paper sums rewards undiscounted over the horizon)."""
        warm_start: bool = False
        """Start each plan from the last one shifted a step (the paper starts every plan from N(0, I))."""
        use_continue: bool = True
        """Weight imagined rewards by the predicted probability that the episode is still running."""

    def __init__(self, cfg: Config, obs_spec: ObsSpec, act_spec: ActSpec):
        if cfg.rssm.name == "rssm" and cfg.rssm.cfg.classes > 0:
            raise ConfigError(
                "planet's RSSM has Gaussian latents: set agent.rssm.classes=0 (categorical latents are DreamerV2/V3's)"
            )
        super().__init__(cfg, obs_spec, act_spec)
        self.planner = PLANNERS.build(
            cfg.planner.name, cfg.planner.cfg, action_dim=act_spec.dim, discrete=act_spec.discrete
        )
        self.optimizers = {"world_model": self.world_model_optimizer()}

    # ------------------------------------------------------------------ acting

    def model(self) -> Model:
        """The planner's view of the world model, stepped with the prior: state = the RSSM's latent `[N, ...]`,
        reward `[N]` and, with `use_continue`, the continue head's probability `[N]`."""

        def step_fn(latent: Any, action: torch.Tensor) -> tuple[Any, torch.Tensor]:
            nxt = self.rssm.img_step(latent, action)
            return nxt, self.reward(self.rssm.features(nxt)).mean

        def cont(latent: Any) -> torch.Tensor:
            return self.cont(self.rssm.features(latent)).mean

        return Model(step_fn, cont=cont if self.cfg.use_continue else None)

    def plan(self, post: Any, prev: torch.Tensor | None, reset: torch.Tensor) -> Plan:
        """Optimise the next H actions from posterior states `[N, ...]`; `prev` `[N, H, A]`: the last plan's centre."""
        last = Plan(prev, prev, prev.new_zeros(len(prev))) if self.cfg.warm_start and prev is not None else None
        x0, reuse = self.planner.warm_start(last, len(reset), reset.device, reset)
        return self.planner.optimize(rollout_objective(self.model(), post, self.cfg.discount), x0, reuse)

    @torch.no_grad()
    def act(self, obs: Any, is_first: torch.Tensor, state: Any, explore: bool) -> Acted:
        post = self.filter(obs, is_first, state)
        plan = self.plan(post, None if state is None else state.get("plan"), is_first)
        action, noise = plan.actions[:, 0], None
        if explore:
            action, noise = self.explore(action, is_first, None if state is None else state.get("noise"))
        return Acted(action, {"latent": post, "action": action, "plan": plan.centre, "noise": noise})
