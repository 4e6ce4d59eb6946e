"""C of World Models (Ha & Schmidhuber 2018): a tiny controller a_t = C([z_t, h_t]) found by CMA-ES.

`Controller` evaluates a whole population at once: each row of a batch acts with its own flat
parameter vector (`[P, num_params]`), so every candidate × rollout steps in one tensor operation.
`Evolution` wraps CMA-ES from the `cma` package (maximising fitness) and keeps its state as JSON:
the fitness values it was told, from which an identical search is rebuilt by replaying ask/tell
(the random draws come from a private, seeded stream), so a checkpoint never needs pickle.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from worldmodels.errors import CheckpointError
from worldmodels.schema import positive
from worldmodels.spaces import ActSpec


@dataclass
class ControllerConfig:
    kind: Literal["linear", "mlp"] = "linear"
    """`linear`: a = W [z, h] + b (the paper); `mlp`: one tanh hidden layer in between."""
    hidden: int = positive(16)
    """Units of the hidden layer of the `mlp` controller."""


class Controller:
    """Actions `[N, A]` from inputs `[N, in_dim]` and one parameter vector per row `[N, num_params]`.

    Continuous actions are tanh of the output (in [-1, 1]); discrete ones the one-hot argmax.
    """

    def __init__(self, cfg: ControllerConfig, in_dim: int, act_spec: ActSpec):
        self.cfg, self.in_dim, self.act_spec = cfg, in_dim, act_spec
        out = act_spec.dim
        shapes = [(in_dim, out), (out,)] if cfg.kind == "linear" else [(in_dim, cfg.hidden), (cfg.hidden,)]
        if cfg.kind == "mlp":
            shapes += [(cfg.hidden, out), (out,)]
        self.shapes = shapes
        self.num_params = sum(int(np.prod(s)) for s in shapes)

    def __call__(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        params = params.expand(n, -1) if params.shape[0] == 1 else params
        y, offset = x, 0
        layers = len(self.shapes) // 2
        for i in range(layers):
            (rows, cols), _ = self.shapes[2 * i], self.shapes[2 * i + 1]
            weight = params[:, offset : offset + rows * cols].reshape(n, rows, cols)
            offset += rows * cols
            bias = params[:, offset : offset + cols]
            offset += cols
            y = torch.baddbmm(bias[:, None], y[:, None], weight)[:, 0]  # [N, cols]
            if i < layers - 1:
                y = torch.tanh(y)
        if self.act_spec.discrete:
            return torch.nn.functional.one_hot(y.argmax(-1), self.act_spec.dim).to(x.dtype)
        return torch.tanh(y)


@contextlib.contextmanager
def _private_numpy(state: dict[str, Any]) -> Iterator[None]:
    """Run with numpy's global random stream set to `state["rng"]` (cma draws from it), then store the
    advanced stream back and restore the caller's, so nothing else moves CMA-ES's draws."""
    outer = np.random.get_state()
    np.random.set_state(state["rng"])
    try:
        yield
    finally:
        state["rng"] = np.random.get_state()
        np.random.set_state(outer)


class Evolution:
    """CMA-ES maximising a fitness over `dim` parameters, starting at zeros (or `x0`) with step size `sigma`."""

    def __init__(self, dim: int, sigma: float, popsize: int, seed: int, x0: np.ndarray | None = None):
        import cma

        self.dim, self.sigma0, self.popsize, self.seed = dim, sigma, popsize, seed
        self.x0 = np.zeros(dim) if x0 is None else np.asarray(x0, np.float64)
        self.history: list[list[float]] = []
        self._rng = {"rng": np.random.RandomState(seed % 2**32).get_state()}
        options = {"popsize": popsize, "seed": np.nan, "verbose": -9, "verb_log": 0, "verb_disp": 0}
        with _private_numpy(self._rng):
            self.es = cma.CMAEvolutionStrategy(self.x0, sigma, options)
        self._asked: np.ndarray | None = None

    @property
    def generation(self) -> int:
        return len(self.history)

    @property
    def mean(self) -> np.ndarray:
        """The centre of the search distribution: the best guess of the optimum on a noisy fitness."""
        return np.asarray(self.es.mean, np.float64).copy()

    @property
    def step_size(self) -> float:
        return float(self.es.sigma)

    def ask(self) -> np.ndarray:
        """The next population `[popsize, dim]` (the same one until `tell` is called)."""
        if self._asked is None:
            with _private_numpy(self._rng):
                self._asked = np.asarray(self.es.ask(), np.float64)
        return self._asked

    def tell(self, fitness: np.ndarray) -> None:
        """Fitness `[popsize]` of the population from `ask` (higher is better)."""
        fitness = np.asarray(fitness, np.float64)
        population = self.ask()
        with _private_numpy(self._rng):
            self.es.tell(list(population), list(-fitness))
        self.history.append(fitness.tolist())
        self._asked = None

    def state_dict(self) -> dict[str, Any]:
        """JSON-ready: the settings, every generation's fitness, and the mean they led to (a check)."""
        return {
            "dim": self.dim,
            "sigma0": self.sigma0,
            "popsize": self.popsize,
            "seed": self.seed,
            "x0": self.x0.tolist(),
            "history": self.history,
            "mean": self.mean.tolist(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Evolution:
        """Rebuild the search by replaying its generations; refuse if it does not end where it did."""
        evo = cls(state["dim"], state["sigma0"], state["popsize"], state["seed"], np.asarray(state["x0"]))
        for fitness in state["history"]:
            evo.tell(np.asarray(fitness))
        if not np.allclose(evo.mean, state["mean"], rtol=1e-6, atol=1e-9):
            raise CheckpointError(
                "replaying the saved CMA-ES generations does not reproduce the saved search (another version "
                "of the `cma` package?); restart the controller phase with train.phase=controller"
            )
        return evo
