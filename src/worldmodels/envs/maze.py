"""gymnasium-robotics PointMaze as `maze:PointMaze_UMaze-v3` (any `PointMaze_*` id, for its map): D4RL's point
mass in a maze of 1 m cells, seen from straight above and without the suite's goal, for goal reaching from
pixels (DINO-WM's PointMaze task).

The maze, the point and its physics are the suite's: its MJCF, and its step (`PointEnv.step`): the action, a
force in [-1, 1]² (gear 100 on a 4.2 kg ball), is applied after the velocity is clipped to ±MAX_SPEED m/s
along each axis, for one 0.01 s physics step. One step here is FRAME_SKIP = 5 of those (DINO-WM's frame
skip), so the point moves at most `step_size` = 0.25 m along an axis in a step. Episodes start where the
suite's reset puts the point, a uniform free cell ± 0.25 m, at rest (or at rest at `reset(options={"position":
(x, y)})`), earn no reward and never terminate (`make_env` truncates them after EPISODE_STEPS). Observations:
`state` (x, y, vx, vy), `pixels`: frames of the whole maze rendered by MuJoCo with an orthographic camera
looking straight down (x to the right, y up; the suite's red goal marker hidden), or `both`. A frame shows
where the point is, not how fast it moves. `info["position"]` is (x, y) in metres, for goal success.

The suite's own env compiles its model (~0.1 s, 12 MB) and a renderer (~0.7 s, 70 MB) per instance, and
`goal_success` steps hundreds of envs at once: here the model is compiled once per process and maze, each
env has its own `MjData`, and one renderer per process and frame size draws them all. Rendering needs an
OpenGL backend without a display: MUJOCO_GL=egl unless set (`envs/__init__.py`), as for dm_control.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import io
import os
from pathlib import Path

import gymnasium as gym
import numpy as np

from worldmodels.envs.wrappers import image_space, observation_space
from worldmodels.errors import ConfigError, closest

FRAME_SKIP = 5
"""Physics steps (0.01 s each) per step."""
MAX_SPEED = 5.0
"""The suite clips the point's velocity to ±MAX_SPEED m/s along each axis."""
EPISODE_STEPS = 100
"""Agent steps after which `make_env` truncates an episode (env.max_episode_steps sets another)."""
RESET_NOISE = 0.25
"""The suite's reset: a uniform free cell's centre ± this (m) along each axis."""
SCALING, HEIGHT = 1.0, 0.4
"""The suite's PointMaze cell size and wall height (m)."""


def _suite():
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # its import prints a notice about its Adroit envs
            import gymnasium_robotics
        import mujoco
    except ImportError as err:
        raise ConfigError(
            f"gymnasium-robotics is not installed ({err}); install it with: pip install -e '.[maze]'"
        ) from None
    return gymnasium_robotics, mujoco


@functools.cache
def _maze(name: str):
    """The suite's maze for the id `name` and its MuJoCo model, shared by every env of this process."""
    robotics, mujoco = _suite()
    from gymnasium_robotics.envs.maze.maze_v4 import Maze

    names = [f"maze:{k}" for k in gym.registry if k.startswith("PointMaze_")]
    if f"maze:{name}" not in names:
        raise ConfigError(f"unknown PointMaze id 'maze:{name}'{closest(f'maze:{name}', names)}")
    point = Path(robotics.__file__).parent / "envs" / "assets" / "point" / "point.xml"
    maze, xml = Maze.make_maze(str(point), gym.spec(name).kwargs["maze_map"], SCALING, HEIGHT)
    try:
        model = mujoco.MjModel.from_xml_path(xml)
    finally:
        os.remove(xml)  # the suite leaves it in the temporary folder
    model.site_rgba[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, "target"), 3] = 0.0
    model.vis.global_.orthographic = 1
    model.vis.global_.fovy = max(maze.map_length, maze.map_width) * SCALING  # orthographic: the view's height (m)
    return maze, model


@functools.cache
def _renderer(name: str, size: tuple[int, int]):
    _, mujoco = _suite()
    renderer = mujoco.Renderer(_maze(name)[1], *size)
    # Shadows and reflections cost most of a software renderer's time and show nothing from straight above.
    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
    atexit.register(renderer.close)  # while the GL library is still loaded
    return renderer


def top_down_camera():
    _, mujoco = _suite()
    camera = mujoco.MjvCamera()
    camera.type = mujoco.mjtCamera.mjCAMERA_FREE
    camera.lookat[:] = 0.0  # the suite centres its mazes on the origin
    camera.distance, camera.elevation, camera.azimuth = 10.0, -90.0, 90.0
    return camera


class PointMazeEnv(gym.Env):
    """One PointMaze (see the module docstring); `obs` is `state`, `pixels` or `both`."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, name: str, obs: str = "state", size: tuple[int, int] = (64, 64)):
        _, self._mujoco = _suite()
        self.name, self.obs_mode, self.size = name, obs, tuple(size)
        self.maze, self.model = _maze(name)
        self.data = self._mujoco.MjData(self.model)
        self.camera = top_down_camera()
        self.render_mode = "rgb_array"
        self.step_size = MAX_SPEED * self.model.opt.timestep * FRAME_SKIP
        """The farthest the point moves along an axis in one step (m): the unit of goal success."""
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        state = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
        self.observation_space = observation_space(obs, image_space(self.size, False), state)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if options and "position" in options:
            position = np.asarray(options["position"], np.float64)
            if position.shape != (2,) or not self.free(position):
                raise ValueError(f"PointMaze start {options['position']} is not a free (x, y) of '{self.name}'")
        else:
            cells = self.maze.unique_reset_locations
            position = cells[self.np_random.integers(len(cells))] + self.np_random.uniform(-1, 1, 2) * RESET_NOISE
        self._mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[:] = position
        self._mujoco.mj_forward(self.model, self.data)
        return self._observe(), self._info()

    def step(self, action):
        mujoco, data = self._mujoco, self.data
        data.ctrl[:] = np.clip(action, -1.0, 1.0)
        for _ in range(FRAME_SKIP):  # the suite's PointEnv.step, FRAME_SKIP times
            data.qvel[:] = np.clip(data.qvel, -MAX_SPEED, MAX_SPEED)
            mujoco.mj_forward(self.model, data)  # as its set_state does, so contacts resolve the same
            mujoco.mj_step(self.model, data)
        return self._observe(), 0.0, False, False, self._info()

    def free(self, position: np.ndarray) -> bool:
        """Whether (x, y) lies in a cell of the maze that is not a wall."""
        row, col = self.maze.cell_xy_to_rowcol(position)
        inside = 0 <= row < self.maze.map_length and 0 <= col < self.maze.map_width
        return bool(inside and self.maze.maze_map[row][col] != 1)

    def _info(self) -> dict:
        return {"position": self.data.qpos[:2].astype(np.float32)}

    def _observe(self) -> np.ndarray | dict[str, np.ndarray]:
        if self.obs_mode == "pixels":
            return self.render()
        state = np.concatenate([self.data.qpos, self.data.qvel]).astype(np.float32)
        return state if self.obs_mode == "state" else {"image": self.render(), "state": state}

    def render(self) -> np.ndarray:
        """The maze from above, uint8 `[H, W, 3]`."""
        renderer = _renderer(self.name, self.size)
        renderer.update_scene(self.data, camera=self.camera)
        return renderer.render()
