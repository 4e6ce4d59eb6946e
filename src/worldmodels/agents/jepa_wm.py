"""A JEPA world model that plans in embedding space (PLDM, Sobal et al. 2025; DINO-WM, Zhou et al. 2024):
a representation learner is its state, z = f(o), and an action-conditioned predictor g moves embeddings,
ẑ_{t+1} = g(ẑ_t, a_{t+1}); nothing is decoded back to observations and there is no reward.

Learning on windows (o_0, a_1, o_1, ..., a_{T−1}, o_{T−1}) inside one episode, z_t = sg(f(o_t)):

    L = c_r L_repr(o, a)                                          the learner's own objective (JEPA, VAE, InfoNCE)
      + c_tf 1/(T−1) Σ_t ‖g(z_{t−1}, a_t) − z_t‖² / D             teacher forcing: one step from each true embedding
      + c_ol 1/(T−1) Σ_t ‖ẑ_t − z_t‖² / D,   ẑ_0 = z_0,  ẑ_t = g(ẑ_{t−1}, a_t)      open loop, as when planning

The predictor's loss does not reach the encoder (its targets and inputs are stopped): the learner's own
objective alone shapes the embedding, and the trivial minimum of a prediction loss, one point for every
observation, is not on offer to a VAE or contrastive encoder.

Acting toward a goal observation o_g (`goal_state`): the planner (CEM or MPPI) optimises H actions against

    R(a_{1:H}) = −Σ_{t=1}^{H} ‖ẑ_t − f(o_g)‖² / D,    ẑ_0 = f(o),

the goal embedding travelling in the planner's state beside ẑ; every sum term rewards being at the goal
early and staying there. The first `replan_every` actions of a plan are executed, then it plans again from
the observation reached (model-predictive control). Without a goal (collecting online) it explores:
uniformly random actions, each held for `explore_hold` steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from worldmodels.agents.base import Acted, Agent, Metrics, step
from worldmodels.data.sources import SampleSpec
from worldmodels.errors import ConfigError
from worldmodels.phases import PhaseSpec, Stream
from worldmodels.planners.protocol import Model, rollout_objective
from worldmodels.registry import AGENTS, PLANNERS, REPRESENTATION_LEARNERS, component
from worldmodels.representations.embedding import Predictor
from worldmodels.schema import Spec, non_negative, positive
from worldmodels.spaces import ActSpec, Obs, ObsSpec


@AGENTS.register("jepa_wm")
class JEPAWorldModel(Agent):
    @dataclass
    class Config:
        representation: Spec = component("representation_learner", "jepa")
        """The state: observations → embeddings, learnt by the learner's own objective (`jepa`; `vae` is the
        reconstruction-based model, `contrastive` InfoNCE)."""
        predictor_hidden: int = positive(256)
        predictor_layers: int = positive(2)
        representation_coef: float = non_negative(1.0)
        """c_r: weight of the learner's own loss."""
        teacher_forcing_coef: float = non_negative(1.0)
        """c_tf: weight of the one-step prediction loss from true embeddings."""
        open_loop_coef: float = non_negative(1.0)
        """c_ol: weight of the prediction loss rolled open loop from each window's first embedding."""
        lr: float = positive(3e-4)
        grad_clip: float = positive(100.0)
        planner: Spec = component("planner", "cem", horizon=8, population=300, iterations=10, elites=30)
        """The planner toward a goal (issue 23's setting: CEM, 300 samples × 10 iterations, horizon 8)."""
        replan_every: int = positive(4)
        """Actions of each plan executed before planning again."""
        explore_hold: int = positive(4)
        """Without a goal: steps each random action is held for."""

    def __init__(self, cfg: Config, obs_spec: ObsSpec, act_spec: ActSpec):
        super().__init__(obs_spec, act_spec)
        if act_spec.discrete:
            raise ConfigError("jepa_wm plans continuous actions; use an environment with a Box action space")
        if cfg.replan_every > cfg.planner.cfg.horizon:
            raise ConfigError(
                f"agent.replan_every ({cfg.replan_every}) is longer than a plan (agent.planner.horizon="
                f"{cfg.planner.cfg.horizon}); lower it or lengthen the plan"
            )
        self.cfg = cfg
        A = act_spec.dim
        self.representation = REPRESENTATION_LEARNERS.build(
            cfg.representation.name, cfg.representation.cfg, obs_spec=obs_spec, action_dim=A
        )
        D = self.representation.embed_dim
        self.predictor = Predictor(D, A, cfg.predictor_hidden, cfg.predictor_layers)
        self.planner = PLANNERS.build(cfg.planner.name, cfg.planner.cfg, action_dim=A)
        trained = [p for p in self.parameters() if p.requires_grad]  # not the learner's target network
        self.optimizers = {"model": torch.optim.Adam(trained, lr=cfg.lr)}

    # ------------------------------------------------------------------ learning

    def phases(self, train: Any) -> list[PhaseSpec]:
        """One `learn` phase on `batch_size x seq_len` windows that stay inside one episode."""
        sample = SampleSpec(train.batch_size, train.seq_len, boundary="within")
        return [PhaseSpec("learn", "learn", streams=(Stream("update", sample, train.ratio, trains=("model",)),))]

    def rollout(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Open-loop predictions `[B, H, D]` from embeddings `[B, D]` under actions `[B, H, A]`."""
        out = []
        for t in range(actions.shape[1]):
            z = self.predictor(z, actions[:, t])
            out.append(z)
        return torch.stack(out, 1)

    def update(self, batch: dict[str, torch.Tensor]) -> Metrics:
        cfg = self.cfg
        obs, action = batch["obs"], batch["action"].float()  # action t led to obs t
        repr_loss, metrics = self.representation.loss(obs, action)
        with torch.no_grad():
            z = self.representation.encode(obs)  # [B, T, D]
        taken = action[:, 1:]  # [B, T-1, A]
        teacher = self.predictor(z[:, :-1], taken)  # [B, T-1, D]
        rolled = self.rollout(z[:, 0], taken)  # [B, T-1, D]
        teacher_loss = (teacher - z[:, 1:]).pow(2).mean()
        open_loop_loss = (rolled - z[:, 1:]).pow(2).mean()
        loss = (
            cfg.representation_coef * repr_loss
            + cfg.teacher_forcing_coef * teacher_loss
            + cfg.open_loop_coef * open_loop_loss
        )
        metrics |= step(self.optimizers["model"], loss, cfg.grad_clip, "model")
        self.representation.update_target()
        metrics |= {
            "loss/teacher_forcing": teacher_loss.detach(),
            "loss/open_loop": open_loop_loss.detach(),
            "loss/open_loop_last": (rolled[:, -1] - z[:, -1]).pow(2).mean().detach(),
        }
        return metrics

    # ------------------------------------------------------------------ acting

    def model(self) -> Model:
        """The planner's view: state (ẑ `[N, D]`, goal embedding `[N, D]`), reward −‖ẑ' − goal‖² / D `[N]`."""

        def step_fn(state: tuple[torch.Tensor, torch.Tensor], action: torch.Tensor):
            z, goal = state
            z = self.predictor(z, action)
            return (z, goal), -(z - goal).pow(2).mean(-1)

        return Model(step_fn)

    @torch.no_grad()
    def goal_state(self, goal: Obs) -> dict[str, torch.Tensor]:
        """The acting state that makes `act` plan toward goal observations `[N, *obs]` (one per environment)."""
        z_goal = self.representation.encode(goal)  # [N, D]
        N, H, A = len(z_goal), self.planner.horizon, self.act_spec.dim
        plan = torch.zeros(N, H, A, device=z_goal.device)
        return {"goal": z_goal, "plan": plan, "age": torch.zeros(N, dtype=torch.long, device=z_goal.device)}

    def describe_planning(self) -> str:
        planner = self.cfg.planner
        budget = ", ".join(
            f"{k} {getattr(planner.cfg, k)}" for k in ("population", "iterations", "horizon") if hasattr(planner.cfg, k)
        )
        return f"planner {planner.name}: {budget}, replan every {self.cfg.replan_every}"

    @torch.no_grad()
    def plan(self, obs: Obs, goal: torch.Tensor) -> torch.Tensor:
        """Planned actions `[N, H, A]` from observations `[N, *obs]` toward goal embeddings `[N, D]`."""
        z = self.representation.encode(obs)
        x0 = self.planner.initial(len(z), z.device)
        return self.planner.optimize(rollout_objective(self.model(), (z, goal)), x0).actions

    @torch.no_grad()
    def act(self, obs: Obs, is_first: torch.Tensor, state: Any, explore: bool) -> Acted:
        """Toward the goal in `state` (see `goal_state`); with none, held random actions (`explore` or not)."""
        if state is None or "goal" not in state:
            return self._explore(is_first, state)
        age = torch.where(is_first, 0, state["age"])  # steps since the plan being executed was made
        due = age % self.cfg.replan_every == 0
        plan = state["plan"]
        if bool(due.any()):
            plan = torch.where(due[:, None, None], self.plan(obs, state["goal"]), plan)
        index = (age % self.cfg.replan_every)[:, None, None].expand(-1, 1, plan.shape[-1])
        action = plan.gather(1, index)[:, 0]
        return Acted(action, {"goal": state["goal"], "plan": plan, "age": age + 1})

    def _explore(self, is_first: torch.Tensor, state: dict[str, torch.Tensor] | None) -> Acted:
        N, device = len(is_first), is_first.device
        if state is None:
            state = {
                "action": torch.zeros(N, self.act_spec.dim, device=device),
                "age": torch.zeros_like(is_first).long(),
            }
        age = torch.where(is_first, 0, state["age"])
        fresh = torch.rand(N, self.act_spec.dim, device=device) * 2 - 1
        action = torch.where((age % self.cfg.explore_hold == 0)[:, None], fresh, state["action"])
        return Acted(action, {"action": action, "age": age + 1})
