"""Behaviour learning in imagination, shared by every agent that trains an actor and a critic on
rollouts of its world model (the latent MLP model, DreamerV1/V2/V3).

    R_t = r_{t+1} + γ c_{t+1} ((1 − λ) v(s_{t+1}) + λ R_{t+1}),   R_H = v(s_H)           (λ-return)
    actor:  −E[w_t (ρ sg(A_t / S) ln π(a_t|s_t) + (1 − ρ) R_t / S + η H[π(·|s_t)])]
    critic:  E[w_t (ℓ(v(s_t), sg(R_t)) + β ℓ(v(s_t), sg(v̄(s_t))))]
A_t = R_t − v(s_t); ρ = 1 is REINFORCE (V2/V3 discrete), ρ = 0 backpropagates the return through the
dynamics (V1, V3 continuous), in between is V2's mix. S is the EMA of the 5th–95th percentile return
range floored at 1 (V3) or 1; v̄ is a slow EMA copy of the critic that supplies bootstrap values and
regularises the critic; w_t is the product of predicted continues before step t. With `replay_critic`
the critic also regresses λ-returns along the replayed windows themselves, from their real rewards and
terminations (DreamerV3's 2024 revision adds such a replay loss): there a termination the continue
head has not learnt yet still reaches the critic, and a return runs back over the window's 64 steps
rather than the 15 of an imagined rollout.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from worldmodels.agents.base import Metrics, adam, frozen, step
from worldmodels.agents.holds import HoldConfig, HoldState, hold
from worldmodels.agents.novelty import Novelty, NoveltyConfig
from worldmodels.agents.time_noise import NoiseState, TimeNoiseConfig, time_noise
from worldmodels.losses import ReturnScale, lambda_return
from worldmodels.nn import OneHotDist, ema_update
from worldmodels.nn.precision import Precision, precision
from worldmodels.registry import POLICIES, VALUES, component
from worldmodels.schema import Spec, non_negative, positive, unit
from worldmodels.spaces import ActSpec

Imagine = Callable[[nn.Module, bool], tuple[torch.Tensor, torch.Tensor]]
"""(actor, reparameterised) → features `[H+1, N, F]` of the imagined states and actions `[H, N, A]`."""


@dataclass
class BehaviourConfig(HoldConfig, TimeNoiseConfig, NoveltyConfig):
    """Fields of every agent that learns behaviour in imagination (its `Config` inherits them)."""

    discrete_actor: Spec = component("policy", "categorical")
    """Policy used when the action space is discrete."""
    continuous_actor: Spec = component("policy", "gaussian")
    """Policy used when the action space is continuous."""
    critic: Spec = component("value", "mlp")
    actor_lr: float = positive(1e-4)
    critic_lr: float = positive(1e-4)
    adam_eps: float = positive(1e-6)
    grad_clip: float = positive(100.0)
    """Gradient-norm clip, per optimiser."""
    imagination_horizon: int = positive(15)
    """Imagined steps per start state."""
    imagination_starts: int = non_negative(0)
    """Posterior states that start imagined rollouts, drawn at random from each batch (0: all of its B·T
    states, as in the papers). Fewer make the behaviour update cheaper on a CPU."""
    gamma: float = unit(0.997)
    lambda_return: float = unit(0.95)
    """λ of the λ-return."""
    entropy: float = non_negative(1e-3)
    """Entropy bonus η (on the return scale S)."""
    actor_gradient: Literal["auto", "reinforce", "dynamics", "mix"] = "auto"
    """`auto`: REINFORCE for discrete actions, backprop through the dynamics for continuous ones."""
    reinforce_mix: float = unit(0.5)
    """ρ, the weight of REINFORCE with `actor_gradient: mix` (DreamerV2)."""
    return_norm: bool = True
    """Divide returns and advantages by the percentile return scale S (DreamerV3)."""
    use_ema_critic: bool = True
    """Bootstrap from, and regularise towards, a slow EMA copy of the critic."""
    critic_ema: float = unit(0.98)
    """Decay of the slow critic."""
    critic_ema_reg: float = non_negative(1.0)
    """β, the weight of the slow-critic regulariser."""
    eval_policy: Literal["mode", "sample"] = "mode"
    """How evaluation acts: the actor's most likely action (DreamerV1/V2) or a sample of it (DreamerV3 and
    `latent_mlp`, which evaluate the stochastic policy they learnt: the mode of a near-uniform discrete actor
    can be one action forever, e.g. never moving the paddle, and a continuous actor can rely on its noise)."""
    hold_probability: float = unit(0.0)
    """ε of exploration in time while collecting (`agents/holds.py`): where the actor is still undecided, a
    random action held for a heavy-tailed number of steps; 0: the actor's samples. Discrete actions of a
    categorical actor only (the gate reads its probabilities): a continuous actor explores by its own noise,
    which `noise_colour` may colour in time."""
    actor_updates_per_batch: int = positive(1)
    critic_updates_per_batch: int = positive(1)
    replay_critic: float = non_negative(0.0)
    """Weight of the critic's loss on λ-returns along the replayed windows (real rewards and terminations,
    bootstrapped by the slow critic); 0: the critic learns from imagination alone."""


@dataclass
class Replayed:
    """The replayed windows imagination starts from, `[B, T, ...]`: posterior features and what really
    happened on arriving at each step."""

    features: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    terminal: torch.Tensor
    first: torch.Tensor

    @classmethod
    def of(cls, features: torch.Tensor, batch: dict[str, torch.Tensor]) -> Replayed:
        """The windows of a replayed `batch` with their posterior `features` `[B, T, F]`."""
        return cls(features.detach(), batch["action"], batch["reward"], batch["is_terminal"], batch["is_first"])


class ActorCritic(nn.Module):
    """Actor, critic, slow critic and return scale, with their own optimisers."""

    def __init__(self, cfg: BehaviourConfig, feat_dim: int, act_spec: ActSpec, arithmetic: Precision = "float32"):
        """`arithmetic`: the precision of the updates' forward passes (`nn/precision.py`)."""
        super().__init__()
        self.cfg = cfg
        self.arithmetic = arithmetic
        spec = cfg.discrete_actor if act_spec.discrete else cfg.continuous_actor
        self.actor = POLICIES.build(spec.name, spec.cfg, in_dim=feat_dim, action_dim=act_spec.dim)
        self.critic = VALUES.build(cfg.critic.name, cfg.critic.cfg, in_dim=feat_dim)
        self.slow_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.return_scale = ReturnScale()
        self.optimizers = {
            "actor": adam(self.actor.parameters(), cfg.actor_lr, cfg.adam_eps),
            "critic": adam(self.critic.parameters(), cfg.critic_lr, cfg.adam_eps),
        }
        mode = cfg.actor_gradient
        if mode == "auto":
            mode = "reinforce" if act_spec.discrete else "dynamics"
        self.rho = {"reinforce": 1.0, "dynamics": 0.0, "mix": cfg.reinforce_mix}[mode]
        self.hold_probability = cfg.hold_probability if act_spec.discrete else 0.0
        self.noise_colour = 0.0 if act_spec.discrete else cfg.noise_colour
        self.novelty = None
        if cfg.novelty is not None:
            self.novelty = Novelty(cfg, feat_dim, act_spec.dim, cfg.adam_eps, cfg.grad_clip)
            self.optimizers["novelty"] = self.novelty.optimizer

    def act(
        self, features: torch.Tensor, explore: bool, is_first: torch.Tensor, carried: HoldState | NoiseState | None
    ) -> tuple[torch.Tensor, HoldState | NoiseState | None]:
        """Actions `[N, A]` of the actor from `features` `[N, F]` (sampled while collecting, by `eval_policy`
        in evaluation) and the exploration in time to carry to the next step (`is_first` `[N]`): the holds
        of discrete actions (`hold_probability`), the noise sequences of continuous ones (`noise_colour`)."""
        policy = self.actor(features)
        if explore and self.noise_colour > 0:
            eps, carried = time_noise(policy.mode, is_first, carried, self.cfg)
            return policy.sample_from(eps), carried
        action = policy.sample() if explore or self.cfg.eval_policy == "sample" else policy.mode
        if explore and self.hold_probability > 0 and isinstance(policy, OneHotDist):  # the gate reads its probs
            index, carried = hold(action.argmax(-1), policy.probs, is_first, carried, self.hold_probability, self.cfg)
            action = torch.nn.functional.one_hot(index, action.shape[-1]).to(action.dtype)
        return action, carried

    def starts(self, n: int, device: torch.device) -> torch.Tensor:
        """Which of a batch's `n` flattened posterior states start imagined rollouts `[N]`."""
        k = self.cfg.imagination_starts
        return torch.randperm(n, device=device)[:k] if 0 < k < n else torch.arange(n, device=device)

    def learn(
        self,
        imagine: Imagine,
        reward_cont: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
        start_cont: torch.Tensor,
        replayed: Replayed | None = None,
    ) -> Metrics:
        """Actor and critic updates on fresh imagined rollouts. The caller freezes the world model.

        `reward_cont(features [H, N, F])` → predicted rewards and continue probabilities `[H, N]`;
        `start_cont` `[N]`: whether each start state is itself non-terminal; `replayed`: the windows the
        starts came from, for `replay_critic` and the novelty ensemble (`agents/novelty.py`).
        """
        cfg = self.cfg
        metrics: Metrics = {}
        if self.novelty is not None and replayed is not None:
            metrics.update(self.novelty.update(replayed.features, replayed.action, replayed.first))
        backprop = self.rho < 1  # the return must be differentiable in the actions
        amp = functools.partial(precision, self.arithmetic, start_cont.device)  # around forward passes only
        for k in range(max(cfg.actor_updates_per_batch, cfg.critic_updates_per_batch)):
            bootstrap = self.slow_critic if cfg.use_ema_critic else self.critic
            with frozen(self.critic), torch.set_grad_enabled(backprop), amp():
                feats, actions = imagine(self.actor, backprop)
                reward, cont = reward_cont(feats[1:])  # [H, N]
                if self.novelty is not None:
                    intrinsic = self.novelty.reward(feats[:-1], actions)
                    reward = reward + intrinsic
                    metrics["novelty/reward"] = intrinsic.mean().detach()
                value = bootstrap(feats).mean  # [H+1, N]
                returns = lambda_return(reward.T, cfg.gamma * cont.T, value.T, cfg.lambda_return).T  # [H, N]
            weight = torch.cumprod(torch.cat([start_cont[None], cont[:-1]]), 0).detach()  # [H, N]
            scale = self.return_scale.update(returns) if cfg.return_norm else returns.new_ones(())
            if k < cfg.actor_updates_per_batch:
                with amp():
                    policy = self.actor(feats[:-1] if backprop else feats[:-1].detach())
                    entropy = policy.entropy()  # [H, N]
                    objective = returns / scale * (1 - self.rho)
                    if self.rho > 0:
                        advantage = ((returns - value[:-1]) / scale).detach()
                        objective = objective + self.rho * policy.log_prob(actions.detach()) * advantage
                    actor_loss = -(weight * (objective + cfg.entropy * entropy)).mean()
                metrics.update(step(self.optimizers["actor"], actor_loss, cfg.grad_clip, "actor"))
                metrics["behaviour/entropy"] = entropy.mean().detach()
            if k < cfg.critic_updates_per_batch:
                with amp():
                    critic = self.critic(feats[:-1].detach())
                    critic_loss = critic.loss(returns.detach())
                    if cfg.use_ema_critic:  # `value` came from the slow critic
                        critic_loss = critic_loss + cfg.critic_ema_reg * critic.loss(value[:-1].detach())
                    critic_loss = (weight * critic_loss).mean()
                    if cfg.replay_critic > 0 and replayed is not None:
                        replay_loss = self.replay_loss(replayed, bootstrap)
                        critic_loss = critic_loss + cfg.replay_critic * replay_loss
                        metrics["loss/critic_replay"] = replay_loss.detach()
                metrics.update(step(self.optimizers["critic"], critic_loss, cfg.grad_clip, "critic"))
                ema_update(self.slow_critic, self.critic, 1 - cfg.critic_ema)
        metrics.update(
            {
                "behaviour/return": returns.mean().detach(),
                "behaviour/value": value.mean().detach(),
                "behaviour/return_scale": scale.detach(),
                "behaviour/continue": cont.mean().detach(),
            }
        )
        return metrics

    def replay_loss(self, replayed: Replayed, bootstrap: nn.Module) -> torch.Tensor:
        """The critic's loss on λ-returns along replayed windows: real rewards and terminations, `bootstrap`
        values; the last state of each window and of each episode in it gives no target."""
        feats, terminal = replayed.features, replayed.terminal.bool()
        cut = replayed.first[:, 1:].bool()  # the step out of state t starts a new episode
        with torch.no_grad():
            value = bootstrap(feats).mean  # [B, T]
        discount = self.cfg.gamma * (1.0 - terminal[:, 1:].float())
        returns = lambda_return(replayed.reward[:, 1:], discount, value, self.cfg.lambda_return, cut)
        valid = ~(cut | terminal[:, :-1])
        loss = self.critic(feats[:, :-1]).loss(returns)
        return (loss * valid).sum() / valid.sum().clamp(min=1)
