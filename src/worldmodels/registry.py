"""One registry per component kind. Components register by decorator and are built from their own config.

@ENCODERS.register("mlp")
class MLPEncoder(nn.Module):
    @dataclass
    class Config: ...
    def __init__(self, cfg: Config, obs_shape: tuple[int, ...]): ...

encoder = ENCODERS.build("mlp", {"hidden": 128}, obs_shape=(4,))
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
    """Named constructors of one kind of component; every entry has a `Config` dataclass."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, type] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorate(cls: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            if not dataclasses.is_dataclass(getattr(cls, "Config", None)):
                raise TypeError(f"{self.kind} '{name}' ({cls.__name__}) needs a `Config` dataclass")
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

    def signature(self, name: str) -> str:
        """The arguments entry `name` is built from besides its config, e.g. `in_dim, action_dim`."""
        params = list(inspect.signature(self.get(name)).parameters.values())[1:]
        return ", ".join(p.name for p in params)

    def fitting(self, name: str) -> list[str]:
        """The entries that can stand where `name` does: those built from the same arguments."""
        return [other for other in self.names() if self.signature(other) == self.signature(name)]

    def build(self, name: str, cfg: Any = None, **kwargs: Any) -> Any:
        """Build entry `name` from its config (None for defaults, a dict, or a `Config` instance)."""
        cls = self.get(name)
        if cfg is None or isinstance(cfg, dict):
            cfg = parse(cls.Config, cfg or {}, f"{self.kind}.{name}")
        return cls(cfg, **kwargs)


ENCODERS = Registry("encoder")
DECODERS = Registry("decoder")
DYNAMICS = Registry("dynamics")
REPRESENTATIONS = Registry("representation")
REWARDS = Registry("reward")
CONTINUES = Registry("continue")
VALUES = Registry("value")
POLICIES = Registry("policy")
PLANNERS = Registry("planner")
AGENTS = Registry("agent")

REGISTRIES: dict[str, Registry] = {
    r.kind: r
    for r in (ENCODERS, DECODERS, DYNAMICS, REPRESENTATIONS, REWARDS, CONTINUES, VALUES, POLICIES, PLANNERS, AGENTS)
}


def component(kind: str, name: str, **cfg: Any) -> Any:
    """A dataclass field holding a `Spec`: a component of `kind`, `name` with options `cfg` by default
    (options given for `name` in a preset apply over `cfg`)."""
    registry = REGISTRIES[kind]

    def default() -> Spec:
        return Spec(name, parse(registry.get(name).Config, cfg, f"{registry.kind}.{name}"))

    return field(default_factory=default, metadata={"registry": registry, "default": name, "options": cfg})
