"""Dreamer V1, V2 and V3 as one algorithm whose versions differ only in config (see the presets
`configs/dreamerv1.yaml`, `dreamerv2.yaml`, `dreamerv3.yaml`).

World model on replayed sequences (`agents/rssm_agent.py`), with the RSSM filtering embeddings e_t = enc(o_t):
    L = β_pred (−ln p(o_t | s_t) − ln p(r_t | s_t) − ln p(c_t | s_t))
        + β_dyn max(F, KL[sg(q_t) ‖ p_t]) + β_rep max(F, KL[q_t ‖ sg(p_t)])        (V3 eq. 5)
    V1: one KL with free nats (β_dyn = β_rep = ½, F = 3); V2: balancing α = 0.8 (β_dyn = 0.8α', β_rep = 0.2α');
    V3: β_dyn = 0.5, β_rep = 0.1, F = 1, symlog vectors, two-hot symlog reward.
    Decoder-free (`configs/dreamerv3_decoder_free.yaml`): `use_reconstruction: false` drops −ln p(o_t | s_t),
    and a `representation_learner` (JEPA, contrastive) trains the encoder by its own objective instead.
Behaviour: actor and critic on imagined rollouts from every posterior state (`agents/behaviour.py`):
V1 backpropagates returns through the dynamics, V2 mixes in REINFORCE, V3 uses REINFORCE for discrete
and backpropagation for continuous actions, with the percentile return scale and a slow critic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from worldmodels.agents.base import Acted, Metrics, frozen
from worldmodels.agents.behaviour import ActorCritic, BehaviourConfig, Replayed
from worldmodels.agents.rssm_agent import KLConfig, RSSMAgent, WorldModelConfig
from worldmodels.heads.scalar import compile_kernels
from worldmodels.phases import Stream
from worldmodels.registry import AGENTS
from worldmodels.schema import non_negative
from worldmodels.spaces import ActSpec, ObsSpec

__all__ = ["DreamerAgent", "KLConfig"]


@AGENTS.register("dreamer")
class DreamerAgent(RSSMAgent):
    @dataclass
    class Config(WorldModelConfig, BehaviourConfig):
        world_model_pretrain_steps: int = non_negative(0)
        """The first updates train only the world model."""

    def __init__(self, cfg: Config, obs_spec: ObsSpec, act_spec: ActSpec):
        super().__init__(cfg, obs_spec, act_spec)
        self.behaviour = ActorCritic(cfg, self.rssm.feat_dim, act_spec, cfg.precision)
        if cfg.compile:
            compile_kernels(self.behaviour.critic, self.behaviour.slow_critic)
        self.optimizers = {"world_model": self.world_model_optimizer(), **self.behaviour.optimizers}

    @torch.no_grad()
    def act(self, obs: Any, is_first: torch.Tensor, state: Any, explore: bool) -> Acted:
        post = self.filter(obs, is_first, state)
        carried, noise = (None, None) if state is None else (state.get("in_time"), state.get("noise"))
        action, carried = self.behaviour.act(self.rssm.features(post), explore, is_first, carried)
        if explore:
            action, noise = self.explore(action, is_first, noise)
        return Acted(action, {"latent": post, "action": action, "in_time": carried, "noise": noise})

    def followers(self) -> list[Stream]:
        """Actor and critic on dreams from the world model's posterior states, after its first
        `world_model_pretrain_steps` updates."""
        start = self.cfg.world_model_pretrain_steps
        return [Stream("behaviour", start=start, trains=tuple(self.behaviour.optimizers), update="learn_behaviour")]

    def learn_behaviour(self, batch: dict[str, torch.Tensor]) -> Metrics:
        pick = self.behaviour.starts(batch["is_terminal"].numel(), self.device)  # by default every state
        start = self.rssm.starts(self.posterior, pick)
        start_cont = 1.0 - batch["is_terminal"].float().flatten(0, 1)[pick]
        replayed = Replayed.of(self.rssm.features(self.posterior), batch)
        with frozen(*self.world_model):
            return self.behaviour.learn(
                lambda actor, rsample: self.rssm.imagine(start, actor, self.cfg.imagination_horizon, rsample),
                self._reward_cont,
                start_cont,
                replayed,
            )
