"""Video without actions: `wm record --no-actions` writes frames alone, a folder of clips (gif, npz) reads as
a dataset of frames, and agents that learn from actions refuse such data in one line naming the key."""

from __future__ import annotations

import numpy as np
import pytest

from worldmodels.cli import main
from worldmodels.data.episodes import dataset_specs, load_episode, read_index
from worldmodels.data.sources import OfflineSource, SampleSpec


@pytest.fixture(scope="module")
def frames_only(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "breakout"
    args = [
        "record",
        "minatar:Breakout",
        "env.obs=pixels",
        "--episodes",
        "3",
        "--max-steps",
        "12",
        "--out",
        str(out),
        "--no-actions",
    ]
    assert main(args) == 0
    return out


def test_record_without_actions_writes_frames_alone(frames_only):
    index = read_index(frames_only)
    assert index["keys"] == ["obs"] and index["env"]["id"] == "minatar:Breakout" and index["action"]["dim"] == 3
    episode = load_episode(frames_only / "episode_000000.npz")
    assert set(episode) == {"obs"} and episode["obs"].shape == (index["lengths"][0] + 1, 10, 10, 4)
    source = OfflineSource(frames_only, seed=0)
    assert not source.has_actions and dataset_specs(frames_only)[0].shape == (10, 10, 4)
    batch = source.sample(SampleSpec(2, 3, keys=("obs",)))
    assert batch["obs"].shape == (2, 3, 10, 10, 4) and batch["obs"].dtype == np.uint8


@pytest.mark.parametrize("preset", ["latent_mlp", "iris_tiny"])
def test_agents_that_learn_from_actions_refuse_frames_alone_in_one_line(frames_only, tmp_path, capsys, preset):
    run = tmp_path / "run"
    assert main(["train", preset, f"train.offline={frames_only}", "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "learns from 'action'" in err and "--no-actions" in err and not run.exists()


def test_a_folder_of_clips_is_a_dataset_of_frames(tmp_path):
    import imageio.v2 as imageio

    rng = np.random.default_rng(0)
    clips = [rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8) for n in (5, 7)]
    imageio.mimsave(tmp_path / "a.gif", list(clips[0]), duration=50, loop=0)
    np.savez(tmp_path / "b.npz", frames=clips[1])
    source = OfflineSource(tmp_path, seed=0)
    assert source.index["lengths"] == [4, 6] and source.index["env"] is None and not source.has_actions
    obs_spec, act_spec = dataset_specs(tmp_path)
    assert obs_spec.shape == (8, 8, 3) and obs_spec.dtype == "uint8" and act_spec.dim == 0
    np.testing.assert_array_equal(source.data["obs"][5:], clips[1])  # npz frames exactly
    assert np.abs(source.data["obs"][:5].astype(int) - clips[0]).mean() < 40  # gif: a 256-colour palette
    batch = source.sample(SampleSpec(3, 5, keys=("obs",)))
    assert batch["obs"].shape == (3, 5, 8, 8, 3)
    np.savez(tmp_path / "c.npz", frames=clips[1][:, :4])
    with pytest.raises(Exception, match="differ in frame size"):
        OfflineSource(tmp_path, seed=0)


def test_genie_learns_from_a_folder_of_clips_with_no_environment(tmp_path, capsys):
    rng = np.random.default_rng(0)
    clips, held_out = tmp_path / "clips", tmp_path / "held_out"
    for folder, n in ((clips, 4), (held_out, 2)):
        folder.mkdir()
        for i in range(n):
            np.savez(folder / f"clip_{i}.npz", frames=(rng.random((8, 10, 10, 4)) < 0.2).astype(np.uint8) * 255)
    run = tmp_path / "run"
    assert main(["train", "genie_tiny", "env.id=NoSuchEnv-v0", f"train.offline={clips}", "--run-dir", str(run)]) == 0
    capsys.readouterr()
    assert main(["eval", str(run), "--delta-psnr"]) == 2
    assert "--data" in capsys.readouterr().err
    assert main(["eval", str(run), "--delta-psnr", "--data", str(held_out)]) == 0
    assert "eval/delta_psnr" in capsys.readouterr().out
