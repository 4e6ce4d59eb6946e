"""`wm`: list components, train, record datasets, evaluate, dream, play and benchmark.

Exit codes: 0 ok, 2 bad usage or config (one clear line, no traceback), 1 failure at run time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from worldmodels import distributed
from worldmodels.errors import ConfigError, WMError

if TYPE_CHECKING:
    from worldmodels.train import Trainer


def _list(args: argparse.Namespace) -> None:
    from worldmodels import contracts
    from worldmodels.config import load_all, preset_names
    from worldmodels.errors import closest
    from worldmodels.registry import REGISTRIES

    load_all()
    if args.kind and args.kind not in REGISTRIES and args.kind != "preset":
        raise ConfigError(
            f"unknown kind '{args.kind}'{closest(args.kind, REGISTRIES)}; kinds: {', '.join(REGISTRIES)}, preset"
        )
    for kind, registry in REGISTRIES.items():
        if args.kind in (None, kind):
            print(f"{kind:<15} {', '.join(registry.names()) or '-'}")
            built = ", ".join(("cfg", *registry.args))
            print(f"{'':<15} built from ({built}); has {contracts.describe(registry.contract)}")
    if args.kind in (None, "preset"):
        print(f"{'preset':<15} {', '.join(preset_names())}")


def _train(args: argparse.Namespace) -> None:
    from worldmodels.api import default_run_dir
    from worldmodels.config import load_config, preset_id, read_preset
    from worldmodels.train import Trainer
    from worldmodels.train.loop import Stopped

    overrides = list(args.overrides)
    if args.resume:
        run_dir = Path(args.resume)
        if args.preset and "=" in args.preset:
            overrides.insert(0, args.preset)
        if not (run_dir / "config.yaml").exists():
            raise ConfigError(f"cannot resume '{run_dir}': it has no config.yaml (is it a run folder?)")
        cfg = load_config(read_preset(str(run_dir / "config.yaml")), overrides)
        if args.preset and "=" not in args.preset and preset_id(args.preset) != cfg.preset:
            made = f"preset '{cfg.preset}'" if cfg.preset else "a preset it does not record"
            raise ConfigError(
                f"'{run_dir}' was made from {made}, not '{args.preset}'; resume it with "
                f"`wm train --resume {run_dir}` (the preset comes from the run folder)"
            )
    else:
        if not args.preset or "=" in args.preset:
            raise ConfigError("wm train needs a preset first, e.g. `wm train latent_mlp env.id=Pendulum-v1`")
        cfg = load_config(args.preset, overrides)
        run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(Path(args.preset).stem, cfg.env.id)
    if args.nproc is not None:
        _relaunch(args, cfg.train.batch_size, overrides, run_dir)
        return
    trainer = Trainer(cfg, run_dir, resume=bool(args.resume))
    try:
        with _stop_on_signals(trainer):
            summary = trainer.run()
    except KeyboardInterrupt as stop:
        if trainer.rank == 0:
            ranks = f" --nproc {trainer.world}" if trainer.world > 1 else ""
            saved = f" with a checkpoint at step {stop.step:,}" if isinstance(stop, Stopped) else ""
            print(f"\ninterrupted{saved}; continue with: wm train --resume {run_dir}{ranks}", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        trainer.close()
        distributed.shutdown()
    if trainer.rank:
        return
    ranks = f" --nproc {trainer.world}" if trainer.world > 1 else ""
    print(json.dumps({k: v for k, v in summary.items() if k != "run_dir"}))
    print(f"run folder   {run_dir}")
    print(f"curve        {run_dir / 'curve.png'}")
    print(f"metrics      {run_dir / 'metrics.jsonl'}  (TensorBoard: tensorboard --logdir {run_dir / 'tb'})")
    print(f"checkpoint   {run_dir / 'checkpoints'}  (continue: wm train --resume {run_dir}{ranks} train.steps=N)")


@contextlib.contextmanager
def _stop_on_signals(trainer: Trainer) -> Iterator[None]:
    """The first SIGINT (Ctrl-C) or SIGTERM asks `trainer` to stop after its current step with a checkpoint;
    a second stops at once, losing what came after the last checkpoint. Under torchrun every rank would have
    to take part in that checkpoint, so there the signals keep their usual effect."""
    if trainer.world > 1:
        yield
        return

    def handle(signum: int, frame: Any) -> None:
        if trainer.stop_requested:
            raise KeyboardInterrupt
        trainer.request_stop()
        print(
            f"\n{signal.Signals(signum).name}: stopping after this step with a checkpoint (again to stop at once)",
            file=sys.stderr,
        )

    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _relaunch(args: argparse.Namespace, batch_size: int, overrides: list[str], run_dir: Path) -> None:
    """`wm train ... --nproc N`: the same command as N ranks under torchrun on this machine."""
    n = args.nproc
    if n < 1:
        raise ConfigError(f"--nproc {n}: give the number of processes to train on, 1 or more")
    if distributed.launched():
        raise ConfigError("--nproc starts torchrun itself; under torchrun leave it out (--nproc-per-node sets ranks)")
    if batch_size % n:
        raise ConfigError(
            f"train.batch_size={batch_size} does not split over --nproc {n} (it is the global batch); "
            f"use a multiple of {n}"
        )
    preset = [args.preset] if args.preset and "=" not in args.preset else []
    where = ["--resume", str(run_dir)] if args.resume else ["--run-dir", str(run_dir)]
    try:
        distributed.relaunch(n, ["train", *preset, *where, *overrides], str(run_dir))
    except distributed.RankFailed as err:
        raise SystemExit(err.exit_code) from None
    except KeyboardInterrupt:  # rank 0 has said how to continue
        raise SystemExit(130) from None


def _record(args: argparse.Namespace) -> None:
    from worldmodels.config import load_config
    from worldmodels.envs.record import Policy, record

    bad = [o for o in args.overrides if not o.startswith("env.")]
    if bad:
        raise ConfigError(f"wm record takes env.* overrides only, not '{bad[0]}'")
    env = load_config(None, [f"env.id={args.env}", *args.overrides]).env
    policy = args.policy if args.policy in get_args(Policy) else _agent_policy(args.policy, env, args.seed)
    index = record(
        env, Path(args.out), args.episodes, args.seed, policy, args.max_steps, args.workers, not args.no_actions
    )
    lengths, returns = index["lengths"], index["returns"]
    what = f"mean return {sum(returns) / len(returns):.1f}"
    if args.no_actions:
        what = f"frames only, {what}"
    print(
        f"dataset {args.out}: {len(lengths)} episodes, {sum(lengths):,} steps, {what} "
        f"(learn from it: wm train PRESET train.offline={args.out})"
    )


def _agent_policy(run_dir: str, env, seed: int):
    """`wm record --policy RUN`: the run's agent, acting by its evaluation policy, on `env` if it sees the
    observations the agent was trained on."""
    import torch

    from worldmodels.api import load_agent
    from worldmodels.envs.make import make_env
    from worldmodels.envs.spaces import obs_spec_of
    from worldmodels.train.evaluate import AgentPolicy

    if not Path(run_dir, "config.yaml").exists():
        raise ConfigError(
            f"--policy takes uniform, brownian, held or a run folder; '{run_dir}' is neither (no config.yaml)"
        )
    agent = load_agent(run_dir).agent
    probe = make_env(env)
    seen = obs_spec_of(probe.observation_space, env.id)
    probe.close()
    if seen != agent.obs_spec:
        raise ConfigError(
            f"the agent of '{run_dir}' was trained on observations {agent.obs_spec}, {env.id} gives {seen}; "
            "record with the run's env settings (e.g. env.obs=pixels)"
        )
    torch.manual_seed(seed)
    return AgentPolicy(agent, name=f"run:{run_dir}")


def _eval(args: argparse.Namespace) -> None:
    from worldmodels.api import load_agent

    agent = load_agent(args.run_dir)
    if args.data and not args.delta_psnr:
        raise ConfigError("--data gives held-out video to --delta-psnr; add --delta-psnr")
    if args.delta_psnr:
        result = agent.delta_psnr(args.episodes, args.seed, args.data)
    elif args.open_loop:
        result = agent.open_loop(args.episodes, args.seed)
    else:
        result = agent.evaluate(args.episodes, args.seed)
    if args.video:
        path, ret = agent.record_video(Path(args.run_dir) / "eval.gif", seed=args.seed)
        print(f"video: {path} (return {ret:.1f})", file=sys.stderr)
    print(json.dumps(result))


def _play(args: argparse.Namespace) -> None:
    from worldmodels.api import load_agent

    print(f"play: {load_agent(args.run_dir).play(args.actions, args.seed, args.data)}")


def _bc(args: argparse.Namespace) -> None:
    from worldmodels.api import load_agent
    from worldmodels.train.latent_bc import CloneConfig, latent_bc

    run = load_agent(args.run_dir)
    cfg = CloneConfig(updates=args.updates)
    result = latent_bc(run.agent, Path(args.video), Path(args.labelled), cfg, args.episodes, args.seed)
    (Path(args.run_dir) / "latent_bc.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result))


def _dream(args: argparse.Namespace) -> None:
    from worldmodels.api import load_agent
    from worldmodels.train.dream import dream

    run = load_agent(args.run_dir)
    try:
        policy = "uniform" if run.cfg.train.offline else "agent"  # the policy the model's data comes from
        path = dream(run.agent, run.cfg.env, Path(args.run_dir), args.seed, args.context, args.horizon, policy)
    except NotImplementedError as err:
        raise ConfigError(str(err)) from None
    print(f"dream: {path}")


def _bench(args: argparse.Namespace) -> None:
    from worldmodels.train.bench import bench_dir, run_bench, write_report
    from worldmodels.train.suite import run_suite

    if args.suite:
        run_suite(args.suite, bench_dir(), Path(args.out), args.jobs, args.agents or [], args.tasks, args.list)
        if not args.list:
            write_report(bench_dir() / "results")
    elif args.agents or args.list:
        raise ConfigError("--agents and --list choose a suite's cells: use them with --suite NAME")
    else:
        run_bench(
            args.tasks,
            seeds=args.seeds,
            jobs=args.jobs,
            out_root=Path(args.out),
            report_only=args.report,
            peer_venv=Path(args.peer_venv) if args.peer_venv else None,
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wm", description="World models for reinforcement learning.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="print the registered components by kind")
    p.add_argument("kind", nargs="?", help="only this kind (encoder, dynamics, policy, agent, preset, ...)")
    p.set_defaults(func=_list)

    p = sub.add_parser("train", help="train an agent from a preset with key=value overrides")
    p.add_argument("preset", nargs="?", help="a preset name in configs/ or a YAML path")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. env.id=Pendulum-v1 train.steps=5000")
    p.add_argument("--run-dir", help="where the run is written (default: runs/PRESET-ENV-TIME)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its latest checkpoint")
    p.add_argument(
        "--nproc", type=int, metavar="N", help="train data-parallel on N processes of this machine under torchrun"
    )
    p.set_defaults(func=_train)

    p = sub.add_parser("record", help="write episodes of an environment (random or an agent's) as an offline dataset")
    p.add_argument("env", help="environment id, e.g. CartPole-v1 or dmc:cartpole-swingup")
    p.add_argument("overrides", nargs="*", help="env.* overrides, e.g. env.obs=pixels env.action_repeat=2")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--out", required=True, help="the dataset folder (new or empty)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--policy",
        default="uniform",
        help="a random policy (uniform, brownian, held) or a run folder whose agent plays (expert data)",
    )
    p.add_argument("--max-steps", type=int, help="cut episodes after this many steps (default: the time limit)")
    p.add_argument("--workers", type=int, default=1, help="processes recording episodes in parallel")
    p.add_argument("--no-actions", action="store_true", help="write the frames alone (video without actions)")
    p.set_defaults(func=_record)

    p = sub.add_parser("bc", help="Genie: clone an expert's video into a policy over latent actions and act with it")
    p.add_argument("run_dir", help="a trained genie run")
    p.add_argument("--video", required=True, help="the expert's episodes (their actions, if any, are not read)")
    p.add_argument("--labelled", required=True, help="a few episodes with actions: fit latent → real actions")
    p.add_argument("--updates", type=int, default=3000, help="cross-entropy updates of each cloned policy")
    p.add_argument("--episodes", type=int, default=100, help="evaluation episodes of each policy")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_bc)

    p = sub.add_parser("eval", help="evaluate a run's latest checkpoint; prints one JSON line")
    p.add_argument("run_dir")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--video", action="store_true", help="also write RUN_DIR/eval.gif of one episode")
    p.add_argument("--open-loop", action="store_true", help="the world model's prediction errors instead of returns")
    p.add_argument("--delta-psnr", action="store_true", help="Genie: ΔtPSNR, tokenizer PSNR, latent-action metrics")
    p.add_argument("--data", help="with --delta-psnr: a folder of held-out video (default: episodes of the env)")
    p.set_defaults(func=_eval)

    p = sub.add_parser("play", help="play a Genie model by its latent actions from a prompt frame; writes a GIF")
    p.add_argument("run_dir")
    p.add_argument("--actions", required=True, help="latent actions separated by commas, e.g. 0,3,3,1")
    p.add_argument("--seed", type=int, default=12345, help="the held-out episode whose first frame is the prompt")
    p.add_argument("--data", help="a folder of video to take the prompt from (default: an episode of the env)")
    p.set_defaults(func=_play)

    p = sub.add_parser("dream", help="plot what the world model imagines beside what really happens")
    p.add_argument("run_dir")
    p.add_argument("--context", type=int, default=5, help="real observations the model sees first")
    p.add_argument("--horizon", type=int, default=50, help="steps imagined open-loop after them")
    p.add_argument("--seed", type=int, default=12345)
    p.set_defaults(func=_dream)

    p = sub.add_parser("bench", help="run learning benchmarks and regenerate BENCHMARKS.md")
    p.add_argument("tasks", nargs="*", help="task names in benchmarks/, or with --suite its env ids (default: all)")
    p.add_argument("--suite", help="fill the missing and stale cells of a suite in benchmarks/suites/")
    p.add_argument("--agents", nargs="+", help="with --suite: only these rows (agents, or `random`)")
    p.add_argument("--list", action="store_true", help="with --suite: print each cell's state and run nothing")
    p.add_argument("--seeds", type=int, nargs="+", help="override the tasks' seeds")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel (each gets cores/jobs threads)")
    p.add_argument("--out", default="bench_runs", help="folder for the benchmark runs")
    p.add_argument("--report", action="store_true", help="only regenerate BENCHMARKS.md from stored results")
    p.add_argument("--peer-venv", help="a peer's venv: speed tasks that name a peer script time it beside ours")
    p.set_defaults(func=_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command in ("train", "record") and all("=" in x and not x.startswith("-") for x in extra):
        args.overrides += extra  # overrides after an option: `wm train PRESET --resume DIR train.steps=N`
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        args.func(args)
    except WMError as err:
        rank = f" (rank {os.environ['RANK']})" if distributed.launched() and os.environ["RANK"] != "0" else ""
        print(f"error{rank}: {err}", file=sys.stderr)
        return err.exit_code
    except RuntimeError as err:
        if not (distributed.launched() and distributed.lost_peer(err)):
            raise
        if distributed.LAUNCHER not in os.environ:  # else `wm train --nproc` names the rank that went
            print(f"error (rank {os.environ['RANK']}): another rank has gone (its own error is above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
