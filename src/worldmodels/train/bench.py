"""`wm bench`: learning tasks with budgets and reference scores, results as JSON and `BENCHMARKS.md`.

A task is a YAML file in `benchmarks/`:

    preset: latent_mlp            # a preset name or path
    overrides: {env.id: Pendulum-v1}
    steps: 20000                  # env-step budget
    seeds: [0, 1, 2]
    goal: -200                    # optional: the score that counts as learned
    reference: {score: -150, source: "where the number comes from"}
    description: one line shown in the report

Each seed trains in its own process under `bench_runs/TASK/seedN` (a seed interrupted after a checkpoint
resumes from it when its code and config are unchanged); the final evaluation of each seed,
its curve and its wall-clock time go to `benchmarks/results/TASK.json`, and `BENCHMARKS.md` is rebuilt
from all stored results.

A measurement that is not a training run (speed, memory) is a task with `script: NAME.py`: the script,
in `benchmarks/`, is run as `python NAME.py --out RESULT.json [ARGS]` (the task's `args`) and writes
`{"description": ..., "columns": [...], "rows": [[...], ...], "notes": ...}`, shown as a table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from worldmodels.config import read_preset
from worldmodels.errors import ConfigError, TrainingError, closest, process_failure
from worldmodels.figures import plt
from worldmodels.schema import parse
from worldmodels.train.suite import Reference, behaviour, machine, suite_report, train_run


@dataclass
class Task:
    preset: str = "latent_mlp"
    overrides: dict[str, Any] = field(default_factory=dict)
    steps: int = 10_000
    seeds: list[int] = field(default_factory=lambda: [0])
    goal: float | None = None
    reference: Reference = field(default_factory=Reference)
    description: str = ""
    script: str | None = None
    """A measuring script in `benchmarks/` instead of a training run."""
    args: list[str] = field(default_factory=list)
    """Arguments the script is run with after `--out RESULT.json` (one script, several tasks)."""
    peer: str | None = None
    """A peer's timing script (in `peers_dir()`) that the script runs beside its own figures when
    `wm bench --peer-venv DIR` names the venv it runs in: `--peer DIR/bin/python PEERS/peer`."""


def bench_dir() -> Path:
    return Path(os.environ.get("WM_BENCHMARKS", Path(__file__).resolve().parents[3] / "benchmarks"))


def peers_dir() -> Path:
    """Where the peers' timing scripts live: `WM_PEERS`, or `../shared/peers` beside the repository."""
    return Path(os.environ.get("WM_PEERS", bench_dir().parent.parent / "shared" / "peers"))


def _peer_args(name: str, task: Task, venv: Path | None) -> list[str]:
    if venv is None or task.peer is None:
        return []
    python, script = venv / "bin" / "python", peers_dir() / task.peer
    if not python.exists():
        raise ConfigError(f"--peer-venv {venv}: no {python}; make the venv as the header of {task.peer} says")
    if not script.exists():
        raise ConfigError(f"benchmark {name}: its peer script {script} is missing; set WM_PEERS to its folder")
    return ["--peer", str(python), str(script)]


def load_tasks(names: list[str]) -> dict[str, Task]:
    available = {p.stem: p for p in sorted(bench_dir().glob("*.yaml"))}
    for name in names:
        if name not in available:
            raise ConfigError(
                f"unknown benchmark task '{name}'{closest(name, available)}; tasks: {', '.join(available)}"
            )
    chosen = names or list(available)
    return {n: parse(Task, yaml.safe_load(available[n].read_text()) or {}, f"benchmarks/{n}") for n in chosen}


def _seed_overrides(task: Task, seed: int, threads: int) -> list[str]:
    overrides = [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in task.overrides.items()]
    overrides += [f"train.steps={task.steps}", f"train.seed={seed}"]
    pinned = "train.threads" in task.overrides or "threads" in read_preset(task.preset).get("train", {})
    if not pinned:  # a task or its preset may pin its own (tiny models run best on one thread)
        overrides.append(f"train.threads={threads}")
    return overrides


def _run_seed(name: str, task: Task, seed: int, overrides: list[str], out_root: Path) -> dict:
    """One seed of a task. It resumes from the checkpoint an interrupted earlier run left while the code
    still behaves the same (their probe keys match, `train/probe.py`), so a long task spans sittings."""
    run_dir = out_root / name / f"seed{seed}"
    key = behaviour(task.preset, overrides)
    return {"seed": seed, **train_run(task.preset, overrides, run_dir, f"{name} seed {seed}", key)}


def run_bench(
    names: list[str],
    seeds: list[int] | None,
    jobs: int,
    out_root: Path,
    report_only: bool,
    peer_venv: Path | None = None,
) -> None:
    tasks = load_tasks(names)
    results_dir = bench_dir() / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    if not report_only:
        threads = max(1, (os.cpu_count() or 1) // jobs)
        for name, task in tasks.items():
            if task.script:
                _run_script(name, task, results_dir / f"{name}.json", _peer_args(name, task, peer_venv))
                continue
            task_seeds = seeds or task.seeds
            print(f"[bench] {name}: {len(task_seeds)} seed(s) x {task.steps} steps, {jobs} at a time", flush=True)
            plans = [(s, _seed_overrides(task, s, threads)) for s in task_seeds]
            with ThreadPoolExecutor(jobs) as pool:
                runs = list(pool.map(lambda p, n=name, t=task: _run_seed(n, t, *p, out_root), plans))
            finals = [r["final"] for r in runs]
            result = {
                "task": name,
                "preset": task.preset,
                "overrides": task.overrides,
                "steps": task.steps,
                "goal": task.goal,
                "reference": vars(task.reference),
                "description": task.description,
                "mean": float(np.mean(finals)),
                "std": float(np.std(finals)),
                "runs": runs,
                "command": f"wm bench {name}" + (f" --seeds {' '.join(map(str, seeds))}" if seeds else ""),
                "jobs": jobs,
                "date": time.strftime("%Y-%m-%d"),
                "machine": machine(),
            }
            (results_dir / f"{name}.json").write_text(json.dumps(result, indent=1))
            print(f"[bench] {name}: final eval {result['mean']:.1f} ± {result['std']:.1f}", flush=True)
    write_report(results_dir)


BOOKKEEPING = (
    "train.eval_every",
    "train.eval_episodes",
    "train.stop_return",
    "train.threads",
    "train.log_every",
    "train.checkpoint_every",
)
"""Task overrides that change how a run is measured, not how fast it learns."""


def cpu_settings(preset: str, agent: str) -> str | None:
    """The stored benchmark that learned (reached its goal) with `preset`, else with another preset of
    `agent`, in the least wall-clock time on a CPU, preferring tasks that change only `train.*` settings
    (not the model or the environment): its command, overrides and result, as one phrase."""
    found = []
    for path in sorted((bench_dir() / "results").glob("*.json")):
        result = json.loads(path.read_text())
        learned = result.get("goal") is not None and result.get("mean", -np.inf) >= result["goal"]
        if result.get("kind") == "table" or not learned or "cpu" not in result.get("machine", ""):
            continue
        try:
            task_agent = read_preset(result["preset"]).get("agent", {}).get("name")
        except ConfigError:
            continue
        if result["preset"] == preset or task_agent == agent:
            wall = max(r["wall_s"] for r in result["runs"])
            changes_more = any(not k.startswith("train.") for k in result["overrides"])
            found.append((result["preset"] != preset, changes_more, wall, result))
    if not found:
        return None
    _, _, wall, result = min(found, key=lambda f: f[:3])
    command = " ".join(
        [f"wm train {result['preset']}"] + [f"{k}={v}" for k, v in result["overrides"].items() if k not in BOOKKEEPING]
    )
    steps = max(r.get("steps", result["steps"]) for r in result["runs"])
    return (
        f"`{command}` learned in `wm bench {result['task']}` ({result['mean']:.0f} after {steps:,} env steps, "
        f"{wall / 60:.0f} min on {result['machine']})"
    )


def _run_script(name: str, task: Task, out: Path, extra: list[str]) -> None:
    print(f"[bench] {name}: {task.script}", flush=True)
    cmd = [sys.executable, str(bench_dir() / task.script), "--out", str(out), *task.args, *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise process_failure(f"benchmark {name}", proc.returncode, proc.stderr)
    result = json.loads(out.read_text())
    result.update(
        task=name,
        kind="table",
        description=task.description or result.get("description", ""),
        command=f"wm bench {name}" + (" --peer-venv PEER_VENV" if extra else ""),
        date=time.strftime("%Y-%m-%d"),
        machine=machine(),
    )
    out.write_text(json.dumps(result, indent=1))


def _plot(result: dict[str, Any], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for run in result["runs"]:
        steps, values = zip(*run["curve"])
        ax.plot(steps, values, lw=1.2, alpha=0.8, label=f"seed {run['seed']}")
    if result.get("goal") is not None:
        ax.axhline(result["goal"], color="k", ls="--", lw=1, label="goal")
    if result["reference"].get("score") is not None:
        ax.axhline(result["reference"]["score"], color="tab:green", ls=":", lw=1.5, label="reference")
    ax.set_title(result["task"])
    ax.set_xlabel("environment steps")
    ax.set_ylabel("eval return")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _seed_text(run: dict[str, Any], budget: int) -> str:
    """A seed's final eval, with the step it stopped at when it stopped early."""
    steps = run.get("steps", budget)
    return f"{run['final']:.0f}" + (f" (at {steps:,})" if steps < budget else "")


def write_report(results_dir: Path) -> Path:
    """Rebuild `BENCHMARKS.md` (beside `benchmarks/`) from every stored result, with a curve per task."""
    stored = [json.loads(p.read_text()) for p in sorted(results_dir.glob("*.json"))]
    results = [r for r in stored if r.get("kind") != "table"]
    tables = [r for r in stored if r.get("kind") == "table"]
    lines = [
        "# Benchmarks",
        "",
        "Generated by `wm bench` from `benchmarks/results/*.json`; every number below was measured by the",
        "command in its row. Final eval = mean return of `train.eval_episodes` deterministic episodes at the",
        "end of the budget, averaged over seeds (± std across seeds).",
        "",
        "| task | preset | env steps | seeds | final eval | per seed | goal | reference | wall-clock/seed | command |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        _plot(r, results_dir / f"{r['task']}.png")
        ref = r["reference"]
        ref_text = "–" if ref.get("score") is None else f"{ref['score']:g} ({ref['source']})"
        goal = "–" if r["goal"] is None else f"{r['goal']:g}"
        per_seed = ", ".join(_seed_text(run, r["steps"]) for run in r["runs"])
        wall = ", ".join(
            f"{run['wall_s'] / 60:.1f} min" + (" (its last part: resumed)" if run.get("resumed") else "")
            for run in r["runs"]
        )
        lines.append(
            f"| {r['task']} | {r['preset']} | {r['steps']:,} | {len(r['runs'])} | {r['mean']:.1f} ± {r['std']:.1f} "
            f"| {per_seed} | {goal} | {ref_text} | {wall} "
            f"| `{r['command']}` |"
        )
    lines.append("")
    for r in results:
        lines += [
            f"## {r['task']}",
            "",
            r.get("description", ""),
            "",
            f"Measured {r['date']} on {r['machine']}, {r['jobs']} run(s) at a time.",
            "",
            f"![{r['task']}](benchmarks/results/{r['task']}.png)",
            "",
        ]
    for r in tables:
        lines += [
            f"## {r['task']}",
            "",
            r["description"],
            "",
            f"Measured {r['date']} on {r['machine']} with `{r['command']}`.",
            "",
            "| " + " | ".join(r["columns"]) + " |",
            "|" + "---|" * len(r["columns"]),
        ]
        lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in r["rows"]]
        lines += ["", r.get("notes", ""), ""]
    try:
        lines += suite_report(bench_dir())
    except ImportError as err:  # the suites' fingerprints read the source on disk through the modules in memory
        raise TrainingError(
            f"the results are stored, but the package's code changed while the benchmark ran ({err}); "
            "rebuild the report with: wm bench --report"
        ) from None
    notes = bench_dir() / "NOTES.md"
    if notes.exists():
        lines += [notes.read_text().rstrip(), ""]
    out = bench_dir().parent / "BENCHMARKS.md"
    out.write_text("\n".join(lines))
    return out
