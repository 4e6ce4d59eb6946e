"""Metrics stay tensors until a log line: an update reads nothing on the host, a log line reads everything
at once, and a non-finite loss is recorded on the device and reported at the next check."""

import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import torch

import worldmodels
from tests.conftest import TINY
from tests.test_dreamer import TINY_DREAMER
from worldmodels.agents.base import adam, raise_if_non_finite, step
from worldmodels.config import load_config
from worldmodels.errors import TrainingError
from worldmodels.train import Trainer
from worldmodels.train.metrics import Means, Stopwatch, to_host

HOST_READS = ("item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__", "__index__", "__format__")
"""Tensor methods that bring a value to the host: on a GPU each waits for the queued work (a sync)."""
PACKAGE = str(Path(worldmodels.__file__).parent)


@pytest.fixture
def host_reads(monkeypatch):
    """A Counter of (file in the package, function, method) for every host read made by the package's code."""
    reads: Counter = Counter()

    def counting(name):
        original = getattr(torch.Tensor, name)

        def read(self, *args, **kwargs):
            caller = sys._getframe(1).f_code
            if caller.co_filename.startswith(PACKAGE):
                reads[(Path(caller.co_filename).relative_to(PACKAGE).as_posix(), caller.co_name, name)] += 1
            return original(self, *args, **kwargs)

        return read

    def start():
        for name in HOST_READS:
            monkeypatch.setattr(torch.Tensor, name, counting(name))
        return reads

    return start


def test_step_reports_tensors_and_a_nan_loss_leaves_the_weights_finite_until_the_check_names_it():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    opt = adam(net.parameters(), 1e-2, 1e-8)
    x = torch.randn(8, 3)
    metrics = step(opt, net(x).pow(2).mean(), 1.0, "model")
    assert all(isinstance(v, torch.Tensor) and v.dim() == 0 and not v.requires_grad for v in metrics.values())
    raise_if_non_finite([opt])  # all finite so far
    before = [p.detach().clone() for p in net.parameters()]
    metrics = step(opt, net(x).pow(2).mean() * float("nan"), 1.0, "model")
    assert torch.isnan(metrics["loss/model"])
    assert all(torch.isfinite(p).all() for p in net.parameters())  # the NaN gradient was zeroed
    assert any(not torch.equal(p, b) for p, b in zip(net.parameters(), before))  # Adam's momentum still moved them
    step(opt, net(x).pow(2).mean(), 1.0, "model")  # a finite step after it does not clear the record
    with pytest.raises(TrainingError, match=r"^the model loss became nan; the last checkpoint is intact"):
        raise_if_non_finite([opt])


def test_a_finite_loss_with_a_non_finite_gradient_is_caught_too():
    net = torch.nn.Linear(3, 1)
    opt = adam(net.parameters(), 1e-2, 1e-8)
    loss = (net.weight * 0).sqrt().sum()  # 0, with gradient 0 · ∞ = nan
    step(opt, loss, 1.0, "critic")
    assert all(torch.isfinite(p).all() for p in net.parameters())
    with pytest.raises(TrainingError, match="the critic loss's gradient norm became nan"):
        raise_if_non_finite([opt])


def test_means_of_tensors_and_floats_are_read_with_one_transfer(host_reads):
    means = Means()
    for i in range(4):
        means.add({"loss/a": torch.tensor(float(i)), "loss/b": torch.tensor(2.0 * i), "episode/return": 10.0 * i})
    reads = host_reads()
    assert means.pop() == {"loss/a": 1.5, "loss/b": 3.0, "episode/return": 15.0}
    assert sum(reads.values()) == 1 and reads[("train/metrics.py", "to_host", "tolist")] == 1
    assert not means  # emptied
    assert to_host({"x": torch.tensor(0.25), "y": 2.0, "z": None}) == {"x": 0.25, "y": 2.0, "z": None}


@pytest.mark.parametrize(
    "preset, overrides, allowed",
    [
        ("latent_mlp", TINY, set()),
        # the RSSM restarts episodes under a host branch, `bool(is_first.any())` once per time step: not a
        # metric, and in the file the latent-state refactor owns
        ("dreamerv3", TINY_DREAMER, {("dynamics/rssm.py", "obs_step", "__bool__")}),
    ],
)
def test_updates_read_nothing_on_the_host(tmp_path, host_reads, preset, overrides, allowed):
    """Three updates through the trainer's own update loop (sample, update every optimiser, gather the
    metrics) without one host read of a tensor; the log line then reads them."""
    run = ["train.steps=60", "train.prefill=50", "train.ratio=16", "train.batch_size=2", "train.seq_len=8"]
    cfg = load_config(preset, [*overrides, *run, "env.id=CartPole-v1", "train.eval_every=0", "train.threads=1"])
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.run()
    learn, updates = trainer.phases[0], trainer.agent.updates
    learn.streams.earn(lambda stream: 3.0, trainer.step)
    reads = host_reads()
    learn.streams.run(learn.source, learn._recent.add)
    trainer.close()
    assert trainer.agent.updates == updates + 3
    assert {k: n for k, n in reads.items() if k not in allowed} == {}
    assert learn.flush()["loss/world_model"] > 0  # and the metrics arrive at the log line


def test_stopwatch_gives_each_part_its_share_of_the_time_since_the_last_line():
    clock = Stopwatch()
    with clock.part("env"):
        time.sleep(0.05)
    shares = clock.pop()
    assert shares["perf/share_env"] > 0.5 and shares["perf/share_update"] == 0
    assert abs(sum(shares.values()) - 1) < 1e-9
    assert clock.pop()["perf/share_env"] == 0  # counted afresh after a pop
