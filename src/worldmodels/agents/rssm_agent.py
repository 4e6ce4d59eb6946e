"""The RSSM world model shared by Dreamer and PlaNet: encoder, RSSM, decoder, reward and continue heads,
trained on replayed sequences with the RSSM filtering embeddings e_t = enc(o_t):

    L = β_pred (−ln p(o_t | s_t) − ln p(r_t | s_t) − ln p(c_t | s_t))
        + β_dyn max(F, KL[sg(q_t) ‖ p_t]) + β_rep max(F, KL[q_t ‖ sg(p_t)])        (DreamerV3 eq. 5)
        + c_r L_repr(o, a)                                       with a representation learner

PlaNet and DreamerV1 use one KL with free nats (β_dyn = β_rep = ½, F = 3); DreamerV2 balances it (α = 0.8);
DreamerV3 uses β_dyn = 0.5, β_rep = 0.1, F = 1. Agents subclass `RSSMAgent` and add how they act.

A representation learner (`representation_learner`: JEPA, contrastive, VAE) makes e_t = f(o_t) its
embedding and adds its own objective L_repr on the same windows (predictions stop at `is_first`). With
`use_reconstruction: false` (a decoder-free Dreamer or PlaNet, `configs/dreamerv3_decoder_free.yaml`) the
decoder and −ln p(o_t | s_t) go, and two things change:
- the model state predicts the embedding instead, −ln p(e_t | s_t) (the decoder's vector part): without it
  nothing but the reward and continue terms asks the posterior to keep what the embedding holds, and the KL
  pushes it towards the prior, so the actor sees a state that does not show the frame (a decoder-free
  Dreamer without it did not learn MinAtar Breakout, its actor's entropy falling to 0.14 at random play's
  return);
- the RSSM reads e_t with its gradient stopped, so L_repr alone trains the encoder: the world model's terms
  would collapse it, a constant embedding being the easiest to predict and free of KL (with them, a
  contrastive learner's InfoNCE rose to ln N, every embedding alike, within 5k env steps of Breakout).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_map

from worldmodels.agents.base import Agent, Dream, Metrics, WindowsConfig, adam, step
from worldmodels.agents.time_noise import NoiseState, TimeNoiseConfig, time_noise
from worldmodels.decoders.cnn import CNNDecoder
from worldmodels.encoders.cnn import CNNEncoder
from worldmodels.errors import ConfigError
from worldmodels.heads.scalar import compile_kernels
from worldmodels.losses import kl_split
from worldmodels.nn.precision import Precision, precision
from worldmodels.phases import PhaseSpec, Stream
from worldmodels.registry import (
    CONTINUES,
    DECODERS,
    ENCODERS,
    REPRESENTATION_LEARNERS,
    REWARDS,
    RSSMS,
    component,
)
from worldmodels.schema import Spec, non_negative, positive, unit
from worldmodels.spaces import ActSpec, Obs, ObsSpec, obs_map


@dataclass
class KLConfig:
    free_bits: float = non_negative(1.0)
    """Each KL term below this many nats is not penalised (F)."""
    dyn_scale: float = non_negative(0.5)
    """β_dyn: trains the prior towards the posterior."""
    rep_scale: float = non_negative(0.1)
    """β_rep: keeps the posterior predictable."""
    balance: float | None = None
    """DreamerV2's α: if set, β_dyn = α·scale and β_rep = (1 − α)·scale."""
    scale: float = non_negative(1.0)
    """Total KL weight when `balance` is set."""

    def weights(self) -> tuple[float, float]:
        if self.balance is None:
            return self.dyn_scale, self.rep_scale
        return self.balance * self.scale, (1 - self.balance) * self.scale


@dataclass
class WorldModelConfig(WindowsConfig, TimeNoiseConfig):
    """Fields of every agent built on the RSSM world model (its `Config` inherits them)."""

    encoder: Spec = component("encoder", "multi")
    """Observations → the embeddings e_t that the RSSM filters (with a `representation_learner`, its encoder)."""
    rssm: Spec = component("rssm", "rssm")
    decoder: Spec = component("decoder", "multi")
    """Model states → observations, the reconstruction term −ln p(o_t | s_t); built only with `use_reconstruction`."""
    reward: Spec = component("reward", "twohot")
    cont: Spec = component("continue", "mlp")
    cont_scale: float = non_negative(1.0)
    """Weight of the continue head's loss in the world model's (DreamerV1's official code: 10). Adam undoes a
    constant weight on the head's own weights, so it acts through the shared encoder and RSSM; it did not
    make DreamerV1's head see CartPole's edge (benchmarks/NOTES.md, twentieth sitting)."""
    use_reconstruction: bool = True
    """Build and train the decoder. Off (decoder-free): no decoder of observations and no reconstruction
    term; a `representation_learner` alone trains the encoder, and the state predicts its embedding (module
    docstring). The run cannot `wm dream`."""
    representation_learner: Spec | None = component("representation_learner", None)
    """A representation learner (`jepa`, `contrastive`, `vae`) whose embedding is e_t, trained by its own
    loss (weight `representation_coef`) beside the world model's, with or without reconstruction. It encodes
    with `encoder` (its own `encoder` option stays unset) and its `embed_dim` sizes e_t. None: e_t is the
    encoder's features, trained by the world model's losses alone."""
    representation_coef: float = non_negative(1.0)
    """c_r: weight of the representation learner's loss in the world model's."""
    world_model_lr: float = positive(1e-4)
    kl: KLConfig = field(default_factory=KLConfig)
    adam_eps: float = positive(1e-6)
    grad_clip: float = positive(100.0)
    """Gradient-norm clip, per optimiser."""
    report_every: int = non_negative(250)
    """Updates between open-loop prediction reports (0: never)."""
    explore_noise: float = unit(0.0)
    """While collecting: std of Gaussian noise added to continuous actions (clipped to [-1, 1]; coloured in
    time by `noise_colour`); for discrete actions the probability of a uniformly random action instead
    (PlaNet, DreamerV1: 0.3)."""
    compile: bool = False
    """`torch.compile` the RSSM's observed and imagined steps, the two-hot heads' losses and means, and the
    frame encoder and decoder (`cnn`) with the decoder's loss (`wm bench dreamer_speed` measures the gain)."""
    precision: Precision = "float32"
    """The arithmetic of the updates' forward passes (world model and, in Dreamer, actor and critic):
    bfloat16 runs matmuls and convolutions under autocast; weights, gradients, optimiser state,
    distributions and losses stay float32. Acting runs in float32."""


class RSSMAgent(Agent):
    """An agent whose world model is the RSSM: it builds and trains the model, filters observations into
    posterior states while acting, and imagines observations open-loop for `wm dream` (with its decoder)."""

    def __init__(self, cfg: WorldModelConfig, obs_spec: ObsSpec, act_spec: ActSpec):
        super().__init__(obs_spec, act_spec)
        self.cfg = cfg
        self.terminal_windows = cfg.terminal_windows
        learner = cfg.representation_learner
        if not cfg.use_reconstruction and learner is None:
            raise ConfigError(
                "agent.use_reconstruction is false and no agent.representation_learner is set: nothing but the "
                "reward and continue losses would train the encoder; choose a learner "
                "(agent.representation_learner.name=jepa, contrastive or vae) or set agent.use_reconstruction=true"
            )
        self.representation_learner, self.encoder, self.decoder, self.embedding_decoder = None, None, None, None
        if learner is None:
            self.encoder = ENCODERS.build(cfg.encoder.name, cfg.encoder.cfg, obs_spec=obs_spec)
            embed_dim, encoder = self.encoder.out_dim, self.encoder
        else:
            self.representation_learner = build_learner(learner, cfg.encoder, obs_spec, act_spec.dim)
            embed_dim, encoder = self.representation_learner.embed_dim, self.representation_learner
        self.rssm = RSSMS.build(cfg.rssm.name, cfg.rssm.cfg, embed_dim=embed_dim, action_dim=act_spec.dim)
        F = self.rssm.feat_dim
        if cfg.use_reconstruction:
            self.decoder = DECODERS.build(cfg.decoder.name, cfg.decoder.cfg, in_dim=F, obs_spec=obs_spec)
        else:
            embedding = ObsSpec((embed_dim,))
            self.embedding_decoder = DECODERS.build(cfg.decoder.name, cfg.decoder.cfg, in_dim=F, obs_spec=embedding)
        self.reward = REWARDS.build(cfg.reward.name, cfg.reward.cfg, in_dim=F)
        self.cont = CONTINUES.build(cfg.cont.name, cfg.cont.cfg, in_dim=F)
        self.world_model: tuple[nn.Module, ...] = (encoder, self.rssm, self.reward, self.cont)
        self.world_model += tuple(m for m in (self.decoder, self.embedding_decoder) if m is not None)
        if cfg.compile:
            self.rssm.compile_steps()
            compile_kernels(self.reward)
            for frames in (m for part in self.world_model for m in part.modules()):
                if isinstance(frames, (CNNEncoder, CNNDecoder)):  # each norm and activation fused
                    frames.compile(dynamic=False)

    def world_model_optimizer(self) -> torch.optim.Optimizer:
        """Adam over the world model's trainable parameters (not a representation learner's target network)."""
        cfg = self.cfg
        params = (p for m in self.world_model for p in m.parameters() if p.requires_grad)
        return adam(params, cfg.world_model_lr, cfg.adam_eps)

    def embed(self, obs: Obs) -> torch.Tensor:
        """The embeddings e_t `[..., E]` of observations `[..., *obs]` that the RSSM filters."""
        if self.representation_learner is None:
            return self.encoder(obs)
        return self.representation_learner.encode(obs)

    # ------------------------------------------------------------------ acting

    def initial_state(self, n: int) -> dict[str, Any]:
        with torch.no_grad():
            latent = self.rssm.initial(n)
        return {"latent": latent, "action": torch.zeros(n, self.act_spec.dim, device=self.device)}

    def explore(
        self, action: torch.Tensor, is_first: torch.Tensor, carried: NoiseState | None
    ) -> tuple[torch.Tensor, NoiseState | None]:
        """Collection actions `[N, A]`: `action` with the `explore_noise` of the config (for continuous
        actions coloured in time by `noise_colour`, its sequences carried to the next step)."""
        noise = self.cfg.explore_noise
        if noise == 0:
            return action, carried
        if self.act_spec.discrete:
            n, k = action.shape
            uniform = nn.functional.one_hot(torch.randint(0, k, (n,), device=action.device), k).to(action.dtype)
            return torch.where((torch.rand(n, device=action.device) < noise)[:, None], uniform, action), carried
        eps, carried = time_noise(action, is_first, carried, self.cfg)
        return (action + noise * eps).clamp(-1.0, 1.0), carried

    def filter(self, obs: Any, is_first: torch.Tensor, state: dict[str, Any] | None) -> Any:
        """The posterior latent after the previous action and latent (carried in `state`) and this observation."""
        if state is None:
            state = self.initial_state(len(is_first))
        post, _ = self.rssm.obs_step(state["latent"], state["action"], self.embed(obs), is_first)
        return post

    def last(self, post: Any) -> Any:
        """The states `[B, ...]` at the last step of observed windows `[B, T, ...]`."""
        B, T = post["stoch"].shape[:2]
        return self.rssm.starts(post, torch.arange(1, B + 1, device=self.device) * T - 1)

    @torch.no_grad()
    def open_loop(self, obs: Any, action: torch.Tensor, context: int) -> Dream:
        if self.decoder is None:
            raise NotImplementedError(
                f"{type(self).__name__} cannot dream without its observation decoder (agent.use_reconstruction=false)"
            )
        embed = self.embed(obs_map(lambda x: x[:context][None], obs))  # [1, C, E]
        is_first = torch.zeros(1, context, dtype=torch.bool, device=action.device)
        post, _ = self.rssm.observe(embed, action[None, :context], is_first)
        state = self.last(post)
        feats = [self.rssm.features(post)[0]]  # [C, F]
        for t in range(context, action.shape[0]):
            state = self.rssm.img_step(state, action[None, t])
            feats.append(self.rssm.features(state))
        feats = torch.cat(feats)
        return Dream(self.decoder(feats).mean, self.reward(feats).mean)

    # ------------------------------------------------------------------ learning

    def _world_model_step(self, batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict]:
        """One world-model update on `[B, T, ...]`; returns the posterior states `[B, T, ...]` and metrics."""
        cfg = self.cfg
        obs, action, is_first = batch["obs"], batch["action"], batch["is_first"]  # [B, T, ...]
        cont = 1.0 - batch["is_terminal"].float()
        with precision(cfg.precision, action.device):  # forward passes only
            embed = self.embed(obs)
            if not cfg.use_reconstruction:  # decoder-free: the learner alone trains its encoder
                embed = embed.detach()
            post, prior = self.rssm.observe(embed, action, is_first)
            feats = self.rssm.features(post)  # [B, T, F]
            dyn, rep, kl = kl_split(self.rssm.dist(post), self.rssm.dist(prior), cfg.kl.free_bits)
            losses = {
                "dyn": dyn.mean(),
                "rep": rep.mean(),
                "reward": self.reward(feats).loss(batch["reward"]).mean(),
                "cont": -self.cont(feats).log_prob(cont).mean(),
            }
            dyn_scale, rep_scale = cfg.kl.weights()
            total = dyn_scale * losses["dyn"] + rep_scale * losses["rep"]
            total = total + losses["reward"] + cfg.cont_scale * losses["cont"]
            if self.decoder is not None:
                losses["recon"] = self.decoder(feats).loss(obs).mean()
                total = total + losses["recon"]
            if self.embedding_decoder is not None:
                losses["embedding"] = self.embedding_decoder(feats).loss(embed).mean()
                total = total + losses["embedding"]
            learner_metrics = {}  # its loss and collapse monitors, under repr/
            if self.representation_learner is not None:
                repr_loss, learner_metrics = self.representation_learner.loss(obs, action, is_first)
                total = total + cfg.representation_coef * repr_loss
        metrics = step(self.optimizers["world_model"], total, cfg.grad_clip, "world_model")
        if self.representation_learner is not None:
            self.representation_learner.update_target()
        metrics.update(learner_metrics)
        metrics.update({f"world_model/{k}": v.detach() for k, v in losses.items()})
        metrics["world_model/kl"] = kl.mean().detach()
        return post, metrics

    def phases(self, train: Any) -> list[PhaseSpec]:
        """One `learn` phase: the world model's update stream on replayed windows, the streams that learn
        from its posterior states (`followers`), and every `report_every` updates an open-loop report on its
        batch."""
        streams = [
            Stream(
                "world_model", self.windows(train), train.ratio, trains=("world_model",), update="learn_world_model"
            ),
            *self.followers(),
        ]
        if self.cfg.report_every:
            streams.append(Stream("report", every=self.cfg.report_every))
        return [PhaseSpec("learn", "learn", streams=tuple(streams))]

    def followers(self) -> list[Stream]:
        """Update streams that run after each world-model update, on its posterior states."""
        return []

    def learn_world_model(self, batch: dict[str, torch.Tensor]) -> Metrics:
        """The world model's update; its posterior states `[B, T, ...]` are kept for the followers."""
        post, metrics = self._world_model_step(batch)
        self.posterior = tree_map(torch.Tensor.detach, post)
        return metrics

    def update(self, batch: dict[str, torch.Tensor]) -> Metrics:
        """The world model's and every follower's update on `batch`, as the trainer runs them once they have
        all started (the report aside): for driving the agent by hand."""
        metrics = self.learn_world_model(batch)
        for stream in self.followers():
            metrics.update(getattr(self, stream.method)(batch))
        return metrics

    def _reward_cont(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted rewards and continue probabilities `[...]` of features `[..., F]`."""
        return self.reward(feats).mean, self.cont(feats).mean

    @torch.no_grad()
    def report(self, batch: dict[str, torch.Tensor], context: int = 5) -> Metrics:
        """Open-loop prediction error by horizon: observe `context` steps, then imagine the rest from
        the real actions and compare observations (with a decoder) and rewards with what really happened."""
        obs, action, reward = batch["obs"], batch["action"], batch["reward"]
        T = action.shape[1]
        if context >= T:
            return {}
        post, _ = self.rssm.observe(
            self.embed(obs_map(lambda x: x[:, :context], obs)), action[:, :context], batch["is_first"][:, :context]
        )
        state = self.last(post)
        metrics = {}
        valid = ~batch["is_first"][:, context:].cumsum(1).bool()  # stop at a new episode
        for h, t in enumerate(range(context, T), start=1):
            state = self.rssm.img_step(state, action[:, t])
            if h in (1, 5, 10, 15, 30) and valid[:, h - 1].any():
                feat = self.rssm.features(state)
                mask = valid[:, h - 1]
                target = obs_map(lambda x, t=t: x[:, t], obs)
                if self.decoder is not None:
                    metrics[f"openloop/obs_error_h{h}"] = self.decoder(feat).loss(target)[mask].mean()
                metrics[f"openloop/reward_error_h{h}"] = (self.reward(feat).mean - reward[:, t]).abs()[mask].mean()
        return metrics


def build_learner(spec: Spec, encoder: Spec, obs_spec: ObsSpec, action_dim: int) -> nn.Module:
    """The representation learner `spec` encoding with the world model's `encoder`, so that one encoder is
    configured in one place (`agent.encoder`, sized by the presets)."""
    own = type(spec.cfg)().encoder
    if spec.cfg.encoder != own:
        raise ConfigError(
            "agent.representation_learner.encoder is set, but the learner encodes with the world model's "
            "encoder: set agent.encoder instead"
        )
    cfg = replace(spec.cfg, encoder=encoder)
    return REPRESENTATION_LEARNERS.build(spec.name, cfg, obs_spec=obs_spec, action_dim=action_dim)
