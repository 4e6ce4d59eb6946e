"""εz-greedy holds (`agents/holds.py`): a random action kept for its drawn steps, dropped at an episode's
start and where the policy prefers an action."""

import torch

from worldmodels.agents.holds import HoldConfig, hold


def test_a_hold_keeps_its_random_action_for_its_drawn_steps_and_ends_at_an_episode_start_or_a_preference():
    cfg = HoldConfig(hold_max=3)
    agent = torch.tensor([4, 4, 4, 4])  # the agent's choice, never the random one while a hold lasts
    uniform = torch.full((4, 5), 0.2)  # a policy that cannot tell the actions apart
    torch.manual_seed(0)
    first = torch.ones(4, dtype=torch.bool)
    action, (held, left) = hold(agent, uniform, first, None, 1.0, cfg)
    assert torch.equal(action, held) and ((left >= 0) & (left <= 2)).all()  # 1..3 steps drawn, one spent
    for _ in range(int(left.max())):  # each environment keeps its action until its steps run out
        holding = left > 0
        again, (held_next, left) = hold(agent, uniform, ~first, (held, left), 1.0, cfg)
        assert holding.any() and torch.equal(again[holding], held[holding])
        held = held_next
    _, (_, left) = hold(agent, uniform, first, (held, torch.full((4,), 5)), 1.0, cfg)
    assert (left <= 2).all()  # an episode start drops a hold that had steps left
    decided = torch.tensor([[0.0, 0.0, 0.0, 0.2, 0.8]]).expand(4, 5)
    action, (_, left) = hold(agent, decided, first, None, 1.0, cfg)
    assert torch.equal(action, agent) and (left < 0).all()  # where the policy prefers an action, no hold starts
    _, (_, left) = hold(agent, decided, ~first, (held, torch.full((4,), 3)), 1.0, cfg)
    assert (left < 0).all()  # and a hold under way ends there
    action, (_, left) = hold(agent, uniform, first, None, 0.0, cfg)
    assert torch.equal(action, agent) and (left < 0).all()  # ε = 0: the agent's own actions


def test_held_durations_follow_the_heavy_tail():
    """P(n ≥ k) = 1/k for μ = 2: about half the holds last 2 steps or more, a tenth 10 or more."""
    torch.manual_seed(0)
    n = 20000
    _, (_, left) = hold(
        torch.zeros(n, dtype=torch.long),
        torch.full((n, 3), 1 / 3),
        torch.ones(n, dtype=torch.bool),
        None,
        1.0,
        HoldConfig(),
    )
    steps = left + 1
    assert abs((steps >= 2).float().mean() - 0.5) < 0.02 and abs((steps >= 10).float().mean() - 0.1) < 0.01
    assert steps.max() <= 100
