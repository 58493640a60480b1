"""The commands that run the pipeline or look at a run before it finishes: `run`, `tasks`,
`status` and `plan` (how a profile's model stages fit on GPUs)."""

from __future__ import annotations

import json
import sys

from pipeline.cli.common import RUN_FAILED, USAGE_ERROR, captioner_flags, judge_flags
from pipeline.core import config as config_mod
from pipeline.core.annotations import AnnotationError
from pipeline.core.inputs import InputError
from pipeline.core.task_names import ALIAS_OF, TASK_IDS, UnknownTaskError, parse_tasks


def _run_config(args) -> dict:
    overrides = [config_mod.parse_set(item) for item in args.set]
    flags = {
        "run": {"tasks": parse_tasks(args.task)},
        "input": {},
        "ray": {},
    }
    if args.input:
        flags["input"]["path"] = args.input
    if args.annotations:
        flags["input"]["annotations"] = args.annotations
    if args.license:
        flags["input"]["license"] = args.license
    if args.out:
        flags["run"]["out"] = args.out
    if args.limit is not None:
        flags["run"]["limit"] = args.limit
    if args.address:
        flags["ray"]["address"] = args.address
    if args.no_progress:
        flags["run"]["progress"] = False
    if args.allow_unlocked:
        flags["models"] = {"allow_unlocked": True}
    flags.update(judge_flags(args))
    flags.update(captioner_flags(args))
    return config_mod.load_config(args.profile, args.config, [flags, *overrides])


def cmd_run(args) -> int:
    from pipeline.core.model_lock import ModelLockError
    from pipeline.engine.runner import RunConflict, RunFailed, print_summary
    from pipeline.engine.servers import ServerUnusable
    from pipeline.postrun.finish import run_pipeline
    from pipeline.postrun.selection import SelectionError
    from tasks import NotImplementedTask

    try:
        cfg = _run_config(args)
        result = run_pipeline(cfg, log=lambda msg: print(msg, file=sys.stderr), check=args.check)
    except (config_mod.ConfigError, UnknownTaskError, NotImplementedTask, InputError, AnnotationError, RunConflict, ModelLockError, ServerUnusable,
            SelectionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except RunFailed as exc:
        print(f"run failed: {exc}", file=sys.stderr)
        return RUN_FAILED
    except OSError as exc:  # the driver's own files (the plan, the manifest, the report): disk full, permission
        from pipeline.engine.failures import describe

        print(f"run failed: {describe(exc)}", file=sys.stderr)
        return RUN_FAILED
    print_summary(result)
    diversity = result.manifest.get("instruction_diversity")
    if diversity and diversity["tasks"]:
        from pipeline.postrun.diversity import diversity_table

        print(f"instruction diversity (over {' and '.join(diversity['over'])} rows; mllm and template: shares of rows):")
        print(diversity_table(diversity["tasks"]))
    return 0


def cmd_tasks(_args) -> int:
    from tasks import is_implemented

    profiles = config_mod.profiles()
    print(f"{'task id':26}{'alias':12}implemented for")
    for task in TASK_IDS:
        done = [p for p in profiles if is_implemented(task, p)]
        print(f"{task:26}{ALIAS_OF[task]:12}{', '.join(done) or 'not implemented yet'}")
    return 0


def cmd_status(args) -> int:
    from pipeline.core.run_dir import RunDir
    from pipeline.engine.manifest import build_manifest, summary_table

    run = RunDir(args.run_dir)
    try:
        run.store.check_reachable()
        plan = run.read_plan()
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except OSError as exc:  # the store answered, but not with the plan (permission, a damaged object)
        print(f"error: status {args.run_dir}: {exc}", file=sys.stderr)
        return RUN_FAILED
    if plan is None:
        return _status_of_unfinished_plan(run, args.run_dir)
    if args.check:
        return _check(run)
    from pipeline.core.integrity import damaged_shards

    manifest = build_manifest(run, plan)
    damaged = damaged_shards(run)  # the cheap check (size, footer): a damaged shard is not complete
    done = run.shard_count(plan) - len(manifest["pending_shards"]) - len(damaged)
    print(f"run {run.root}: profile {plan['profile']}, tasks {', '.join(plan['tasks'])}, config {plan['config_hash']}")
    complete = manifest["complete"] and not damaged
    print(f"shards committed: {done}/{run.shard_count(plan)}  ({'complete' if complete else 'incomplete: rerun to finish'})")
    for shard, problems in damaged.items():
        print(f"damaged: shard {shard}: {'; '.join(problems)}")
    print(summary_table(manifest))
    _overlay_progress(run)
    print(json.dumps({"rows": manifest["rows"]}))
    return 0


def _status_of_unfinished_plan(run, given: str) -> int:
    """A run whose listing is still going on (or was killed): what it has planned and committed."""
    identity = run.plan_identity()
    if identity is None:
        print(f"error: {given} is not a run folder (no plan/plan.json)", file=sys.stderr)
        return USAGE_ERROR
    print(f"run {run.root}: profile {identity['profile']}, tasks {', '.join(identity['tasks'])}, config {identity['config_hash']}")
    print(f"planning: {run.listed_so_far()} inputs listed so far (no plan.json yet: the listing goes on, or was stopped; "
          "rerunning the same command lists the input again and continues)")
    print(f"shards committed: {len(run.commit_record_names())}")
    return 0


def _overlay_progress(run) -> None:
    """The judge overlay that selection reads, and how far an unfinished `rejudge` got."""
    from pipeline.postrun.judge_overlay import load_overlay, unfinished_overlays

    overlay = load_overlay(run)
    if overlay is not None:
        print(overlay.describe() + (", in use" if overlay.complete else f": incomplete, rerun `rejudge {run.root}`"))
    for unfinished in unfinished_overlays(run):
        print(unfinished.describe() + f", not in use until all are (rerun `rejudge {run.root}` to finish)")


def _check(run) -> int:
    """Every committed file re-hashed against its completion record; exit 1 when one differs."""
    from pipeline.core.integrity import damaged_shards

    committed = len(run.commit_record_names())
    damaged = damaged_shards(run, full=True)
    for shard, problems in damaged.items():
        for problem in problems:
            print(f"damaged: shard {shard}: {problem}")
    intact = committed - len(damaged)
    print(f"checked {committed} committed shard(s): {intact} intact, {len(damaged)} damaged"
          + (" (rerun the same `run` command with --check to regenerate them)" if damaged else ""))
    return RUN_FAILED if damaged else 0


def _plan_config(args) -> dict:
    flags = {"run": {"tasks": parse_tasks(args.task)}}
    if args.input:
        flags["input"] = {"path": args.input}
    cfg = config_mod.load_config(args.profile, args.config, [flags, *(config_mod.parse_set(s) for s in args.set)])
    # the cluster's flags win over the config (a float --gpu-mem included)
    for key, value in (("gpus_per_node", args.gpus_per_node), ("gpu_mem_gb", args.gpu_mem), ("nodes", args.nodes)):
        if value:
            cfg["gpu"][key] = value
    return cfg


def cmd_plan(args) -> int:
    """The pool plan (pipeline/engine/gpu_plan.py), printed before anything loads; with
    --calibrate, the cost table measured on this machine's GPU."""
    from pipeline.engine.gpu_plan import format_plan, plan_pools, shown, table_path
    from pipeline.engine.stage_list import build_stage_list
    from tasks import NotImplementedTask

    try:
        cfg = _plan_config(args)
        if args.calibrate:
            return _calibrate(cfg, args)
        # the stages as configured; the plan sizes them (as `run` does with gpu.auto_pools)
        stages = build_stage_list({**cfg, "gpu": {**cfg["gpu"], "auto_pools": False}})
        plan = plan_pools(stages, cfg)
    except (config_mod.ConfigError, UnknownTaskError, NotImplementedTask) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    how = "sized from the cost table and the traffic (gpu.auto_pools)" if plan.auto else "as configured (model_stages.*; gpu.auto_pools is false)"
    print(f"profile {cfg['profile']}: {plan.nodes} node(s) x {plan.gpus_per_node} GPU(s) of {plan.gpu_mem_gb:g} GB; pools {how}")
    measured = sorted({c.measured_on for p in plan.pools for c in p.costs.values() if c.measured_on})
    estimated = [k for p in plan.pools for k, c in p.costs.items() if not c.measured_on]
    print(
        f"costs: {shown(table_path(cfg, 'cost_table'))} (whole-GPU seconds per row at {plan.cost_working_size or '?'} px, measured on {', '.join(measured) or 'nothing'}"
        f"{'; estimates: ' + ', '.join(sorted(set(estimated))) if estimated else ''}); traffic: {shown(table_path(cfg, 'traffic'))}, inputs "
        f"{1 - plan.video_share:.0%} images, {plan.video_share:.0%} videos (gpu.video_share)"
    )
    print(format_plan(plan))
    for problem in plan.problems:
        print(f"does not fit: {problem}", file=sys.stderr)
    return USAGE_ERROR if plan.problems else 0


def _calibrate(cfg: dict, args) -> int:
    from pipeline.engine.calibrate import NoGpu, calibrate, write_cost_table
    from pipeline.engine.gpu_plan import table_path

    try:
        measured = calibrate(cfg, inputs=args.inputs, log=lambda msg: print(msg, file=sys.stderr))
    except NoGpu as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    out = write_cost_table(args.out or table_path(cfg, "cost_table"), measured, cfg)
    print(f"wrote {len(measured)} measured stage(s) to {out}")
    return 0
