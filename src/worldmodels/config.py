"""A run's configuration: the root schema (agent, env, train), YAML presets and dotted overrides.

A run's config resolves in three layers: dataclass defaults <- preset YAML <- `key=value` overrides.
Every key is a dataclass field (`schema.py` parses them); an unknown key, a wrong type or a bad value
raises `ConfigError` naming the dotted key and what was expected.

A registered component appears in YAML as its name plus its own config, flattened:

    encoder: {name: mlp, hidden: 256}
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from worldmodels.envs.config import EnvConfig
from worldmodels.errors import ConfigError, closest
from worldmodels.registry import component
from worldmodels.schema import Spec, non_negative, param, parse, positive, to_dict

__all__ = ["Config", "EnvConfig", "TrainConfig", "load_config", "parse", "preset_names", "read_preset", "save_config"]


@dataclass
class TrainConfig:
    steps: int = positive(50_000)
    """Environment steps (action repeat included); with `offline`, updates. The `*_every` keys count the same."""
    offline: str | None = None
    """A dataset folder written by `wm record`: learn from its episodes instead of acting (the run's `env`
    becomes the dataset's, which evaluations play in); None: collect online."""
    seed: int = 0
    """Seeds every random source: torch, numpy, the replay sampler and the environments."""
    ratio: float = non_negative(32.0)
    """Replayed steps per agent step: updates = agent steps * ratio / (batch_size * seq_len)."""
    prefill: int = non_negative(1000)
    """Env steps collected with random actions before learning starts."""
    prefill_colour: float = non_negative(0.0)
    """The prefill's continuous actions: 0 uniformly random at every step; β > 0 Gaussian noise (σ = 1,
    clipped) coloured in time with a 1/f^β spectrum across each episode (`agents/time_noise.py`; 1: pink)."""
    batch_size: int = positive(16)
    """Sequences per update."""
    seq_len: int = param(64, lambda v: v >= 2, "an integer >= 2")
    """Steps per sampled sequence."""
    replay_capacity: int = positive(1_000_000)
    """Steps kept in replay; the oldest are evicted first."""
    eval_every: int = non_negative(10_000)
    """Env steps between evaluations (0: only at the end)."""
    eval_episodes: int = positive(10)
    """Episodes per evaluation, acting with the policy's mode."""
    evaluate: Literal["returns", "open_loop", "delta_psnr", "goal_success"] = "returns"
    """What an evaluation measures: `returns` of the policy in the environment, or (for a model that
    learns from data, offline or not) `open_loop`, the world model's prediction error over episodes of
    random actions it never trained on (`eval/open_loop_mse`), or (Genie) `delta_psnr`, how much its
    latent actions steer what it generates on such episodes (`train/controllability.py`), or (for an agent
    that acts toward goal observations) `goal_success`, how often it reaches held-out goals 4 and 8 steps
    ahead, judged by the environment's own state, beside random actions (`eval/goal_success_k4`;
    `eval_episodes` pairs each)."""
    phase: str = "all"
    """`all` continues every unfinished phase the agent declares, in order (most agents have one, `learn`;
    world_models has collect, vae, mdrnn, controller); naming one runs that phase alone, from scratch,
    resetting the phases after it, which depend on it. Not kept in the run's config.yaml."""
    stop_return: float | None = None
    """Stop early once an evaluation's mean return reaches this (None: train for all `steps`)."""
    log_every: int = positive(1000)
    """Env steps between metric logs."""
    checkpoint_every: int = non_negative(10_000)
    """Env steps between checkpoints (0: only at the end)."""
    keep_checkpoints: int = positive(2)
    """Complete checkpoints kept on disk; older ones are deleted."""
    threads: int = non_negative(0)
    """torch intra-op threads (0: torch's default)."""


@dataclass
class Config:
    agent: Spec = component("agent", "latent_mlp")
    """The algorithm and its own config."""
    env: EnvConfig = field(default_factory=EnvConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """`auto` takes CUDA when available."""
    preset: str = ""
    """The preset the run was made from (recorded by `load_config`; `wm train PRESET --resume` checks it)."""


# ---------------------------------------------------------------------------------------------- presets


def configs_dir() -> Path:
    """The preset folder: `$WM_CONFIGS`, else `configs/` in the source checkout."""
    if "WM_CONFIGS" in os.environ:
        return Path(os.environ["WM_CONFIGS"])
    return Path(__file__).resolve().parents[2] / "configs"


def preset_names() -> list[str]:
    return sorted(p.stem for p in configs_dir().glob("*.yaml"))


def read_preset(preset: str) -> dict[str, Any]:
    """The raw dict of a preset given by name (in `configs/`) or by path to a YAML file.

    A preset may start from another with `base: NAME`; its own values are laid over the base's.
    """
    path = Path(preset)
    if path.suffix not in (".yaml", ".yml"):
        path = configs_dir() / f"{preset}.yaml"
        if not path.exists():
            names = preset_names()
            raise ConfigError(f"unknown preset '{preset}'{closest(preset, names)}; presets: {', '.join(names)}")
    elif not path.exists():
        raise ConfigError(f"preset file '{preset}' does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"preset '{path}' is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"preset '{path}' must hold a mapping of keys to values")
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str) or base == preset:
        raise ConfigError(f"preset '{path}': `base` must name another preset, got {base!r}")
    return merge(read_preset(base), data)


def merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """`top` laid over `base`, recursively for nested mappings (a new component name drops the old options)."""
    out = dict(base)
    for key, value in top.items():
        below = out.get(key)
        same_component = not (
            isinstance(value, dict)
            and "name" in value
            and isinstance(below, dict)
            and below.get("name") != value["name"]
        )
        if isinstance(value, dict) and isinstance(below, dict) and same_component:
            out[key] = merge(below, value)
        else:
            out[key] = value
    return out


def apply_overrides(data: dict[str, Any], overrides: typing.Iterable[str]) -> dict[str, Any]:
    """Apply `a.b.c=value` strings (values read as YAML) to a nested dict, in place. Choices of component
    (`...name=`) go first: a new name drops the options given for the old component, as `merge` does."""
    for item in sorted(overrides, key=lambda item: not item.partition("=")[0].endswith(".name")):
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"bad override '{item}': expected key=value, e.g. train.steps=5000")
        try:
            value = yaml.safe_load(text) if text else ""
        except yaml.YAMLError:
            value = text
        set_dotted(data, key, value)
    return data


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    node = data
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"bad override '{key}': '{'.'.join(parts[: i + 1])}' is a value, not a section")
        node = child
    if parts[-1] == "name" and node.get("name", value) != value:
        node.clear()
    node[parts[-1]] = value


def load_config(preset: str | dict[str, Any] | None = None, overrides: typing.Iterable[str] = ()) -> Config:
    """Resolve a full `Config` from a preset (name, path or dict) and dotted overrides."""
    load_all()
    if preset is None:
        data: dict[str, Any] = {}
    elif isinstance(preset, dict):
        data = preset
    else:
        data = {**read_preset(preset), "preset": preset_id(preset)}
    name_components(data, Config)
    return parse(Config, apply_overrides(data, overrides))


def name_components(data: dict[str, Any], cls: type) -> None:
    """Write the default name into every component section of `data` that gives options without one, in
    place, so that a `...name=` override for another component drops those options (`set_dotted`)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        section = data.get(f.name)
        if not isinstance(section, dict):
            continue
        if "registry" in f.metadata:
            if f.metadata["default"] is not None:  # an optional slot names its component itself
                section.setdefault("name", f.metadata["default"])
            if section.get("name") in f.metadata["registry"]:
                name_components(section, f.metadata["registry"].get(section["name"]).Config)
        elif dataclasses.is_dataclass(hints.get(f.name)):
            name_components(section, hints[f.name])


def preset_id(preset: str) -> str:
    """How a run records its preset: the name of one in `configs/`, else the YAML file's absolute path."""
    path = Path(preset)
    if path.suffix not in (".yaml", ".yml"):
        return preset
    path = path.resolve()
    return path.stem if path.parent == configs_dir().resolve() else str(path)


def load_all() -> None:
    """Import every component package so that all registries are filled."""
    import worldmodels.agents  # noqa: F401  (imports every component package it builds on)


def save_config(cfg: Config, path: Path) -> None:
    path.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
