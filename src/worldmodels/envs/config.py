"""The environment's own config: which suite and id, how many, what the agent observes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from worldmodels.schema import non_negative, param, positive

SUITES = ("dmc", "atari", "minatar", "maze", "gym", "classic_control")
_REPEATS = (
    "a positive integer, or a mapping of suites (dmc, atari, minatar, maze, gym, classic_control) to positive integers"
)


def _repeats_valid(value: int | dict[str, int]) -> bool:
    counts = value.values() if isinstance(value, dict) else [value]
    return all(n >= 1 for n in counts) and (not isinstance(value, dict) or set(value) <= set(SUITES))


def suite_of(env_id: str) -> str:
    """The suite an id names by its prefix (`dmc:walker-walk` → `dmc`); for a plain Gymnasium id,
    `classic_control` for Gymnasium's classic-control family (CartPole, Pendulum, MountainCar, Acrobot, ...),
    else `gym`."""
    if ":" in env_id:
        return env_id.split(":", 1)[0]
    import gymnasium

    try:
        entry = gymnasium.spec(env_id).entry_point
    except gymnasium.error.Error:  # an unknown id: `make_env` names the problem
        return "gym"
    return "classic_control" if str(entry).startswith("gymnasium.envs.classic_control") else "gym"


def per_suite(values: dict[str, int], env_id: str, default: int) -> int:
    """The value a per-suite mapping gives `env_id`: its suite's, for a classic-control id else the `gym`
    entry's (Gymnasium as a whole), else `default`."""
    suite = suite_of(env_id)
    if suite in values:
        return values[suite]
    return values.get("gym", default) if suite == "classic_control" else default


@dataclass
class EnvConfig:
    id: str = "CartPole-v1"
    """Gymnasium id; other suites use prefixes (`dmc:`, `atari:`, `minatar:`, `maze:`)."""
    num_envs: int = positive(1)
    """Environments stepped together for collection."""
    vectorization: Literal["sync", "async"] = "sync"
    """`async` steps each environment in its own worker process."""
    obs: Literal["state", "pixels", "both"] = "state"
    """`state` vectors, `pixels` frames (uint8 `[H, W, C]`), or `both` as a dict {image, state}."""
    size: tuple[int, int] = (64, 64)
    """Frame size (height, width) for pixels."""
    grayscale: bool = False
    """One channel instead of RGB for pixels."""
    action_repeat: int | dict[str, int] = param(1, _repeats_valid, _REPEATS)
    """Each agent action is applied this many times; rewards are summed (Atari: the frame skip). A mapping
    from suites to counts picks it by `id`'s suite (`dmc`, `atari`, `minatar`, `maze`; `gym` for a plain
    Gymnasium id, `classic_control` for Gymnasium's classic-control family, which falls back to `gym`), 1 for
    a suite it does not name: PlaNet repeats 8 times on dm_control, where a step is a few milliseconds of
    physics, and once on classic control."""
    max_episode_steps: int | None = None
    """Override of the environment's time limit, in agent steps."""
    camera: int | None = None
    """dm_control camera id (None: the usual one for the domain)."""
    render_effects: bool = False
    """dm_control: draw shadows and reflections (the standard look; ~3× slower on a CPU renderer)."""
    sticky_actions: float | None = param(None, lambda v: v is None or 0 <= v <= 1, "a number in [0, 1] or null")
    """Atari and MinAtar: probability that the previous action is repeated instead of the chosen one (None:
    the suite's own, Atari 0.25 and MinAtar 0.1; 0 makes the game deterministic given the actions)."""
    noop_max: int = non_negative(30)
    """Atari: at most this many no-op actions at the start of an episode."""

    def __post_init__(self) -> None:
        if isinstance(self.action_repeat, dict):  # resolved once the id is known: the config holds the count
            self.action_repeat = per_suite(self.action_repeat, self.id, 1)
