"""DIAMOND (Alonso et al., NeurIPS 2024): a diffusion model of the next frame is the world, and an
actor-critic learns entirely in the pixel world it dreams.

    denoiser       x_{t+1} ~ D_θ(· | x_{t−K+1 … t}, a_{t−K+1 … t})   EDM (or DDPM, DiT), `denoisers/`   (§2.2–3)
    reward / end   r̂_t, d̂_t from (x_t, a_t, x_{t+1}) and an LSTM over the transitions before   (§3)
    behaviour      π(a_t | x̂_≤t), V(x̂_≤t) on dreamed frames, λ-returns, entropy bonus          (§3, as IRIS)

Three update streams with their own batches, starts and linear learning-rate warm-ups: the denoiser on
windows of K + 1 frames (the last one generated from the K before it), the reward/end model on windows of
`horizon` + K transitions, the actor-critic on windows of K real frames that burn in its LSTM and the
reward/end model's and give the denoiser its first context; from the last it dreams `horizon` steps, each
next frame sampled in `steps` sampler steps and labelled with the most likely reward sign and end (the
paper's hard labels). The agent acts on the real frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from worldmodels.agents.base import Acted, Agent, Dream, Metrics, step
from worldmodels.agents.pixel_actor_critic import PixelActorCritic, imagination_loss
from worldmodels.agents.reward_end import RewardEndModel, labels
from worldmodels.data.sources import SampleSpec
from worldmodels.denoisers.conditioning import to_model, to_pixels
from worldmodels.denoisers.edm import frame_of
from worldmodels.errors import ConfigError
from worldmodels.phases import PhaseSpec, Stream
from worldmodels.registry import AGENTS, DENOISERS, component
from worldmodels.schema import Spec, non_negative, positive, unit
from worldmodels.spaces import ActSpec, ObsSpec


def adamw(params: Any, lr: float, decay: float) -> torch.optim.AdamW:
    return torch.optim.AdamW(list(params), lr=lr, eps=1e-8, weight_decay=decay)


@AGENTS.register("diamond")
class DIAMONDAgent(Agent):
    @dataclass
    class Config:
        denoiser: Spec = component("denoiser", "edm_unet")
        steps: int = positive(3)
        """Sampler steps per dreamed frame (DIAMOND: 3)."""
        sampler: str = "euler"
        """The denoiser's sampler: euler or heun (edm_unet, dit), ancestral or ddim (ddpm_unet)."""
        reward_end_channels: int = positive(32)
        reward_end_halvings: int = non_negative(3)
        """Halvings of the reward/end model's CNN (DIAMOND: 3, 64 → 8; MinAtar's 10×10: at most 1)."""
        reward_end_hidden: int = positive(512)
        """LSTM units of the reward/end model."""
        reward_end_cond: int = positive(128)
        """Width of its action conditioning."""
        ac_channels: int = positive(32)
        ac_hidden: int = positive(512)
        horizon: int = positive(15)
        """Dreamed steps per start (H)."""
        gamma: float = unit(0.985)
        lambda_return: float = unit(0.95)
        entropy: float = non_negative(0.001)
        denoiser_batch: int = positive(32)
        reward_end_batch: int = positive(32)
        actor_critic_batch: int = positive(32)
        denoiser_every: float = positive(0.25)
        """Agent steps per denoiser update (DIAMOND: 400 updates per 100 agent steps; the same for each stream)."""
        reward_end_every: float = positive(0.25)
        actor_critic_every: float = positive(0.25)
        denoiser_start: int = non_negative(20000)
        """Env steps (action repeat included) before the denoiser's first update."""
        reward_end_start: int = non_negative(20000)
        actor_critic_start: int = non_negative(20000)
        denoiser_lr: float = positive(1e-4)
        """Learning rate of the denoiser (DIAMOND: 1e-4 for each of the three)."""
        reward_end_lr: float = positive(1e-4)
        actor_critic_lr: float = positive(1e-4)
        warmup: int = non_negative(100)
        """Updates over which each stream's learning rate ramps up linearly (DIAMOND: 100)."""
        eval_temperature: float = non_negative(0.5)
        """Evaluation samples actions from π^(1/T) (IRIS's test collection: T = 0.5); 0: the mode."""
        weight_decay: float = non_negative(0.01)
        """AdamW weight decay of the denoiser and the reward/end model (the actor-critic has none)."""
        denoiser_clip: float = positive(1.0)
        grad_clip: float = positive(100.0)
        """Gradient-norm clip of the reward/end model and the actor-critic."""

    def __init__(self, cfg: Config, obs_spec: ObsSpec, act_spec: ActSpec):
        super().__init__(obs_spec, act_spec)
        if not act_spec.discrete:
            raise ConfigError(
                "agent 'diamond' acts in discrete action spaces only (Atari, MinAtar); pick another agent"
            )
        self.cfg = cfg
        C, H, W = frame_of(obs_spec, cfg.denoiser.name)
        self.denoiser = DENOISERS.build(cfg.denoiser.name, cfg.denoiser.cfg, obs_spec=obs_spec, action_dim=act_spec.dim)
        if cfg.sampler not in self.denoiser.samplers:
            raise ConfigError(
                f"agent.sampler '{cfg.sampler}' is not one of denoiser '{cfg.denoiser.name}': "
                f"{', '.join(self.denoiser.samplers)}"
            )
        if H % 2**cfg.reward_end_halvings or W % 2**cfg.reward_end_halvings:
            raise ConfigError(
                f"a {H}×{W} frame cannot be halved {cfg.reward_end_halvings} times; lower agent.reward_end_halvings"
            )
        self.reward_end = RewardEndModel(
            (C, H, W), act_spec.dim, cfg.reward_end_channels, cfg.reward_end_halvings, cfg.reward_end_hidden,
            cfg.reward_end_cond,
        )  # fmt: skip
        self.actor_critic = PixelActorCritic(obs_spec.shape, act_spec.dim, cfg.ac_channels, cfg.ac_hidden)
        decay = cfg.weight_decay
        self.optimizers = {
            "denoiser": adamw(self.denoiser.parameters(), cfg.denoiser_lr, decay),
            "reward_end": adamw(self.reward_end.parameters(), cfg.reward_end_lr, decay),
            "actor_critic": adamw(self.actor_critic.parameters(), cfg.actor_critic_lr, 0.0),
        }

    def phases(self, train: Any) -> list[PhaseSpec]:
        cfg, K = self.cfg, self.denoiser.context
        windows = SampleSpec(cfg.denoiser_batch, K + 1, keys=("obs", "action"), boundary="pad_start")
        transitions = SampleSpec(cfg.reward_end_batch, cfg.horizon + K, boundary="pad_end")
        burn_in = SampleSpec(cfg.actor_critic_batch, K, boundary="pad_start")
        streams = [
            ("denoiser", windows, cfg.denoiser_every, cfg.denoiser_start),
            ("reward_end", transitions, cfg.reward_end_every, cfg.reward_end_start),
            ("actor_critic", burn_in, cfg.actor_critic_every, cfg.actor_critic_start),
        ]
        streams = tuple(Stream.per_agent_steps(*s, warmup=cfg.warmup) for s in streams)
        return [PhaseSpec("learn", "learn", streams=streams)]

    # ------------------------------------------------------------------ acting

    def initial_state(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.actor_critic.initial(n, self.device)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, is_first: torch.Tensor, state: Any, explore: bool) -> Acted:
        temperature = 1.0 if explore else self.cfg.eval_temperature
        action, state = self.actor_critic.act(obs.float(), is_first, state, temperature)
        return Acted(F.one_hot(action, self.act_spec.dim).float(), state)

    @torch.no_grad()
    def open_loop(self, obs: torch.Tensor, action: torch.Tensor, context: int) -> Dream:
        """The first `context` real frames, then frames each generated from the last K (padded as at an
        episode's start when fewer) and the real actions, with the rewards the reward/end model labels them
        with (zeros over the context)."""
        K, T = self.denoiser.context, len(obs)
        taken = torch.cat([action[1:], torch.zeros_like(action[:1])])  # the action taken in frame t
        frames = torch.cat([to_model(obs.new_zeros(K, *obs.shape[1:])), to_model(obs[:context])])  # K pads first
        taken = torch.cat([torch.zeros_like(taken[:K]), taken])
        seen = torch.arange(K + context, device=obs.device) >= K
        state = self.reward_end.burn_in(
            frames[None, :-1], taken[None, : K + context - 1], frames[None, 1:], seen[None, :-1]
        )
        reward = [obs.new_zeros(context, dtype=torch.float32)]
        for t in range(K + context, K + T):
            ctx, acts = frames[None, t - K : t], taken[None, t - K : t]
            nxt = self.denoiser.sample(ctx, acts, self.cfg.steps, self.cfg.sampler)
            logits_reward, logits_end, state = self.reward_end(ctx[:, -1:], acts[:, -1:], nxt[:, None], state)
            frames = torch.cat([frames, nxt])
            reward.append(labels(logits_reward[0], logits_end[0])[0])
        return Dream(to_pixels(frames[K:]), torch.cat(reward))

    # ------------------------------------------------------------------ learning

    def learn_denoiser(self, batch: dict[str, torch.Tensor]) -> Metrics:
        """The denoiser's loss of each window's last frame given the K before it and the actions taken in them."""
        frames = to_model(batch["obs"])  # [B, K + 1, C, H, W]
        loss, metrics = self.denoiser.loss(frames[:, :-1], batch["action"][:, 1:], frames[:, -1])
        return {**step(self.optimizers["denoiser"], loss, self.cfg.denoiser_clip, "denoiser"), **metrics}

    def learn_reward_end(self, batch: dict[str, torch.Tensor]) -> Metrics:
        """Cross-entropy of the reward sign and the end of every real transition of the window."""
        frames, mask = to_model(batch["obs"]), batch["mask"][:, 1:]
        logits_reward, logits_end, _ = self.reward_end(frames[:, :-1], batch["action"][:, 1:], frames[:, 1:])
        reward = batch["reward"][:, 1:].sign().long() + 1
        end = batch["is_terminal"][:, 1:].long()
        losses = {
            "reward": F.cross_entropy(logits_reward[mask], reward[mask]),
            "end": F.cross_entropy(logits_end[mask], end[mask]),
        }
        metrics = step(self.optimizers["reward_end"], sum(losses.values()), self.cfg.grad_clip, "reward_end")
        metrics.update({f"reward_end/{k}": v.detach() for k, v in losses.items()})
        metrics["reward_end/reward_accuracy"] = (logits_reward[mask].argmax(-1) == reward[mask]).float().mean()
        return metrics

    def learn_actor_critic(self, batch: dict[str, torch.Tensor]) -> Metrics:
        """Burn in on the window's K real frames, dream H steps from its last, and fit π and V to the
        λ-returns of the labelled rewards (`pixel_actor_critic.imagination_loss`)."""
        cfg, mask = self.cfg, batch["mask"]
        with torch.no_grad():
            state = self.actor_critic.burn_in(batch["obs"][:, :-1].float(), mask[:, :-1])
            ctx = to_model(batch["obs"])  # [B, K, C, H, W]
            acts = batch["action"][:, 1:]  # taken in frames 0 … K − 2
            memory = self.reward_end.burn_in(ctx[:, :-1], acts, ctx[:, 1:], mask[:, :-1])

        def world(action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            nonlocal ctx, acts, memory
            a = F.one_hot(action, self.act_spec.dim).float()
            taken = torch.cat([acts, a[:, None]], 1)  # [B, K, A]
            nxt = self.denoiser.sample(ctx, taken, cfg.steps, cfg.sampler)  # [B, C, H, W]
            logits_reward, logits_end, memory = self.reward_end(ctx[:, -1:], a[:, None], nxt[:, None], memory)
            ctx, acts = torch.cat([ctx[:, 1:], nxt[:, None]], 1), taken[:, 1:]
            reward, cont = labels(logits_reward[:, 0], logits_end[:, 0])
            return to_pixels(nxt).float(), reward, cont

        alive = 1.0 - batch["is_terminal"][:, -1].float()
        loss, learnt = imagination_loss(
            self.actor_critic, state, batch["obs"][:, -1].float(), world, cfg.horizon, alive, cfg.gamma,
            cfg.lambda_return, cfg.entropy,
        )  # fmt: skip
        return {**step(self.optimizers["actor_critic"], loss, cfg.grad_clip, "actor_critic"), **learnt}
