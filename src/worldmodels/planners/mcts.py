"""Batched Monte Carlo tree search over a learned model (MuZero, Schrittwieser et al. 2020, Appendix B),
with Gumbel MuZero's root selection by sequential halving (Danihelka et al. 2022) as an option.

A batch of B trees lives in tensors, one slot per node: node `0` is the root, simulation `s` adds node
`s + 1` to every tree at once, and the last slot is a dummy that every unexpanded child points to (its
statistics stay zero, so reading an unexpanded child needs no branch). Per simulation:

    selection   from the root, a* = argmax_a  Q̄(s, a) + P(s, a) · √N(s) / (1 + N(s, a)) · c(s)
                c(s) = c_init + log((N(s) + c_base + 1) / c_base),  Q̄ min-max normalised over the tree
    expansion   (s', r, p, v) = recurrent(state of the leaf's parent, a*)
    backup      G_L = v;  G_d = r_{d+1} + γ G_{d+1};  every node d on the path: N += 1, W += G_d

The model enters only through two callbacks:

    root(obs) -> (state [B, ...], prior_logits [B, A], value [B])
    recurrent(state [B, ...], action [B]) -> (state [B, ...], reward [B], prior_logits [B, A], value [B])

Every step is a tensor op over the batch; the only Python loops run over simulations and tree depth.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from worldmodels.config import non_negative, positive, unit
from worldmodels.registry import PLANNERS

RootFn = Callable[[Any], tuple[Tensor, Tensor, Tensor]]
RecurrentFn = Callable[[Tensor, Tensor], tuple[Tensor, Tensor, Tensor, Tensor]]


@dataclass
class MCTSConfig:
    num_simulations: int = positive(50)
    """Simulations per search; each adds one node to every tree."""
    discount: float = unit(0.997)
    """γ for backing up rewards and values."""
    pb_c_init: float = non_negative(1.25)
    """c_init of the pUCT exploration term."""
    pb_c_base: float = positive(19652.0)
    """c_base of the pUCT exploration term."""
    dirichlet_alpha: float = positive(0.25)
    """α of the Dirichlet noise mixed into the root prior when exploring."""
    exploration_fraction: float = unit(0.25)
    """Weight of the Dirichlet noise in the root prior (0: none)."""
    root_selection: Literal["puct", "gumbel"] = "puct"
    """`gumbel`: Gumbel MuZero's sequential halving at the root (pUCT below it)."""
    max_considered_actions: int = positive(16)
    """Gumbel: actions sampled without replacement at the root, then halved."""
    gumbel_scale: float = non_negative(1.0)
    """Gumbel: scale of the Gumbel noise when exploring."""
    maxvisit_init: float = non_negative(50.0)
    """Gumbel: c_visit of σ(q̂) = (c_visit + max_b N(b)) · c_scale · q̂."""
    value_scale: float = non_negative(0.1)
    """Gumbel: c_scale of σ(q̂)."""


@dataclass(frozen=True)
class SearchOutput:
    action: Tensor
    """Chosen actions `[B]` (int64)."""
    visit_counts: Tensor
    """Visits of each root action `[B, A]`; each row sums to `num_simulations`."""
    policy: Tensor
    """The search policy `[B, A]`, the policy-loss target: visit distribution (pUCT) or the improved
    policy softmax(logits + σ(completed Q)) (Gumbel)."""
    root_value: Tensor
    """Search value of each root `[B]`: the mean of every return backed up through it."""
    q_values: Tensor
    """Q(root, a) = r + γ V(child) `[B, A]`; 0 for unvisited actions."""


def considered_visits(num_considered: int, num_simulations: int) -> list[int]:
    """Sequential halving's schedule: at simulation s the root may only pick an action visited exactly
    `schedule[s]` times. Each phase gives every remaining action an equal share of a budget of about
    `num_simulations / log2(m)`, then keeps the better half (at least two)."""
    if num_considered <= 1:
        return list(range(num_simulations))
    phases = math.ceil(math.log2(num_considered))
    schedule: list[int] = []
    visits = 0
    width = num_considered
    while len(schedule) < num_simulations:
        rounds = max(1, num_simulations // (phases * width))
        for _ in range(rounds):
            schedule += [visits] * width
            visits += 1
        width = max(2, width // 2)
    return schedule[:num_simulations]


def search(
    obs: Any,
    root_fn: RootFn,
    recurrent_fn: RecurrentFn,
    cfg: MCTSConfig,
    invalid: Tensor | None = None,
    explore: bool = True,
    temperature: float = 1.0,
) -> SearchOutput:
    """Search B trees at once from `root_fn(obs)`.

    `invalid` `[B, A]` (bool) marks root actions that may never be chosen. With `explore`, Dirichlet noise
    (pUCT) or Gumbel noise (Gumbel) perturbs the root and the action is sampled from visits^(1/T); without
    it the search is deterministic and picks the most visited (pUCT) or best-scoring (Gumbel) action.
    """
    with torch.no_grad():
        state, logits, value = root_fn(obs)
        B, A = logits.shape
        dev = logits.device
        if invalid is None:
            invalid = torch.zeros(B, A, dtype=torch.bool, device=dev)
        elif invalid.shape != (B, A):
            raise ValueError(f"invalid-action mask has shape {tuple(invalid.shape)}, expected {(B, A)}")
        if bool(invalid.all(-1).any()):
            raise ValueError("a root has every action marked invalid; at least one action must be valid")
        tree = _Tree.new(cfg, state, logits, value, invalid, explore)
        for sim in range(cfg.num_simulations):
            parent, action, path = tree.select(sim)
            k = sim + 1
            child_state, reward, child_logits, child_value = recurrent_fn(tree.states_of(parent), action)
            tree.expand(k, parent, action, child_state, reward, child_logits)
            tree.backup(path, child_value.to(tree.value.dtype))
        return tree.output(explore, temperature)


class _Tree:
    """The arrays of B search trees with N node slots; see the module docstring."""

    def __init__(self, cfg: MCTSConfig, B: int, A: int, state: Tensor, dtype: torch.dtype):
        self.cfg, self.B, self.A = cfg, B, A
        self.N = N = cfg.num_simulations + 2
        self.dummy = N - 1
        dev = state.device
        self.visits = torch.zeros(B, N, dtype=dtype, device=dev)  # N(s)
        self.value = torch.zeros(B, N, dtype=dtype, device=dev)  # W(s): sum of backed-up returns
        self.reward = torch.zeros(B, N, dtype=dtype, device=dev)  # r on arriving in s
        self.prior = torch.zeros(B, N, A, dtype=dtype, device=dev)  # P(s, ·)
        self.children = torch.full((B, N, A), self.dummy, dtype=torch.long, device=dev)
        self.states = state.new_zeros((B, N, *state.shape[1:]))
        self.offset = torch.arange(B, device=dev) * N  # flat index of each tree's root
        self.qmin = torch.full((B,), math.inf, dtype=dtype, device=dev)
        self.qmax = torch.full((B,), -math.inf, dtype=dtype, device=dev)
        # γ^(d-1) for every depth d a path can reach
        self.power = cfg.discount ** (torch.arange(N, device=dev, dtype=dtype) - 1)
        self.check_done = dev.type == "cpu"  # on an accelerator, never sync inside the loop

    @classmethod
    def new(cls, cfg: MCTSConfig, state: Tensor, logits: Tensor, value: Tensor, invalid: Tensor, explore: bool):
        B, A = logits.shape
        dtype = value.dtype if value.dtype == torch.float64 else torch.float32
        tree = cls(cfg, B, A, state, dtype)
        tree.invalid = invalid
        tree.root_logits = logits.to(dtype).masked_fill(invalid, -math.inf)
        prior = torch.softmax(tree.root_logits, -1)
        tree.gumbel = None
        if cfg.root_selection == "gumbel":
            g = torch.zeros_like(prior)
            if explore and cfg.gumbel_scale > 0:
                g = -torch.log(-torch.log(torch.rand_like(prior).clamp(1e-20, 1.0 - 1e-7))) * cfg.gumbel_scale
            tree.gumbel = g
            valid = (~invalid).sum(-1)
            m = valid.clamp(max=cfg.max_considered_actions)
            table = [considered_visits(i, cfg.num_simulations) for i in range(A + 1)]
            tree.schedule = torch.tensor(table, device=state.device)[m]  # [B, S]
        elif explore and cfg.exploration_fraction > 0:
            alpha = torch.full_like(prior, cfg.dirichlet_alpha)
            noise = torch.distributions.Gamma(alpha, torch.ones_like(alpha)).sample().masked_fill(invalid, 0.0)
            noise = noise / noise.sum(-1, keepdim=True).clamp(min=1e-12)
            prior = (1 - cfg.exploration_fraction) * prior + cfg.exploration_fraction * noise
        tree.prior[:, 0] = prior
        tree.states[:, 0] = state
        tree.visits[:, 0] = 1
        tree.value[:, 0] = value.to(dtype)
        tree.root_value = value.to(dtype)
        return tree

    # ------------------------------------------------------------------ statistics of a node's children

    def _children_stats(self, node: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """For nodes `[B]`: child slots, visits N(s, a), Q(s, a) and parent visits N(s): `[B, A]` ×3, `[B]`."""
        flat = self.offset + node
        child = self.children.view(-1, self.A).index_select(0, flat)  # [B, A]
        child_flat = child + self.offset[:, None]
        n = self.visits.take(child_flat)
        q = self.reward.take(child_flat) + self.cfg.discount * self.value.take(child_flat) / n.clamp(min=1)
        return child, n, q, self.visits.take(flat)

    def _puct(self, node: Tensor, n: Tensor, q: Tensor, parent_n: Tensor) -> Tensor:
        """pUCT scores `[B, A]` with Q min-max normalised by the bounds seen so far in each tree."""
        cfg = self.cfg
        spread = self.qmax - self.qmin
        normalised = torch.where((spread > 0)[:, None], (q - self.qmin[:, None]) / spread[:, None], q)
        value_score = torch.where(n > 0, normalised, 0.0)
        c = (torch.log((parent_n + cfg.pb_c_base + 1) / cfg.pb_c_base) + cfg.pb_c_init) * parent_n.sqrt()
        prior = self.prior.view(-1, self.A).index_select(0, self.offset + node)
        return value_score + prior * (c[:, None] / (1 + n))

    def _completed_q(self, n: Tensor, q: Tensor) -> Tensor:
        """Gumbel MuZero's σ(completed Q) at the root `[B, A]`: unvisited actions take the mixed value
        v_mix = (v̂ + ΣN · Σ_visited π q / Σ_visited π) / (ΣN + 1), then min-max over actions, then scaled."""
        cfg = self.cfg
        pi = torch.softmax(self.root_logits, -1)
        visited = n > 0
        total = n.sum(-1)
        pi_visited = torch.where(visited, pi, 0.0)
        weighted = (pi_visited * q).sum(-1) / pi_visited.sum(-1).clamp(min=1e-12)
        v_mix = (self.root_value + total * weighted) / (total + 1)
        completed = torch.where(visited, q, v_mix[:, None]).masked_fill(self.invalid, math.inf)
        low = completed.amin(-1, keepdim=True)
        completed = completed.masked_fill(self.invalid, -math.inf)
        high = completed.amax(-1, keepdim=True)
        scaled = (completed - low) / (high - low).clamp(min=1e-8)
        return (cfg.maxvisit_init + n.amax(-1, keepdim=True)) * cfg.value_scale * scaled.masked_fill(self.invalid, 0)

    def _gumbel_score(self, n: Tensor, q: Tensor, considered: Tensor) -> Tensor:
        """g + logits + σ(q̂) for actions visited exactly `considered` `[B, 1]` times, −∞ elsewhere."""
        logits = self.root_logits - self.root_logits.amax(-1, keepdim=True)
        score = (self.gumbel + logits + self._completed_q(n, q)).clamp(min=-1e9)
        return score.masked_fill((n != considered) | self.invalid, -math.inf)

    # ------------------------------------------------------------------ one simulation

    def select(self, sim: int) -> tuple[Tensor, Tensor, Tensor]:
        """Descend from the root to an unexpanded edge: its parent `[B]`, action `[B]` and the path `[B, D]`
        of node slots from the root to the new node `sim + 1` (padded with the dummy slot)."""
        B, dev = self.B, self.visits.device
        node = torch.zeros(B, dtype=torch.long, device=dev)
        child, n, q, parent_n = self._children_stats(node)
        if self.gumbel is not None:
            score = self._gumbel_score(n, q, self.schedule[:, sim : sim + 1].to(n.dtype))
        else:
            score = self._puct(node, n, q, parent_n).masked_fill(self.invalid, -math.inf)
        action = score.argmax(-1)
        nxt = child.gather(1, action[:, None]).squeeze(1)
        new = torch.full_like(node, sim + 1)
        expanded = nxt != self.dummy
        path = [node, torch.where(expanded, nxt, new)]
        parent, leaf_action = node, action
        active = expanded
        for _ in range(sim):  # the tree is at most `sim` deep
            if self.check_done and not bool(active.any()):
                break
            node = torch.where(active, nxt, node)
            child, n, q, parent_n = self._children_stats(node)
            action = self._puct(node, n, q, parent_n).argmax(-1)
            nxt = child.gather(1, action[:, None]).squeeze(1)
            expanded = nxt != self.dummy
            path.append(torch.where(active, torch.where(expanded, nxt, new), self.dummy))
            parent = torch.where(active, node, parent)
            leaf_action = torch.where(active, action, leaf_action)
            active = active & expanded
        return parent, leaf_action, torch.stack(path, 1)

    def states_of(self, node: Tensor) -> Tensor:
        """Hidden states of nodes `[B]` → `[B, ...]`."""
        return self.states.view(self.B * self.N, *self.states.shape[2:]).index_select(0, self.offset + node)

    def expand(self, k: int, parent: Tensor, action: Tensor, state: Tensor, reward: Tensor, logits: Tensor) -> None:
        """Write node `k` (the child reached by `action` from `parent`) into every tree."""
        self.states[:, k] = state
        self.reward[:, k] = reward.to(self.reward.dtype)
        self.prior[:, k] = torch.softmax(logits.to(self.prior.dtype), -1)
        edge = (self.offset + parent) * self.A + action
        self.children.view(-1).index_fill_(0, edge, k)

    def backup(self, path: Tensor, leaf_value: Tensor) -> None:
        """Add the discounted return G_d to every node d on `path` `[B, D]`, all depths in one pass:
        G_d = γ^{-d} (Σ_{j>d} γ^{j-1} r_j + γ^L v) with L the leaf's depth."""
        gamma = self.cfg.discount
        D = path.shape[1]
        on_path = path != self.dummy
        depth = torch.arange(D, device=path.device)
        power = self.power[:D]
        r = self.reward.gather(1, path)  # r_d: reward on arriving at the node at depth d (0 at the root)
        weighted = r * power
        after = weighted.sum(1, keepdim=True) - weighted.cumsum(1)  # Σ_{j>d}
        leaf_depth = on_path.sum(1, keepdim=True) - 1
        tail = leaf_value[:, None] * power.take(leaf_depth) * gamma
        g = (after + tail) / (power * gamma)
        flat = (self.offset[:, None] + path).view(-1)
        self.visits.view(-1).index_add_(0, flat, on_path.to(self.visits.dtype).view(-1))
        self.value.view(-1).index_add_(0, flat, torch.where(on_path, g, 0.0).view(-1))
        # the tree's Q bounds over the edges just updated: Q = r + γ W / N
        n = self.visits.gather(1, path)
        q = r + gamma * self.value.gather(1, path) / n.clamp(min=1)
        edge = on_path & (depth > 0)
        self.qmin = torch.minimum(self.qmin, q.masked_fill(~edge, math.inf).amin(1))
        self.qmax = torch.maximum(self.qmax, q.masked_fill(~edge, -math.inf).amax(1))

    # ------------------------------------------------------------------ result

    def output(self, explore: bool, temperature: float) -> SearchOutput:
        root = torch.zeros(self.B, dtype=torch.long, device=self.visits.device)
        _, n, q, _ = self._children_stats(root)
        q = torch.where(n > 0, q, 0.0)
        if self.gumbel is not None:
            policy = torch.softmax(self.root_logits + self._completed_q(n, q), -1)
            action = self._gumbel_score(n, q, n.amax(-1, keepdim=True)).argmax(-1)
        else:
            policy = n / n.sum(-1, keepdim=True)
            if explore and temperature > 0:
                # visits^(1/T), in log space so that small temperatures do not overflow
                logits = torch.log(n.clamp(min=1e-30)) / temperature
                action = torch.multinomial(torch.softmax(logits.masked_fill(n == 0, -math.inf), -1), 1).squeeze(1)
            else:
                action = n.argmax(-1)
        return SearchOutput(action, n, policy, self.value[:, 0] / self.visits[:, 0], q)


@PLANNERS.register("mcts")
class MCTS:
    """The `search` function bound to its config, as a registered planner."""

    Config = MCTSConfig

    def __init__(self, cfg: MCTSConfig):
        self.cfg = cfg

    def __call__(
        self,
        obs: Any,
        root_fn: RootFn,
        recurrent_fn: RecurrentFn,
        invalid: Tensor | None = None,
        explore: bool = True,
        temperature: float = 1.0,
    ) -> SearchOutput:
        return search(obs, root_fn, recurrent_fn, self.cfg, invalid, explore, temperature)
