"""Collection noise coloured in time (`agents/time_noise.py`): white at β = 0, else each environment reads its
own sequence step by step, drawn afresh at an episode's start and when it runs out."""

import torch

from tests.conftest import TINY, assert_resumes_exactly
from worldmodels.agents.time_noise import TimeNoiseConfig, time_noise
from worldmodels.config import load_config
from worldmodels.train import Trainer


def test_white_noise_is_torch_s_own_and_keeps_no_state():
    torch.manual_seed(0)
    eps, state = time_noise(torch.zeros(3, 2), torch.ones(3, dtype=torch.bool), None, TimeNoiseConfig())
    torch.manual_seed(0)
    assert state is None and torch.equal(eps, torch.randn(3, 2))


def test_each_environment_reads_its_own_sequence_until_its_episode_or_the_sequence_ends():
    cfg = TimeNoiseConfig(noise_colour=1.0, noise_steps=5)
    like, first = torch.zeros(2, 3), torch.ones(2, dtype=torch.bool)
    torch.manual_seed(0)
    eps, state = time_noise(like, first, None, cfg)
    sequences = state[0].clone()  # [2, 3, 5]
    steps = [eps]
    for _ in range(4):
        eps, state = time_noise(like, ~first, state, cfg)
        steps.append(eps)
    assert torch.equal(torch.stack(steps, -1), sequences)  # step t of each environment's own sequence
    _, state = time_noise(like, torch.tensor([False, True]), state, cfg)  # env 0's ran out, env 1 starts anew
    assert state[1].tolist() == [1, 1] and not torch.equal(state[0], sequences)
    mid = (state[0], torch.tensor([3, 3]))
    eps, state = time_noise(like, torch.tensor([False, True]), mid, cfg)
    assert torch.equal(eps[0], mid[0][0, :, 3]) and state[1].tolist() == [4, 1]  # only env 1 restarts


def test_pink_noise_keeps_unit_variance_and_drifts_where_white_noise_does_not():
    first, like = torch.ones(2000, dtype=torch.bool), torch.zeros(2000, 1)

    def run(colour: float) -> torch.Tensor:
        torch.manual_seed(0)
        state, steps = None, []
        for t in range(64):
            eps, state = time_noise(like, first if t == 0 else ~first, state, TimeNoiseConfig(colour, 64))
            steps.append(eps[:, 0])
        return torch.stack(steps, 1)  # [2000, 64]

    white, pink = run(0.0), run(1.0)
    assert abs(white.var().item() - 1) < 0.05 and abs(pink.var().item() - 1) < 0.1
    # the sum over 16 steps: variance 16 for white noise, several times that for pink
    assert white[:, :16].sum(1).var() < 20 and pink[:, :16].sum(1).var() > 60


def test_a_coloured_prefill_drifts_and_resumes_exactly_mid_prefill(tmp_path):
    """`train.prefill_colour`: the prefill's continuous actions are coloured noise, one sequence per
    environment, and a run checkpointed inside the prefill resumes with the same sequences and generator."""
    overrides = [*TINY, "env.id=Pendulum-v1", "train.prefill=100", "train.prefill_colour=1.0", "train.eval_every=0"]
    assert_resumes_exactly("latent_mlp", overrides, tmp_path, steps=120)
    cfg = load_config("latent_mlp", [*overrides, "train.steps=100"])
    trainer = Trainer(cfg, tmp_path / "drift")
    trainer.run()
    actions = torch.as_tensor(trainer.phases[0].collector.replay.data["action"][0, 1:101, 0])  # the prefill's
    trainer.close()
    assert actions.abs().max() <= 1 and (actions[1:] * actions[:-1]).mean() > 0.5 * actions.pow(2).mean()
