"""Every agent runs on every suite and observation mode: a few hundred steps, an evaluation, a dream."""

import pytest

from tests.test_envs import needs
from worldmodels.cli import main
from worldmodels.train import Trainer

SUITES = [
    pytest.param("wm/Dummy-v0", "pixels", 1, id="dummy-pixels"),
    pytest.param("wm/DummyContinuous-v0", "both", 1, id="dummy-dict"),
    pytest.param("dmc:cartpole-swingup", "state", 2, id="dmc-state", marks=needs["dmc"]),
    pytest.param("dmc:cartpole-swingup", "pixels", 2, id="dmc-pixels", marks=needs["dmc"]),
    pytest.param("atari:Pong", "pixels", 4, id="atari", marks=needs["atari"]),
    pytest.param("minatar:Breakout", "pixels", 1, id="minatar", marks=needs["minatar"]),
]


@pytest.mark.parametrize("env_id, obs, repeat", SUITES)
def test_latent_mlp_runs_on_every_suite(tiny, tmp_path, env_id, obs, repeat):
    cfg = tiny(
        f"env.obs={obs}",
        f"env.action_repeat={repeat}",
        "env.max_episode_steps=30",
        "env.size=[32, 32]",
        f"train.steps={100 * repeat}",
        f"train.prefill={40 * repeat}",
        "train.eval_every=0",
        env=env_id,
    )
    trainer = Trainer(cfg, tmp_path / "run")
    summary = trainer.run()
    trainer.close()
    assert summary["updates"] > 0 and "eval/return" in summary
    assert main(["dream", str(tmp_path / "run"), "--horizon", "8"]) == 0
    assert (tmp_path / "run" / ("dream.png" if obs == "state" else "dream.gif")).exists()


def _train_and_dream(tmp_path, preset, tiny_overrides, env_id, obs, repeat):
    """A few dozen agent steps of an RSSM agent on one suite, then `wm dream`."""
    from worldmodels.config import load_config

    overrides = [
        *tiny_overrides,
        f"env.id={env_id}",
        f"env.obs={obs}",
        f"env.action_repeat={repeat}",
        "env.max_episode_steps=30",
        "env.size=[32, 32]",
        f"train.steps={60 * repeat}",
        f"train.prefill={30 * repeat}",
        "train.batch_size=2",
        "train.seq_len=8",
        "train.ratio=16",
        "train.eval_episodes=1",
        "train.eval_every=0",
        "train.threads=1",
    ]
    trainer = Trainer(load_config(preset, overrides), tmp_path / "run")
    summary = trainer.run()
    trainer.close()
    assert summary["updates"] > 0 and "eval/return" in summary
    assert main(["dream", str(tmp_path / "run"), "--horizon", "6"]) == 0
    assert (tmp_path / "run" / ("dream.png" if obs == "state" else "dream.gif")).exists()


@pytest.mark.parametrize("env_id, obs, repeat", [SUITES[1], SUITES[3], SUITES[4], SUITES[5]])
def test_dreamer_runs_on_pixel_and_dict_suites(tmp_path, env_id, obs, repeat):
    from tests.test_dreamer import TINY_DREAMER

    _train_and_dream(tmp_path, "dreamerv3", TINY_DREAMER, env_id, obs, repeat)


@pytest.mark.parametrize("env_id, obs, repeat", SUITES)
def test_planet_runs_on_every_suite(tmp_path, env_id, obs, repeat):
    """Discrete actions (Dummy, Atari) are planned with CEM's categorical mode."""
    from tests.test_planet import TINY_PLANET

    _train_and_dream(tmp_path, "planet", TINY_PLANET, env_id, obs, repeat)


def test_muzero_runs_on_atari_frames(tmp_path):
    pytest.importorskip("ale_py", reason="ale-py not installed (pip install -e '.[atari]')")
    from worldmodels.config import load_config

    overrides = [
        "agent.network.channels=8",
        "agent.network.blocks=1",
        "agent.network.head_channels=4",
        "agent.network.head_hidden=16",
        "agent.network.value_support=20",
        "agent.network.reward_support=20",
        "agent.search.num_simulations=4",
        "agent.unroll_steps=2",
        "agent.td_steps=3",
        "agent.reanalyse=0.5",
        "env.num_envs=1",
        "env.size=[32, 32]",
        "env.max_episode_steps=30",
        "train.steps=320",
        "train.batch_size=4",
        "train.seq_len=7",
        "train.ratio=28",
        "train.eval_episodes=1",
        "train.eval_every=0",
        "train.threads=1",
    ]
    trainer = Trainer(load_config("muzero_atari", overrides), tmp_path / "run")
    summary = trainer.run()
    trainer.close()
    assert summary["updates"] > 0 and "eval/return" in summary


def test_pets_runs_on_dm_control(tmp_path):
    pytest.importorskip("dm_control", reason="dm_control not installed (pip install -e '.[dmc]')")
    from worldmodels.config import load_config

    overrides = [
        "agent.known_task=none",
        "agent.dynamics.hidden=16",
        "agent.dynamics.members=2",
        "agent.particles=2",
        "agent.planner.horizon=3",
        "agent.planner.population=16",
        "agent.planner.elites=4",
        "agent.planner.iterations=2",
        "env.id=dmc:cartpole-balance",
        "env.action_repeat=4",
        "env.max_episode_steps=15",
        "train.steps=160",
        "train.prefill=80",
        "train.eval_episodes=1",
        "train.eval_every=0",
    ]
    trainer = Trainer(load_config("pets", overrides), tmp_path / "run")
    summary = trainer.run()
    trainer.close()
    assert summary["updates"] > 0 and "eval/return" in summary


@pytest.mark.parametrize(
    "preset, overrides, message",
    [
        ("muzero", ["env.id=Pendulum-v1"], "muzero' needs a discrete action space"),
        ("pets", ["env.id=wm/DummyContinuous-v0", "env.obs=pixels"], "pets plans on state vectors"),
        ("planet", ["env.id=wm/Dummy-v0", "agent.planner.name=icem"], "icem plans continuous actions only"),
    ],
)
def test_agents_refuse_spaces_their_method_does_not_cover(tmp_path, capsys, preset, overrides, message):
    assert main(["train", preset, *overrides, "--run-dir", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "env_id, repeat",
    [
        pytest.param("dmc:cartpole-swingup", 2, id="dmc-pixels", marks=needs["dmc"]),
        pytest.param("atari:Pong", 4, id="atari", marks=needs["atari"]),
    ],
)
def test_world_models_runs_on_dm_control_and_atari_frames(tmp_path, env_id, repeat):
    from tests.test_world_models import TINY

    run = tmp_path / "run"
    overrides = [o for o in TINY if not o.startswith("env.id=")]
    assert (
        main(
            [
                "train",
                "world_models",
                *overrides,
                f"env.id={env_id}",
                f"env.action_repeat={repeat}",
                "--run-dir",
                str(run),
            ]
        )
        == 0
    )
    assert (run / "reconstructions.png").exists()
    assert main(["dream", str(run), "--horizon", "4"]) == 0 and (run / "dream.gif").exists()
