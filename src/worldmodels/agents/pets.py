"""PETS: probabilistic ensembles with trajectory sampling (Chua et al. 2018).

Model: an ensemble of E Gaussian MLPs over the change of state, each member trained on its own bootstrap
resample of every batch of transitions (s_t, a_{t+1}, s_{t+1}); the reward is learned by an ensemble
head on (s, a, s'), or given by the task's known reward (and termination) function; whether the episode
goes on, c(s'), by a continue head trained on replay's terminations (1 − is_terminal; never truncations),
reading s' in units of its running spread as the ensemble reads its inputs.

Acting: model-predictive control. Every step a planner (CEM, MPPI, iCEM, gradient) optimises the next H
actions against the return predicted by K particles per candidate, propagated through the ensemble
(TS1, TS∞ or expectation), warm-started by the last plan shifted one step; the first action is executed:

    a_t = argmax_{a_{t:t+H}} 1/K Σ_k Σ_τ γ^τ C^k_τ r(s^k_τ, a_τ, s^k_{τ+1}),    s^k_{τ+1} ~ f_{e(k,τ)}(s^k_τ, a_τ)

where C^k_τ = Π_{1≤i≤τ} c(s^k_i) is particle k's probability of still running (see `rollout_objective`).
While collecting, `explore_bonus` β may add β times the particles' spread to each planned reward (optimism).

Diagnostics: a fraction `holdout` of the episodes is kept out of training (flagged per step in replay);
on those the agent logs the one-step and the multi-step (open-loop over the window) prediction error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, Literal

import torch

from worldmodels import contracts, distributed
from worldmodels.agents.base import Acted, Agent, Dream, Metrics, WindowsConfig, step
from worldmodels.dynamics.ensemble import by_member
from worldmodels.envs import continuous_cartpole
from worldmodels.errors import ConfigError
from worldmodels.heads.ensemble import EnsembleReward  # noqa: F401  (registers the "ensemble" reward)
from worldmodels.nn.normaliser import Normaliser
from worldmodels.nn.precision import Precision, precision
from worldmodels.planners.protocol import Model, Plan, rollout_objective
from worldmodels.registry import AGENTS, CONTINUES, DYNAMICS, PLANNERS, REWARDS, component
from worldmodels.schema import Spec, non_negative, positive, unit
from worldmodels.spaces import ActSpec, ObsSpec


def pendulum_reward(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """Pendulum-v1's reward for obs (cos θ, sin θ, θ̇) and model action a ∈ [-1, 1] (torque 2a):
    −(θ² + 0.1 θ̇² + 0.001 u²), on the state before the step."""
    theta = torch.atan2(obs[..., 1], obs[..., 0])
    torque = 2.0 * action[..., 0].clamp(-1, 1)
    return -(theta**2 + 0.1 * obs[..., 2] ** 2 + 0.001 * torque**2)


KnownReward = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
KNOWN_TASKS: dict[str, tuple[KnownReward, Callable[[torch.Tensor], torch.Tensor] | None]] = {
    "pendulum": (pendulum_reward, None),
    "cartpole_balance": (continuous_cartpole.reward, continuous_cartpole.terminated),
}
"""Reward r(s, a, s') `[...]` and termination done(s') `[...]` of the tasks PETS may be told about."""


@AGENTS.register("pets")
class PETSAgent(Agent):
    probe_overrides = ("agent.planner.population=16", "agent.planner.elites=4", "agent.planner.iterations=1")

    @dataclass
    class Config(WindowsConfig):
        dynamics: Spec = component("dynamics", "ensemble", contract=contracts.EnsembleDynamics)
        """The probabilistic ensemble."""
        reward: Spec = component("reward", "ensemble", contract=contracts.EnsembleReward)
        """Learned reward on (s, a, s'); unused when `known_task` is set."""
        cont: Spec = component("continue", "mlp")
        """Learned probability that the episode goes on in s'; unused when `known_task` is set."""
        use_continue: bool = True
        """Weight planned rewards by the learned continue probabilities (harmless where episodes never
        terminate: the head learns 1); off: every plan runs to the horizon."""
        planner: Spec = component("planner", "cem")
        known_task: Literal["none", "pendulum", "cartpole_balance"] = "none"
        """Plan with this task's known reward (and termination) instead of a learned reward. Each is one env
        step's: set `env.action_repeat: 1` with it (`pets` repeats actions on classic control; `pets_pendulum`)."""
        propagation: Literal["ts1", "tsinf", "expectation"] = "tsinf"
        """How particles move through the ensemble (see `dynamics/ensemble.py`); TS∞ is the PETS code's
        default (and mbrl-lib's `fixed_model`)."""
        particles: int = positive(20)
        """Particles K per candidate sequence (a multiple of the ensemble size for ts1/tsinf)."""
        discount: float = unit(1.0)
        """γ of the planned return."""
        explore_bonus: float = non_negative(0.0)
        """β of optimism while collecting: each planned step's reward gains β times the spread of the
        candidate's particles (their std per state dimension, in units of the running spread of replay's
        states, averaged over dimensions), so the plans go where the ensemble has not seen; evaluation plans
        without it. 0: none (the default). On MountainCar-v0 at β = 1 every seed's training episodes reached the
        flag from the first planned ones, where none did without it, but evaluation did not follow: with no
        value beyond its horizon the planner sees no flag from the valley (benchmarks/NOTES.md, 2026-12-07)."""
        lr: float = positive(1e-3)
        weight_decay: float = non_negative(5e-5)
        grad_clip: float = positive(100.0)
        holdout: float = unit(0.1)
        """Fraction of episodes kept out of training to measure prediction error on."""
        precision: Precision = "float32"
        """Arithmetic of the model while planning (bfloat16 by autocast; training stays float32)."""

    def __init__(self, cfg: Config, obs_spec: ObsSpec, act_spec: ActSpec):
        super().__init__(obs_spec, act_spec)
        if len(obs_spec.shape) != 1:
            raise ConfigError(f"pets plans on state vectors; got observations of shape {obs_spec.shape}")
        self.cfg = cfg
        self.terminal_windows = cfg.terminal_windows
        S, A = obs_spec.shape[0], act_spec.dim
        self.dynamics = DYNAMICS.build(cfg.dynamics.name, cfg.dynamics.cfg, latent_dim=S, action_dim=A)
        self.planner = PLANNERS.build(cfg.planner.name, cfg.planner.cfg, action_dim=A, discrete=act_spec.discrete)
        self.known = KNOWN_TASKS.get(cfg.known_task)
        modules = [self.dynamics]
        if self.known is None:
            self.reward = REWARDS.build(cfg.reward.name, cfg.reward.cfg, in_dim=2 * S + A)
            modules.append(self.reward)
        self.learns_continue = self.known is None and cfg.use_continue
        if self.learns_continue:
            self.cont = CONTINUES.build(cfg.cont.name, cfg.cont.cfg, in_dim=S)
            self.cont_inputs = Normaliser(S)
            modules.append(self.cont)
        params = [p for m in modules for p in m.parameters()]
        self.optimizers = {"model": torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)}

    # ------------------------------------------------------------------ acting

    def record_spec(self) -> dict[str, tuple[tuple[int, ...], str]]:
        return {"holdout": ((), "float32")}

    def model(self, bonus: float = 0.0) -> Model:
        """The planner's view of the learned model: state = particles `[N, K, S]`, rewards and continue
        probabilities per particle `[N, K]`; with `bonus` β, each reward gains β times the particles' spread."""
        mode = self.cfg.propagation
        reward_fn, done_fn = self.known or (None, None)

        def step_fn(obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            nxt, reward = predict(obs, action)
            if bonus > 0:
                spread = nxt.std(1) / self.dynamics.inputs.std[: nxt.shape[-1]]  # [N, S]
                reward = reward + bonus * spread.mean(-1, keepdim=True)
            return nxt, reward

        def predict(obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            N, K = obs.shape[:2]
            order = None if mode == "expectation" else self.dynamics.assignment(N, K, mode, obs.device)
            # only the network runs in bfloat16; its outputs, the rewards and the planner stay float32
            with precision(self.cfg.precision, obs.device):
                nxt = self.dynamics.propagate(obs, action, mode, order)  # [N, K, S]
            a = action[:, None].expand(-1, K, -1)
            if reward_fn is not None:
                return nxt, reward_fn(obs, a, nxt).float()
            x = torch.cat([obs, a, nxt], -1)
            if order is not None and self.reward.members_count == self.dynamics.members:
                # each particle's reward from the member that moved it: a trajectory sample of one
                # bootstrapped model, as the dynamics; 1/E of the work of every member on every particle
                return nxt, by_member(self.reward.members, order, x).float()
            # one particle per row (expectation), or ensembles of other sizes: the reward members' mean
            return nxt, self.reward(x.flatten(0, 1)).mean.reshape(N, K).float()

        def cont(obs: torch.Tensor) -> torch.Tensor:
            return (~done_fn(obs)).float() if done_fn is not None else self.continues(obs).mean

        has_cont = done_fn is not None or self.learns_continue
        return Model(step_fn, cont=cont if has_cont else None)

    def plan(self, obs: torch.Tensor, prev: Plan | None, reset: torch.Tensor | None, explore: bool = False) -> Plan:
        """Optimise the next H actions for observations `[N, S]`, warm-started from `prev`; while `explore`,
        towards the particles' spread as well (`explore_bonus`)."""
        N = obs.shape[0]
        K = 1 if self.cfg.propagation == "expectation" else self.cfg.particles
        start = obs.float()[:, None].expand(N, K, -1).contiguous()
        x0, reuse = self.planner.warm_start(prev, N, obs.device, reset)
        model = self.model(self.cfg.explore_bonus if explore and K > 1 else 0.0)
        return self.planner.optimize(rollout_objective(model, start, self.cfg.discount), x0, reuse)

    def continues(self, obs: torch.Tensor) -> torch.distributions.Bernoulli:
        """The learned continue head on states `[..., S]`, read in units of their running spread: on raw
        states a dimension of small range (CartPole's angle, ±0.21) and one of large range (its position, ±2.4)
        weigh alike only after the head has learnt their scales, and a termination seen a few times (the
        end of the track) stayed at P(continue) ≈ 0.86 where the common one (the pole) fell to 0.35
        (benchmarks/NOTES.md, twenty-sixth sitting)."""
        return self.cont(self.cont_inputs.normalise(obs))

    @torch.no_grad()
    def act(self, obs: torch.Tensor, is_first: torch.Tensor, state: Any, explore: bool) -> Acted:
        prev, holdout = state if state is not None else (None, None)
        new = torch.rand(len(obs), device=obs.device) < self.cfg.holdout
        holdout = new if holdout is None else torch.where(is_first, new, holdout)
        plan = self.plan(obs, None if prev is None else Plan(**prev), is_first, explore)
        # the acting state goes into checkpoints, which load tensors and plain containers only: a dict, not a Plan
        state = ({f.name: getattr(plan, f.name) for f in fields(plan)}, holdout)
        return Acted(plan.actions[:, 0], state, {"holdout": holdout.float().cpu().numpy()})

    @torch.no_grad()
    def open_loop(self, obs: torch.Tensor, action: torch.Tensor, context: int) -> Dream:
        states = list(obs[:context].float())
        for t in range(context, obs.shape[0]):
            states.append(self.dynamics.propagate(states[-1][None, None], action[t][None], "expectation")[0, 0])
        return Dream(torch.stack(states))

    # ------------------------------------------------------------------ learning

    def update(self, batch: dict[str, torch.Tensor]) -> Metrics:
        obs, action, reward = batch["obs"].float(), batch["action"].float(), batch["reward"].float()  # [B, T, ...]
        inside = ~batch["is_first"][:, 1:]  # transition t → t+1 within one episode, [B, T-1]
        held = batch["holdout"][:, 1:] > 0
        metrics = self._diagnose(obs, action, inside, held)
        train = (inside & ~held).flatten()
        s, a = obs[:, :-1].flatten(0, 1)[train], action[:, 1:].flatten(0, 1)[train]
        s2, r = obs[:, 1:].flatten(0, 1)[train], reward[:, 1:].flatten()[train]
        alive = 1.0 - batch["is_terminal"][:, 1:].flatten()[train].float()
        n = len(s)
        if not distributed.agree(n > 0):  # every rank skips alike: the ranks meet in `step`
            return metrics
        self.dynamics.update_normalisers(s, a, s2)
        boot = torch.randint(0, n, (self.dynamics.members, n), device=s.device)  # [E, n]: each member's resample
        loss, parts = self.dynamics.loss(s[boot], a[boot], s2[boot])
        metrics.update({f"model/{k}": v for k, v in parts.items()})
        if self.known is None:
            x = torch.cat([s, a, s2], -1)
            self.reward.update_normalisers(x, r)
            rboot = torch.randint(0, n, (self.reward.members_count, n), device=s.device)
            reward_loss = self.reward.loss(x[rboot], r[rboot])
            loss = loss + reward_loss
            metrics["model/reward_mse"] = reward_loss.detach()
        if self.learns_continue:
            self.cont_inputs.update(s2)
            cont_loss = -self.continues(s2).log_prob(alive).mean()
            loss = loss + cont_loss
            metrics["model/cont"] = cont_loss.detach()
        metrics.update(step(self.optimizers["model"], loss, self.cfg.grad_clip, "model"))
        return metrics

    @torch.no_grad()
    def _diagnose(self, obs: torch.Tensor, action: torch.Tensor, inside: torch.Tensor, held: torch.Tensor) -> Metrics:
        """Prediction error on held-out transitions: one step, and open loop over the whole window
        (expectation propagation from each window's first state), in normalised state units."""
        valid = inside & held  # [B, T-1]
        if not bool(valid.any()):
            return {}
        scale = self.dynamics.targets.std
        B, T, S = obs.shape
        one = self.dynamics.propagate(
            obs[:, :-1].reshape(-1, 1, S), action[:, 1:].reshape(-1, action.shape[-1]), "expectation"
        )
        one_err = (((one.reshape(B, T - 1, S) - obs[:, 1:]) / scale) ** 2).mean(-1)
        metrics = {"model/one_step_error": one_err[valid].mean()}
        run = valid.cumprod(1).bool()  # windows held out and inside one episode up to step k
        state = obs[:, :1]  # [B, 1, S] one particle
        errors = []
        for t in range(1, T):
            state = self.dynamics.propagate(state, action[:, t], "expectation")
            errors.append((((state[:, 0] - obs[:, t]) / scale) ** 2).mean(-1))
        multi = torch.stack(errors, 1)  # [B, T-1]
        full = run[:, -1]
        if bool(full.any()):
            metrics["model/multi_step_error"] = multi[full, -1].mean()  # after T − 1 steps
        return metrics
