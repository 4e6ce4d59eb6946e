from dataclasses import dataclass
from typing import Protocol

import pytest

from worldmodels.config import load_all
from worldmodels.errors import ConfigError
from worldmodels.registry import ENCODERS, REGISTRIES, Registry


class Widget(Protocol):
    def forward(self, x): ...


class Spinner(Widget, Protocol):
    def spin(self, x, speed): ...


def test_every_kind_has_a_registry():
    assert set(REGISTRIES) == {
        "encoder",
        "decoder",
        "representation",
        "representation_learner",
        "autoencoder",
        "dynamics",
        "rssm",
        "backbone",
        "memory",
        "tokenizer",
        "token_model",
        "latent_action",
        "masked_dynamics",
        "denoiser",
        "network",
        "reward",
        "continue",
        "value",
        "policy",
        "planner",
        "search",
        "agent",
    }


def test_an_entry_built_from_other_arguments_than_its_kind_s_is_refused_at_registration():
    reg = Registry("widget", "in_dim", contract=Widget)

    @dataclass
    class Options:
        size: int = 1

    class Fits:
        Config = Options

        def __init__(self, cfg, in_dim): ...

        def forward(self, x): ...

    class Other:
        Config = Options

        def __init__(self, cfg, obs_shape): ...

        def forward(self, x): ...

    reg.register("fits")(Fits)
    with pytest.raises(TypeError, match=r"built from \(obs_shape\), but every widget is built from \(cfg, in_dim\)"):
        reg.register("other")(Other)
    assert reg.names() == ["fits"]


def test_unknown_name_lists_valid_names_and_closest_match():
    load_all()
    with pytest.raises(ConfigError) as err:
        ENCODERS.get("mpl")
    assert "unknown encoder 'mpl'" in str(err.value)
    assert "did you mean 'mlp'" in str(err.value)
    assert "valid: cnn, impala, mlp, multi, vit" in str(err.value)


def test_register_build_and_errors():
    reg = Registry("widget", "scale", contract=Widget)

    @reg.register("box")
    class Box:
        @dataclass
        class Config:
            size: int = 3

        def __init__(self, cfg, scale):
            self.cfg, self.scale = cfg, scale

        def forward(self, x): ...

    built = reg.build("box", {"size": 5}, scale=2)
    assert (built.cfg.size, built.scale) == (5, 2)
    assert reg.build("box", None, scale=1).cfg.size == 3
    with pytest.raises(ConfigError, match="unknown config key 'widget.box.sise'.*did you mean 'size'"):
        reg.build("box", {"sise": 5}, scale=1)
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("box")(Box)
    with pytest.raises(TypeError, match="needs a `Config` dataclass"):
        reg.register("plain")(type("Plain", (), {}))


def test_an_entry_without_its_kind_s_contract_is_refused_and_a_slot_s_contract_narrows_the_names():
    reg = Registry("widget", contract=Widget)

    @dataclass
    class Options:
        size: int = 1

    def entry(*methods):
        def init(self, cfg): ...

        return type(
            "Entry", (), {"Config": Options, "__init__": init, **{m: lambda self, x, speed=1: x for m in methods}}
        )

    reg.register("plain")(entry("forward"))
    reg.register("spinner")(entry("forward", "spin"))
    with pytest.raises(
        TypeError, match=r"widget 'mute' \(Entry\) does not satisfy the widget contract: no method forward"
    ):
        reg.register("mute")(entry("spin"))

    def two(self, a, b): ...

    with pytest.raises(TypeError, match=r"forward\(\) takes \(a, b\), not 1 arguments"):
        reg.register("greedy")(
            type("Entry", (), {"Config": Options, "__init__": lambda self, cfg: None, "forward": two})
        )
    assert reg.names() == ["plain", "spinner"] and reg.names(Spinner) == ["spinner"]
    assert reg.unfit("plain", Spinner) == ["no method spin()"]
