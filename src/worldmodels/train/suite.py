"""`wm bench --suite NAME`: every agent on every task of a suite that fits its action space, one result per cell.

A suite is a YAML file in `benchmarks/suites/`:

    description: what the suite measures
    steps: 50000                 # env-step budget of every task (a task may set its own)
    evaluations: 10              # evaluations per run, evenly spaced
    eval_episodes: 10
    random_episodes: 100         # episodes of the uniform random policy that give each task's floor
    tasks:
      CartPole-v1: {reference: {score: 475, source: "..."}}
    agents:                      # row name: the preset it runs (its default, or its documented domain preset)
      latent_mlp: latent_mlp
      pets: {preset: pets, steps: 5000, evaluations: 2, eval_episodes: 5}

A cell runs `wm train PRESET env.id=TASK` with nothing else changed but the budget, the evaluation cadence,
the seed and one torch thread (the preset's own early stop is switched off, so that every cell runs its whole
budget; a cell interrupted after a checkpoint resumes from it when its code still behaves the same). Each
cell is a file `benchmarks/results/suites/SUITE/ROW--TASK.json` holding the final evaluation, the curve and
two fingerprints of the code it ran: a hash of the source of every module its run imports and of its
resolved config, and the hash of what a short same-seed run of it does (`train/probe.py`: its weights and
evaluation after a hundred env steps). A suite run fills only the cells that are missing or stale, so the
table fills over several sittings: a cell whose source has changed is probed, and kept when the probe
still gives the same hash (an edit it never reaches: another agent, a new registry kind), stale otherwise.
A task's floor is the `random` row, measured by the same command. A score is normalised as
(return − random) / (reference − random); a cell counts as learned at 0.5 or more.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import importlib
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from worldmodels.config import load_config
from worldmodels.errors import ConfigError, TrainingError, closest, process_failure
from worldmodels.figures import read_metrics
from worldmodels.schema import parse, to_dict
from worldmodels.train.checkpoint import latest_checkpoint

RANDOM = "random"
LEARNED = 0.5
"""A cell whose normalised score reaches this has learned its task."""
REPORTING = ("worldmodels.train.bench", "worldmodels.train.suite", "worldmodels.figures", "worldmodels.cli")
"""Modules that only report results: changing them leaves every cell fresh."""


@dataclass
class Reference:
    """A published score to read results against, and where it comes from."""

    score: float | None = None
    source: str = ""


@dataclass
class SuiteTask:
    reference: Reference = field(default_factory=Reference)
    steps: int | None = None
    """The task's own env-step budget (default: the suite's)."""


@dataclass
class SuiteAgent:
    preset: str = "latent_mlp"
    steps: int | None = None
    """A budget below the tasks' for an agent whose env steps cost more (PETS plans every action)."""
    evaluations: int | None = None
    """Fewer evaluations than the suite's for such an agent (default: the suite's)."""
    eval_episodes: int | None = None
    """Fewer episodes per evaluation than the suite's for such an agent (default: the suite's)."""


@dataclass
class Suite:
    description: str = ""
    steps: int = 50_000
    evaluations: int = 10
    eval_episodes: int = 10
    random_episodes: int = 100
    seeds: list[int] = field(default_factory=lambda: [0])
    tasks: dict[str, SuiteTask] = field(default_factory=dict)
    agents: dict[str, SuiteAgent] = field(default_factory=dict)


@dataclass
class Cell:
    row: str
    task: str
    preset: str
    overrides: list[str]
    fingerprint: str
    path: Path
    seeds: list[int] = field(default_factory=list)
    key: dict[str, Any] | None = None
    """Its probe key once taken (`cell_behaviour`): a suite run probes a cell once."""

    @property
    def command(self) -> str:
        return " ".join(["wm train", self.preset, *self.overrides])

    @property
    def train_command(self) -> str:
        """The training command its result stores (none for the random policy's floor)."""
        return self.command if self.row != RANDOM else ""


def suites_dir(bench: Path) -> Path:
    return bench / "suites"


def load_suite(bench: Path, name: str) -> Suite:
    available = {p.stem: p for p in sorted(suites_dir(bench).glob("*.yaml"))}
    if name not in available:
        raise ConfigError(f"unknown benchmark suite '{name}'{closest(name, available)}; suites: {', '.join(available)}")
    data = yaml.safe_load(available[name].read_text()) or {}
    tasks = {k: parse(SuiteTask, v or {}, f"suites/{name}.tasks.{k}") for k, v in data.pop("tasks", {}).items()}
    agents = {
        k: parse(SuiteAgent, {"preset": v} if isinstance(v, str) else v, f"suites/{name}.agents.{k}")
        for k, v in data.pop("agents", {}).items()
    }
    return dataclasses.replace(parse(Suite, data, f"suites/{name}"), tasks=tasks, agents=agents)


def code_modules(roots: set[str]) -> set[str]:
    """`roots` and every `worldmodels` module they import, transitively. A package's `__init__` is followed
    only for names it defines itself, so the registries' import-everything packages do not tie a cell to
    every agent; `import worldmodels.x` of a module (for its registration) is followed."""
    seen: set[str] = set()
    todo = sorted(roots)
    while todo:
        name = todo.pop()
        if name in seen or name in REPORTING or not name.startswith("worldmodels."):
            continue
        seen.add(name)
        for node in ast.walk(ast.parse(Path(importlib.import_module(name).__file__).read_text())):
            if isinstance(node, ast.Import):
                todo += [a.name for a in node.names if a.name.startswith("worldmodels.") and not _is_package(a.name)]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("worldmodels"):
                todo += [_defining_module(node.module, a.name) for a in node.names]
    return seen


def code_fingerprint(roots: set[str], extra: Any) -> str:
    """A hash of the source of `code_modules(roots)` and of the JSON of `extra` (the resolved config)."""
    digest = hashlib.sha256(json.dumps(extra, sort_keys=True, default=str).encode())
    for name in sorted(code_modules(roots)):
        digest.update(name.encode() + Path(sys.modules[name].__file__).read_bytes())
    return digest.hexdigest()[:16]


def _is_package(name: str) -> bool:
    return hasattr(importlib.import_module(name), "__path__")


def _defining_module(module: str, name: str) -> str:
    """The module that defines `name` of `from module import name`."""
    value = getattr(importlib.import_module(module), name, None)
    if value is None:
        return f"{module}.{name}"  # a submodule not yet imported
    if hasattr(value, "__file__"):
        return value.__name__
    defined = getattr(value, "__module__", None) or ""
    return defined if defined.startswith("worldmodels.") else module  # a constant or an alias: where it is set


def plan_cells(
    name: str, suite: Suite, results: Path, rows: list[str], tasks: list[str]
) -> tuple[list[Cell], list[str]]:
    """The cells of the suite (restricted to `rows`/`tasks` when given) whose agent fits the task's action
    space, and for each row that does not fit a task, why."""
    for chosen, known, what in ((rows, [RANDOM, *suite.agents], "agent row"), (tasks, list(suite.tasks), "task")):
        for item in chosen:
            if item not in known:
                if what == "agent row" and item in suite.tasks:  # `--agents ROW TASK`: --agents took the task too
                    raise ConfigError(
                        f"'{item}' is a task of suite '{name}', not an agent row: name tasks before --agents "
                        f"(wm bench --suite {name} {item} --agents {' '.join(r for r in rows if r != item)})"
                    )
                hint = closest(item, known)
                raise ConfigError(f"suite '{name}' has no {what} '{item}'{hint}; valid: {', '.join(known)}")
    cells, skipped = [], []
    for task, spec in suite.tasks.items():
        if tasks and task not in tasks:
            continue
        steps = spec.steps or suite.steps
        if not rows or RANDOM in rows:
            roots = {"worldmodels.envs.make", "worldmodels.envs.pool", __name__}
            overrides = [f"env.id={task}", f"episodes={suite.random_episodes}"]
            fp = code_fingerprint(roots, {"task": task, "episodes": suite.random_episodes})
            cells.append(Cell(RANDOM, task, "", overrides, fp, results / f"{RANDOM}--{task}.json"))
        for row, agent_spec in suite.agents.items():
            if rows and row not in rows:
                continue
            budget = min(steps, agent_spec.steps or steps)
            overrides = [
                f"env.id={task}",
                f"train.steps={budget}",
                f"train.eval_every={max(1, budget // (agent_spec.evaluations or suite.evaluations))}",
                f"train.eval_episodes={agent_spec.eval_episodes or suite.eval_episodes}",
                "train.stop_return=null",
                "train.threads=1",
            ]
            try:
                fp = run_fingerprint(agent_spec.preset, overrides, suite.seeds)
            except ConfigError as err:
                skipped.append(f"{row} × {task}: {err}")
                continue
            path = results / f"{row}--{task}.json"
            cells.append(Cell(row, task, agent_spec.preset, overrides, fp, path, suite.seeds))
    return cells, skipped


def run_fingerprint(preset: str, overrides: list[str], extra: Any = None) -> str:
    """The `code_fingerprint` of a training run of `preset` with `overrides`: the modules of its agent's
    parts and of the trainer and environments, and its resolved config (with `extra`). Raises the
    ConfigError of an agent that does not fit the environment's observations or actions."""
    from worldmodels.envs import make_env
    from worldmodels.envs.spaces import act_spec_of, obs_spec_of
    from worldmodels.registry import AGENTS

    cfg = load_config(preset, overrides)
    env = make_env(cfg.env)  # the preset's own env settings (frames or states, action repeat)
    obs_spec, act_spec = obs_spec_of(env.observation_space, cfg.env.id), act_spec_of(env.action_space, cfg.env.id)
    env.close()
    agent = AGENTS.build(cfg.agent.name, cfg.agent.cfg, obs_spec=obs_spec, act_spec=act_spec)
    roots = {"worldmodels.train.loop", "worldmodels.envs.make", "worldmodels.envs.pool", type(agent).__module__}
    roots |= {type(m).__module__ for m in agent.modules()} | {type(v).__module__ for v in vars(agent).values()}
    agent_class = AGENTS.get(cfg.agent.name).__qualname__
    return code_fingerprint(
        {r for r in roots if r.startswith("worldmodels.")},
        {"config": to_dict(cfg), "seeds": extra, "agent": agent_class},
    )


def status(cell: Cell, probe: bool = False) -> str:
    """`fresh`, `stale` (its code or its command changed since it ran) or `missing`. With `probe`, a cell
    whose source has changed, under the same command, is fresh again when its probe run still gives the hash
    stored with it, or when the code of the commit that stored that hash gives today's probe here (the
    environment moved, not the code); its new fingerprints are then stored, so the next check is quick.
    Without `probe`, it counts as stale."""
    if not cell.path.exists():
        return "missing"
    stored = json.loads(cell.path.read_text())
    if stored.get("fingerprint") == cell.fingerprint:
        return "fresh"
    if not (probe and stored.get("behaviour")) or stored.get("train_command", cell.train_command) != cell.train_command:
        return "stale"  # a cell whose command changed (another preset, say) ran something else: no probe can keep it
    now = cell_behaviour(cell)
    if not same_behaviour(stored["behaviour"], now):
        then = probe_of_storing_code(cell, stored["behaviour"])
        if then is None or not same_behaviour(stored_behaviour(then), now):
            return "stale"
        print(
            f"[suite] {cell.row} × {cell.task}: kept: its probe changed with the environment, not the code "
            "(the code that stored it gives today's probe here)",
            flush=True,
        )
    kept = {**stored, "fingerprint": cell.fingerprint, "behaviour": stored_behaviour(now)}
    cell.path.write_text(json.dumps(kept, indent=1))
    return "fresh"


def storing_commit(path: Path, state: str) -> str | None:
    """The commit that first stored probe state `state` in result `path` (git's pickaxe: the oldest commit
    that adds the string), or None where there is none (no git checkout, a result not committed yet)."""
    cmd = ["git", "log", "--format=%H", "-S", state, "--", path.name]
    proc = subprocess.run(cmd, cwd=path.parent, capture_output=True, text=True)
    commits = proc.stdout.split()
    return commits[-1] if proc.returncode == 0 and commits else None


def probe_of_storing_code(cell: Cell, stored: Any) -> dict[str, Any] | None:
    """The probe key of `cell` run with the code of the commit that stored its key, in this environment (a
    temporary git worktree), or None where that commit is unknown. Equal to today's probe, it shows that the
    code behaves as it did and what moved is the environment (a package's new version): the result stands."""
    commit = storing_commit(cell.path, stored["state"]) if isinstance(stored, dict) else None
    if commit is None:
        return None
    top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=cell.path.parent, capture_output=True, text=True)
    with tempfile.TemporaryDirectory() as tmp:
        code = Path(tmp) / "code"
        add = ["git", "worktree", "add", "--detach", "--quiet", str(code), commit]
        if subprocess.run(add, cwd=top.stdout.strip(), capture_output=True).returncode != 0:
            return None
        try:
            return behaviour(cell.preset, cell.overrides, cell.seeds, source=code / "src")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(code)], cwd=top.stdout.strip())


def cell_behaviour(cell: Cell) -> dict[str, Any]:
    """The `behaviour` of a cell's run, taken once."""
    if cell.key is None:
        cell.key = behaviour(cell.preset, cell.overrides, cell.seeds)
    return cell.key


def behaviour(preset: str, overrides: list[str], extra: Any = None, source: Path | None = None) -> dict[str, Any]:
    """What the code of a run of `preset` with `overrides` does (`train/probe.py`), its hashes taken with
    `extra` (such as the seeds); the code in `source` (a `src` folder) instead of this one's when given. The
    probe runs in a process of its own, so that probes in parallel threads share no torch state."""
    cmd = [sys.executable, "-m", "worldmodels.train.probe", preset, *overrides]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(source or ""), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env if source else None)
    if proc.returncode != 0:
        raise process_failure(f"the probe run of {preset}", proc.returncode, proc.stderr)
    probed = json.loads(proc.stdout.strip().splitlines()[-1])

    def keyed(probe_hash: str) -> str:
        what = json.dumps({"probe": probe_hash, "extra": extra}, sort_keys=True, default=str)
        return hashlib.sha256(what.encode()).hexdigest()[:16]

    return {**probed, "state": keyed(probed["state"]), "legacy": keyed(probed["legacy"])}


def stored_behaviour(key: dict[str, Any]) -> dict[str, Any]:
    """The part of a probe key a result keeps (not the legacy hash)."""
    return {"state": key["state"], "config": key["config"]}


def same_behaviour(stored: Any, now: dict[str, Any]) -> bool:
    """Whether a stored probe key still describes the code: the same state hash, every config key it kept
    that still exists at the value it kept, and every key added since at its default (`now["defaults"]`):
    an option the run could not have set, doing what the code did without it (a preset that sets one to
    another value runs other code, which a short probe may not reach). Keys removed since are options the
    run left at their defaults (a preset or a command that set one would no longer load): the state hash
    tells whether the code the probe runs changed. A key of the format before 2026-12-05 (one hash over
    config and state) must equal the legacy hash."""
    if isinstance(stored, str):
        return stored == now["legacy"]
    if not isinstance(stored, dict) or stored.get("state") != now["state"]:
        return False
    config, kept = now["config"], stored.get("config", {})
    added = all(config[k] == now["defaults"].get(k) for k in config.keys() - kept.keys())
    return added and all(config[k] == v for k, v in kept.items() if k in config)


def random_score(task: str, episodes: int) -> dict[str, Any]:
    """Mean return of uniformly random actions over `episodes` episodes of `task` (seeded 0..N−1)."""
    from worldmodels.envs import make_env

    env = make_env(load_config("latent_mlp", [f"env.id={task}"]).env)
    env.action_space.seed(0)
    returns = []
    for episode in range(episodes):
        env.reset(seed=episode)
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            total, done = total + float(reward), terminated or truncated
        returns.append(total)
    env.close()
    return {"final": float(np.mean(returns)), "std": float(np.std(returns)), "episodes": episodes}


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"


def _read_mark(mark: Path) -> Any:
    """A run folder's probe key: JSON, or the one hash that folders written before 2026-12-05 hold."""
    text = mark.read_text().strip()
    try:
        key = json.loads(text)
    except json.JSONDecodeError:
        return text
    return key if isinstance(key, dict) else text


def train_run(
    preset: str, overrides: list[str], run_dir: Path, what: str, fingerprint: dict[str, Any] | None = None
) -> dict[str, Any]:
    """`wm train PRESET OVERRIDES` in its own process, in a fresh `run_dir`: the last evaluation, the
    curve of evaluations, wall-clock seconds and the median update rate. With a `fingerprint` of the code
    (its `behaviour`), a run folder that an interrupted run of the same fingerprint left with a checkpoint
    is resumed instead (exactly, as `wm train --resume` does), so a long run spans several sittings; its
    `wall_s` is then that of the last part alone."""
    mark = run_dir / "fingerprint"
    resume = (
        fingerprint is not None
        and mark.exists()
        and same_behaviour(_read_mark(mark), fingerprint)
        and latest_checkpoint(run_dir / "checkpoints") is not None
    )
    if resume:
        cmd = [sys.executable, "-m", "worldmodels.cli", "train", "--resume", str(run_dir)]
    else:
        if run_dir.exists():
            shutil.rmtree(run_dir)
        if fingerprint is not None:
            run_dir.mkdir(parents=True)
            mark.write_text(json.dumps(stored_behaviour(fingerprint)))
        cmd = [sys.executable, "-m", "worldmodels.cli", "train", preset, *overrides, "--run-dir", str(run_dir)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise process_failure(f"benchmark {what}", proc.returncode, proc.stderr)
    rows = read_metrics(run_dir)
    curve = [[r["step"], r["eval/return"]] for r in rows if "eval/return" in r]
    if not curve:
        raise TrainingError(f"benchmark {what}: the run in '{run_dir}' ended without an evaluation")
    perf = [r["perf/updates_per_s"] for r in rows if r.get("perf/updates_per_s")]
    return {
        "steps": curve[-1][0],
        "final": curve[-1][1],
        "curve": curve,
        "wall_s": round(wall, 1),
        "resumed": resume,
        "updates_per_s": round(float(np.median(perf)), 2) if perf else None,
    }


def run_suite(
    name: str, bench: Path, out_root: Path, jobs: int, rows: list[str], tasks: list[str], list_only: bool
) -> None:
    """Fill the missing and stale cells of suite `name`, `jobs` at a time, storing each as it finishes."""
    suite = load_suite(bench, name)
    results = bench / "results" / "suites" / name
    results.mkdir(parents=True, exist_ok=True)
    cells, skipped = plan_cells(name, suite, results, rows, tasks)
    for line in skipped:
        print(f"[suite] does not fit: {line}", flush=True)
    with ThreadPoolExecutor(jobs) as pool:  # the probes of cells whose source changed, each in its own process
        states = list(pool.map(lambda c: status(c, probe=True), cells))
    todo = [c for c, state in zip(cells, states) if state != "fresh"]
    for cell, state in zip(cells, states):
        print(f"[suite] {cell.row} × {cell.task}: {state}", flush=True)
    print(f"[suite] {name}: {len(todo)} of {len(cells)} cells to run, {jobs} at a time", flush=True)
    if list_only:
        return

    def run(cell: Cell) -> None:
        """Runs `cell` and stores its result."""
        start = time.perf_counter()
        runs, key = [], None
        if cell.row != RANDOM:
            key = cell_behaviour(cell)  # before the run, of the code it runs (or taken by `status`)
        for seed in suite.seeds if cell.row != RANDOM else [0]:
            if cell.row == RANDOM:
                runs.append({"seed": seed, **random_score(cell.task, suite.random_episodes)})
                continue
            run_dir = out_root / "suites" / name / cell.path.stem / f"seed{seed}"
            overrides = [*cell.overrides, f"train.seed={seed}"]
            runs.append({"seed": seed, **train_run(cell.preset, overrides, run_dir, cell.path.stem, key)})
        result = {
            "suite": name,
            "row": cell.row,
            "task": cell.task,
            "preset": cell.preset,
            "final": float(np.mean([r["final"] for r in runs])),
            "runs": runs,
            "command": f"wm bench --suite {name} {cell.task} --agents {cell.row}",
            "train_command": cell.train_command,
            "fingerprint": cell.fingerprint,
            "behaviour": stored_behaviour(key) if key else None,
            "wall_s": round(time.perf_counter() - start, 1),
            "date": time.strftime("%Y-%m-%d"),
            "machine": machine(),
        }
        cell.path.write_text(json.dumps(result, indent=1))
        print(f"[suite] {cell.row} × {cell.task}: {result['final']:.1f} ({result['wall_s'] / 60:.0f} min)", flush=True)

    def guarded(cell: Cell) -> str | None:
        """`run`; any error of a cell is its failure, returned: the suite runs unattended, and one cell's
        failure must not stop the cells after it (an unexpected one is named by its type)."""
        try:
            run(cell)
        except Exception as err:
            why = str(err) if isinstance(err, TrainingError) else f"{type(err).__name__}: {err}"
            print(f"[suite] {cell.row} × {cell.task}: {why}", flush=True)
            return f"{cell.row} × {cell.task}: {why}"
        return None

    with ThreadPoolExecutor(jobs) as pool:
        errors = list(pool.map(guarded, todo))
    failed = [e for e in errors if e]
    # re-planned here, on one thread (`ast.parse` is not thread-safe on Python 3.11): a cell whose source changed
    # while it ran is stored under the fingerprints of the code it started with, which its run had imported
    now = {(c.row, c.task): c.fingerprint for c in plan_cells(name, suite, results, rows, tasks)[0]}
    for cell, error in zip(todo, errors):
        if error is None and now.get((cell.row, cell.task)) != cell.fingerprint:
            print(
                f"[suite] {cell.row} × {cell.task}: its code changed while it ran; `--list` probes whether it "
                "still behaves the same",
                flush=True,
            )
    if failed:  # the other cells are stored; these stay missing or stale
        raise TrainingError(f"{len(failed)} suite cell(s) failed: " + "; ".join(failed))


def suite_report(bench: Path) -> list[str]:
    """Markdown for every suite with stored cells: agent × task, normalised scores, mean and tasks learned."""
    lines: list[str] = []
    for path in sorted(suites_dir(bench).glob("*.yaml")):
        name = path.stem
        suite = load_suite(bench, name)
        stored = {
            (r["row"], r["task"]): r
            for r in (json.loads(p.read_text()) for p in sorted((bench / "results" / "suites" / name).glob("*.json")))
        }
        if not stored:
            continue
        try:
            cells, _ = plan_cells(name, suite, bench / "results" / "suites" / name, [], [])
            fits = {(c.row, c.task) for c in cells}
            stale = {(c.row, c.task) for c in cells if status(c) == "stale"}
            freshness = (
                "† : the code it ran has changed since; `wm bench --suite "
                f"{name} --list` keeps the cell if a short same-seed run of it still ends with the same weights "
                "(`train/probe.py`), else it is rerun by the cell's command."
            )
        except ConfigError as err:  # an environment package missing here: fit and freshness unknown
            fits, stale, freshness = None, set(), f"Fit and freshness not checked ({err})."
        tasks = list(suite.tasks)
        lines += [
            f"## Suite `{name}`",
            "",
            suite.description,
            "",
            "Each cell: normalised score (return − random) / (reference − random), cut to two decimals "
            f"(a cell shows {LEARNED:.2f} or more only when it counts as learned), and, below it, the final "
            "return. A cell's command: `wm bench --suite "
            f"{name} TASK --agents ROW` (its `wm train` command is in its result file). n/a: the agent "
            f"does not fit the task's actions; · : not run yet. {freshness}",
            "",
            "| agent | " + " | ".join(tasks) + " | mean | learned |",
            "|---|" + "---|" * (len(tasks) + 2),
        ]
        floor = {t: stored[(RANDOM, t)]["final"] for t in tasks if (RANDOM, t) in stored}
        lines.append("| random | " + " | ".join(f"{floor[t]:.1f}" if t in floor else "·" for t in tasks) + " | | |")
        refs = [suite.tasks[t].reference.score for t in tasks]
        lines.append("| reference | " + " | ".join("·" if r is None else f"{r:g}" for r in refs) + " | | |")
        for row in suite.agents:
            texts, scores = [], []
            for t in tasks:
                r = stored.get((row, t))
                if r is None:
                    texts.append("n/a" if fits is not None and (row, t) not in fits else "·")
                    continue
                ref = suite.tasks[t].reference.score
                known = ref is not None and t in floor and ref != floor[t]
                score = (r["final"] - floor[t]) / (ref - floor[t]) if known else None
                if score is not None:
                    scores.append(score)
                mark = " †" if (row, t) in stale else ""
                texts.append(("?" if score is None else _hundredths(score)) + f"{mark}<br>{r['final']:.1f}")
            learned = sum(s >= LEARNED for s in scores)
            mean = _hundredths(float(np.mean(scores))) if scores else "–"
            lines.append(f"| {row} | " + " | ".join(texts) + f" | {mean} | {learned}/{len(scores)} |")
        lines += ["", "References: " + "; ".join(f"{t}: {s.reference.source}" for t, s in suite.tasks.items()), ""]
    return lines


def _hundredths(score: float) -> str:
    """A normalised score (or a mean of them) rounded down to two decimals: 0.498 shows 0.49, under the
    learned mark like its value."""
    return f"{math.floor(score * 100 + 1e-9) / 100:.2f}"
