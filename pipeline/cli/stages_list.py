"""`python -m pipeline stages [--task T] [--profile P]`: every stage a row passes through, top
to bottom, with the tasks it serves, its resources and whether it runs as Ray tasks or as an
actor pool. Builds the stages only: no weights are loaded, no Ray is started."""

from __future__ import annotations

import json
import sys

from pipeline.cli.common import USAGE_ERROR, captioner_flags, judge_flags
from pipeline.core import config as config_mod
from pipeline.core.task_names import ALIAS_OF, TASK_IDS, UnknownTaskError, parse_tasks


def add_parser(sub) -> None:
    p = sub.add_parser(
        "stages", help="list the stages a run passes its rows through", description="The run's stage list, top to bottom, loading nothing."
    )
    p.add_argument("--task", default="all", help="a task or alias, a comma list, or 'all' (default)")
    p.add_argument("--profile", help=f"backend profile: {', '.join(config_mod.profiles())} (default: cpu)")
    p.add_argument("--config", action="append", default=[], help="extra YAML layer (repeatable)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one key")
    p.add_argument("--judge-url", help="as for `run`: a served judge")
    p.add_argument("--judge-model", help="as for `run`: the served judge's model name")
    p.add_argument("--captioner-url", help="as for `run`: a served captioner")
    p.add_argument("--captioner-model", help="as for `run`: the served captioner's model name")
    p.add_argument("--json", action="store_true", help="print JSON lines instead of a table")


def _tasks_column(tasks) -> str:
    """`all`: the stage takes every task's rows; otherwise the aliases of those it serves."""
    return "all" if tasks == "all" else ",".join(ALIAS_OF.get(t, t) for t in tasks)


def format_table(rows: list[dict]) -> str:
    stage_w = max(len("stage"), *(len(r["stage"]) for r in rows)) + 2
    tasks_w = max(len("tasks"), *(len(_tasks_column(r["tasks"])) for r in rows)) + 2
    lines = [f"{'#':>3}  {'stage':{stage_w}}{'tasks':{tasks_w}}{'runs as':12}{'cpus':>6}{'gpus':>6}{'batch':>7}{'pool':>6}  loads"]
    for row in rows:
        pool = "" if row["concurrency"] is None else str(row["concurrency"])
        batch = str(row["batch_size"]) if row["batch_size"] else "block"
        lines.append(
            f"{row['step']:>3}  {row['stage']:{stage_w}}{_tasks_column(row['tasks']):{tasks_w}}{row['runs_as']:12}"
            f"{row['num_cpus']:>6g}{row['num_gpus']:>6g}{batch:>7}{pool:>6}  {','.join(row['loads'])}".rstrip()
        )
    return "\n".join(lines)


def cmd_stages(args) -> int:
    from pipeline.engine.stage_list import build_stage_list, describe
    from tasks import NotImplementedTask

    try:
        flags = {"run": {"tasks": parse_tasks(args.task)}, **judge_flags(args), **captioner_flags(args)}
        cfg = config_mod.load_config(args.profile, args.config, [flags, *(config_mod.parse_set(s) for s in args.set)])
        rows = describe(build_stage_list(cfg))
    except (config_mod.ConfigError, UnknownTaskError, NotImplementedTask) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    tasks = cfg["run"]["tasks"]
    print(f"profile {cfg['profile']}, {len(tasks)} of {len(TASK_IDS)} tasks, {len(rows)} stages:")
    print(format_table(rows))
    return 0
