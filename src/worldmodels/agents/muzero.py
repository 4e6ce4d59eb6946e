"""MuZero (Schrittwieser et al. 2020): plan with MCTS in a learned model that predicts only reward, value
and policy, and learn that model from replayed trajectories unrolled K steps.

Acting: a batched search (`planners.mcts`) from s⁰ = h(o_t) for every environment at once; the action is
sampled from visits^(1/T) with the temperature T on a schedule over updates; the search policy π_t and
root value ν_t are stored in replay beside the action they chose. With `hold_probabilities` ε > 0 the
self-play action is also explored in time (`agents/holds.py`, εz-greedy): where the network cannot tell
the actions apart, a random action is held for a heavy-tailed number of steps instead of the search's.
Per-step noise (temperature, Dirichlet) cannot leave the start of a task whose rewards are the same for
every action until a far goal. Where the network has a preference it is followed: holds there fill replay
with another policy's returns, which the value targets then learn (CartPole with holds at every step for
its first 3,000 updates scored 124 at 25k env steps, against 464 without). The gate reads the network's
prior policy at the root, before the search's noise, not the search's visits: with the values of an
untrained network the tree's min–max normalisation turns their arbitrary small differences into a clear
preference, so the visits look decided at the start of every task.

Learning, for a replayed window starting at o_t (Eq. 1 of the paper, with the Appendix G details):

    s⁰ = h(o_t);  sᵏ, rᵏ = g(sᵏ⁻¹, a_{t+k−1}) with the gradient into g scaled by 1/2;  pᵏ, vᵏ = f(sᵏ)
    z_{t+k} = u_{t+k+1} + γ u_{t+k+2} + … + γⁿ⁻¹ u_{t+k+n} + γⁿ ν_{t+k+n}     (n-step target, cut at episode ends)
    l = Σ_k c_k [ CE(uₜ₊ₖ, rᵏ) + w_v CE(z_{t+k}, vᵏ) + CE(π_{t+k}, pᵏ) ],   c_0 = 1, c_k = 1/K,
    weighted by the prioritised-replay importance weight; the new priority is |ν⁰ − z_t|.

After a terminal state the model is trained towards an absorbing state (reward 0, value 0, no policy
target); after a time-limit cut the steps are not trained. With `reanalyse` > 0, that fraction of each
batch has its policy targets recomputed by a fresh search and its bootstrap values by the current network.

With `consistency_weight` > 0, EfficientZero's self-supervised consistency (Ye et al. 2021) is added: each
unrolled state sᵏ (k ≥ 1), through a projection and a predictor, is drawn towards the projection of the
state of the observation it stands for, h(o_{t+k}), held fixed (SimSiam's negative cosine similarity),
weighted as the other unrolled terms. Rewards, values and search policies are the model's only teachers
otherwise; where they are the same everywhere (−1 per step, uniform visits) the state learns nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from worldmodels.agents.base import Acted, Agent, Metrics, adam, step
from worldmodels.agents.holds import HoldConfig, hold
from worldmodels.dynamics.muzero import scale_gradient
from worldmodels.errors import ConfigError
from worldmodels.losses.support import support_loss, support_to_scalar
from worldmodels.nn import MLP
from worldmodels.planners.mcts import SearchOutput
from worldmodels.registry import AGENTS, NETWORKS, SEARCHES, component
from worldmodels.schema import Spec, non_negative, param, positive, unit
from worldmodels.spaces import ActSpec, ObsSpec


@AGENTS.register("muzero")
class MuZeroAgent(Agent):
    @dataclass
    class Config(HoldConfig):
        network: Spec = component("network", "muzero_mlp")
        """h, g, f: `muzero_mlp` (vectors) or `muzero_resnet` (images)."""
        search: Spec = component("search", "mcts")
        """The search; its `discount` is also the discount of the value targets."""
        unroll_steps: int = positive(5)
        """K: steps the model is unrolled per replayed window (train.seq_len >= K + td_steps + 2)."""
        td_steps: int = positive(10)
        """n of the n-step value targets."""
        lr: float = positive(3e-3)
        adam_eps: float = positive(1e-8)
        grad_clip: float = positive(10.0)
        value_loss_weight: float = non_negative(0.25)
        """w_v: the paper's 0.25 when targets are bootstrapped from replay."""
        priority_alpha: float = non_negative(1.0)
        """α of prioritised replay (0: uniform sampling, no importance weights)."""
        priority_beta: float = non_negative(1.0)
        """β of the importance weights."""
        reanalyse: float = unit(0.0)
        """Fraction of each batch whose targets are recomputed with the current network (MuZero Reanalyse)."""
        consistency_weight: float = non_negative(0.0)
        """Weight of EfficientZero's self-supervised consistency (module docstring; its paper's 2); 0: off."""
        consistency_dim: int = positive(256)
        """Width of the consistency's projection and predictor."""
        temperatures: list[float] = param([1.0, 0.5, 0.25], lambda v: len(v) > 0 and min(v) >= 0, "numbers >= 0")
        """Self-play temperatures, in order; the i-th is used from update `temperature_updates[i-1]` on."""
        temperature_updates: list[int] = param([5000, 10000], lambda v: list(v) == sorted(v), "increasing integers")
        """Updates at which the self-play temperature moves to the next value in `temperatures`."""
        hold_probabilities: list[float] = param(
            [0.0], lambda v: len(v) > 0 and all(0 <= p <= 1 for p in v), "probabilities in [0, 1]"
        )
        """ε of εz-greedy self-play (module docstring) in each stage of `temperatures`, or one for all; 0: the
        search's action at every step."""

    def __init__(self, cfg: Config, obs_spec: ObsSpec, act_spec: ActSpec):
        super().__init__(obs_spec, act_spec)
        if not act_spec.discrete:
            raise ConfigError("agent 'muzero' needs a discrete action space; this environment's actions are continuous")
        if len(cfg.hold_probabilities) not in (1, len(cfg.temperatures)):
            raise ConfigError(
                "agent.hold_probabilities needs one entry, or one per entry of agent.temperatures "
                f"(got {len(cfg.hold_probabilities)} and {len(cfg.temperatures)})"
            )
        if len(cfg.temperatures) != len(cfg.temperature_updates) + 1:
            raise ConfigError(
                "agent.temperatures needs exactly one more entry than agent.temperature_updates "
                f"(got {len(cfg.temperatures)} and {len(cfg.temperature_updates)})"
            )
        self.cfg = cfg
        self.num_actions = A = act_spec.dim
        self.net = NETWORKS.build(cfg.network.name, cfg.network.cfg, obs_shape=obs_spec.shape, action_dim=A)
        self.search = SEARCHES.build(cfg.search.name, cfg.search.cfg)
        self.discount = self.search.cfg.discount
        self.projection = self.predictor = None
        if cfg.consistency_weight > 0:
            with torch.no_grad():
                flat = self.net.represent(torch.zeros(1, *obs_spec.shape, dtype=getattr(torch, obs_spec.dtype))).numel()
            D = cfg.consistency_dim
            self.projection = MLP(flat, D, hidden=D, layers=1, act="relu")
            self.predictor = MLP(D, D, hidden=D, layers=1, act="relu")
        self.optimizers = {"model": adam(self.parameters(), cfg.lr, cfg.adam_eps)}
        self.priority = (cfg.priority_alpha, cfg.priority_beta) if cfg.priority_alpha > 0 else None

    # ------------------------------------------------------------------ the model as search callbacks

    def _root(self, obs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        state = self.net.represent(obs)
        logits, value = self.net.predict(state)
        return state, logits, support_to_scalar(value)

    def _recurrent(self, state: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        state, reward = self.net.dynamics(state, F.one_hot(action, self.num_actions).to(state.dtype))
        logits, value = self.net.predict(state)
        return state, support_to_scalar(reward), logits, support_to_scalar(value)

    def _search(self, obs: Tensor, explore: bool) -> SearchOutput:
        return self.search(obs, self._root, self._recurrent, explore=explore, temperature=self.temperature())

    # ------------------------------------------------------------------ acting

    def _stage(self) -> int:
        """The self-play stage at the current number of updates (module docstring)."""
        return int(np.searchsorted(self.cfg.temperature_updates, self.updates, "right"))

    def temperature(self) -> float:
        """The self-play temperature at the current number of updates."""
        return self.cfg.temperatures[self._stage()]

    def hold_probability(self) -> float:
        """εz-greedy's ε at the current number of updates."""
        holds = self.cfg.hold_probabilities
        return holds[self._stage() if len(holds) > 1 else 0]

    def record_spec(self) -> dict[str, tuple[tuple[int, ...], str]]:
        return {"search_policy": ((self.num_actions,), "float32"), "search_value": ((), "float32")}

    @torch.no_grad()
    def act(self, obs: Tensor, is_first: Tensor, state: Any, explore: bool) -> Acted:
        out = self._search(obs, explore)
        records = {
            "search_policy": out.policy.float().cpu().numpy(),
            "search_value": out.root_value.float().cpu().numpy(),
        }
        action, held = out.action, None
        if explore and self.hold_probability() > 0:
            action, held = hold(action, out.prior, is_first, state, self.hold_probability(), self.cfg)
        return Acted(F.one_hot(action, self.num_actions).float(), held, records)

    # ------------------------------------------------------------------ learning

    def update(self, batch: dict[str, Tensor]) -> Metrics:
        cfg = self.cfg
        K, n = cfg.unroll_steps, cfg.td_steps
        T = K + n + 2
        if batch["reward"].shape[1] < T:
            raise ConfigError(
                f"train.seq_len is {batch['reward'].shape[1]} but agent 'muzero' needs at least "
                f"unroll_steps + td_steps + 2 = {T}"
            )
        obs, action = batch["obs"][:, :T], batch["action"][:, :T].float()
        targets = self._targets({k: v[:, :T] for k, v in batch.items() if k not in ("obs", "index", "weight")}, obs)

        state = self.net.represent(obs[:, 0])
        losses = {"reward": 0.0, "value": 0.0, "policy": 0.0}
        if self.projection is not None:
            losses["consistency"] = 0.0
            with torch.no_grad():  # the targets: projections of h(o_{t+k}), k = 1 … K, without gradient
                seen = self.projection(self.net.represent(obs[:, 1 : K + 1].flatten(0, 1)).flatten(1))
                seen = seen.view(len(obs), K, -1)
        per_sample = 0.0
        for k in range(K + 1):
            if k > 0:
                state, reward_logits = self.net.dynamics(scale_gradient(state, 0.5), action[:, k])
                reward = support_loss(reward_logits, targets["reward"][:, k]) * targets["mask"][:, k]
                if self.projection is not None:
                    guess = self.predictor(self.projection(state.flatten(1)))
                    consistency = -F.cosine_similarity(guess, seen[:, k - 1], dim=-1) * targets["observed"][:, k]
                    per_sample = per_sample + cfg.consistency_weight / K * consistency
                    losses["consistency"] = losses["consistency"] + consistency.mean().detach() / K
            else:
                reward = torch.zeros_like(targets["value"][:, 0])
            policy_logits, value_logits = self.net.predict(state)
            if k == 0:
                root_value = support_to_scalar(value_logits.detach())
            value = support_loss(value_logits, targets["value"][:, k]) * targets["mask"][:, k]
            policy = -(targets["policy"][:, k] * torch.log_softmax(policy_logits, -1)).sum(-1)
            policy = policy * targets["policy_mask"][:, k]
            scale = 1.0 if k == 0 else 1.0 / K
            per_sample = per_sample + scale * (reward + cfg.value_loss_weight * value + policy)
            for name, term in (("reward", reward), ("value", value), ("policy", policy)):
                losses[name] = losses[name] + scale * term.mean().detach()

        weight = batch["weight"] if "weight" in batch else torch.ones_like(per_sample)
        metrics = step(self.optimizers["model"], (weight * per_sample).mean(), cfg.grad_clip, "model")
        self.new_priorities = (root_value - targets["value"][:, 0]).abs().cpu().numpy()
        metrics.update({f"model/{k}": v for k, v in losses.items()})
        metrics["model/root_value"] = root_value.mean()
        metrics["model/value_target"] = targets["value"][:, 0].mean()
        metrics["self_play/temperature"] = self.temperature()
        metrics["self_play/hold_probability"] = self.hold_probability()
        return metrics

    @torch.no_grad()
    def _targets(self, batch: dict[str, Tensor], obs: Tensor) -> dict[str, Tensor]:
        """Targets for unroll steps k = 0 … K of windows `[B, T]` (T = K + n + 2): rewards, n-step values
        and search policies `[B, K+1, ...]`, with the masks of steps that have them."""
        K, n, gamma = self.cfg.unroll_steps, self.cfg.td_steps, self.discount
        first, terminal = batch["is_first"].bool(), batch["is_terminal"].bool()
        reward = batch["reward"].float()
        B, T = reward.shape
        # rows still in the episode of row 0; rows after a terminal one are absorbing
        in_episode = torch.cat([torch.ones_like(first[:, :1]), (~first[:, 1:]).long().cumprod(1).bool()], 1)
        ended = terminal & in_episode
        absorbing = (ended.long().cumsum(1) - ended.long()) > 0
        # the agent searched at row j iff row j+1 continues the episode and holds that search's records
        searched = torch.zeros_like(first)
        searched[:, :-1] = in_episode[:, 1:] & (batch["search_policy"][:, 1:].sum(-1) > 0)
        stored_value = torch.zeros_like(reward)
        stored_value[:, :-1] = batch["search_value"][:, 1:].float()
        stored_policy = torch.zeros_like(batch["search_policy"])
        stored_policy[:, :-1] = batch["search_policy"][:, 1:]

        fresh = torch.rand(B, device=reward.device) < self.cfg.reanalyse  # [B] reanalysed windows
        net_value = support_to_scalar(self.net.predict(self.net.represent(obs.flatten(0, 1)))[1]).view(B, T)
        bootstrap = torch.where(searched & ~fresh[:, None], stored_value, net_value)  # ν_j

        def ahead(x: Tensor, i: int) -> Tensor:  # x[:, k + i] for k = 0 … K
            return x[:, i : i + K + 1]

        alive = ahead(in_episode & ~terminal, 0)
        value = torch.zeros(B, K + 1, device=reward.device)
        for i in range(1, n + 1):
            going = alive & ahead(in_episode, i)
            cut = alive & ~ahead(in_episode, i)  # time limit at row k+i−1: bootstrap from it
            value += gamma ** (i - 1) * (
                torch.where(going, ahead(reward, i), 0.0) + torch.where(cut, ahead(bootstrap, i - 1), 0.0)
            )
            alive = going & ~ahead(terminal, i)
        value += gamma**n * torch.where(alive, ahead(bootstrap, n), 0.0)

        policy = ahead(stored_policy, 0)
        policy_mask = ahead(searched, 0)
        if fresh.any():
            rows = fresh.nonzero().squeeze(1)
            states = obs[rows, : K + 1].flatten(0, 1)
            policy[rows] = self._search(states, explore=True).policy.float().view(len(rows), K + 1, -1)
            policy_mask[rows] = ahead(in_episode & ~terminal, 0)[rows]
        return {
            "reward": torch.where(ahead(in_episode, 0), ahead(reward, 0), 0.0),
            "value": value,
            "mask": ahead(in_episode | absorbing, 0).float(),
            "observed": ahead(in_episode, 0).float(),
            "policy": policy,
            "policy_mask": policy_mask.float(),
        }
