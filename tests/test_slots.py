"""Every registered name of every kind, put into every slot of that kind in a real agent: it either trains
(one act and at least one update, in the state or the pixel version of a tiny environment), or it is
refused when the config is read, with the one line that lists the names that fit. A name never passes the
slot's contract and then fails to run, nor fails the contract and would have run."""

from __future__ import annotations

import dataclasses

import pytest

from tests.conftest import TINY as TINY_LATENT
from tests.test_dreamer import TINY_DREAMER
from tests.test_muzero import TINY_MUZERO
from tests.test_pets import TINY as TINY_PETS
from tests.test_planet import TINY_PLANET
from tests.test_tdmpc2 import TINY as TINY_TDMPC2
from worldmodels.config import load_all, load_config
from worldmodels.errors import ConfigError
from worldmodels.registry import AGENTS
from worldmodels.train import Trainer

load_all()

DISCRETE, CONTINUOUS = "wm/Dummy-v0", "wm/DummyContinuous-v0"
PRESETS = {  # preset → (its tiny overrides, the environments of the action spaces it covers)
    "latent_mlp": (TINY_LATENT, (DISCRETE, CONTINUOUS)),
    "dreamerv3": (TINY_DREAMER, (DISCRETE, CONTINUOUS)),
    "planet": (TINY_PLANET, (DISCRETE, CONTINUOUS)),
    "pets": (TINY_PETS, (CONTINUOUS,)),
    "muzero": (TINY_MUZERO, (DISCRETE,)),
    "tdmpc2": (TINY_TDMPC2, (CONTINUOUS,)),
}
ACTORS = {"discrete_actor": (DISCRETE,), "continuous_actor": (CONTINUOUS,)}  # each used in its own space only
RUN = [
    "train.steps=24",
    "train.prefill=12",
    "train.batch_size=2",
    "train.seq_len=8",
    "train.ratio=16",
    "train.eval_every=0",
    "train.eval_episodes=1",
    "train.checkpoint_every=0",
    "train.threads=1",
    "env.max_episode_steps=10",
    "env.size=[16, 16]",
    "env.num_envs=1",
    "env.action_repeat=1",
]


def _slots() -> list[tuple[str, str, object, object]]:
    """(preset, slot, registry, contract) for every component field of every agent under test (optional ones
    too), and for the fields of another kind inside its default component (the RSSM's backbone)."""
    out = []
    for preset in PRESETS:
        agent = load_config(preset, []).agent.name
        for f in dataclasses.fields(AGENTS.get(agent).Config):
            if "registry" not in f.metadata:
                continue
            out.append((preset, f.name, f.metadata["registry"], f.metadata["contract"]))
            parent = f.metadata["registry"]
            if f.metadata["default"] is None:  # an optional slot: no default component to look inside
                continue
            for inner in dataclasses.fields(parent.get(f.metadata["default"]).Config):
                if "registry" in inner.metadata and inner.metadata["registry"] is not parent:
                    slot = f"{f.name}.{inner.name}"
                    out.append((preset, slot, inner.metadata["registry"], inner.metadata["contract"]))
    return out


def _spec(cfg: object, slot: str):
    """The component Spec at `slot` ("rssm", "rssm.backbone") of an agent's config."""
    first, *inner = slot.split(".")
    spec = getattr(cfg, first)
    for part in inner:
        spec = getattr(spec.cfg, part)
    return spec


CASES = [
    pytest.param(preset, slot, name, name in registry.names(contract), id=f"{preset}.{slot}={name}")
    for preset, slot, registry, contract in _slots()
    for name in registry.names()
]


def _runs(preset: str, overrides: list[str], envs: tuple[str, ...], tmp_path) -> list[str]:
    """Why the agent trains with `overrides` on none of `envs` with state or pixel observations (empty
    when it trains on one of them)."""
    why = []
    for env in envs:
        for obs in ("state", "pixels"):
            run = tmp_path / f"{env.replace('/', '_')}-{obs}"
            try:
                trainer = Trainer(load_config(preset, [*overrides, f"env.id={env}", f"env.obs={obs}"]), run)
            except ConfigError as err:  # the component does not take this kind of observation or action
                why.append(f"{env} {obs}: {err}")
                continue
            try:
                if trainer.run()["updates"] > 0:
                    return []
                why.append(f"{env} {obs}: no update")
            finally:
                trainer.close()
    return why


@pytest.mark.parametrize("preset, slot, name, fits", CASES)
def test_every_name_fills_every_slot_of_its_kind_or_is_refused_in_one_line(preset, slot, name, fits, tmp_path):
    tiny, envs = PRESETS[preset]
    envs = ACTORS.get(slot, envs)
    current = _spec(load_config(preset, tiny).agent.cfg, slot)  # None: an optional slot left empty
    if current is None or name != current.name:  # the tiny options are the old one's
        tiny = [o for o in tiny if not o.startswith((f"agent.{slot}.", f"agent.{slot}="))]
    overrides = [*tiny, *RUN, f"agent.{slot}.name={name}"]
    if not fits:
        with pytest.raises(ConfigError, match=f"at 'agent.{slot}.name'|cannot fill 'agent.{slot}'") as err:
            load_config(preset, overrides)
        assert "valid: " in str(err.value) and "\n" not in str(err.value)
        return
    why = _runs(preset, overrides, envs, tmp_path)
    assert not why, f"{name} fits agent.{slot} of {preset} but ran nowhere: {why}"
