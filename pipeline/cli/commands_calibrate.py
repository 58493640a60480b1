"""`calibrate`: fit the gates' limits and select.min_o to people's verdicts on a run, report the
agreement, and write the fitted limits as a config layer. The run is local or on a store by URI
(`--set io.*`); the layer goes into it unless `--out` names another file, local or by URI."""

from __future__ import annotations

import sys

from pipeline.cli.common import RUN_FAILED, USAGE_ERROR
from pipeline.cli.run_io import add_io_set
from pipeline.core.run_dir import RunDir, StoredFile
from pipeline.core.run_store import file_at
from pipeline.core.task_names import UnknownTaskError, parse_tasks


def add_parser(sub) -> None:
    ca = sub.add_parser(
        "calibrate", help="fit the gate limits and select.min_o to people's verdicts (RUN/review/verdicts.jsonl)",
        description="Join people's verdicts with the run's gate values and judge scores, report agreement per task, "
        "fit each task's limits and select.min_o to a target precision of keep, and write them as a config layer.",
    )
    ca.add_argument("run_dir")
    ca.add_argument("--target-precision", type=float, default=0.9, help="share of kept rows people keep (default 0.9)")
    ca.add_argument("--out", help="the config layer to write, local or on a store by URI (default: RUN/review/calibrated.yaml)")
    ca.add_argument("--task", help="only these tasks (a task, alias or comma list)")
    ca.add_argument("--min-verdicts", type=int, default=10, help="fit a task's limits only with at least this many verdicts on it (default 10)")
    add_io_set(ca)


def cmd_calibrate(args) -> int:
    from pipeline.postrun.calibration import (
        CalibrationError,
        calibrate_run,
        calibration_file,
        default_layer_file,
    )
    from pipeline.postrun.calibration_layer import (
        agreement_table,
        limits_table,
        write_layer,
    )

    run = RunDir(args.run_dir)  # main gives a RunDir that carries the --set io.* settings
    try:
        tasks = parse_tasks(args.task) if args.task else None
    except UnknownTaskError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    if not 0 < args.target_precision <= 1:
        print(f"error: --target-precision: expected a share in (0, 1], got {args.target_precision:g}", file=sys.stderr)
        return USAGE_ERROR
    if args.min_verdicts < 2:
        print(f"error: --min-verdicts: expected at least 2, got {args.min_verdicts}", file=sys.stderr)
        return USAGE_ERROR
    try:
        result = calibrate_run(run, args.target_precision, tasks, args.min_verdicts)
    except CalibrationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return RUN_FAILED
    out = file_at(args.out, run.store.io) if args.out else default_layer_file(run)
    write_layer(result, out)
    print(agreement_table(result))
    print()
    print(limits_table(result))
    for task, info in result["tasks"].items():
        if not info["calibrated"]:
            print(f"{task}: limits left as they are ({info['left_alone_because']})")
        elif not info["target_reached"]:
            print(f"{task}: no limits reach precision {args.target_precision:g}; fitted to the most precise")
    # --config reads local files: a layer on a store is copied down first
    use = "copy it to a local file to use it with --config" if isinstance(out, StoredFile) else f"use it with --config {out}"
    print(f"wrote {calibration_file(run)} and {out} ({use})")
    return 0
