"""TD-MPC2 (Hansen, Su & Wang 2024): a decoder-free latent world model learned by temporal differences,
planned with MPPI over a short horizon, guided by a learned policy prior.

Model (§3.2): encoder z = h(s), latent dynamics z' = d(z, a), reward r(z, a), an ensemble of 5 Q(z, a)
(dropout 1 %, a slow EMA copy for targets) and a Gaussian policy prior p(z); the encoder and the
dynamics end in SimNorm. Reward and Q are two-hot classifiers over bins evenly spaced in symlog space.

Learning (eq. 3, 4) on sub-trajectories (s_0, a_0, r_0, s_1, ..., s_H) with z_0 = h(s_0), z_{t+1} = d(z_t, a_t):

    L = Σ_t ρ^t [ c_d ‖z_{t+1} − sg(h(s_{t+1}))‖² + c_r CE(r(z_t, a_t), r_t) + c_q Σ_k CE(Q_k(z_t, a_t), q_t)
                + c_c BCE(c(z_{t+1}), 1 − done_{t+1}) ]                                       (`episodic`)
    q_t = r_t + γ (1 − done_{t+1}) min_{2 random k} Q̄_k(z'_{t+1}, p(z'_{t+1})),   z' = h(s) (target)
    L_p = Σ_t ρ^t [ α log p(a_t | z_t) − mean_{2 random k} Q_k(z_t, a_t) / S ],   a_t ~ p(z_t),  sg(z_t)

where S is the running 5th–95th percentile range of Q (floored at 1) so one α fits any reward scale.

Acting (§3.3): MPPI over H steps from z = h(s), 24 of its candidates rollouts of the policy prior, the plan
warm-started by the last one shifted a step, scored by Σ_t γ^t C_t r(z_t, a_t) + γ^H C_H Q(z_H, p(z_H)), where
C_t = Π_{1≤τ≤t} c(z_τ) is the predicted probability that the episode still runs (1 unless `episodic`; the
paper's episodic variant thresholds its termination head, here its probability weights as in Dreamer); while
collecting, the first action gets the planner's final std as noise (white as in the paper, or coloured in
time: `noise_colour`, `agents/time_noise.py`). The action executed is an elite drawn by
its weight, as in the paper (`select: sample`): the weighted mean of elites that push both ways, or of
equally scored ones before a sparse reward is first predicted, is an action none of them proposed.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from worldmodels import contracts
from worldmodels.agents.base import Acted, Agent, Metrics, WindowsConfig, frozen, step
from worldmodels.agents.time_noise import TimeNoiseConfig, time_noise
from worldmodels.data.sources import SampleSpec
from worldmodels.errors import ConfigError
from worldmodels.losses.returns import ReturnScale
from worldmodels.losses.twohot import TwoHotSymlog, symlog_bins
from worldmodels.nn import MLP, ema_update
from worldmodels.nn.simnorm import SimNorm
from worldmodels.planners.mppi import MPPI
from worldmodels.planners.protocol import Model, Plan, rollout_objective
from worldmodels.registry import AGENTS, CONTINUES, ENCODERS, PLANNERS, component
from worldmodels.schema import Spec, non_negative, param, positive, unit
from worldmodels.spaces import ActSpec, ObsSpec, obs_map


@AGENTS.register("tdmpc2")
class TDMPC2Agent(Agent):
    @dataclass
    class Config(WindowsConfig, TimeNoiseConfig):
        encoder: Spec = component("encoder", "multi")
        """Features of the observation (MLP for states, CNN for frames), then Linear → LayerNorm → SimNorm."""
        latent: int = positive(128)
        """Latent size (a multiple of `simnorm_dim`)."""
        simnorm_dim: int = positive(8)
        """Entries per SimNorm group."""
        hidden: int = positive(384)
        """Units of the dynamics, reward, Q and policy MLPs (2 hidden layers each)."""
        num_q: int = param(5, lambda v: v >= 2, "an integer >= 2")
        """Q heads in the ensemble; targets take the min of 2 random ones."""
        dropout: float = unit(0.01)
        """Dropout after the first layer of each Q head."""
        bins: int = param(101, lambda v: v >= 2, "an integer >= 2")
        """Two-hot bins of reward and Q, evenly spaced in symlog space over [−`vmax`, `vmax`]."""
        vmax: float = positive(10.0)
        horizon: int = positive(3)
        """H: the planning horizon and the length of the learned sub-trajectories: windows of H + 1 steps
        (whatever train.seq_len says; `train.ratio` counts their steps)."""
        rho: float = unit(0.5)
        """ρ: weight of step t's losses is ρ^t."""
        discount: float = unit(0.99)
        """γ (the paper derives 0.99 from DMC's 500-step episodes)."""
        consistency_coef: float = non_negative(20.0)
        reward_coef: float = non_negative(0.1)
        value_coef: float = non_negative(0.1)
        entropy_coef: float = non_negative(1e-4)
        """α of the max-entropy policy prior."""
        log_std_min: float = -10.0
        log_std_max: float = 2.0
        tau: float = unit(0.01)
        """EMA rate of the target Q heads."""
        lr: float = positive(3e-4)
        enc_lr_scale: float = positive(0.3)
        """The encoder learns at lr × this."""
        grad_clip: float = positive(20.0)
        policy_trajectories: int = non_negative(24)
        """Candidates of each plan that are rollouts of the policy prior."""
        planner: Spec = component(
            "planner",
            "mppi",
            contract=contracts.PriorPlanner,
            horizon=3,
            population=512,
            iterations=6,
            elites=64,
            temperature=2.0,
            init_std=1.0,
            min_std=0.025,
            momentum=0.0,
            select="sample",
        )
        """MPPI (the paper: 512 samples, 64 elites, 6 iterations, weights exp(0.5 (R − max R)), std in [0.05, 2],
        an elite drawn by weight executed)."""
        plan: bool = True
        """Off: act with the policy prior alone (the paper's ablation; much cheaper)."""
        episodic: bool = True
        """Learn a continue head c(z') on replay's terminations and weight planned rewards and the terminal Q
        by it (the paper's `episodic` option; harmless where episodes never terminate: the head learns 1)."""
        cont: Spec = component("continue", "mlp", hidden=384)
        """The continue head on the latent (the paper's termination head: 2 layers of `hidden` units)."""
        cont_coef: float = non_negative(1.0)
        """c_c: weight of the continue loss."""
        explore_std: float = non_negative(0.0)
        """Floor of the collection noise's std at the first update, falling linearly to 0 over
        `explore_std_updates` updates (TD-MPC's `std_schedule`, linear(0.5, 0.05, 25k)); 0: the planner's
        final std alone, as in TD-MPC2. Where the reward of a goal is only found by moving far (MountainCar),
        MPPI's std falls to `min_std` as soon as the action cost is learnt, and the noise then never finds it (with
        the floor it does; the plan learnt from it still need not follow: benchmarks/NOTES.md)."""
        explore_std_updates: int = positive(25000)

    def __init__(self, cfg: Config, obs_spec: ObsSpec, act_spec: ActSpec):
        super().__init__(obs_spec, act_spec)
        if act_spec.discrete:
            raise ConfigError("tdmpc2 needs continuous actions (its policy prior is a squashed Gaussian)")
        if cfg.latent % cfg.simnorm_dim:
            raise ConfigError(
                f"agent.latent ({cfg.latent}) must be a multiple of agent.simnorm_dim ({cfg.simnorm_dim})"
            )
        if cfg.planner.cfg.horizon != cfg.horizon:
            raise ConfigError(f"tdmpc2 plans over its model's horizon: set agent.planner.horizon={cfg.horizon}")
        self.cfg = cfg
        self.terminal_windows = cfg.terminal_windows
        L, A, D = cfg.latent, act_spec.dim, cfg.hidden

        def simnorm_head(in_dim: int) -> nn.Sequential:
            return nn.Sequential(nn.Linear(in_dim, L), nn.LayerNorm(L), SimNorm(cfg.simnorm_dim))

        def classifier(dropout: float = 0.0) -> nn.Sequential:
            net = MLP(L + A, cfg.bins, D, 2, "silu", norm=True, out_scale=0.0).net  # zero output: predicts 0 at first
            return nn.Sequential(net[0], nn.Dropout(dropout), *net[1:]) if dropout else net

        features = ENCODERS.build(cfg.encoder.name, cfg.encoder.cfg, obs_spec=obs_spec)
        self.encoder = nn.Sequential(features, simnorm_head(features.out_dim))
        self.dynamics = nn.Sequential(MLP(L + A, None, D, 2, "silu"), simnorm_head(D))
        self.reward = classifier()
        self.qs = nn.ModuleList(classifier(cfg.dropout) for _ in range(cfg.num_q))
        self.target_qs = copy.deepcopy(self.qs).requires_grad_(False)
        self.pi = MLP(L, 2 * A, D, 2, "silu")
        self.cont = CONTINUES.build(cfg.cont.name, cfg.cont.cfg, in_dim=L) if cfg.episodic else None
        self.scale = ReturnScale(decay=1 - cfg.tau)
        self.register_buffer("bins", symlog_bins(cfg.bins, -cfg.vmax, cfg.vmax), persistent=False)
        self.planner: MPPI = PLANNERS.build(cfg.planner.name, cfg.planner.cfg, action_dim=A)
        parts = [m for m in (self.dynamics, self.reward, self.qs, self.cont) if m is not None]
        model = [
            {"params": self.encoder.parameters(), "lr": cfg.lr * cfg.enc_lr_scale},
            {"params": [p for m in parts for p in m.parameters()]},
        ]
        self.optimizers = {
            "model": torch.optim.Adam(model, lr=cfg.lr),
            "pi": torch.optim.Adam(self.pi.parameters(), lr=cfg.lr, eps=1e-5),
        }

    # ------------------------------------------------------------------ the model's parts

    def next(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.dynamics(torch.cat([z, a], -1))

    def reward_dist(self, z: torch.Tensor, a: torch.Tensor) -> TwoHotSymlog:
        return TwoHotSymlog(self.reward(torch.cat([z, a], -1)), self.bins)

    def q(self, z: torch.Tensor, a: torch.Tensor, heads: nn.ModuleList | None = None) -> list[TwoHotSymlog]:
        """Every head's two-hot Q over `[..., L]`, `[..., A]` (the online heads unless `heads` is given)."""
        za = torch.cat([z, a], -1)
        return [TwoHotSymlog(head(za), self.bins) for head in (self.qs if heads is None else heads)]

    def two_random(self, z: torch.Tensor, a: torch.Tensor, heads: nn.ModuleList | None = None) -> torch.Tensor:
        """The values `[2, ...]` of two heads drawn at random (without replacement); only those two run."""
        heads = self.qs if heads is None else heads
        pick = torch.randperm(len(heads))[:2].tolist()  # drawn on the host: no wait for the device
        return torch.stack([q.mean for q in self.q(z, a, nn.ModuleList(heads[k] for k in pick))])

    def policy(self, z: torch.Tensor, sample: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """a ~ tanh(N(μ, σ²)) `[..., A]` (the mode if not `sample`) and log p(a | z) `[...]`."""
        cfg = self.cfg
        mean, log_std = self.pi(z).chunk(2, -1)
        log_std = cfg.log_std_min + 0.5 * (cfg.log_std_max - cfg.log_std_min) * (torch.tanh(log_std) + 1)
        eps = torch.randn_like(mean) if sample else torch.zeros_like(mean)
        pre = mean + eps * log_std.exp()
        log_prob = (-0.5 * eps**2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_prob = log_prob - (2 * (math.log(2) - pre - F.softplus(-2 * pre))).sum(-1)  # tanh's change of volume
        return torch.tanh(pre), log_prob

    # ------------------------------------------------------------------ acting

    def model(self) -> Model:
        """The planner's view: state z `[N, L]`, reward r(z, a) `[N]`, terminal value mean of 2 random Q(z, p(z)),
        and with `episodic` the continue probability c(z) `[N]`."""

        def step_fn(z: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.next(z, a), self.reward_dist(z, a).mean

        def value(z: torch.Tensor) -> torch.Tensor:
            return self.two_random(z, self.policy(z)[0]).mean(0)

        def cont(z: torch.Tensor) -> torch.Tensor:
            return self.cont(z).mean

        return Model(step_fn, value, cont if self.cont is not None else None)

    def prior(self, z: torch.Tensor) -> torch.Tensor:
        """`policy_trajectories` rollouts of the policy prior from each z `[B, L]`: `[B, K, H, A]`."""
        K = self.cfg.policy_trajectories
        z = z.repeat_interleave(K, 0)
        actions = []
        for _ in range(self.cfg.horizon):
            a = self.policy(z)[0]
            actions.append(a)
            z = self.next(z, a)
        return torch.stack(actions, 1).reshape(-1, K, self.cfg.horizon, self.act_spec.dim)

    @torch.no_grad()
    def act(self, obs: Any, is_first: torch.Tensor, state: Any, explore: bool) -> Acted:
        z = self.encoder(obs)  # [N, L]
        if not self.cfg.plan:
            return Acted(self.policy(z, sample=explore)[0])
        last = None if state is None else Plan(state["centre"], state["centre"], state["centre"].new_zeros(len(z)))
        x0, _ = self.planner.warm_start(last, len(z), z.device, is_first)
        prior = self.prior(z) if self.cfg.policy_trajectories else None
        plan = self.planner.optimize(rollout_objective(self.model(), z, self.cfg.discount), x0, prior=prior)
        action, noise = plan.actions[:, 0], None
        if explore:
            eps, noise = time_noise(action, is_first, None if state is None else state.get("noise"), self.cfg)
            action = (action + self.explore_std(plan.std[:, 0]) * eps).clamp(-1, 1)
        return Acted(action, {"centre": plan.centre, "noise": noise})

    def explore_std(self, std: torch.Tensor) -> torch.Tensor:
        """The collection noise's std `[N, A]`: the planner's, floored by the `explore_std` schedule."""
        cfg = self.cfg
        floor = cfg.explore_std * max(0.0, 1.0 - self.updates / cfg.explore_std_updates)
        return std.clamp(min=floor) if floor > 0 else std

    # ------------------------------------------------------------------ learning

    def windows(self, train: Any) -> SampleSpec:
        """Windows of H + 1 steps: the latent is rolled out H steps from the first."""
        return replace(super().windows(train), seq_len=self.cfg.horizon + 1)

    def update(self, batch: dict[str, torch.Tensor]) -> Metrics:
        cfg, H = self.cfg, self.cfg.horizon
        obs, action = batch["obs"], batch["action"][:, 1:].float()  # action t+1 is the one taken in obs t
        reward = batch["reward"][:, 1:].float()  # [B, H]
        alive = 1.0 - batch["is_terminal"][:, 1:].float()
        mask = (~batch["is_first"][:, 1:]).float().cumprod(1)  # steps still inside the first episode
        rho = cfg.rho ** torch.arange(H, device=mask.device)  # [H]

        with torch.no_grad():
            next_z = self.encoder(obs_map(lambda x: x[:, 1:], obs))  # [B, H, L]
            td_target = self.td_target(next_z, reward, alive)  # [B, H]

        z = self.encoder(obs_map(lambda x: x[:, 0], obs))  # [B, L]
        zs, consistency = [z], 0.0
        for t in range(H):
            z = self.next(z, action[:, t])
            consistency = consistency + rho[t] * (((z - next_z[:, t]) ** 2).mean(-1) * mask[:, t]).mean()
            zs.append(z)
        z_seq = torch.stack(zs[:-1], 1)  # [B, H, L]
        weight = rho * mask  # [B, H]
        consistency = consistency / H
        reward_loss = (self.reward_dist(z_seq, action).loss(reward) * weight).sum(1).mean() / H
        value_loss = sum((q.loss(td_target) * weight).sum(1).mean() for q in self.q(z_seq, action)) / (H * cfg.num_q)
        loss = cfg.consistency_coef * consistency + cfg.reward_coef * reward_loss + cfg.value_coef * value_loss
        if self.cont is not None:
            z_next = torch.stack(zs[1:], 1)  # [B, H, L]
            cont_loss = (-self.cont(z_next).log_prob(alive) * weight).sum(1).mean() / H
            loss = loss + cfg.cont_coef * cont_loss
        metrics = step(self.optimizers["model"], loss, cfg.grad_clip, "model")
        metrics.update(self._update_policy(torch.stack(zs, 1).detach()))

        ema_update(self.target_qs, self.qs, cfg.tau)
        if self.cont is not None:
            metrics["loss/cont"] = cont_loss.detach()
        metrics.update(
            {
                "loss/consistency": consistency.detach(),
                "loss/reward": reward_loss.detach(),
                "loss/value": value_loss.detach(),
                "q/scale": self.scale.scale,
                "q/target": td_target.mean(),
            }
        )
        return metrics

    @torch.no_grad()
    def td_target(self, next_z: torch.Tensor, reward: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
        """q = r + γ (1 − done) min of 2 random target Q̄_k(z', a'), a' ~ p(z'): `[...]` from z' `[..., L]`."""
        bootstrap = self.two_random(next_z, self.policy(next_z)[0], self.target_qs).amin(0)
        return reward + self.cfg.discount * alive * bootstrap

    def _update_policy(self, zs: torch.Tensor) -> Metrics:
        """Max-entropy policy prior on the (detached) latents `[B, H + 1, L]`, Q normalised by its scale S."""
        cfg = self.cfg
        a, log_prob = self.policy(zs)
        with frozen(self.qs):
            q = self.two_random(zs, a).mean(0)  # [B, H + 1]
        self.scale.update(q[:, 0])
        rho = cfg.rho ** torch.arange(zs.shape[1], device=zs.device)
        loss = ((cfg.entropy_coef * log_prob - q / self.scale.scale).mean(0) * rho).mean()
        metrics = step(self.optimizers["pi"], loss, cfg.grad_clip, "pi")
        metrics["pi/entropy"] = -log_prob.mean().detach()
        return metrics
