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


@pytest.mark.parametrize("env_id, obs, repeat", [SUITES[1], SUITES[3], SUITES[4]])
def test_dreamer_runs_on_pixel_and_dict_suites(tmp_path, env_id, obs, repeat):
    from tests.test_dreamer import TINY_DREAMER
    from worldmodels.config import load_config

    overrides = [
        *TINY_DREAMER,
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
    trainer = Trainer(load_config("dreamerv3", overrides), tmp_path / "run")
    summary = trainer.run()
    trainer.close()
    assert summary["updates"] > 0 and "eval/return" in summary
    assert main(["dream", str(tmp_path / "run"), "--horizon", "6"]) == 0
    assert (tmp_path / "run" / ("dream.png" if obs == "state" else "dream.gif")).exists()
