"""One registry per component kind. Components register by decorator and are built from their own config.

@ENCODERS.register("mlp")
class MLPEncoder(nn.Module):
    @dataclass
    class Config: ...
    def __init__(self, cfg: Config, obs_spec: ObsSpec): ...

encoder = ENCODERS.build("mlp", {"hidden": 128}, obs_spec=spec)

Every entry of a kind is built from the same arguments (the kind's `args`, after its config) and has the
methods of the kind's contract (`contracts.py`), both checked when it registers, so any name of a kind can
stand in any slot of that kind; an entry built otherwise belongs to another kind. A slot that needs more
(`component(kind, name, contract=...)`) lists and accepts only the names that satisfy its narrower contract.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import field
from typing import Any, TypeVar

from worldmodels import contracts
from worldmodels.errors import ConfigError, closest
from worldmodels.schema import Spec, parse

T = TypeVar("T", bound=type)


class Registry:
    """Named constructors of one kind of component: every entry has a `Config` dataclass, is built as
    `cls(cfg, *args)` with the kind's `args` (by keyword) and satisfies the kind's `contract`."""

    def __init__(self, kind: str, *args: str, contract: type):
        self.kind, self.args, self.contract = kind, args, contract
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
            lacks = contracts.unfit(cls, self.contract)
            if lacks:
                raise TypeError(
                    f"{self.kind} '{name}' ({cls.__name__}) does not satisfy the {self.kind} contract: "
                    f"{'; '.join(lacks)}; every {self.kind} has {contracts.describe(self.contract)}"
                )
            self._entries[name] = cls
            return cls

        return decorate

    def names(self, contract: type | None = None) -> list[str]:
        """The registered names, or those whose class satisfies `contract` (a slot's narrower one)."""
        return sorted(n for n, cls in self._entries.items() if contract is None or not contracts.unfit(cls, contract))

    def unfit(self, name: str, contract: type) -> list[str]:
        """What entry `name` lacks of `contract` (empty when it fits)."""
        return contracts.unfit(self.get(name), contract)

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


ENCODERS = Registry("encoder", "obs_spec", contract=contracts.Encoder)
DECODERS = Registry("decoder", "in_dim", "obs_spec", contract=contracts.Decoder)
REPRESENTATIONS = Registry("representation", "in_dim", contract=contracts.Representation)
"""Encoder features → a latent state distribution."""
REPRESENTATION_LEARNERS = Registry(
    "representation_learner", "obs_spec", "action_dim", contract=contracts.RepresentationLearner
)
"""Observations → embeddings learnt by their own objective (VAE, contrastive, JEPA), with collapse monitors."""
AUTOENCODERS = Registry("autoencoder", "obs_spec", contract=contracts.Autoencoder)
"""Observations → latent → observations in one model (World Models' V)."""
DYNAMICS = Registry("dynamics", "latent_dim", "action_dim", contract=contracts.Dynamics)
"""Latent (or state) transitions without memory: (s, a) → s'."""
RSSMS = Registry("rssm", "embed_dim", "action_dim", contract=contracts.SequenceModel)
"""Recurrent state-space models: a deterministic memory with a stochastic latent, filtered on embeddings."""
BACKBONES = Registry("backbone", "in_dim", "dim", "norm", contract=contracts.Backbone)
"""The deterministic path of an RSSM (GRU, LSTM, transformer)."""
MEMORIES = Registry("memory", "z_dim", "action_dim", contract=contracts.Memory)
"""Recurrent predictors of the next latent given the action (World Models' M)."""
TOKENIZERS = Registry("tokenizer", "obs_spec", contract=contracts.Tokenizer)
"""Frames (or clips) ↔ grids of discrete tokens (IRIS's VQ-VAE, Genie's ST-ViViT VQ-VAE)."""
TOKEN_MODELS = Registry("token_model", "vocab", "tokens", "action_dim", contract=contracts.TokenModel)
"""Autoregressive models over frame tokens and actions, with reward and continue heads (IRIS's GPT)."""
LATENT_ACTIONS = Registry("latent_action", "obs_spec", contract=contracts.LatentActionModel)
"""Video → discrete latent actions between consecutive frames (Genie's latent action model)."""
MASKED_DYNAMICS = Registry("masked_dynamics", "vocab", "tokens", "actions", contract=contracts.MaskedDynamics)
"""Masked token models of the next frame given past frames' tokens and latent actions (Genie's MaskGIT)."""
DENOISERS = Registry("denoiser", "obs_spec", "action_dim", contract=contracts.Denoiser)
"""Diffusion models of the next frame given the last frames and actions (DIAMOND's EDM U-Net)."""
NETWORKS = Registry("network", "obs_shape", "action_dim", contract=contracts.Network)
"""MuZero-style networks: representation, dynamics (state, reward) and prediction (policy, value) in one."""
REWARDS = Registry("reward", "in_dim", contract=contracts.Head)
CONTINUES = Registry("continue", "in_dim", contract=contracts.Head)
VALUES = Registry("value", "in_dim", contract=contracts.Head)
POLICIES = Registry("policy", "in_dim", "action_dim", contract=contracts.Head)
PLANNERS = Registry("planner", "action_dim", "discrete", "low", "high", contract=contracts.Planner)
"""Action-sequence optimisers over a model (CEM, MPPI, iCEM, gradient)."""
SEARCHES = Registry("search", contract=contracts.Search)
"""Tree searches over a learned model's latent (MCTS)."""
AGENTS = Registry("agent", "obs_spec", "act_spec", contract=contracts.AgentContract)

REGISTRIES: dict[str, Registry] = {
    r.kind: r
    for r in (
        ENCODERS,
        DECODERS,
        REPRESENTATIONS,
        REPRESENTATION_LEARNERS,
        AUTOENCODERS,
        DYNAMICS,
        RSSMS,
        BACKBONES,
        MEMORIES,
        TOKENIZERS,
        TOKEN_MODELS,
        LATENT_ACTIONS,
        MASKED_DYNAMICS,
        DENOISERS,
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


def component(kind: str, name: str | None, contract: type | None = None, **cfg: Any) -> Any:
    """A dataclass field holding a `Spec`: a component of `kind`, `name` with options `cfg` by default
    (options given for `name` in a preset apply over `cfg`); `contract` narrows the names that fit the slot.
    `name` None: an optional slot (a `Spec | None` field), empty unless a preset chooses a component."""
    registry = REGISTRIES[kind]

    def default() -> Spec:
        return Spec(name, parse(registry.get(name).Config, cfg, f"{registry.kind}.{name}"))

    meta = {"registry": registry, "default": name, "options": cfg, "contract": contract}
    if name is None:
        return field(default=None, metadata=meta)
    return field(default_factory=default, metadata=meta)
