"""Genie: the spatiotemporal tokenizer is causal in time, the latent action model reports and revives its
codebook, MaskGIT decodes on the cosine schedule and masks as the paper, and the agent trains its phases
from frames alone and resumes exactly."""

from __future__ import annotations

import json
import math

import imageio.v2 as imageio
import numpy as np
import pytest
import torch

from worldmodels.api import load_agent
from worldmodels.cli import main
from worldmodels.config import load_config
from worldmodels.data.episodes import load_dataset
from worldmodels.dynamics.maskgit import decode, still_masked, training_mask
from worldmodels.registry import LATENT_ACTIONS, MASKED_DYNAMICS, TOKENIZERS
from worldmodels.spaces import ActSpec, ObsSpec
from worldmodels.train import Trainer
from worldmodels.train.controllability import action_agreement, psnr
from worldmodels.train.latent_bc import action_map
from worldmodels.train.loop import build_agent

FRAME = ObsSpec((10, 10, 4), "uint8")
SMALL = {"layers": 1, "heads": 2, "dim": 16, "embed_dim": 8, "patch": 2}


def _clips(n: int, frames: int) -> torch.Tensor:
    return (torch.rand(n, frames, 10, 10, 4) < 0.2).to(torch.uint8) * 255


@pytest.fixture(scope="module")
def frames_only(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "breakout"
    args = ["record", "minatar:Breakout", "env.obs=pixels", "--episodes", "20", "--out", str(out), "--no-actions"]
    assert main(args) == 0
    return out


def test_the_st_tokenizer_reads_clips_causally_in_time():
    torch.manual_seed(0)
    tokenizer = TOKENIZERS.build("st_vqvae", {**SMALL, "vocab": 32}, obs_spec=FRAME)
    clips = _clips(2, 5)
    tokens = tokenizer.encode(clips)
    assert tokens.shape == (2, 5, 25) and tokenizer.temporal
    assert tokenizer.decode(tokens).shape == (2, 5, 10, 10, 4)
    changed = clips.clone()
    changed[:, 3:] = 255 - changed[:, 3:]
    again = tokenizer.encode(changed)
    assert torch.equal(again[:, :3], tokens[:, :3]) and not torch.equal(again[:, 3:], tokens[:, 3:])
    loss, metrics = tokenizer.loss(clips)
    loss.backward()
    assert tokenizer.patch_in.weight.grad.abs().sum() > 0 and 1 <= metrics["tokenizer/perplexity"] <= 32


def test_the_latent_action_model_reports_and_revives_its_codebook():
    torch.manual_seed(0)
    lam = LATENT_ACTIONS.build("vq_lam", {**SMALL, "actions": 8, "dead_after": 2}, obs_spec=FRAME)
    clips = _clips(4, 5)
    codes = lam.infer(clips)
    assert codes.shape == (4, 4) and codes.dtype == torch.long and codes.min() >= 0 and codes.max() < 8
    with torch.no_grad():
        lam.quantiser.codebook[5] = 1e3  # far from every encoder output: never chosen
    metrics = [lam.loss(clips)[1] for _ in range(2)]
    assert 1 <= metrics[0]["latent_actions/codes_used"] <= 8
    assert metrics[0]["latent_actions/dead_codes"] == 0 and metrics[1]["latent_actions/dead_codes"] >= 1
    assert lam.quantiser.codebook[5].abs().max() < 1e3  # revived to an encoder output of the batch


def test_the_latent_action_decoder_reconstructs_a_moved_clip_from_codes_of_the_unmoved_one(monkeypatch):
    torch.manual_seed(0)
    lam = LATENT_ACTIONS.build("vq_lam", SMALL, obs_spec=FRAME)
    assert lam.shift == 1  # by default half the patch (2)
    clips = _clips(8, 4)
    encoded, predicted = [], []
    encode, predict = lam.encode, lam.predict
    monkeypatch.setattr(lam, "encode", lambda x: encoded.append(x) or encode(x))
    monkeypatch.setattr(lam, "predict", lambda x, codes: predicted.append(x) or predict(x, codes))
    lam.loss(clips)
    assert torch.equal(encoded[0], clips)  # the encoder sees the clip as it is
    moved = predicted[0]
    assert not torch.equal(moved, clips)
    for n in range(8):  # each clip moved as one by at most a pixel, the edge repeated
        padded = torch.nn.functional.pad(clips[n].movedim(-1, 1).float(), (1, 1, 1, 1), mode="replicate")
        crops = [padded[..., i : i + 10, j : j + 10].movedim(1, -1) for i in range(3) for j in range(3)]
        assert any(torch.equal(moved[n].float(), c) for c in crops)


def test_the_decoding_schedule_is_the_cosine_one_and_ends_with_every_token():
    assert [still_masked(s, 8, 25) for s in range(9)] == [
        math.floor(25 * math.cos(math.pi / 2 * s / 8) + 1e-9) for s in range(8)
    ] + [0]
    seen, logits = [], torch.randn(3, 25, 7)

    def logits_of(tokens):
        seen.append(tokens.clone())
        return logits

    tokens = decode(logits_of, (3, 25), 7, steps=8, temperature=0.0, device=torch.device("cpu"))
    assert [int((t == 7).sum(1).max()) for t in seen] == [still_masked(s, 8, 25) for s in range(8)]
    for before, after in zip(seen, [*seen[1:], tokens]):  # a revealed token is never redrawn
        assert torch.equal(after[before != 7], before[before != 7])
    assert torch.equal(tokens, logits.argmax(-1))  # temperature 0: the most likely tokens
    confident = logits.softmax(-1).amax(-1)
    first = seen[1] != 7  # the first round reveals each row's most confident tokens
    for row in range(3):
        assert confident[row][first[row]].min() >= confident[row][~first[row]].max()


def test_training_masks_a_uniform_rate_in_half_to_all_of_frames_after_the_first():
    torch.manual_seed(0)
    masked = training_mask((2000, 3, 50), 0.5, torch.device("cpu"))
    assert not masked[:, 0].any()
    rate = masked[:, 1:].float().mean((1, 2))
    assert rate.min() > 0.3 and rate.max() == 1.0 and abs(rate.mean().item() - 0.75) < 0.02


def test_maskgit_learns_and_generates_a_frame_of_tokens():
    torch.manual_seed(0)
    model = MASKED_DYNAMICS.build("maskgit", {"layers": 1, "heads": 2, "dim": 16, "steps": 4}, vocab=9, tokens=6,
                                  actions=3)  # fmt: skip
    tokens, actions = torch.randint(0, 9, (2, 4, 6)), torch.randint(0, 3, (2, 3))
    loss, metrics = model.loss(tokens, actions)
    loss.backward()
    assert loss > 0 and 0 <= metrics["dynamics/token_accuracy"] <= 1
    new = model.generate(tokens, torch.randint(0, 3, (2, 4)))
    assert new.shape == (2, 6) and new.min() >= 0 and new.max() < 9  # no [MASK] left


def test_genie_trains_its_phases_from_frames_alone_and_resumes_exactly(frames_only, tmp_path):
    def run(folder, phase="all", resume=False):
        cfg = load_config("genie_tiny", [f"train.offline={frames_only}", f"train.phase={phase}"])
        trainer = Trainer(cfg, tmp_path / folder, resume=resume)
        trainer.run()
        trainer.close()
        return trainer

    straight = run("straight")
    assert [phase.streams.counts for phase in straight.phases] == [
        {"tokenizer": 6},
        {"latent_actions": 5},
        {"dynamics": 4},
    ]
    run("resumed", phase="tokenizer")
    resumed = run("resumed", resume=True)
    a, b = straight.agent.state_dict(), resumed.agent.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_generation_reads_the_latent_actions():
    """Untrained, the next frame hardly depends on its action; made to weigh them heavily, different scripts
    generate different frames, and the same script the same frames."""
    torch.manual_seed(0)
    agent = build_agent(load_config("genie_tiny", ["agent.dynamics.temperature=0"]), FRAME, ActSpec(True, 0))
    with torch.no_grad():
        agent.dynamics.action_embed.weight.mul_(100)
    prompt = _clips(1, 1)
    frames = {a: agent.generate(prompt, torch.full((1, 5), a)) for a in range(4)}
    assert frames[0].shape == (1, 6, 10, 10, 4) and frames[0].min() >= 0 and frames[0].max() <= 255
    assert torch.equal(frames[1], agent.generate(prompt, torch.full((1, 5), 1)))  # the same script, the same frames
    assert all(not torch.equal(frames[0][:, 1:], frames[a][:, 1:]) for a in (1, 2, 3))


def test_psnr_and_the_latent_to_true_action_measures_by_hand():
    real = torch.zeros(2, 4, 4, 3)
    assert psnr(real, real + 25.5).tolist() == pytest.approx([20.0, 20.0])  # MSE 0.01 in [0, 1] units
    latent, true = [0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 1, 0]
    found = action_agreement(np.array(latent), np.array(true), 3, 2)
    assert found["eval/latent_action_accuracy"] == pytest.approx(5 / 6)  # z0→0, z1→1, z2→either
    assert found["eval/majority_accuracy"] == pytest.approx(0.5)
    assert found["eval/latent_action_nmi"] == pytest.approx(4 / 3 * math.log(2) / math.log(6))  # 2I / (H(Z) + H(A))
    same = action_agreement(np.array([2, 0, 1, 2]), np.array([0, 1, 2, 0]), 3, 3)
    assert same["eval/latent_action_accuracy"] == 1.0 and same["eval/latent_action_nmi"] == pytest.approx(1.0)


@pytest.fixture(scope="module")
def trained(frames_only, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "genie"
    assert main(["train", "genie_tiny", f"train.offline={frames_only}", "--run-dir", str(run)]) == 0
    return run


def test_eval_measures_controllability_on_held_out_episodes_of_the_environment(trained, capsys):
    assert main(["eval", str(trained), "--delta-psnr", "--episodes", "4"]) == 0
    found = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"eval/delta_psnr", "eval/tokenizer_psnr", "eval/latent_action_nmi"} <= set(found)
    assert found["eval/latent_action_accuracy"] >= found["eval/majority_accuracy"]  # mapping all to it is one map


def test_play_writes_a_gif_of_the_prompt_and_one_frame_per_latent_action(trained, capsys):
    assert main(["play", str(trained), "--actions", "0,3,3,1"]) == 0
    gif = trained / "play_0-3-3-1.gif"
    assert str(gif) in capsys.readouterr().out and len(imageio.mimread(gif)) == 5
    assert main(["play", str(trained), "--actions", "0,4"]) == 2
    assert "latent action 4 does not exist; the model has 0 … 3" in capsys.readouterr().err


def test_dream_shows_an_episode_beside_its_regeneration_from_inferred_latent_actions(trained, capsys):
    assert main(["dream", str(trained), "--context", "2", "--horizon", "4"]) == 0
    frames = imageio.mimread(trained / "dream.gif")
    assert 3 <= len(frames) <= 6 and str(trained / "dream.gif") in capsys.readouterr().out


@pytest.fixture(scope="module")
def expert(tmp_path_factory):
    """A (barely) trained agent that acts on MinAtar frames: the demonstrator of the cloning case study."""
    run = tmp_path_factory.mktemp("runs") / "expert"
    overrides = ["env.id=minatar:Breakout", "env.obs=pixels", "train.steps=150", "train.prefill=100"]
    overrides.append("agent.eval_policy=mode")  # acts by its mode, so the recorded actions can be recomputed
    assert main(["train", "latent_mlp", *overrides, "train.eval_every=0", "--run-dir", str(run)]) == 0
    return run


def test_record_plays_a_trained_agent_and_keeps_what_it_chose(expert, tmp_path, capsys):
    out = tmp_path / "expert"
    record = ["record", "minatar:Breakout", "env.obs=pixels", "--episodes", "3", "--out"]
    assert main([*record, str(out), "--policy", str(expert)]) == 0
    index, episodes = load_dataset(out)
    assert index["policy"] == f"run:{expert}" and "action" in index["keys"]
    agent = load_agent(expert).agent  # memoryless: its mode on each frame is the action recorded after it
    for episode in episodes:
        frames = torch.as_tensor(episode["obs"][:-1])
        chosen = agent.act(frames, torch.ones(len(frames), dtype=torch.bool), None, explore=False).action
        assert np.array_equal(chosen.numpy(), episode["action"][1:])
    capsys.readouterr()
    assert main([*record, str(tmp_path / "flat"), "--policy", str(expert), "env.obs=state"]) == 2
    assert "trained on observations" in capsys.readouterr().err
    assert main([*record, str(tmp_path / "none"), "--policy", str(tmp_path / "nowhere")]) == 2
    assert "uniform, brownian, held or a run folder" in capsys.readouterr().err


def test_action_map_takes_each_latent_action_to_the_real_one_it_stands_for_most():
    latent, real = np.array([0, 0, 0, 1, 2, 2]), np.array([1, 1, 0, 2, 0, 0])
    assert action_map(latent, real, choices=4, actions=3).tolist() == [1, 2, 0, 0]  # 3 unseen: the most common, 0


def test_bc_clones_latent_actions_from_video_and_acts_in_the_environment(trained, expert, tmp_path, capsys):
    video, labelled = tmp_path / "video", tmp_path / "labelled"
    record = ["record", "minatar:Breakout", "env.obs=pixels", "--policy", str(expert)]
    assert main([*record, "--episodes", "4", "--out", str(video), "--no-actions"]) == 0
    assert main([*record, "--episodes", "2", "--seed", "1", "--out", str(labelled)]) == 0
    bc = ["bc", str(trained), "--updates", "5", "--episodes", "2"]
    capsys.readouterr()
    assert main([*bc, "--video", str(video), "--labelled", str(labelled)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(result["returns"]) == {"latent actions (Genie)", "labelled steps only", "random"}  # no oracle
    assert len(result["action_map"]) == 4 and set(result["action_map"]) <= {0, 1, 2}
    assert json.loads((trained / "latent_bc.json").read_text()) == result
    assert main([*bc, "--video", str(labelled), "--labelled", str(labelled)]) == 0  # a video with actions
    assert "oracle: the video's real actions" in json.loads(capsys.readouterr().out.strip().splitlines()[-1])["returns"]
    assert main([*bc, "--video", str(video), "--labelled", str(video)]) == 2
    assert "holds no discrete actions" in capsys.readouterr().err
