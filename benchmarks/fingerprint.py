"""Same-seed fingerprints: a short tiny run of each agent, then a hash of every tensor of its final state.

Run it on two commits to check that a change did not alter what the agents learn (equal hashes: the same
weights bit for bit):

    PYTHONPATH=<old checkout>/src python benchmarks/fingerprint.py > before.txt
    python benchmarks/fingerprint.py > after.txt && diff before.txt after.txt
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests' tiny settings

from tests.conftest import TINY  # noqa: E402
from tests.test_muzero import TINY_MUZERO  # noqa: E402
from tests.test_pets import TINY as TINY_PETS  # noqa: E402
from tests.test_tdmpc2 import TINY as TINY_TDMPC2  # noqa: E402

from worldmodels.config import load_config  # noqa: E402
from worldmodels.train import Trainer  # noqa: E402

RSSM = ["agent.rssm.deter=32", "agent.rssm.hidden=16", "agent.rssm.stoch=4", "agent.imagination_horizon=4"]
RSSM += [f"agent.{part}.hidden=16" for part in ("encoder.vector", "decoder.vector", "reward", "cont")]
SEQ = ["train.steps=400", "train.prefill=200", "train.batch_size=4", "train.seq_len=8", "train.ratio=16"]
RUNS = {  # preset → overrides
    "dreamerv3": [*RSSM, "agent.discrete_actor.hidden=16", "agent.critic.hidden=16", "env.id=CartPole-v1", *SEQ],
    "dreamerv1": [*RSSM, "agent.continuous_actor.hidden=16", "agent.critic.hidden=16", "env.id=Pendulum-v1", *SEQ],
    "planet": ["agent.rssm.deter=16", "agent.rssm.hidden=16", "agent.planner.population=32"]
    + ["agent.planner.horizon=4", "env.id=Pendulum-v1", *SEQ],
    "latent_mlp": [*TINY, "env.id=CartPole-v1", "train.steps=300", "train.prefill=100"],
    "muzero": [*TINY_MUZERO, "env.id=CartPole-v1", "train.steps=300", "train.prefill=100"],
    "pets": [*TINY_PETS, "env.id=Pendulum-v1", "train.steps=300", "train.prefill=100"],
    "tdmpc2": [*TINY_TDMPC2, "env.id=Pendulum-v1", "train.steps=300", "train.prefill=100"],
}
COMMON = ["train.eval_every=0", "train.checkpoint_every=0", "train.seed=3", "train.threads=1"]


def fingerprint(preset: str, overrides: list[str]) -> str:
    with tempfile.TemporaryDirectory() as folder:
        trainer = Trainer(load_config(preset, [*overrides, *COMMON]), Path(folder) / "run")
        trainer.run()
        trainer.close()
    digest = hashlib.sha1()
    for tensor in trainer.agent.state_dict().values():  # in the order the modules were built
        digest.update(tensor.detach().cpu().numpy().tobytes())
    return digest.hexdigest()


if __name__ == "__main__":
    torch.set_num_threads(1)
    for preset, overrides in RUNS.items():
        print(preset, fingerprint(preset, overrides), flush=True)
