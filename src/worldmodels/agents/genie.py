"""Genie (Bruce et al., ICML 2024): a world model learnt from video alone that a person (or a policy) plays
by choosing latent actions.

    tokenizer        x_1…x_T → z_1…z_T, K tokens a frame      ST-ViViT VQ-VAE, reconstruction + VQ     (§2.1)
    latent actions   ã_t = LAM(x_1…x_{t+1}) ∈ {1…8}          VQ-VAE that reconstructs x_{t+1} from x_≤t, ã_t
    dynamics         p(z_{t+1} | z_≤t, ã_≤t)                 MaskGIT: masked-token cross-entropy

Three `fit` phases over an offline dataset (`train.offline`, frames alone are enough): the tokenizer,
then the latent action model, then the dynamics, which reads the tokenizer's tokens and the latent action
model's actions without training either. The paper trains the last two together; as the dynamics passes no
gradient to the latent action model, that one learns the same alone, and the dynamics no longer spends
updates on latent actions that have not formed yet (on MinAtar they form suddenly, after 2,500 updates or
more).
To play, a prompt frame is tokenized and each chosen latent action generates the next frame's tokens by
MaskGIT's iterative decoding (`generate`); `train/controllability.py` measures how much the latent
actions steer it (ΔtPSNR).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from worldmodels.agents.base import Acted, Agent, Dream, Metrics, adam, step
from worldmodels.data.sources import SampleSpec
from worldmodels.errors import ConfigError
from worldmodels.phases import PhaseSpec, Stream
from worldmodels.registry import AGENTS, LATENT_ACTIONS, MASKED_DYNAMICS, TOKENIZERS, component
from worldmodels.schema import Spec, param, positive
from worldmodels.spaces import ActSpec, ObsSpec


@AGENTS.register("genie")
class GenieAgent(Agent):
    @dataclass
    class Config:
        tokenizer: Spec = component("tokenizer", "st_vqvae")
        latent_actions: Spec = component("latent_action", "vq_lam")
        dynamics: Spec = component("masked_dynamics", "maskgit")
        clip: int = param(16, lambda v: v >= 2, "an integer >= 2")
        """Frames per training clip (Genie: 16); generation conditions on at most `clip` − 1 frames."""
        tokenizer_batch: int = positive(32)
        """Clips per tokenizer update."""
        batch: int = positive(32)
        """Clips per update of the latent action model, and of the dynamics."""
        tokenizer_steps: int = positive(10_000)
        """Updates of the tokenizer phase."""
        latent_actions_steps: int = positive(10_000)
        """Updates of the latent action model's phase."""
        dynamics_steps: int = positive(10_000)
        """Updates of the dynamics' phase."""
        tokenizer_lr: float = positive(3e-4)
        latent_actions_lr: float = positive(3e-4)
        dynamics_lr: float = positive(3e-4)
        grad_clip: float = positive(1.0)

    def __init__(self, cfg: Config, obs_spec: ObsSpec, act_spec: ActSpec):
        super().__init__(obs_spec, act_spec)
        self.cfg = cfg
        self.tokenizer = TOKENIZERS.build(cfg.tokenizer.name, cfg.tokenizer.cfg, obs_spec=obs_spec)
        self.latent_actions = LATENT_ACTIONS.build(cfg.latent_actions.name, cfg.latent_actions.cfg, obs_spec=obs_spec)
        self.dynamics = MASKED_DYNAMICS.build(
            cfg.dynamics.name, cfg.dynamics.cfg,
            vocab=self.tokenizer.vocab, tokens=self.tokenizer.tokens, actions=self.latent_actions.actions,
        )  # fmt: skip
        self.optimizers = {
            "tokenizer": adam(self.tokenizer.parameters(), cfg.tokenizer_lr, 1e-8),
            "latent_actions": adam(self.latent_actions.parameters(), cfg.latent_actions_lr, 1e-8),
            "dynamics": adam(self.dynamics.parameters(), cfg.dynamics_lr, 1e-8),
        }

    def phases(self, train: Any) -> list[PhaseSpec]:
        cfg = self.cfg
        tokenizer_clips = SampleSpec(cfg.tokenizer_batch, cfg.clip, keys=("obs",))
        clips = SampleSpec(cfg.batch, cfg.clip, keys=("obs",))
        tokenizer = Stream("tokenizer", tokenizer_clips, trains=("tokenizer",), update="learn_tokenizer")
        latent_actions = Stream("latent_actions", clips, trains=("latent_actions",), update="learn_latent_actions")
        dynamics = Stream("dynamics", clips, trains=("dynamics",), update="learn_dynamics")
        return [
            PhaseSpec(
                "tokenizer", "fit", budget=cfg.tokenizer_steps, streams=(tokenizer,), gives="a trained tokenizer"
            ),
            PhaseSpec(
                "latent_actions",
                "fit",
                budget=cfg.latent_actions_steps,
                streams=(latent_actions,),
                gives="a trained latent action model",
            ),
            PhaseSpec("dynamics", "fit", budget=cfg.dynamics_steps, streams=(dynamics,)),
        ]

    def act(self, obs: torch.Tensor, is_first: torch.Tensor, state: Any, explore: bool) -> Acted:
        raise ConfigError(
            "agent 'genie' acts in the world it generates, not in an environment: play it with `wm play RUN "
            "--actions 0,3,3,1` and measure it with `wm eval RUN --delta-psnr`"
        )

    # ------------------------------------------------------------------ generating

    def render(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens `[B, T, K]` → frames `[B, T, H, W, C]` in pixel units, a temporal tokenizer decoding each
        frame with at most the `clip` − 1 frames before it, as it learned to."""
        clip = self.cfg.clip
        if not self.tokenizer.temporal or tokens.shape[1] <= clip:
            return self.tokenizer.decode(tokens).clamp(0, 255)
        later = [self.tokenizer.decode(tokens[:, t - clip + 1 : t + 1])[:, -1] for t in range(clip, tokens.shape[1])]
        return torch.cat([self.tokenizer.decode(tokens[:, :clip]), torch.stack(later, 1)], 1).clamp(0, 255)

    @torch.no_grad()
    def generate(self, prompt: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """uint8 prompt frames `[B, P, H, W, C]` (P ≤ `clip`) and latent actions `[B, P − 1 + n]` (those
        between the prompt's frames, then one per frame to generate) → `[B, P + n, H, W, C]` in pixel units:
        the prompt's reconstruction, then n generated frames, each from at most `clip` − 1 before it."""
        tokens = self.tokenizer.encode(prompt)  # [B, P, K]
        while tokens.shape[1] < actions.shape[1] + 1:
            T = tokens.shape[1]
            seen = min(T, self.cfg.clip - 1)
            new = self.dynamics.generate(tokens[:, T - seen :], actions[:, T - seen : T])
            tokens = torch.cat([tokens, new[:, None]], 1)
        return self.render(tokens)

    @torch.no_grad()
    def open_loop(self, obs: torch.Tensor, action: torch.Tensor, context: int) -> Dream:
        """A real episode `[T, H, W, C]` regenerated from its first `context` frames (at most `clip`) with the
        latent actions inferred from the real frames (each from the `clip` frames up to it); the real
        actions `[T, A]` are not read."""
        if context > self.cfg.clip:
            raise ConfigError(f"genie regenerates from at most agent.clip = {self.cfg.clip} real frames, not {context}")
        clip = self.cfg.clip
        latent = [
            self.latent_actions.infer(obs[None, max(0, t + 2 - clip) : t + 2])[0, -1] for t in range(len(obs) - 1)
        ]
        return Dream(self.generate(obs[None, :context], torch.stack(latent)[None])[0])

    # ------------------------------------------------------------------ learning

    def learn_tokenizer(self, batch: dict[str, torch.Tensor]) -> Metrics:
        loss, metrics = self.tokenizer.loss(batch["obs"])
        return {**step(self.optimizers["tokenizer"], loss, self.cfg.grad_clip, "tokenizer"), **metrics}

    def learn_latent_actions(self, batch: dict[str, torch.Tensor]) -> Metrics:
        loss, metrics = self.latent_actions.loss(batch["obs"])
        return {**step(self.optimizers["latent_actions"], loss, self.cfg.grad_clip, "latent_actions"), **metrics}

    def learn_dynamics(self, batch: dict[str, torch.Tensor]) -> Metrics:
        """MaskGIT's loss on the tokenizer's tokens given the latent action model's actions (neither trained
        by it)."""
        tokens = self.tokenizer.encode(batch["obs"])  # [B, T, K]
        actions = self.latent_actions.infer(batch["obs"])  # [B, T-1]
        loss, metrics = self.dynamics.loss(tokens, actions)
        return {**step(self.optimizers["dynamics"], loss, self.cfg.grad_clip, "dynamics"), **metrics}
