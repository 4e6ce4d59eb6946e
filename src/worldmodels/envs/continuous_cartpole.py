"""`wm/CartPoleContinuous-v0`: cart-pole balance with a continuous force, the task of mbrl-lib's PETS example.

The physics are gymnasium's CartPole (Barto et al. 1983; semi-implicit Euler here): the action a ∈ [-1, 1]
pushes the cart with force 10·a N. An episode starts near upright, earns reward 1 for every step the pole
stays within 12° and the cart within ±2.4 m (0 on the step that leaves them, which terminates), and is
truncated after 200 steps, so the best return is 200. Observation: (x, ẋ, θ, θ̇).

`reward` and `terminated` are the same rules as batched torch functions, for agents given the known task.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import torch
from gymnasium.envs.classic_control.cartpole import CartPoleEnv

ENV_ID = "wm/CartPoleContinuous-v0"
X_LIMIT, THETA_LIMIT = 2.4, 12 * 2 * math.pi / 360


class ContinuousCartPoleEnv(CartPoleEnv):
    def __init__(self, render_mode: str | None = None):
        super().__init__(render_mode=render_mode)
        self.kinematics_integrator = "semi-implicit"
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def step(self, action):
        force = self.force_mag * float(np.clip(np.asarray(action).reshape(-1)[0], -1.0, 1.0))
        x, x_dot, theta, theta_dot = self.state
        cos, sin = math.cos(theta), math.sin(theta)
        temp = (force + self.polemass_length * theta_dot**2 * sin) / self.total_mass
        theta_acc = (self.gravity * sin - cos * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * cos**2 / self.total_mass)
        )
        x_acc = temp - self.polemass_length * theta_acc * cos / self.total_mass
        x_dot += self.tau * x_acc
        x += self.tau * x_dot
        theta_dot += self.tau * theta_acc
        theta += self.tau * theta_dot
        self.state = np.array((x, x_dot, theta, theta_dot), dtype=np.float64)
        done = abs(x) > X_LIMIT or abs(theta) > THETA_LIMIT
        if self.render_mode == "human":
            self.render()
        return np.array(self.state, dtype=np.float32), 0.0 if done else 1.0, done, False, {}


def terminated(obs: torch.Tensor) -> torch.Tensor:
    """Whether observations `[..., 4]` are outside the allowed region: `[...]` bool."""
    return (obs[..., 0].abs() > X_LIMIT) | (obs[..., 2].abs() > THETA_LIMIT)


def reward(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """Reward `[...]` of the transitions (obs, action, next_obs): 1 unless the next state terminates."""
    return (~terminated(next_obs)).to(next_obs.dtype)


def register() -> None:
    if ENV_ID not in gym.registry:
        gym.register(ENV_ID, entry_point=ContinuousCartPoleEnv, max_episode_steps=200)


register()
