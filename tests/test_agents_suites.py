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
