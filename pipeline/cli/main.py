"""Command line: `python -m pipeline run|tasks|status|...`. Exit 0 on success (error rows are
data, not failure), 2 on usage or configuration errors, 1 when the run itself fails. This module
holds the argument parsers and the dispatch; the commands themselves live in commands_run
(run, tasks, status, plan), commands_data (sheet, report, select, export, score),
commands_rejudge (rejudge), commands_verify (verify), commands_review (review), commands_calibrate
(calibrate) and models (models)."""

from __future__ import annotations

import argparse
import sys

from pipeline.cli import (
    commands_calibrate,
    commands_data,
    commands_rejudge,
    commands_review,
    commands_run,
    commands_verify,
    stages_list,
)
from pipeline.cli import models as models_cli
from pipeline.cli.common import RUN_FAILED, USAGE_ERROR
from pipeline.cli.run_io import READS_RUN_WITH_IO, add_io_set, io_settings
from pipeline.core import config as config_mod


def _add_run(sub) -> None:
    p = sub.add_parser("run", help="generate triplets for one or more tasks", description="Generate editing triplets.")
    p.add_argument("--task", required=True, help="a task or alias, a comma list, or 'all' (see `tasks`)")
    p.add_argument("--profile", help=f"backend profile: {', '.join(config_mod.profiles())} (default: cpu)")
    p.add_argument(
        "--input",
        help="a folder or file, local or on a store by URI (s3://bucket/prefix/, gs://...): images, WebDataset .tar shards, "
        "Parquet with an image column, a manifest of image URIs (.csv, .jsonl, .parquet); or 'samples' (default)",
    )
    p.add_argument("--annotations", help="COCO instances JSON whose boxes replace grounding")
    p.add_argument("--license", help="licence for inputs that carry none")
    p.add_argument("--out", help="run folder (default: runs/<tasks>-<profile>)")
    p.add_argument("--limit", type=int, help="only the first N inputs, in a stable order")
    p.add_argument("--address", help="Ray cluster to join (default: embedded local Ray; RAY_ADDRESS works too)")
    p.add_argument("--config", action="append", default=[], help="extra YAML layer (repeatable)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one key, e.g. run.shard_size=4")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--check", action="store_true", help="re-hash every committed shard before resuming (always: its size and Parquet footer)")
    p.add_argument("--allow-unlocked", action="store_true", help="run even when the registry model files do not match configs/models.lock")
    p.add_argument("--judge-url", help="OpenAI-compatible base URL of a served judge, e.g. http://host:8000/v1 (key: OPENAI_API_KEY)")
    p.add_argument("--judge-model", help="the served judge's model name")
    p.add_argument("--captioner-url", help="OpenAI-compatible base URL of a served captioner that writes the instructions (key: OPENAI_API_KEY)")
    p.add_argument("--captioner-model", help="the served captioner's model name")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description="Image-editing triplet pipeline.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run(sub)
    sub.add_parser("tasks", help="list the task ids and aliases", description="List the task ids, aliases and implemented profiles.")
    st = sub.add_parser("status", help="show a run's progress and counts", description="Show a run's shards and counts.")
    st.add_argument("run_dir")
    st.add_argument("--check", action="store_true", help="re-hash every committed file against its completion record; exit 1 when one differs")
    add_io_set(st)
    models_cli.add_parser(sub)
    stages_list.add_parser(sub)
    rp = sub.add_parser("report", help="write the HTML report of a run", description="A static HTML report: cards per task, funnel, histograms, errors, config.")
    rp.add_argument("run_dir")
    rp.add_argument("--out", help="folder (default: RUN/report)")
    rp.add_argument("--per-task", type=int, default=60, help="rows sampled per task and status (default 60)")
    rp.add_argument("--page-size", type=int, default=30, help="cards per page (default 30)")
    add_io_set(rp)
    se = sub.add_parser("select", help="rerun the selection phase: dedup and the 1-in-20 choice, hq/", description="Dedup and select the high-quality subset of a finished run.")
    se.add_argument("run_dir")
    se.add_argument("--config", action="append", default=[], help="extra YAML layer (repeatable; its select keys apply)")
    add_io_set(se, "; and select.KEY=VALUE")
    sc = sub.add_parser("score", help="run the gates and the judge over an existing triplet dataset", description="Gates and judge over Parquet triplets (this project's rows or others' via --columns).")
    sc.add_argument("--input", required=True, help="a Parquet file or a folder of them")
    sc.add_argument("--out", required=True)
    sc.add_argument("--profile", default="cpu")
    sc.add_argument("--columns", help="map: src=COL,tgt=COL,instruction=COL,mask=COL,task=COL")
    sc.add_argument("--task", help="the task of every row, when the data has no task column")
    sc.add_argument("--judge-url")
    sc.add_argument("--judge-model")
    sc.add_argument("--config", action="append", default=[], help="extra YAML layer (repeatable), e.g. calibrate's fitted limits")
    sc.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ex = sub.add_parser("export", help="export a run's high-quality subset with a dataset card", description="Export selected triplets, a dataset card and a checksummed manifest.")
    ex.add_argument("run_dir")
    ex.add_argument("--to", required=True, help="export folder, local or on a store by URI (s3://bucket/prefix/)")
    ex.add_argument("--format", choices=["parquet", "webdataset", "preference"], default="parquet",
                    help="preference: (source, instruction, chosen, rejected, why) pairs instead of triplets")
    ex.add_argument("--keep-ratio", type=float, help="re-rank: this share of each task's candidates")
    ex.add_argument("--min-o", type=float, help="minimum VIEScore O, for rows that have one")
    ex.add_argument("--per-task", type=int, help="at most N rows per task")
    ex.add_argument("--exclude-benchmark", help="drop rows whose source is a near duplicate of an image in this folder")
    ex.add_argument("--include-unknown-license", action="store_true", help="keep rows whose licence is unknown")
    add_io_set(ex, " (the --to store is reached with the same settings)")
    pl = sub.add_parser(
        "plan", help="size the model stages' actor pools on GPUs, loading nothing (--calibrate: time them on a GPU)",
        description="Each model stage's actors and GPU share, from the registry's sizes, the cost table and the tasks' traffic; "
        "the expected throughput, the bottleneck and the idle GPU share.",
    )
    pl.add_argument("--profile", default="gpu")
    pl.add_argument("--task", default="all")
    pl.add_argument("--gpus-per-node", type=int, help="default: gpu.gpus_per_node")
    pl.add_argument("--gpu-mem", type=float, help="GB per GPU (default: gpu.gpu_mem_gb)")
    pl.add_argument("--nodes", type=int, help="default: gpu.nodes")
    pl.add_argument("--config", action="append", default=[], help="extra YAML layer (repeatable)")
    pl.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    pl.add_argument("--calibrate", action="store_true", help="on a GPU: time each model stage on a few rows at the working size and write the cost table")
    pl.add_argument("--inputs", type=int, default=4, help="--calibrate: inputs to run through the chain (default 4)")
    pl.add_argument("--input", help="--calibrate: the inputs (default: input.path, the bundled samples)")
    pl.add_argument("--out", help="--calibrate: the cost table to write (default: gpu.cost_table)")
    sh = sub.add_parser("sheet", help="draw a PNG contact sheet of a run's triplets", description="Draw source | mask | target with both instructions.")
    sh.add_argument("run_dir")
    sh.add_argument("--out", required=True, help="PNG file to write")
    sh.add_argument("--per-task", type=int, default=3, help="triplets per task (default 3)")
    sh.add_argument("--status", default="ok", help="rows of this status only (ok, rejected; 'any' for both)")
    add_io_set(sh)
    _add_verify(sub)
    commands_review.add_parser(sub)
    commands_calibrate.add_parser(sub)
    commands_rejudge.add_parser(sub)
    return parser


def _add_verify(sub) -> None:
    ve = sub.add_parser("verify", help="train the bundled editor on a run's triplets and score held-out edits",
                        description="Train the bundled editor (or run FLUX.1 Kontext) and score held-out edits against identity and mean-edit baselines.")
    ve.add_argument("run_dir", metavar="RUN_OR_HQ_DIR", help="a run folder, or an exported dataset / folder of Parquet shards")
    ve.add_argument("--out", help="folder for metrics.json, loss_curve.png, gallery.png, checkpoints, local or on a store by URI (default: RUN/verify)")
    ve.add_argument("--rows", choices=["ok", "hq"], default="ok", help="a run's ok candidates (default) or its hq/ subset")
    ve.add_argument("--editor", choices=["bundled", "flux-kontext"], default="bundled")
    ve.add_argument("--steps", type=int, help="training steps per model (default: editor.train.steps)")
    ve.add_argument("--size", type=int, help="side in pixels of training and scoring (default: editor.size)")
    ve.add_argument("--task", help="only these tasks (a task, alias or comma list)")
    ve.add_argument("--folds", type=int, metavar="K", help="cross-validate: K trainings, each source image held out once, pooled (default: one split)")
    ve.add_argument("--no-control", action="store_true", help="skip the shuffled-instruction control")
    ve.add_argument("--profile", default="tiny", help="models: tiny (the twins, default on a CPU) or gpu (the registry's checkpoints)")
    ve.add_argument("--config", action="append", default=[], help="extra YAML layer (repeatable)")
    ve.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="e.g. editor.dit.double_blocks=4; io.* keys say how to reach a run on a store")
    ve.add_argument("--judge-url", help="score the editor's outputs with a served VIEScore judge")
    ve.add_argument("--judge-model")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {
        "run": commands_run.cmd_run,
        "tasks": commands_run.cmd_tasks,
        "status": commands_run.cmd_status,
        "sheet": commands_data.cmd_sheet,
        "models": models_cli.run,
        "plan": commands_run.cmd_plan,
        "select": commands_data.cmd_select,
        "export": commands_data.cmd_export,
        "score": commands_data.cmd_score,
        "report": commands_data.cmd_report,
        "verify": commands_verify.cmd_verify,
        "stages": stages_list.cmd_stages,
        "review": commands_review.cmd_review,
        "calibrate": commands_calibrate.cmd_calibrate,
        "rejudge": commands_rejudge.cmd_rejudge,
    }
    if args.command in READS_RUN_WITH_IO:
        from pipeline.core.run_dir import RunDir

        try:
            io = io_settings(args.command, args.set)
        except config_mod.ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return USAGE_ERROR
        args.run_dir = RunDir(args.run_dir, io)  # every reader of the run opens its store with these settings
    if args.command in READS_RUN:
        return _reading_run(commands[args.command], args)
    return commands[args.command](args)


READS_RUN = ("select", "export", "report", "verify", "sheet", "review", "calibrate", "rejudge")


def _reading_run(command, args) -> int:
    """A command that reads a run's shards: refused (exit 1) when a committed file differs from
    its completion record, and a file that still fails to read is one line, not a traceback."""
    import pyarrow as pa

    from pipeline.core.filesystems import InputError
    from pipeline.core.integrity import DamagedRun, require_intact
    from pipeline.core.run_dir import RunDir

    try:
        run = RunDir(args.run_dir)
        run.store.check_reachable()
        require_intact(run)
        return command(args)
    except InputError as exc:  # a run on a store without credentials, or one that cannot be reached
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except DamagedRun as exc:
        print(f"error: {exc}", file=sys.stderr)
    except (pa.ArrowException, OSError) as exc:
        print(f"error: {args.command} {args.run_dir}: {type(exc).__name__}: {exc}", file=sys.stderr)
    return RUN_FAILED
