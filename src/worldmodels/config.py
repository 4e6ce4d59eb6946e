"""Typed configuration: dataclass schemas, YAML presets and dotted command-line overrides.

A run's config resolves in three layers: dataclass defaults <- preset YAML <- `key=value` overrides.
Every key is a dataclass field; an unknown key, a wrong type or a bad value raises `ConfigError`
naming the dotted key and what was expected.

A registered component appears in YAML as its name plus its own config, flattened:

    encoder: {name: mlp, hidden: 256}
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from worldmodels.errors import ConfigError, closest
from worldmodels.registry import REGISTRIES


@dataclass
class Spec:
    """A registered component chosen by name, with its own typed config."""

    name: str
    cfg: Any


def component(kind: str, name: str, **cfg: Any) -> Any:
    """A dataclass field holding a `Spec` for a component of `kind`, `name` by default."""

    def default() -> Spec:
        return Spec(name, parse(REGISTRIES[kind].get(name).Config, cfg, f"{kind}.{name}"))

    return field(default_factory=default, metadata={"kind": kind, "default": name, "options": cfg})


def param(default: Any, check: typing.Callable[[Any], bool], expect: str) -> Any:
    """A dataclass field whose value must satisfy `check`; `expect` says what is allowed."""
    kw = {"default_factory": lambda: list(default)} if isinstance(default, list) else {"default": default}
    return field(**kw, metadata={"check": check, "expect": expect})


def positive(default: float) -> Any:
    return param(default, lambda v: v > 0, "a number > 0")


def non_negative(default: float) -> Any:
    return param(default, lambda v: v >= 0, "a number >= 0")


def unit(default: float) -> Any:
    return param(default, lambda v: 0 <= v <= 1, "a number in [0, 1]")


# ---------------------------------------------------------------------------------------------- schemas


@dataclass
class EnvConfig:
    id: str = "CartPole-v1"
    """Gymnasium id; later suites use prefixes (`dmc:`, `atari:`)."""
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
    action_repeat: int = positive(1)
    """Each agent action is applied this many times; rewards are summed (Atari: the frame skip)."""
    max_episode_steps: int | None = None
    """Override of the environment's time limit, in agent steps."""
    camera: int | None = None
    """dm_control camera id (None: the usual one for the domain)."""
    render_effects: bool = False
    """dm_control: draw shadows and reflections (the standard look; ~3× slower on a CPU renderer)."""
    sticky_actions: float = unit(0.25)
    """Atari: probability that the previous action is repeated instead of the chosen one."""
    noop_max: int = non_negative(30)
    """Atari: at most this many no-op actions at the start of an episode."""


@dataclass
class TrainConfig:
    steps: int = positive(50_000)
    """Environment steps (action repeat included)."""
    seed: int = 0
    """Seeds every random source: torch, numpy, the replay sampler and the environments."""
    ratio: float = non_negative(32.0)
    """Replayed steps per agent step: updates = agent steps * ratio / (batch_size * seq_len)."""
    prefill: int = non_negative(1000)
    """Env steps collected with uniformly random actions before learning starts."""
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


# ---------------------------------------------------------------------------------------------- parsing


def parse(cls: type, data: dict[str, Any], path: str = "") -> Any:
    """Build dataclass `cls` from a plain dict, checking every key, type and value."""
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'config'}: expected a mapping of keys to values, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in known:
            raise ConfigError(
                f"unknown config key '{_join(path, key)}'{closest(str(key), known)}; "
                f"valid keys here: {', '.join(known)}"
            )
    kwargs = {}
    for name, f in known.items():
        if name not in data:
            continue
        key = _join(path, name)
        value = _convert(hints[name], data[name], key, f.metadata)
        check = f.metadata.get("check")
        if check is not None and not check(value):
            raise ConfigError(f"bad value for '{key}': expected {f.metadata['expect']}, got {value!r}")
        kwargs[name] = value
    return cls(**kwargs)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else str(key)


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        return f"a list of {_describe(typing.get_args(tp)[0])}"
    if tp is type(None):
        return "null"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(tp, str(tp))


def _convert(tp: Any, value: Any, key: str, meta: typing.Mapping[str, Any]) -> Any:
    """Convert a YAML value to type `tp`, or raise a ConfigError naming `key`."""
    fail = ConfigError(f"bad value for '{key}': expected {_describe(tp)}, got {value!r}")
    origin = typing.get_origin(tp)
    if tp is Spec:
        return _convert_spec(meta["kind"], meta.get("default"), meta.get("options", {}), value, key)
    if dataclasses.is_dataclass(tp):
        return parse(tp, value, key)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, key, meta)
            except ConfigError:
                pass
        raise fail
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            hint = closest(str(value), map(str, choices))
            raise ConfigError(f"bad value for '{key}': expected {_describe(tp)}, got {value!r}{hint}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise fail
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise fail
            return tuple(_convert(a, v, key, {}) for a, v in zip(args, value))
        items = [_convert(args[0], v, key, {}) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise fail
        value_type = typing.get_args(tp)[1]
        return {str(k): _convert(value_type, v, f"{key}.{k}", {}) for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise fail
        return value
    if tp is int:
        if isinstance(value, str):
            value = _number(value, fail)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise fail
        return int(value)
    if tp is float:
        if isinstance(value, str):
            value = _number(value, fail)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise fail
        return value
    if tp is Any:
        return value
    raise TypeError(f"config field '{key}' has a type the parser does not know: {tp}")


def _number(text: str, fail: ConfigError) -> float:
    # YAML 1.1 reads `3e-4` as a string; accept it as the number the user meant.
    try:
        return float(text)
    except ValueError:
        raise fail from None


def _convert_spec(kind: str, default: str | None, options: dict[str, Any], value: Any, key: str) -> Spec:
    """A component from `{name, <its options>}`. For the field's default component, options given here
    are applied over the field's own defaults (so `agent.planner.population=100` keeps the agent's horizon)."""
    if isinstance(value, str):
        value = {"name": value}
    if isinstance(value, dict) and "name" not in value and default is not None:
        value = {"name": default, **value}
    if not isinstance(value, dict) or "name" not in value:
        raise ConfigError(f"bad value for '{key}': expected {kind} as {{name: ..., <its options>}}, got {value!r}")
    registry = REGISTRIES[kind]
    name = value["name"]
    if name not in registry:
        valid = ", ".join(registry.names())
        raise ConfigError(
            f"unknown {kind} '{name}' at '{key}.name'{closest(str(name), registry.names())}; valid: {valid}"
        )
    if default is not None and name != default and name not in registry.fitting(default):
        raise ConfigError(
            f"{kind} '{name}' cannot fill '{key}': this slot builds a {kind} like '{default}' "
            f"(from {registry.signature(default) or 'its config alone'}), '{name}' is built from "
            f"{registry.signature(name) or 'its config alone'}; "
            f"names that fit: {', '.join(registry.fitting(default))}"
        )
    rest = {k: v for k, v in value.items() if k != "name"}
    valid_options = [f.name for f in dataclasses.fields(registry.get(name).Config)]
    for option in rest:
        if option not in valid_options:
            raise ConfigError(
                f"'{key}.{option}' is not an option of {kind} '{name}'{closest(str(option), valid_options)}; "
                f"its options: {', '.join(valid_options)} (options of another {kind} do not carry over)"
            )
    if name == default:
        rest = {**options, **rest}
    return Spec(name, parse(registry.get(name).Config, rest, key))


def to_dict(obj: Any) -> Any:
    """A plain, YAML-ready view of a config (specs flattened to `{name, ...}`)."""
    if isinstance(obj, Spec):
        return {"name": obj.name, **to_dict(obj.cfg)}
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


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
    from worldmodels.registry import load_all

    load_all()
    if preset is None:
        data: dict[str, Any] = {}
    elif isinstance(preset, dict):
        data = preset
    else:
        data = {**read_preset(preset), "preset": preset_id(preset)}
    return parse(Config, apply_overrides(data, overrides))


def preset_id(preset: str) -> str:
    """How a run records its preset: the name of one in `configs/`, else the YAML file's absolute path."""
    path = Path(preset)
    if path.suffix not in (".yaml", ".yml"):
        return preset
    path = path.resolve()
    return path.stem if path.parent == configs_dir().resolve() else str(path)


def save_config(cfg: Config, path: Path) -> None:
    path.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
