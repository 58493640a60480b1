"""Command line: `python -m pipeline run|tasks|status`. Exit 0 on success (error rows are data,
not failure), 2 on usage or configuration errors, 1 when the run itself fails."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipeline.cli import models as models_cli
from pipeline.core import config as config_mod
from pipeline.core.annotations import AnnotationError
from pipeline.core.inputs import InputError
from pipeline.core.task_names import ALIAS_OF, TASK_IDS, UnknownTaskError, parse_tasks

USAGE_ERROR, RUN_FAILED = 2, 1


def _add_run(sub) -> None:
    p = sub.add_parser("run", help="generate triplets for one or more tasks", description="Generate editing triplets.")
    p.add_argument("--task", required=True, help="a task or alias, a comma list, or 'all' (see `tasks`)")
    p.add_argument("--profile", help=f"backend profile: {', '.join(config_mod.profiles())} (default: cpu)")
    p.add_argument("--input", help="a folder of images, a Parquet file, or 'samples' (default)")
    p.add_argument("--annotations", help="COCO instances JSON whose boxes replace grounding")
    p.add_argument("--license", help="licence for inputs that carry none")
    p.add_argument("--out", help="run folder (default: runs/<tasks>-<profile>)")
    p.add_argument("--limit", type=int, help="only the first N inputs, in a stable order")
    p.add_argument("--address", help="Ray cluster to join (default: embedded local Ray; RAY_ADDRESS works too)")
    p.add_argument("--config", action="append", default=[], help="extra YAML layer (repeatable)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one key, e.g. run.shard_size=4")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--judge-url", help="OpenAI-compatible base URL of a served judge, e.g. http://host:8000/v1 (key: OPENAI_API_KEY)")
    p.add_argument("--judge-model", help="the served judge's model name")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description="Image-editing triplet pipeline.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run(sub)
    sub.add_parser("tasks", help="list the task ids and aliases", description="List the task ids, aliases and implemented profiles.")
    st = sub.add_parser("status", help="show a run's progress and counts", description="Show a run's shards and counts.")
    st.add_argument("run_dir")
    models_cli.add_parser(sub)
    rp = sub.add_parser("report", help="write the HTML report of a run", description="A static HTML report: cards per task, funnel, histograms, errors, config.")
    rp.add_argument("run_dir")
    rp.add_argument("--out", help="folder (default: RUN/report)")
    rp.add_argument("--per-task", type=int, default=60, help="rows sampled per task and status (default 60)")
    rp.add_argument("--page-size", type=int, default=30, help="cards per page (default 30)")
    se = sub.add_parser("select", help="rerun the selection phase: dedup and the 1-in-20 choice, hq/", description="Dedup and select the high-quality subset of a finished run.")
    se.add_argument("run_dir")
    se.add_argument("--set", action="append", default=[], metavar="select.KEY=VALUE")
    sc = sub.add_parser("score", help="run the gates and the judge over an existing triplet dataset", description="Gates and judge over Parquet triplets (this project's rows or others' via --columns).")
    sc.add_argument("--input", required=True, help="a Parquet file or a folder of them")
    sc.add_argument("--out", required=True)
    sc.add_argument("--profile", default="cpu")
    sc.add_argument("--columns", help="map: src=COL,tgt=COL,instruction=COL,mask=COL,task=COL")
    sc.add_argument("--task", help="the task of every row, when the data has no task column")
    sc.add_argument("--judge-url")
    sc.add_argument("--judge-model")
    sc.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ex = sub.add_parser("export", help="export a run's high-quality subset with a dataset card", description="Export selected triplets, a dataset card and a checksummed manifest.")
    ex.add_argument("run_dir")
    ex.add_argument("--to", required=True, help="export folder")
    ex.add_argument("--format", choices=["parquet", "webdataset"], default="parquet")
    ex.add_argument("--keep-ratio", type=float, help="re-rank: this share of each task's candidates")
    ex.add_argument("--min-o", type=float, help="minimum VIEScore O, for rows that have one")
    ex.add_argument("--per-task", type=int, help="at most N rows per task")
    ex.add_argument("--exclude-benchmark", help="drop rows whose source is a near duplicate of an image in this folder")
    ex.add_argument("--include-unknown-license", action="store_true", help="keep rows whose licence is unknown")
    pl = sub.add_parser("plan", help="show how a profile's model stages fit on GPUs, loading nothing", description="Fit the model stages onto GPUs from the registry's sizes.")
    pl.add_argument("--profile", default="gpu")
    pl.add_argument("--task", default="all")
    pl.add_argument("--gpus-per-node", type=int, help="default: gpu.gpus_per_node")
    pl.add_argument("--gpu-mem", type=float, help="GB per GPU (default: gpu.gpu_mem_gb)")
    pl.add_argument("--nodes", type=int, default=1)
    pl.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    sh = sub.add_parser("sheet", help="draw a PNG contact sheet of a run's triplets", description="Draw source | mask | target with both instructions.")
    sh.add_argument("run_dir")
    sh.add_argument("--out", required=True, help="PNG file to write")
    sh.add_argument("--per-task", type=int, default=3, help="triplets per task (default 3)")
    sh.add_argument("--status", default="ok", help="rows of this status only (ok, rejected; 'any' for both)")
    _add_verify(sub)
    return parser


def _add_verify(sub) -> None:
    ve = sub.add_parser("verify", help="train the bundled editor on a run's triplets and score held-out edits",
                        description="Train the bundled editor (or run FLUX.1 Kontext) and score held-out edits against identity and mean-edit baselines.")
    ve.add_argument("run_dir", metavar="RUN_OR_HQ_DIR", help="a run folder, or an exported dataset / folder of Parquet shards")
    ve.add_argument("--out", help="folder for metrics.json, loss_curve.png, gallery.png, checkpoints (default: RUN/verify)")
    ve.add_argument("--rows", choices=["ok", "hq"], default="ok", help="a run's ok candidates (default) or its hq/ subset")
    ve.add_argument("--editor", choices=["bundled", "flux-kontext"], default="bundled")
    ve.add_argument("--steps", type=int, help="training steps per model (default: editor.train.steps)")
    ve.add_argument("--size", type=int, help="side in pixels of training and scoring (default: editor.size)")
    ve.add_argument("--task", help="only these tasks (a task, alias or comma list)")
    ve.add_argument("--folds", type=int, metavar="K", help="cross-validate: K trainings, each source image held out once, pooled (default: one split)")
    ve.add_argument("--no-control", action="store_true", help="skip the shuffled-instruction control")
    ve.add_argument("--profile", default="tiny", help="models: tiny (the twins, default on a CPU) or gpu (the registry's checkpoints)")
    ve.add_argument("--config", action="append", default=[], help="extra YAML layer (repeatable)")
    ve.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="e.g. editor.dit.double_blocks=4")
    ve.add_argument("--judge-url", help="score the editor's outputs with a served VIEScore judge")
    ve.add_argument("--judge-model")


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
    flags.update(judge_flags(args))
    return config_mod.load_config(args.profile, args.config, [flags, *overrides])


def judge_flags(args) -> dict:
    """`--judge-url/--judge-model` as a config layer: a served (OpenAI-compatible) judge."""
    if not (args.judge_url or args.judge_model):
        return {}
    judge = {"backend": "openai"}
    if args.judge_url:
        judge["url"] = args.judge_url
    if args.judge_model:
        judge["model"] = args.judge_model
    return {"judge": judge}


def cmd_run(args) -> int:
    from pipeline.engine.runner import RunConflict, RunFailed, print_summary
    from pipeline.postrun.finish import run_pipeline
    from tasks import NotImplementedTask

    try:
        cfg = _run_config(args)
        result = run_pipeline(cfg, log=lambda msg: print(msg, file=sys.stderr))
    except (config_mod.ConfigError, UnknownTaskError, NotImplementedTask, InputError, AnnotationError, RunConflict) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except RunFailed as exc:
        print(f"run failed: {exc}", file=sys.stderr)
        return RUN_FAILED
    print_summary(result)
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

    run = RunDir(Path(args.run_dir))
    plan = run.read_plan()
    if plan is None:
        print(f"error: {args.run_dir} is not a run folder (no plan/plan.json)", file=sys.stderr)
        return USAGE_ERROR
    manifest = build_manifest(run, plan)
    done = len(plan["shards"]) - len(manifest["pending_shards"])
    print(f"run {run.root}: profile {plan['profile']}, tasks {', '.join(plan['tasks'])}, config {plan['config_hash']}")
    print(f"shards committed: {done}/{len(plan['shards'])}  ({'complete' if manifest['complete'] else 'incomplete: rerun to finish'})")
    print(summary_table(manifest))
    print(json.dumps({"rows": manifest["rows"]}))
    return 0


def cmd_sheet(args) -> int:
    from pipeline.postrun.contact_sheet import pick_rows, render

    rows = pick_rows(Path(args.run_dir), args.per_task, None if args.status == "any" else args.status)
    if not rows:
        print(f"error: no {args.status} triplets in {args.run_dir}/candidates", file=sys.stderr)
        return USAGE_ERROR
    print(render(rows, Path(args.out)))
    return 0


def cmd_plan(args) -> int:
    from pipeline.engine.gpu_plan import format_plan, plan

    try:
        cfg = config_mod.load_config(args.profile, overrides=[config_mod.parse_set(s) for s in args.set])
        tasks = parse_tasks(args.task)
    except (config_mod.ConfigError, UnknownTaskError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    gpus = args.gpus_per_node or cfg["gpu"]["gpus_per_node"]
    mem = args.gpu_mem or cfg["gpu"]["gpu_mem_gb"]
    rows, problems = plan(cfg, tasks, gpus, mem, args.nodes)
    print(f"profile {args.profile}: {args.nodes} node(s) x {gpus} GPU(s) of {mem:g} GB")
    print(format_plan(rows))
    for problem in problems:
        print(f"does not fit: {problem}", file=sys.stderr)
    return USAGE_ERROR if problems else 0


def cmd_report(args) -> int:
    from pipeline.postrun.report import write_report

    run = Path(args.run_dir)
    if not (run / "manifest.json").exists():
        print(f"error: {run} has no manifest.json: not a finished run folder", file=sys.stderr)
        return USAGE_ERROR
    print(write_report(run, Path(args.out) if args.out else None, args.per_task, args.page_size))
    return 0


def cmd_select(args) -> int:
    import yaml

    from pipeline.postrun.selection import SelectionError, select_run

    run = Path(args.run_dir)
    if not (run / "config.yaml").exists():
        print(f"error: {run} is not a run folder (no config.yaml)", file=sys.stderr)
        return USAGE_ERROR
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    try:
        current = config_mod.load_config(cfg.get("profile"), overrides=[config_mod.parse_set(s) for s in args.set])
        cfg["select"] = current["select"]
        result = select_run(run, cfg)
    except (config_mod.ConfigError, SelectionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    print(json.dumps(result, indent=1))
    return 0


def cmd_score(args) -> int:
    from pipeline.postrun.score import ScoreError, parse_columns, score_dataset

    overrides = [config_mod.parse_set(s) for s in args.set]
    overrides.append(judge_flags(args))
    try:
        cfg = config_mod.load_config(args.profile, overrides=overrides)
        task = parse_tasks(args.task)[0] if args.task else None
        summary = score_dataset(Path(args.input), Path(args.out), cfg, parse_columns(args.columns), task)
    except (config_mod.ConfigError, UnknownTaskError, ScoreError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    print(json.dumps(summary["rows"]))
    return 0


def cmd_export(args) -> int:
    from pipeline.postrun.export import ExportError, export_run

    try:
        result = export_run(
            Path(args.run_dir), Path(args.to), fmt=args.format, keep_ratio=args.keep_ratio, min_o=args.min_o,
            per_task=args.per_task, exclude_benchmark=Path(args.exclude_benchmark) if args.exclude_benchmark else None,
            include_unknown_license=args.include_unknown_license,
        )
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    print(json.dumps(result, indent=1, default=str))
    return 0


def cmd_verify(args) -> int:
    from editor.data import DataError
    from editor.verify import VerifyRequest, run_verify

    flags: dict = {"editor": {"train": {}}}
    if args.steps is not None:
        flags["editor"]["train"]["steps"] = args.steps
    if args.size is not None:
        flags["editor"]["size"] = args.size
    if args.folds is not None:
        flags["editor"]["folds"] = args.folds
    if args.no_control:
        flags["editor"]["control"] = False
    flags.update(judge_flags(args))
    try:
        cfg = config_mod.load_config(args.profile, args.config, [*(config_mod.parse_set(s) for s in args.set), flags])
        check_editor_config(cfg["editor"])
        tasks = set(parse_tasks(args.task)) if args.task else None
        run = Path(args.run_dir)
        request = VerifyRequest(run, Path(args.out) if args.out else run / "verify", args.rows, args.editor, tasks)
        run_verify(request, cfg, log=lambda msg: print(msg, file=sys.stderr))
    except (config_mod.ConfigError, UnknownTaskError, DataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    return 0


def check_editor_config(ecfg: dict) -> None:
    if ecfg["train"]["steps"] < 1:
        raise config_mod.ConfigError("editor.train.steps: must be at least 1")
    if ecfg["size"] < 8:
        raise config_mod.ConfigError("editor.size: must be at least 8")
    if ecfg["folds"] < 1:
        raise config_mod.ConfigError("editor.folds: must be at least 1 (1: one held-out split)")
    if not 0 < ecfg["held_out"] < 1:
        raise config_mod.ConfigError("editor.held_out: must be between 0 and 1")
    if not 0 <= ecfg["train"]["drop_instruction"] < 1:
        raise config_mod.ConfigError("editor.train.drop_instruction: must be in [0, 1)")
    if ecfg["guidance"] != 1 and ecfg["train"]["drop_instruction"] <= 0:
        raise config_mod.ConfigError("editor.guidance: guiding needs a model that has seen rows without their instruction; "
                                     "set editor.train.drop_instruction (e.g. 0.1)")
    if not 0 < ecfg["sample_start_t"] <= 1:
        raise config_mod.ConfigError("editor.sample_start_t: must be in (0, 1]")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {"run": cmd_run, "tasks": cmd_tasks, "status": cmd_status, "sheet": cmd_sheet, "models": models_cli.run, "plan": cmd_plan,
                "select": cmd_select, "export": cmd_export, "score": cmd_score, "report": cmd_report, "verify": cmd_verify}
    return commands[args.command](args)
