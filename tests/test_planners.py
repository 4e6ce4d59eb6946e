"""Every planner finds the known optimum of small problems, respects bounds and warm-starts by shifting."""

import pytest
import torch

import worldmodels.planners  # noqa: F401
from worldmodels.errors import ConfigError
from worldmodels.planners.icem import coloured_noise
from worldmodels.planners.protocol import Model, Plan, rollout_objective
from worldmodels.registry import PLANNERS

CONTINUOUS = ["cem", "mppi", "icem", "gradient"]
SMALL = {
    "cem": {"population": 200, "elites": 20, "iterations": 6},
    "mppi": {"population": 400, "iterations": 15, "temperature": 0.3, "init_std": 0.3},
    "icem": {"population": 200, "elites": 20, "iterations": 10},
    "gradient": {"restarts": 4, "iterations": 100},
}


def build(name, horizon, action_dim=1, discrete=False, low=-1.0, high=1.0, **extra):
    cfg = {**SMALL[name], "horizon": horizon, **extra}
    return PLANNERS.build(name, cfg, action_dim=action_dim, discrete=discrete, low=low, high=high)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("name", CONTINUOUS)
def test_quadratic_optimum(name):
    """max −Σ (a − target)²: the plan is the target, for two independent problems at once."""
    target = torch.tensor([[[0.3, -0.6]] * 4, [[-0.2, 0.5]] * 4])  # [B=2, H=4, A=2]
    planner = build(name, 4, action_dim=2)
    x0, _ = planner.warm_start(None, 2, torch.device("cpu"))
    plan = planner.optimize(lambda a: -((a - target[:, None]) ** 2).sum((2, 3)), x0)
    assert plan.actions.shape == (2, 4, 2) and plan.returns.shape == (2,)
    assert torch.allclose(plan.actions, target, atol=0.08)


@pytest.mark.parametrize("name", CONTINUOUS)
def test_point_mass_reaches_goal(name):
    """1-D point mass (x, v), a = force: reward −(x − 1)²; the first action pushes toward the goal and
    the planned rollout ends near it."""

    def step(state, action):
        x, v = state[:, 0], state[:, 1]
        v = v + 0.2 * action[:, 0]
        x = x + 0.2 * v
        return torch.stack([x, v], -1), -((x - 1.0) ** 2)

    model = Model(step)
    start = torch.zeros(1, 2)
    planner = build(name, 12)
    x0, _ = planner.warm_start(None, 1, torch.device("cpu"))
    plan = planner.optimize(rollout_objective(model, start), x0)
    assert plan.actions[0, 0, 0] > 0.5
    state = start
    for t in range(12):
        state, _ = step(state, plan.actions[:, t])
    assert abs(state[0, 0].item() - 1.0) < 0.3


@pytest.mark.parametrize("name", ["cem", "mppi"])
def test_discrete_bandit_sequence(name):
    """Per-step payoffs of 4 arms over 5 steps: the plan picks the best arm at every step."""
    payoff = torch.tensor(
        [[0.0, 1.0, 0.2, 0.1], [0.5, 0.0, 0.0, 1.0], [1.0, 0.3, 0.0, 0.0], [0.0, 0.0, 1.0, 0.4]]
        + [[0.1, 0.0, 0.0, 1.0]]
    )
    planner = build(name, 5, action_dim=4, discrete=True, **({"temperature": 0.2} if name == "mppi" else {}))
    x0, _ = planner.warm_start(None, 1, torch.device("cpu"))
    assert torch.allclose(x0, torch.full((1, 5, 4), 0.25))
    plan = planner.optimize(lambda a: (a * payoff).sum((2, 3)), x0)
    assert plan.actions.shape == (1, 5, 4)
    assert plan.actions.sum(-1).eq(1).all()  # one-hot
    assert plan.actions[0].argmax(-1).tolist() == payoff.argmax(-1).tolist()


@pytest.mark.parametrize("name", CONTINUOUS)
def test_respects_bounds(name):
    """The optimum lies outside the box: every candidate evaluated and the plan stay inside it."""
    low, high = torch.tensor([-0.5, 0.0]), torch.tensor([0.3, 0.2])
    seen = []

    def objective(a):
        seen.append(a.detach())
        return -((a - 5.0) ** 2).sum((2, 3))

    # the returns here differ by units, not tenths: MPPI's temperature is in units of the return
    planner = build(name, 3, action_dim=2, low=low, high=high, **({"temperature": 1.0} if name == "mppi" else {}))
    plan = planner.optimize(objective, planner.warm_start(None, 1, torch.device("cpu"))[0])
    for a in [*seen, plan.actions]:
        assert (a >= low).all() and (a <= high).all()
    assert (plan.actions > low + 0.75 * (high - low)).all()  # pushed from the centre toward the upper bound


def test_warm_start_shifts_and_resets():
    planner = build("cem", 3)
    centre = torch.tensor([[[0.1], [0.2], [0.3]], [[0.4], [0.5], [0.6]]])
    prev = Plan(centre, centre, torch.zeros(2), elites=centre[:, None].repeat(1, 4, 1, 1))
    x0, reuse = planner.warm_start(prev, 2, torch.device("cpu"), reset=torch.tensor([False, True]))
    assert x0[0, :, 0].tolist() == pytest.approx([0.2, 0.3, 0.0])
    assert x0[1].abs().sum() == 0
    assert reuse.shape == (2, 4, 3, 1) and reuse[0, 0, :, 0].tolist() == pytest.approx([0.2, 0.3, 0.0])


@pytest.mark.parametrize("name", ["cem", "mppi"])
def test_discrete_warm_start_revises_a_settled_plan(name):
    """After a plan whose probabilities settled on arm 0, the payoff moves to arm 1: the warm-started
    planner must find it. Without `discrete_reset` every candidate repeats the old plan (it did in PETS on
    CartPole: the cart was pushed the wrong way to the end of the episode)."""
    settled = torch.nn.functional.one_hot(torch.zeros(1, 5, dtype=torch.long), 2).float()  # [1, H, 2]: arm 0
    prev = Plan(settled, settled, torch.zeros(1))
    extra = {"temperature": 0.2} if name == "mppi" else {}

    def objective(a):
        return a[..., 1].sum(-1)  # arm 1 pays at every step

    planner = build(name, 5, action_dim=2, discrete=True, **extra)
    x0, _ = planner.warm_start(prev, 1, torch.device("cpu"))
    assert torch.allclose(x0[0, :4], torch.tensor([0.75, 0.25]).expand(4, 2))  # half uniform, half the plan
    assert planner.optimize(objective, x0).actions[0].argmax(-1).tolist() == [1] * 5
    stuck = build(name, 5, action_dim=2, discrete=True, discrete_reset=0.0, **extra)
    x0, _ = stuck.warm_start(prev, 1, torch.device("cpu"))
    assert stuck.optimize(objective, x0).actions[0, :4].argmax(-1).tolist() == [0] * 4


def test_coloured_noise_unit_variance_and_smoothness():
    white, brown = (
        coloured_noise(0.0, (4000,), 16, torch.device("cpu")),
        coloured_noise(2.0, (4000,), 16, torch.device("cpu")),
    )
    assert white.shape == (4000, 16)
    assert white.var().item() == pytest.approx(1.0, abs=0.05) and brown.var().item() == pytest.approx(1.0, abs=0.05)

    def lag1(x):
        return (x[:, 1:] * x[:, :-1]).mean().item()

    assert abs(lag1(white)) < 0.05 and lag1(brown) > 0.5


def test_value_callback_is_added_at_the_horizon():
    model = Model(lambda s, a: (s + a, torch.ones(len(s))), value=lambda s: 10 * s[:, 0])
    objective = rollout_objective(model, torch.zeros(1, 1), discount=0.5)
    returns = objective(torch.ones(1, 1, 2, 1))  # rewards 1, 1; final state 2 → value 20
    assert returns.item() == pytest.approx(1 + 0.5 + 0.25 * 20)


def test_continue_weights_rewards_and_value_and_stops_after_the_end():
    """Rewards 1 per step and value 10; the episode surely ends at step k = 2 (continue 0 from there on):
    only the rewards of steps 0..2 count and the value never does. With continue 0.5 everywhere each term is
    weighted by γ^t 0.5^t, the value by γ^H 0.5^H."""
    for k in range(3):
        model = Model(
            lambda s, a: (s + 1, torch.ones(len(s))),
            value=lambda s: torch.full((len(s),), 10.0),
            cont=lambda s, k=k: (s[:, 0] <= k).float(),  # state s_t = t: the step into s_{k+1} ends it
        )
        returns = rollout_objective(model, torch.zeros(1, 1), discount=0.5)(torch.zeros(1, 1, 4, 1))
        assert returns.item() == pytest.approx(sum(0.5**t for t in range(k + 1)))
    half = Model(
        lambda s, a: (s, torch.ones(len(s))),
        value=lambda s: torch.full((len(s),), 10.0),
        cont=lambda s: torch.full((len(s),), 0.5),
    )
    returns = rollout_objective(half, torch.zeros(1, 1), discount=0.5)(torch.zeros(1, 1, 3, 1))
    assert returns.item() == pytest.approx(1 + 0.5 * 0.5 + 0.25 * 0.25 + 0.125 * 0.125 * 10)


def test_continue_is_per_particle():
    """Two particles per row, one ends after the first step: the row's return is the mean of theirs (3 + 1)/2,
    not the product of their mean continues (1 + 0.5 + 0.25 = 1.75)."""
    model = Model(
        lambda s, a: (s, torch.ones_like(s[..., 0])),  # state `[N, K, 1]`, rewards per particle `[N, K]`
        cont=lambda s: s[..., 0],
    )
    returns = rollout_objective(model, torch.tensor([[[1.0], [0.0]]]))(torch.zeros(1, 1, 3, 1))
    assert returns.item() == pytest.approx(2.0)


@pytest.mark.parametrize("name", [*CONTINUOUS, "cem-discrete", "mppi-discrete"])
def test_planner_avoids_the_sequence_that_ends_the_episode(name):
    """Alive bonus 1 per step; pushing by e ∈ [0, 1] (the action, or the second of two discrete ones) pays
    0.5 e more at once but ends the episode with probability e: over 5 steps the return is 5 − 3.5 e for a
    first push e, so holding (e = 0) is best though pushing pays more per step."""
    discrete = name.endswith("discrete")

    def step(ended, action):
        push = action[:, -1].clamp(0, 1)
        return torch.maximum(ended, push), 1.0 + 0.5 * push

    model = Model(step, cont=lambda ended: 1.0 - ended)
    planner = build(name.split("-")[0], 5, action_dim=2 if discrete else 1, discrete=discrete)
    x0, _ = planner.warm_start(None, 1, torch.device("cpu"))
    plan = planner.optimize(rollout_objective(model, torch.zeros(1)), x0)
    assert plan.actions[0, :-1, -1].clamp(0, 1).max() < 0.1  # pushing pays only at the last step


def test_bad_options_fail_clearly():
    with pytest.raises(ConfigError, match="elites"):
        PLANNERS.build("cem", {"population": 10, "elites": 20}, action_dim=1)
    with pytest.raises(ConfigError, match="continuous"):
        PLANNERS.build("gradient", None, action_dim=3, discrete=True)
    with pytest.raises(ConfigError, match="low < high"):
        PLANNERS.build("mppi", None, action_dim=1, low=1.0, high=0.0)


def test_mppi_takes_a_policy_prior_candidate_that_its_own_samples_cannot_reach():
    """max −Σ |a − 0.7| with samples of std 0.05 around 0: only the prior's candidate (0.7 at every step) is
    near the optimum, so with one elite the plan is exactly that candidate; without the prior it stays near 0."""
    planner = build("mppi", 3, population=16, iterations=2, init_std=0.025, elites=1, temperature=0.1, momentum=0.0)
    x0, _ = planner.warm_start(None, 2, torch.device("cpu"))
    objective = lambda a: -(a - 0.7).abs().sum((2, 3))  # noqa: E731
    prior = torch.tensor([[[[0.7]] * 3], [[[-0.9]] * 3]])  # [B=2, K=1, H=3, A=1]: right for the first problem only
    plan = planner.optimize(objective, x0, prior=prior)
    assert torch.equal(plan.actions[0], torch.full((3, 1), 0.7))
    assert plan.actions[1].abs().max() < 0.3 and plan.std.shape == (2, 3, 1)
    assert (planner.optimize(objective, x0).actions - 0.7).abs().min() > 0.4


def test_mppi_elites_weight_only_the_best_candidates():
    """At a high temperature the plan is the plain mean of all candidates (three given, one sampled at the
    centre 0.2), or with 1 elite the best one."""
    prior = torch.tensor([0.0, 0.2, 0.9])[None, :, None, None]  # [1, 3, 1, 1]
    for elites, expected in ((0, (0.0 + 0.2 + 0.9 + 0.2) / 4), (1, 0.9)):
        planner = build(
            "mppi",
            1,
            population=1,
            iterations=1,
            init_std=1e-6,
            min_std=0.0,
            momentum=0.0,
            elites=elites,
            temperature=1e6,
        )
        plan = planner.optimize(lambda a: a[..., 0, 0], torch.full((1, 1, 1), 0.2), prior=prior)
        assert torch.allclose(plan.actions, torch.full((1, 1, 1), float(expected)), atol=1e-4)


def test_mppi_select_sample_executes_a_scored_candidate_where_the_mean_cancels_out():
    """Returns −(|a| − 0.8)²: pushing either way by 0.8 is best, standing still worst. The weighted mean of
    candidates on both sides is near 0, the worst action; `select: sample` executes one candidate, near ±0.8,
    with its own return; the warm start (the centre) is the same either way."""
    objective = lambda a: -((a.abs() - 0.8) ** 2).sum((2, 3))  # noqa: E731
    plans = {}
    for select in ("mean", "sample"):
        torch.manual_seed(0)
        planner = build("mppi", 2, population=256, iterations=3, elites=16, temperature=0.05, select=select)
        x0, _ = planner.warm_start(None, 64, torch.device("cpu"))
        plans[select] = planner.optimize(objective, x0)
    assert plans["mean"].actions[:, 0].abs().mean() < 0.3
    assert (plans["sample"].actions[:, 0].abs() - 0.8).abs().max() < 0.2
    assert torch.allclose(plans["sample"].returns, objective(plans["sample"].actions[:, None])[:, 0])
    assert torch.equal(plans["mean"].centre, plans["sample"].centre)
    with pytest.raises(ConfigError, match="select"):
        build("mppi", 2, select="best")
