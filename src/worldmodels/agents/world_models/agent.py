"""World Models (Ha & Schmidhuber 2018): V compresses each observation (a frame, or a state vector) to z, M (an
MDN-RNN) predicts the next z as a mixture of Gaussians given the action and its memory h, and C acts on [z, h]
alone:

    V:  z_t ~ q(z | o_t)                                    (a VAE, trained on observations of random rollouts)
    M:  P(z_{t+1} | a_t, z_t, h_t) = Σ_k π_k N(μ_k, σ_k)     (LSTM + mixture head, + reward and termination)
    C:  a_t = W_c [z_t, h_t] + b_c                          (found by CMA-ES, in the real env or in M's dream)

The three parts are trained one after the other: the agent declares four phases (collect random
rollouts, V, M, C), which the trainer runs in order (`phases.py` beside this file), and three more for
each further round of the paper's iterative training (`iterate`: episodes played by C, M trained on, C
evolved again); this file holds the models and each part's learning step. A dream rollout runs
entirely inside M: the controller acts on M's sampled latents at temperature τ, collects M's predicted
rewards and stops where M predicts the episode terminates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from worldmodels.agents.base import Acted, Agent, Dream, Metrics, adam, step
from worldmodels.agents.world_models.controller import Controller, ControllerConfig
from worldmodels.data.sources import SampleSpec
from worldmodels.dynamics.mdn_rnn import MDNRNN, LSTMState, MDNConfig, MemorylessMDN, mdn_loss
from worldmodels.envs.record import Chooser, Policy
from worldmodels.errors import ConfigError
from worldmodels.phases import PhaseSpec
from worldmodels.registry import AGENTS, AUTOENCODERS, MEMORIES
from worldmodels.representations.conv_vae import ConvVAE
from worldmodels.representations.mlp_vae import MLPVAE
from worldmodels.schema import non_negative, param, positive, unit
from worldmodels.spaces import ActSpec, ObsSpec


@dataclass
class CollectConfig:
    rollouts: int = positive(200)
    """Episodes of the random policy whose frames train V and M (the paper: 10,000)."""
    policy: Policy = "uniform"
    """Random actions: independent uniform draws, or (continuous actions) a clipped random walk
    a_{t+1} = a_t + √dt·N(0, 1) with dt = 1/50, which drives further than jitter."""
    max_steps: int | None = None
    """Cut each random rollout after this many steps (None: the environment's time limit)."""
    max_share: float = param(0.5, lambda v: 0 < v <= 1, "a number in (0, 1]")
    """Share of `train.steps` the random rollouts may use: collection ends after the chunk that reaches it,
    with fewer than `rollouts` episodes, so that long episodes (200 steps of MountainCar) leave real steps
    to the controller (1: collect every rollout, whatever it costs)."""
    workers: int = positive(2)
    """Processes collecting rollouts in parallel."""


@dataclass
class VAETrainConfig:
    epochs: int = positive(10)
    """Passes over all collected frames."""
    batch_size: int = positive(32)
    lr: float = positive(1e-3)
    grad_clip: float = positive(100.0)


@dataclass
class MDNTrainConfig:
    updates: int = positive(3000)
    """Gradient steps of M (and of the no-memory baseline), each on `batch_size` windows drawn at random
    places of the collected episodes: the budget does not grow with the data, as passes over it would."""
    validate_every: int = positive(250)
    """Updates between validations on the held-out rollouts (and checkpoints)."""
    batch_size: int = positive(16)
    seq_len: int = param(32, lambda v: v >= 2, "an integer >= 2")
    """Steps per training window; the LSTM starts each window from zeros, as at an episode's start."""
    lr: float = positive(1e-3)
    grad_clip: float = positive(1.0)
    validation: float = unit(0.1)
    """Fraction of the rollouts held out to measure M and the no-memory baseline on."""


@dataclass
class EvolutionConfig:
    where: Literal["real", "dream"] = "real"
    """Score candidates by rollouts in the real environment, or inside M's dream."""
    population: int = positive(16)
    """Candidates per CMA-ES generation (the paper: 64)."""
    samples: int = positive(4)
    """Rollouts per candidate; its fitness is their mean return (the paper: 16)."""
    generations: int = positive(50)
    sigma: float = positive(0.1)
    """Initial CMA-ES step size (the parameters start at zero)."""
    workers: int = positive(2)
    """Processes stepping real-environment rollouts in parallel (1: in this process)."""
    temperature: float = positive(1.15)
    """τ of M when sampling dream latents (higher: a more random, harder dream)."""
    dream_horizon: int = positive(1000)
    """Longest dream rollout, in steps."""
    max_steps: int | None = None
    """Cut real-environment rollouts after this many steps (None: the environment's time limit)."""
    eval_every: int = non_negative(5)
    """Generations between evaluations of the search's mean in the real environment (0: only at the end)."""


@dataclass
class IterateConfig:
    """The paper's iterative training (its section 5): random rollouts show M little of what a good
    controller reaches (a pole balanced for long), so C exploits M's errors there. Each round after the
    first records episodes with C, trains M further on every episode so far, and evolves C again from
    where it stood; V stays as the first round trained it."""

    rounds: int = positive(1)
    """Rounds in all (1: the paper's single pass). Rounds stop early once `train.steps` is spent."""
    rollouts: int = positive(16)
    """Episodes each later round records with C, each with its own perturbed parameters."""
    noise: float = non_negative(0.1)
    """Standard deviation of the Gaussian noise added to C's parameters for each recorded episode."""
    mdrnn_updates: int = positive(1000)
    """Further updates of M per later round, on windows of every episode recorded so far."""
    generations: int = positive(20)
    """CMA-ES generations per later round, starting from C's parameters at step size `evolution.sigma`."""


@AGENTS.register("world_models")
class WorldModelsAgent(Agent):
    probe_overrides = (
        "agent.collect.rollouts=4",
        "agent.collect.workers=1",
        "agent.vae_train.epochs=1",
        "agent.mdrnn_train.updates=5",
        "agent.evolution.population=4",
        "agent.evolution.samples=1",
        "agent.evolution.generations=1",
        "agent.evolution.workers=1",
        "agent.iterate.rollouts=1",
        "agent.iterate.mdrnn_updates=5",
        "agent.iterate.generations=1",
    )

    @dataclass
    class Config:
        vae: ConvVAE.Config = field(default_factory=ConvVAE.Config)
        """V for frames (the paper's ConvVAE)."""
        vector_vae: MLPVAE.Config = field(default_factory=MLPVAE.Config)
        """V for state vectors (`env.obs: state`): an MLP VAE on each dimension in units of its spread."""
        mdrnn: MDNConfig = field(default_factory=MDNConfig)
        controller: ControllerConfig = field(default_factory=ControllerConfig)
        collect: CollectConfig = field(default_factory=CollectConfig)
        vae_train: VAETrainConfig = field(default_factory=VAETrainConfig)
        mdrnn_train: MDNTrainConfig = field(default_factory=MDNTrainConfig)
        evolution: EvolutionConfig = field(default_factory=EvolutionConfig)
        iterate: IterateConfig = field(default_factory=IterateConfig)

    def __init__(self, cfg: Config, obs_spec: ObsSpec, act_spec: ActSpec):
        super().__init__(obs_spec, act_spec)
        if not obs_spec.is_image and len(obs_spec.shape) != 1:
            raise ConfigError(
                f"world_models reads frames or a state vector through V, got observations {obs_spec}; "
                "use env.obs=pixels or env.obs=state"
            )
        self.cfg = cfg
        if obs_spec.is_image:
            self.vae: ConvVAE | MLPVAE = AUTOENCODERS.build("conv_vae", cfg.vae, obs_spec=obs_spec)
        else:
            self.vae = AUTOENCODERS.build("mlp_vae", cfg.vector_vae, obs_spec=obs_spec)
        z_dim = self.vae.latent_dim
        self.mdrnn: MDNRNN = MEMORIES.build("mdn_rnn", cfg.mdrnn, z_dim=z_dim, action_dim=act_spec.dim)
        self.memoryless = MemorylessMDN(cfg.mdrnn, z_dim, act_spec.dim)
        self.controller = Controller(cfg.controller, z_dim + cfg.mdrnn.hidden, act_spec)
        self.register_buffer("controller_params", torch.zeros(self.controller.num_params))
        self.optimizers = {
            "vae": adam(self.vae.parameters(), cfg.vae_train.lr, 1e-8),
            "mdrnn": adam(self.mdrnn.parameters(), cfg.mdrnn_train.lr, 1e-8),
            "memoryless": adam(self.memoryless.parameters(), cfg.mdrnn_train.lr, 1e-8),
        }

    def phases(self, train) -> list[PhaseSpec]:
        """Random rollouts, then V on their frames, M on V's latents, and C by evolution (`train.steps`
        caps the real steps C's search spends); then, for each further round of `iterate`, episodes
        recorded with C, more updates of M and C evolved again."""
        c, v, m, e = self.cfg.collect, self.cfg.vae_train, self.cfg.mdrnn_train, self.cfg.evolution
        it = self.cfg.iterate
        windows = SampleSpec(m.batch_size, m.seq_len, boundary="pad_end")
        specs = [
            PhaseSpec("collect", "collect_rollouts", budget=c.rollouts, gives="collected rollouts"),
            PhaseSpec("vae", "fit_vae", ("vae",), SampleSpec(v.batch_size, 1), budget=v.epochs, gives="a trained VAE"),
            PhaseSpec("mdrnn", "fit_mdn", ("mdrnn", "memoryless"), windows, m.updates, "a trained MDN-RNN"),
            PhaseSpec("controller", "evolve", budget=e.generations, gives="an evolved controller"),
        ]
        for r in range(2, it.rounds + 1):  # later rounds go on from the weights before them: they reset none
            specs += [
                PhaseSpec(f"collect_{r}", "collect_controller", budget=it.rollouts, gives="the controller's episodes"),
                PhaseSpec(f"mdrnn_{r}", "fit_mdn", sample=windows, budget=it.mdrnn_updates, gives="a retrained M"),
                PhaseSpec(f"controller_{r}", "evolve", budget=it.generations, gives="an evolved controller"),
            ]
        return specs

    # ------------------------------------------------------------------ acting

    def initial_state(self, n: int) -> LSTMState:
        return self.mdrnn.initial_state(n)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, is_first: torch.Tensor, state: LSTMState, explore: bool) -> Acted:
        """a_t = C([z_t, h_t]) with z_t the VAE's mean (a sample when exploring); then M takes (z_t, a_t)."""
        keep = (~is_first).float()[None, :, None]
        state = (state[0] * keep, state[1] * keep)
        q = self.vae(obs)
        z = q.sample() if explore else q.mean
        return Acted(*self.control(self.controller_params[None], z, state))

    def chooser(self, params: torch.Tensor) -> Chooser:
        """Actions for one new episode (`envs.record`): C with parameters `params` `[P]` on V's mean latent
        of each frame and M's memory of the episode so far, as the real-environment rollouts act."""
        state = self.initial_state(1)

        @torch.no_grad()
        def choose(obs: np.ndarray) -> np.ndarray:
            nonlocal state
            z = self.vae(torch.tensor(obs[None], device=self.device)).mean
            action, state = self.control(params[None], z, state)
            return action[0].cpu().numpy()

        return choose

    def control(self, params: torch.Tensor, z: torch.Tensor, state: LSTMState) -> tuple[torch.Tensor, LSTMState]:
        """Each row acts with its own controller parameters `[N, P]` (or one row for all) on [z `[N, Z]`, h];
        returns the actions `[N, A]` and M's state after seeing (z, a)."""
        action = self._control_action(params, z, state)
        _, state = self.mdrnn(z, action, state)
        return action, state

    def _control_action(self, params: torch.Tensor, z: torch.Tensor, state: LSTMState) -> torch.Tensor:
        """C's actions `[N, A]` on [z, h], with h the top of M's LSTM state."""
        return self.controller(params, torch.cat([z, state[0][0]], -1))

    @torch.no_grad()
    def dream_returns(
        self, params: torch.Tensor, z0: torch.Tensor, temperature: float, horizon: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Expected returns and lengths `[N]` of rollouts inside M: row i starts from latent `z0[i]` and acts
        with `params[i]`; next latents are sampled at `temperature`, rewards are M's predictions, each weighed
        by the probability that the episode is still running, Π (1 − p(done)) over the steps before it (as
        Dreamer weighs imagined rewards by the continue probability). A threshold on p(done) would let rare
        terminations, which M gives a probability below one half even where they happen (CartPole's fall),
        never end a dream; sampling them would reward a controller for M's noise."""
        n = z0.shape[0]
        z, state = z0, self.mdrnn.initial_state(n)
        running = torch.ones(n, device=z0.device)
        returns = torch.zeros(n, device=z0.device)
        lengths = torch.zeros(n, device=z0.device)
        for _ in range(horizon):
            pred, state = self.mdrnn(z, self._control_action(params, z, state), state)
            returns += pred.reward * running
            lengths += running
            running = running * torch.sigmoid(-pred.done_logit)
            if running.max() < 1e-3:  # every row as good as ended
                break
            z = pred.sample(temperature, generator)
        return returns, lengths

    @torch.no_grad()
    def open_loop(self, obs: torch.Tensor, action: torch.Tensor, context: int) -> Dream:
        """Observations `[T, ...]`: V's reconstructions of the first `context` real ones, then M's
        dream from there, the controller acting on M's latents sampled at the configured τ (the real
        actions after the context are not used: in the dream the controller chooses its own)."""
        z_real = self.vae(obs).mean  # [T, Z]
        z, state = z_real[:1], self.mdrnn.initial_state(1)
        latents = [z]
        for t in range(1, len(obs)):
            if t < context:
                _, state = self.mdrnn(z, action[t : t + 1].float(), state)
                z = z_real[t : t + 1]
            else:
                pred, state = self.mdrnn(z, self._control_action(self.controller_params[None], z, state), state)
                z = pred.sample(self.cfg.evolution.temperature)
            latents.append(z)
        return Dream(self.vae.decode(torch.cat(latents)).mean)

    # ------------------------------------------------------------------ learning steps

    def vae_update(self, frames: torch.Tensor) -> Metrics:
        """One step on observations `[N, ...]` (uint8 frames or states): reconstruction + KL with the paper's
        tolerance."""
        loss, metrics = self.vae.loss(frames)
        step(self.optimizers["vae"], loss, self.cfg.vae_train.grad_clip, "vae")
        return metrics

    def mdrnn_update(self, batch: dict[str, torch.Tensor]) -> Metrics:
        """One step of M, and of the no-memory baseline, on windows `[B, T]`: `z` (sampled from V's
        posterior), `action` (a_t, taken after z_t), `reward` and `done` (of step t + 1), `mask`."""
        parts, base = self._mdn_losses(batch)
        step(self.optimizers["mdrnn"], self.cfg.mdrnn.weigh(parts), self.cfg.mdrnn_train.grad_clip, "mdrnn")
        step(self.optimizers["memoryless"], self.cfg.mdrnn.weigh(base), self.cfg.mdrnn_train.grad_clip, "memoryless")
        metrics = {f"mdrnn/{k}": v.detach() for k, v in parts.items()}
        return metrics | {f"memoryless/{k}": v.detach() for k, v in base.items()}

    @torch.no_grad()
    def mdrnn_validate(self, batch: dict[str, torch.Tensor]) -> Metrics:
        """M's and the baseline's losses on held-out windows (same layout as `mdrnn_update`)."""
        parts, base = self._mdn_losses(batch)
        return {f"valid/mdrnn_{k}": v for k, v in parts.items()} | {f"valid/memoryless_{k}": v for k, v in base.items()}

    def _mdn_losses(self, batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """The loss terms of M and of the no-memory baseline, predicting step t + 1 from (z_t, a_t)."""
        z, a = batch["z"], batch["action"]
        target = (z[:, 1:], batch["reward"][:, 1:], batch["done"][:, 1:], batch["mask"][:, 1:])
        parts = mdn_loss(self.mdrnn(z[:, :-1], a[:, 1:])[0], *target)
        base = mdn_loss(self.memoryless(z[:, :-1], a[:, 1:]), *target)
        return parts, base

    def set_controller(self, params: np.ndarray) -> None:
        self.controller_params.copy_(torch.as_tensor(params, dtype=torch.float32))
