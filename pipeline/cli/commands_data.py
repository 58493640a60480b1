"""The commands over a finished run's candidates, or over any triplet dataset: `sheet`,
`report`, `select`, `export` and `score`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pipeline.cli.common import USAGE_ERROR, judge_flags
from pipeline.core import config as config_mod
from pipeline.core.task_names import UnknownTaskError, parse_tasks


def cmd_sheet(args) -> int:
    from pipeline.postrun.contact_sheet import pick_rows, render

    rows = pick_rows(args.run_dir, args.per_task, None if args.status == "any" else args.status)
    if not rows:
        print(f"error: no {args.status} triplets in {args.run_dir}/candidates", file=sys.stderr)
        return USAGE_ERROR
    print(render(rows, Path(args.out)))
    return 0


def cmd_report(args) -> int:
    from pipeline.core.run_dir import RunDir
    from pipeline.postrun.report import write_report

    run = RunDir(args.run_dir)
    if not run.store.exists("manifest.json"):
        print(f"error: {run.root} has no manifest.json: not a finished run folder", file=sys.stderr)
        return USAGE_ERROR
    print(write_report(run, Path(args.out) if args.out else None, args.per_task, args.page_size))
    return 0


def cmd_select(args) -> int:
    import yaml

    from pipeline.core.run_dir import RunDir
    from pipeline.postrun.selection import SelectionError, select_run

    run = RunDir(args.run_dir)
    if not run.store.exists("config.yaml"):
        print(f"error: {run.root} is not a run folder (no config.yaml)", file=sys.stderr)
        return USAGE_ERROR
    cfg = yaml.safe_load(run.store.read_text("config.yaml"))
    try:
        current = config_mod.load_config(cfg.get("profile"), args.config, overrides=[config_mod.parse_set(s) for s in args.set])
        cfg["select"] = current["select"]
        result = select_run(run, cfg)
    except (config_mod.ConfigError, SelectionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    print(json.dumps(result, indent=1))
    return 0


def cmd_score(args) -> int:
    from pipeline.engine.servers import ServerUnusable, check_servers
    from pipeline.postrun.score import ScoreError, parse_columns, score_dataset

    overrides = [config_mod.parse_set(s) for s in args.set]
    overrides.append(judge_flags(args))
    try:
        cfg = config_mod.load_config(args.profile, args.config, overrides=overrides)
        check_servers(cfg, ("judge",))  # a wrong --judge-url exits 2 before any row is read
        task = parse_tasks(args.task)[0] if args.task else None
        summary = score_dataset(Path(args.input), Path(args.out), cfg, parse_columns(args.columns), task)
    except (config_mod.ConfigError, UnknownTaskError, ScoreError, ServerUnusable, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    print(json.dumps(summary["rows"]))
    return 0


def cmd_export(args) -> int:
    from pipeline.core.filesystems import InputError
    from pipeline.postrun.export import ExportError, export_run

    try:
        result = export_run(
            args.run_dir, args.to, fmt=args.format, keep_ratio=args.keep_ratio, min_o=args.min_o,
            per_task=args.per_task, exclude_benchmark=Path(args.exclude_benchmark) if args.exclude_benchmark else None,
            include_unknown_license=args.include_unknown_license,
        )
    except (ExportError, InputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    print(json.dumps(result, indent=1, default=str))
    return 0
