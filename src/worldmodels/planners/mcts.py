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

Every step is a tensor op over the batch; the only Python loops run over simulations and tree depth. That
loop costs ~100 small ops per simulation, which at B = 1 is nearly all of the time. With `compile: true`,
small batches instead run the whole search after the root (setting up the trees, every simulation, the
result) as one `torch.compile`d call: the simulations are a `while_loop` over a fixed-shape simulation
(selection, model call, expansion and backup in one graph), which selects by scoring the edges of every
node at once and finding the path from each node's lineage (`select_everywhere`), and backs up every node
under a path mask (`backup_everywhere`). Its work grows with the tree's size rather than its depth, so
large batches keep the loop.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor
from torch._higher_order_ops import while_loop

from worldmodels.nn.dists import sample_index
from worldmodels.registry import SEARCHES
from worldmodels.schema import non_negative, param, positive, unit

RootFn = Callable[[Any], tuple[Tensor, Tensor, Tensor]]
RecurrentFn = Callable[[Tensor, Tensor], tuple[Tensor, Tensor, Tensor, Tensor]]


@dataclass
class MCTSConfig:
    num_simulations: int = positive(50)
    """Simulations per search; each adds one node to every tree."""
    discount: float = param(0.997, lambda v: 0 < v <= 1, "a number in (0, 1]")
    """γ for backing up rewards and values (returns are divided by γ^depth, so not 0)."""
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
    compile: bool = False
    """For batches of at most `compile_max_batch` trees, run the search after the root (the trees' set-up, every
    simulation, the result) as one `torch.compile`d call: at small batches the Python and dispatch around
    ~100 small ops per simulation are most of the time. The first search of each batch size compiles (tens
    of seconds on a CPU). The model's `recurrent` must be traceable by `torch.compile`."""
    compile_max_batch: int = positive(256)
    """Larger batches keep the eager loop, whose work grows with the tree's depth rather than its size
    (see `select_everywhere`); on a CPU it overtakes the compiled search between 256 and 1024 trees."""


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
    prior: Tensor
    """The network's policy at the root `[B, A]`, before any exploration noise."""


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


@functools.cache
def _bits(N: int, device: torch.device) -> Tensor:
    """Each of N slots' own bit in a lineage bit set `[N, W]`: slot i is bit i % 62 of word i // 62."""
    slot = torch.arange(N, device=device)
    bits = torch.zeros(N, -(-N // _BITS), dtype=torch.int64, device=device)
    bits[slot, slot // _BITS] = 2 ** (slot % _BITS)
    return bits


@functools.cache
def _schedules(A: int, num_simulations: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """`considered_visits(m, num_simulations)` for every m in 0..A, `[A + 1, S]`."""
    table = [considered_visits(m, num_simulations) for m in range(A + 1)]
    return torch.tensor(table, device=device, dtype=dtype)


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
        tables = _tables(cfg, A, dev, _dtype(value))
        if cfg.compile and len(logits) <= cfg.compile_max_batch:
            return _compiled_search()(cfg, state, logits, value, invalid, explore, temperature, recurrent_fn, tables)
        tree = _Tree.new(cfg, state, logits, value, invalid, explore, tables)
        for sim in range(cfg.num_simulations):
            parent, action, path = tree.select(sim)
            child_state, reward, child_logits, child_value = recurrent_fn(tree.states_of(parent), action)
            tree.expand(sim + 1, parent, action, child_state, reward, child_logits)
            tree.backup(path, child_value.to(tree.stats.dtype))
        return tree.output(explore, temperature)


def _dtype(value: Tensor) -> torch.dtype:
    """The trees' statistics: float64 for a float64 model, else float32."""
    return value.dtype if value.dtype == torch.float64 else torch.float32


def _tables(cfg: MCTSConfig, A: int, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor | None]:
    """The constant tables a search reads: each slot's own lineage bit, and (Gumbel) the halving schedules."""
    schedules = _schedules(A, cfg.num_simulations, device, dtype) if cfg.root_selection == "gumbel" else None
    return _bits(cfg.num_simulations + 2, device), schedules


VISITS, VALUE, REWARD = range(3)  # columns of the per-node statistics
_BITS = 62  # slots per int64 word of a lineage bit set (sums of distinct powers of two below 2^62 stay exact)


def _puct(n: Tensor, q: Tensor, bonus: Tensor, lo: Tensor, scale: Tensor) -> Tensor:
    """pUCT scores of edges with child visits N(s, a), Q(s, a) and bonus P(s, a) c(s) √N(s) (all `[B, ..., A]`)
    under the normalisation Q̄ = (Q − lo) · scale: Q̄(s, a) (0 while unvisited) + P(s, a) c(s) √N(s) / (1 + N(s, a))."""
    return (q - lo) * scale * (n > 0) + bonus / (1 + n)


class _Tree:
    """The arrays of B search trees with N node slots; see the module docstring.

    Per node, `stats` `[B, N, 3]` holds N(s), W(s) (the sum of returns backed up through s) and r (the reward
    on arriving in s); its N and Q = r + γ W / N (the value of the edge into s) are mirrored into `edges`, so
    that one row reads every child of a node; `explore` `[B, N]` caches c(s) · √N(s) of the pUCT bonus. The fixed-shape
    simulation also keeps, per node `[B, N]`, its `parent`, `discount` γ^(depth − 1) and `prefix` return
    Σ_{j≤depth} γ^{j-1} r_j, and `count`, the slot it fills next (a 0-dim tensor, so that one compiled graph
    serves every simulation).
    """

    def __init__(self, cfg: MCTSConfig, B: int, A: int, state: Tensor, dtype: torch.dtype, bits: Tensor):
        self.cfg, self.B, self.A = cfg, B, A
        self.N = N = cfg.num_simulations + 2
        self.dummy = N - 1
        dev = state.device
        self.stats = torch.zeros(B, N, 3, dtype=dtype, device=dev)
        self.explore = torch.zeros(B, N, dtype=dtype, device=dev)
        self.prior = torch.zeros(B, N, A, dtype=dtype, device=dev)  # P(s, ·)
        self.states = state.new_zeros((B, N, *state.shape[1:]))
        # nodes are addressed by their flat index b·N + slot in the `[B·N, ...]` views of the arrays
        self.offset = torch.arange(B, device=dev) * N  # each tree's root
        self.dummy_flat = self.offset + self.dummy
        self.children = self.dummy_flat[:, None, None].expand(B, N, A).clone()  # flat index of each child
        # N(s, a) and Q(s, a) of every edge, mirrored from the children's `stats` so that scoring a node's edges
        # reads one row instead of gathering A children; `edge_of` is each slot's incoming edge (flat), and the
        # dummy's first edge is the sink of the slots that have none (the root, unexpanded slots, the dummy)
        self.edges = torch.zeros(B, N, A, 2, dtype=dtype, device=dev)
        self.edge_of = (self.dummy_flat * A)[:, None].expand(B, N).clone()
        self.nodes = self.offset[:, None] + torch.arange(N, device=dev)  # flat index of each slot
        self.parent = self.dummy_flat[:, None].expand(B, N).clone()
        self.parent[:, 0] = self.offset
        self.discount = torch.full((B, N), 1 / cfg.discount, dtype=dtype, device=dev)
        self.prefix = torch.zeros(B, N, dtype=dtype, device=dev)
        self.count = torch.tensor(1, device=dev)
        # the lineage of each slot, the slots on the path from the root to it (both included), as a bit set:
        # slot i is bit i % 62 of word i // 62 of `lineage` [B, N, W]; `bits` [N, W] is each slot's own bit.
        # A slot not yet expanded has only the dummy's bit, and the dummy is never on a path.
        self.bits = bits
        self.lineage = self.bits[self.dummy].expand(B, N, self.bits.shape[1]).clone()
        self.lineage[:, 0] = self.bits[0]
        self.qmin = torch.full((B,), math.inf, dtype=dtype, device=dev)
        self.qmax = torch.full((B,), -math.inf, dtype=dtype, device=dev)
        # Q̄ = (Q − lo) · scale: min-max normalised once the tree has seen two different Q values
        self.lo = torch.zeros(B, 1, dtype=dtype, device=dev)
        self.scale = torch.ones(B, 1, dtype=dtype, device=dev)
        # γ^(d-1) for every depth d a path can reach, and 1 / γ^d
        self.power = cfg.discount ** (torch.arange(N, device=dev, dtype=dtype) - 1)
        self.inverse_power = 1 / (self.power * cfg.discount)
        self.check_done = dev.type == "cpu"  # on an accelerator, never sync inside the loop
        self._flat_views()

    def _flat_views(self) -> None:
        """The `[B·N, ...]` views of the arrays that are addressed by flat node index."""
        B, N, A = self.B, self.N, self.A
        self._stats = self.stats.view(B * N, 3)
        self._prior = self.prior.view(B * N, A)
        self._children = self.children.view(B * N, A)
        self._edges = self.edges.view(B * N, A, 2)

    # what a fixed-shape simulation writes (`while_loop` carries them from one simulation to the next); the
    # rest of a tree it only reads
    CARRIED = ("stats", "explore", "prior", "states", "children", "edges", "edge_of", "parent", "discount",
               "prefix", "count", "lineage", "qmin", "qmax", "lo", "scale")  # fmt: skip

    def carried(self) -> tuple[Tensor, ...]:
        return tuple(getattr(self, name) for name in self.CARRIED)

    def replaced(self, carried: tuple[Tensor, ...]) -> _Tree:
        """This tree with the arrays of `carried` (in `CARRIED`'s order) in place of its own."""
        tree = _Tree.__new__(_Tree)
        tree.__dict__.update(self.__dict__)
        for name, array in zip(self.CARRIED, carried):
            setattr(tree, name, array)
        tree._flat_views()
        return tree

    @classmethod
    def new(
        cls,
        cfg: MCTSConfig,
        state: Tensor,
        logits: Tensor,
        value: Tensor,
        invalid: Tensor,
        explore: bool,
        tables: tuple[Tensor, Tensor | None],
    ):
        B, A = logits.shape
        bits, schedules = tables
        dtype = _dtype(value)
        tree = cls(cfg, B, A, state, dtype, bits)
        tree.invalid = invalid
        tree.root_logits = logits.to(dtype).masked_fill(invalid, -math.inf)
        prior = torch.softmax(tree.root_logits, -1)
        tree.gumbel = tree.schedule = None
        if cfg.root_selection == "gumbel":
            g = torch.zeros_like(prior)
            if explore and cfg.gumbel_scale > 0:
                g = -torch.log(-torch.log(torch.rand_like(prior).clamp(1e-20, 1.0 - 1e-7))) * cfg.gumbel_scale
            tree.gumbel = g
            valid = (~invalid).sum(-1)
            m = valid.clamp(max=cfg.max_considered_actions)
            tree.schedule = schedules[m]  # [B, S]
        elif explore and cfg.exploration_fraction > 0:
            noise = torch._standard_gamma(torch.full_like(prior, cfg.dirichlet_alpha)).masked_fill(invalid, 0.0)
            noise = noise / noise.sum(-1, keepdim=True).clamp(min=1e-12)
            prior = (1 - cfg.exploration_fraction) * prior + cfg.exploration_fraction * noise
        tree.prior[:, 0] = prior
        tree.states[:, 0] = state
        tree.root_value = value.to(dtype)
        tree.stats[:, 0, VISITS] = 1
        tree.stats[:, 0, VALUE] = tree.root_value
        tree.explore[:, 0] = tree._bonus(tree.stats[:, 0, VISITS])
        return tree

    def _bonus(self, n: Tensor) -> Tensor:
        """c(s) · √N(s) with c(s) = c_init + log((N(s) + c_base + 1) / c_base)."""
        cfg = self.cfg
        return (torch.log((n + (cfg.pb_c_base + 1)) / cfg.pb_c_base) + cfg.pb_c_init) * n.sqrt()

    # ------------------------------------------------------------------ statistics of a node's children

    def _children_of(self, node: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """For nodes `[B]` (flat): their children `[B, A]` (flat, int64), N(s, a) and Q(s, a) `[B, A]`."""
        edges = self._edges.index_select(0, node)
        return self._children.index_select(0, node), edges[..., 0], edges[..., 1]

    def _puct_at(self, flat: Tensor, n: Tensor, q: Tensor) -> Tensor:
        """pUCT scores `[B, A]` at nodes `flat` `[B]`."""
        bonus = self.explore.view(-1).take(flat)[:, None] * self._prior.index_select(0, flat)
        return _puct(n, q, bonus, self.lo, self.scale)

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
        of nodes from the root to the new node in slot `sim + 1` (padded with the dummy), all flat indices."""
        node = self.offset
        new = self.offset + (sim + 1)
        child, n, q = self._children_of(node)
        if self.gumbel is not None:
            score = self._gumbel_score(n, q, self.schedule[:, sim : sim + 1])
        else:
            score = self._puct_at(node, n, q).masked_fill(self.invalid, -math.inf)
        action = score.argmax(-1, keepdim=True)
        nxt = child.gather(1, action).squeeze(1)
        active = nxt != self.dummy_flat
        path, actions = [node, torch.where(active, nxt, new)], [action]
        for _ in range(sim):  # the tree is at most `sim` deep
            if self.check_done and not bool(active.any()):
                break
            # finished rows descend into the dummy slot, whose children are all the dummy again
            node = nxt
            child, n, q = self._children_of(node)
            action = self._puct_at(node, n, q).argmax(-1, keepdim=True)
            nxt = child.gather(1, action).squeeze(1)
            expanded = nxt != self.dummy_flat
            path.append(torch.where(active & ~expanded, new, nxt))
            actions.append(action)
            active = active & expanded
        path = torch.stack(path, 1)  # [B, D]
        leaf = (path != self.dummy_flat[:, None]).sum(1, keepdim=True) - 1  # depth of the new node
        parent = path.gather(1, leaf - 1).squeeze(1)
        return parent, torch.cat(actions, 1).gather(1, leaf - 1).squeeze(1), path

    def select_everywhere(self) -> tuple[Tensor, Tensor, Tensor]:
        """`select` with a fixed number of ops whatever the depth, for a compiled graph that serves every
        simulation: parent `[B]` and action `[B]` as there, and the path `[B, N]` (bool) of the nodes from the
        root to the parent. It scores the edges of every node at once, which gives each node its greedy child;
        a node is on the path iff every node of its lineage is the root or its parent's greedy child. The work
        grows with the tree (N · (A + N) per tree and simulation, against `select`'s depth · A), so this pays
        only where the count of ops dominates: small batches."""
        n, q = self.edges[..., 0], self.edges[..., 1]
        score = _puct(n, q, self.explore[..., None] * self.prior, self.lo[..., None], self.scale[..., None])
        if self.gumbel is not None:
            root = self._gumbel_score(n[:, 0], q[:, 0], self.schedule.index_select(1, (self.count - 1).view(1)))
        else:
            root = score[:, 0].masked_fill(self.invalid, -math.inf)
        best = torch.cat([root[:, None], score[:, 1:]], 1).argmax(-1)  # [B, N]
        greedy = self.children.gather(2, best[..., None]).squeeze(2)  # each node's greedy child (flat)
        slot = torch.arange(self.N, device=best.device)
        chosen = (greedy.view(-1).take(self.parent) == self.nodes) & (slot != self.dummy) | (slot == 0)
        rejected = (~chosen[..., None] * self.bits).sum(1)  # [B, W]: the bits of the slots not chosen
        path = ((self.lineage & rejected[:, None]) == 0).all(-1)
        parent = (path * self.nodes).amax(1)  # the path's deepest node: slots grow with depth along a path
        return parent, best.view(-1).take(parent), path

    def states_of(self, node: Tensor) -> Tensor:
        """Hidden states of nodes `[B]` (flat) → `[B, ...]`."""
        return self.states.view(self.B * self.N, *self.states.shape[2:]).index_select(0, node)

    def expand(
        self, k: int | Tensor, parent: Tensor, action: Tensor, state: Tensor, reward: Tensor, logits: Tensor
    ) -> None:
        """Write slot `k` of every tree: the child reached by `action` from `parent` (flat) `[B]`. `k` is an int
        in the eager loop and the 0-dim `count` in the compiled graph, where the writes become index_put_s that
        the compiler performs in place (not copies of whole arrays)."""
        at = slice(k, k + 1) if isinstance(k, int) else k.view(1)
        self.states[:, at] = state.unsqueeze(1)
        self.stats[:, at, REWARD] = reward.to(self.stats.dtype)[:, None]
        self.prior[:, at] = torch.softmax(logits.to(self.prior.dtype), -1)[:, None]
        edge = parent * self.A + action
        self.children.view(-1)[edge] = self.offset + k
        self.edge_of[:, at] = edge[:, None]

    def backup(self, path: Tensor, leaf_value: Tensor) -> None:
        """Add the discounted return G_d to every node d on `path` `[B, D]`, all depths in one pass:
        G_d = γ^{-d} (Σ_{j>d} γ^{j-1} r_j + γ^L v) with L the leaf's depth."""
        gamma = self.cfg.discount
        B, D = path.shape
        on_path = (path != self.dummy_flat[:, None]).to(self.stats.dtype)
        flat = path.view(-1)
        r = self._stats.index_select(0, flat).view(B, D, 3)[..., REWARD]  # 0 at the root
        weighted = r * self.power[:D]
        after = weighted.sum(1, keepdim=True) - weighted.cumsum(1)  # Σ_{j>d} γ^{j-1} r_j
        tail = leaf_value[:, None] * self.power.take(on_path.sum(1, keepdim=True).long() - 1) * gamma
        g = (after + tail) * self.inverse_power[:D]
        update = torch.stack([on_path, g * on_path, torch.zeros_like(g)], -1)
        self._stats.index_add_(0, flat, update.view(-1, 3))
        # Q = r + γ W / N into the edges, and the pUCT bonus, of the nodes just updated (the dummy stays zero)
        stats = self._stats.index_select(0, flat).view(B, D, 3)
        n = stats[..., VISITS]
        q = r + gamma * stats[..., VALUE] / n.clamp(min=1)
        self.explore.view(-1).put_(flat, self._bonus(n).view(-1))
        self._mirror(self.edge_of.view(-1).take(flat), n, q)
        self._widen_q_bounds(q[:, 1:], on_path[:, 1:] > 0)  # over the edges on the path (not the root)

    def _mirror(self, edge: Tensor, n: Tensor, q: Tensor) -> None:
        """Copy nodes' N and Q (any shape) into their incoming edges `edge` (flat, same shape)."""
        self.edges.view(-1, 2).index_put_((edge.reshape(-1),), torch.stack([n, q], -1).view(-1, 2))

    def _widen_q_bounds(self, q: Tensor, edge: Tensor) -> None:
        """Widen the tree's Q bounds by the values `q` `[B, M]` where `edge`, and refresh the min-max
        normalisation Q̄ = (Q − lo) · scale. In place, so that the compiled graph has no outputs to hand back."""
        self.qmin.copy_(torch.minimum(self.qmin, q.masked_fill(~edge, math.inf).amin(1)))
        self.qmax.copy_(torch.maximum(self.qmax, q.masked_fill(~edge, -math.inf).amax(1)))
        spread = (self.qmax - self.qmin)[:, None]
        self.lo.copy_(torch.where(spread > 0, self.qmin[:, None], 0.0))
        self.scale.copy_(torch.where(spread > 0, 1 / spread, 1.0))

    def place(self, parent: Tensor) -> None:
        """Record where the node just expanded into slot `count` sits, for `select_everywhere` and
        `backup_everywhere`: its parent, its lineage, γ^(depth − 1), and its prefix Σ_{j≤depth} γ^{j-1} r_j."""
        k = self.count.view(1)
        discount = self.discount.view(-1).take(parent) * self.cfg.discount
        self.parent[:, k] = parent[:, None]
        self.discount[:, k] = discount[:, None]
        self.prefix[:, k] = self.prefix.view(-1).take(parent)[:, None] + discount[:, None] * self.stats[:, k, REWARD]
        own = self.bits.index_select(0, self.count.view(1))
        self.lineage[:, k] = (self.lineage.view(self.B * self.N, -1).index_select(0, parent) | own)[:, None]

    def backup_everywhere(self, path: Tensor, leaf_value: Tensor) -> None:
        """`backup` with a fixed number of ops, for the nodes of `path` `[B, N]` (bool) and the new node in slot
        `count`: G_d = γ^{-d} (Σ_{j>d} γ^{j-1} r_j + γ^L v), the sum being the difference of two nodes'
        `prefix` sums, since every node of the path is an ancestor of the new one."""
        gamma = self.cfg.discount
        new = self.count.view(1)
        path = path | (self.nodes == self.offset[:, None] + self.count)
        leaf = self.prefix.index_select(1, new) + leaf_value[:, None] * self.discount.index_select(1, new) * gamma
        g = (leaf - self.prefix) / (self.discount * gamma)
        self.stats[..., VISITS] += path
        self.stats[..., VALUE] += torch.where(path, g, 0.0)
        n = self.stats[..., VISITS]
        q = self.stats[..., REWARD] + gamma * self.stats[..., VALUE] / n.clamp(min=1)
        self.explore.copy_(self._bonus(n))
        self._mirror(self.edge_of, n, q)
        self._widen_q_bounds(q, path & (self.nodes != self.offset[:, None]))

    # ------------------------------------------------------------------ result

    def output(self, explore: bool, temperature: float) -> SearchOutput:
        _, n, q = self._children_of(self.offset)
        q = torch.where(n > 0, q, 0.0)
        if self.gumbel is not None:
            policy = torch.softmax(self.root_logits + self._completed_q(n, q), -1)
            action = self._gumbel_score(n, q, n.amax(-1, keepdim=True)).argmax(-1)
        else:
            policy = n / n.sum(-1, keepdim=True)
            if explore and temperature > 0:
                # visits^(1/T), in log space so that small temperatures do not overflow
                logits = torch.log(n.clamp(min=1e-30)) / temperature
                action = sample_index(torch.softmax(logits.masked_fill(n == 0, -math.inf), -1))
            else:
                action = n.argmax(-1)
        root_value = self.stats[:, 0, VALUE] / self.stats[:, 0, VISITS]
        return SearchOutput(action, n, policy, root_value, q, torch.softmax(self.root_logits, -1))


def _simulate_fixed(tree: _Tree, recurrent_fn: RecurrentFn) -> None:
    """One simulation as the same graph for every simulation, so that one loop body serves them all."""
    parent, action, path = tree.select_everywhere()
    child_state, reward, child_logits, child_value = recurrent_fn(tree.states_of(parent), action)
    tree.expand(tree.count, parent, action, child_state, reward, child_logits)
    tree.place(parent)
    tree.backup_everywhere(path, child_value.to(tree.stats.dtype))
    tree.count.add_(1)


def _search_fixed(
    cfg: MCTSConfig,
    state: Tensor,
    logits: Tensor,
    value: Tensor,
    invalid: Tensor,
    explore: bool,
    temperature: float,
    recurrent_fn: RecurrentFn,
    tables: tuple[Tensor, Tensor | None],
) -> SearchOutput:
    """The search after the root with the fixed-shape simulation, its simulations a `while_loop`: compiled,
    the whole search is one call, with no Python between simulations."""
    tree = _Tree.new(cfg, state, logits, value, invalid, explore, tables)

    def more(done: Tensor, *carried: Tensor) -> Tensor:
        return done < cfg.num_simulations

    def simulate(done: Tensor, *carried: Tensor) -> tuple[Tensor, ...]:
        # a loop body may not write into what it is given: it writes into copies and hands them on
        step = tree.replaced(tuple(array.clone() for array in carried))
        _simulate_fixed(step, recurrent_fn)
        return done + 1, *step.carried()

    start = torch.zeros((), dtype=torch.int64, device=logits.device)
    done, *carried = while_loop(more, simulate, (start, *tree.carried()))
    return tree.replaced(tuple(carried)).output(explore, temperature)


@functools.cache
def _compiled_search() -> Callable[..., SearchOutput]:
    """`_search_fixed` as one compiled call. The first batch size and temperature get their own graph, later
    ones share one in which they are symbolic (dynamo's automatic dynamic shapes), so a varying batch or
    temperature compiles twice, not once per value; past dynamo's limit of graphs per function, searches run
    eagerly."""
    options = {
        # the C++ wrapper and no size asserts: at small batches the Python around the kernels is most of the cost
        "cpp_wrapper": True,
        "size_asserts": False,
        "alignment_asserts": False,
        # a model's matmuls of one row become fused loops instead of calls into the BLAS (3 µs each on a CPU)
        "post_grad_fusion_options": {"decompose_mm_pass": {}},
    }
    return torch.compile(_search_fixed, options=options)


@SEARCHES.register("mcts")
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
