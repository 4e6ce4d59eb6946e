"""Update streams: an agent declares a `learn` phase with two sampling streams of different batch shapes
(one starting late, with a learning-rate warm-up, and a stream following it every third update), then a
`fit` phase; every stream gets its own batches, starts when it says, and the run resumes exactly."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from tests.conftest import assert_resumes_exactly
from worldmodels.agents.base import Acted, Agent, adam, step
from worldmodels.config import load_config
from worldmodels.data.sources import SampleSpec
from worldmodels.phases import PhaseSpec, Stream
from worldmodels.registry import AGENTS
from worldmodels.schema import positive
from worldmodels.train import Trainer

LR, WARMUP, MODEL_START = 1e-3, 4, 120


@AGENTS.register("test_two_streams")
class TwoStreams(Agent):
    """A reward model on single steps and a next-observation model on windows of 6, acting at random."""

    @dataclass
    class Config:
        hidden: int = positive(16)
        polish: int = 5
        """Steps of the `fit` phase after the `learn` phase (0: none)."""

    def __init__(self, cfg: Config, obs_spec, act_spec):
        super().__init__(obs_spec, act_spec)
        self.cfg = cfg
        obs, act = obs_spec.shape[0], act_spec.dim
        self.reward = nn.Sequential(nn.Linear(obs + act, cfg.hidden), nn.SiLU(), nn.Linear(cfg.hidden, 1))
        self.model = nn.Sequential(nn.Linear(obs + act, cfg.hidden), nn.SiLU(), nn.Linear(cfg.hidden, obs))
        self.optimizers = {
            "reward": adam(self.reward.parameters(), LR, 1e-8),
            "model": adam(self.model.parameters(), LR, 1e-8),
        }
        self.seen: list[tuple[str, tuple[int, ...], float]] = []  # (stream, batch shape, learning rate)

    def phases(self, train) -> list[PhaseSpec]:
        return [
            PhaseSpec(
                "learn",
                "learn",
                streams=(
                    Stream("reward", SampleSpec(4, 1), ratio=4, trains=("reward",), update="learn_reward"),
                    Stream(
                        "model",
                        SampleSpec(2, 6),
                        6,
                        MODEL_START,
                        trains=("model",),
                        warmup=WARMUP,
                        update="learn_model",
                    ),
                    Stream("probe", every=3),
                ),
            ),
            PhaseSpec(
                "polish",
                "fit",
                budget=self.cfg.polish,
                streams=(Stream("reward", SampleSpec(8, 1), update="learn_reward"),),
            ),
        ][: 1 + (self.cfg.polish > 0)]

    def act(self, obs, is_first, state, explore) -> Acted:
        n = len(is_first)
        return Acted(nn.functional.one_hot(torch.randint(self.act_spec.dim, (n,)), self.act_spec.dim).float())

    def _inputs(self, batch) -> torch.Tensor:
        return torch.cat([batch["obs"].float(), batch["action"]], -1)

    def learn_reward(self, batch) -> dict[str, float]:
        self.seen.append(("reward", tuple(batch["reward"].shape), self.optimizers["reward"].param_groups[0]["lr"]))
        loss = (self.reward(self._inputs(batch))[..., 0] - batch["reward"]).pow(2).mean()
        return step(self.optimizers["reward"], loss, 10.0, "reward")

    def learn_model(self, batch) -> dict[str, float]:
        self.seen.append(("model", tuple(batch["reward"].shape), self.optimizers["model"].param_groups[0]["lr"]))
        pred = self.model(self._inputs(batch))[:, :-1]
        loss = (pred - batch["obs"][:, 1:].float()).pow(2).mean()
        return step(self.optimizers["model"], loss, 10.0, "model")

    def probe(self, batch) -> dict[str, float]:
        self.seen.append(("probe", tuple(batch["reward"].shape), 0.0))
        return {"probe/obs_mean": batch["obs"].float().mean().item()}


RUN = ["agent={name: test_two_streams}", "env.id=CartPole-v1", "train.prefill=40", "train.eval_every=0"]
RUN += ["train.eval_episodes=1", "train.threads=1", "train.log_every=50"]


def test_each_stream_samples_its_own_batches_from_its_start_with_its_warmup(tmp_path):
    trainer = Trainer(load_config("latent_mlp", [*RUN, "train.steps=200", "train.checkpoint_every=0"]), tmp_path)
    summary = trainer.run()
    trainer.close()
    seen = trainer.agent.seen
    shapes = {(name, shape) for name, shape, _ in seen}
    assert shapes == {("reward", (4, 1)), ("model", (2, 6)), ("probe", (2, 6)), ("reward", (8, 1))}
    learn_rewards = [s for s in seen if s[:2] == ("reward", (4, 1))]
    models = [lr for name, _, lr in seen if name == "model"]
    # reward: 4 replayed steps per env step from the prefill on, in batches of 4 → one update per env step
    assert len(learn_rewards) == 200 - 40 + 1
    # model: 6 replayed steps per env step from step 120 on, in batches of 12 → one update per 2 env steps
    assert len(models) == (200 - MODEL_START + 1) // 2
    assert models[: WARMUP + 1] == pytest.approx([LR * (n + 1) / WARMUP for n in range(WARMUP)] + [LR])
    assert sum(name == "probe" for name, _, _ in seen) == len(range(0, len(models), 3))
    assert [name for name, _, _ in seen][-5:] == ["reward"] * 5  # the fit phase, after the learn phase
    assert summary["updates/model"] == len(models) and summary["polish_steps"] == 5


def test_two_streams_of_different_batch_shapes_resume_exactly(tmp_path):
    assert_resumes_exactly("latent_mlp", [*RUN, "agent.polish=0"], tmp_path, steps=240)
