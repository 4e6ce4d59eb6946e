"""One registry per component kind. Components register by decorator and are built from their own config.

@ENCODERS.register("mlp")
class MLPEncoder(nn.Module):
    @dataclass
    class Config: ...
    def __init__(self, cfg: Config, obs_spec: ObsSpec): ...

encoder = ENCODERS.build("mlp", {"hidden": 128}, obs_spec=spec)

Every entry of a kind is built from the same arguments (the kind's `args`, after its config), so any name
of a kind can stand in any slot of that kind; an entry built otherwise belongs to another kind.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import field
from typing import Any, TypeVar

from worldmodels.errors import ConfigError, closest
from worldmodels.schema import Spec, parse

T = TypeVar("T", bound=type)


class Registry:
    """Named constructors of one kind of component: every entry has a `Config` dataclass and is built as
    `cls(cfg, *args)` with the kind's `args` (by keyword)."""

    def __init__(self, kind: str, *args: str):
        self.kind, self.args = kind, args
        self._entries: dict[str, type] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorate(cls: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            if not dataclasses.is_dataclass(getattr(cls, "Config", None)):
                raise TypeError(f"{self.kind} '{name}' ({cls.__name__}) needs a `Config` dataclass")
            takes = tuple(inspect.signature(cls).parameters)[1:]
            if takes != self.args:
                raise TypeError(
                    f"{self.kind} '{name}' ({cls.__name__}) is built from ({', '.join(takes)}), but every "
                    f"{self.kind} is built from (cfg, {', '.join(self.args)}); register it under a kind that fits"
                )
            self._entries[name] = cls
            return cls

        return decorate

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def get(self, name: str) -> type:
        if name not in self._entries:
            valid = ", ".join(self.names()) or "none registered"
            raise ConfigError(f"unknown {self.kind} '{name}'{closest(name, self._entries)}; valid: {valid}")
        return self._entries[name]

    def build(self, name: str, cfg: Any = None, **kwargs: Any) -> Any:
        """Build entry `name` from its config (None for defaults, a dict, or a `Config` instance)."""
        cls = self.get(name)
        if cfg is None or isinstance(cfg, dict):
            cfg = parse(cls.Config, cfg or {}, f"{self.kind}.{name}")
        return cls(cfg, **kwargs)


ENCODERS = Registry("encoder", "obs_spec")
DECODERS = Registry("decoder", "in_dim", "obs_spec")
REPRESENTATIONS = Registry("representation", "in_dim")
"""Encoder features → a latent state distribution."""
AUTOENCODERS = Registry("autoencoder", "obs_spec")
"""Observations → latent → observations in one model (World Models' V)."""
DYNAMICS = Registry("dynamics", "latent_dim", "action_dim")
"""Latent (or state) transitions without memory: (s, a) → s'."""
RSSMS = Registry("rssm", "embed_dim", "action_dim")
"""Recurrent state-space models: a deterministic memory with a stochastic latent, filtered on embeddings."""
MEMORIES = Registry("memory", "z_dim", "action_dim")
"""Recurrent predictors of the next latent given the action (World Models' M)."""
NETWORKS = Registry("network", "obs_shape", "action_dim")
"""MuZero-style networks: representation, dynamics (state, reward) and prediction (policy, value) in one."""
REWARDS = Registry("reward", "in_dim")
CONTINUES = Registry("continue", "in_dim")
VALUES = Registry("value", "in_dim")
POLICIES = Registry("policy", "in_dim", "action_dim")
PLANNERS = Registry("planner", "action_dim", "discrete", "low", "high")
"""Action-sequence optimisers over a model (CEM, MPPI, iCEM, gradient)."""
SEARCHES = Registry("search")
"""Tree searches over a learned model's latent (MCTS)."""
AGENTS = Registry("agent", "obs_spec", "act_spec")

REGISTRIES: dict[str, Registry] = {
    r.kind: r
    for r in (
        ENCODERS,
        DECODERS,
        REPRESENTATIONS,
        AUTOENCODERS,
        DYNAMICS,
        RSSMS,
        MEMORIES,
        NETWORKS,
        REWARDS,
        CONTINUES,
        VALUES,
        POLICIES,
        PLANNERS,
        SEARCHES,
        AGENTS,
    )
}


def component(kind: str, name: str, **cfg: Any) -> Any:
    """A dataclass field holding a `Spec`: a component of `kind`, `name` with options `cfg` by default
    (options given for `name` in a preset apply over `cfg`)."""
    registry = REGISTRIES[kind]

    def default() -> Spec:
        return Spec(name, parse(registry.get(name).Config, cfg, f"{registry.kind}.{name}"))

    return field(default_factory=default, metadata={"registry": registry, "default": name, "options": cfg})
