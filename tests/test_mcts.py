"""Batched MCTS on problems whose answer is known: bandits, a trap tree, a hand-computed chain."""

import pytest
import torch

from worldmodels.errors import ConfigError
from worldmodels.planners import mcts
from worldmodels.planners.mcts import MCTSConfig, considered_visits, search
from worldmodels.registry import SEARCHES


def _python_loop(cond, body, carried):
    """`while_loop` as plain Python: the compiled search's loop, run eagerly without the operator's own tracing
    (seconds per search); the real operator runs in the compiled tests."""
    while cond(*carried):
        carried = body(*carried)
    return carried


def _eager_fixed(monkeypatch) -> None:
    """`compile: true` searches run `_search_fixed` eagerly."""
    monkeypatch.setattr(mcts, "_compiled_search", lambda: mcts._search_fixed)
    monkeypatch.setattr(mcts, "while_loop", _python_loop)


def _cfg(**kw) -> MCTSConfig:
    return MCTSConfig(**{"num_simulations": 32, "exploration_fraction": 0.0, **kw})


def bandit(rewards: torch.Tensor):
    """One-step bandits, one per tree: arm a of tree b pays rewards[b, a], then nothing is ever paid again;
    uniform prior, zero values. State = [depth]."""
    B, A = rewards.shape

    def root(obs):
        return torch.zeros(B, 1), torch.zeros(B, A), torch.zeros(B)

    def recurrent(state, action):
        reward = torch.where(state[:, 0] == 0, rewards.gather(1, action[:, None]).squeeze(1), 0.0)
        return state + 1, reward, torch.zeros(B, A), torch.zeros(B)

    return root, recurrent


def trap(B: int):
    """Two-step tree: action 0 pays 1 now and nothing after; action 1 pays 0 now and 3 on the next step.
    State = [depth, first action]. The greedy first step is wrong; the optimal action is 1."""

    def root(obs):
        return torch.zeros(B, 2), torch.zeros(B, 2), torch.zeros(B)

    def recurrent(state, action):
        depth, first = state[:, 0], state[:, 1]
        reward = torch.where(depth == 0, (action == 0).float(), torch.where((depth == 1) & (first == 1), 3.0, 0.0))
        first = torch.where(depth == 0, action.float(), first)
        return torch.stack([depth + 1, first], 1), reward, torch.zeros(B, 2), torch.zeros(B)

    return root, recurrent


class RandomModel:
    """A fixed random MLP model in float64, so that rounding cannot flip a close decision between a batched
    and a single search (paths of different lengths sum in a different order)."""

    def __init__(self, A: int = 4, S: int = 8, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.A = A
        self.rep = torch.randn(3, S, generator=g, dtype=torch.float64)
        self.dyn = torch.randn(S + A, S, generator=g, dtype=torch.float64)
        self.heads = torch.randn(S, A + 2, generator=g, dtype=torch.float64)

    def _predict(self, s):
        out = s @ self.heads
        return out[:, :-2], out[:, -2], out[:, -1]

    def root(self, obs):
        s = torch.tanh(obs @ self.rep)
        logits, value, _ = self._predict(s)
        return s, logits, value

    def recurrent(self, state, action):
        onehot = torch.nn.functional.one_hot(action, self.A).to(state.dtype)
        s = torch.tanh(torch.cat([state, onehot], 1) @ self.dyn)
        logits, value, reward = self._predict(s)
        return s, reward, logits, value


@pytest.mark.parametrize("selection", ["puct", "gumbel"])
def test_bandit_picks_the_best_arm_and_visits_sum_to_the_budget(selection):
    rewards = torch.tensor([[0.1, 0.9, 0.3, 0.2], [0.5, 0.0, 0.2, 0.8], [1.0, 0.2, 0.3, 0.1]])
    root, recurrent = bandit(rewards)
    out = search(None, root, recurrent, _cfg(root_selection=selection), explore=False)
    assert out.action.tolist() == [1, 3, 0]
    assert out.visit_counts.sum(-1).tolist() == [32, 32, 32]
    assert torch.allclose(out.policy.sum(-1), torch.ones(3))
    assert out.policy.argmax(-1).tolist() == [1, 3, 0]


@pytest.mark.parametrize("selection", ["puct", "gumbel"])
def test_the_prior_is_the_network_s_policy_before_the_root_noise(selection):
    model = RandomModel(A=4)
    obs = torch.randn(6, 3, dtype=torch.float64)
    invalid = torch.zeros(6, 4, dtype=torch.bool)
    invalid[:, 2] = True
    cfg = _cfg(root_selection=selection, exploration_fraction=0.25, dirichlet_alpha=0.3)
    out = search(obs, model.root, model.recurrent, cfg, invalid=invalid, explore=True)
    logits = model.root(obs)[1].masked_fill(invalid, -float("inf"))
    assert torch.allclose(out.prior, torch.softmax(logits, -1))
    assert (out.prior[:, 2] == 0).all() and not torch.allclose(out.prior, out.policy)


@pytest.mark.parametrize("selection", ["puct", "gumbel"])
def test_trap_tree_finds_the_delayed_reward(selection):
    root, recurrent = trap(2)
    out = search(None, root, recurrent, _cfg(num_simulations=40, discount=0.9, root_selection=selection), explore=False)
    assert out.action.tolist() == [1, 1]
    assert (out.visit_counts.sum(-1) == 40).all()
    # the greedy arm's Q is exactly its reward: everything after it pays 0 and values are 0
    assert out.q_values[:, 0].tolist() == [1.0, 1.0]


def test_backup_on_a_chain_matches_the_hand_computed_return():
    """One action: simulation s extends a chain to depth s, backing up G = Σ_j γ^(j-1) r_j + γ^s v_s."""
    gamma, S = 0.9, 5

    def root(obs):
        return torch.zeros(1, 1, dtype=torch.float64), torch.zeros(1, 1), torch.tensor([0.5], dtype=torch.float64)

    def recurrent(state, action):
        d = state + 1  # reward d, value 10 d at depth d
        return d, d[:, 0], torch.zeros(1, 1), 10 * d[:, 0]

    out = search(None, root, recurrent, MCTSConfig(num_simulations=S, discount=gamma), explore=False)
    returns = [0.5]
    for s in range(1, S + 1):
        returns.append(sum(gamma ** (j - 1) * j for j in range(1, s + 1)) + gamma**s * 10 * s)
    assert out.visit_counts.tolist() == [[S]]
    assert out.root_value.item() == pytest.approx(sum(returns) / (S + 1), rel=1e-12)
    # Q(root, 0) = r_1 + γ · (mean of the S returns backed up through node 1, seen from node 1)
    child = [(g - 1) / gamma for g in returns[1:]]
    assert out.q_values.item() == pytest.approx(1 + gamma * sum(child) / S, rel=1e-12)


@pytest.mark.parametrize("selection", ["puct", "gumbel"])
def test_batched_trees_equal_trees_searched_alone(selection):
    model = RandomModel()
    obs = torch.randn(6, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    invalid = torch.zeros(6, 4, dtype=torch.bool)
    invalid[2, 1] = invalid[4, 3] = True
    cfg = _cfg(num_simulations=24, root_selection=selection)
    together = search(obs, model.root, model.recurrent, cfg, invalid, explore=False)
    for b in range(6):
        alone = search(obs[b : b + 1], model.root, model.recurrent, cfg, invalid[b : b + 1], explore=False)
        assert torch.equal(together.visit_counts[b], alone.visit_counts[0])
        torch.testing.assert_close(together.root_value[b], alone.root_value[0], rtol=1e-12, atol=1e-12)
        assert together.action[b] == alone.action[0]


@pytest.mark.parametrize("selection", ["puct", "gumbel"])
def test_masked_actions_are_never_chosen_or_visited(selection):
    torch.manual_seed(0)
    model = RandomModel(A=5)
    obs = torch.randn(64, 3, dtype=torch.float64)
    invalid = torch.rand(64, 5) < 0.6
    invalid[torch.arange(64), torch.randint(5, (64,))] = False  # at least one valid action per root
    cfg = MCTSConfig(num_simulations=16, root_selection=selection, exploration_fraction=0.5)
    for explore in (True, False):
        out = search(obs, model.root, model.recurrent, cfg, invalid, explore=explore, temperature=1.0)
        assert not invalid.gather(1, out.action[:, None]).any()
        assert (out.visit_counts[invalid] == 0).all()
        assert (out.policy[invalid] == 0).all()
        assert (out.visit_counts.sum(-1) == 16).all()


def test_temperature_samples_visited_actions_and_zero_temperature_is_greedy():
    torch.manual_seed(0)
    rewards = torch.tensor([[0.0, 1.0, 0.5, 0.2]]).repeat(200, 1)
    root, recurrent = bandit(rewards)
    cfg = _cfg(exploration_fraction=0.25)
    sampled = search(None, root, recurrent, cfg, explore=True, temperature=1.0)
    assert len(sampled.action.unique()) > 1 and (sampled.action == 1).float().mean() > 0.5
    assert (sampled.visit_counts.gather(1, sampled.action[:, None]) > 0).all()
    greedy = search(None, root, recurrent, cfg, explore=True, temperature=0.0)
    assert torch.equal(greedy.action, greedy.visit_counts.argmax(-1))


def test_sequential_halving_schedule():
    # four actions, 16 simulations: 2 phases of ~8 simulations each; 4 actions × 2 visits, then 2 × 4
    assert considered_visits(4, 16) == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert considered_visits(1, 3) == [0, 1, 2]
    assert len(considered_visits(16, 50)) == 50


def test_registered_planner_and_clear_errors():
    planner = SEARCHES.build("mcts", {"num_simulations": 8})
    root, recurrent = bandit(torch.tensor([[0.0, 1.0]]))
    assert planner(None, root, recurrent, explore=False).action.item() == 1
    with pytest.raises(ValueError, match="every action"):
        planner(None, root, recurrent, invalid=torch.ones(1, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="shape"):
        planner(None, root, recurrent, invalid=torch.ones(2, 2, dtype=torch.bool))
    with pytest.raises(ConfigError, match="discount"):
        SEARCHES.build("mcts", {"discount": 0.0})


def test_the_accelerator_path_without_early_exit_gives_the_same_search(monkeypatch):
    """On CUDA the depth loop never syncs to check for finished rows; the result must not change."""
    model = RandomModel()
    obs = torch.randn(6, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    cfg = _cfg(num_simulations=24)
    early = search(obs, model.root, model.recurrent, cfg, explore=False)
    init = mcts._Tree.__init__

    def no_early_exit(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.check_done = False

    monkeypatch.setattr(mcts._Tree, "__init__", no_early_exit)
    full = search(obs, model.root, model.recurrent, cfg, explore=False)
    assert torch.equal(early.visit_counts, full.visit_counts) and torch.equal(early.action, full.action)
    torch.testing.assert_close(early.root_value, full.root_value, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("selection", ["puct", "gumbel"])
def test_the_fixed_shape_simulation_gives_the_same_search_as_the_loop(monkeypatch, selection):
    """`compile: true` runs `select_everywhere` / `backup_everywhere` in a `while_loop`; here run eagerly
    (compiling takes tens of seconds), they must reproduce the depth loop's trees: same visits, values and
    actions, noise included."""
    _eager_fixed(monkeypatch)
    model = RandomModel(A=5, seed=3)
    obs = torch.randn(7, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    invalid = torch.rand(7, 5, generator=torch.Generator().manual_seed(5)) < 0.4
    invalid[:, 2] = False
    for explore, simulations in [(False, 1), (False, 30), (True, 30), (True, 70)]:  # 70: lineages of two words
        outs = []
        for compiled in (False, True):
            torch.manual_seed(6)
            cfg = _cfg(num_simulations=simulations, root_selection=selection, discount=0.95, compile=compiled)
            outs.append(search(obs, model.root, model.recurrent, cfg, invalid, explore=explore))
        loop, fixed = outs
        assert torch.equal(loop.visit_counts, fixed.visit_counts) and torch.equal(loop.action, fixed.action)
        for name in ("policy", "root_value", "q_values"):
            torch.testing.assert_close(getattr(fixed, name), getattr(loop, name), rtol=1e-12, atol=1e-12)
    # and each tree searched alone (B = 1, where the compiled graph is meant to run) as in the batch
    cfg = _cfg(num_simulations=30, root_selection=selection, discount=0.95, compile=True)
    together = search(obs, model.root, model.recurrent, cfg, invalid, explore=False)
    for b in range(7):
        alone = search(obs[b : b + 1], model.root, model.recurrent, cfg, invalid[b : b + 1], explore=False)
        assert torch.equal(alone.visit_counts[0], together.visit_counts[b])


@pytest.mark.parametrize("selection", ["puct", "gumbel"])
def test_the_compiled_search_compiles_once_and_builds_the_loop_s_trees(selection):
    """The real `torch.compile`d search (the test above runs its function eagerly): one graph, its simulations
    a loop inside it, compiled once for both searches of a batch size (~20 s on a CPU), and its trees equal
    the eager loop's."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    mcts._compiled_search.cache_clear()
    counters.clear()
    model = RandomModel(A=4, seed=7)
    obs = torch.randn(2, 3, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    outs = []
    for compiled in (False, True, True):
        torch.manual_seed(9)
        cfg = _cfg(num_simulations=12, discount=0.95, root_selection=selection, compile=compiled)
        outs.append(search(obs, model.root, model.recurrent, cfg, explore=False))
    assert counters["stats"]["unique_graphs"] == counters["aot_autograd"]["total"] == 1  # compiled once
    assert not counters["graph_break"]
    for out in outs[1:]:
        assert torch.equal(outs[0].visit_counts, out.visit_counts) and torch.equal(outs[0].action, out.action)
        for name in ("policy", "root_value", "q_values"):
            torch.testing.assert_close(getattr(out, name), getattr(outs[0], name), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("S", [5, 70])
def test_the_chain_backup_of_the_fixed_shape_simulation(monkeypatch, S):
    """The chain of `test_backup_on_a_chain...` (depth grows by one every simulation) through the fixed-shape
    simulation, against the same hand-computed returns; at 70 simulations the lineages span two words."""
    _eager_fixed(monkeypatch)
    gamma = 0.9

    def root(obs):
        return torch.zeros(1, 1, dtype=torch.float64), torch.zeros(1, 1), torch.tensor([0.5], dtype=torch.float64)

    def recurrent(state, action):
        d = state + 1
        return d, d[:, 0], torch.zeros(1, 1), 10 * d[:, 0]

    out = search(None, root, recurrent, MCTSConfig(num_simulations=S, discount=gamma, compile=True), explore=False)
    returns = [0.5] + [sum(gamma ** (j - 1) * j for j in range(1, s + 1)) + gamma**s * 10 * s for s in range(1, S + 1)]
    assert out.root_value.item() == pytest.approx(sum(returns) / (S + 1), rel=1e-12)
    assert out.q_values.item() == pytest.approx(1 + gamma * sum((g - 1) / gamma for g in returns[1:]) / S, rel=1e-12)


def test_batches_above_compile_max_batch_keep_the_eager_loop(monkeypatch):
    calls = []

    def fixed(cfg, state, *args):
        calls.append(len(state))
        return mcts._search_fixed(cfg, state, *args)

    monkeypatch.setattr(mcts, "_compiled_search", lambda: fixed)
    monkeypatch.setattr(mcts, "while_loop", _python_loop)
    model = RandomModel()
    cfg = _cfg(num_simulations=4, compile=True, compile_max_batch=2)
    for B in (2, 3):
        search(torch.randn(B, 3, dtype=torch.float64), model.root, model.recurrent, cfg, explore=False)
    assert calls == [2]  # B = 3 keeps the loop
