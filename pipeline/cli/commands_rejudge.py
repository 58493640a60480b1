"""`rejudge RUN`: the judge run again over a finished run's committed candidates, into a judge
overlay that selection, the report and export read (pipeline/postrun/rejudge.py). The run's own
judge settings are the base; `--judge-url/--judge-model` and `--set judge.KEY=VALUE` change them.
Nothing else of the run's configuration can change here: that would be another run. RUN is local
or on a store by URI; `--set io.KEY=VALUE` says how to reach it."""

from __future__ import annotations

import json
import sys

import yaml

from pipeline.cli.common import RUN_FAILED, USAGE_ERROR, judge_flags
from pipeline.cli.run_io import without_io
from pipeline.core import config as config_mod
from pipeline.core.run_dir import RunDir
from pipeline.core.task_names import UnknownTaskError, parse_tasks


def add_parser(sub) -> None:
    rj = sub.add_parser(
        "rejudge", help="judge a finished run's candidates again into an overlay, then select again",
        description="Re-judge committed candidates without regenerating them: the judge's scores go to RUN/overlays/judge/, "
        "which select, report and export read; the shards stay as they are. Resumable: rerun to finish.",
    )
    rj.add_argument("run_dir")
    rj.add_argument("--judge-url", help="OpenAI-compatible base URL of the judge, e.g. http://host:8000/v1 (key: OPENAI_API_KEY)")
    rj.add_argument("--judge-model", help="the served judge's model name")
    rj.add_argument("--set", action="append", default=[], metavar="judge.KEY=VALUE",
                    help="change one judge setting, e.g. judge.backend=qwen; io.* keys say how to reach a run on a store")
    rj.add_argument("--task", help="re-judge only these tasks (a task, alias or comma list); others keep the run's judgements")


def rejudge_config(run: RunDir, args) -> dict:
    """The run's resolved config with its judge block changed by the flags (checked against the
    judge's keys and types)."""
    if not run.store.exists("config.yaml"):
        raise config_mod.ConfigError(f"{run.root} is not a run folder (no config.yaml)")
    cfg = yaml.safe_load(run.store.read_text("config.yaml"))
    layers = [config_mod.parse_set(item) for item in without_io(args.set)]  # io.* is how to reach the run, not its config
    for layer in layers:
        if set(layer) != {"judge"}:
            raise config_mod.ConfigError(f"--set {next(iter(layer))}...: rejudge changes only judge.* keys (anything else would be another run)")
    current = config_mod.load_config(cfg.get("profile"), overrides=[{"judge": cfg["judge"]}, *layers, judge_flags(args)])
    cfg["judge"] = current["judge"]
    return cfg


def cmd_rejudge(args) -> int:
    from pipeline.core.stage import StopRun
    from pipeline.engine.servers import ServerUnusable
    from pipeline.postrun.judge_overlay import OverlayIncomplete
    from pipeline.postrun.rejudge import RejudgeError, rejudge_run
    from pipeline.postrun.selection import SelectionError

    run = RunDir(args.run_dir)  # main gives a RunDir that carries the --set io.* settings
    try:
        cfg = rejudge_config(run, args)
        tasks = parse_tasks(args.task) if args.task else None
        summary = rejudge_run(run, cfg, tasks, log=lambda msg: print(msg, file=sys.stderr))
    except (config_mod.ConfigError, UnknownTaskError, RejudgeError, ServerUnusable, SelectionError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except (StopRun, OverlayIncomplete) as exc:  # the circuit breaker opened; shards committed meanwhile
        print(f"rejudge failed: {exc}; re-judged shards are kept, rerun the same command to finish", file=sys.stderr)
        return RUN_FAILED
    print(json.dumps(summary, indent=1, default=str))
    return 0
