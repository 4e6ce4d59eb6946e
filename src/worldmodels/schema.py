"""The typed schema language of every config: validated fields, component choices (`Spec`) and the
parser that builds a dataclass from plain YAML data, checking every key, type and value.

It imports nothing of the package but its errors, so every layer (components, environments, agents,
the run's config) can declare its options with it. A component field's metadata carries the registry
it chooses from (`registry.component`), which is all the parser needs to know about registries.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Union

from worldmodels.errors import ConfigError, closest


@dataclass
class Spec:
    """A registered component chosen by name, with its own typed config."""

    name: str
    cfg: Any


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
        return _convert_spec(meta, value, key)
    if dataclasses.is_dataclass(tp):
        return parse(tp, value, key)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        if Spec in args:  # an optional component: its own errors, not "expected Spec or null"
            return _convert_spec(meta, value, key)
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


def _convert_spec(meta: typing.Mapping[str, Any], value: Any, key: str) -> Spec:
    """A component from `{name, <its options>}`, one of the names of the field's registry that fit its
    contract. For the field's default component, options given here are applied over the field's own
    defaults (so `agent.planner.population=100` keeps the agent's horizon)."""
    registry, default, options = meta["registry"], meta.get("default"), meta.get("options", {})
    kind, fit = registry.kind, registry.names(meta.get("contract"))
    if isinstance(value, str):
        value = {"name": value}
    if isinstance(value, dict) and "name" not in value and default is not None:
        value = {"name": default, **value}
    if not isinstance(value, dict) or "name" not in value:
        raise ConfigError(f"bad value for '{key}': expected {kind} as {{name: ..., <its options>}}, got {value!r}")
    name = value["name"]
    if name not in registry:
        raise ConfigError(f"unknown {kind} '{name}' at '{key}.name'{closest(str(name), fit)}; valid: {', '.join(fit)}")
    if name not in fit:
        lacks = "; ".join(registry.unfit(name, meta["contract"]))
        raise ConfigError(f"{kind} '{name}' cannot fill '{key}' ({lacks}); valid: {', '.join(fit)}")
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
