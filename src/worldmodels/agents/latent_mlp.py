"""The minimal latent world model: an encoder to a Gaussian latent, MLP dynamics, reward and continue
heads, and an actor-critic trained on imagined rollouts with λ-returns.

World model (per replayed step t, transitions kept inside an episode):
    q(z_t | o_t)                   encoder + Gaussian latent (the posterior)
    p(z_{t+1} | z_t, a_t)          MLP dynamics (the prior)
    L = −ln p(o_t | z_t) + 0.5·max(1, KL[sg(q_{t+1}) ‖ p]) + 0.1·max(1, KL[q_{t+1} ‖ sg(p)])
        − ln p(r_{t+1} | z_{t+1}) − ln p(c_{t+1} | z_{t+1})
Behaviour, from every posterior sample as a start, H imagined steps under the actor:
    R_t = r_{t+1} + γ c_{t+1} ((1 − λ) v(z_{t+1}) + λ R_{t+1})                 (λ-return)
    actor:  −E[w_t (sg((R_t − v_t)/S) ln π(a_t|z_t) + η H[π])]   discrete (REINFORCE)
            −E[w_t (R_t / S + η H[π])]                            continuous (backprop through dynamics)
    critic: E[w_t ((v_t − sg(R_t))² + (v_t − sg(v̄_t))²)]         v̄: slow EMA critic
with S the percentile return scale and w_t the product of predicted continues before t.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import distributions as D

from worldmodels.agents.base import Agent, adam, frozen, step
from worldmodels.config import Spec, component, non_negative, positive, unit
from worldmodels.envs.spaces import ActSpec, ObsSpec, obs_map
from worldmodels.losses import ReturnScale, kl_split, lambda_return
from worldmodels.registry import (
    AGENTS,
    CONTINUES,
    DECODERS,
    DYNAMICS,
    ENCODERS,
    POLICIES,
    REPRESENTATIONS,
    REWARDS,
    VALUES,
)


def _from(dist: D.Independent, t: slice) -> D.Independent:
    """The Gaussian `dist` over `[B, T, Z]` restricted to time steps `t`."""
    return D.Independent(D.Normal(dist.base_dist.loc[:, t], dist.base_dist.scale[:, t]), 1)


@AGENTS.register("latent_mlp")
class LatentMLPAgent(Agent):
    @dataclass
    class Config:
        encoder: Spec = component("encoder", "multi")
        representation: Spec = component("representation", "gaussian")
        dynamics: Spec = component("dynamics", "latent_mlp")
        decoder: Spec = component("decoder", "multi")
        reward: Spec = component("reward", "mlp")
        cont: Spec = component("continue", "mlp")
        discrete_actor: Spec = component("policy", "categorical")
        """Policy used when the action space is discrete."""
        continuous_actor: Spec = component("policy", "gaussian")
        """Policy used when the action space is continuous."""
        critic: Spec = component("value", "mlp")
        use_reconstruction: bool = True
        """Train the latent to reconstruct observations; off, it learns from dynamics, reward and continue alone."""
        world_model_lr: float = positive(1e-3)
        actor_lr: float = positive(1e-4)
        critic_lr: float = positive(1e-4)
        adam_eps: float = positive(1e-6)
        grad_clip: float = positive(100.0)
        """Gradient-norm clip, per optimiser."""
        horizon: int = positive(15)
        """Imagined steps per start state."""
        gamma: float = unit(0.997)
        lam: float = unit(0.95)
        """λ of the λ-return."""
        free_bits: float = non_negative(1.0)
        """KL below this many nats is not penalised."""
        dyn_scale: float = non_negative(0.5)
        rep_scale: float = non_negative(0.1)
        entropy: float = non_negative(1e-3)
        """Entropy bonus η (on the return scale S)."""
        critic_ema: float = unit(0.98)
        """Decay of the slow critic used for bootstrapping and as a regulariser."""
        critic_ema_reg: float = non_negative(1.0)
        actor_gradient: Literal["auto", "reinforce", "dynamics"] = "auto"
        """`auto`: REINFORCE for discrete actions, backprop through the dynamics for continuous ones."""

    def __init__(self, cfg: Config, obs_spec: ObsSpec, act_spec: ActSpec):
        super().__init__(obs_spec, act_spec)
        self.cfg = cfg
        A = act_spec.dim
        self.encoder = ENCODERS.build(cfg.encoder.name, cfg.encoder.cfg, obs_spec=obs_spec)
        self.representation = REPRESENTATIONS.build(
            cfg.representation.name, cfg.representation.cfg, in_dim=self.encoder.out_dim
        )
        Z = self.representation.latent_dim
        self.dynamics = DYNAMICS.build(cfg.dynamics.name, cfg.dynamics.cfg, latent_dim=Z, action_dim=A)
        self.decoder = DECODERS.build(cfg.decoder.name, cfg.decoder.cfg, in_dim=Z, obs_spec=obs_spec)
        self.reward = REWARDS.build(cfg.reward.name, cfg.reward.cfg, in_dim=Z)
        self.cont = CONTINUES.build(cfg.cont.name, cfg.cont.cfg, in_dim=Z)
        actor = cfg.discrete_actor if act_spec.discrete else cfg.continuous_actor
        self.actor = POLICIES.build(actor.name, actor.cfg, in_dim=Z, action_dim=A)
        self.critic = VALUES.build(cfg.critic.name, cfg.critic.cfg, in_dim=Z)
        self.slow_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.return_scale = ReturnScale()
        # a tuple, not a ModuleList: the parts are registered once, under their own names
        self.world_model = (self.encoder, self.representation, self.dynamics, self.reward, self.cont) + (
            (self.decoder,) if cfg.use_reconstruction else ()
        )
        self.optimizers = {
            "world_model": adam(
                (p for m in self.world_model for p in m.parameters()), cfg.world_model_lr, cfg.adam_eps
            ),
            "actor": adam(self.actor.parameters(), cfg.actor_lr, cfg.adam_eps),
            "critic": adam(self.critic.parameters(), cfg.critic_lr, cfg.adam_eps),
        }
        mode = cfg.actor_gradient
        self.reinforce = act_spec.discrete if mode == "auto" else mode == "reinforce"

    @torch.no_grad()
    def act(self, obs: torch.Tensor, is_first: torch.Tensor, state: Any, explore: bool) -> tuple[torch.Tensor, Any]:
        z = self.representation(self.encoder(obs)).mean  # [N, Z]
        policy = self.actor(z)
        return (policy.sample() if explore else policy.mode), None

    @torch.no_grad()
    def open_loop(self, obs: torch.Tensor, action: torch.Tensor, context: int) -> torch.Tensor:
        z = self.representation(self.encoder(obs_map(lambda x: x[:context], obs))).mean  # [C, Z]
        latents = list(z)
        for t in range(context, action.shape[0]):
            latents.append(self.dynamics(latents[-1], action[t]).mean)
        return self.decoder(torch.stack(latents)).mean

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        start, start_cont, metrics = self._world_model_step(batch)
        metrics.update(self._behaviour_step(start, start_cont))
        self.updates += 1
        return metrics

    # ------------------------------------------------------------------ world model

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
        metrics.update({f"world_model/{k}": v.item() for k, v in losses.items()})
        metrics["world_model/kl"] = masked(kl).item()
        return z.detach().flatten(0, 1), cont.flatten(0, 1), metrics

    # ------------------------------------------------------------------ behaviour

    def _imagine(self, start: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Roll the actor through the dynamics: states `[H+1, N, Z]`, actions `[H, N, A]`."""
        states, actions = [start], []
        z = start
        for _ in range(self.cfg.horizon):
            policy = self.actor(z)
            a = policy.sample() if self.reinforce else policy.rsample()
            z = self.dynamics(z, a).rsample()
            states.append(z)
            actions.append(a)
        return torch.stack(states), torch.stack(actions)

    def _behaviour_step(self, start: torch.Tensor, start_cont: torch.Tensor) -> dict[str, float]:
        cfg = self.cfg
        with frozen(*self.world_model, self.critic), torch.set_grad_enabled(not self.reinforce):
            states, actions = self._imagine(start)
            reward = self.reward(states[1:]).mean  # [H, N]
            cont = self.cont(states[1:]).mean  # [H, N]
            value = self.slow_critic(states).mean  # [H+1, N]
            returns = lambda_return(reward.T, cfg.gamma * cont.T, value.T, cfg.lam).T  # [H, N]
        # w_t: probability that the imagined episode is still running at step t
        weight = torch.cumprod(torch.cat([start_cont[None], cont[:-1]]), 0).detach()  # [H, N]
        scale = self.return_scale.update(returns)

        policy = self.actor(states[:-1].detach() if self.reinforce else states[:-1])
        entropy = policy.entropy()  # [H, N]
        if self.reinforce:
            advantage = ((returns - value[:-1]) / scale).detach()
            objective = policy.log_prob(actions.detach()) * advantage
        else:
            objective = returns / scale
        actor_loss = -(weight * (objective + cfg.entropy * entropy)).mean()
        metrics = step(self.optimizers["actor"], actor_loss, cfg.grad_clip, "actor")

        target = returns.detach()
        critic = self.critic(states[:-1].detach())
        critic_loss = critic.loss(target) + cfg.critic_ema_reg * critic.loss(value[:-1].detach())
        metrics.update(step(self.optimizers["critic"], (weight * critic_loss).mean(), cfg.grad_clip, "critic"))
        with torch.no_grad():
            for slow, fast in zip(self.slow_critic.parameters(), self.critic.parameters()):
                slow.lerp_(fast, 1 - cfg.critic_ema)
        metrics.update(
            {
                "behaviour/return": returns.mean().item(),
                "behaviour/value": value.mean().item(),
                "behaviour/entropy": entropy.mean().item(),
                "behaviour/return_scale": scale.item(),
                "behaviour/continue": cont.mean().item(),
            }
        )
        return metrics
