"""World Models (Ha & Schmidhuber 2018): the GMM loss, V and M shapes, τ in the dream, CMA-ES through
the controller, and the four phases end to end (resumable, each phase alone, `wm dream`)."""

import json
import math

import numpy as np
import pytest
import torch
from torch import distributions as D

from worldmodels.agents.world_models.controller import Controller, ControllerConfig, Evolution
from worldmodels.agents.world_models.plots import _round_starts
from worldmodels.cli import main
from worldmodels.config import load_config
from worldmodels.dynamics.mdn_rnn import MDNOutput
from worldmodels.errors import CheckpointError, ConfigError
from worldmodels.losses import gmm_nll
from worldmodels.registry import AUTOENCODERS, MEMORIES
from worldmodels.representations import MLPVAE
from worldmodels.spaces import ActSpec, ObsSpec
from worldmodels.train import Trainer
from worldmodels.train.loop import build_agent

IMAGE = ObsSpec((64, 64, 3), "uint8")


def test_gmm_nll_matches_the_mixture_log_density():
    x = torch.randn(6, 4)
    logits, mean, log_std = torch.randn(6, 4, 3), torch.randn(6, 4, 3), 0.3 * torch.randn(6, 4, 3)
    mixture = D.MixtureSameFamily(D.Categorical(logits=logits), D.Normal(mean, log_std.exp()))
    torch.testing.assert_close(gmm_nll(x, logits, mean, log_std), -mixture.log_prob(x))
    # one component: the Gaussian NLL by hand, 0.5·((x−μ)/σ)² + ln σ + 0.5·ln 2π
    value = gmm_nll(torch.tensor([1.0]), torch.zeros(1, 1), torch.zeros(1, 1), torch.log(torch.full((1, 1), 2.0)))
    torch.testing.assert_close(
        value, torch.tensor([0.125 + np.log(2.0) + 0.5 * np.log(2 * np.pi)], dtype=torch.float32)
    )


def test_gmm_loss_recovers_a_known_three_component_mixture():
    gen = torch.Generator().manual_seed(0)
    weights, means, stds = torch.tensor([0.2, 0.5, 0.3]), torch.tensor([-4.0, 0.0, 5.0]), torch.tensor([0.5, 1.0, 0.7])
    k = torch.multinomial(weights, 20_000, replacement=True, generator=gen)
    x = means[k] + stds[k] * torch.randn(20_000, generator=gen)
    logits = torch.zeros(3, requires_grad=True)
    mean = torch.tensor([-1.0, 0.5, 2.0], requires_grad=True)
    log_std = torch.zeros(3, requires_grad=True)
    opt = torch.optim.Adam([logits, mean, log_std], lr=0.05)
    for _ in range(600):
        loss = gmm_nll(x, logits.expand(len(x), 3), mean.expand(len(x), 3), log_std.expand(len(x), 3)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    order = mean.detach().argsort()
    torch.testing.assert_close(mean.detach()[order], means, atol=0.1, rtol=0)
    torch.testing.assert_close(log_std.detach().exp()[order], stds, atol=0.08, rtol=0)
    torch.testing.assert_close(torch.softmax(logits.detach(), 0)[order], weights, atol=0.03, rtol=0)


def test_conv_vae_is_the_papers_four_conv_four_deconv_network():
    vae = AUTOENCODERS.build("conv_vae", None, obs_spec=IMAGE)
    convs = [m for m in vae.modules() if isinstance(m, torch.nn.Conv2d)]
    deconvs = [m for m in vae.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [c.out_channels for c in convs] == [32, 64, 128, 256]
    assert [d.out_channels for d in deconvs] == [128, 64, 32, 3]
    frames = torch.randint(0, 256, (2, 3, 64, 64, 3), dtype=torch.uint8)
    q = vae(frames)
    assert q.mean.shape == (2, 3, 32) and q.stddev.shape == (2, 3, 32)
    assert vae.decode(q.rsample()).mean.shape == (2, 3, 64, 64, 3)
    loss, metrics = vae.loss(frames[0])
    assert loss.shape == () and metrics["vae/kl"] >= 0
    # the KL tolerance: KL below 0.5 nats per dimension costs nothing, so the loss is recon + 16 here
    assert loss.item() == pytest.approx(metrics["vae/recon"].item() + 16.0, rel=1e-5) or metrics["vae/kl"] > 16


def test_mdn_rnn_shapes_and_loss():
    B, T, Z, A = 3, 5, 4, 2
    m = MEMORIES.build("mdn_rnn", {"hidden": 16, "mixtures": 5}, z_dim=Z, action_dim=A)
    pred, (h, c) = m(torch.randn(B, T, Z), torch.randn(B, T, A))
    assert pred.logits.shape == pred.mean.shape == pred.log_std.shape == (B, T, Z, 5)
    assert pred.reward.shape == pred.done_logit.shape == (B, T)
    assert h.shape == c.shape == (1, B, 16)
    one, state = m(torch.randn(B, Z), torch.randn(B, A), (h, c))
    assert one.mean.shape == (B, Z, 5) and one.sample(1.15).shape == (B, Z) and state[0].shape == (1, B, 16)
    from worldmodels.dynamics.mdn_rnn import mdn_loss

    parts = mdn_loss(pred, torch.randn(B, T, Z), torch.randn(B, T), torch.zeros(B, T), torch.ones(B, T))
    assert set(parts) == {"nll", "reward", "done"} and all(v.shape == () for v in parts.values())


def test_sampling_temperature_scales_the_variance():
    """Two equally likely components at ±1 with σ = 0.5: Var = 1 + 0.25·τ; unequal weights sharpen as τ → 0."""
    n = 40_000
    out = MDNOutput(
        torch.zeros(n, 1, 2),
        torch.tensor([-1.0, 1.0]).expand(n, 1, 2),
        torch.full((n, 1, 2), np.log(0.5)),
        torch.zeros(n),
        torch.zeros(n),
    )
    gen = torch.Generator().manual_seed(0)
    variances = [out.sample(tau, gen).var().item() for tau in (0.5, 1.0, 1.5)]
    assert variances == pytest.approx([1.125, 1.25, 1.375], abs=0.03)
    skewed = MDNOutput(torch.tensor([1.0, 0.0]).expand(n, 1, 2), out.mean, out.log_std, out.reward, out.done_logit)
    assert (skewed.sample(0.05, gen) > 0).float().mean() < 0.01  # logits / τ: the first component wins


def _tiny_agent(**evolution):
    overrides = [
        "env.obs=pixels",
        "env.id=wm/Dummy-v0",
        "agent.vae.depth=4",
        "agent.vae.latent_dim=4",
        "agent.mdrnn.hidden=16",
        "device=cpu",
    ] + [f"agent.evolution.{k}={v}" for k, v in evolution.items()]
    cfg = load_config("world_models", overrides)
    return build_agent(cfg, IMAGE, ActSpec(True, 3))


def test_the_dream_rollout_respects_temperature():
    """The dream (wm dream) decodes M's latents sampled at τ: its frames vary more across dreams as τ grows."""
    spreads = []
    for tau in (0.25, 1.0, 2.0):
        torch.manual_seed(0)
        agent = _tiny_agent(temperature=tau)
        obs, actions = torch.randint(0, 256, (8, 64, 64, 3), dtype=torch.uint8), torch.zeros(8, 3)
        dreams = torch.stack([agent.open_loop(obs, actions, context=2).obs for _ in range(40)])
        assert dreams.shape == (40, 8, 64, 64, 3)
        torch.testing.assert_close(dreams[0, :2], dreams[1, :2])  # the context is reconstructed, not dreamt
        spreads.append(dreams[:, 2:].var(0).mean().item())
    assert spreads[0] < spreads[1] < spreads[2]
    agent = _tiny_agent()
    z0 = torch.zeros(64, 4)
    params = torch.zeros(64, agent.controller.num_params)
    returns, lengths = agent.dream_returns(params, z0, 1.15, 30, torch.Generator().manual_seed(0))
    assert returns.shape == lengths.shape == (64,) and lengths.min() >= 1 and lengths.max() <= 30
    # learned termination: each reward counts by the chance the episode still runs, Π (1 − p(done)) before it
    # (a constant p here: the expected length of a geometric end within 30 steps, a dream cut once that chance
    # is below 1e-3), the reward head's bias the reward of every step
    head = agent.mdrnn.head.linear
    with torch.no_grad():
        head.weight[-2:].zero_()
        head.bias[-2] = 2.0
        for p in (0.5, 0.1, 0.0):
            head.bias[-1] = math.log(p / (1 - p)) if p else -30.0
            returns, lengths = agent.dream_returns(params, z0, 1.15, 30, torch.Generator().manual_seed(0))
            expected = sum((1 - p) ** t for t in range(30))
            torch.testing.assert_close(lengths, torch.full((64,), expected), rtol=0, atol=2e-3)  # cut below 1e-3
            torch.testing.assert_close(returns, 2.0 * lengths)


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_cmaes_solves_a_known_problem_through_the_controller(kind):
    """Fit the controller's actions to a target linear-tanh policy on fixed inputs: the optimum is known."""
    rng = np.random.default_rng(0)
    act_spec = ActSpec(False, 2)
    controller = Controller(ControllerConfig(kind=kind, hidden=4), 3, act_spec)
    x = torch.as_tensor(rng.normal(size=(32, 3)), dtype=torch.float32)
    target = torch.tanh(x @ torch.tensor([[0.8, -0.5], [0.3, 0.9], [-0.6, 0.2]]) + torch.tensor([0.1, -0.2]))

    def fitness(population: np.ndarray) -> np.ndarray:
        params = torch.as_tensor(np.repeat(population, len(x), 0), dtype=torch.float32)  # candidate-major rows
        actions = controller(params, x.repeat(len(population), 1)).reshape(len(population), len(x), 2)
        return -((actions - target) ** 2).mean((1, 2)).numpy()

    evo = Evolution(controller.num_params, 0.5, 16, seed=1)
    for _ in range(250 if kind == "linear" else 400):
        evo.tell(fitness(evo.ask()))
    assert -fitness(evo.mean[None])[0] < (1e-4 if kind == "linear" else 2e-3)
    # the search resumes from JSON by replaying its generations: the next population is the same
    again = Evolution.from_state(json.loads(json.dumps(evo.state_dict())))
    np.testing.assert_array_equal(again.ask(), evo.ask())
    tampered = evo.state_dict() | {"mean": (evo.mean + 1).tolist()}
    with pytest.raises(CheckpointError, match="cma"):
        Evolution.from_state(tampered)


def test_discrete_controller_picks_the_argmax():
    controller = Controller(ControllerConfig(), 2, ActSpec(True, 3))
    params = torch.tensor([[1.0, 0, 0, 0, 0, 1, 0, 0, 0]])  # W = [[1,0,0],[0,0,1]], b = 0
    actions = controller(params, torch.tensor([[2.0, 1.0], [0.0, 3.0]]))
    torch.testing.assert_close(actions, torch.tensor([[1.0, 0, 0], [0, 0, 1.0]]))


TINY = [
    "env.id=wm/Dummy-v0",
    "env.obs=pixels",
    "train.threads=1",
    "train.eval_episodes=2",
    "agent.collect.rollouts=6",
    "agent.collect.max_steps=12",
    "agent.collect.workers=1",
    "agent.vae.depth=4",
    "agent.vae.latent_dim=4",
    "agent.vae_train.epochs=2",
    "agent.vae_train.batch_size=16",
    "agent.mdrnn.hidden=16",
    "agent.mdrnn_train.updates=4",
    "agent.mdrnn_train.validate_every=2",
    "agent.mdrnn_train.seq_len=4",
    "agent.mdrnn_train.batch_size=4",
    "agent.evolution.population=4",
    "agent.evolution.samples=2",
    "agent.evolution.generations=3",
    "agent.evolution.workers=1",
    "agent.evolution.eval_every=2",
    "agent.evolution.max_steps=15",
]


def _rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_pipeline_end_to_end_then_dream_and_eval(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "world_models", *TINY, "--run-dir", str(run)]) == 0
    summary = json.loads(next(line for line in capsys.readouterr().out.splitlines() if line.startswith("{")))
    assert summary["phases_done"] == ["collect", "vae", "mdrnn", "controller"]
    for name in ("config.yaml", "curve.png", "reconstructions.png", "latents.npz", "tb", "rollouts/episode_000005.npz"):
        assert (run / name).exists(), name
    rows = _rows(run)
    assert [r["vae/epoch"] for r in rows if "vae/epoch" in r] == [1, 2]
    assert all("valid/mdrnn_nll" in r and "valid/memoryless_nll" in r for r in rows if "mdrnn/update" in r)
    assert [r["mdrnn/update"] for r in rows if "mdrnn/update" in r] == [2, 4]
    assert [r["controller/generation"] for r in rows if "eval/return" in r] == [2, 3]
    split = {key: [r[f"perf/share_{part}"] for r in rows if key in r] for key, part in
             [("collect/rollouts", "env"), ("vae/epoch", "update"), ("mdrnn/update", "update")]}  # fmt: skip
    assert all(shares and min(shares) > 0 for shares in split.values())  # where each phase's time went
    steps = [r["step"] for r in rows]
    assert steps == sorted(steps) and steps[-1] == summary["step"] > 0
    assert main(["dream", str(run), "--horizon", "6"]) == 0 and (run / "dream.gif").exists()
    assert main(["eval", str(run), "--episodes", "2"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["episodes"] == 2


def test_random_rollouts_leave_a_share_of_the_budget_and_the_run_ends_evaluated(tmp_path):
    """Rollouts stop at `collect.max_share` of `train.steps` (here after the first chunk of 4 of the 6), and a
    controller stopped by the budget before its first evaluation still ends with one (a suite cell needs it)."""
    run = tmp_path / "run"
    assert main(["train", "world_models", *TINY, "train.steps=40", "--run-dir", str(run)]) == 0
    rows = _rows(run)
    assert max(r["collect/rollouts"] for r in rows if "collect/rollouts" in r) == 4
    assert (
        len(list((run / "rollouts").glob("episode_*.npz"))) == 4
        and len(json.loads((run / "rollouts" / "dataset.json").read_text())["lengths"]) == 4
    )
    assert len([r for r in rows if "eval/return" in r]) == 1


ROUNDS = [
    *TINY,
    "agent.evolution.where=dream",
    "agent.iterate.rounds=3",
    "agent.iterate.rollouts=3",
    "agent.iterate.mdrnn_updates=2",
    "agent.iterate.generations=2",
]


def test_later_rounds_record_with_the_controller_train_m_on_and_evolve_from_where_it_stood(tmp_path):
    """`iterate.rounds`: each later round plays episodes with C (perturbed), trains M further on every
    episode so far while validating on the same random rollouts, and starts CMA-ES at C; counters go on
    across rounds, and the real-step budget ends the rounds early (a later run with more goes on)."""
    run = tmp_path / "run"
    budget = ["train.steps=80", "agent.collect.max_share=1"]  # 58 steps of random rollouts, then round 2 passes 80
    assert main(["train", "world_models", *ROUNDS, *budget, "--run-dir", str(run)]) == 0
    trainer = Trainer(load_config("world_models", ROUNDS), run, resume=True)
    names = [p.name for p in trainer.phases]
    assert names[3:] == ["controller", "collect_2", "mdrnn_2", "controller_2", "collect_3", "mdrnn_3", "controller_3"]
    assert trainer.summary()["phases_done"] == names[:7]  # the budget is spent in round 2: round 3 waits
    collect, collect_2, mdrnn_2, controller_2 = (trainer.phases[names.index(n)] for n in names[0:1] + names[4:7])
    index = json.loads((run / "rollouts_2" / "dataset.json").read_text())
    assert index["policy"] == "controller" and len(index["lengths"]) == len(collect_2.lengths) == 3
    assert max(collect_2.lengths) > 12  # C plays to the time limit, not collect.max_steps
    # M trains on the controller's episodes; the random rollout it holds out (1 of 6) stays last
    files = mdrnn_2._files()
    assert files[:5] == collect.files()[:5] and files[5:8] == collect_2.files() and files[8:] == collect.files()[5:]
    assert mdrnn_2._split()[1] == 8
    np.testing.assert_allclose(controller_2.search.x0, trainer.phases[3].search.mean, rtol=1e-6)
    trainer.close()
    assert main(["train", "--resume", str(run), "train.steps=1000000"]) == 0
    rows = _rows(run)
    assert [r["controller/generation"] for r in rows if "controller/generation" in r] == [1, 2, 3, 4, 5, 6, 7]
    assert [r["mdrnn/update"] for r in rows if "mdrnn/update" in r] == [2, 4, 6, 8]
    assert [r["collect/controller/rollouts"] for r in rows if "collect/controller/rollouts" in r] == [3, 3]
    assert _round_starts(rows) == [3.5, 5.5]  # the dashed lines of curve.png
    assert (run / "latents_3.npz").exists() and len(list((run / "rollouts_3").glob("episode_*.npz"))) == 3


def test_phases_resume_and_run_alone(tmp_path, capsys):
    run = tmp_path / "run"
    cfg = load_config("world_models", [*TINY, "train.phase=collect"])
    with pytest.raises(ConfigError, match="train.phase=collect"):
        Trainer(load_config("world_models", [*TINY, "train.phase=mdrnn"]), tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists()
    trainer = Trainer(cfg, run)
    assert trainer.run()["phases_done"] == ["collect"]
    trainer.close()
    # M alone needs a VAE: one clear line naming the missing phase and the fix
    assert main(["train", "--resume", str(run), "train.phase=mdrnn"]) == 2
    assert "phase 'mdrnn' needs a trained VAE" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "train.phase=vae"]) == 0
    # the controller phase stops at the real-step budget and resumes where it stopped
    budget = _rows(run)[-1]["step"] + 1
    assert main(["train", "--resume", str(run), f"train.steps={budget}"]) == 0
    first = load_config("world_models", [*TINY])
    done = Trainer(first, run, resume=True)
    assert done.summary()["phases_done"] == ["collect", "vae", "mdrnn"] and done.phases[-1].search.generation == 1
    done.close()
    assert main(["train", "--resume", str(run), "agent.evolution.population=6"]) == 2
    assert "agent.evolution.population=4" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "train.steps=1000000"]) == 0
    rows = _rows(run)
    assert [r["controller/generation"] for r in rows if "controller/generation" in r] == [1, 2, 3]
    # a finished phase named alone is redone, in the dream this time, and resets nothing before it
    assert main(["train", "--resume", str(run), "train.phase=controller", "agent.evolution.where=dream"]) == 0
    rows = _rows(run)
    assert [r["controller/generation"] for r in rows if "controller/generation" in r] == [1, 2, 3, 1, 2, 3]
    assert all("controller/dream_length" in r for r in rows[-3:])
    assert [r["vae/epoch"] for r in rows if "vae/epoch" in r] == [1, 2]
    # a redone phase starts from the weights a new run starts from (V and all after it), not reset_parameters'
    trained = Trainer(load_config("world_models", TINY), run, resume=True)
    trained_vae = {k: v.clone() for k, v in trained.agent.vae.state_dict().items()}
    trained.close()
    redo = Trainer(load_config("world_models", [*TINY, "train.phase=vae"]), run, resume=True)
    new = Trainer(load_config("world_models", TINY), tmp_path / "new")
    for module in ("vae", "mdrnn", "memoryless"):
        a, b = getattr(redo.agent, module).state_dict(), getattr(new.agent, module).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), module
    assert not all(torch.equal(v, trained_vae[k]) for k, v in new.agent.vae.state_dict().items())
    redo.close()
    new.close()


def test_states_run_the_pipeline_with_an_mlp_vae(tmp_path, capsys):
    """On state vectors V is the MLP VAE: the four phases run, reconstructions.png shows each dimension's
    trace; a dict observation (`env.obs=both`) is refused with one line naming the two that work."""
    run = tmp_path / "run"
    states = [*TINY, "env.obs=state", "agent.vector_vae.latent_dim=3"]
    assert main(["train", "world_models", *states, "--run-dir", str(run)]) == 0
    summary = json.loads(next(line for line in capsys.readouterr().out.splitlines() if line.startswith("{")))
    assert summary["phases_done"] == ["collect", "vae", "mdrnn", "controller"] and "eval/return" in summary
    assert (run / "reconstructions.png").exists()
    trainer = Trainer(load_config("world_models", states), run, resume=True)
    assert isinstance(trainer.agent.vae, MLPVAE) and trainer.agent.vae.moments.count > 0
    trainer.close()
    with pytest.raises(ConfigError, match="env.obs=pixels or env.obs=state"):
        Trainer(load_config("world_models", [*TINY, "env.obs=both"]), tmp_path / "both")
    with pytest.raises(ConfigError, match="has the phases collect, vae, mdrnn, controller"):
        Trainer(load_config("world_models", [*TINY, "train.phase=vea"]), tmp_path / "other")
    assert not (tmp_path / "other").exists()


def test_mlp_vae_reads_each_dimension_in_units_of_its_spread():
    """Dimensions of range 0.01 and 100 (MountainCar's velocity beside a large one) are reconstructed alike, to
    a small part of their range (a dimension read in its own units would be lost beside the large one: the
    best constant is off by a quarter of the range), and the moments freeze outside training."""
    torch.manual_seed(0)
    vae = AUTOENCODERS.build("mlp_vae", {"latent_dim": 2}, obs_spec=ObsSpec((2,), "float32"))
    scale = torch.tensor([0.01, 100.0])
    optimizer = torch.optim.Adam(vae.parameters(), lr=3e-3)
    for _ in range(600):
        loss, metrics = vae.loss(torch.rand(256, 2) * scale)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    x = torch.rand(1000, 2) * scale
    with torch.no_grad():
        count = vae.moments.count.clone()
        vae.loss(x)
        assert torch.equal(vae.moments.count, count)
        error = (vae.decode(vae(x).mean).mean - x).abs().mean(0) / scale
    assert error.max() < 0.12 and error.max() < 1.3 * error.min(), error


def test_worker_processes_score_candidates_like_this_process():
    from worldmodels.agents.world_models.rollouts import ControllerRollouts

    cfg = load_config("world_models", TINY)
    agent = build_agent(cfg, IMAGE, ActSpec(True, 3))
    params = np.random.default_rng(0).normal(size=(5, agent.controller.num_params))
    seeds = [3, 4, 5, 3, 4]
    results = []
    for workers in (1, 2):
        scorer = ControllerRollouts(agent, cfg.env, workers)
        try:
            results.append(scorer.returns(params, seeds, max_steps=20))
        finally:
            scorer.close()
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-6)
    assert results[0][1] == results[1][1] > 0
