"""Genie's behavioural-cloning case study (Bruce et al. 2024, §3.4): a policy over latent actions cloned
from expert video that holds no actions, and a map from latent to real actions fit on a few labelled steps,
so a model learnt from video alone drives an agent in the real environment (`wm bc RUN`).

    ã_t = LAM(x_≤t+1)                 the trained model's latent action model labels the expert's video
    π(ã_t | x_t−1, x_t)               cloned by cross-entropy on those labels
    a_t = M(π's mode)                 M(z) = the real action latent action z most often stands for on the
                                      labelled steps (a latent action they never show: their most common)

Beside it, at equal updates and with the same network: the policy cloned on the labelled steps' real
actions alone (what the few labels give without Genie), cloned on the expert video's real actions where
the video holds them (the oracle the paper compares with), and the uniformly random policy; each plays
`episodes` episodes of the labelled data's environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from worldmodels.agents.base import Acted, Agent
from worldmodels.data.episodes import load_dataset
from worldmodels.encoders.multi import MultiEncoder
from worldmodels.envs.config import EnvConfig
from worldmodels.envs.record import random_episode
from worldmodels.errors import ConfigError
from worldmodels.nn.mlp import MLP
from worldmodels.schema import parse
from worldmodels.spaces import ActSpec, ObsSpec
from worldmodels.train.controllability import cooccurrence
from worldmodels.train.evaluate import evaluate


@dataclass
class CloneConfig:
    updates: int = 3000
    """Cross-entropy updates of each cloned policy."""
    batch: int = 256
    lr: float = 1e-3
    hidden: int = 256
    """Width of the policy's MLP head (over the image encoder's features of two stacked frames)."""


class ClonedPolicy(Agent):
    """Two frames (the last and the current, stacked on channels) → logits over `choices`; acting maps the
    mode through `action_map` (`choices` → real action index) to a one-hot model action."""

    def __init__(self, obs_spec: ObsSpec, act_spec: ActSpec, choices: int, action_map: np.ndarray, hidden: int):
        super().__init__(obs_spec, act_spec)
        H, W, C = obs_spec.shape
        self.encoder = MultiEncoder(MultiEncoder.Config(), ObsSpec((H, W, 2 * C), obs_spec.dtype))
        self.head = MLP(self.encoder.out_dim, choices, hidden, layers=1)
        self.register_buffer("action_map", torch.as_tensor(action_map, dtype=torch.long))

    def forward(self, last: torch.Tensor, now: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(torch.cat([last, now], -1)))

    def initial_state(self, n: int) -> Any:
        return None  # the first step's last frame is itself

    def act(self, obs: torch.Tensor, is_first: torch.Tensor, state: Any, explore: bool) -> Acted:
        with torch.no_grad():
            last = obs if state is None else torch.where(is_first[:, None, None, None], obs, state)
            logits = self(last, obs)
            choice = torch.distributions.Categorical(logits=logits).sample() if explore else logits.argmax(-1)
        action = F.one_hot(self.action_map[choice], self.act_spec.dim).float()
        return Acted(action, obs)


def transitions(episodes: list[dict[str, np.ndarray]]) -> np.ndarray:
    """Each step t of every episode that has a next one: (frame t − 1, frame t) `[N, 2, H, W, C]` (frame 0
    twice at t = 0)."""
    pairs = []
    for episode in episodes:
        obs = episode["obs"]
        pairs.append(np.stack([np.concatenate([obs[:1], obs[:-2]]), obs[:-1]], 1))
    return np.concatenate(pairs)


def real_actions(episodes: list[dict[str, np.ndarray]]) -> np.ndarray:
    """The real action taken at each step of `transitions` `[N]` (row t + 1 of a file: the action from t)."""
    return np.concatenate([e["action"][1:].argmax(-1) for e in episodes])


@torch.no_grad()
def latent_labels(genie: Any, episodes: list[dict[str, np.ndarray]]) -> np.ndarray:
    """The latent action the model infers at each step of `transitions` `[N]`: episodes cut into windows of
    `clip` frames that overlap by one, as the latent action model saw clips in training."""
    clip, device = genie.cfg.clip, genie.device
    labels = []
    for episode in episodes:
        obs = torch.as_tensor(episode["obs"], device=device)
        found = [genie.latent_actions.infer(obs[None, s : s + clip])[0] for s in range(0, len(obs) - 1, clip - 1)]
        labels.append(torch.cat(found).cpu().numpy())
    return np.concatenate(labels)


def action_map(latent: np.ndarray, real: np.ndarray, choices: int, actions: int) -> np.ndarray:
    """Each latent action → the real action it most often stands for `[choices]` (never seen: the most
    common real action)."""
    counts = cooccurrence(latent, real, choices, actions)
    mapped = counts.argmax(1)
    mapped[counts.sum(1) == 0] = counts.sum(0).argmax()
    return mapped


def clone(
    pairs: np.ndarray,
    targets: np.ndarray,
    choices: int,
    mapped: np.ndarray,
    obs_spec: ObsSpec,
    act_spec: ActSpec,
    cfg: CloneConfig,
    seed: int,
    device: torch.device,
) -> ClonedPolicy:
    """A `ClonedPolicy` fit by cross-entropy to `targets` `[N]` (in `0…choices−1`) from frame pairs `[N, 2, ...]`."""
    torch.manual_seed(seed)
    policy = ClonedPolicy(obs_spec, act_spec, choices, mapped, cfg.hidden).to(device)
    optimiser = torch.optim.Adam(policy.parameters(), cfg.lr)
    rng = np.random.default_rng(seed)
    frames, labels = torch.as_tensor(pairs, device=device), torch.as_tensor(targets, device=device)
    for _ in range(cfg.updates):
        i = torch.as_tensor(rng.integers(len(labels), size=cfg.batch), device=device)
        loss = F.cross_entropy(policy(frames[i, 0], frames[i, 1]), labels[i])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    return policy.eval()


def latent_bc(genie: Any, video: Path, labelled: Path, cfg: CloneConfig, episodes: int, seed: int) -> dict[str, Any]:
    """The case study (module docstring): every policy's mean return over `episodes` episodes of the labelled
    data's environment, beside the expert's and the data's sizes."""
    if not hasattr(genie, "latent_actions"):
        raise ConfigError(f"wm bc clones a policy over latent actions of a genie run, not {type(genie).__name__}")
    index, labelled_episodes = load_dataset(labelled)
    if "action" not in index["keys"] or not index["action"]["discrete"] or index["env"] is None:
        raise ConfigError(
            f"'{labelled}' holds no discrete actions of an environment: record the labelled steps with "
            "`wm record ENV --policy RUN --episodes 5` (without --no-actions)"
        )
    env_cfg = parse(EnvConfig, index["env"], "env")
    act_spec = ActSpec(**index["action"])
    video_index, video_episodes = load_dataset(video)
    obs_spec = genie.obs_spec
    device = genie.device
    choices = genie.latent_actions.actions

    pairs = transitions(video_episodes)
    labels = latent_labels(genie, video_episodes)
    seen_pairs = transitions(labelled_episodes)
    seen_real = real_actions(labelled_episodes)
    mapped = action_map(latent_labels(genie, labelled_episodes), seen_real, choices, act_spec.dim)
    identity = np.arange(act_spec.dim)
    policies = {
        "latent actions (Genie)": clone(pairs, labels, choices, mapped, obs_spec, act_spec, cfg, seed, device),
        "labelled steps only": clone(
            seen_pairs, seen_real, act_spec.dim, identity, obs_spec, act_spec, cfg, seed, device
        ),
    }
    if "action" in video_index["keys"]:
        real = real_actions(video_episodes)
        policies["oracle: the video's real actions"] = clone(
            pairs, real, act_spec.dim, identity, obs_spec, act_spec, cfg, seed, device
        )
    returns = {name: evaluate(policy, env_cfg, episodes, seed) for name, policy in policies.items()}
    returns["random"] = np.asarray(
        [random_episode(env_cfg, act_spec, "uniform", seed + i, None)["reward"].sum() for i in range(episodes)],
        np.float64,
    )
    result = {
        "env": env_cfg.id,
        "episodes": episodes,
        "video_steps": int(len(labels)),
        "labelled_steps": int(len(seen_real)),
        "expert_return": float(np.mean(video_index["returns"])),
        "action_map": mapped.tolist(),
        "returns": {name: float(r.mean()) for name, r in returns.items()},
        "returns_std": {name: float(r.std()) for name, r in returns.items()},
    }
    return result
