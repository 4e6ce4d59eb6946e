"""The minimal latent world model: an encoder to a Gaussian latent, MLP dynamics, reward and continue
heads, and an actor-critic trained on imagined rollouts with λ-returns (`agents/behaviour.py`).

World model (per replayed step t, transitions kept inside an episode):
    q(z_t | o_t)                   encoder + Gaussian latent (the posterior)
    p(z_{t+1} | z_t, a_t)          MLP dynamics (the prior)
    L = −ln p(o_t | z_t) + 0.5·max(1, KL[sg(q_{t+1}) ‖ p]) + 0.1·max(1, KL[q_{t+1} ‖ sg(p)])
        − ln p(r_{t+1} | z_{t+1}) − ln p(c_{t+1} | z_{t+1})
Behaviour: from every posterior sample as a start, `imagination_horizon` steps under the actor
through p, with rewards and continues from the heads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import distributions as D
from torch import nn

from worldmodels.agents.base import Acted, Agent, Dream, Metrics, WindowsConfig, adam, frozen, step
from worldmodels.agents.behaviour import ActorCritic, BehaviourConfig, Replayed
from worldmodels.losses import kl_split
from worldmodels.registry import AGENTS, CONTINUES, DECODERS, DYNAMICS, ENCODERS, REPRESENTATIONS, REWARDS, component
from worldmodels.schema import Spec, non_negative, positive
from worldmodels.spaces import ActSpec, ObsSpec, obs_map


def _from(dist: D.Independent, t: slice) -> D.Independent:
    """The Gaussian `dist` over `[B, T, Z]` restricted to time steps `t`."""
    return D.Independent(D.Normal(dist.base_dist.loc[:, t], dist.base_dist.scale[:, t]), 1)


@AGENTS.register("latent_mlp")
class LatentMLPAgent(Agent):
    @dataclass
    class Config(WindowsConfig, BehaviourConfig):
        encoder: Spec = component("encoder", "multi")
        representation: Spec = component("representation", "gaussian")
        dynamics: Spec = component("dynamics", "latent_mlp")
        decoder: Spec = component("decoder", "multi")
        reward: Spec = component("reward", "mlp")
        cont: Spec = component("continue", "mlp")
        use_reconstruction: bool = True
        """Train the latent to reconstruct observations; off, it learns from dynamics, reward and continue alone."""
        world_model_lr: float = positive(1e-3)
        free_bits: float = non_negative(1.0)
        """KL below this many nats is not penalised."""
        dyn_scale: float = non_negative(0.5)
        rep_scale: float = non_negative(0.1)

    def __init__(self, cfg: Config, obs_spec: ObsSpec, act_spec: ActSpec):
        super().__init__(obs_spec, act_spec)
        self.cfg = cfg
        self.terminal_windows = cfg.terminal_windows
        self.encoder = ENCODERS.build(cfg.encoder.name, cfg.encoder.cfg, obs_spec=obs_spec)
        self.representation = REPRESENTATIONS.build(
            cfg.representation.name, cfg.representation.cfg, in_dim=self.encoder.out_dim
        )
        Z = self.representation.latent_dim
        self.dynamics = DYNAMICS.build(cfg.dynamics.name, cfg.dynamics.cfg, latent_dim=Z, action_dim=act_spec.dim)
        self.decoder = DECODERS.build(cfg.decoder.name, cfg.decoder.cfg, in_dim=Z, obs_spec=obs_spec)
        self.reward = REWARDS.build(cfg.reward.name, cfg.reward.cfg, in_dim=Z)
        self.cont = CONTINUES.build(cfg.cont.name, cfg.cont.cfg, in_dim=Z)
        self.behaviour = ActorCritic(cfg, Z, act_spec)
        # a tuple, not a ModuleList: the parts are registered once, under their own names
        self.world_model: tuple[nn.Module, ...] = (
            self.encoder,
            self.representation,
            self.dynamics,
            self.reward,
            self.cont,
        )
        if cfg.use_reconstruction:
            self.world_model += (self.decoder,)
        wm_params = (p for m in self.world_model for p in m.parameters())
        self.optimizers = {
            "world_model": adam(wm_params, cfg.world_model_lr, cfg.adam_eps),
            **self.behaviour.optimizers,
        }

    @torch.no_grad()
    def act(self, obs: torch.Tensor, is_first: torch.Tensor, state: Any, explore: bool) -> Acted:
        z = self.representation(self.encoder(obs)).mean  # [N, Z]
        return Acted(*self.behaviour.act(z, explore, is_first, state))

    @torch.no_grad()
    def open_loop(self, obs: torch.Tensor, action: torch.Tensor, context: int) -> Dream:
        z = self.representation(self.encoder(obs_map(lambda x: x[:context], obs))).mean  # [C, Z]
        latents = list(z)
        for t in range(context, action.shape[0]):
            latents.append(self.dynamics(latents[-1], action[t]).mean)
        z = torch.stack(latents)
        return Dream(self.decoder(z).mean, self.reward(z).mean)

    def update(self, batch: dict[str, torch.Tensor]) -> Metrics:
        start, start_cont, metrics = self._world_model_step(batch)
        replayed = Replayed.of(start.view(*batch["reward"].shape, -1), batch)
        pick = self.behaviour.starts(len(start), start.device)
        start, start_cont = start[pick], start_cont[pick]
        with frozen(*self.world_model):
            metrics.update(
                self.behaviour.learn(
                    lambda actor, rsample: self._imagine(start, actor, rsample),
                    self._reward_cont,
                    start_cont,
                    replayed,
                )
            )
        return metrics

    def _world_model_step(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, dict]:
        cfg = self.cfg
        obs, action, reward = batch["obs"], batch["action"], batch["reward"]  # [B, T, ...]
        cont = 1.0 - batch["is_terminal"].float()  # [B, T]
        inside = (~batch["is_first"][:, 1:]).float()  # transition t → t+1 stays in one episode, [B, T-1]

        post = self.representation(self.encoder(obs))  # q(z_t | o_t)
        z = post.rsample()  # [B, T, Z]
        prior = self.dynamics(z[:, :-1], action[:, 1:])  # p(z_{t+1} | z_t, a_t)
        dyn, rep, kl = kl_split(_from(post, slice(1, None)), prior, cfg.free_bits)

        def masked(x: torch.Tensor) -> torch.Tensor:
            return (x * inside).sum() / inside.sum().clamp(min=1)

        losses = {
            "dyn": masked(dyn),
            "rep": masked(rep),
            "reward": masked(self.reward(z[:, 1:]).loss(reward[:, 1:])),
            "cont": masked(-self.cont(z[:, 1:]).log_prob(cont[:, 1:])),
        }
        if cfg.use_reconstruction:
            losses["recon"] = self.decoder(z).loss(obs).mean()
        total = (
            cfg.dyn_scale * losses["dyn"]
            + cfg.rep_scale * losses["rep"]
            + losses["reward"]
            + losses["cont"]
            + losses.get("recon", 0.0)
        )
        metrics = step(self.optimizers["world_model"], total, cfg.grad_clip, "world_model")
        metrics.update({f"world_model/{k}": v.detach() for k, v in losses.items()})
        metrics["world_model/kl"] = masked(kl).detach()
        return z.detach().flatten(0, 1), cont.flatten(0, 1), metrics

    def _imagine(self, start: torch.Tensor, actor: nn.Module, rsample: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Roll `actor` through the dynamics from `start` `[N, Z]`: states `[H+1, N, Z]`, actions `[H, N, A]`."""
        states, actions = [start], []
        z = start
        for _ in range(self.cfg.imagination_horizon):
            policy = actor(z)
            a = policy.rsample() if rsample else policy.sample()
            z = self.dynamics(z, a).rsample()
            states.append(z)
            actions.append(a)
        return torch.stack(states), torch.stack(actions)

    def _reward_cont(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.reward(states).mean, self.cont(states).mean
