"""What code using a component relies on: one `Protocol` per registry kind, and narrower ones for slots that
need more than their kind gives (PETS's ensembles).

A registry checks every entry against its kind's contract when the entry registers (`registry.py`), and a
slot declared with a narrower contract lists, and accepts, only the names that satisfy it. The check is by
method: each method the contract names must exist on the class and take the contract's positional
arguments. Attributes (such as `out_dim`) are set when a component is built and are stated here, not checked.
Shapes: `[B, T, ...]` sequences, `[N, ...]` batches, `[...]` any leading dimensions.
"""

from __future__ import annotations

import inspect
from typing import Any, Generic, Protocol

import torch

Tensor = torch.Tensor


class Encoder(Protocol):
    """Observations (an array or a dict of arrays) `[..., *obs]` → features `[..., out_dim]`."""

    out_dim: int

    def forward(self, obs: Any) -> Tensor: ...


class Decoder(Protocol):
    """Features `[..., in_dim]` → a prediction of the observation: `.mean`, `.loss(obs)` `[...]`."""

    def forward(self, features: Tensor) -> Any: ...


class Representation(Protocol):
    """Features `[..., in_dim]` → a distribution over a latent `[..., Z]` (`rsample`, `mean`)."""

    def forward(self, features: Tensor) -> Any: ...


class RepresentationLearner(Protocol):
    """An encoder with its own self-supervised objective: `encode(obs [..., *obs])` → embeddings
    `[..., embed_dim]`; `loss(obs [B, T, *obs], action [B, T, A], is_first [B, T] | None)` → (loss, metrics)
    on windows where `action[:, t]` is the action that led to `obs[:, t]` (the replay's convention;
    `action[:, 0]` is not used) and `is_first[:, t]` marks a new episode's first step, which no prediction
    crosses (None: each window lies in one episode), the metrics holding the collapse monitors
    `repr/embed_std` and `repr/effective_rank`;
    `update_target()`, called after each optimiser step, moves any target network toward the online one
    (nothing where there is none). Its trainable parameters are those with `requires_grad`."""

    embed_dim: int

    def encode(self, obs: Any) -> Tensor: ...

    def loss(self, obs: Any, action: Tensor, is_first: Tensor | None = None) -> Any: ...

    def update_target(self) -> None: ...


class Autoencoder(Protocol):
    """Observations (frames `[..., H, W, C]` or states `[..., D]`) → a latent distribution; a latent → a prediction
    of the observation; its own loss."""

    def forward(self, obs: Tensor) -> Any: ...

    def decode(self, z: Tensor) -> Any: ...

    def loss(self, obs: Tensor) -> Any: ...


class Dynamics(Protocol):
    """(state `[..., S]`, action `[..., A]`) → a distribution over the next state `[..., S]`."""

    def forward(self, state: Tensor, action: Tensor) -> Any: ...


class EnsembleDynamics(Dynamics, Protocol):
    """An ensemble that plans with particles (PETS): its own loss and normalisers, `propagate` (particles
    `[N, K, S]`, actions `[N, A]`, mode TS1 / TS∞ / expectation, optionally this step's assignment of
    particles to members) → next particles, and `assignment(N, K, mode)` → `[E, N·K/E]` flat indices.
    `members_normalised` gives each of the `members` E its prediction of the normalised change, mean and
    log σ² `[E, N, S]` from per-member batches `[E, N, S|A]` (Plan2Explore reads their disagreement)."""

    members: int

    def propagate(self, state: Tensor, action: Tensor, mode: str, order: Tensor | None = None) -> Tensor: ...

    def assignment(self, N: int, K: int, mode: str, device: Any) -> Tensor: ...

    def loss(self, state: Tensor, action: Tensor, next_state: Tensor) -> Any: ...

    def update_normalisers(self, state: Tensor, action: Tensor, next_state: Tensor) -> None: ...

    def members_normalised(self, state: Tensor, action: Tensor) -> tuple[Tensor, Tensor]: ...


class SequenceModel(Protocol):
    """A recurrent state-space model over embeddings `[B, T, E]` and actions `[B, T, A]`; its states are
    pytrees of tensors that only it looks inside; `feat_dim` is the size of `features(state)`. `observe`
    gives each step's posterior and prior `[B, T, ...]`; `starts(post, index)` the states `[N, ...]` to
    continue from at flat positions `index` of the B·T steps (imagination starts, a window's last step)."""

    feat_dim: int

    def initial(self, n: int) -> Any: ...

    def observe(self, embed: Tensor, action: Tensor, is_first: Tensor) -> Any: ...

    def obs_step(self, state: Any, action: Tensor, embed: Tensor, is_first: Tensor) -> Any: ...

    def img_step(self, state: Any, action: Tensor) -> Any: ...

    def starts(self, post: Any, index: Tensor) -> Any: ...

    def features(self, state: Any) -> Tensor: ...

    def dist(self, state: Any) -> Any: ...

    def imagine(self, start: Any, policy: Any, horizon: int, rsample: bool) -> Any: ...

    def compile_steps(self) -> None: ...


class Backbone(Protocol):
    """The deterministic path of an RSSM, h_t = f(h_{<t}, x_t): it carries `{"deter": [N, D], ...}` (and
    whatever else it needs) from step to step; `sequence` runs a window `[B, T, I]` and `starts` picks
    step carries out of its result."""

    def initial(self, deter: Tensor) -> Any: ...

    def step(self, x: Tensor, carry: Any) -> Any: ...

    def sequence(self, x: Tensor, is_first: Tensor, start: Any) -> Any: ...

    def starts(self, carries: Any, index: Tensor) -> Any: ...


class Memory(Protocol):
    """A recurrent predictor of the next latent (World Models' M): (z `[B, T, Z]`, action, state) →
    (a mixture over z', its recurrent state)."""

    def initial_state(self, n: int) -> Any: ...

    def forward(self, z: Tensor, action: Tensor) -> Any: ...


class Tokenizer(Protocol):
    """uint8 frames `[..., H, W, C]` ↔ discrete tokens `[..., K]` (`tokens` = K, `vocab` codes):
    `encode` → tokens (long), `decode` → predicted frames in pixel units, `loss(frames)` → (loss, metrics).
    A `temporal` tokenizer reads clips `[..., T, H, W, C]` (a frame's tokens from it and the frames before
    it, causally); the others read each frame alone."""

    tokens: int
    vocab: int
    temporal: bool

    def encode(self, frames: Tensor) -> Tensor: ...

    def decode(self, tokens: Tensor) -> Tensor: ...

    def loss(self, frames: Tensor) -> Any: ...


class TokenModel(Protocol):
    """A sequence model over frames of K tokens `[B, T, K]` each followed by an action `[B, T, A]`:
    `forward` predicts every frame's tokens, rewards and continues from everything before them; `start`
    reads a context into a cache and `step` imagines the next frame from it, one token at a time;
    `context` is how many frames it attends over (and trains on)."""

    context: int

    def forward(self, tokens: Tensor, action: Tensor) -> Any: ...

    def start(self, tokens: Tensor, action: Tensor, valid: Tensor, room: int) -> Any: ...

    def step(self, context: Any, action: Tensor) -> Any: ...


class LatentActionModel(Protocol):
    """Video without actions → a discrete latent action `[B, T−1]` (one of `actions` codes) between each pair
    of consecutive frames of clips `[B, T, H, W, C]`: `infer` → codes (long), `loss(frames)` → (loss,
    metrics), learnt by reconstructing each next frame from the frames before it and its code."""

    actions: int

    def infer(self, frames: Tensor) -> Tensor: ...

    def loss(self, frames: Tensor) -> Any: ...


class MaskedDynamics(Protocol):
    """A masked token model of the next frame (MaskGIT): clips of frames of K tokens `[B, T, K]` and the
    latent action between consecutive frames `[B, T−1]`: `loss(tokens, actions)` → (loss, metrics) of
    predicting masked tokens of frames 2…T; `generate(tokens, actions)` → the tokens `[B, K]` of the frame
    after `tokens` `[B, T, K]`, given the actions `[B, T]` that follow each frame, decoded iteratively."""

    def loss(self, tokens: Tensor, actions: Tensor) -> Any: ...

    def generate(self, tokens: Tensor, actions: Tensor) -> Tensor: ...


class Denoiser(Protocol):
    """A diffusion model of the next frame `[N, C, H, W]` given the `context` frames before it `[N, K, C, H, W]`
    (frames in [−1, 1]) and the actions taken in them `[N, K, A]`: `loss(...)` → (loss, metrics), `sample(...,
    steps, sampler)` → the next frame; `samplers` names the samplers it knows."""

    context: int
    samplers: tuple[str, ...]

    def loss(self, context_frames: Tensor, context_actions: Tensor, next_frame: Tensor) -> Any: ...

    def sample(self, context_frames: Tensor, context_actions: Tensor, steps: int, sampler: str) -> Tensor: ...


class Network(Protocol):
    """MuZero's h, g, f: `represent(obs)` → state, `dynamics(state, action)` → (state, reward logits),
    `predict(state)` → (policy logits, value logits)."""

    def represent(self, obs: Tensor) -> Tensor: ...

    def dynamics(self, state: Tensor, action: Tensor) -> Any: ...

    def predict(self, state: Tensor) -> Any: ...


class Head(Protocol):
    """Features `[..., in_dim]` → a distribution over a scalar `[...]` (reward, continue, value) or an
    action `[..., A]` (policy): `mean`/`mode`, `sample`, `log_prob` or `loss`."""

    def forward(self, features: Tensor) -> Any: ...


class EnsembleReward(Head, Protocol):
    """A reward ensemble (PETS): every member's prediction `members(x)` `[E, N]` (E = `members_count`), its
    loss and normalisers."""

    members_count: int

    def members(self, x: Tensor) -> Tensor: ...

    def loss(self, x: Tensor, reward: Tensor) -> Tensor: ...

    def update_normalisers(self, x: Tensor, reward: Tensor) -> None: ...


class Planner(Protocol):
    """An action-sequence optimiser: `optimize(objective, x0 [B, H, A])` → a plan; `warm_start(previous plan,
    B, device)` → (x0, candidates to reuse), uninformed where there is no plan."""

    def optimize(self, objective: Any, x0: Tensor) -> Any: ...

    def warm_start(self, previous: Any, batch: int, device: torch.device) -> Any: ...


class PriorPlanner(Planner, Protocol):
    """A planner that also scores fixed candidates every iteration: `prior` `[B, K, H, A]`, a policy's
    proposals (TD-MPC2's MPPI)."""

    def optimize(self, objective: Any, x0: Tensor, reuse: Tensor | None, prior: Tensor | None) -> Any: ...


class Search(Protocol):
    """A batched tree search: (obs, root_fn, recurrent_fn) → the search's policy, value and action `[B]`."""

    def __call__(self, obs: Any, root_fn: Any, recurrent_fn: Any) -> Any: ...


class AgentContract(Protocol):
    """An algorithm the trainer runs: its phases, acting on `[N, ...]` observations, updates on batches."""

    def phases(self, train: Any) -> Any: ...

    def initial_state(self, n: int) -> Any: ...

    def act(self, obs: Any, is_first: Tensor, state: Any, explore: bool) -> Any: ...

    def update(self, batch: dict) -> dict: ...


class GoalConditioned(AgentContract, Protocol):
    """An agent that acts toward goal observations (the `goal_success` evaluation): `goal_state(goal
    [N, *obs])` → the acting state with which `act` pursues them; `describe_planning()` → one line of the
    settings it plans with, printed with the result."""

    def goal_state(self, goal: Any) -> Any: ...

    def describe_planning(self) -> str: ...


class Positioned(Protocol):
    """An environment whose goals the `goal_success` evaluation judges (`wm/TwoRoom-v0`, `maze:PointMaze_*`):
    `info["position"]` (x, y) after every reset and step, in its own units; `reset(options={"position": (x,
    y)})` starts it at rest there; `step_size` (on `env.unwrapped`), the farthest the position moves along an
    axis in one step, is the unit of the evaluator's distances."""

    step_size: float

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> Any: ...

    def step(self, action: Any) -> Any: ...


def methods(contract: type) -> dict[str, inspect.Signature]:
    """The methods a contract names (its own and its bases'), with their signatures."""
    out: dict[str, inspect.Signature] = {}
    for base in reversed(contract.__mro__):
        if base in (object, Protocol, Generic):
            continue
        for name, value in vars(base).items():
            if callable(value) and (not name.startswith("_") or name == "__call__"):
                out[name] = inspect.signature(value)
    return out


def unfit(cls: type, contract: type) -> list[str]:
    """What `cls` lacks of `contract`: a missing method, or one that cannot take the contract's positional
    arguments (too few, or more that it requires); empty when it fits."""
    problems = []
    for name, wanted in methods(contract).items():
        method = getattr(cls, name, None)
        if method is None or not callable(method):
            problems.append(f"no method {name}()")
            continue
        try:
            have = inspect.signature(method)
        except (TypeError, ValueError):
            continue  # a builtin that cannot be inspected: trust it
        n = len([p for p in wanted.parameters.values() if p.name != "self"])
        params = [p for p in have.parameters.values() if p.name != "self"]
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        varargs = any(p.kind == p.VAR_POSITIONAL for p in params)
        required = [p for p in positional if p.default is p.empty]
        if len(required) > n or (len(positional) < n and not varargs):
            problems.append(f"{name}() takes ({', '.join(p.name for p in positional)}), not {n} arguments")
    return problems


def describe(contract: type) -> str:
    """One line: the contract's methods with their arguments."""
    parts = []
    for name, sig in methods(contract).items():
        args = ", ".join(p.name for p in sig.parameters.values() if p.name != "self")
        parts.append(f"{name}({args})")
    return "; ".join(parts)
