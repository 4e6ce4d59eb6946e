"""The specs models see (`worldmodels.spaces`), read off gymnasium spaces."""

from __future__ import annotations

import gymnasium as gym

from worldmodels.errors import ConfigError
from worldmodels.spaces import ActSpec, ObsSpec


def obs_spec_of(space: gym.Space, env_id: str) -> ObsSpec:
    """A Box, or a Dict of Boxes (`env.obs=both`)."""
    if isinstance(space, gym.spaces.Dict):
        return ObsSpec(parts=tuple((k, obs_spec_of(v, env_id)) for k, v in space.spaces.items()))
    if not isinstance(space, gym.spaces.Box):
        raise ConfigError(f"env '{env_id}': observation space {space} is not supported; expected a Box or Dict")
    return ObsSpec(tuple(space.shape), str(space.dtype))


def act_spec_of(space: gym.Space, env_id: str) -> ActSpec:
    """Discrete, or a 1-D Box."""
    if isinstance(space, gym.spaces.Discrete):
        return ActSpec(True, int(space.n))
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
        return ActSpec(False, int(space.shape[0]))
    raise ConfigError(f"env '{env_id}': action space {space} is not supported; expected Discrete or a 1-D Box")
