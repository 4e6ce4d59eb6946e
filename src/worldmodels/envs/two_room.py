"""`wm/TwoRoom-v0`: a point agent in a square arena split by a wall with a door (the two-room task of PLDM
and DINO-WM), for representation learning and goal reaching from pixels.

The arena is the unit square; a vertical wall fills x ∈ [WALL_LEFT, WALL_RIGHT] except for a door at
y ∈ [DOOR_LOW, DOOR_HIGH]. An action a ∈ [-1, 1]² moves the agent by STEP·a; a move that would enter the
wall stops where it first touches it (and the door's edges are wall too), the arena's border clips it.
Episodes start at a uniform free position (or `reset(options={"position": (x, y)})`), earn no reward and
never terminate; 100 steps truncate. Observation: the position (x, y) as float32; `render()` draws a 64×64
frame (the package's `env.obs=pixels` observes it); `info["position"]` is the true position in both modes,
for probes and goal success (`contracts.Positioned`).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

ENV_ID = "wm/TwoRoom-v0"
STEP = 0.05
"""Largest move per step along each axis (a = ±1)."""
WALL_LEFT, WALL_RIGHT = 31 / 64, 33 / 64
DOOR_LOW, DOOR_HIGH = 0.4, 0.6
SIZE = 64
"""Side of a rendered frame in pixels."""
AGENT_RADIUS = 2.5 / SIZE

_PIXEL_CENTRES = (np.arange(SIZE) + 0.5) / SIZE


def in_wall(position: np.ndarray) -> np.ndarray:
    """Whether positions `[..., 2]` lie inside the wall (the door is free): `[...]` bool."""
    x, y = position[..., 0], position[..., 1]
    return (x > WALL_LEFT) & (x < WALL_RIGHT) & ((y < DOOR_LOW) | (y > DOOR_HIGH))


def move(position: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """The position `[2]` reached from `position` by `delta` `[2]`: clipped to the arena, and stopped where
    the straight path first touches the wall."""
    delta = np.clip(position + delta, 0.0, 1.0) - position
    (x, y), (dx, dy) = position, delta
    if dx != 0:  # the fractions of the move spent with x strictly inside the wall's band
        enter, leave = sorted(((WALL_LEFT - x) / dx, (WALL_RIGHT - x) / dx))
        enter, leave = max(enter, 0.0), min(leave, 1.0)
    elif WALL_LEFT < x < WALL_RIGHT:
        enter, leave = 0.0, 1.0
    else:
        return position + delta
    if enter >= leave:  # the path does not cross the band
        return position + delta
    y_enter, y_leave = y + enter * dy, y + leave * dy
    if not DOOR_LOW <= y_enter <= DOOR_HIGH:  # meets the wall's face: stop on it exactly
        face = x if enter == 0 else (WALL_LEFT if dx > 0 else WALL_RIGHT)
        return np.array([face, y_enter])
    if DOOR_LOW <= y_leave <= DOOR_HIGH:  # through the door
        return position + delta
    edge = DOOR_HIGH if y_leave > DOOR_HIGH else DOOR_LOW  # inside the door, runs into its edge
    return np.array([x + (edge - y) / dy * dx, edge])


def render(position: np.ndarray) -> np.ndarray:
    """A frame uint8 `[SIZE, SIZE, 3]` (row 0 at the top, y = 1): the wall grey, the agent a red disc."""
    frame = np.zeros((SIZE, SIZE, 3), np.uint8)
    x, y = np.meshgrid(_PIXEL_CENTRES, _PIXEL_CENTRES[::-1])
    frame[in_wall(np.stack([x, y], -1))] = 128
    agent = (x - position[0]) ** 2 + (y - position[1]) ** 2 <= AGENT_RADIUS**2
    frame[agent] = (255, 64, 64)
    return frame


class TwoRoomEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    step_size = STEP
    """The farthest the agent moves along an axis in one step: the unit of goal success."""

    def __init__(self, render_mode: str | None = None):
        self.render_mode = render_mode
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (2,), np.float32)
        self.position = np.full(2, 0.25)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if options and "position" in options:
            position = np.asarray(options["position"], np.float64)
            if position.shape != (2,) or not np.all((position >= 0) & (position <= 1)) or in_wall(position):
                raise ValueError(f"TwoRoom start {options['position']} is not a free (x, y) in the unit square")
        else:
            position = self.np_random.uniform(0.0, 1.0, 2)
            while in_wall(position):
                position = self.np_random.uniform(0.0, 1.0, 2)
        self.position = position
        return self._obs(), {"position": self._obs()}

    def step(self, action):
        delta = STEP * np.clip(np.asarray(action, np.float64).reshape(2), -1.0, 1.0)
        self.position = move(self.position, delta)
        return self._obs(), 0.0, False, False, {"position": self._obs()}

    def _obs(self) -> np.ndarray:
        return self.position.astype(np.float32)

    def render(self) -> np.ndarray:
        return render(self.position)


def register() -> None:
    if ENV_ID not in gym.registry:
        gym.register(ENV_ID, entry_point=TwoRoomEnv, max_episode_steps=100)


register()
