"""The update streams of one phase at run time (`Stream` in `phases.py`): each stream's update credit and
counter, which stream runs when, and the warm-up of its learning rates. Counters and credit are part of
the phase's checkpoint, so a resumed run continues every stream where it was."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from worldmodels import distributed
from worldmodels.agents.base import Agent, Metrics, to_tensor
from worldmodels.data.sources import Source
from worldmodels.errors import ConfigError
from worldmodels.phases import Stream
from worldmodels.train.metrics import Stopwatch

Note = Callable[[Metrics], None]


class Streams:
    """A phase's streams: those that sample lead, each with the streams that follow it. Under torchrun each
    rank samples its part of every batch (`SampleSpec.batch_size` is the global batch) and the ranks update
    in lockstep: a stream updates when every rank's data can give it a batch."""

    def __init__(self, specs: tuple[Stream, ...], agent: Agent, phase: str, clock: Stopwatch):
        self.agent, self.clock = agent, clock
        self.groups: list[tuple[Stream, list[Stream]]] = []
        for spec in specs:
            if not callable(getattr(agent, spec.method, None)):
                raise ConfigError(f"phase '{phase}': stream '{spec.name}' needs agent method {spec.method}(batch)")
            for name in spec.trains:
                if name not in agent.optimizers:
                    raise ConfigError(f"phase '{phase}': stream '{spec.name}' trains unknown optimiser '{name}'")
            if spec.sample is not None:
                self.groups.append((spec, []))
            else:
                self.groups[-1][1].append(spec)
        self.counts = {spec.name: 0 for spec in specs}
        self.credit = {lead.name: 0.0 for lead, _ in self.groups}
        self.local = {
            lead.name: replace(lead.sample, batch_size=distributed.local_batch(lead.sample.batch_size))
            for lead, _ in self.groups
        }

    @property
    def leads(self) -> list[Stream]:
        return [lead for lead, _ in self.groups]

    def earn(self, amount: Callable[[Stream], float], step: int) -> None:
        """Add `amount(stream)` updates of credit to every sampling stream that has started by `step`."""
        for lead in self.leads:
            if step >= lead.start:
                self.credit[lead.name] += amount(lead)

    def run(self, source: Source, note: Note, sampled: Callable[[Any], None] | None = None) -> None:
        """Spend every stream's whole credit: one update (with its followers) per unit. `sampled(index)`
        follows each update of a prioritised agent, with the replay rows the batch came from."""
        for lead, follow in self.groups:
            sample = self.local[lead.name]
            if self.credit[lead.name] < 1.0 or not distributed.agree(source.can_sample(sample)):
                continue
            while self.credit[lead.name] >= 1.0:
                self.credit[lead.name] -= 1.0
                with self.clock.part("sample"):
                    batch = source.sample(sample)
                    index = batch.get("index")
                    batch = {k: to_tensor(v, self.agent.device) for k, v in batch.items()}
                n = self.counts[lead.name]
                with self.clock.part("update"):
                    self._update(lead, batch, note)
                    self.agent.updates += 1
                    if sampled is not None and self.agent.priority is not None:
                        sampled(index)
                    for spec in follow:
                        if n >= spec.start and (spec.every == 0 or n % spec.every == 0):
                            self._update(spec, batch, note)

    def _update(self, spec: Stream, batch: dict[str, Any], note: Note) -> None:
        if spec.warmup:
            self._warm(spec)
        note(getattr(self.agent, spec.method)(batch))
        self.counts[spec.name] += 1

    def _warm(self, spec: Stream) -> None:
        """The learning rates of the stream's optimisers: linearly up to their configured value over its
        first `warmup` updates (lr · (n + 1) / warmup at its n-th)."""
        factor = min(1.0, (self.counts[spec.name] + 1) / spec.warmup)
        for name in spec.trains:
            for group in self.agent.optimizers[name].param_groups:
                group.setdefault("initial_lr", group["lr"])
                group["lr"] = group["initial_lr"] * factor

    def state_dict(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "credit": dict(self.credit)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state["counts"]) != set(self.counts):
            raise ConfigError(
                f"the checkpoint's update streams ({', '.join(state['counts'])}) are not the agent's "
                f"({', '.join(self.counts)})"
            )
        self.counts = {k: int(v) for k, v in state["counts"].items()}
        self.credit = {k: float(v) for k, v in state["credit"].items()}

    def summary(self) -> dict[str, int]:
        return {f"updates/{name}": n for name, n in self.counts.items()} if len(self.counts) > 1 else {}
