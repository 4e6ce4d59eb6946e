"""Offline data: `wm record` writes a dataset; a model learns from it alone and resumes exactly."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from tests.conftest import TINY, assert_resumes_exactly
from worldmodels.cli import main
from worldmodels.config import load_config
from worldmodels.data.episodes import load_episode, read_index
from worldmodels.data.sources import OfflineSource, SampleSpec
from worldmodels.data.windows import Ends
from worldmodels.train import Trainer
from worldmodels.train.evaluate import open_loop_errors

OFFLINE = [*TINY, "train.eval_every=0", "train.log_every=10", "train.batch_size=8"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "cartpole"
    assert main(["record", "CartPole-v1", "--episodes", "6", "--out", str(out), "--seed", "3"]) == 0
    return out


def test_record_writes_episodes_in_replay_layout_with_an_index(dataset, tmp_path):
    index = read_index(dataset)
    assert index["env"]["id"] == "CartPole-v1" and len(index["lengths"]) == 6
    episode = load_episode(dataset / "episode_000002.npz")
    steps = index["lengths"][2]
    assert episode["obs"].shape == (steps + 1, 4) and episode["action"].shape == (steps + 1, 2)
    assert not episode["action"][0].any() and (episode["action"][1:].sum(1) == 1).all()  # one-hot after the first
    assert episode["reward"].sum() == pytest.approx(index["returns"][2])
    assert episode["is_terminal"][-1] == (steps < 500) and not episode["is_terminal"][:-1].any()
    again = tmp_path / "again"
    assert main(["record", "CartPole-v1", "--episodes", "6", "--out", str(again), "--seed", "3"]) == 0
    assert json.loads((again / "dataset.json").read_text())["lengths"] == index["lengths"]  # same seed, same data


def test_recording_into_a_dataset_or_reading_a_folder_that_is_none_is_one_line(dataset, tmp_path, capsys):
    assert main(["record", "CartPole-v1", "--episodes", "1", "--out", str(dataset)]) == 2
    assert "already holds a dataset" in capsys.readouterr().err
    assert main(["record", "NoSuch-v0", "--out", str(tmp_path / "none")]) == 2
    assert "unknown environment id 'NoSuch-v0'" in capsys.readouterr().err and not (tmp_path / "none").exists()
    assert main(["train", "latent_mlp", f"train.offline={tmp_path}", "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "not a recorded dataset" in err and "wm record" in err and not (tmp_path / "run").exists()


def test_a_damaged_dataset_is_one_line_naming_the_file(dataset, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(dataset, copy)
    (copy / "episode_000001.npz").write_bytes(b"not an npz")
    assert main(["train", "latent_mlp", f"train.offline={copy}", "--run-dir", str(tmp_path / "run")]) != 0
    err = capsys.readouterr().err.strip()
    assert "episode_000001.npz' cannot be read" in err and "\n" not in err
    (copy / "dataset.json").write_text('{"env": {}}')
    assert main(["train", "latent_mlp", f"train.offline={copy}", "--run-dir", str(tmp_path / "run")]) != 0
    assert "the index lacks action, lengths, returns" in capsys.readouterr().err


def test_offline_windows_stay_inside_one_episode(dataset):
    source = OfflineSource(dataset, seed=0)
    batch = source.sample(SampleSpec(64, 12))
    assert batch["obs"].shape == (64, 12, 4)
    assert not batch["is_first"][:, 1:].any()  # an episode's first step only ever opens a window
    assert not batch["is_terminal"][:, :-1].any()  # and its end only ever closes one
    only = source.sample(SampleSpec(4, 3, keys=("obs", "action")))
    assert set(only) == {"obs", "action"}
    ending = source.sample(SampleSpec(8, 12, ends=Ends(0.5)))  # half of them end at a termination (6 held)
    assert ending["is_terminal"][4:, -1].all() and ending["is_terminal"][:, -1].mean() < 1


def test_a_model_learns_from_a_recorded_dataset_alone(dataset, tmp_path):
    cfg = load_config("latent_mlp", [*OFFLINE, f"train.offline={dataset}", "train.steps=200"])
    cfg.env.id = "Pendulum-v1"  # replaced by the dataset's environment
    trainer = Trainer(cfg, tmp_path / "run")
    summary = trainer.run()
    trainer.close()
    assert trainer.cfg.env.id == "CartPole-v1" and summary["updates"] == 200 and "eval/return" in summary
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    model = [x["world_model/recon"] for x in lines if "world_model/recon" in x]
    assert np.mean(model[-3:]) < 0.7 * np.mean(model[:3]), model


def test_offline_training_resumes_exactly(dataset, tmp_path):
    assert_resumes_exactly("latent_mlp", [*OFFLINE, f"train.offline={dataset}"], tmp_path, steps=40)


def test_an_agent_that_needs_its_own_acting_records_refuses_offline_data(dataset, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "muzero", f"train.offline={dataset}", "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err
    assert "cannot learn from an offline dataset" in err and "drop train.offline" in err and not run.exists()


def test_an_offline_model_is_measured_by_its_open_loop_error(dataset, tmp_path):
    """`train.evaluate=open_loop`: the model's prediction error on unseen random episodes falls as it learns."""
    overrides = [*OFFLINE, f"train.offline={dataset}", "train.evaluate=open_loop", "train.eval_episodes=3"]
    trainer = Trainer(load_config("latent_mlp", [*overrides, "train.steps=300"]), tmp_path / "run")
    untrained = trainer.evaluator(7)
    assert trainer.evaluator(7) == untrained  # the same episodes, measured the same way
    summary = trainer.run()
    trainer.close()
    assert "eval/return" not in summary
    assert summary["eval/open_loop_mse"] < 0.7 * untrained["eval/open_loop_mse"], (summary, untrained)
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "eval/open_loop_mse" in x] == [300]


def test_open_loop_evaluation_needs_a_model_that_predicts_observations(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "tdmpc2", "env.id=Pendulum-v1", "train.evaluate=open_loop", "--run-dir", str(run)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "has no observation decoder to predict with; use train.evaluate=returns" in err and not run.exists()


def test_open_loop_errors_by_horizon_beside_copying_the_last_frame():
    """Cells wrong at the h-th imagined step, for the model and for repeating the last real frame."""
    torch.manual_seed(0)
    real = (torch.rand(16, 10, 10, 4) < 0.1).to(torch.uint8) * 255  # MinAtar-like 0/255 cells, [T, H, W, C]
    predicted = real.clone()
    predicted[5, 0, 0, 0] = 255 - predicted[5, 0, 0, 0]  # one cell wrong at h = 1 (context 5)
    predicted[9] = 0  # h = 5: an empty frame
    errors = open_loop_errors(real, predicted, context=5)
    assert errors["eval/open_loop_wrong_h1"] == pytest.approx(1 / 100) and errors["eval/open_loop_wrong_h10"] == 0
    assert errors["eval/open_loop_wrong_h5"] == pytest.approx((real[9] > 0).any(-1).float().mean().item())
    for h in (1, 5, 10):
        copied = (real[4 + h] != real[4]).any(-1).float().mean().item()  # cells with any channel changed
        assert errors[f"eval/copy_last_wrong_h{h}"] == pytest.approx(copied)
    assert errors["eval/open_loop_mse_h10"] == 0.0 and errors["eval/open_loop_mse"] > 0
    assert errors["eval/reconstruction_wrong"] == 0.0  # the context frames, as the model renders them
    short = open_loop_errors(real[:8], predicted[:8], context=5)  # 3 imagined steps: only h = 1
    assert "eval/open_loop_wrong_h1" in short and "eval/open_loop_wrong_h5" not in short
    assert "eval/open_loop_wrong_h1" not in open_loop_errors(real.float(), predicted.float(), context=5)  # vectors
