"""Imagination speed: seconds to imagine H steps for N rollouts in the transformer world models, with the
key/value cache (as the agents imagine) and without it (the transformer re-run over the whole sequence so
far at every step, masked to the same attention window), on one thread, random weights, median of a few
repeats after a warm-up:

- IRIS's token world model (`token_transformer`, presets iris_minatar and iris_atari): an imagined frame
  is K + 1 token steps (the action, then the frame's K tokens), from the preset's `imagine_context` frames;
- STORM's transformer RSSM (`storm_minatar`): one step per frame, from starts carrying the keys and values
  of the `context` − 1 steps before them, as the agent's starts do.

    python benchmarks/imagination_speed.py --out result.json [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.distributions import OneHotCategorical

from worldmodels.config import load_config
from worldmodels.dynamics.rssm import RSSM
from worldmodels.dynamics.token_transformer import TokenTransformer
from worldmodels.spaces import ActSpec, ObsSpec
from worldmodels.train.loop import build_agent

MINATAR, ATARI = ObsSpec((10, 10, 4), "uint8"), ObsSpec((64, 64, 3), "uint8")  # Breakout: 3 and 4 actions
IRIS = [  # preset, frames, actions, N, H
    ("iris_minatar", MINATAR, 3, 32, 8),  # the preset's actor-critic batch and horizon
    ("iris_atari", ATARI, 4, 8, 5),  # not the preset's 64 x 20: uncached, that takes over an hour here
]
STORM = ("storm_minatar", MINATAR, 3, 256, 15)  # the preset's imagination starts and horizon


def seconds(run: Callable[[int], object], horizon: int, repeats: int) -> float:
    """Median wall time of `run(horizon)` over `repeats` calls, after a warm-up `run(1)`."""
    run(1)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(horizon)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# ---------------------------------------------------------------------- IRIS


def iris_cached(
    wm: TokenTransformer, tokens: torch.Tensor, actions: torch.Tensor, horizon: int, given: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Context tokens `[N, C, K]` and actions `[N, C−1+H, A]` → imagined tokens `[N, H, K]`, their logits
    `[N, H, K, V]` and rewards `[N, H]`, by `start` and H `step`s (`given` `[N, H, K]`: tokens fed instead)."""
    C = tokens.shape[1]
    valid = torch.ones(tokens.shape[:2], dtype=torch.bool)
    ctx = wm.start(tokens, actions[:, : C - 1], valid, room=horizon)
    frames = [wm.step(ctx, actions[:, C - 1 + t], None if given is None else given[:, t]) for t in range(horizon)]
    return tuple(torch.stack(f, 1) for f in zip(*((f.tokens, f.logits, f.reward.mean) for f in frames)))


def iris_uncached(
    wm: TokenTransformer, tokens: torch.Tensor, actions: torch.Tensor, horizon: int, given: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """As `iris_cached`, without a cache: before each token is drawn the transformer re-runs over the whole
    sequence so far `[N, L, D]`, each position attending to its `context`-frame window as in the cached
    steps, and the last position's output goes through the same heads (K runs per frame: the frame's last
    token needs no output of its own, the next action's run reads it)."""
    N, C, K = tokens.shape

    def last(x: torch.Tensor) -> torch.Tensor:
        index = torch.arange(x.shape[1])
        mask = (index[None] <= index[:, None]) & wm._near(index, index)  # [L, L], the mask `start` uses
        return wm.transformer(x, mask=mask[None], pos=index.expand(N, -1))[:, -1]

    x = wm.sequence(tokens, F.pad(actions[:, : C - 1], (0, 0, 0, 1)))[:, :-1]  # as `start`: ends on z_{C-1}^K
    drawn, logits, reward = [], [], []
    for t in range(horizon):
        x = torch.cat([x, (wm.action_embed(actions[:, C - 1 + t]) + wm.slot_embed[K])[:, None]], 1)
        y = last(x)
        reward.append(wm.reward(y).mean)
        for k in range(K):
            logits.append(wm.next_token(y))
            z = torch.distributions.Categorical(logits=logits[-1] / wm.cfg.temperature).sample()
            drawn.append(z if given is None else given[:, t, k])
            x = torch.cat([x, (wm.token_embed(drawn[-1]) + wm.slot_embed[k])[:, None]], 1)
            y = last(x) if k < K - 1 else y
    frames = (N, horizon, K)
    return torch.stack(drawn, 1).view(frames), torch.stack(logits, 1).view(*frames, -1), torch.stack(reward, 1)


def iris_row(preset: str, obs: ObsSpec, actions: int, N: int, H: int, repeats: int) -> tuple[list, str]:
    """A table row for the preset's world model, and the check that both paths give the same logits."""
    agent = build_agent(load_config(preset, ["device=cpu"]), obs, ActSpec(True, actions))
    wm, C = agent.world_model.eval(), agent.cfg.imagine_context
    K, V = agent.tokenizer.tokens, agent.tokenizer.vocab

    def inputs(n: int, h: int) -> tuple[torch.Tensor, torch.Tensor]:
        action = F.one_hot(torch.randint(actions, (n, C - 1 + h)), actions).float()
        return torch.randint(V, (n, C, K)), action

    tokens, action = inputs(2, H)  # the check: the cached rollout's tokens fed to the uncached path
    drawn, logits, reward = iris_cached(wm, tokens, action, H)
    _, logits_u, reward_u = iris_uncached(wm, tokens, action, H, given=drawn)
    diff = max((logits - logits_u).abs().max().item(), (reward - reward_u).abs().max().item())
    tokens, action = inputs(N, H)
    cached = seconds(lambda h: iris_cached(wm, tokens, action[:, : C - 1 + h], h), H, repeats)
    uncached = seconds(lambda h: iris_uncached(wm, tokens, action[:, : C - 1 + h], h), H, repeats)
    cfg = wm.cfg
    model = f"IRIS {preset} ({cfg.layers} x {cfg.dim}, window {cfg.context} frames, from {C} real)"
    check = f"{preset}, |logits or rewards| {diff:.1e} over 2 x {H} frames"
    return [model, f"{N} x {H}", K + 1, round(cached, 3), round(uncached, 3), round(uncached / cached, 1)], check


# ---------------------------------------------------------------------- STORM


def storm_uncached(
    rssm: RSSM, window: torch.Tensor, start: dict[str, torch.Tensor], policy: Callable, horizon: int
) -> torch.Tensor:
    """As `rssm.imagine(start, policy, horizon)`, without a cache: each step appends its input x_t to the
    start's window of backbone inputs `[N, T, I]` and runs `backbone.sequence` over all of it (masked to
    the same `context`); features `[H+1, N, F]`."""
    stoch, feats = start["stoch"], [rssm.features(start)]
    for _ in range(horizon):
        action = policy(feats[-1]).sample()
        window = torch.cat([window, rssm.img_in(torch.cat([stoch, action], -1))[:, None]], 1)
        is_first = F.pad(torch.ones(len(window), 1, dtype=torch.bool), (0, window.shape[1] - 1))
        deter = rssm.backbone.sequence(window, is_first, {})["deter"][:, -1]
        stoch = rssm._sample(rssm._stats(rssm.prior_net(deter)))  # as `_img_step`
        feats.append(torch.cat([deter, stoch], -1))
    return torch.stack(feats)


def storm_row(preset: str, obs: ObsSpec, actions: int, N: int, H: int, repeats: int) -> tuple[list, str]:
    """A table row for the preset's RSSM, starts from random windows of `context` backbone inputs."""
    agent = build_agent(load_config(preset, ["device=cpu"]), obs, ActSpec(True, actions))
    rssm, T = agent.rssm.eval(), agent.rssm.backbone.context

    def policy(feat: torch.Tensor) -> OneHotCategorical:
        return OneHotCategorical(logits=feat.new_zeros(len(feat), actions))

    def starts(n: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        window = torch.randn(n, T, rssm.cfg.hidden)
        is_first = F.pad(torch.ones(n, 1, dtype=torch.bool), (0, T - 1))
        carry = rssm.backbone.starts(rssm.backbone.sequence(window, is_first, {}), torch.arange(n) * T + T - 1)
        stoch = F.one_hot(torch.randint(rssm.cfg.classes, (n, rssm.cfg.stoch)), rssm.cfg.classes).flatten(1)
        return window, {**carry, "stoch": stoch.float()}

    window, start = starts(8)  # the check: the same draws (same seed) through both paths
    torch.manual_seed(1)
    feats = rssm.imagine(start, policy, H, rsample=False)[0]
    torch.manual_seed(1)
    diff = (feats - storm_uncached(rssm, window, start, policy, H)).abs().max().item()
    window, start = starts(N)
    cached = seconds(lambda h: rssm.imagine(start, policy, h, rsample=False), H, repeats)
    uncached = seconds(lambda h: storm_uncached(rssm, window, start, policy, h), H, repeats)
    net = rssm.backbone.net.cfg
    model = f"STORM {preset} ({net.layers} x {net.dim}, window {T} steps, {T - 1} cached)"
    check = f"{preset}, |features| {diff:.1e} over 8 x {H} steps (the same draws)"
    return [model, f"{N} x {H}", 1, round(cached, 3), round(uncached, 3), round(uncached / cached, 1)], check


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    load = os.getloadavg()[0]
    with torch.no_grad():
        measured = [iris_row(*case, args.repeats) for case in IRIS] + [storm_row(*STORM, args.repeats)]
    rows, checks = zip(*measured)
    n, h, uncached = IRIS[1][3], IRIS[1][4], rows[1][4]
    paper = uncached * 64 / n * (20 / h) ** 2 / 60  # at least: the sequence also grows with H
    columns = ["world model", "N x H", "tokens per imagined frame", "with cache (s)", "without cache (s)", "speed-up"]
    print(" | ".join(columns))
    for row in rows:
        print(" | ".join(map(str, row)))
    result = {
        "description": (
            "Seconds to imagine H steps for N rollouts, with the key/value cache and re-running the transformer "
            f"over the whole sequence at every token step; median of {args.repeats} after a warm-up, random weights"
        ),
        "columns": columns,
        "rows": rows,
        "notes": (
            f"torch {torch.__version__}, 1 intra-op thread, torch.no_grad. Largest difference between the "
            f"paths fed the same tokens: {'; '.join(checks)}. iris_atari at N x H = {n} x {h} instead of the "
            f"preset's 64 x 20, where the uncached path would take over {paper:.0f} min here (time ∝ N·H² at "
            "least). Tokens per imagined frame: cached transformer steps (IRIS: the action and K tokens). "
            "1-minute load average "
            f"{load:.1f} before and {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} CPU threads."
        ),
    }
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
