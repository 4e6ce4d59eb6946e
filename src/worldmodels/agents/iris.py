"""IRIS (Micheli et al., ICLR 2023): a world model made of a discrete autoencoder and a GPT, and an
actor-critic that learns in its imagination, from frames.

    tokenizer      o_t → z_t = (z_t^1 … z_t^K) → ô_t       VQ-VAE: L1 + codebook + commitment    (§2.1)
    world model    p(z_{t+1}^k | z_≤t, a_≤t, z_{t+1}^<k), p(r_t | …), p(d_t | …)  GPT, cross-entropy (§2.2)
    behaviour      π(a_t | ô_≤t), V(ô_≤t) on imagined frames ô_t = dec(z_t)                       (§2.3)
        Λ_t = r_t + γ (1 − d_t) ((1 − λ) V(ô_{t+1}) + λ Λ_{t+1}),  Λ_H = V(ô_H)
        L_V = E[(V(ô_t) − sg(Λ_t))²],  L_π = −E[ln π(a_t | ô_≤t) sg(Λ_t − V(ô_t)) + η H(π(· | ô_≤t))]

Three update streams, each with its own batches and start (the paper trains the tokenizer first, then
the world model on its tokens, then the actor-critic in the world model): the tokenizer on single
frames, the world model on windows of its context, the actor-critic on windows whose frames burn in its
LSTM (and give the world model its context) before it imagines `horizon` steps from the last one. The
agent acts on the tokenizer's reconstruction of the real frame, as it learned on reconstructions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from worldmodels.agents.base import Acted, Agent, Dream, Metrics, adam, step
from worldmodels.agents.pixel_actor_critic import PixelActorCritic, imagination_loss
from worldmodels.data.sources import SampleSpec
from worldmodels.errors import ConfigError
from worldmodels.nn.dists import perplexity
from worldmodels.phases import PhaseSpec, Stream
from worldmodels.registry import AGENTS, TOKEN_MODELS, TOKENIZERS, component
from worldmodels.schema import Spec, non_negative, positive, unit
from worldmodels.spaces import ActSpec, ObsSpec


@AGENTS.register("iris")
class IRISAgent(Agent):
    @dataclass
    class Config:
        tokenizer: Spec = component("tokenizer", "vq")
        world_model: Spec = component("token_model", "token_transformer")
        ac_channels: int = positive(32)
        """Channels of the actor-critic's first convolutions (IRIS: 32, then 64)."""
        ac_hidden: int = positive(512)
        """LSTM units of the actor-critic."""
        horizon: int = positive(20)
        """Imagined steps per start (H)."""
        burn_in: int = non_negative(20)
        """Real frames before each start, burning in the LSTM (IRIS: 20)."""
        imagine_context: int = positive(1)
        """Real frames the world model sees before imagining (IRIS: 1, the start frame); at most burn_in + 1."""
        gamma: float = unit(0.995)
        lambda_return: float = unit(0.95)
        entropy: float = non_negative(0.001)
        """η, the entropy bonus."""
        tokenizer_batch: int = positive(256)
        """Frames per tokenizer update."""
        world_model_batch: int = positive(64)
        """Windows of `world_model.context` frames per world-model update."""
        actor_critic_batch: int = positive(64)
        """Imagined rollouts per actor-critic update."""
        tokenizer_every: float = positive(1.0)
        """Agent steps per tokenizer update (IRIS: 1; the same for each stream)."""
        world_model_every: float = positive(1.0)
        actor_critic_every: float = positive(1.0)
        tokenizer_start: int = non_negative(1000)
        """Env steps (action repeat included) before the tokenizer's first update (IRIS: 5 epochs of 200
        agent steps)."""
        world_model_start: int = non_negative(5000)
        """Env steps before the world model's first update (IRIS: 25 epochs)."""
        actor_critic_start: int = non_negative(10000)
        """Env steps before the actor-critic's first update (IRIS: 50 epochs)."""
        tokenizer_lr: float = positive(1e-4)
        world_model_lr: float = positive(1e-4)
        actor_critic_lr: float = positive(1e-4)
        grad_clip: float = positive(10.0)
        act_on_reconstruction: bool = True
        """Act on dec(enc(o_t)), the frames the actor-critic learned on (IRIS); off: on o_t itself."""
        eval_temperature: float = non_negative(0.5)
        """Evaluation samples actions from π^(1/T) (IRIS's test collection: T = 0.5); 0: the most likely action."""

    def __init__(self, cfg: Config, obs_spec: ObsSpec, act_spec: ActSpec):
        super().__init__(obs_spec, act_spec)
        if not act_spec.discrete:
            raise ConfigError("agent 'iris' acts in discrete action spaces only (Atari, MinAtar); pick another agent")
        self.cfg = cfg
        self.tokenizer = TOKENIZERS.build(cfg.tokenizer.name, cfg.tokenizer.cfg, obs_spec=obs_spec)
        self.world_model = TOKEN_MODELS.build(
            cfg.world_model.name, cfg.world_model.cfg,
            vocab=self.tokenizer.vocab, tokens=self.tokenizer.tokens, action_dim=act_spec.dim,
        )  # fmt: skip
        self.actor_critic = PixelActorCritic(obs_spec.shape, act_spec.dim, cfg.ac_channels, cfg.ac_hidden)
        if cfg.imagine_context > cfg.burn_in + 1:
            raise ConfigError(
                f"agent.imagine_context ({cfg.imagine_context}) exceeds the burn_in + 1 = {cfg.burn_in + 1} real "
                "frames an actor-critic batch holds; lower it or raise agent.burn_in"
            )
        self.optimizers = {
            "tokenizer": adam(self.tokenizer.parameters(), cfg.tokenizer_lr, 1e-8),
            "world_model": adam(self.world_model.parameters(), cfg.world_model_lr, 1e-8),
            "actor_critic": adam(self.actor_critic.parameters(), cfg.actor_critic_lr, 1e-8),
        }

    def phases(self, train: Any) -> list[PhaseSpec]:
        cfg = self.cfg
        frames = SampleSpec(cfg.tokenizer_batch, 1, keys=("obs",))
        windows = SampleSpec(cfg.world_model_batch, self.world_model.context, boundary="pad_end")
        burn_in = SampleSpec(cfg.actor_critic_batch, cfg.burn_in + 1, boundary="pad_start")
        streams = [
            ("tokenizer", frames, cfg.tokenizer_every, cfg.tokenizer_start),
            ("world_model", windows, cfg.world_model_every, cfg.world_model_start),
            ("actor_critic", burn_in, cfg.actor_critic_every, cfg.actor_critic_start),
        ]
        return [PhaseSpec("learn", "learn", streams=tuple(Stream.per_agent_steps(*s) for s in streams))]

    # ------------------------------------------------------------------ acting

    def initial_state(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.actor_critic.initial(n, self.device)

    def seen(self, obs: torch.Tensor) -> torch.Tensor:
        """What the actor-critic sees of real frames `[..., H, W, C]`: their reconstruction (or themselves)."""
        if not self.cfg.act_on_reconstruction:
            return obs.float()
        return self.tokenizer.decode(self.tokenizer.encode(obs)).clamp(0, 255)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, is_first: torch.Tensor, state: Any, explore: bool) -> Acted:
        temperature = 1.0 if explore else self.cfg.eval_temperature
        action, state = self.actor_critic.act(self.seen(obs), is_first, state, temperature)
        return Acted(F.one_hot(action, self.act_spec.dim).float(), state)

    @torch.no_grad()
    def open_loop(self, obs: torch.Tensor, action: torch.Tensor, context: int) -> Dream:
        """The context frames' reconstructions, then frames decoded from imagined tokens, with the rewards
        predicted on the way (zeros over the context, which the model does not predict) and the perplexity
        of the codes of the episode's real frames (held-out codebook usage)."""
        real = self.tokenizer.encode(obs)  # [T, K]: every real frame's codes
        tokens = real[None, :context]  # [1, C, K]
        valid = torch.ones(1, context, dtype=torch.bool, device=obs.device)
        ctx = self.world_model.start(tokens, action[None, 1:context], valid, room=len(action) - context)
        imagined = [self.world_model.step(ctx, action[None, t]) for t in range(context, len(action))]
        frames = self.tokenizer.decode(torch.cat([tokens[0], *(i.tokens for i in imagined)])).clamp(0, 255)
        reward = torch.cat([obs.new_zeros(context, dtype=torch.float32), *(i.reward.mean for i in imagined)])
        return Dream(frames, reward, {"tokenizer/perplexity": perplexity(real, self.tokenizer.vocab)})

    # ------------------------------------------------------------------ learning

    def learn_tokenizer(self, batch: dict[str, torch.Tensor]) -> Metrics:
        loss, metrics = self.tokenizer.loss(batch["obs"])
        return {**step(self.optimizers["tokenizer"], loss, self.cfg.grad_clip, "tokenizer"), **metrics}

    def learn_world_model(self, batch: dict[str, torch.Tensor]) -> Metrics:
        """Cross-entropy of each frame's tokens, reward and continue, given everything before them."""
        tokens = self.tokenizer.encode(batch["obs"])  # [B, T, K]
        taken = torch.cat([batch["action"][:, 1:], batch["action"][:, :1]], 1)  # the action taken in frame t
        pred = self.world_model(tokens, taken)
        mask = batch["mask"][:, 1:].float()  # frames 1 … T-1 are predicted
        ce = F.cross_entropy(pred.logits.flatten(0, -2), tokens[:, 1:].flatten(), reduction="none")
        losses = {
            "tokens": ce.view_as(tokens[:, 1:]).mean(-1),
            "reward": pred.reward.loss(batch["reward"][:, 1:]),
            "cont": -pred.cont.log_prob(1.0 - batch["is_terminal"][:, 1:].float()),
        }
        losses = {k: (v * mask).sum() / mask.sum() for k, v in losses.items()}
        metrics = step(self.optimizers["world_model"], sum(losses.values()), self.cfg.grad_clip, "world_model")
        metrics.update({f"world_model/{k}": v.detach() for k, v in losses.items()})
        hit = (pred.logits.argmax(-1) == tokens[:, 1:]).float().mean(-1)
        metrics["world_model/token_accuracy"] = (hit * mask).sum() / mask.sum()
        return metrics

    def learn_actor_critic(self, batch: dict[str, torch.Tensor]) -> Metrics:
        """Burn in on the real frames of the window, imagine H steps from its last, and fit π and V to the
        λ-returns of the imagined rewards (module docstring)."""
        cfg, n = self.cfg, self.cfg.imagine_context
        mask, T = batch["mask"], batch["mask"].shape[1]
        with torch.no_grad():
            tokens = self.tokenizer.encode(batch["obs"])  # [B, T, K]
            frame = self.tokenizer.decode(tokens).clamp(0, 255)
            state = self.actor_critic.burn_in(frame[:, :-1], mask[:, :-1])
            ctx = self.world_model.start(tokens[:, -n:], batch["action"][:, T - n + 1 :], mask[:, -n:], cfg.horizon)
            frame = frame[:, -1]

        def world(action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            imagined = self.world_model.step(ctx, F.one_hot(action, self.act_spec.dim).float())
            return self.tokenizer.decode(imagined.tokens).clamp(0, 255), imagined.reward.mean, imagined.cont.mean

        alive = 1.0 - batch["is_terminal"][:, -1].float()
        loss, learnt = imagination_loss(
            self.actor_critic, state, frame, world, cfg.horizon, alive, cfg.gamma, cfg.lambda_return, cfg.entropy
        )
        return {**step(self.optimizers["actor_critic"], loss, cfg.grad_clip, "actor_critic"), **learnt}
